//! `berth-agent-bench`: what berth adds on top of Docker, measured against a running
//! `berth server` and `berth agent` on the same Docker Engine.
//!
//! ```text
//!  latency  × N, interleaved:  RunTask → (DescribeTasks every 5 ms) → RUNNING   then StopTask
//!                              `docker run -d IMAGE sleep 3600` → exits 0      then docker rm -f
//!  memory   run --rss-tasks tasks, wait until all RUNNING, read the agent's VmRSS
//! ```
//! Both sides start the same image with the same command on the same engine, one at a time,
//! alternating, so that drift in the engine's speed affects both equally. Figures are medians.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_load::{Access, Conn};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(about = "RunTask → RUNNING through berth versus a plain docker run, and agent memory")]
struct Args {
    /// The server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8642")]
    addr: SocketAddr,
    #[command(flatten)]
    access: Access,
    /// The cluster the agent joined.
    #[arg(long, default_value = "default")]
    cluster: String,
    #[arg(long, default_value = "berth-test/busybox:latest")]
    image: String,
    /// Starts measured on each side.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// The agent's pid, to read its memory with this many tasks running (0: skip).
    #[arg(long, default_value_t = 0)]
    agent_pid: u32,
    #[arg(long, default_value_t = 50)]
    rss_tasks: usize,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("running docker")?;
    if !out.status.success() {
        bail!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn statuses(c: &mut Conn, cluster: &str, arns: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for chunk in arns.chunks(100) {
        let v = c
            .call_json("DescribeTasks", json!({"cluster": cluster, "tasks": chunk}))
            .await?;
        for t in v["tasks"].as_array().into_iter().flatten() {
            out.push(t["lastStatus"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(out)
}

async fn run_tasks(c: &mut Conn, cluster: &str, count: usize) -> Result<Vec<String>> {
    let v = c
        .call_json(
            "RunTask",
            json!({"cluster": cluster, "taskDefinition": "agent-bench", "count": count}),
        )
        .await?;
    if let Some(f) = v["failures"].as_array().filter(|f| !f.is_empty()) {
        bail!("RunTask failures: {f:?}");
    }
    Ok(v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["taskArn"].as_str().map(str::to_owned))
        .collect())
}

/// Waits until every task is RUNNING; fails if one stops.
async fn until_running(c: &mut Conn, cluster: &str, arns: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = statuses(c, cluster, arns).await?;
        if s.iter().any(|s| s == "STOPPED") {
            bail!("a task stopped instead of running");
        }
        if s.len() == arns.len() && s.iter().all(|s| s == "RUNNING") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("tasks not RUNNING after 120 s: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn stop_all(c: &mut Conn, cluster: &str, arns: &[String]) -> Result<()> {
    for arn in arns {
        c.call_json("StopTask", json!({"cluster": cluster, "task": arn}))
            .await?;
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut c = Conn::open(&args.access.endpoint(args.addr)?).await?;
    c.call_json(
        "RegisterTaskDefinition",
        json!({
            "family": "agent-bench",
            "containerDefinitions": [{"name": "sleeper", "image": args.image, "memory": 8,
                                      "command": ["sleep", "3600"], "stopTimeout": 1}]
        }),
    )
    .await?;

    let mut berth = Vec::new();
    let mut plain = Vec::new();
    for i in 0..args.samples {
        let t = Instant::now();
        let arns = run_tasks(&mut c, &args.cluster, 1).await?;
        until_running(&mut c, &args.cluster, &arns).await?;
        berth.push(t.elapsed().as_secs_f64() * 1000.0);
        stop_all(&mut c, &args.cluster, &arns).await?;

        let name = format!("berth-bench-plain-{i}");
        let t = Instant::now();
        docker(&["run", "-d", "--name", &name, &args.image, "sleep", "3600"])?;
        plain.push(t.elapsed().as_secs_f64() * 1000.0);
        docker(&["rm", "-f", &name])?;
        // Let the stopped task's container go before the next sample.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let b = median(&mut berth);
    let d = median(&mut plain);
    let budget = d * 1.2 + 100.0;
    println!(
        "RunTask→RUNNING median {b:.1} ms; docker run -d median {d:.1} ms; overhead {:.1} ms ({:+.1}%); target ≤ {budget:.1} ms: {}",
        b - d,
        (b / d - 1.0) * 100.0,
        if b <= budget { "met" } else { "missed" }
    );
    println!("  berth samples (ms, sorted): {berth:.0?}");
    println!("  docker samples (ms, sorted): {plain:.0?}");

    if args.agent_pid != 0 {
        let before = rss_kib(args.agent_pid)?;
        let mut arns = Vec::new();
        while arns.len() < args.rss_tasks {
            let n = (args.rss_tasks - arns.len()).min(10);
            arns.extend(run_tasks(&mut c, &args.cluster, n).await?);
        }
        until_running(&mut c, &args.cluster, &arns).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let with = rss_kib(args.agent_pid)?;
        println!(
            "agent RSS: {:.1} MiB idle, {:.1} MiB with {} tasks RUNNING (target ≤ 20 MB)",
            before as f64 / 1024.0,
            with as f64 / 1024.0,
            arns.len()
        );
        stop_all(&mut c, &args.cluster, &arns).await?;
    }
    Ok(())
}
