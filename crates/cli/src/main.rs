//! The `berth` binary: `berth server`, `berth dev`.
//!
//! A thin shell over the library crates: parse flags, open the Raft node, serve HTTP, stop on
//! Ctrl-C or SIGTERM. Errors are printed with their whole chain and map to exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_model::Command;
use berth_raft::{Node, NodeOptions};
use berth_server::{App, Housekeeping, ServerConfig, router};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted cluster manager with the Amazon ECS API"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a control-plane server.
    Server(ServerArgs),
    /// Run everything a newcomer needs in one process: a single-node server with local state.
    Dev(DevArgs),
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
        ..ServerConfig::default()
    };
    let app = App::new(node.clone(), config);
    Housekeeping::spawn(app.clone());
    // Listen for signals before announcing readiness, so a stop right after the ready line is
    // still a graceful one.
    let shutdown = shutdown_signal()?;
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
        print_welcome(addr, &data_dir);
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

/// Dev mode starts with the `default` cluster so the first command a newcomer types works.
async fn dev_setup(node: &Arc<Node>) -> Result<()> {
    if node.state().cluster("default").is_none() {
        let written = node
            .write(Command::CreateCluster {
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

fn print_welcome(addr: SocketAddr, data_dir: &std::path::Path) {
    println!(
        "berth dev is running.

  ECS endpoint:  http://{addr}
  state:         {}  (delete it to start afresh)

Try it with the AWS CLI (any credentials will do):

  export AWS_ACCESS_KEY_ID=berth AWS_SECRET_ACCESS_KEY=berth AWS_DEFAULT_REGION=us-east-1
  aws ecs list-clusters --endpoint-url http://{addr}
  aws ecs register-task-definition --endpoint-url http://{addr} \\
      --family hello --container-definitions '[{{\"name\":\"hello\",\"image\":\"busybox\",\"memory\":64,\"command\":[\"echo\",\"hi\"]}}]'

No agent runs in dev mode yet: tasks are placed on registered container instances and stay
PENDING until an agent reports on them (SubmitTaskStateChange).

Press Ctrl-C to stop.",
        data_dir.display()
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
