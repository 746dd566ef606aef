//! `berth-failover`: how long a berth cluster takes to accept writes again after its leader
//! is SIGKILLed under a steady write load, and whether any acknowledged write is lost.
//!
//! ```text
//!  start N `berth server`s (--node-id, --peer ×N, one --cluster-secret-file) on free loopback
//!  ports, each with its own data dir; W writers per server loop CreateCluster{"w{S}-{seq}"}
//!  through THEIR server (followers forward to the leader), every call recorded:
//!  (name, server, start, end, outcome)
//!
//!  round × K:  every /v1/health 200, one leader, all caught up ─► load runs ~1 s ─►
//!              SIGKILL the leader (t_kill) ─► watch the survivors: /v1/health names a new
//!              leader (t_leader), a write issued after t_kill is acknowledged through a
//!              survivor (t_ack) ─► restart the killed server (same port and data dir) ─►
//!              healthy again
//!  then: stop the load, wait until every server has applied the whole log, list every
//!        server's clusters: each acknowledged CreateCluster must be on every server.
//! ```
//! **Failover** = t_ack − t_kill: from just before the SIGKILL to the first 200 the client
//! received, through a surviving server, for a write it *sent* after t_kill (a write sent
//! before the kill and answered after it may have been committed by the old leader, so it
//! proves nothing about the new one). Timestamps are the client's, taken when the writer task
//! sees the answer. Exits non-zero when an acknowledged write is missing on any server, a
//! server holds a name nobody wrote, or a kill was not followed by an acknowledged write
//! within 10 s. Child servers are SIGKILLed when the harness exits, panics or is interrupted
//! (SIGINT, SIGTERM); only a SIGKILL of the harness itself leaves them behind.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use berth_client::{Credentials, Transport, Trust};
use berth_load::{Conn, Endpoint, REGION, machine_cpu_s, proc_stats};
use bytes::Bytes;
use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Leader failover under a steady write load, for a berth cluster it starts")]
struct Args {
    /// The `berth` binary to run the servers with (a release build).
    #[arg(long, default_value = "target/release/berth")]
    berth: PathBuf,
    /// Servers (Raft voters) to start: 3 or more.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Leader SIGKILLs, one per round.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Seeds the jitter added to each round's load time, so that kills land at different
    /// points of the leader's heartbeat cycle, reproducibly.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Writer tasks per server, each with its own keep-alive connection to its server.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Milliseconds between the starts of one writer's writes (0: the next write right after
    /// the previous answer). A late writer starts its next write at once.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Milliseconds of load on a healthy cluster before each kill (plus 0–99 ms of jitter).
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Keep the killed server down at least this many ms after the kill (plus 0–499 ms of
    /// jitter); 0: restart it as soon as the failover is measured, ~0.4 s after the kill.
    #[arg(long, default_value_t = 0)]
    down_ms: u64,
    /// Hand leadership over each round (`POST /v1/operator/raft/transfer-leader`, as `berth
    /// operator raft transfer-leader` does) instead of SIGKILLing the leader; "failover" is then
    /// request → first acknowledged write through a server other than the old leader, and
    /// nothing is restarted.
    #[arg(long)]
    transfer: bool,
    /// Keep the servers' data directories and logs (node{N}.log) after a successful run.
    #[arg(long)]
    keep: bool,
    /// Only start the servers, print `leader ID HOST:PORT PID CREDENTIALS-FILE` once they are
    /// healthy, and keep them running until SIGINT or SIGTERM (scripts/bench.sh runs
    /// berth-load against the leader of a BENCH_VOTERS group so).
    #[arg(long)]
    hold: bool,
    /// Extra `berth server` arguments for every server (after `--`), e.g.
    /// `-- --raft-election-timeout-ms 150`.
    #[arg(last = true)]
    server_args: Vec<String>,
}

/// How long a kill may go without an acknowledged write before the round counts as failed.
const FAILOVER_GIVE_UP: Duration = Duration::from_secs(10);
/// How long the cluster may take to be healthy again (all servers up, one leader, caught up).
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

// --- servers ------------------------------------------------------------------------------------

/// One `berth server` child process; SIGKILLed when dropped.
struct Server {
    id: u64,
    addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts the process; the receiver gets its ready line (closed if it exits first).
    fn spawn(
        &mut self,
        berth: &Path,
        secret: &Path,
        peers: &[String],
        extra: &[String],
        log_filter: Option<&str>,
    ) -> Result<tokio::sync::oneshot::Receiver<String>> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = Command::new(berth);
        cmd.arg("server")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--node-id")
            .arg(self.id.to_string())
            .arg("--cluster-secret-file")
            .arg(secret);
        for p in peers {
            cmd.arg("--peer").arg(p);
        }
        if let Some(filter) = log_filter {
            cmd.env("RUST_LOG", filter);
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", berth.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        self.child = Some(child);
        Ok(rx)
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a server's `/v1/health` says.
#[derive(Debug, Clone)]
struct Health {
    status: u16,
    leader: Option<u64>,
    term: u64,
    index: u64,
}

struct Cluster {
    berth: PathBuf,
    secret: PathBuf,
    peers: Vec<String>,
    extra: Vec<String>,
    /// The servers' RUST_LOG, when it is not the environment's.
    log_filter: Option<String>,
    servers: Vec<Server>,
    /// Per server, a client of its native API (signing name `berth`), once credentials exist.
    native: Vec<berth_client::Client>,
}

impl Cluster {
    fn new(root: &Path, args: &Args) -> Result<Cluster> {
        let secret = root.join("cluster.secret");
        std::fs::write(
            &secret,
            format!(
                "{}\n",
                berth_auth::ClusterSecret::from_random(rand::random()).render()
            ),
        )?;
        // Private, as a server demands of its secret file.
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let servers: Vec<Server> = (0..args.servers)
            .map(|i| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                Ok(Server {
                    id: i as u64 + 1,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    dir: root.join(format!("node{}", i + 1)),
                    log: root.join(format!("node{}.log", i + 1)),
                    child: None,
                })
            })
            .collect::<Result<_>>()?;
        let peers = servers
            .iter()
            .map(|s| format!("{}={}", s.id, s.addr))
            .collect();
        Ok(Cluster {
            berth: args.berth.clone(),
            secret,
            peers,
            extra: args.server_args.clone(),
            // openraft logs elections at info: the report reads them (RUST_LOG overrides).
            // Held servers (scripts/bench.sh) log as a single server does by default.
            log_filter: match std::env::var("RUST_LOG") {
                Ok(filter) => Some(filter),
                Err(_) if args.hold => None,
                Err(_) => Some("info,openraft=info".into()),
            },
            servers,
            native: Vec::new(),
        })
    }

    /// Starts the servers at `which` and waits for their ready lines (a server prints it once
    /// it knows a leader and has applied the log, so a new cluster's servers start together).
    async fn start(&mut self, which: &[usize]) -> Result<()> {
        let mut ready = Vec::new();
        for &i in which {
            let rx = self.servers[i].spawn(
                &self.berth,
                &self.secret,
                &self.peers,
                &self.extra,
                self.log_filter.as_deref(),
            )?;
            ready.push((i, rx));
        }
        for (i, rx) in ready {
            let s = &self.servers[i];
            match tokio::time::timeout(Duration::from_secs(60), rx).await {
                Ok(Ok(line)) if line.contains("listening on http://") => {}
                Ok(Ok(line)) => bail!("server {} printed {line:?}; plain HTTP expected", s.id),
                Ok(Err(_)) => bail!("server {} exited:\n{}", s.id, s.log_tail()),
                Err(_) => bail!("server {} not ready within 60 s:\n{}", s.id, s.log_tail()),
            }
        }
        Ok(())
    }

    async fn health(&self, i: usize, timeout: Duration) -> Option<Health> {
        let a = self.native[i]
            .send("GET", "/v1/health", &[], Bytes::new(), timeout)
            .await
            .ok()?;
        let v: Value = serde_json::from_slice(&a.body).ok()?;
        Some(Health {
            status: a.status,
            leader: v["leader"].as_u64(),
            term: v["term"].as_u64().unwrap_or(0),
            index: v["index"].as_u64().unwrap_or(0),
        })
    }

    /// Every server's health, asked concurrently.
    async fn survey(&self, which: &[usize], timeout: Duration) -> Vec<Option<Health>> {
        futures::future::join_all(which.iter().map(|&i| self.health(i, timeout))).await
    }

    /// Waits until every server answers 200 naming the same leader in the same term, and all
    /// have applied what the most advanced had when that was first seen. Returns the leader's
    /// health.
    async fn wait_healthy(&self) -> Result<Health> {
        let all: Vec<usize> = (0..self.servers.len()).collect();
        let deadline = Instant::now() + HEALTHY_WITHIN;
        let mut target = None;
        loop {
            let hs = self.survey(&all, Duration::from_secs(1)).await;
            let agreed = hs.iter().all(|h| {
                h.as_ref().is_some_and(|h| {
                    h.status == 200
                        && h.leader.is_some()
                        && h.leader == hs[0].as_ref().and_then(|h0| h0.leader)
                        && Some(h.term) == hs[0].as_ref().map(|h0| h0.term)
                })
            });
            if agreed {
                let hs: Vec<&Health> = hs.iter().flatten().collect();
                let max = hs.iter().map(|h| h.index).max().unwrap_or(0);
                let min = hs.iter().map(|h| h.index).min().unwrap_or(0);
                if min >= *target.get_or_insert(max) {
                    let leader = hs[0].leader.unwrap_or(0);
                    return Ok(hs[(leader - 1) as usize].clone());
                }
            }
            if Instant::now() > deadline {
                bail!("the cluster was not healthy within {HEALTHY_WITHIN:?}: {hs:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// --- the write load -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Outcome {
    Acked,
    /// An HTTP answer other than 200, by kind.
    Refused(String),
    /// The connection failed with the request possibly sent, or no answer in time: outcome
    /// unknown.
    Cut(String),
}

#[derive(Debug, Clone)]
struct Op {
    name: String,
    /// Index of the server the writer sends to.
    server: usize,
    start: Instant,
    end: Instant,
    outcome: Outcome,
}

/// What the writers share with the driver.
struct Load {
    ops: Mutex<Vec<Op>>,
    stop: AtomicBool,
    /// Connection attempts refused while a writer's server was down (nothing sent).
    refused_connects: AtomicU64,
}

/// What kind of non-200 answer `body` is, in a few words.
fn kind_of(status: u16, body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let ty = v["__type"].as_str().unwrap_or("-");
    let msg = v["message"].as_str().unwrap_or("");
    let what = if msg.contains("not the leader") {
        "not the leader".to_owned()
    } else if msg.contains("did not answer") {
        "the leader did not answer (outcome unknown)".to_owned()
    } else if msg.contains("no quorum acknowledged") {
        "no quorum in time (outcome unknown)".to_owned()
    } else if msg.contains("shutting down") {
        "shutting down".to_owned()
    } else {
        msg.chars().take(70).collect()
    };
    format!("{status} {ty}: {what}")
}

async fn writer(
    server: usize,
    endpoint: Endpoint,
    seq: Arc<AtomicU64>,
    interval: Duration,
    load: Arc<Load>,
) {
    let mut conn: Option<Conn> = None;
    let mut next = tokio::time::Instant::now();
    while !load.stop.load(Ordering::Relaxed) {
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::open(&endpoint).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    load.refused_connects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        if !interval.is_zero() {
            tokio::time::sleep_until(next).await;
            next = (next + interval).max(tokio::time::Instant::now());
        }
        let name = format!("w{}-{}", server + 1, seq.fetch_add(1, Ordering::Relaxed));
        let body = Bytes::from(json!({ "clusterName": name }).to_string());
        let start = Instant::now();
        let answer =
            tokio::time::timeout(Duration::from_secs(15), c.call("CreateCluster", body)).await;
        let end = Instant::now();
        let outcome = match answer {
            Ok(Ok((200, _))) => Outcome::Acked,
            Ok(Ok((status, body))) => Outcome::Refused(kind_of(status, &body)),
            Ok(Err(e)) => {
                conn = None;
                let e = format!("{e:#}");
                Outcome::Cut(if e.contains("closed") || e.contains("reset") {
                    "connection closed or reset (outcome unknown)".to_owned()
                } else {
                    e.chars().take(70).collect()
                })
            }
            Err(_) => {
                conn = None;
                Outcome::Cut("no answer in 15 s (outcome unknown)".to_owned())
            }
        };
        load.ops.lock().expect("ops").push(Op {
            name,
            server,
            start,
            end,
            outcome,
        });
    }
}

// --- rounds -------------------------------------------------------------------------------------

struct Round {
    killed: usize,
    term_before: u64,
    t_kill: Instant,
    /// t_kill on the wall clock, to find the round in the servers' logs.
    kill_wall: SystemTime,
    /// When a survivor's /v1/health first named another leader in a later term.
    new_leader: Option<(Instant, u64, u64)>,
    t_restart: Instant,
    restarted_ready: Duration,
    healthy_again: Instant,
    term_after: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(label: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{label}: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms (min {:.0}, n {})",
        pct(&v, 0.5),
        pct(&v, 0.9),
        v.last().copied().unwrap_or(f64::NAN),
        v.first().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

async fn kill_round(
    cluster: &mut Cluster,
    load: &Load,
    settle: Duration,
    down: Duration,
    round: usize,
    transfer: bool,
) -> Result<Round> {
    cluster.wait_healthy().await?;
    tokio::time::sleep(settle).await;
    // The leader now (an election during the settle time would have moved it).
    let before = cluster.wait_healthy().await?;
    let leader = before.leader.context("a leader")?;
    let killed = (leader - 1) as usize;
    let kill_wall = SystemTime::now();
    let t_kill = Instant::now();
    let handed = if transfer {
        let leader_api = cluster.native[killed].clone();
        Some(tokio::spawn(async move {
            let path = "/v1/operator/raft/transfer-leader";
            let headers = [("content-type", "application/json")];
            let body = Bytes::from_static(b"{}");
            leader_api
                .send("POST", path, &headers, body, Duration::from_secs(10))
                .await
        }))
    } else {
        cluster.servers[killed].kill();
        None
    };
    let survivors: Vec<usize> = (0..cluster.servers.len())
        .filter(|&i| i != killed)
        .collect();
    let mut new_leader = None;
    let mut acked = false;
    loop {
        if new_leader.is_none() {
            let hs = cluster.survey(&survivors, Duration::from_millis(100)).await;
            let seen = Instant::now();
            new_leader = hs.iter().flatten().find_map(|h| {
                h.leader
                    .filter(|l| *l != leader && h.term > before.term)
                    .map(|l| (seen, l, h.term))
            });
        }
        if !acked {
            let ops = load.ops.lock().expect("ops");
            acked = ops.iter().rev().take_while(|o| o.end >= t_kill).any(|o| {
                matches!(o.outcome, Outcome::Acked) && o.start >= t_kill && o.server != killed
            });
        }
        if (acked && new_leader.is_some()) || t_kill.elapsed() > FAILOVER_GIVE_UP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !acked {
        eprintln!("round {round}: no write acknowledged within {FAILOVER_GIVE_UP:?} of the kill");
    }
    if let Some(handed) = handed {
        match handed.await? {
            Ok(a) if a.status == 200 => {}
            Ok(a) => eprintln!(
                "round {round}: the transfer answered {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ),
            Err(e) => eprintln!("round {round}: the transfer failed: {e}"),
        }
    }
    tokio::time::sleep_until((t_kill + down).into()).await;
    let t_restart = Instant::now();
    if !transfer {
        cluster.start(&[killed]).await?;
    }
    let restarted_ready = t_restart.elapsed();
    let after = cluster.wait_healthy().await?;
    Ok(Round {
        killed,
        term_before: before.term,
        t_kill,
        kill_wall,
        new_leader,
        t_restart,
        restarted_ready,
        healthy_again: Instant::now(),
        term_after: after.term,
    })
}

/// Every cluster name a server lists.
async fn list_clusters(endpoint: &Endpoint) -> Result<HashSet<String>> {
    let mut c = Conn::open(endpoint).await?;
    let mut names = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "maxResults": 100 });
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let page = c.call_json("ListClusters", body).await?;
        for arn in page["clusterArns"].as_array().into_iter().flatten() {
            if let Some((_, name)) = arn.as_str().and_then(|a| a.rsplit_once('/')) {
                names.insert(name.to_owned());
            }
        }
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return Ok(names),
        }
    }
}

/// Runs the benchmark; `Ok(false)` when it found a fault (lost or phantom writes, a kill with
/// no failover).
async fn run(args: &Args, root: &Path) -> Result<bool> {
    if args.servers < 3 && !args.hold {
        bail!("--servers must be at least 3: a smaller group has no quorum without its leader");
    }
    let mut cluster = Cluster::new(root, args)?;
    let all: Vec<usize> = (0..args.servers).collect();
    cluster.start(&all).await?;
    // Every server writes the same bootstrap admin credential (it is in the replicated state).
    let credentials_file = cluster.servers[0].dir.join("admin.credentials");
    let credentials: Credentials =
        berth_client::credentials_file::read(&credentials_file, "default")?;
    let transport = Transport::new(&Trust::PlainHttp)?;
    cluster.native = cluster
        .servers
        .iter()
        .map(|s| {
            berth_client::Client::new(
                transport.clone(),
                &format!("http://{}", s.addr),
                &credentials,
                REGION,
                "berth",
            )
        })
        .collect();
    let endpoints: Vec<Endpoint> = cluster
        .servers
        .iter()
        .map(|s| Endpoint::new(s.addr, credentials.clone(), None))
        .collect::<Result<_>>()?;
    let first = cluster.wait_healthy().await?;
    if args.hold {
        let leader = &cluster.servers[(first.leader.unwrap_or(1) - 1) as usize];
        println!(
            "leader {} {} {} {}",
            leader.id,
            leader.addr,
            leader.child.as_ref().map_or(0, Child::id),
            credentials_file.display()
        );
        // Until SIGINT or SIGTERM (see main), which drops the cluster.
        std::future::pending::<()>().await;
    }
    println!(
        "{} servers up (data and logs in {}), leader {} in term {}; {} writers per server, \
         one CreateCluster each every {} ms; server args: {:?}",
        args.servers,
        root.display(),
        first.leader.unwrap_or(0),
        first.term,
        args.writers,
        args.interval_ms,
        args.server_args
    );

    let load = Arc::new(Load {
        ops: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        refused_connects: AtomicU64::new(0),
    });
    let mut writers = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let seq = Arc::new(AtomicU64::new(0));
        for _ in 0..args.writers {
            writers.push(tokio::spawn(writer(
                i,
                endpoint.clone(),
                seq.clone(),
                Duration::from_millis(args.interval_ms),
                load.clone(),
            )));
        }
    }
    let load_started = Instant::now();
    let cpu_started = (machine_cpu_s(), proc_stats(std::process::id()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut rounds = Vec::new();
    for round in 1..=args.kills {
        let settle = Duration::from_millis(args.settle_ms + rng.random_range(0..100));
        let down = match args.down_ms {
            0 => Duration::ZERO,
            ms => Duration::from_millis(ms + rng.random_range(0..500)),
        };
        let r = kill_round(&mut cluster, &load, settle, down, round, args.transfer).await?;
        let first_ack = first_ack_after(&load.ops.lock().expect("ops"), &r);
        println!(
            "kill {round:>2}: node {} (term {}) → {}; first write acknowledged {}; \
             restarted server ready in {:.0} ms, all healthy {:.0} ms after the kill{}",
            r.killed + 1,
            r.term_before,
            r.new_leader
                .map_or("no new leader seen".to_owned(), |(t, l, term)| format!(
                    "node {l} leads in term {term}, seen in /v1/health +{:.0} ms",
                    ms(t - r.t_kill)
                )),
            first_ack.map_or("NEVER".to_owned(), |d| format!("+{:.0} ms", ms(d))),
            ms(r.restarted_ready),
            ms(r.healthy_again - r.t_kill),
            if r.term_after != r.new_leader.map_or(0, |(_, _, t)| t) {
                format!(" (term {} once healthy: another election)", r.term_after)
            } else {
                String::new()
            }
        );
        rounds.push(r);
    }
    load.stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    let load_time = load_started.elapsed();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if let ((Some(m0), Some(c0)), Some(m1), Some(c1)) =
        (cpu_started, machine_cpu_s(), proc_stats(std::process::id()))
    {
        let secs = load_time.as_secs_f64();
        println!(
            "CPU during the load: {:.2} of {cores} cores busy on average (every process on the \
             machine), this harness {:.2}",
            (m1 - m0) / secs,
            (c1.cpu_s - c0.cpu_s) / secs
        );
    }
    let ops = std::mem::take(&mut *load.ops.lock().expect("ops"));
    report(&cluster, &endpoints, &rounds, &ops, load_time, &load).await
}

/// An election event in a server's log (openraft at info), at seconds of the UTC day.
#[derive(Debug, Clone, Copy)]
enum Raft {
    /// `new candidate: {T<term>-N<node>...`: `node` stood for election.
    Candidate { term: u64, node: u64 },
    /// `become leader id=<node>`.
    Leader { node: u64 },
}

/// Seconds since UTC midnight of `t`.
fn second_of_day(t: SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() % 86_400.0)
}

/// The elections every server's log shows, in time order. Empty when the servers logged
/// openraft below info.
fn raft_events(servers: &[Server]) -> Vec<(f64, Raft)> {
    let number = |s: &str| -> Option<u64> {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    let mut events = Vec::new();
    for s in servers {
        let text = std::fs::read_to_string(&s.log).unwrap_or_default();
        for line in text.lines() {
            // tracing's default format: `2026-12-07T01:36:59.654708Z  INFO target: message`,
            // with ANSI colours around the parts.
            let plain: String = {
                let mut out = String::with_capacity(line.len());
                let mut chars = line.chars();
                while let Some(c) = chars.next() {
                    if c == '\u{1b}' {
                        for c in chars.by_ref() {
                            if c == 'm' {
                                break;
                            }
                        }
                    } else {
                        out.push(c);
                    }
                }
                out
            };
            let event = if let Some((_, rest)) = plain.split_once("new candidate: {T") {
                rest.split_once("-N").and_then(|(term, node)| {
                    Some(Raft::Candidate {
                        term: number(term)?,
                        node: number(node)?,
                    })
                })
            } else if let Some((_, rest)) = plain.split_once("become leader id=") {
                number(rest).map(|node| Raft::Leader { node })
            } else {
                None
            };
            let Some(event) = event else { continue };
            let Some(clock) = plain.get(11..26) else {
                continue;
            };
            let parts: Vec<f64> = clock.split(':').filter_map(|p| p.parse().ok()).collect();
            if let [h, m, sec] = parts[..] {
                events.push((h * 3600.0 + m * 60.0 + sec, event));
            }
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    events
}

/// From the servers' logs: when the first survivor stood for election after the kill (ms
/// after it) and which, how many candidacies it took, and when the new leader took office.
fn election_of(events: &[(f64, Raft)], r: &Round) -> Option<(f64, u64, usize, f64)> {
    let kill = second_of_day(r.kill_wall);
    let after = |t: f64| {
        // The ms from the kill to t, across midnight too.
        let d = (t - kill + 86_400.0) % 86_400.0;
        (d < 60.0).then_some(d * 1000.0)
    };
    let killed = r.killed as u64 + 1;
    let leader_ms = events.iter().find_map(|(t, e)| match e {
        Raft::Leader { node } if *node != killed => after(*t),
        _ => None,
    })?;
    let candidacies: Vec<(f64, u64)> = events
        .iter()
        .filter_map(|(t, e)| match e {
            Raft::Candidate { term, node } if *term > r.term_before => Some((after(*t)?, *node)),
            _ => None,
        })
        .filter(|(ms, _)| *ms <= leader_ms)
        .collect();
    let (first, node) = *candidacies.first()?;
    Some((first, node, candidacies.len(), leader_ms))
}

/// The longest stretch without an acknowledged write from the restart of the killed server
/// until all were healthy again: what its rejoining cost the writers.
fn rejoin_gap(ops: &[Op], r: &Round) -> Duration {
    let mut acks: Vec<Instant> = ops
        .iter()
        .filter(|o| {
            matches!(o.outcome, Outcome::Acked) && o.end > r.t_restart && o.end <= r.healthy_again
        })
        .map(|o| o.end)
        .collect();
    acks.sort();
    acks.push(r.healthy_again);
    let mut gap = Duration::ZERO;
    let mut last = r.t_restart;
    for t in acks {
        gap = gap.max(t - last);
        last = t;
    }
    gap
}

fn first_ack_after(ops: &[Op], r: &Round) -> Option<Duration> {
    ops.iter()
        .filter(|o| {
            matches!(o.outcome, Outcome::Acked) && o.start >= r.t_kill && o.server != r.killed
        })
        .map(|o| o.end - r.t_kill)
        .min()
}

async fn report(
    cluster: &Cluster,
    endpoints: &[Endpoint],
    rounds: &[Round],
    ops: &[Op],
    load_time: Duration,
    load: &Load,
) -> Result<bool> {
    let mut sound = true;
    println!();
    let failovers: Vec<Option<Duration>> = rounds.iter().map(|r| first_ack_after(ops, r)).collect();
    let never = failovers.iter().filter(|f| f.is_none()).count();
    if never > 0 {
        sound = false;
    }
    let fo: Vec<f64> = failovers.iter().flatten().map(|d| ms(*d)).collect();
    let mut sorted = fo.clone();
    sorted.sort_by(f64::total_cmp);
    let (p50, max) = (
        pct(&sorted, 0.5),
        sorted.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "failover per kill (ms): {}",
        fo.iter()
            .map(|f| format!("{f:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{}{}",
        summary(
            "failover, kill → first acknowledged write sent after the kill via a survivor",
            fo.clone()
        ),
        if never > 0 {
            format!("; {never} kills with no acknowledged write within 10 s")
        } else {
            String::new()
        }
    );
    println!(
        "target p50 ≤ 500 ms and max ≤ 1000 ms: {}",
        if never == 0 && p50 <= 500.0 && max <= 1000.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "{}",
        summary(
            "kill → a survivor's /v1/health names the new leader (polled every ~5 ms)",
            rounds
                .iter()
                .filter_map(|r| r.new_leader.map(|(t, _, _)| ms(t - r.t_kill)))
                .collect()
        )
    );
    println!(
        "{}",
        summary(
            "new leader seen → first acknowledged write",
            rounds
                .iter()
                .zip(&failovers)
                .filter_map(|(r, f)| {
                    let (t, _, _) = r.new_leader?;
                    Some(ms((r.t_kill + (*f)?).saturating_duration_since(t)))
                })
                .collect()
        )
    );
    let events = raft_events(&cluster.servers);
    let elections: Vec<(f64, u64, usize, f64)> = rounds
        .iter()
        .filter_map(|r| election_of(&events, r))
        .collect();
    if elections.is_empty() {
        println!("(no elections in the servers' logs: run them with openraft at info)");
    } else {
        println!(
            "from the servers' logs, kill → first candidacy (ms): {}",
            elections
                .iter()
                .map(|(c, node, n, _)| if *n > 1 {
                    format!("{c:.0} (node {node}; {n} candidacies)")
                } else {
                    format!("{c:.0} (node {node})")
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "{}",
            summary(
                "kill → first candidacy",
                elections.iter().map(|e| e.0).collect()
            )
        );
        println!(
            "{}",
            summary(
                "first candidacy → new leader in office",
                elections.iter().map(|e| e.3 - e.0).collect()
            )
        );
    }
    println!(
        "{}",
        summary(
            "longest stretch without an acknowledged write while the killed server rejoined \
             (restart → all healthy)",
            rounds.iter().map(|r| ms(rejoin_gap(ops, r))).collect()
        )
    );
    println!(
        "{}",
        summary(
            "restart of the killed server → its ready line",
            rounds.iter().map(|r| ms(r.restarted_ready)).collect()
        )
    );
    let elections: u64 = rounds
        .iter()
        .map(|r| r.new_leader.map_or(0, |(_, _, t)| t - r.term_before))
        .sum();
    let extra_after: usize = rounds
        .iter()
        .filter(|r| r.new_leader.is_some_and(|(_, _, t)| r.term_after != t))
        .count();
    let first_term = rounds.first().map_or(0, |r| r.term_before);
    let last_term = rounds.last().map_or(0, |r| r.term_after);
    println!(
        "terms: {first_term} → {last_term} over {} kills; kill → new leader took {elections} \
         term(s) in all ({} more than one per kill); {extra_after} rounds saw another election \
         before all were healthy again",
        rounds.len(),
        elections.saturating_sub(rounds.iter().filter(|r| r.new_leader.is_some()).count() as u64),
    );

    // Writes, by outcome; errors inside a round's window (kill → healthy again) or outside.
    let acked: HashSet<&str> = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Acked))
        .map(|o| o.name.as_str())
        .collect();
    let in_window = |o: &Op| {
        rounds
            .iter()
            .any(|r| o.end >= r.t_kill && o.start <= r.healthy_again)
    };
    let mut kinds: BTreeMap<(String, bool), u64> = BTreeMap::new();
    for o in ops {
        let k = match &o.outcome {
            Outcome::Acked => continue,
            Outcome::Refused(k) => k.clone(),
            Outcome::Cut(k) => format!("no answer: {k}"),
        };
        *kinds.entry((k, in_window(o))).or_default() += 1;
    }
    let mut steady: Vec<f64> = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Acked) && !in_window(o))
        .map(|o| ms(o.end - o.start))
        .collect();
    steady.sort_by(f64::total_cmp);
    println!(
        "writes: {} sent, {} acknowledged ({:.0}/s over {:.1} s); acknowledged outside the \
         failover windows: latency p50 {:.2} ms, p99 {:.2} ms; {} connection attempts refused \
         while a writer's server was down (nothing sent)",
        ops.len(),
        acked.len(),
        acked.len() as f64 / load_time.as_secs_f64(),
        load_time.as_secs_f64(),
        pct(&steady, 0.5),
        pct(&steady, 0.99),
        load.refused_connects.load(Ordering::Relaxed)
    );
    if kinds.is_empty() {
        println!("errors: none");
    }
    for ((k, window), n) in &kinds {
        println!(
            "  error {n:>6} × {k} ({})",
            if *window {
                "during a failover"
            } else {
                "OUTSIDE any failover window"
            }
        );
    }

    // Every acknowledged write on every server, once all have applied the whole log.
    cluster.wait_healthy().await?;
    let issued: HashSet<&str> = ops.iter().map(|o| o.name.as_str()).collect();
    let unknown: Vec<&Op> = ops
        .iter()
        .filter(|o| !matches!(o.outcome, Outcome::Acked))
        .collect();
    let mut lost_any = HashSet::new();
    let mut first: Option<HashSet<String>> = None;
    for (i, e) in endpoints.iter().enumerate() {
        let present = list_clusters(e).await?;
        let lost: Vec<&&str> = acked.iter().filter(|n| !present.contains(**n)).collect();
        let phantom = present
            .iter()
            .filter(|n| n.starts_with('w') && !issued.contains(n.as_str()))
            .count();
        let applied_anyway = unknown.iter().filter(|o| present.contains(&o.name)).count();
        println!(
            "server {}: {} clusters; acknowledged writes missing: {}; names nobody wrote: \
             {phantom}; unacknowledged writes that took effect: {applied_anyway} of {}",
            i + 1,
            present.len(),
            lost.len(),
            unknown.len()
        );
        if phantom > 0 {
            sound = false;
        }
        lost_any.extend(lost.into_iter().map(|n| n.to_string()));
        match &first {
            None => first = Some(present),
            Some(f) if *f != present => {
                println!("  server {} lists other clusters than server 1", i + 1);
                sound = false;
            }
            Some(_) => {}
        }
    }
    println!("acknowledged writes lost: {}", lost_any.len());
    if !lost_any.is_empty() {
        let mut some: Vec<&String> = lost_any.iter().collect();
        some.sort();
        println!("  e.g. {:?}", &some[..some.len().min(10)]);
        sound = false;
    }
    Ok(sound)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = std::env::temp_dir().join(format!(
        "berth-failover.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("berth-failover: creating {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth-failover: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run`'s future (interrupted) drops the cluster, which SIGKILLs its servers.
    let outcome = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = run(&args, &root) => r,
            _ = tokio::signal::ctrl_c() => if args.hold { Ok(true) } else { bail!("interrupted") },
            _ = term.recv() => if args.hold { Ok(true) } else { bail!("terminated") },
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let passed = match outcome {
        Ok(true) => true,
        Ok(false) => {
            eprintln!("berth-failover: FAILED (see above)");
            false
        }
        Err(e) => {
            eprintln!("berth-failover: {e:#}");
            false
        }
    };
    if passed && !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        eprintln!("data and logs kept in {}", root.display());
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
