//! `berth-fleet`: thousands of hollow container instances in one process, for scale tests of
//! the control plane.
//!
//! ```text
//!  berth-fleet --count N ──► one join token for the cluster (POST /v1/join-tokens, signed
//!                            with --credentials-file, the server's admin.credentials)
//!                        ──► ⌈N / --agents-per-connection⌉ shared connection pools (HTTP/2)
//!                        ──► N × berth_agent::Agent (the real agent code, hollow runtime)
//!                              each: no log listener, joins with the shared token (its own
//!                              credential, kept in memory and then in one file for all),
//!                              RegisterContainerInstance, DiscoverPollEndpoint,
//!                              long-poll loop, one supervisor per task, Submit*StateChange,
//!                              every request signed as its own instance, as a stream of its
//!                              pool's one connection
//!  start-up: at most --concurrency agents joining and registering at once (each a Raft write;
//!            the server commits those in flight together, so more at once is cheaper)
//!  stdout:   `fleet ready: N agents` once all are registered; then run until SIGINT/SIGTERM
//! ```
//! A `berth agent` process per simulated host would cost ~12 MiB each, so 1,000 of them would
//! not fit next to the server on a test machine. The agents here are not mocks: they are the
//! agent crate's `Agent`, with every task forced onto the hollow runtime, which runs nothing (a
//! task goes RUNNING and stays so until it is stopped). What the server sees — registrations,
//! polls, heartbeats, state changes — is what it would see from that many real agents. They
//! share one tokio runtime, which is the one difference: their CPU comes out of one pool, sized
//! by `--threads`.
//!
//! Sockets are what limit a fleet, not memory: every agent keeps a long-poll waiting, and over
//! HTTP/1.1 each would hold a connection of its own (and each agent a log listener), so 10,000
//! agents needed 20,000+ file descriptors and ran the machine out of them and of ephemeral
//! ports (issue 18). So the agents multiplex over a few HTTP/2 connections, and serve no logs
//! (a hollow container has none worth serving; the server says so if asked): 10,000 agents
//! take about 20 connections.
//!
//! Nor do they keep a file each: an agent on its own host writes and fsyncs its identity when it
//! joins, and ten thousand of those, one after the other on the fleet's thread, were most of
//! the fleet's start-up. The fleet keeps the identities in memory while the agents join and
//! writes them to `<data-dir>/identities.json` once, with one fsync.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_agent::runtime::RuntimeKind;
use berth_agent::{Agent, AgentConfig, Identity, IdentityError, IdentityStore};
use berth_auth::JoinToken;
use berth_client::{Client, Transport, Trust};
use berth_load::{Access, REGION};
use bytes::Bytes;
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

#[derive(Parser)]
#[command(about = "Runs many hollow berth agents in one process")]
struct Args {
    /// The server's endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8642")]
    server: String,
    /// The join token is made with this credential; the agents then sign with their own.
    #[command(flatten)]
    access: Access,
    /// The cluster the agents join (it must exist, unless it is `default`).
    #[arg(long, default_value = "default")]
    cluster: String,
    /// How many agents (container instances).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The agents' identities are kept here, in `identities.json` (one file for all); run
    /// again with the same directory and the agents re-register as the same instances.
    #[arg(long)]
    data_dir: PathBuf,
    /// CPU units each instance registers. The default holds 32 tasks of 256: 1,000 instances
    /// take 100 × 100 such tasks twice over, as a rolling update at maximumPercent 200 needs.
    #[arg(long, default_value_t = 8192)]
    cpu: i64,
    /// Memory (MiB) each instance registers.
    #[arg(long, default_value_t = 16384)]
    memory: i64,
    /// Availability zones: agent i is in `zone-{i % zones}` (0: none).
    #[arg(long, default_value_t = 3)]
    zones: usize,
    /// Registrations in flight at once while starting. The server commits the writes in flight
    /// together (one Raft entry, one fsync, one published state for all of them), so more at
    /// once costs it less per agent: 10,000 agents took the server 7.0 CPU s at 50 and 5.6 at
    /// 200 on the 2-core development machine (BENCHMARKS.md, issue 18).
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Seconds one long-poll waits for a change; also each agent's heartbeat period, so keep it
    /// below the server's --agent-heartbeat-timeout.
    #[arg(long, default_value_t = 10)]
    poll_wait: u64,
    /// Seconds a finished task's (hollow) containers are kept before they are forgotten.
    #[arg(long, default_value_t = 1)]
    cleanup_wait: u64,
    /// Worker threads of the runtime all agents share.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Agents that share one connection (one HTTP/2 connection pool) to the server; the
    /// server takes 2,048 requests in flight per connection, and each agent keeps one
    /// long-poll waiting plus its reports.
    #[arg(long, default_value_t = 500)]
    agents_per_connection: usize,
}

