//! `berth-load`: drives a running berth server's ECS API with many concurrent clients and
//! reports throughput and latency percentiles.
//!
//! ```text
//!  setup: cluster "bench", task definition "bench" (cpu 1, memory 6), N big container instances
//!  phase: C clients, each one keep-alive HTTP/1.1 connection, request → wait → next request
//!         warm-up W s (not counted), then D s measured: count, errors, req/s, p50/p90/p99/max
//! ```
//! Requests are raw AWS JSON 1.1 over hyper, each SigV4-signed with `--credentials-file` (the
//! server's `<data-dir>/admin.credentials`) as the AWS SDKs sign them; with `--ca-file` (the
//! server's `<data-dir>/ca.pem`) they go over TLS. On one machine the client takes CPU from the
//! server it measures (signing is ~9 µs a request), so each phase reports its share
//! (`cli cpu`, of one core), with `--server-pid` the server's in the same window (`srv cpu`),
//! and every process's on the machine (`all cpu`, up to 100 % × cores), which tells whether
//! something else competed for the cores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_load::{Access, Conn, Endpoint, machine_cpu_s, proc_stats};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Load harness for berth's ECS API")]
struct Args {
    /// The server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8642")]
    addr: SocketAddr,
    #[command(flatten)]
    access: Access,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unmeasured warm-up seconds per phase.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Container instances to register.
    #[arg(long, default_value_t = 10)]
    instances: usize,
    /// Client runtime threads (keep low: the server shares the machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Phases to run, in order.
    #[arg(long, value_delimiter = ',', default_values_t = [Phase::RunTask, Phase::DescribeTasks])]
    phases: Vec<Phase>,
    /// Print results as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// The server's pid, to report the CPU it used in each measured window (when it runs on
    /// this machine).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Phase {
    /// RunTask, count 1: each request is one durable placement commit.
    RunTask,
    /// DescribeTasks of one existing task: a pure read.
    DescribeTasks,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::RunTask => "run-task",
            Phase::DescribeTasks => "describe-tasks",
        })
    }
}

async fn setup(endpoint: &Endpoint, instances: usize) -> Result<()> {
    let mut c = Conn::open(endpoint).await?;
    c.call_json("CreateCluster", json!({"clusterName": "bench"}))
        .await?;
    c.call_json(
        "RegisterTaskDefinition",
        json!({
            "family": "bench",
            "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 1, "memory": 6,
                                      "essential": true}]
        }),
    )
    .await?;
    let existing = c
        .call_json("ListContainerInstances", json!({"cluster": "bench"}))
        .await?;
    let have = existing["containerInstanceArns"]
        .as_array()
        .map_or(0, |a| a.len());
    for i in have..instances {
        c.call_json(
            "RegisterContainerInstance",
            json!({
                "cluster": "bench",
                "totalResources": [
                    {"name": "CPU", "type": "INTEGER", "integerValue": i32::MAX},
                    {"name": "MEMORY", "type": "INTEGER", "integerValue": i32::MAX}
                ],
                "instanceIdentityDocument": json!({
                    "instanceId": format!("i-bench{i:04}"),
                    "availabilityZone": format!("us-east-1{}", ['a', 'b', 'c'][i % 3]),
                    "instanceType": "m5.24xlarge",
                }).to_string(),
            }),
        )
        .await?;
    }
    Ok(())
}

/// Task ARNs for the read phase: run some tasks if the cluster has few.
async fn sample_tasks(endpoint: &Endpoint, want: usize) -> Result<Vec<String>> {
    let mut c = Conn::open(endpoint).await?;
    let mut arns: Vec<String> = Vec::new();
    let listed = c
        .call_json("ListTasks", json!({"cluster": "bench", "maxResults": 100}))
        .await?;
    for a in listed["taskArns"].as_array().into_iter().flatten() {
        arns.extend(a.as_str().map(str::to_owned));
    }
    while arns.len() < want {
        let out = c
            .call_json(
                "RunTask",
                json!({"cluster": "bench", "taskDefinition": "bench", "count": 10}),
            )
            .await?;
        for t in out["tasks"].as_array().into_iter().flatten() {
            arns.extend(t["taskArn"].as_str().map(str::to_owned));
        }
    }
    Ok(arns)
}

