//! The `berth` binary: `berth server`, `berth agent`, `berth dev`.
//!
//! A thin shell over the library crates: parse flags, open the Raft node, serve HTTP, stop on
//! Ctrl-C or SIGTERM. Errors are printed with their whole chain and map to exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_agent::runtime::RuntimeKind;
use berth_agent::{Agent, AgentConfig};
use berth_auth::JoinToken;
use berth_client::{Transport, Trust};
use berth_raft::network::PeerAccess;
use berth_raft::{Node, NodeOptions};
use berth_server::auth::Keyring;
use berth_server::tls::Tls;
use berth_server::{App, ServerConfig, bootstrap, router};
use clap::{Args, CommandFactory, Parser, Subcommand};

mod admin;
mod observe;
mod ops;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted cluster manager with the Amazon ECS API",
    after_long_help = ops::EXIT_CODES,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a control-plane server.
    Server(ServerArgs),
    /// Run the host agent: register this host and run the tasks placed on it.
    Agent(AgentArgs),
    /// Run everything a newcomer needs in one process: a single-node server with local state
    /// and an agent on this host.
    Dev(DevArgs),
    /// Create, list and delete credentials (needs an admin credential).
    #[command(subcommand)]
    Credential(admin::CredentialCmd),
    /// Create, list and delete join tokens for agents and servers (needs an admin credential).
    #[command(subcommand)]
    JoinToken(admin::JoinTokenCmd),
    /// Print a task's container output.
    Logs(admin::LogsArgs),
    /// Look at and change the control plane (the servers' Raft group; needs an admin
    /// credential).
    #[command(subcommand)]
    Operator(admin::OperatorCmd),
    /// The operator's commands: status, cluster, instance, task, service, taskdef, run, stop,
    /// history, explain, watch, schedule, completions.
    #[command(flatten)]
    Ops(ops::OpsCmd),
}

#[derive(Args)]
struct AgentArgs {
    /// The cluster's servers: repeat the flag or separate them with commas. The agent talks to
    /// one and moves on to the next when it is unreachable.
    #[arg(
        long = "server",
        value_name = "URL",
        default_value = "http://127.0.0.1:8642",
        env = "BERTH_SERVER",
        value_delimiter = ',',
        value_parser = berth_agent::endpoints::parse_server
    )]
    servers: Vec<String>,
    /// The cluster to join.
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    cluster: String,
    /// A custom attribute to register, as NAME=VALUE (or NAME); repeat for more.
    #[arg(long = "attribute", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    /// The capacity provider this instance belongs to (registered as the
    /// ecs.capacity-provider attribute): RunTask and services with a capacity provider
    /// strategy place that provider's share of their tasks on its instances.
    #[arg(long, env = "BERTH_CAPACITY_PROVIDER")]
    capacity_provider: Option<String>,
    /// Directory for the agent's identity and process sandboxes.
    #[arg(long, default_value = "./berth-agent", env = "BERTH_AGENT_DATA_DIR")]
    data_dir: PathBuf,
    /// Where to answer DNS for service discovery (UDP and TCP), or `off`. Port 53 is usually
    /// the host's own resolver's; forward berth's namespaces here from it.
    #[arg(long, default_value = "127.0.0.1:8600", value_parser = parse_dns_listen)]
    dns_listen: DnsListen,
    /// docker, process or hollow. Default: docker when the engine is reachable, else process.
    /// hollow runs nothing and runs every task (for scale tests).
    #[arg(long, value_parser = parse_runtime)]
    runtime: Option<RuntimeKind>,
    /// The join token (from `berth join-token create`), for an agent that has not joined yet.
    /// Once joined, the agent keeps its own credential in --data-dir.
    #[arg(long, env = "BERTH_JOIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate(s) (PEM) to trust for an https:// server, when the token pins none.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Where the agent serves container logs to the server (only the server may read them).
    /// Default: port 51678 on the address it advertises.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The address the server reaches the agent at (default: the listen address, or this
    /// host's address towards the first server when listening on all interfaces).
    #[arg(long)]
    advertise: Option<String>,
    /// Reported as the ecs.availability-zone attribute.
    #[arg(long)]
    availability_zone: Option<String>,
    /// CPU units to offer (default: cores × 1024).
    #[arg(long)]
    cpu: Option<i64>,
    /// Memory in MiB to offer (default: the host's, minus --reserved-memory).
    #[arg(long)]
    memory: Option<i64>,
    /// MiB of the host's memory kept for everything that is not a task.
    #[arg(long, default_value_t = 0)]
    reserved_memory: i64,
    /// Seconds one poll for assignments waits; also the heartbeat period.
    #[arg(long, default_value_t = 10)]
    poll_wait: u64,
    /// Seconds a finished task's containers are kept (for their logs) before removal.
    #[arg(long, default_value_t = 600)]
    cleanup_wait: u64,
    #[command(flatten)]
    observe: observe::Observability,
}

