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
    #[command(flatten)]
    tuning: Tuning,
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
            Cmd::Server(a) => serve(a.listen, a.data_dir, a.account_id, a.tuning, false).await,
            Cmd::Dev(a) => serve(a.listen, a.data_dir, "000000000000".into(), a.tuning, true).await,
        }
    })
}

async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    account_id: String,
    tuning: Tuning,
    dev: bool,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let mut options = NodeOptions::single(&data_dir, addr.to_string());
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
    if dev {
        dev_setup(&node).await?;
        print_welcome(addr, &data_dir);
    } else {
        // One machine-readable line on stdout, so scripts (and tests) using `--listen :0`
        // learn the port.
        println!("berth server listening on http://{addr}");
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
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

Press Ctrl-C to stop.",
        data_dir.display()
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