struct Outcome {
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn client(
    endpoint: Endpoint,
    phase: Phase,
    tasks: Arc<Vec<String>>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Result<Outcome> {
    let mut conn = Conn::open(&endpoint).await?;
    let mut out = Outcome {
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let run_body =
        Bytes::from(json!({"cluster": "bench", "taskDefinition": "bench", "count": 1}).to_string());
    let mut rng = seed;
    while !stop.load(Ordering::Relaxed) {
        let (op, body) = match phase {
            Phase::RunTask => ("RunTask", run_body.clone()),
            Phase::DescribeTasks => {
                // xorshift: cheap and good enough to spread reads over the sample
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let arn = &tasks[(rng % tasks.len() as u64) as usize];
                (
                    "DescribeTasks",
                    Bytes::from(json!({"cluster": "bench", "tasks": [arn]}).to_string()),
                )
            }
        };
        let started = Instant::now();
        let result = conn.call(op, body).await;
        let micros = started.elapsed().as_micros() as u64;
        let good = match &result {
            Ok((200, body)) => match phase {
                // A placement that succeeded names exactly one task and no failure.
                Phase::RunTask => memchr(body, b"\"taskArn\"") && memchr(body, b"\"failures\":[]"),
                Phase::DescribeTasks => memchr(body, b"\"taskArn\""),
            },
            _ => false,
        };
        let failed = result.is_err();
        if measuring.load(Ordering::Relaxed) {
            if good {
                out.ok += 1;
                out.histogram.record(micros.max(1))?;
            } else {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(match result {
                        Ok((s, b)) => format!("HTTP {s}: {}", String::from_utf8_lossy(&b)),
                        Err(e) => e.to_string(),
                    });
                }
            }
        }
        if failed {
            conn = Conn::open(&endpoint).await?;
        }
    }
    Ok(out)
}

fn memchr(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn run_phase(
    args: &Args,
    endpoint: &Endpoint,
    phase: Phase,
    tasks: Arc<Vec<String>>,
) -> Result<Value> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..args.clients {
        handles.push(tokio::spawn(client(
            endpoint.clone(),
            phase,
            tasks.clone(),
            measuring.clone(),
            stop.clone(),
            0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let cpu = || {
        (
            proc_stats(std::process::id()).map(|s| s.cpu_s),
            args.server_pid.and_then(proc_stats).map(|s| s.cpu_s),
            machine_cpu_s(),
        )
    };
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let (client0, server0, machine0) = cpu();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let (client1, server1, machine1) = cpu();
    let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    stop.store(true, Ordering::Relaxed);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for h in handles {
        let o = h.await??;
        histogram.add(&o.histogram)?;
        ok += o.ok;
        errors += o.errors;
        first_error = first_error.or(o.first_error);
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "phase": phase.to_string(),
        "clients": args.clients,
        "seconds": elapsed,
        "ok": ok,
        "errors": errors,
        "per_second": ok as f64 / elapsed,
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": histogram.max() as f64 / 1000.0,
        "client_cpu_s": used(client0, client1),
        "server_cpu_s": used(server0, server1),
        "machine_cpu_s": used(machine0, machine1),
        "first_error": first_error,
    }))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let endpoint = args.access.endpoint(args.addr)?;
        setup(&endpoint, args.instances).await?;
        let tasks = Arc::new(if args.phases.contains(&Phase::DescribeTasks) {
            sample_tasks(&endpoint, 1000).await?
        } else {
            Vec::new()
        });
        if !args.json {
            println!(
                "{:<15} {:>7} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "phase",
                "clients",
                "ok",
                "errors",
                "req/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "cli cpu",
                "srv cpu",
                "all cpu"
            );
        }
        for phase in &args.phases {
            let r = run_phase(&args, &endpoint, *phase, tasks.clone()).await?;
            if args.json {
                println!("{r}");
            } else {
                // CPU as a share of one core over the measured window.
                let share = |key: &str| {
                    r[key].as_f64().map_or("-".to_owned(), |s| {
                        format!("{:.0}%", s / r["seconds"].as_f64().unwrap_or(1.0) * 100.0)
                    })
                };
                println!(
                    "{:<15} {:>7} {:>9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>8} {:>8}",
                    r["phase"].as_str().unwrap_or_default(),
                    args.clients,
                    r["ok"].as_u64().unwrap_or_default(),
                    r["errors"].as_u64().unwrap_or_default(),
                    r["per_second"].as_f64().unwrap_or_default(),
                    r["p50_ms"].as_f64().unwrap_or_default(),
                    r["p90_ms"].as_f64().unwrap_or_default(),
                    r["p99_ms"].as_f64().unwrap_or_default(),
                    r["max_ms"].as_f64().unwrap_or_default(),
                    share("client_cpu_s"),
                    share("server_cpu_s"),
                    share("machine_cpu_s"),
                );
                if let Some(e) = r["first_error"].as_str() {
                    println!("  first error: {e}");
                }
            }
        }
        Ok(())
    })
}
