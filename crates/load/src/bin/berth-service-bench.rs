//! `berth-service-bench`: how fast berth's service scheduler brings many services to their
//! desired count, and rolls them all to a new revision (issue 5's benchmark).
//!
//! ```text
//!  setup   cluster, task definition `bench` (image bench:1, cpu 256, memory 128, hollow)
//!  create  CreateService svc-000 .. svc-NNN, desiredCount T, 100 % / 200 %, C calls in flight
//!          t0 = first call sent, t1 = last call answered
//!          DescribeServices (10 a call) every 100 ms until every service has runningCount ==
//!          desiredCount == T and one deployment, PRIMARY, COMPLETED          → t2
//!          cross-check: ListTasks (desiredStatus RUNNING) and DescribeClusters count S × T
//!  update  RegisterTaskDefinition bench (image bench:2); UpdateService every service to it
//!          u0 = first call sent, t3 = last call answered
//!          poll until every service has one deployment, of the new revision, COMPLETED,
//!          with runningCount == T                                              → t4
//! ```
//! It only speaks the ECS API, so it measures whatever runs the tasks; the intended set-up is
//! `berth-fleet` (hollow agents, so the figures are the control plane's) and a fresh server —
//! `scripts/bench-services.sh` starts both. With `--server-pid` / `--fleet-pid` it also
//! reports each process's CPU seconds per phase and resident set, since on a small machine
//! server, agents and this client share the same cores.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_load::{Access, Conn, ProcStats, proc_stats};
use clap::Parser;
use futures::future::join_all;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Service scheduler benchmark: create many services, then roll them all")]
struct Args {
    /// The server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8642")]
    addr: SocketAddr,
    #[command(flatten)]
    access: Access,
    /// The cluster (created if missing; the agents must have joined it).
    #[arg(long, default_value = "svc-bench")]
    cluster: String,
    #[arg(long, default_value_t = 100)]
    services: usize,
    #[arg(long, default_value_t = 100)]
    tasks_per_service: usize,
    /// Calls in flight at once (one connection each) for CreateService, UpdateService and
    /// each polling round.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Milliseconds between polling rounds.
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    /// Seconds to wait for a phase to settle before giving up.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Task definition family (its revisions are registered by the benchmark).
    #[arg(long, default_value = "bench")]
    family: String,
    /// Place with the ECS console's default: spread over availability zones, then instances.
    #[arg(long)]
    spread: bool,
    /// Skip the rolling update.
    #[arg(long)]
    no_update: bool,
    /// The server's pid: report its CPU time and memory per phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The agents' (berth-fleet's) pid: report its CPU time and memory per phase.
    #[arg(long)]
    fleet_pid: Option<u32>,
}

