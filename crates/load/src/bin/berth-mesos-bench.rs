//! `berth-mesos-bench`: how quickly berth's Mesos v1 scheduler API turns free capacity into
//! offers, and an accepted LAUNCH into TASK_RUNNING, with several frameworks at once (issue 6's
//! benchmark).
//!
//! ```text
//!  subscribe  F frameworks `berth-bench-0..F-1`: SUBSCRIBE over HTTP/1.1, each stream read as
//!             chunked RecordIO (berth_mesos::recordio::Decoder); every event is timestamped
//!             when its chunk arrives; every call is sent in the background (answers are 202)
//!  churn      every framework DECLINEs each OFFERS event at once, all its offers in one call,
//!             refuse_seconds 0: every instance goes round the offer cycle continuously
//!             sample = DECLINE written → next OFFERS event (any framework) naming that agent
//!             also: offers each framework received in the first --fair-secs
//!  sparse     each framework holds --hold offers and declines the rest with refuse_seconds 3600,
//!             so after a few rounds every other instance is filtered for everyone; each framework
//!             then declines one held offer at random intervals (refuse_seconds 0)
//!             sample = the same, for one instance at a time on an otherwise idle cluster
//!  launch     REVIVE; each framework launches its share of --tasks, one command task per offer
//!             (0.1 cpus, 32 MiB, `sleep 3600`), refuse_seconds 0, then SUPPRESSes
//!             sample = ACCEPT written → UPDATE TASK_RUNNING for that task; every update with a
//!             uuid is ACKNOWLEDGEd; throughput = tasks / (first ACCEPT → last TASK_RUNNING)
//!             cross-check: the ECS API's runningTasksCount of the cluster
//!  kill       every framework KILLs all its tasks; sample = KILL written → UPDATE TASK_KILLED
//! ```
//! Two offer-cycle phases because they answer different questions: `sparse` is the latency a
//! framework sees for one freed instance (the server's offer loop runs when the decline
//! commits, at most one pass per pacing gap), `churn` the same with every instance of the
//! cluster cycling at once, which is the most work the offer path can be given. Neither
//! includes the framework's own think time: the decline is sent as soon as the offer is read.
//!
//! It only speaks the Mesos API (plus two ECS reads for cross-checks), so it measures whatever
//! runs the tasks; the intended set-up is a fresh server and `berth-fleet` (hollow agents:
//! the figures are the control plane's), which `scripts/bench-mesos.sh` starts. With
//! `--server-pid` / `--fleet-pid` it reports each process's CPU seconds per phase, since on a
//! small machine the server, the agents and this client share the same cores.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_client::Transport;
use berth_load::{Access, Conn, ProcStats, proc_stats};
use berth_mesos::recordio::Decoder;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

const PATH: &str = "/api/v1/scheduler";
/// A framework with nothing left to do declines for this long (an hour, as many real ones do).
const LONG_REFUSE: f64 = 3600.0;
/// Held offers older than this are declined before the server's 10 s offer timeout rescinds
/// them.
const HOLD_AT_MOST: Duration = Duration::from_secs(7);

