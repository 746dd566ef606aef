//! The operator's CLI: the nouns and verbs a person running berth reaches for (`status`,
//! `task ls`, `service update --wait`, `history`, `explain`, `watch`), as a client of the ECS
//! API (through the official `aws-sdk-ecs` crate, so berth is driven by the same client code
//! as every SDK user) and of berth's native API for what ECS has no operation for.
//!
//! ```text
//!  clap args ─► fetch (connect.rs clients) ─► views (one struct per noun, Serialize)
//!                                                 ├─ --output table: render_* (pure)
//!                                                 └─ --output json|yaml: the views as they are
//! ```
//! Rendering is pure (data in, string out) and snapshot-tested; the waits' decisions
//! (`task::running`, `rollout::Rollout`) are pure too, and only polling is left to the shell.
//! Scripts tell outcomes apart by exit code ([`output::EXIT_CODES`]).

/// The exit codes, as a literal so that `concat!` can append them to a command's examples.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  the request failed (refused, not found, unreachable server, bad credential)
  2  usage error (unknown flag, missing argument)
  3  --wait ended in failure: a task stopped or could not be placed, a deployment failed
     (circuit breaker)
  4  --wait timed out (--timeout)"
    };
}

mod cluster;
mod connect;
mod explain;
mod history;
mod instance;
pub(crate) mod listing;
pub(crate) mod output;
mod rollout;
mod schedule;
mod service;
mod status;
mod task;
mod taskdef;
mod watch;

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::admin::Connection;
pub use output::EXIT_CODES;

/// The operator's commands.
#[derive(Subcommand)]
pub enum OpsCmd {
    /// Everything at a glance: clusters, instances with capacity used and free, tasks by
    /// state, services by health.
    Status(status::StatusArgs),
    /// Clusters: ls, describe, create, delete.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Container instances: ls, describe.
    #[command(subcommand)]
    Instance(instance::InstanceCmd),
    /// Tasks: ls, describe, explain (where a queued one stands; start them with `berth run`,
    /// stop them with `berth stop`).
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// Services: ls, describe, create, update, scale, delete (with --wait to follow the
    /// rollout).
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Task definitions: ls, describe, register.
    #[command(subcommand)]
    Taskdef(taskdef::TaskdefCmd),
    /// Start tasks of a task definition (RunTask); --wait until they run.
    Run(task::RunArgs),
    /// Stop tasks (StopTask); --wait until they have stopped.
    Stop(task::StopArgs),
    /// Every retained version of a resource: who changed it, when, and what changed.
    History(history::HistoryArgs),
    /// Where RunTask would place tasks, and why every other instance was passed over or
    /// rejected (a dry run: nothing is started).
    Explain(explain::ExplainArgs),
    /// Changes to the cluster state as they happen.
    Watch(watch::WatchArgs),
    /// Schedule expressions (EventBridge Scheduler's cron, rate and at): preview when one
    /// runs.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  berth completions bash > /etc/bash_completion.d/berth
  berth completions zsh > \"${fpath[1]}/_berth\"")]
    Completions { shell: clap_complete::Shell },
}

/// How every operator's command connects and prints.
#[derive(Args)]
pub struct Common {
    #[command(flatten)]
    connection: Connection,
    /// table for people; json or yaml for scripts.
    #[arg(long, short, value_enum, default_value_t = output::Format::Table)]
    output: output::Format,
}

impl Common {
    fn clients(&self) -> Result<connect::Clients> {
        connect::Clients::new(&self.connection)
    }
}

/// `--cluster`, as ECS defaults it.
#[derive(Args)]
pub struct ClusterArg {
    /// The cluster's name or ARN.
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    cluster: String,
}

/// `--wait` and how long to.
#[derive(Args)]
pub struct WaitArgs {
    /// Wait until it is done, showing progress; exit 3 if it fails, 4 on --timeout.
    #[arg(long)]
    wait: bool,
    /// Seconds to wait at most.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", requires = "wait")]
    timeout: u64,
}

/// Runs an operator's command; `command` builds the whole CLI (for completions).
pub async fn run(cmd: OpsCmd, command: impl FnOnce() -> clap::Command) -> Result<()> {
    let result = match cmd {
        OpsCmd::Status(a) => status::run(a).await,
        OpsCmd::Cluster(c) => cluster::run(c).await,
        OpsCmd::Instance(c) => instance::run(c).await,
        OpsCmd::Task(c) => task::run(c).await,
        OpsCmd::Service(c) => service::run(c).await,
        OpsCmd::Taskdef(c) => taskdef::run(c).await,
        OpsCmd::Run(a) => task::run_task(a).await,
        OpsCmd::Stop(a) => task::stop_tasks(a).await,
        OpsCmd::History(a) => history::run(a).await,
        OpsCmd::Explain(a) => explain::run(a).await,
        OpsCmd::Watch(a) => watch::run(a).await,
        OpsCmd::Schedule(c) => schedule::run(c).await,
        OpsCmd::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "berth", &mut std::io::stdout());
            Ok(())
        }
    };
    // A wait's outcome has an exit code of its own, so a script can tell "the deployment
    // failed" from "the request failed" (1).
    if let Err(e) = &result {
        let _ = std::io::stdout().flush();
        match e.downcast_ref::<output::Exit>() {
            Some(exit) => {
                eprintln!("berth: {exit}");
                std::process::exit(exit.code());
            }
            None => {
                eprintln!("berth: {}", describe_error(e));
                std::process::exit(1);
            }
        }
    }
    result
}

/// An error's chain in one line, without the SDK's generic layers ("service error",
/// "dispatch failure") and the repeats they bring, plus a hint where the server was not
/// reached.
fn describe_error(e: &anyhow::Error) -> String {
    const GENERIC: [&str; 3] = ["service error", "dispatch failure", "io error"];
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain().map(ToString::to_string) {
        // A layer that quotes its cause already says it.
        let said = parts.last().is_some_and(|last| last.ends_with(&cause));
        if !GENERIC.contains(&cause.as_str()) && !said {
            parts.push(cause);
        }
    }
    let mut line = parts.join(": ");
    if line.contains("(Connect)") || line.contains("Connection refused") {
        line.push_str(" (is a berth server at --endpoint-url / BERTH_ENDPOINT?)");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::describe_error;

    #[test]
    fn an_sdk_error_reads_as_its_exception_once() {
        let e = anyhow::anyhow!("ClusterNotFoundException: Cluster not found: x")
            .context("ClusterNotFoundException: Cluster not found: x")
            .context("service error");
        assert_eq!(
            describe_error(&e),
            "ClusterNotFoundException: Cluster not found: x"
        );
        let e = anyhow::anyhow!("Connection refused (os error 111)")
            .context("client error (Connect)")
            .context("io error")
            .context("dispatch failure");
        assert_eq!(
            describe_error(&e),
            "client error (Connect): Connection refused (os error 111) (is a berth server at \
             --endpoint-url / BERTH_ENDPOINT?)"
        );
    }
}