/// The processes whose CPU time and memory are reported.
struct Watched(Vec<(&'static str, u32)>);

impl Watched {
    fn sample(&self) -> Vec<Option<ProcStats>> {
        self.0.iter().map(|(_, pid)| proc_stats(*pid)).collect()
    }
}

/// Seconds, for reports.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn service_name(i: usize) -> String {
    format!("svc-{i:03}")
}

/// What the table and the JSON line say about one phase.
struct Phase {
    name: &'static str,
    /// First call sent → last call answered.
    calls: Duration,
    /// Last call answered → every service settled.
    settle: Duration,
    /// First call sent → every service settled.
    total: Duration,
    /// First call sent → as many tasks RUNNING as wanted (summed over services), first seen.
    tasks_running: Option<Duration>,
    /// Per-call latencies, milliseconds, sorted.
    latencies: Vec<f64>,
    tasks: usize,
    /// CPU seconds per watched process over the phase, and RSS at its end.
    cpu: Vec<(&'static str, Option<f64>, Option<f64>)>,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    fn json(&self) -> Value {
        let mut cpu = serde_json::Map::new();
        for (name, s, rss) in &self.cpu {
            cpu.insert(format!("{name}_cpu_s"), json!(s));
            cpu.insert(format!("{name}_rss_mib"), json!(rss));
        }
        json!({
            "calls_s": secs(self.calls),
            "settled_after_last_call_s": secs(self.settle),
            "total_s": secs(self.total),
            "tasks_running_s": self.tasks_running.map(secs),
            "tasks_per_s": self.tasks as f64 / secs(self.total),
            "call_p50_ms": self.percentile(0.5),
            "call_max_ms": self.percentile(1.0),
            "processes": cpu,
        })
    }
}

/// Runs `op` once per service over `conns` (each connection takes the next service when its
/// last call is answered). Returns when the first call was sent, when the last was answered,
/// and each call's latency.
async fn call_each(
    conns: &mut [Conn],
    services: usize,
    op: &str,
    body: impl Fn(usize) -> Value,
) -> Result<(Instant, Instant, Vec<f64>)> {
    let next = std::cell::Cell::new(0usize);
    let started = Instant::now();
    let body = &body;
    let next = &next;
    let results = join_all(conns.iter_mut().map(|c| async move {
        let mut latencies = Vec::new();
        let mut last = started;
        loop {
            let i = next.get();
            if i >= services {
                return Ok::<_, anyhow::Error>((last, latencies));
            }
            next.set(i + 1);
            let sent = Instant::now();
            c.call_json(op, body(i))
                .await
                .with_context(|| format!("{op} {}", service_name(i)))?;
            last = Instant::now();
            latencies.push(secs(last - sent) * 1000.0);
        }
    }))
    .await;
    let mut last = started;
    let mut latencies = Vec::new();
    for r in results {
        let (l, mut lat) = r?;
        last = last.max(l);
        latencies.append(&mut lat);
    }
    latencies.sort_by(f64::total_cmp);
    Ok((started, last, latencies))
}

/// What one polling round saw.
#[derive(Default)]
struct Round {
    settled: usize,
    running: u64,
    pending: u64,
    missing: usize,
    /// A service that is not settled, and why, for progress lines.
    example: Option<String>,
    /// Deployments without `rolloutState` (the settled test then ignores it).
    no_rollout_state: usize,
}

/// Why a service is not settled yet, for progress lines.
#[derive(Debug, thiserror::Error)]
enum Unsettled {
    /// Its counts are not at the desired count yet.
    #[error("runningCount {running}, pendingCount {pending}, desiredCount {want}")]
    Counts {
        running: u64,
        pending: Value,
        want: u64,
    },
    /// It has other than one deployment.
    #[error("{0} deployments")]
    Deployments(usize),
    /// Its one deployment is of another revision.
    #[error("deployment of {deployed}, not {revision}")]
    Revision { deployed: String, revision: String },
    /// Its one deployment is not PRIMARY.
    #[error("its one deployment is {0}")]
    Status(Value),
    /// Its one deployment has not completed its rollout.
    #[error("rolloutState {0}")]
    Rollout(String),
    /// Its one deployment is not at the desired count yet.
    #[error("deployment runningCount {0}")]
    DeploymentRunning(Value),
}

/// Is this DescribeServices entry at `desired` RUNNING tasks of `revision`, with nothing
/// else left? `Err` says why not.
fn settled(s: &Value, desired: u64, revision: &str) -> Result<(), Unsettled> {
    let running = s["runningCount"].as_u64().unwrap_or(0);
    let want = s["desiredCount"].as_u64().unwrap_or(0);
    if want != desired || running != desired {
        return Err(Unsettled::Counts {
            running,
            pending: s["pendingCount"].clone(),
            want,
        });
    }
    let deployments = s["deployments"].as_array().map_or(&[][..], Vec::as_slice);
    let [d] = deployments else {
        return Err(Unsettled::Deployments(deployments.len()));
    };
    let td = d["taskDefinition"].as_str().unwrap_or_default();
    if td != revision && !td.ends_with(&format!("/{revision}")) {
        return Err(Unsettled::Revision {
            deployed: td.to_owned(),
            revision: revision.to_owned(),
        });
    }
    if d["status"].as_str().is_some_and(|st| st != "PRIMARY") {
        return Err(Unsettled::Status(d["status"].clone()));
    }
    if let Some(state) = d["rolloutState"].as_str()
        && state != "COMPLETED"
    {
        return Err(Unsettled::Rollout(state.to_owned()));
    }
    if d["runningCount"].as_u64().is_some_and(|n| n != desired) {
        return Err(Unsettled::DeploymentRunning(d["runningCount"].clone()));
    }
    Ok(())
}

/// One DescribeServices of every service, 10 names a call, the calls spread over `conns`.
async fn poll_round(
    conns: &mut [Conn],
    cluster: &str,
    names: &[String],
    desired: u64,
    revision: &str,
) -> Result<Round> {
    let batches: Vec<&[String]> = names.chunks(10).collect();
    let mut round = Round::default();
    for group in batches.chunks(conns.len().max(1)) {
        let answers = join_all(conns.iter_mut().zip(group).map(|(c, batch)| {
            c.call_json(
                "DescribeServices",
                json!({"cluster": cluster, "services": batch}),
            )
        }))
        .await;
        for a in answers {
            let a = a?;
            round.missing += a["failures"].as_array().map_or(0, Vec::len);
            for s in a["services"].as_array().into_iter().flatten() {
                round.running += s["runningCount"].as_u64().unwrap_or(0);
                round.pending += s["pendingCount"].as_u64().unwrap_or(0);
                round.no_rollout_state += s["deployments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| d.get("rolloutState").is_none())
                    .count();
                match settled(s, desired, revision) {
                    Ok(()) => round.settled += 1,
                    Err(why) if round.example.is_none() => {
                        round.example = Some(format!("{}: {why}", s["serviceName"]));
                    }
                    Err(_) => {}
                }
            }
        }
    }
    Ok(round)
}

/// Polls until every service is settled. Returns when that was seen, and when the summed
/// runningCount first reached the total.
async fn until_settled(
    conns: &mut [Conn],
    args: &Args,
    names: &[String],
    revision: &str,
    since: Instant,
) -> Result<(Instant, Option<Instant>)> {
    let desired = args.tasks_per_service as u64;
    let total = desired * names.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut all_running = None;
    let mut last_progress = Instant::now();
    let mut warned = false;
    loop {
        tick.tick().await;
        let round = poll_round(conns, &args.cluster, names, desired, revision).await?;
        let now = Instant::now();
        if round.running >= total && all_running.is_none() {
            all_running = Some(now);
        }
        if round.no_rollout_state > 0 && !warned {
            warned = true;
            eprintln!("  note: deployments without rolloutState; settling ignores it");
        }
        if round.settled == names.len() {
            return Ok((now, all_running));
        }
        if now - last_progress >= Duration::from_secs(1) {
            last_progress = now;
            eprintln!(
                "  +{:5.1} s  running {}/{total}, pending {}, settled {}/{} services{}{}",
                secs(now - since),
                round.running,
                round.pending,
                round.settled,
                names.len(),
                if round.missing > 0 {
                    format!(", {} MISSING", round.missing)
                } else {
                    String::new()
                },
                round
                    .example
                    .as_deref()
                    .map(|e| format!("; e.g. {e}"))
                    .unwrap_or_default()
            );
        }
        if now > deadline {
            bail!(
                "not settled after {} s: {} of {} services settled, {} tasks running; e.g. {}",
                args.timeout,
                round.settled,
                names.len(),
                round.running,
                round.example.unwrap_or_default()
            );
        }
    }
}

/// The cluster's own counts and ListTasks (desiredStatus RUNNING), to check the services'
/// runningCounts against.
async fn cross_check(c: &mut Conn, cluster: &str, expected: usize) -> Result<Value> {
    let d = c
        .call_json("DescribeClusters", json!({"clusters": [cluster]}))
        .await?;
    let cl = &d["clusters"][0];
    let mut listed = 0;
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"cluster": cluster, "desiredStatus": "RUNNING", "maxResults": 100});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let v = c.call_json("ListTasks", body).await?;
        listed += v["taskArns"].as_array().map_or(0, Vec::len);
        token = v["nextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let check = json!({
        "runningTasksCount": cl["runningTasksCount"],
        "pendingTasksCount": cl["pendingTasksCount"],
        "activeServicesCount": cl["activeServicesCount"],
        "listTasksRunning": listed,
    });
    let ok = cl["runningTasksCount"].as_u64() == Some(expected as u64) && listed == expected;
    eprintln!(
        "  cross-check: cluster runningTasksCount {}, pendingTasksCount {}, activeServicesCount {}, ListTasks(desiredStatus RUNNING) {listed}: {}",
        cl["runningTasksCount"],
        cl["pendingTasksCount"],
        cl["activeServicesCount"],
        if ok {
            "as expected".to_owned()
        } else {
            format!("EXPECTED {expected}")
        }
    );
    Ok(check)
}