#[derive(Parser)]
#[command(about = "Mesos scheduler API benchmark: offer cycle and LAUNCH → TASK_RUNNING")]
struct Args {
    /// The server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8642")]
    addr: SocketAddr,
    /// Frameworks authenticate with HTTP Basic (access key id : secret) of this credential.
    #[command(flatten)]
    access: Access,
    /// The cluster frameworks schedule on (the server's --mesos-cluster); only read, for the
    /// cross-checks.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// How many frameworks subscribe.
    #[arg(long, default_value_t = 4)]
    frameworks: usize,
    /// Seconds to measure the processes' CPU before any framework subscribes (the baseline:
    /// agents polling, nothing else).
    #[arg(long, default_value_t = 5.0)]
    idle_secs: f64,
    /// Seconds of the churn phase (every offer declined at once, refuse_seconds 0).
    #[arg(long, default_value_t = 10.0)]
    churn_secs: f64,
    /// The fairness window: offers each framework received in the first this many seconds of
    /// the churn phase (counted from the moment all frameworks are subscribed).
    #[arg(long, default_value_t = 5.0)]
    fair_secs: f64,
    /// Seconds of the sparse phase (one instance at a time), including --settle-secs.
    #[arg(long, default_value_t = 20.0)]
    sparse_secs: f64,
    /// Seconds at the start of the sparse phase for every unheld instance to be declined by
    /// every framework, before sampling starts.
    #[arg(long, default_value_t = 3.0)]
    settle_secs: f64,
    /// Offers each framework holds in the sparse phase.
    #[arg(long, default_value_t = 5)]
    hold: usize,
    /// Mean milliseconds between one framework's sampling declines in the sparse phase (each
    /// interval is drawn uniformly from half to one and a half times this, so samples fall at
    /// every point of the server's pacing gap between passes).
    #[arg(long, default_value_t = 200)]
    sample_ms: u64,
    /// Tasks launched in all, shared evenly between the frameworks.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Most tasks one framework has launched but not yet seen RUNNING (0: no limit, every
    /// offer is used as it arrives). Offers it cannot use yet are held.
    #[arg(long, default_value_t = 0)]
    inflight: usize,
    /// Calls one framework has in flight at once (each on its own connection).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds to wait for the launch and kill phases to finish.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Skip the kill phase.
    #[arg(long)]
    no_kill: bool,
    /// The server's pid: report its CPU time and memory per phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The agents' (berth-fleet's) pid: report its CPU time and memory per phase.
    #[arg(long)]
    fleet_pid: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Churn,
    Sparse,
    Launch,
    Kill,
    Done,
}

const PHASES: [Phase; 5] = [
    Phase::Churn,
    Phase::Sparse,
    Phase::Launch,
    Phase::Kill,
    Phase::Done,
];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Churn => "churn",
            Phase::Sparse => "sparse",
            Phase::Launch => "launch",
            Phase::Kill => "kill",
            Phase::Done => "done",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Everything measured, shared by the frameworks' drivers and their background calls.
#[derive(Default)]
struct Book {
    /// agent id → when the DECLINE that released it was written, and in which phase.
    pending: HashMap<String, (Instant, Phase)>,
    /// Offer-cycle samples (ms) by the phase of their DECLINE.
    cycle: [Vec<f64>; 5],
    /// Offers received, per framework, per phase.
    offers: Vec<[u64; 5]>,
    /// OFFERS events received, per framework, per phase.
    offer_events: Vec<[u64; 5]>,
    /// Offers received per framework in the fairness window.
    fair: Vec<u64>,
    rescinds: Vec<u64>,
    /// Mesos task id → when its ACCEPT was written.
    accept_sent: HashMap<String, Instant>,
    /// Mesos task id → when its KILL was written.
    kill_sent: HashMap<String, Instant>,
    /// ACCEPT → TASK_RUNNING, ms.
    launch: Vec<f64>,
    /// KILL → TASK_KILLED, ms.
    kill: Vec<f64>,
    running: usize,
    failed: usize,
    killed: usize,
    first_accept: Option<Instant>,
    last_running: Option<Instant>,
    first_kill: Option<Instant>,
    last_killed: Option<Instant>,
    acks: u64,
    /// Calls not answered 202, failed updates, ERROR events.
    errors: u64,
    examples: Vec<String>,
}