/// Why a command-line value does not parse; clap prints the message after the flag's name.
#[derive(Debug, thiserror::Error)]
enum ArgError {
    /// `--attribute` without a name before its `=`.
    #[error("'{0}' has no attribute name")]
    NoAttributeName(String),
    /// `--runtime` naming no runtime.
    #[error("'{0}' is not docker, process or hollow")]
    UnknownRuntime(String),
    /// `--peer` without its `=`.
    #[error("'{0}' is not ID=HOST:PORT")]
    NotAPeer(String),
    /// `--peer` whose id is not a number.
    #[error("'{0}' is not a node id")]
    NodeId(String),
    /// `--peer` with nothing after its `=`.
    #[error("'{0}' has no address")]
    NoAddress(String),
    /// `--dns-listen` that is neither an address nor `off`.
    #[error("'{0}' is not HOST:PORT or off")]
    DnsListen(String),
}

/// Where an agent answers DNS (`--dns-listen`), or `off`.
#[derive(Debug, Clone, Copy)]
struct DnsListen(Option<SocketAddr>);

fn parse_dns_listen(s: &str) -> Result<DnsListen, ArgError> {
    if s == "off" {
        return Ok(DnsListen(None));
    }
    s.parse()
        .map(|a| DnsListen(Some(a)))
        .map_err(|_| ArgError::DnsListen(s.to_owned()))
}

fn parse_attribute(s: &str) -> Result<(String, String), ArgError> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err(ArgError::NoAttributeName(s.to_owned()));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_runtime(s: &str) -> Result<RuntimeKind, ArgError> {
    RuntimeKind::parse(s).ok_or_else(|| ArgError::UnknownRuntime(s.to_owned()))
}

#[derive(Args)]
struct ServerArgs {
    /// Address to serve the ECS API, the native API and Raft RPCs on.
    #[arg(long, default_value = "127.0.0.1:8642", env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Directory for the Raft log and snapshots.
    #[arg(long, default_value = "./berth-data", env = "BERTH_DATA_DIR")]
    data_dir: PathBuf,
    /// Account id used in ARNs.
    #[arg(long, default_value = "000000000000", env = "BERTH_ACCOUNT_ID")]
    account_id: String,
    /// This server's Raft node id (stable across restarts; default 1). Unique in the group:
    /// a server replacing a dead one joins under a new id.
    #[arg(long)]
    node_id: Option<u64>,
    /// The address other servers reach this one at (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// A voter of a new multi-server cluster, as ID=HOST:PORT; repeat for each, this server
    /// included. Without any, the server is a single-voter group.
    #[arg(long = "peer", value_parser = parse_peer, conflicts_with = "join")]
    peers: Vec<(u64, String)>,
    /// Join a running cluster through one of its servers (`http(s)://HOST:PORT`): get the
    /// cluster secret with --join-token, become a learner, catch up, then a voter. Needs
    /// --node-id. Ignored once this server's data directory holds the group.
    #[arg(long, requires_all = ["join_token", "node_id"])]
    join: Option<String>,
    /// A server join token (`berth join-token create --server`), for --join.
    #[arg(long, env = "BERTH_SERVER_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    #[command(flatten)]
    security: Security,
    #[command(flatten)]
    tuning: Tuning,
    #[command(flatten)]
    observe: observe::Observability,
}