async fn register(c: &mut Conn, family: &str, image: &str) -> Result<String> {
    let v = c
        .call_json(
            "RegisterTaskDefinition",
            json!({
                "family": family,
                "containerDefinitions": [{
                    "name": "app", "image": image, "cpu": 256, "memory": 128, "essential": true,
                    "dockerLabels": {"berth.runtime": "hollow"}
                }]
            }),
        )
        .await?;
    let revision = v["taskDefinition"]["revision"]
        .as_u64()
        .context("RegisterTaskDefinition answered no revision")?;
    Ok(format!("{family}:{revision}"))
}

fn cpu_delta(
    watched: &Watched,
    before: &[Option<ProcStats>],
) -> Vec<(&'static str, Option<f64>, Option<f64>)> {
    let after = watched.sample();
    watched
        .0
        .iter()
        .zip(before.iter().zip(after))
        .map(|((name, _), (b, a))| {
            (
                *name,
                b.zip(a).map(|(b, a)| a.cpu_s - b.cpu_s),
                a.map(|a| a.rss_mib),
            )
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut watched = vec![("bench", std::process::id())];
    watched.extend(args.server_pid.map(|p| ("server", p)));
    watched.extend(args.fleet_pid.map(|p| ("fleet", p)));
    let watched = Watched(watched);

    let endpoint = args.access.endpoint(args.addr)?;
    let mut c = Conn::open(&endpoint).await?;
    let mut conns = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        conns.push(Conn::open(&endpoint).await?);
    }
    let cl = c
        .call_json("CreateCluster", json!({"clusterName": args.cluster}))
        .await?;
    let instances = cl["cluster"]["registeredContainerInstancesCount"]
        .as_u64()
        .unwrap_or(0);
    let total = args.services * args.tasks_per_service;
    eprintln!(
        "{} services × {} tasks = {total} tasks on {instances} instances in cluster {}",
        args.services, args.tasks_per_service, args.cluster
    );
    let names: Vec<String> = (0..args.services).map(service_name).collect();
    let v1 = register(&mut c, &args.family, "bench:1").await?;

    // Create.
    let spread = json!([
        {"type": "spread", "field": "attribute:ecs.availability-zone"},
        {"type": "spread", "field": "instanceId"}
    ]);
    let before = watched.sample();
    let (t0, t1, latencies) = call_each(&mut conns, args.services, "CreateService", |i| {
        let mut body = json!({
            "cluster": args.cluster,
            "serviceName": service_name(i),
            "taskDefinition": v1,
            "desiredCount": args.tasks_per_service,
            "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200},
        });
        if args.spread {
            body["placementStrategy"] = spread.clone();
        }
        body
    })
    .await?;
    eprintln!(
        "  {} CreateService answered in {:.2} s; waiting for {total} tasks",
        args.services,
        secs(t1 - t0)
    );
    let (t2, running) = until_settled(&mut conns, &args, &names, &v1, t0).await?;
    let create = Phase {
        name: "create",
        calls: t1 - t0,
        settle: t2.saturating_duration_since(t1),
        total: t2 - t0,
        tasks_running: running.map(|r| r - t0),
        latencies,
        tasks: total,
        cpu: cpu_delta(&watched, &before),
    };
    let create_check = cross_check(&mut c, &args.cluster, total).await?;

    // Rolling update.
    let mut update = None;
    let mut update_check = Value::Null;
    if !args.no_update {
        let v2 = register(&mut c, &args.family, "bench:2").await?;
        let before = watched.sample();
        let (u0, t3, latencies) = call_each(
            &mut conns,
            args.services,
            "UpdateService",
            |i| json!({"cluster": args.cluster, "service": service_name(i), "taskDefinition": v2}),
        )
        .await?;
        eprintln!(
            "  {} UpdateService answered in {:.2} s; waiting for the rollout to {v2}",
            args.services,
            secs(t3 - u0)
        );
        let (t4, _) = until_settled(&mut conns, &args, &names, &v2, u0).await?;
        update = Some(Phase {
            name: "update",
            calls: t3 - u0,
            settle: t4.saturating_duration_since(t3),
            total: t4 - u0,
            tasks_running: None,
            latencies,
            tasks: total,
            cpu: cpu_delta(&watched, &before),
        });
        update_check = cross_check(&mut c, &args.cluster, total).await?;
    }

    let phases: Vec<&Phase> = std::iter::once(&create).chain(update.as_ref()).collect();
    println!(
        "{} services × {} tasks = {total} tasks on {instances} instances",
        args.services, args.tasks_per_service
    );
    println!(
        "{:<7} {:>9} {:>11} {:>14} {:>9} {:>8} {:>13}",
        "phase", "calls s", "call p50 ms", "settled after", "total s", "tasks/s", "call max ms"
    );
    for p in &phases {
        println!(
            "{:<7} {:>9.2} {:>11.1} {:>12.2} s {:>9.2} {:>8.0} {:>13.1}",
            p.name,
            secs(p.calls),
            p.percentile(0.5),
            secs(p.settle),
            secs(p.total),
            p.tasks as f64 / secs(p.total),
            p.percentile(1.0)
        );
    }
    println!(
        "  (calls: first call sent → last answered; settled after: last call answered → every service settled)"
    );
    if let Some(r) = create.tasks_running {
        println!(
            "create: all {total} tasks RUNNING {:.2} s after the first CreateService, {:.2} s after the last",
            secs(r),
            secs(r.saturating_sub(create.calls))
        );
    }
    let target = Duration::from_secs(10);
    println!(
        "target: every service settled within 10 s of the last CreateService: {} ({:.2} s)",
        if create.settle <= target {
            "met"
        } else {
            "missed"
        },
        secs(create.settle)
    );
    for p in &phases {
        let cpu: Vec<String> = p
            .cpu
            .iter()
            .map(|(name, s, rss)| match (s, rss) {
                (Some(s), Some(rss)) => format!("{name} {s:.2} CPU s, RSS {rss:.0} MiB"),
                _ => format!("{name} n/a"),
            })
            .collect();
        println!("{} processes: {}", p.name, cpu.join("; "));
    }
    let mut out = json!({
        "bench": "services",
        "services": args.services,
        "tasks_per_service": args.tasks_per_service,
        "tasks": total,
        "instances": instances,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "create": create.json(),
        "create_check": create_check,
    });
    if let Some(u) = &update {
        out["update"] = u.json();
        out["update_check"] = update_check;
    }
    println!("{out}");
    Ok(())
}