impl Book {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, p90, max of `v` (sorted in place), nearest rank.
fn summary(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return json!({"samples": 0});
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    json!({
        "samples": v.len(),
        "p50_ms": round1(at(0.5)),
        "p90_ms": round1(at(0.9)),
        "p99_ms": round1(at(0.99)),
        "max_ms": round1(at(1.0)),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One framework's side of the API: its identity, and calls sent in the background.
#[derive(Clone)]
struct Api {
    http: Transport,
    uri: String,
    /// HTTP Basic, as a Mesos framework authenticates.
    authorization: HeaderValue,
    index: usize,
    id: String,
    stream: String,
    permits: Arc<Semaphore>,
    book: Arc<Mutex<Book>>,
}

impl Api {
    /// Sends `body` without waiting for the answer (a framework's event loop must never
    /// wait on one). `stamp` runs just before the request is written, once a connection slot
    /// is free, so client-side queueing is not counted in a latency.
    fn call(&self, body: Value, stamp: impl FnOnce(Instant) + Send + 'static) {
        let api = self.clone();
        tokio::spawn(async move {
            let kind = body["type"].as_str().unwrap_or("?").to_owned();
            let Ok(_permit) = api.permits.acquire().await else {
                return;
            };
            let req = hyper::Request::post(&api.uri)
                .header("authorization", api.authorization.clone())
                .header("content-type", "application/json")
                .header("mesos-stream-id", &api.stream)
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("a valid request");
            stamp(Instant::now());
            let answer = match api.http.request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                    (status, body.unwrap_or_default())
                }
                Err(e) => (0, Bytes::from(e.to_string())),
            };
            if answer.0 != 202 {
                lock(&api.book).error(format!(
                    "framework {}: {kind} answered {}: {}",
                    api.index,
                    answer.0,
                    String::from_utf8_lossy(&answer.1)
                ));
            }
        });
    }

    fn framework_id(&self) -> Value {
        json!({"value": self.id})
    }

    /// DECLINEs `offers` (ids) for `refuse` seconds; with `sample`, the agents' next offers
    /// are timed from this call.
    fn decline(&self, offers: Vec<(Value, String)>, refuse: f64, sample: Option<Phase>) {
        if offers.is_empty() {
            return;
        }
        let ids: Vec<Value> = offers.iter().map(|(id, _)| id.clone()).collect();
        let body = json!({
            "type": "DECLINE",
            "framework_id": self.framework_id(),
            "decline": {"offer_ids": ids, "filters": {"refuse_seconds": refuse}},
        });
        let book = self.book.clone();
        self.call(body, move |at| {
            if let Some(phase) = sample {
                let mut b = lock(&book);
                for (_, agent) in offers {
                    b.pending.insert(agent, (at, phase));
                }
            }
        });
    }

    fn simple(&self, kind: &str) {
        self.call(
            json!({"type": kind, "framework_id": self.framework_id()}),
            |_| {},
        );
    }
}

/// Subscribes a framework; returns its API handle and its events, each with when its chunk
/// arrived.
async fn subscribe(
    http: &Transport,
    uri: &str,
    authorization: &HeaderValue,
    index: usize,
    args: &Args,
    book: Arc<Mutex<Book>>,
) -> Result<(Api, mpsc::UnboundedReceiver<(Instant, Value)>)> {
    let body = json!({
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": {
            "user": "root",
            "name": format!("berth-bench-{index}"),
            "failover_timeout": 0.0,
        }}
    });
    let req = hyper::Request::post(uri)
        .header("authorization", authorization.clone())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = http.request(req).await.context("SUBSCRIBE")?;
    if resp.status() != 200 {
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        bail!(
            "SUBSCRIBE answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let stream = resp
        .headers()
        .get("mesos-stream-id")
        .and_then(|v| v.to_str().ok())
        .context("no Mesos-Stream-Id header")?
        .to_owned();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let mut decoder = Decoder::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            let at = Instant::now();
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let records = match decoder.feed(&data) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send((at, json!({"type": "BENCH_BROKEN", "why": e.to_string()})));
                    return;
                }
            };
            for record in records {
                let event = serde_json::from_slice(&record).unwrap_or_else(
                    |e| json!({"type": "BENCH_BROKEN", "why": format!("not JSON: {e}")}),
                );
                if tx.send((at, event)).is_err() {
                    return;
                }
            }
        }
    });
    let (_, first) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .context("no SUBSCRIBED within 10 s")?
        .context("the stream ended before SUBSCRIBED")?;
    if first["type"] != "SUBSCRIBED" {
        bail!("the first event is not SUBSCRIBED: {first}");
    }
    let id = first["subscribed"]["framework_id"]["value"]
        .as_str()
        .context("SUBSCRIBED without a framework id")?
        .to_owned();
    let api = Api {
        http: http.clone(),
        uri: uri.to_owned(),
        authorization: authorization.clone(),
        index,
        id,
        stream,
        permits: Arc::new(Semaphore::new(args.connections.max(1))),
        book,
    };
    Ok((api, rx))
}

/// An offer a framework keeps for later.
struct Held {
    id: Value,
    agent: String,
    at: Instant,
}

