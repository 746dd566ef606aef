//! `berth-dns-bench`: DNS queries per second one agent's service discovery server answers.
//!
//! ```text
//!  in-process (default): berth_agent::dns::DnsServer on 127.0.0.1:0, answers built from a
//!      synthetic feed of --services services × --instances tasks, on its own runtime
//!      (--server-threads worker threads: the agent's runtime)
//!  --target HOST:PORT:   a running agent instead (berth dev's is 127.0.0.1:8600), asked --name
//!
//!  --clients UDP sockets, each: query (SRV of a service, round-robin) → wait for the answer
//!  → next, for --warmup then --duration seconds; counted answers and latencies
//! ```
//! Client and server share the machine: the figure is a lower bound on what the agent alone
//! answers, and `all cpu` says how busy the machine was.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_agent::dns::{DnsServer, SharedZones, Zones};
use berth_api::agent::{DiscoveredInstance, DiscoveredService, DiscoveryFeed};
use clap::Parser;
use hdrhistogram::Histogram;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

#[derive(Parser)]
#[command(about = "DNS queries/s answered by an agent's service discovery server")]
struct Args {
    /// Query a running agent at this address instead of an in-process server.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// With --target: the name to ask SRV for.
    #[arg(long, default_value = "web.prod.berth.")]
    name: String,
    /// In-process: discovery services in the namespace.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// In-process: healthy tasks per service.
    #[arg(long, default_value_t = 10)]
    instances: usize,
    /// In-process: the server runtime's worker threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Concurrent clients (one UDP socket and one query in flight each).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// A feed of `services` services of `instances` tasks each, in namespace `prod.berth`.
fn synthetic_feed(services: usize, instances: usize) -> DiscoveryFeed {
    DiscoveryFeed {
        revision: 1,
        services: (0..services)
            .map(|s| DiscoveredService {
                namespace: "prod.berth".into(),
                name: format!("svc{s}"),
                a_ttl: None,
                srv_ttl: Some(5),
                instances: (0..instances)
                    .map(|i| DiscoveredInstance {
                        id: format!("{:032x}", s * instances + i),
                        address: Some([10, 0, (i / 250) as u8, (i % 250) as u8 + 1].into()),
                        port: Some(31000 + i as u16),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Counted answers and their latencies, shared by the clients.
struct Tally {
    measuring: AtomicBool,
    stop: AtomicBool,
    answered: AtomicU64,
    failed: AtomicU64,
}

async fn client(
    server: SocketAddr,
    names: Arc<Vec<Name>>,
    offset: usize,
    tally: Arc<Tally>,
) -> Result<Histogram<u64>> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    let mut latencies = Histogram::<u64>::new(3)?;
    let mut buf = vec![0u8; 4096];
    let mut n = offset;
    let mut id: u16 = offset as u16;
    while !tally.stop.load(Ordering::Relaxed) {
        id = id.wrapping_add(1);
        let mut query = Message::new();
        query.set_id(id);
        query.add_query(Query::query(
            names[n % names.len()].clone(),
            RecordType::SRV,
        ));
        n += 1;
        let bytes = query.to_bytes()?;
        let started = Instant::now();
        socket.send(&bytes).await?;
        let answer = loop {
            match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
                Ok(Ok(len)) => match Message::from_bytes(&buf[..len]) {
                    // A late answer to an earlier, timed-out query: keep waiting for ours.
                    Ok(m) if m.id() != id => continue,
                    Ok(m) => break Some(m),
                    Err(_) => break None,
                },
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break None,
            }
        };
        if !tally.measuring.load(Ordering::Relaxed) {
            continue;
        }
        match answer {
            Some(m) if m.response_code() == ResponseCode::NoError && !m.answers().is_empty() => {
                tally.answered.fetch_add(1, Ordering::Relaxed);
                latencies.record(started.elapsed().as_micros() as u64)?;
            }
            _ => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(latencies)
}

/// CPU time (user + system) of the whole machine, in clock ticks, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy = fields.iter().take(3).sum::<u64>() + fields.get(5..8)?.iter().sum::<u64>();
    let total = fields.iter().sum();
    Some((busy, total))
}

fn main() -> Result<()> {
    let args = Args::parse();
    // The in-process server, on a runtime of its own like an agent's.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.max(1))
        .enable_all()
        .build()?;
    let (target, names) = match args.target {
        Some(target) => (target, vec![Name::from_ascii(&args.name)?]),
        None => {
            let feed = synthetic_feed(args.services, args.instances);
            let zones = SharedZones::default();
            zones.replace(Zones::build(&feed));
            let server = server_runtime
                .block_on(DnsServer::bind(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    zones,
                ))
                .context("binding the DNS server")?;
            let local = server.local;
            server_runtime.spawn(server.run());
            let names = feed
                .services
                .iter()
                .map(|s| Name::from_ascii(format!("{}.{}.", s.name, s.namespace)))
                .collect::<Result<Vec<_>, _>>()?;
            (local, names)
        }
    };
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let names = Arc::new(names);
    let tally = Arc::new(Tally {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        answered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let (latencies, seconds, cpu) = client_runtime.block_on(async {
        let handles: Vec<_> = (0..args.clients)
            .map(|i| tokio::spawn(client(target, names.clone(), i, tally.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        let before = machine_ticks();
        let started = Instant::now();
        tally.measuring.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(args.duration)).await;
        tally.measuring.store(false, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let after = machine_ticks();
        tally.stop.store(true, Ordering::Relaxed);
        let mut all = Histogram::<u64>::new(3)?;
        for h in handles {
            all.add(h.await??)?;
        }
        let cpu = before.zip(after).map(|((b0, t0), (b1, t1))| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            (b1 - b0) as f64 / (t1 - t0).max(1) as f64 * cores
        });
        anyhow::Ok((all, seconds, cpu))
    })?;
    let answered = tally.answered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    if answered == 0 {
        bail!("no query was answered ({failed} failed)");
    }
    println!(
        "target {target}: {} services; {} clients, {:.1} s measured",
        names.len(),
        args.clients,
        seconds
    );
    println!(
        "answered {answered} ({:.0}/s), failed {failed}; latency p50 {} µs, p99 {} µs, max {} µs; all cpu {}",
        answered as f64 / seconds,
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        latencies.max(),
        cpu.map_or_else(|| "unknown".into(), |c| format!("{c:.2} cores")),
    );
    Ok(())
}
