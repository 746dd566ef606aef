//! The `berth` binary: `berth server`, `berth agent`, `berth dev`.
//!
//! A thin shell over the library crates: parse flags, open the Raft node, serve HTTP, stop on
//! Ctrl-C or SIGTERM. Errors are printed with their whole chain and map to exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_agent::runtime::RuntimeKind;
use berth_agent::{Agent, AgentConfig};
use berth_model::command::CreateCluster;
use berth_raft::{Node, NodeOptions};
use berth_server::agents::Monitor;
use berth_server::{App, Housekeeping, MesosLoop, ServerConfig, ServiceController, router};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted cluster manager with the Amazon ECS API",
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
}

#[derive(Args)]
struct AgentArgs {
    /// The server's endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8642", env = "BERTH_SERVER")]
    server: String,
    /// The cluster to join.
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    cluster: String,
    /// A custom attribute to register, as NAME=VALUE (or NAME); repeat for more.
    #[arg(long = "attribute", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    /// Directory for the agent's identity and process sandboxes.
    #[arg(long, default_value = "./berth-agent", env = "BERTH_AGENT_DATA_DIR")]
    data_dir: PathBuf,
    /// docker, process or hollow. Default: docker when the engine is reachable, else process.
    /// hollow runs nothing and runs every task (for scale tests).
    #[arg(long, value_parser = parse_runtime)]
    runtime: Option<RuntimeKind>,
    /// Where the agent serves container logs to the server.
    #[arg(long, default_value = "0.0.0.0:51678")]
    listen: SocketAddr,
    /// The address the server reaches the agent at (default: the listen address, or this
    /// host's address towards the server when listening on all interfaces).
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
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err(format!("'{s}' has no attribute name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_runtime(s: &str) -> Result<RuntimeKind, String> {
    RuntimeKind::parse(s).ok_or_else(|| format!("'{s}' is not docker, process or hollow"))
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
    /// This server's Raft node id (stable across restarts).
    #[arg(long, default_value_t = 1)]
    node_id: u64,
    /// The address other servers reach this one at (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// A voter of a new multi-server cluster, as ID=HOST:PORT; repeat for each, this server
    /// included. Without any, the server is a single-voter group.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(u64, String)>,
    #[command(flatten)]
    tuning: Tuning,
}

fn parse_peer(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not ID=HOST:PORT"))?;
    let id = id.parse().map_err(|_| format!("'{id}' is not a node id"))?;
    if addr.is_empty() {
        return Err(format!("'{s}' has no address"));
    }
    Ok((id, addr.to_owned()))
}

/// Where a server's Raft group comes from.
struct Membership {
    node_id: u64,
    advertise: Option<String>,
    peers: Vec<(u64, String)>,
}

#[derive(Args)]
struct DevArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8642", env = "BERTH_LISTEN")]
    listen: SocketAddr,
    /// Directory for local state.
    #[arg(long, default_value = "./berth-data", env = "BERTH_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    tuning: Tuning,
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
}

fn main() -> Result<()> {
    // The process runtime's shim is this binary too; it must not start a tokio runtime or
    // logging of its own, so it is dispatched before anything else.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "process-shim") {
        std::process::exit(berth_agent::runtime::process::shim_main(args.collect()));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Cmd::Server(a) => {
                let membership = Membership {
                    node_id: a.node_id,
                    advertise: a.advertise,
                    peers: a.peers,
                };
                serve(
                    a.listen,
                    a.data_dir,
                    a.account_id,
                    membership,
                    a.tuning,
                    false,
                )
                .await
            }
            Cmd::Agent(a) => run_agent(a).await,
            Cmd::Dev(a) => {
                let membership = Membership {
                    node_id: 1,
                    advertise: None,
                    peers: Vec::new(),
                };
                serve(
                    a.listen,
                    a.data_dir,
                    "000000000000".into(),
                    membership,
                    a.tuning,
                    true,
                )
                .await
            }
        }
    })
}