/// What one framework does with its events, phase by phase.
struct Driver {
    api: Api,
    /// Tasks this framework launches in the launch phase.
    budget: usize,
    hold: usize,
    inflight: usize,
    sample_every: Duration,
    settle: Duration,
    held: VecDeque<Held>,
    launched: Vec<String>,
    in_flight: usize,
    suppressed: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<(Instant, Value)>,
        mut phase: watch::Receiver<(Phase, Instant)>,
    ) {
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let mut next_sample = far();
        let mut housekeeping = tokio::time::interval(Duration::from_millis(500));
        loop {
            let (now_phase, since) = *phase.borrow();
            tokio::select! {
                e = events.recv() => match e {
                    Some((at, event)) => self.event(now_phase, at, &event),
                    None => {
                        // TEARDOWN ends it; before that, an end is a failure.
                        if now_phase != Phase::Done {
                            lock(&self.api.book).error(format!(
                                "framework {}: the event stream ended",
                                self.api.index
                            ));
                        }
                        return;
                    }
                },
                changed = phase.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let (p, since) = *phase.borrow();
                    next_sample = match p {
                        Phase::Sparse => (since + self.settle + self.jitter()).into(),
                        _ => far(),
                    };
                    self.enter(p);
                }
                _ = tokio::time::sleep_until(next_sample) => {
                    next_sample = tokio::time::Instant::now() + self.jitter();
                    if now_phase == Phase::Sparse && since.elapsed() >= self.settle
                        && let Some(h) = self.held.pop_front()
                    {
                        self.api.decline(vec![(h.id, h.agent)], 0.0, Some(Phase::Sparse));
                    }
                }
                _ = housekeeping.tick() => self.expire_held(now_phase),
            }
        }
    }

    /// A uniformly random interval between half and one and a half sampling periods.
    fn jitter(&self) -> Duration {
        self.sample_every.mul_f64(0.5 + rand::random::<f64>())
    }

    fn enter(&mut self, phase: Phase) {
        match phase {
            Phase::Launch => {
                // Clear the sparse phase's hour-long filters, then use what is held.
                self.api.simple("REVIVE");
                self.launch_from_held();
            }
            Phase::Kill => {
                for task in &self.launched {
                    let body = json!({
                        "type": "KILL",
                        "framework_id": self.api.framework_id(),
                        "kill": {"task_id": {"value": task}},
                    });
                    let book = self.api.book.clone();
                    let task = task.clone();
                    self.api.call(body, move |at| {
                        let mut b = lock(&book);
                        b.kill_sent.insert(task, at);
                        b.first_kill = Some(b.first_kill.map_or(at, |f| f.min(at)));
                    });
                }
            }
            _ => {}
        }
        if matches!(phase, Phase::Kill | Phase::Done) {
            let held: Vec<_> = self.held.drain(..).map(|h| (h.id, h.agent)).collect();
            self.api.decline(held, LONG_REFUSE, None);
        }
    }

    /// Declines held offers before the server's offer timeout would rescind them.
    fn expire_held(&mut self, phase: Phase) {
        let mut old = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|h| h.at.elapsed() > HOLD_AT_MOST)
        {
            let h = self.held.pop_front().expect("checked");
            old.push((h.id, h.agent));
        }
        // Declined for good only once the framework has nothing left to launch.
        let still_wanted = match phase {
            Phase::Churn | Phase::Sparse => true,
            Phase::Launch => self.launched.len() < self.budget,
            Phase::Kill | Phase::Done => false,
        };
        let refuse = if still_wanted { 0.0 } else { LONG_REFUSE };
        self.api.decline(old, refuse, None);
    }

    fn may_launch(&self) -> bool {
        self.launched.len() < self.budget && (self.inflight == 0 || self.in_flight < self.inflight)
    }

    fn launch_from_held(&mut self) {
        while self.may_launch() {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            self.launch(h.id, h.agent);
        }
        self.maybe_suppress();
    }

    /// Once everything is launched a framework has no use for offers: SUPPRESS, as real
    /// frameworks do, so the launches still running are not competing with useless offers.
    fn maybe_suppress(&mut self) {
        if self.launched.len() >= self.budget && !self.suppressed {
            self.suppressed = true;
            self.api.simple("SUPPRESS");
            let held: Vec<_> = self.held.drain(..).map(|h| (h.id, h.agent)).collect();
            self.api.decline(held, LONG_REFUSE, None);
        }
    }

    fn launch(&mut self, offer: Value, agent: String) {
        let task = format!("bench-{}-{:05}", self.api.index, self.launched.len());
        self.launched.push(task.clone());
        self.in_flight += 1;
        let body = json!({
            "type": "ACCEPT",
            "framework_id": self.api.framework_id(),
            "accept": {
                "offer_ids": [offer],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                    "name": task,
                    "task_id": {"value": task},
                    "agent_id": {"value": agent},
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}
                    ],
                    "command": {"value": "sleep 3600"}
                }]}}],
                "filters": {"refuse_seconds": 0}
            }
        });
        let book = self.api.book.clone();
        self.api.call(body, move |at| {
            let mut b = lock(&book);
            b.accept_sent.insert(task, at);
            b.first_accept = Some(b.first_accept.map_or(at, |f| f.min(at)));
        });
    }

    fn event(&mut self, phase: Phase, at: Instant, e: &Value) {
        match e["type"].as_str().unwrap_or_default() {
            "OFFERS" => self.offers(phase, at, e),
            "UPDATE" => self.update(at, &e["update"]["status"]),
            "RESCIND" => {
                let id = &e["rescind"]["offer_id"];
                self.held.retain(|h| h.id != *id);
                lock(&self.api.book).rescinds[self.api.index] += 1;
            }
            "ERROR" | "BENCH_BROKEN" => {
                lock(&self.api.book).error(format!("framework {}: {e}", self.api.index));
            }
            _ => {}
        }
    }

    fn offers(&mut self, phase: Phase, at: Instant, e: &Value) {
        let offers: Vec<(Value, String)> = e["offers"]["offers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|o| {
                (
                    o["id"].clone(),
                    o["agent_id"]["value"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        {
            let mut b = lock(&self.api.book);
            let i = self.api.index;
            b.offers[i][phase.index()] += offers.len() as u64;
            b.offer_events[i][phase.index()] += 1;
            for (_, agent) in &offers {
                if let Some((sent, p)) = b.pending.remove(agent) {
                    b.cycle[p.index()].push(ms(at.saturating_duration_since(sent)));
                }
            }
        }
        let mut decline = Vec::new();
        let mut refuse = LONG_REFUSE;
        match phase {
            Phase::Churn => {
                self.api.decline(offers, 0.0, Some(Phase::Churn));
                return;
            }
            Phase::Sparse => {
                for (id, agent) in offers {
                    if self.held.len() < self.hold {
                        self.held.push_back(Held { id, agent, at });
                    } else {
                        decline.push((id, agent));
                    }
                }
            }
            Phase::Launch => {
                for (id, agent) in offers {
                    if self.may_launch() {
                        self.launch(id, agent);
                    } else if self.launched.len() + self.held.len() < self.budget {
                        self.held.push_back(Held { id, agent, at });
                    } else {
                        decline.push((id, agent));
                    }
                }
                self.maybe_suppress();
            }
            Phase::Kill | Phase::Done => decline = offers,
        }
        if phase == Phase::Launch && self.launched.len() < self.budget {
            refuse = 0.0;
        }
        self.api.decline(decline, refuse, None);
    }

    fn update(&mut self, at: Instant, status: &Value) {
        let task = status["task_id"]["value"].as_str().unwrap_or_default();
        let state = status["state"].as_str().unwrap_or_default();
        if let Some(uuid) = status.get("uuid") {
            lock(&self.api.book).acks += 1;
            self.api.call(
                json!({
                    "type": "ACKNOWLEDGE",
                    "framework_id": self.api.framework_id(),
                    "acknowledge": {
                        "agent_id": status["agent_id"],
                        "task_id": {"value": task},
                        "uuid": uuid,
                    }
                }),
                |_| {},
            );
        }
        let mut b = lock(&self.api.book);
        match state {
            "TASK_RUNNING" => {
                if let Some(sent) = b.accept_sent.remove(task) {
                    b.launch.push(ms(at.saturating_duration_since(sent)));
                    b.running += 1;
                    b.last_running = Some(b.last_running.map_or(at, |l| l.max(at)));
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
            "TASK_KILLED" => {
                if let Some(sent) = b.kill_sent.remove(task) {
                    b.kill.push(ms(at.saturating_duration_since(sent)));
                    b.killed += 1;
                    b.last_killed = Some(b.last_killed.map_or(at, |l| l.max(at)));
                }
            }
            "TASK_ERROR" | "TASK_DROPPED" | "TASK_FAILED" | "TASK_LOST" | "TASK_FINISHED"
            | "TASK_GONE" => {
                if b.accept_sent.remove(task).is_some() {
                    b.failed += 1;
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                b.error(format!(
                    "framework {}: {task} {state}: {}",
                    self.api.index, status["message"]
                ));
            }
            _ => {}
        }
        drop(b);
        if state == "TASK_RUNNING" {
            self.launch_from_held();
        }
    }
}

/// The processes whose CPU time and memory are reported.
struct Watched(Vec<(&'static str, u32)>);

impl Watched {
    fn sample(&self) -> Vec<Option<ProcStats>> {
        self.0.iter().map(|(_, pid)| proc_stats(*pid)).collect()
    }

    /// CPU seconds each process used since `before`, and its RSS now.
    fn delta(&self, before: &[Option<ProcStats>]) -> Value {
        let after = self.sample();
        let mut out = serde_json::Map::new();
        for ((name, _), (b, a)) in self.0.iter().zip(before.iter().zip(after)) {
            out.insert(
                format!("{name}_cpu_s"),
                json!(b.zip(a).map(|(b, a)| round1(a.cpu_s - b.cpu_s))),
            );
            out.insert(
                format!("{name}_rss_mib"),
                json!(a.map(|a| a.rss_mib.round())),
            );
        }
        Value::Object(out)
    }
}

/// Waits until `done` holds of the book, or `timeout`.
async fn until(book: &Mutex<Book>, timeout: Duration, done: impl Fn(&Book) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last_progress = Instant::now();
    loop {
        {
            let b = lock(book);
            if done(&b) {
                return true;
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                eprintln!(
                    "  running {}, failed {}, killed {}, errors {}",
                    b.running, b.failed, b.killed, b.errors
                );
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d.max(0.0))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.frameworks == 0 {
        bail!("--frameworks must be at least 1");
    }
    let mut watched = vec![("bench", std::process::id())];
    watched.extend(args.server_pid.map(|p| ("server", p)));
    watched.extend(args.fleet_pid.map(|p| ("fleet", p)));
    let watched = Watched(watched);

    let endpoint = args.access.endpoint(args.addr)?;
    let mut ecs = Conn::open(&endpoint).await?;
    let cl = ecs
        .call_json("DescribeClusters", json!({"clusters": [args.cluster]}))
        .await?;
    let instances = cl["clusters"][0]["registeredContainerInstancesCount"]
        .as_u64()
        .with_context(|| format!("cluster {} not found: {cl}", args.cluster))?;
    eprintln!(
        "{} frameworks on {instances} instances of cluster {}",
        args.frameworks, args.cluster
    );

    // The server's cost with the agents and no framework, to tell the Mesos loops' apart.
    let mut cpu = serde_json::Map::new();
    if args.idle_secs > 0.0 {
        let before = watched.sample();
        tokio::time::sleep(secs(args.idle_secs)).await;
        cpu.insert("idle".into(), watched.delta(&before));
    }

    // A pool that keeps every idle connection (up to --connections per framework are busy).
    let http = Transport::new(&args.access.trust()?)?;
    let uri = format!("{}{PATH}", endpoint.base_url());
    let mut authorization = HeaderValue::from_str(&endpoint.basic_authorization())?;
    authorization.set_sensitive(true);
    let book = Arc::new(Mutex::new(Book {
        offers: vec![[0; 5]; args.frameworks],
        offer_events: vec![[0; 5]; args.frameworks],
        fair: vec![0; args.frameworks],
        rescinds: vec![0; args.frameworks],
        ..Default::default()
    }));
    let (phase_tx, phase_rx) = watch::channel((Phase::Churn, Instant::now()));
    let mut apis = Vec::new();
    let mut drivers = Vec::new();
    for i in 0..args.frameworks {
        let (api, events) = subscribe(&http, &uri, &authorization, i, &args, book.clone()).await?;
        let budget = args.tasks / args.frameworks + usize::from(i < args.tasks % args.frameworks);
        let driver = Driver {
            api: api.clone(),
            budget,
            hold: args.hold,
            inflight: args.inflight,
            sample_every: Duration::from_millis(args.sample_ms.max(1)),
            settle: secs(args.settle_secs),
            held: VecDeque::new(),
            launched: Vec::new(),
            in_flight: 0,
            suppressed: false,
        };
        drivers.push(tokio::spawn(driver.run(events, phase_rx.clone())));
        apis.push(api);
    }
    // The fairness window starts once everyone is subscribed; the churn phase's totals
    // include what the first frameworks got before that.
    let t_churn = Instant::now();
    phase_tx.send_replace((Phase::Churn, t_churn));
    let fair_from = {
        let b = lock(&book);
        b.offers.iter().map(|o| o[0]).collect::<Vec<_>>()
    };
    let before = watched.sample();
    tokio::time::sleep(secs(args.fair_secs.min(args.churn_secs))).await;
    {
        let mut b = lock(&book);
        let fair: Vec<u64> = b
            .offers
            .iter()
            .zip(&fair_from)
            .map(|(o, f)| o[0] - f)
            .collect();
        b.fair = fair;
    }
    tokio::time::sleep(secs(args.churn_secs - args.fair_secs)).await;
    cpu.insert("churn".into(), watched.delta(&before));

    eprintln!("churn done; sparse phase");
    let before = watched.sample();
    phase_tx.send_replace((Phase::Sparse, Instant::now()));
    tokio::time::sleep(secs(args.sparse_secs)).await;
    cpu.insert("sparse".into(), watched.delta(&before));

    eprintln!("sparse done; launching {} tasks", args.tasks);
    let before = watched.sample();
    let t_launch = Instant::now();
    phase_tx.send_replace((Phase::Launch, t_launch));
    let tasks = args.tasks;
    let launched = until(&book, Duration::from_secs(args.timeout), |b| {
        b.running + b.failed >= tasks
    })
    .await;
    cpu.insert("launch".into(), watched.delta(&before));
    let cl = ecs
        .call_json("DescribeClusters", json!({"clusters": [args.cluster]}))
        .await?;
    let ecs_running = cl["clusters"][0]["runningTasksCount"].clone();
    // A framework's identical TaskInfos should share one task definition revision.
    let mut revisions = 0;
    for i in 0..args.frameworks {
        let defs = ecs
            .call_json(
                "ListTaskDefinitions",
                json!({"familyPrefix": format!("mesos-berth-bench-{i}"), "maxResults": 100}),
            )
            .await?;
        revisions += defs["taskDefinitionArns"].as_array().map_or(0, Vec::len);
    }

    let mut killed = true;
    if !args.no_kill {
        eprintln!("killing");
        let before = watched.sample();
        phase_tx.send_replace((Phase::Kill, Instant::now()));
        let running = lock(&book).running;
        killed = until(&book, Duration::from_secs(args.timeout), |b| {
            b.killed >= running
        })
        .await;
        cpu.insert("kill".into(), watched.delta(&before));
    }
    phase_tx.send_replace((Phase::Done, Instant::now()));
    for api in &apis {
        api.simple("TEARDOWN");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for d in &drivers {
        d.abort();
    }

    // Report.
    let mut b = lock(&book);
    let churn = summary(&mut b.cycle[Phase::Churn.index()]);
    let sparse = summary(&mut b.cycle[Phase::Sparse.index()]);
    let launch = summary(&mut b.launch);
    let kill = summary(&mut b.kill);
    let launch_span = b
        .first_accept
        .zip(b.last_running)
        .map(|(f, l)| l.saturating_duration_since(f).as_secs_f64());
    let kill_span = b
        .first_kill
        .zip(b.last_killed)
        .map(|(f, l)| l.saturating_duration_since(f).as_secs_f64());
    let per_s = |n: usize, span: Option<f64>| span.map(|s| round1(n as f64 / s));
    let row = |name: &str, v: &Value| {
        println!(
            "{:<44} {:>8} {:>8} {:>8} {:>8}",
            name,
            v["samples"].to_string(),
            v["p50_ms"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.1}")),
            v["p90_ms"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.1}")),
            v["max_ms"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.1}")),
        );
    };
    println!(
        "{} frameworks, {instances} instances, {} cores shared by server, agents and this client",
        args.frameworks,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "latency", "samples", "p50 ms", "p90 ms", "max ms"
    );
    row("offer cycle, churn (every instance cycling)", &churn);
    row("offer cycle, sparse (one instance at a time)", &sparse);
    row("ACCEPT (LAUNCH) → UPDATE TASK_RUNNING", &launch);
    if !args.no_kill {
        row("KILL → UPDATE TASK_KILLED", &kill);
    }
    println!(
        "  offer cycle = DECLINE (refuse_seconds 0) written → next OFFERS event naming that agent, to any framework"
    );
    println!(
        "launch: {} RUNNING, {} failed of {}, {} tasks/s (first ACCEPT → last TASK_RUNNING, {:.2} s); ECS runningTasksCount {ecs_running}; {revisions} task definition revisions registered",
        b.running,
        b.failed,
        args.tasks,
        per_s(b.running, launch_span).map_or("-".into(), |x| format!("{x:.0}")),
        launch_span.unwrap_or(f64::NAN),
    );
    if !args.no_kill {
        println!(
            "kill: {} KILLED, {} tasks/s (first KILL → last TASK_KILLED, {:.2} s)",
            b.killed,
            per_s(b.killed, kill_span).map_or("-".into(), |x| format!("{x:.0}")),
            kill_span.unwrap_or(f64::NAN),
        );
    }
    let churn_events: u64 = b.offer_events.iter().map(|e| e[0]).sum();
    println!(
        "churn: {churn_events} OFFERS events in {:.0} s ({:.2}/s; the offer loop runs at most one pass every 15 ms)",
        args.churn_secs,
        churn_events as f64 / args.churn_secs
    );
    println!(
        "offers received per framework (OFFERS events): first {:.0} s of churn | churn | sparse | launch",
        args.fair_secs
    );
    let mut offers_json = Vec::new();
    for i in 0..args.frameworks {
        let o = b.offers[i];
        let e = b.offer_events[i];
        println!(
            "  berth-bench-{i}: {:>7} | {:>7} ({:>4}) | {:>6} ({:>4}) | {:>6} ({:>4}); rescinded {}",
            b.fair[i], o[0], e[0], o[1], e[1], o[2], e[2], b.rescinds[i]
        );
        offers_json.push(json!({
            "fair_window": b.fair[i],
            "churn": o[0], "sparse": o[1], "launch": o[2], "kill": o[3],
            "events": {"churn": e[0], "sparse": e[1], "launch": e[2], "kill": e[3]},
            "rescinded": b.rescinds[i],
        }));
    }
    for name in std::iter::once("idle").chain(PHASES.iter().map(|p| p.name())) {
        if let Some(c) = cpu.get(name) {
            println!("{name} processes: {c}");
        }
    }
    println!("acknowledgements sent {}; errors {}", b.acks, b.errors);
    for e in &b.examples {
        println!("  {e}");
    }
    println!(
        "{}",
        json!({
            "bench": "mesos",
            "frameworks": args.frameworks,
            "instances": instances,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "offer_cycle_churn": churn,
            "offer_cycle_sparse": sparse,
            "launch": launch,
            "launch_tasks_per_s": per_s(b.running, launch_span),
            "launch_span_s": launch_span,
            "running": b.running,
            "failed": b.failed,
            "ecs_running_tasks": ecs_running,
            "task_definition_revisions": revisions,
            "kill": kill,
            "kill_tasks_per_s": per_s(b.killed, kill_span),
            "offers": offers_json,
            "churn_offer_events_per_s": round1(churn_events as f64 / args.churn_secs),
            "fair_secs": args.fair_secs,
            "processes": cpu,
            "errors": b.errors,
        })
    );
    if !launched || !killed {
        bail!(
            "not finished within {} s: {} RUNNING, {} failed, {} killed",
            args.timeout,
            b.running,
            b.failed,
            b.killed
        );
    }
    Ok(())
}