#[derive(Args)]
struct Security {
    /// The cluster secret (base64 of at least 32 random bytes), the same file on every
    /// server of a cluster. Default: <data-dir>/cluster.secret, created at a single server's
    /// first start. Required with --peer.
    #[arg(long, env = "BERTH_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Serve TLS with a certificate issued by the cluster CA (derived from the cluster
    /// secret; written to <data-dir>/ca.pem for `aws --ca-bundle`).
    #[arg(long)]
    tls: bool,
    /// Serve TLS with this certificate chain (PEM) instead.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) agents and peers trust with --tls-cert (default: the chain's last
    /// certificate).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Another name or address the generated certificate is valid for; repeat for more.
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// Serve plain HTTP on a non-loopback address. Anyone on the path can read every
    /// request and answer, secrets in task definitions included; refused without this flag.
    #[arg(long)]
    insecure: bool,
}

impl Security {
    fn wants_tls(&self) -> bool {
        self.tls || self.tls_cert.is_some()
    }
}

fn parse_peer(s: &str) -> Result<(u64, String), ArgError> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| ArgError::NotAPeer(s.to_owned()))?;
    let id = id.parse().map_err(|_| ArgError::NodeId(id.to_owned()))?;
    if addr.is_empty() {
        return Err(ArgError::NoAddress(s.to_owned()));
    }
    Ok((id, addr.to_owned()))
}

/// Where a server's Raft group comes from.
struct Membership {
    node_id: u64,
    advertise: Option<String>,
    peers: Vec<(u64, String)>,
    /// The server to join through, and the server join token.
    join: Option<(String, String)>,
}

#[derive(Args)]
struct DevArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8642", env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Directory for local state.
    #[arg(long, default_value = "./berth-data", env = "BERTH_DATA_DIR")]
    data_dir: PathBuf,
    /// Where the embedded agent answers DNS for service discovery, or `off`.
    #[arg(long, default_value = "127.0.0.1:8600", value_parser = parse_dns_listen)]
    dns_listen: DnsListen,
    #[command(flatten)]
    security: Security,
    #[command(flatten)]
    tuning: Tuning,
    #[command(flatten)]
    observe: observe::Observability,
}

#[derive(Args)]
struct Tuning {
    /// How long STOPPED tasks stay visible, in seconds.
    #[arg(long, default_value_t = 3600)]
    stopped_task_retention: u64,
    /// Versions kept in each entity's history.
    #[arg(long, default_value_t = 32)]
    history_versions: usize,
    /// Build a Raft snapshot after this many log entries.
    #[arg(long, default_value_t = 20_000)]
    snapshot_every: u64,
    /// Milliseconds between a Raft leader's heartbeats.
    #[arg(long, default_value_t = 50)]
    raft_heartbeat_ms: u64,
    /// The shortest Raft election timeout in milliseconds (each election draws one up to twice
    /// this). A lost leader is replaced 3–4 election timeouts after its last heartbeat; keep it
    /// well above the disk's fsync latency and at least twice the heartbeat.
    #[arg(long, default_value_t = 100)]
    raft_election_timeout_ms: u64,
    /// Milliseconds a write may wait for a quorum before it is answered 503 ServerException
    /// (its outcome then unknown: retry with the same clientToken).
    #[arg(long, default_value_t = 5000)]
    write_timeout_ms: u64,
    /// Serve every ECS Describe*/List* linearizably: after a read barrier confirmed by a
    /// quorum (one heartbeat round), so it sees every write acknowledged before it on any
    /// server. Without it, only requests with the header `x-berth-read-consistency:
    /// linearizable` are.
    #[arg(long)]
    linearizable_reads: bool,
    /// Seconds without a heartbeat before an agent is marked disconnected (no placements).
    #[arg(long, default_value_t = 30)]
    agent_heartbeat_timeout: u64,
    /// Seconds a disconnected agent has to come back before its tasks are marked STOPPED.
    #[arg(long, default_value_t = 60)]
    agent_lost_after: u64,
    /// The cluster Mesos frameworks schedule on.
    #[arg(long, default_value = "default")]
    mesos_cluster: String,
    /// Also serve the Mesos scheduler API (and the rest) on this address, for frameworks
    /// configured with a master address of their own.
    #[arg(long)]
    mesos_listen: Option<SocketAddr>,
    /// Seconds an unanswered Mesos offer is held before it is rescinded (a Mesos master's
    /// `--offer_timeout`). Unset, as on a Mesos master, an offer is held until the framework
    /// answers it or its instance goes away.
    #[arg(long)]
    mesos_offer_timeout: Option<u64>,
    /// Seconds a new leader gives Mesos frameworks to re-subscribe before it counts those
    /// without a stream as disconnected (their failover timeout then runs).
    #[arg(long, default_value_t = 10)]
    mesos_resubscribe_grace: u64,
}