async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    account_id: String,
    membership: Membership,
    tuning: Tuning,
    dev: bool,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let advertise = membership.advertise.unwrap_or_else(|| addr.to_string());
    let mut options = NodeOptions::single(&data_dir, advertise.clone());
    options.id = membership.node_id;
    if !membership.peers.is_empty() {
        options.initial_members = membership.peers.into_iter().collect();
        if options.initial_members.get(&options.id) != Some(&advertise) {
            anyhow::bail!(
                "--peer must list this server too, as {}={advertise}",
                options.id
            );
        }
    } else {
        options.initial_members = [(options.id, advertise)].into_iter().collect();
    }
    options.state.history_versions = tuning.history_versions;
    options.snapshot_every = tuning.snapshot_every;
    let node = Node::open(options)
        .await
        .with_context(|| format!("opening the state in {}", data_dir.display()))?;
    let config = ServerConfig {
        account_id,
        stopped_task_retention: Duration::from_secs(tuning.stopped_task_retention),
        heartbeat_timeout: Duration::from_secs(tuning.agent_heartbeat_timeout),
        agent_lost_after: Duration::from_secs(tuning.agent_lost_after),
        mesos_cluster: tuning.mesos_cluster.clone(),
        ..ServerConfig::default()
    };
    let app = App::new(node.clone(), config);
    Housekeeping::spawn(app.clone());
    ServiceController::spawn(app.clone());
    MesosLoop::spawn(app.clone());
    Monitor::spawn(app.clone());
    // Listen for signals before announcing readiness, so a stop right after the ready line is
    // still a graceful one.
    let signal = shutdown_signal()?;
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = {
        let app = app.clone();
        async move {
            signal.await;
            app.begin_shutdown();
            let _ = stop_agent.send(());
        }
    };
    if let Some(mesos) = tuning.mesos_listen {
        let listener = tokio::net::TcpListener::bind(mesos)
            .await
            .with_context(|| format!("binding {mesos} (--mesos-listen)"))?;
        tracing::info!(address = %listener.local_addr()?, "serving the Mesos scheduler API");
        let app = app.clone();
        tokio::spawn(async move {
            let stopping = app.clone();
            let served = axum::serve(listener, router(app))
                .with_graceful_shutdown(async move { stopping.stopping().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the Mesos listener failed");
            }
        });
    }
    // Serve first: peers elect a leader through these very endpoints.
    let server = tokio::spawn(
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown)
            .into_future(),
    );
    node.ready(Duration::from_secs(60))
        .await
        .context("waiting for a Raft leader")?;
    if dev {
        dev_setup(&node).await?;
        let mut config = AgentConfig::new(format!("http://{addr}"), data_dir.join("agent"));
        config.reserved_ports.clear();
        let agent = Agent::start(config)
            .await
            .context("starting the dev agent")?;
        print_welcome(addr, &data_dir, &agent);
        // Stop polling when the server stops; its containers keep running.
        tokio::spawn(async move {
            let _ = agent_stopped.await;
            agent.shutdown();
        });
    } else {
        // One machine-readable line on stdout, so scripts (and tests) using `--listen :0`
        // learn the port.
        println!("berth server listening on http://{addr}");
    }
    server
        .await
        .context("the HTTP server task")?
        .context("serving HTTP")?;
    node.shutdown().await;
    Ok(())
}

async fn run_agent(a: AgentArgs) -> Result<()> {
    let mut config = AgentConfig::new(a.server, a.data_dir);
    config.cluster = a.cluster;
    config.attributes = a.attributes;
    config.runtime = a.runtime;
    config.listen = a.listen;
    config.advertise = a.advertise;
    config.availability_zone = a.availability_zone;
    config.cpu = a.cpu;
    config.memory_mib = a.memory;
    config.reserved_memory_mib = a.reserved_memory;
    config.poll_wait = Duration::from_secs(a.poll_wait.max(1));
    config.cleanup_wait = Duration::from_secs(a.cleanup_wait);
    if config.advertise.is_none() && config.listen.ip().is_unspecified() {
        config.advertise =
            towards(&config.server).map(|ip| format!("{ip}:{}", config.listen.port()));
    }
    let shutdown = shutdown_signal()?;
    let agent = Agent::start(config).await.context("starting the agent")?;
    match &agent.docker {
        Ok(version) => println!(
            "berth agent registered as {} ({version})",
            agent.instance_arn
        ),
        Err(why) => println!(
            "berth agent registered as {} (Docker is unavailable: {why}; tasks run as {} tasks)",
            agent.instance_arn,
            agent.default_runtime.as_str()
        ),
    }
    tokio::select! {
        result = agent.wait() => result.context("the agent stopped")?,
        () = shutdown => {}
    }
    Ok(())
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

/// Dev mode starts with the `default` cluster so the first command a newcomer types works.
async fn dev_setup(node: &Arc<Node>) -> Result<()> {
    if node.state().cluster("default").is_none() {
        let written = node
            .write(CreateCluster {
                name: "default".into(),
                settings: Vec::new(),
                configuration: None,
                service_connect_defaults: None,
                tags: Vec::new(),
            })
            .await
            .context("creating the default cluster")?;
        written
            .result
            .map_err(|e| anyhow::anyhow!("creating the default cluster: {e}"))?;
    }
    Ok(())
}

fn print_welcome(addr: SocketAddr, data_dir: &std::path::Path, agent: &Agent) {
    let runtime = match &agent.docker {
        Ok(version) => format!("{version}: tasks run as Docker containers"),
        Err(why) => format!(
            "Docker is unavailable ({why}).\n               Tasks run as host processes (the process runtime)"
        ),
    };
    println!(
        "berth dev is running.

  ECS endpoint:  http://{addr}
  state:         {}  (delete it to start afresh)
  agent:         {}
  runtime:       {runtime}

Try it with the AWS CLI (any credentials will do):

  export AWS_ACCESS_KEY_ID=berth AWS_SECRET_ACCESS_KEY=berth AWS_DEFAULT_REGION=us-east-1
  aws ecs list-clusters --endpoint-url http://{addr}
  aws ecs register-task-definition --endpoint-url http://{addr} \\
      --family hello --container-definitions '[{{\"name\":\"hello\",\"image\":\"busybox\",\"memory\":64,\"command\":[\"echo\",\"hi\"],\"dockerLabels\":{{\"berth.runtime\":\"process\"}}}}]'
  aws ecs run-task --endpoint-url http://{addr} --task-definition hello

The task runs `echo hi` as a host process (the docker label berth.runtime=process); drop the
label to run it as a Docker container. Its output: curl http://{addr}/v1/tasks/TASK_ID/logs
Stopping berth dev leaves running containers alone; the next start re-attaches to them.

Press Ctrl-C to stop.",
        data_dir.display(),
        agent.instance_arn,
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