/// The fleet's identities: read from one file at start, kept in memory while the agents join,
/// written back once when they all have (only if one joined anew).
#[derive(Debug)]
struct Identities {
    path: PathBuf,
    /// By agent index.
    saved: Mutex<Vec<Option<Identity>>>,
    joined: AtomicBool,
}

impl Identities {
    fn open(path: PathBuf, count: usize) -> Result<Arc<Identities>> {
        let mut saved: Vec<Option<Identity>> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the identities in {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        saved.resize(count.max(saved.len()), None);
        Ok(Arc::new(Identities {
            path,
            saved: Mutex::new(saved),
            joined: AtomicBool::new(false),
        }))
    }

    /// Agent `agent`'s store.
    fn of(self: &Arc<Self>, agent: usize) -> Arc<dyn IdentityStore> {
        Arc::new(Slot {
            all: self.clone(),
            agent,
        })
    }

    /// Writes every identity, durably, if an agent joined since they were read; then forgets
    /// them (the agents hold their own).
    fn write(&self) -> Result<()> {
        let saved = std::mem::take(&mut *self.saved.lock().expect("identities lock"));
        if self.joined.load(Ordering::Relaxed) {
            let bytes = serde_json::to_vec(&saved)?;
            berth_agent::agent::write_private(&self.path, &bytes)
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }
}

/// One agent's view of [`Identities`].
#[derive(Debug)]
struct Slot {
    all: Arc<Identities>,
    agent: usize,
}

impl IdentityStore for Slot {
    fn load(&self) -> Option<Identity> {
        let saved = self.all.saved.lock().expect("identities lock");
        saved.get(self.agent).cloned().flatten()
    }

    fn save(&self, identity: &Identity) -> Result<(), IdentityError> {
        let mut saved = self.all.saved.lock().expect("identities lock");
        saved[self.agent] = Some(identity.clone());
        self.all.joined.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// What every agent shares: the join token, the CA to trust, and the connection pools.
struct Join {
    token: JoinToken,
    ca_pem: Option<Vec<u8>>,
    /// Agent `i` reaches the server through `transports[i % len]`.
    transports: Vec<Transport>,
    identities: Arc<Identities>,
}

/// One join token for the cluster, which all the agents use (an agent that joined before, with
/// the same --data-dir, does not need it).
async fn join_token(args: &Args) -> Result<Join> {
    let client = Client::new(
        Transport::new(&args.access.trust()?)?,
        &args.server,
        &args.access.credentials()?,
        REGION,
        "berth",
    );
    let body = json!({"cluster": args.cluster, "ttlSeconds": 3600});
    let answer = client
        .send(
            "POST",
            "/v1/join-tokens",
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
            Duration::from_secs(30),
        )
        .await?;
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if answer.status != 200 {
        bail!(
            "creating a join token answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    let token = v["token"]
        .as_str()
        .with_context(|| format!("no token in the answer: {v}"))?;
    let token = JoinToken::parse(token)?;
    let ca_pem = args.access.ca_pem()?;
    // What each agent would trust on its own: the CA the token pins, else the CA given.
    let trust = match (token.ca_sha256, &ca_pem) {
        (Some(pin), _) => Trust::Pinned(pin),
        (None, Some(pem)) => Trust::from_pem(pem)?,
        (None, None) => Trust::PlainHttp,
    };
    let pools = args.count.div_ceil(args.agents_per_connection.max(1));
    let transports = (0..pools)
        .map(|_| Transport::multiplexed(&trust))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let identities = Identities::open(args.data_dir.join("identities.json"), args.count)?;
    Ok(Join {
        token,
        ca_pem,
        transports,
        identities,
    })
}

fn config(args: &Args, join: &Join, i: usize) -> AgentConfig {
    // The agents share the data directory: hollow tasks keep nothing there, and their
    // identities are the fleet's to keep.
    let mut c = AgentConfig::new(args.server.clone(), args.data_dir.clone());
    c.identities = Some(join.identities.of(i));
    c.token = Some(join.token.clone());
    c.ca_pem = join.ca_pem.clone();
    c.transport = Some(join.transports[i % join.transports.len()].clone());
    c.serve_logs = false;
    c.cluster = args.cluster.clone();
    c.runtime = Some(RuntimeKind::Hollow);
    c.cpu = Some(args.cpu);
    c.memory_mib = Some(args.memory);
    c.availability_zone = (args.zones > 0).then(|| format!("zone-{}", i % args.zones));
    c.poll_wait = Duration::from_secs(args.poll_wait);
    c.cleanup_wait = Duration::from_secs(args.cleanup_wait);
    c
}

/// This process's resident set (MiB) and open file descriptors, for the log.
fn usage() -> String {
    let rss = berth_load::proc_stats(std::process::id()).map_or(f64::NAN, |s| s.rss_mib);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    format!("RSS {rss:.1} MiB, {fds} open files")
}

/// Starts every agent, `concurrency` registrations at a time. On the first failure the
/// agents already started are shut down and the error returned.
async fn start_all(args: &Args) -> Result<Vec<(usize, Agent)>> {
    let join = join_token(args).await?;
    let mut started = Vec::with_capacity(args.count);
    let mut starting = JoinSet::new();
    let mut next = 0;
    let mut failure = None;
    loop {
        while failure.is_none() && next < args.count && starting.len() < args.concurrency.max(1) {
            let config = config(args, &join, next);
            let i = next;
            starting.spawn(async move { (i, Agent::start(config).await) });
            next += 1;
        }
        let Some(done) = starting.join_next().await else {
            break;
        };
        match done.context("an agent's start-up panicked")? {
            (i, Ok(agent)) => started.push((i, agent)),
            (i, Err(e)) => {
                if failure.is_none() {
                    failure = Some(anyhow::anyhow!("agent {i}: {e}"));
                }
            }
        }
    }
    // Those that joined keep their instances next time, even if another failed.
    let written = join.identities.write();
    if let Some(e) = failure {
        for (_, agent) in &started {
            agent.shutdown();
        }
        return Err(e);
    }
    written?;
    started.sort_by_key(|(i, _)| *i);
    Ok(started)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let t0 = Instant::now();
    let agents = tokio::select! {
        r = start_all(&args) => r?,
        _ = sigterm.recv() => return Ok(()),
        _ = sigint.recv() => return Ok(()),
    };
    let took = t0.elapsed();
    println!("fleet ready: {} agents", agents.len());
    eprintln!(
        "registered {} agents in {:.2} s ({:.0}/s, {} at a time); {}",
        agents.len(),
        took.as_secs_f64(),
        agents.len() as f64 / took.as_secs_f64(),
        args.concurrency,
        usage(),
    );

    // Each agent runs until it fails (it was deregistered) or the fleet stops. The agents'
    // loops are tasks of their own already; what waits on them is one set of futures here,
    // not a task and a stop channel per agent, which cost ~1 KiB each (issue 18's bound is
    // 20 KiB per agent).
    let mut running: FuturesUnordered<_> = agents
        .into_iter()
        .map(|(i, agent)| async move {
            let arn = agent.instance_arn.clone();
            (i, arn, agent.wait().await)
        })
        .collect();
    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = report.tick() => eprintln!("{} agents running; {}", running.len(), usage()),
            done = running.next() => match done {
                None => bail!("every agent has ended"),
                Some((i, arn, Err(e))) => eprintln!("agent {i} ({arn}) ended: {e}"),
                Some((_, _, Ok(()))) => {}
            },
        }
    }
    eprintln!("stopping {} agents; {}", running.len(), usage());
    // Dropping the waits detaches the agents' tasks; they end when `main` drops the runtime.
    drop(running);
    Ok(())
}