fn main() -> Result<()> {
    // The process runtime's shim is this binary too; it must not start a tokio runtime or
    // logging of its own, so it is dispatched before anything else.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "process-shim") {
        std::process::exit(berth_agent::runtime::process::shim_main(args.collect()));
    }
    let cli = Cli::parse();
    observe::init_logging(match &cli.command {
        Cmd::Server(a) => a.observe.log_format,
        Cmd::Agent(a) => a.observe.log_format,
        Cmd::Dev(a) => a.observe.log_format,
        _ => observe::LogFormat::Text,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        match cli.command {
            Cmd::Server(a) => {
                let membership = Membership {
                    node_id: a.node_id.unwrap_or(1),
                    advertise: a.advertise,
                    peers: a.peers,
                    join: a.join.zip(a.join_token),
                };
                serve(
                    a.listen,
                    a.data_dir,
                    a.account_id,
                    membership,
                    a.security,
                    a.tuning,
                    a.observe,
                    None,
                )
                .await
            }
            Cmd::Agent(a) => run_agent(a).await,
            Cmd::Credential(c) => admin::credential(c).await,
            Cmd::JoinToken(c) => admin::join_token(c).await,
            Cmd::Operator(c) => admin::operator(c).await,
            Cmd::Logs(a) => admin::logs(a).await,
            Cmd::Ops(c) => ops::run(c, Cli::command).await,
            Cmd::Dev(a) => {
                let membership = Membership {
                    node_id: 1,
                    advertise: None,
                    peers: Vec::new(),
                    join: None,
                };
                serve(
                    a.listen,
                    a.data_dir,
                    "000000000000".into(),
                    membership,
                    a.security,
                    a.tuning,
                    a.observe,
                    Some(a.dns_listen),
                )
                .await
            }
        }
    });
    // Dropping a runtime waits for every blocking thread, and a service controller pass
    // planning a 20,000-task rollout on one can take tens of seconds: a stop would wait for
    // it. Everything that must outlive the stop (acknowledged writes: on disk before the
    // answer; answers in flight: drained by the graceful shutdown) is done by now, and that
    // pass only reads a snapshot, so it is left behind.
    runtime.shutdown_timeout(ABANDON_BLOCKING_WORK_AFTER);
    outcome
}

/// How long a stopping process waits for blocking work still running (see [`main`]).
const ABANDON_BLOCKING_WORK_AFTER: Duration = Duration::from_secs(1);

/// `path` made absolute against the working directory (without touching the file system).
fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Refuses plain HTTP on an address other hosts can reach, unless asked for by name.
fn check_exposure(listen: SocketAddr, tls: bool, insecure: bool, what: &str) -> Result<()> {
    if tls || listen.ip().is_loopback() {
        return Ok(());
    }
    if !insecure {
        anyhow::bail!(
            "{what} {listen} is reachable from other hosts, and without TLS anyone on the \
             network could read and tamper with every request: add --tls (or --tls-cert and \
             --tls-key), or --insecure to serve plain HTTP anyway"
        );
    }
    tracing::warn!(
        "INSECURE: serving plain HTTP on {listen} ({what}); credentials' signatures, task \
         definitions and their secrets cross the network in the clear"
    );
    Ok(())
}

