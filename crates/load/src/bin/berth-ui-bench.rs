//! `berth-ui-bench`: what the web UI costs on a large cluster.
//!
//! ```text
//!  setup:   cluster "ui-bench", N instances (registered by hand, no agents), T tasks
//!           (RunTask count 10; they stay PENDING with no agent to run them)
//!  sign in: POST /ui/login with the admin credential ──► session cookie
//!  page:    GET /ui and GET /ui?fragment=1, R times each (sequential) ──► median, p99
//!  idle:    S Server-Sent Events subscribers held open for W seconds, no changes
//!           ──► the server's CPU over the window (from /proc, --server-pid)
//!  live:    C changes (UpdateClusterSettings) one at a time, --change-interval-ms apart; the
//!           time from the write's acknowledgement to the `change` event on an open stream
//!           ──► median, p99
//! ```
//! Plain HTTP on loopback only (the server and the harness share the machine).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_load::{Access, Conn, Endpoint, proc_stats};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measures the web UI's pages, idle subscribers and live-update latency")]
struct Args {
    /// The server's address (host:port), plain HTTP.
    #[arg(long, default_value = "127.0.0.1:8642")]
    addr: SocketAddr,
    #[command(flatten)]
    access: Access,
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// Tasks to run (a multiple of 10).
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Page loads measured per page.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Seconds the idle subscribers are held open.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Changes whose delivery is timed.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Pause between changes, in ms: longer than the UI's coalescing window (250 ms) times
    /// isolated changes, shorter times a burst.
    #[arg(long, default_value_t = 400)]
    change_interval_ms: u64,
    /// The server's pid, for its CPU over the idle window.
    #[arg(long)]
    server_pid: Option<u32>,
}

type Http = Client<HttpConnector, Full<Bytes>>;

const CLUSTER: &str = "ui-bench";

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let credentials = args.access.credentials()?;
    let endpoint = Endpoint::new(args.addr, credentials.clone(), None)?;
    let base = format!("http://{}", args.addr);
    let http: Http = Client::builder(TokioExecutor::new()).build_http();

    let started = Instant::now();
    populate(&endpoint, args.instances, args.tasks).await?;
    eprintln!(
        "setup: {} instances, {} tasks in {:.1} s",
        args.instances,
        args.tasks,
        started.elapsed().as_secs_f64()
    );

    let cookie = sign_in(&http, &base, &credentials).await?;
    for path in ["/ui", "/ui?fragment=1"] {
        let mut took = Vec::with_capacity(args.requests);
        let mut size = 0;
        for _ in 0..args.requests {
            let t = Instant::now();
            let (status, body) = get(&http, &format!("{base}{path}"), &cookie).await?;
            took.push(t.elapsed());
            if status != 200 {
                bail!("GET {path} answered {status}");
            }
            size = body.len();
        }
        report(&format!("GET {path} ({} KiB)", size / 1024), &mut took);
    }

    // Idle subscribers: open, then nothing changes for the window.
    let mut streams = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        streams.push(subscribe(&http, &base, &cookie).await?);
    }
    let before = args.server_pid.and_then(proc_stats);
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let after = args.server_pid.and_then(proc_stats);
    if let (Some(b), Some(a)) = (before, after) {
        let share = (a.cpu_s - b.cpu_s) / args.idle_seconds as f64 * 100.0;
        println!(
            "{} idle SSE subscribers for {} s: server CPU {:.2} s = {share:.2} % of one core, RSS {:.0} MiB",
            args.subscribers,
            args.idle_seconds,
            a.cpu_s - b.cpu_s,
            a.rss_mib
        );
    }
    drop(streams);

    // Change → event on an open stream.
    let mut stream = subscribe(&http, &base, &cookie).await?;
    let mut conn = Conn::open(&endpoint).await?;
    let mut took = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        tokio::time::sleep(Duration::from_millis(args.change_interval_ms)).await;
        let value = if i % 2 == 0 { "enabled" } else { "disabled" };
        conn.call_json(
            "UpdateClusterSettings",
            json!({"cluster": CLUSTER, "settings": [{"name": "containerInsights", "value": value}]}),
        )
        .await?;
        let t = Instant::now();
        next_change(&mut stream).await?;
        took.push(t.elapsed());
    }
    report("change → SSE event", &mut took);
    Ok(())
}

async fn populate(endpoint: &Endpoint, instances: usize, tasks: usize) -> Result<()> {
    let mut c = Conn::open(endpoint).await?;
    c.call_json("CreateCluster", json!({"clusterName": CLUSTER}))
        .await?;
    c.call_json(
        "RegisterTaskDefinition",
        json!({"family": "ui-bench", "containerDefinitions": [
            {"name": "app", "image": "busybox", "cpu": 1, "memory": 6}]}),
    )
    .await?;
    for i in 0..instances {
        c.call_json(
            "RegisterContainerInstance",
            json!({"cluster": CLUSTER, "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 1_000_000},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 1_000_000}],
                "instanceIdentityDocument": json!({"instanceId": format!("i-ui{i:05}")}).to_string()}),
        )
        .await?;
    }
    for _ in 0..tasks / 10 {
        c.call_json(
            "RunTask",
            json!({"cluster": CLUSTER, "taskDefinition": "ui-bench", "count": 10}),
        )
        .await?;
    }
    Ok(())
}

async fn sign_in(
    http: &Http,
    base: &str,
    credentials: &berth_client::Credentials,
) -> Result<String> {
    let form = format!(
        "access_key_id={}&secret={}",
        credentials.access_key_id,
        form_encode(credentials.secret.expose())
    );
    let req = hyper::Request::post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))?;
    let resp = http.request(req).await?;
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("signing in gave no session cookie")?;
    Ok(cookie.to_owned())
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn get(http: &Http, url: &str, cookie: &str) -> Result<(u16, Bytes)> {
    let req = hyper::Request::get(url)
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))?;
    let resp = http.request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

async fn subscribe(http: &Http, base: &str, cookie: &str) -> Result<Incoming> {
    let req = hyper::Request::get(format!("{base}/ui/events"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))?;
    let resp = http.request(req).await?;
    if resp.status() != 200 {
        bail!("GET /ui/events answered {}", resp.status());
    }
    Ok(resp.into_body())
}

/// Reads the stream until a `change` event has arrived.
async fn next_change(stream: &mut Incoming) -> Result<()> {
    let mut seen = String::new();
    while !seen.contains("event: change") {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.frame())
            .await
            .context("no change event within 10 s")?
            .context("the event stream ended")??;
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    Ok(())
}

fn report(what: &str, took: &mut [Duration]) {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: n {} median {:.1} ms p99 {:.1} ms max {:.1} ms",
        took.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    );
}