/// The names a generated server certificate is valid for.
fn certificate_names(listen: SocketAddr, advertise: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    let host = advertise
        .rsplit_once(':')
        .map_or(advertise, |(h, _)| h)
        .trim_matches(['[', ']']);
    names.push(host.to_owned());
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(h.trim().to_owned());
    }
    names.extend(extra.iter().cloned());
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    account_id: String,
    membership: Membership,
    security: Security,
    tuning: Tuning,
    observe: observe::Observability,
    // `berth dev`: an embedded agent too, answering DNS where this says.
    dev: Option<DnsListen>,
) -> Result<()> {
    // Every path from a relative flag is resolved once, here, against the directory berth
    // was started in; nothing later depends on the working directory.
    let data_dir = absolute(&data_dir)?;
    let mut security = security;
    for path in [
        &mut security.cluster_secret_file,
        &mut security.tls_cert,
        &mut security.tls_key,
        &mut security.tls_ca,
    ]
    .into_iter()
    .flatten()
    {
        *path = absolute(path)?;
    }
    let tls_wanted = security.wants_tls();
    check_exposure(listen, tls_wanted, security.insecure, "--listen")?;
    if let Some(mesos) = tuning.mesos_listen {
        check_exposure(mesos, tls_wanted, security.insecure, "--mesos-listen")?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let advertise = membership.advertise.unwrap_or_else(|| addr.to_string());
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // The admin credential of an earlier start (the cluster secret is checked as it is read).
    bootstrap::check_private(&data_dir.join(bootstrap::ADMIN_CREDENTIALS_FILE))?;

    let single = membership.peers.is_empty() && membership.join.is_none();
    let secret_path = match &security.cluster_secret_file {
        Some(p) => p.clone(),
        None if single || membership.join.is_some() => {
            data_dir.join(bootstrap::CLUSTER_SECRET_FILE)
        }
        None => anyhow::bail!(
            "--peer needs --cluster-secret-file: the same secret on every server (make one \
             with `(umask 077; head -c 32 /dev/urandom | base64 > cluster.secret)`)"
        ),
    };
    if let Some((via, token)) = &membership.join
        && !secret_path.exists()
    {
        fetch_cluster_secret(via, token, &secret_path).await?;
    }
    let cluster_secret = bootstrap::cluster_secret(&secret_path, single)?;
    let tls = match (&security.tls_cert, &security.tls_key) {
        (Some(cert), Some(key)) => Some(
            Tls::from_files(cert, key, security.tls_ca.as_deref())
                .context("loading --tls-cert/--tls-key")?,
        ),
        _ if security.tls => Some(
            Tls::from_cluster_secret(
                &cluster_secret,
                &certificate_names(addr, &advertise, &security.tls_sans),
            )
            .context("making the server certificate")?,
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let keyring = Keyring::new(cluster_secret);
    let peers = PeerAccess {
        transport: Transport::new(&tls.as_ref().map_or(Trust::PlainHttp, Tls::trust))
            .context("setting up the peer transport")?,
        credentials: keyring.peer_credentials(membership.node_id),
        scheme,
    };

    let mut options = NodeOptions::single(&data_dir, advertise.clone(), peers);
    options.id = membership.node_id;
    if !membership.peers.is_empty() {
        options.initial_members = membership.peers.into_iter().collect();
        if options.initial_members.get(&options.id) != Some(&advertise) {
            anyhow::bail!(
                "--peer must list this server too, as {}={advertise}",
                options.id
            );
        }
    } else if membership.join.is_some() {
        // A joining server forms nothing: the leader adds it.
        options.initial_members.clear();
    } else {
        options.initial_members = [(options.id, advertise)].into_iter().collect();
    }
    options.state.history_versions = tuning.history_versions;
    options.snapshot_every = tuning.snapshot_every;
    options.timing = berth_raft::Timing {
        heartbeat: Duration::from_millis(tuning.raft_heartbeat_ms),
        election_timeout: Duration::from_millis(tuning.raft_election_timeout_ms),
        write_timeout: Duration::from_millis(tuning.write_timeout_ms),
    };
    let node = Node::open(options)
        .await
        .with_context(|| format!("opening the state in {}", data_dir.display()))?;
    let config = ServerConfig {
        account_id,
        stopped_task_retention: Duration::from_secs(tuning.stopped_task_retention),
        heartbeat_timeout: Duration::from_secs(tuning.agent_heartbeat_timeout),
        agent_lost_after: Duration::from_secs(tuning.agent_lost_after),
        mesos_cluster: tuning.mesos_cluster.clone(),
        mesos_offer_timeout: tuning.mesos_offer_timeout.map(Duration::from_secs),
        mesos_resubscribe_grace: Duration::from_secs(tuning.mesos_resubscribe_grace),
        linearizable_reads: tuning.linearizable_reads,
        ..ServerConfig::default()
    };
    let app = App::new(node.clone(), config, keyring, tls.clone());
    berth_server::background::spawn_background(&app);
    observe
        .serve_metrics(app.metrics.registry(), {
            let app = app.clone();
            async move { app.stopping().await }
        })
        .await?;
    // Listen for signals before announcing readiness, so a stop right after the ready line is
    // still a graceful one.
    let signal = shutdown_signal()?;
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = {
        let app = app.clone();
        async move {
            signal.await;
            // A leader of several voters hands its office on first, so the group does not
            // wait out an election timeout; the API keeps serving (and forwarding) meanwhile.
            match app.node.hand_off(HAND_OFF_WITHIN).await {
                None => {}
                Some(Ok(done)) => {
                    tracing::info!(to = done.leader, "handed leadership over before stopping")
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "stopping without a leadership hand-off")
                }
            }
            app.begin_shutdown();
            let _ = stop_agent.send(());
        }
    };
    let server_tls = tls.as_ref().map(|t| t.server.clone());
    if let Some(mesos) = tuning.mesos_listen {
        let listener = tokio::net::TcpListener::bind(mesos)
            .await
            .with_context(|| format!("binding {mesos} (--mesos-listen)"))?;
        tracing::info!(address = %listener.local_addr()?, "serving the Mesos scheduler API");
        let app = app.clone();
        let server_tls = server_tls.clone();
        tokio::spawn(async move {
            let stopping = app.clone();
            berth_server::serve::serve(listener, router(app), server_tls, async move {
                stopping.stopping().await
            })
            .await;
        });
    }
    // Serve first: peers elect a leader through these very endpoints. Until the admin
    // credential is on disk, everything but the Raft RPCs waits.
    let server = tokio::spawn(berth_server::serve::serve(
        listener,
        router(app.clone()),
        server_tls,
        shutdown,
    ));
    if let Some((via, _)) = &membership.join {
        let via = via.split_once("://").map_or(via.as_str(), |(_, rest)| rest);
        let via = via.trim_end_matches('/');
        let members = node
            .join(via)
            .await
            .with_context(|| format!("joining the cluster through {via}"))?;
        tracing::info!(?members, "joined the cluster as a voter");
    }
    node.ready(Duration::from_secs(60))
        .await
        .context("waiting for a Raft leader")?;
    let credentials_path = bootstrap::bootstrap(&app, &data_dir)
        .await
        .context("bootstrapping the admin credential")?;
    let ca_path = data_dir.join("ca.pem");
    if let Some(tls) = &tls {
        bootstrap::write_private(&ca_path, tls.ca_pem().as_bytes())
            .with_context(|| format!("writing {}", ca_path.display()))?;
    }
    let endpoint = format!("{scheme}://{addr}");
    if let Some(dns) = dev {
        bootstrap::ensure_default_cluster(&app)
            .await
            .context("creating the default cluster")?;
        let token = berth_server::credentials::issue_agent_token(&app, "default", "system/dev")
            .await
            .context("making a join token for the dev agent")?;
        let mut config = AgentConfig::new(endpoint.clone(), data_dir.join("agent"));
        // The ports ECS's agent reserves, and this server's own: a task must not be placed
        // on a port that is already taken here.
        config.reserved_ports.push(addr.port());
        config.token = Some(token);
        config.dns_listen = dns.0;
        let agent = Agent::start(config)
            .await
            .context("starting the dev agent")?;
        // One scrape of the dev server shows its agent too.
        app.metrics.include(agent.metrics.clone());
        print_welcome(
            &endpoint,
            &data_dir,
            credentials_path.as_deref(),
            tls.as_ref().map(|_| ca_path.as_path()),
            &agent,
        );
        // Stop polling when the server stops; its containers keep running.
        tokio::spawn(async move {
            let _ = agent_stopped.await;
            agent.shutdown();
        });
    } else {
        // One machine-readable line on stdout, so scripts (and tests) using `--listen :0`
        // learn the port; then where the admin credential is.
        println!("berth server listening on {endpoint}");
        match &credentials_path {
            Some(path) => println!("admin credentials: {}", path.display()),
            None => println!("admin credentials: none (the bootstrap admin was deleted)"),
        }
        if tls.is_some() {
            println!("CA certificate: {}", ca_path.display());
        }
    }
    tokio::select! {
        served = server => served.context("the HTTP server task")?,
        why = node.stopped() => {
            app.begin_shutdown();
            anyhow::bail!(
                "the Raft core stopped ({why}); exiting so that this server is restarted once \
                 the cause is fixed (its log on disk is intact)"
            );
        }
    }
    node.shutdown().await;
    Ok(())
}

/// Longest a stopping leader spends handing leadership over before it stops anyway.
const HAND_OFF_WITHIN: Duration = Duration::from_secs(3);

/// Exchanges a server join token at `via` for the cluster secret, written to `path` (0600).
/// A token that pins the cluster CA is checked against the server's certificate.
async fn fetch_cluster_secret(via: &str, token: &str, path: &std::path::Path) -> Result<()> {
    let token = berth_auth::JoinToken::parse(token).context("--join-token")?;
    let trust = token.ca_sha256.map_or(Trust::PlainHttp, Trust::Pinned);
    let client = berth_client::Client::new(
        Transport::new(&trust)?,
        via,
        &berth_client::Credentials {
            access_key_id: token.id.clone(),
            secret: token.secret.clone(),
        },
        "us-east-1",
        "berth",
    );
    let answer = client
        .send(
            "POST",
            berth_server::credentials::SERVER_JOIN_PATH,
            &[],
            bytes::Bytes::new(),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| format!("asking {via} for the cluster secret"))?;
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let Some(secret) = body["clusterSecret"]
        .as_str()
        .filter(|_| answer.status == 200)
    else {
        anyhow::bail!(
            "{via} did not hand out the cluster secret ({}): {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    };
    bootstrap::write_private(path, format!("{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

async fn run_agent(a: AgentArgs) -> Result<()> {
    let mut config = AgentConfig::new("", a.data_dir);
    config.servers = a.servers;
    config.cluster = a.cluster;
    config.attributes = a.attributes;
    config.capacity_provider = a.capacity_provider;
    config.runtime = a.runtime;
    config.dns_listen = a.dns_listen.0;
    config.token = a
        .token
        .as_deref()
        .map(JoinToken::parse)
        .transpose()
        .context("--token")?;
    config.ca_pem = a
        .ca_file
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    // Serve logs on the address the server reaches this host at, never on every interface
    // unless asked to.
    config.listen = match a.listen {
        Some(listen) => listen,
        None => {
            let ip = a
                .advertise
                .as_deref()
                .and_then(|adv| adv.rsplit_once(':').map_or(Some(adv), |(h, _)| Some(h)))
                .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
                .or_else(|| config.servers.first().and_then(|s| towards(s)))
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            SocketAddr::new(ip, 51678)
        }
    };
    config.advertise = a.advertise;
    config.availability_zone = a.availability_zone;
    config.cpu = a.cpu;
    config.memory_mib = a.memory;
    config.reserved_memory_mib = a.reserved_memory;
    config.poll_wait = Duration::from_secs(a.poll_wait.max(1));
    config.cleanup_wait = Duration::from_secs(a.cleanup_wait);
    if config.advertise.is_none() && config.listen.ip().is_unspecified() {
        config.advertise = config
            .servers
            .first()
            .and_then(|s| towards(s))
            .map(|ip| format!("{ip}:{}", config.listen.port()));
    }
    let shutdown = shutdown_signal()?;
    let agent = Agent::start(config).await.context("starting the agent")?;
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(agent.metrics.clone()));
    a.observe
        .serve_metrics(std::sync::Arc::new(registry), std::future::pending())
        .await?;
    match &agent.docker {
        Ok(version) => println!(
            "berth agent registered as {} ({version})",
            agent.instance_arn
        ),
        Err(why) => println!(
            "berth agent registered as {} (Docker is unavailable: {}; tasks run as {} tasks)",
            agent.instance_arn,
            docker_cause(why),
            agent.default_runtime.as_str()
        ),
    }
    tokio::select! {
        result = agent.wait() => result.context("the agent stopped")?,
        () = shutdown => {}
    }
    Ok(())
}

/// Why the agent has no Docker, without the agent's own "Docker is unavailable: " (the
/// lines printing it say so themselves).
fn docker_cause(why: &berth_agent::DockerUnavailable) -> String {
    let why = why.to_string();
    match why.strip_prefix("Docker is unavailable: ") {
        Some(cause) => cause.to_owned(),
        None => why,
    }
}

/// This host's address on the route towards `server` (a URL), for an agent listening on all
/// interfaces to advertise.
fn towards(server: &str) -> Option<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let hostport = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()?;
    let target = hostport.to_socket_addrs().ok()?.next()?;
    let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

fn print_welcome(
    endpoint: &str,
    data_dir: &std::path::Path,
    credentials: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
    agent: &Agent,
) {
    let Some(credentials) = credentials else {
        println!(
            "berth dev is running at {endpoint} (state in {}); its bootstrap admin credential was \
             deleted, so sign with a credential of your own.",
            data_dir.display()
        );
        return;
    };
    let runtime = match &agent.docker {
        Ok(version) => format!("{version}: tasks run as Docker containers"),
        Err(why) => format!(
            "Docker is unavailable ({}).\n{:17}Tasks run as host processes (the process runtime)",
            docker_cause(why),
            ""
        ),
    };
    let dns = agent.dns.map_or_else(
        || "off (--dns-listen)".to_owned(),
        |at| {
            format!(
                "{at}  (service discovery: dig @{} -p {} SRV NAME)",
                at.ip(),
                at.port()
            )
        },
    );
    let credentials = std::fs::canonicalize(credentials).unwrap_or_else(|_| credentials.to_owned());
    let ca_line = ca.map_or_else(String::new, |ca| {
        let ca = std::fs::canonicalize(ca).unwrap_or_else(|_| ca.to_owned());
        format!("  export AWS_CA_BUNDLE={}\n", ca.display())
    });
    println!(
        "berth dev is running.

  ECS endpoint:  {endpoint}
  web UI:        {endpoint}/ui  (sign in with the admin key's id and secret)
  state:         {}  (delete it to start afresh)
  admin key:     {}  (AWS credentials file)
  agent:         {}
  runtime:       {runtime}
  DNS:           {dns}

Try it with the AWS CLI, signed with the admin credential berth made at its first start:

  export AWS_SHARED_CREDENTIALS_FILE={} AWS_DEFAULT_REGION=us-east-1
{ca_line}  aws ecs list-clusters --endpoint-url {endpoint}
  aws ecs register-task-definition --endpoint-url {endpoint} \\
      --family hello --container-definitions '[{{\"name\":\"hello\",\"image\":\"busybox\",\"memory\":64,\"command\":[\"echo\",\"hi\"],\"dockerLabels\":{{\"berth.runtime\":\"process\"}}}}]'
  aws ecs run-task --endpoint-url {endpoint} --task-definition hello

The task runs `echo hi` as a host process (the docker label berth.runtime=process); drop the
label to run it as a Docker container. Its output: berth logs TASK_ID. Everything at a glance:
berth status --endpoint-url {endpoint}
Stopping berth dev leaves running containers alone; the next start re-attaches to them.

Press Ctrl-C to stop.",
        data_dir.display(),
        credentials.display(),
        agent.instance_arn,
        credentials.display(),
    );
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
