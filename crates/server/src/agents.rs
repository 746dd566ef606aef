//! Agents, seen from the server: heartbeats, the assignment long-poll, health reports and log
//! streaming.
//!
//! ```text
//!  agent ── GET /v1/agent/poll ──► Heartbeats (memory) ──► monitor (leader, every second)
//!    ▲            │                                            │ silent > heartbeat_timeout
//!    │            ▼                                            ▼
//!    └── assignments once a task on the instance changes   AgentConnectivity{connected:false}
//!                                                              │ still silent > lost_after
//!                                                              ▼
//!                                                          AgentLost: its tasks STOPPED
//! ```
//! Heartbeats are soft state: a poll is recorded in memory on the server that answers it (a
//! follower passes its ids on to the leader once a second), because writing every heartbeat
//! to the Raft log would cost a log entry per agent per poll. Only the *transitions* are
//! commands in the log, so every server agrees on `agentConnected` and on which tasks were
//! lost. A new leader gives every agent a full heartbeat timeout before judging it, as it
//! cannot know when the old leader last heard from it.
//!
//! ```text
//!  commit ──► published state ──► dispatcher (one per server): the change log since the
//!                                 last state it saw → the instances whose tasks or record
//!                                 changed → wakes the polls waiting on those instances only
//! ```
//! A waiting poll sleeps until its own instance changes, not until anything commits: with
//! every poll woken by every commit, N agents cost N wake-ups and N recomputations per
//! commit, and a commit rate that grows with the cluster made that quadratic (issue 18).
//! The dispatcher reads the state's change log, so its cost is the number of entities that
//! changed; when it falls behind the log's reach (or a task came and went unseen) it wakes
//! every poll, which is what every commit used to do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use berth_api::agent::{
    AGENT_LOGS_PATH, AGENT_SIGNING_NAME, AssignedPort, Assignment, HEALTH_PATH, HealthReport,
    POLL_PATH, PollResponse,
};
use berth_api::protocol::DEFAULT_REGION;
use berth_api::{EcsError, ErrorCode};
use berth_auth::action;
use berth_client::{Credentials, Trust};
use berth_model::arn::{ArnContext, parse_task};
use berth_model::command::{AgentConnectivity, AgentLost, ContainerChange, TaskStateChange};
use berth_model::entity::{HealthStatus, InstanceStatus, Name, Task};
use berth_model::{InstanceId, Millis, TypedCommand};
use berth_state::{EntityKey, State as ClusterState};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::App;
use crate::auth::Principal;
use crate::ecs::{Ctx, cluster_param, context, error_response, instance_ref, render, task_ref};
use crate::metrics::AgentTransition;

/// Path a follower forwards the heartbeats it received to, on the leader.
pub(crate) const FORWARD_PATH: &str = "/v1/agent/heartbeats";
/// Longest wait a poll may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) fn router() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route(POLL_PATH, get(poll))
        .route(HEALTH_PATH, post(health))
        .route(FORWARD_PATH, post(forwarded))
        // `{task}/logs`, where the task is an id or a whole ARN (slashes and all).
        .route("/v1/tasks/{*task}", get(logs))
}

/// What this server keeps in memory about its agents: when each was last heard from, and
/// which polls wait for which instance to change.
#[derive(Default)]
pub struct Heartbeats {
    seen: Mutex<HashMap<InstanceId, Instant>>,
    /// Heard here while a follower, not yet passed on to the leader.
    to_forward: Mutex<HashSet<InstanceId>>,
    waiting: Waiting,
}

impl Heartbeats {
    pub fn heard(&self, id: InstanceId) {
        let now = Instant::now();
        self.seen.lock().expect("heartbeats lock").insert(id, now);
        self.to_forward.lock().expect("heartbeats lock").insert(id);
    }

    fn last(&self, id: InstanceId) -> Option<Instant> {
        self.seen.lock().expect("heartbeats lock").get(&id).copied()
    }
}

/// The polls waiting on each instance: one channel per instance with a poll waiting, which
/// carries the index of the instance's latest change the dispatcher has seen.
#[derive(Default)]
struct Waiting {
    by_instance: Mutex<HashMap<InstanceId, watch::Sender<u64>>>,
    /// Whether the dispatcher runs (started by the first poll).
    dispatching: AtomicBool,
}

/// One poll's wait on its instance; leaving, the last poll of an instance removes its channel.
struct Waiter<'a> {
    waiting: &'a Waiting,
    id: InstanceId,
    changes: Option<watch::Receiver<u64>>,
}

impl Waiting {
    /// Waits on instance `id`: every change the dispatcher reports after this call wakes the
    /// waiter, so a poll subscribes *before* it reads the state it compares.
    fn subscribe(&self, id: InstanceId) -> Waiter<'_> {
        let mut map = self.by_instance.lock().expect("waiting lock");
        let changes = map
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Waiter {
            waiting: self,
            id,
            changes: Some(changes),
        }
    }

    /// Wakes the polls waiting on `ids` (on every instance for `None`): the state at `index`
    /// changed those instances or their tasks.
    fn wake(&self, ids: Option<&HashSet<InstanceId>>, index: u64) {
        let map = self.by_instance.lock().expect("waiting lock");
        match ids {
            Some(ids) => {
                for id in ids {
                    if let Some(tx) = map.get(id) {
                        tx.send_replace(index);
                    }
                }
            }
            None => {
                for tx in map.values() {
                    tx.send_replace(index);
                }
            }
        }
    }
}

impl Waiter<'_> {
    /// Until the dispatcher reports a change of the instance, or `wait` passes.
    async fn changed(&mut self, wait: Duration) {
        if let Some(rx) = &mut self.changes {
            // The sender lives while this receiver does (see `drop`), so this cannot fail.
            let _ = tokio::time::timeout(wait, rx.changed()).await;
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        drop(self.changes.take());
        let mut map = self.waiting.by_instance.lock().expect("waiting lock");
        if map.get(&self.id).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(&self.id);
        }
    }
}

/// Starts this server's dispatcher, once: it follows the published state and wakes the polls
/// of the instances each commit changed.
fn dispatch(app: &Arc<App>) {
    let waiting = &app.heartbeats.waiting;
    if waiting.dispatching.swap(true, Ordering::AcqRel) {
        return;
    }
    // Read before the first poll reads its state, so no change after that one is missed.
    let mut seen = app.node.state();
    let app = app.clone();
    tokio::spawn(async move {
        loop {
            let newer = tokio::select! {
                newer = app.node.wait_beyond(seen.index(), Duration::from_secs(3600)) => newer,
                () = app.stopping() => return,
            };
            if newer.index() <= seen.index() {
                continue;
            }
            let changed = changed_instances(&seen, &newer);
            app.heartbeats.waiting.wake(changed.as_ref(), newer.index());
            seen = newer;
        }
    });
}

/// The instances whose record or tasks changed from `old` to `new`; `None` when that cannot
/// be told: the change log no longer reaches back to `old`, or a task was made and removed in
/// between, so neither state knows where it ran.
fn changed_instances(old: &ClusterState, new: &ClusterState) -> Option<HashSet<InstanceId>> {
    let mut ids = HashSet::new();
    for (_, key) in new.changes_since(old.index())? {
        match key {
            EntityKey::Instance(id) => {
                ids.insert(id);
            }
            EntityKey::Task(id) => match new.task(id).or_else(|| old.task(id)) {
                Some(t) => ids.extend(t.instance),
                None => return None,
            },
            _ => {}
        }
    }
    Some(ids)
}

/// The leader's heartbeat monitor; on followers it forwards heartbeats to the leader.
pub struct Monitor;

impl Monitor {
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.config.heartbeat_check_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut leading_since: Option<Instant> = None;
            loop {
                tick.tick().await;
                let leader = app.node.leader();
                if leader.as_ref().map(|(id, _)| *id) != Some(app.node.id()) {
                    leading_since = None;
                    if let Some((_, addr)) = leader {
                        forward(&app, &addr).await;
                    }
                    continue;
                }
                app.heartbeats
                    .to_forward
                    .lock()
                    .expect("heartbeats lock")
                    .clear();
                let since = *leading_since.get_or_insert_with(Instant::now);
                let verdicts = judge(&app, &app.node.state(), since, Instant::now());
                for lost in verdicts.lost {
                    if record(&app, lost).await {
                        app.metrics.agents(AgentTransition::Lost, 1);
                    }
                }
                for silent in verdicts.silent {
                    let count = silent.ids.len();
                    if record(&app, silent).await {
                        app.metrics.agents(AgentTransition::Disconnected, count);
                    }
                }
            }
        })
    }
}

/// Writes one of the monitor's verdicts; whether it took effect. One that fails is logged; the
/// next tick judges again.
async fn record<C: TypedCommand>(app: &App, verdict: C) -> bool {
    match app.node.write(verdict).await {
        Ok(written) => written.result.is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "recording agent connectivity failed");
            false
        }
    }
}

/// The commands the monitor owes the log now, written in this order.
struct Verdicts {
    /// Agents disconnected for the grace period whose tasks are still live.
    lost: Vec<AgentLost>,
    /// Agents gone silent: one command per cluster.
    silent: Vec<AgentConnectivity>,
}

/// What the monitor owes the log now: agents lost, agents gone silent.
fn judge(app: &App, state: &ClusterState, leading_since: Instant, now: Instant) -> Verdicts {
    let timeout = app.config.heartbeat_timeout;
    let lost_after = app.config.agent_lost_after.as_millis() as i64;
    let wall = Millis::now();
    let mut silent: BTreeMap<Name, Vec<InstanceId>> = BTreeMap::new();
    let mut lost = Vec::new();
    for cluster in state.clusters_after(None) {
        for i in state.instances_after(&cluster.name, None) {
            if i.status == InstanceStatus::Inactive {
                continue;
            }
            if i.agent_connected {
                let last = app
                    .heartbeats
                    .last(i.id)
                    .map_or(leading_since, |t| t.max(leading_since));
                if now.saturating_duration_since(last) > timeout {
                    silent.entry(cluster.name.clone()).or_default().push(i.id);
                }
            } else if i
                .disconnected_at
                .is_some_and(|at| at.saturating_add_ms(lost_after) <= wall)
                && state.tasks_on(i.id).any(|t| t.is_live())
            {
                lost.push(AgentLost {
                    cluster: cluster.name.clone(),
                    id: i.id,
                    reason: format!(
                        "The agent on container instance {} stopped sending heartbeats; it was lost after {}s without one",
                        i.id,
                        app.config.heartbeat_timeout.as_secs() + app.config.agent_lost_after.as_secs()
                    ),
                });
            }
        }
    }
    let silent = silent
        .into_iter()
        .map(|(cluster, ids)| AgentConnectivity {
            cluster,
            ids,
            connected: false,
        })
        .collect();
    Verdicts { lost, silent }
}

/// Passes the heartbeats this follower received on to the leader.
async fn forward(app: &App, leader: &str) {
    let ids: Vec<String> = {
        let mut pending = app.heartbeats.to_forward.lock().expect("heartbeats lock");
        pending.drain().map(|id| id.to_string()).collect()
    };
    if ids.is_empty() {
        return;
    }
    let sent = app
        .node
        .peer(leader)
        .send(
            "POST",
            FORWARD_PATH,
            &[("content-type", "application/json")],
            bytes::Bytes::from(json!(ids).to_string()),
            Duration::from_secs(5),
        )
        .await;
    match sent {
        Ok(answer) if answer.status < 300 => {}
        Ok(answer) => tracing::debug!(
            status = answer.status,
            "the leader refused forwarded heartbeats"
        ),
        Err(e) => tracing::debug!(error = %e, "forwarding heartbeats to the leader failed"),
    }
}

async fn forwarded(State(app): State<Arc<App>>, Json(ids): Json<Vec<String>>) -> StatusCode {
    for id in ids {
        if let Ok(id) = id.parse() {
            app.heartbeats.heard(id);
        }
    }
    StatusCode::NO_CONTENT
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

/// The refusal of an agent-protocol call on an instance the caller does not act for.
fn not_yours(what: &str) -> EcsError {
    EcsError::new(
        ErrorCode::AccessDeniedException,
        format!("An agent's credential acts for its own container instance only: {what}"),
    )
}

/// Whether `principal` may act for instance `id` of `cluster` in the agent protocol: an agent
/// only for its own instance; anyone else as far as `action` is allowed.
pub(crate) fn acts_for(
    ctx: &Ctx,
    action: &str,
    cluster: &str,
    id: InstanceId,
) -> Result<(), EcsError> {
    ctx.authorize(
        action,
        &[ctx.arn.container_instance(cluster, id)],
        Some(cluster),
    )?;
    match ctx.principal.agent_instance() {
        Some((c, own)) if c != cluster || own != id => Err(not_yours(&format!(
            "container instance {id} in cluster {cluster} is not the one it was issued for"
        ))),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct PollQuery {
    cluster: Option<String>,
    instance: String,
    #[serde(default)]
    since: u64,
    /// Seconds; 0 answers at once.
    #[serde(default)]
    wait: u64,
    region: Option<String>,
}

/// The version an agent compares: the instance's and its tasks' latest change.
fn assignments_version(state: &ClusterState, id: InstanceId) -> u64 {
    let instance = state.instance(id).map_or(0, |i| i.version);
    state
        .tasks_on(id)
        .map(|t| t.version)
        .max()
        .unwrap_or(0)
        .max(instance)
}

async fn poll(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    q: Result<Query<PollQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let cluster = match cluster_param(&q.cluster) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message),
    };
    let id = match instance_ref(&q.instance, &cluster) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message),
    };
    // The poll is the heartbeat: only the instance's own agent may make it, so nobody can
    // read another instance's assignments (their secrets) or keep a dead agent "connected".
    let ctx = context(&app, &headers, principal);
    if ctx.principal.agent_instance().is_none() {
        return error_response(not_yours(
            "polling for assignments needs the credential the agent got when it joined",
        ));
    }
    if let Err(e) = acts_for(&ctx, action::POLL_ASSIGNMENTS, &cluster, id) {
        return error_response(e);
    }
    dispatch(&app);
    // Before the state is read: a change committed after this read wakes the waiter.
    let mut waiter = app.heartbeats.waiting.subscribe(id);
    let mut state = app.node.state();
    match state.instance(id) {
        Some(i) if *i.cluster == *cluster => {
            app.heartbeats.heard(id);
            if !i.agent_connected && i.status != InstanceStatus::Inactive {
                let command = AgentConnectivity {
                    cluster: cluster.as_str().into(),
                    ids: vec![id],
                    connected: true,
                };
                match app.node.write(command).await {
                    Ok(written) if written.result.is_ok() => {
                        app.metrics.agents(AgentTransition::Reconnected, 1);
                    }
                    Ok(_) => {}
                    Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
                state = app.node.state();
            }
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "Container instance {} is not registered in cluster {cluster}",
                    q.instance
                ),
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(q.wait).min(MAX_WAIT);
    loop {
        let version = assignments_version(&state, id);
        let now = Instant::now();
        if version > q.since || now >= deadline {
            let ctx = ArnContext::new(
                q.region.as_deref().unwrap_or(DEFAULT_REGION),
                app.config.account_id.clone(),
            );
            return Json(poll_response(&ctx, &state, id, version)).into_response();
        }
        tokio::select! {
            () = waiter.changed(deadline - now) => state = app.node.state(),
            () = app.stopping() => {
                return error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down");
            }
        }
    }
}

fn poll_response(
    ctx: &ArnContext,
    state: &ClusterState,
    id: InstanceId,
    version: u64,
) -> PollResponse {
    let instance_status = state
        .instance(id)
        .map(|i| i.status.as_str().to_owned())
        .unwrap_or_default();
    let tasks = state
        .tasks_on(id)
        .filter(|t| t.is_live())
        .filter_map(|t| assignment(ctx, state, t))
        .collect();
    PollResponse {
        index: state.index(),
        version,
        instance_status,
        tasks,
    }
}

fn assignment(ctx: &ArnContext, state: &ClusterState, t: &Task) -> Option<Assignment> {
    let definition = state.task_definition(&t.family, t.revision)?;
    Some(Assignment {
        task_arn: ctx.task(&t.cluster, t.id),
        task_id: t.id.to_string(),
        cluster: t.cluster.to_string(),
        desired_status: t.desired_status.as_str().to_owned(),
        last_status: t.last_status.as_str().to_owned(),
        version: t.version,
        started: t.started_at.is_some(),
        task_definition: render::task_definition(ctx, definition),
        overrides: Some(t.overrides.clone()),
        ports: t
            .ports
            .iter()
            .map(|p| AssignedPort {
                container_name: p.container.clone(),
                container_port: p.container_port,
                host_port: p.host_port,
                protocol: p.protocol.as_str().to_owned(),
            })
            .collect(),
    })
}

/// `POST /v1/agent/health`: container health from the agent, into the task record.
async fn health(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let report: HealthReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a health report: {e}")),
    };
    let ctx = context(&app, &headers, principal);
    let result = async {
        let cluster = cluster_param(&Some(report.cluster.clone()))?;
        let id = task_ref(&report.task, &cluster)?;
        ctx.authorize(
            action::REPORT_HEALTH,
            &[ctx.arn.task(&cluster, id)],
            Some(&cluster),
        )?;
        agent_owns_task(&app, &ctx, &cluster, id)?;
        let mut containers = Vec::new();
        for c in &report.containers {
            let health = HealthStatus::parse(&c.health_status).ok_or_else(|| {
                berth_api::EcsError::invalid(format!(
                    "'{}' is not a health status; expected HEALTHY, UNHEALTHY or UNKNOWN",
                    c.health_status
                ))
            })?;
            containers.push(ContainerChange {
                name: c.container_name.clone(),
                health_status: Some(health),
                ..ContainerChange::default()
            });
        }
        app.write_by(
            &ctx.principal,
            TaskStateChange {
                cluster: cluster.as_str().into(),
                id,
                status: None,
                reason: None,
                containers,
                pull_started_at: None,
                pull_stopped_at: None,
                execution_stopped_at: None,
            },
        )
        .await
    }
    .await;
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

/// For an agent's credential, checks that task `id` runs on the agent's own instance: an agent
/// reports on its own tasks only, and a forged report changes nothing.
pub(crate) fn agent_owns_task(
    app: &App,
    ctx: &Ctx,
    cluster: &str,
    id: berth_model::TaskId,
) -> Result<(), EcsError> {
    let Some((_, own)) = ctx.principal.agent_instance() else {
        return Ok(());
    };
    let state = app.node.state();
    match state.task(id).filter(|t| *t.cluster == *cluster) {
        Some(t) if t.instance == Some(own) => Ok(()),
        Some(_) => Err(not_yours(&format!(
            "task {id} runs on another container instance"
        ))),
        // Unknown tasks are answered as the state machine answers them.
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct LogsQuery {
    cluster: Option<String>,
    container: Option<String>,
    #[serde(default)]
    follow: bool,
}

/// `GET /v1/tasks/{task}/logs?cluster=C&container=NAME&follow=BOOL`: the container's output,
/// streamed from the agent that runs it. The task is an id (of `cluster`, default `default`) or
/// a whole task ARN, which names its cluster.
async fn logs(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(task): Path<String>,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(task) = task.strip_suffix("/logs") else {
        return error(
            StatusCode::NOT_FOUND,
            "no such path: a task's logs are at /v1/tasks/{task id or ARN}/logs",
        );
    };
    let ctx = context(&app, &headers, principal);
    let located = (|| {
        let cluster = match (&q.cluster, parse_task(task)) {
            (None, Ok((Some(named), _))) => named,
            _ => cluster_param(&q.cluster).map_err(|e| (StatusCode::BAD_REQUEST, e.message))?,
        };
        let id = task_ref(task, &cluster).map_err(|e| (StatusCode::BAD_REQUEST, e.message))?;
        ctx.authorize(
            action::GET_TASK_LOGS,
            &[ctx.arn.task(&cluster, id)],
            Some(&cluster),
        )
        .map_err(|e| (StatusCode::FORBIDDEN, e.message))?;
        let state = app.node.state();
        let t = state
            .task(id)
            .filter(|t| *t.cluster == *cluster)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("task {task} not found")))?;
        let container = match &q.container {
            Some(name) => t
                .containers
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| {
                    (
                        StatusCode::NOT_FOUND,
                        format!("task {task} has no container named '{name}'"),
                    )
                })?
                .name
                .clone(),
            None if t.containers.len() == 1 => t.containers[0].name.clone(),
            None => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "the task has several containers: name one with ?container=NAME".into(),
                ));
            }
        };
        // Only where the instance's own agent said it serves logs, over its authenticated
        // registration (no attribute can point this elsewhere), signed with that agent's
        // own credential, which only the agent can check.
        let no_agent = || {
            (
                StatusCode::NOT_FOUND,
                "the task's container instance has no agent of its own registered to serve logs"
                    .to_owned(),
            )
        };
        let instance = t
            .instance
            .and_then(|i| state.instance(i))
            .ok_or_else(no_agent)?;
        let endpoint = instance.agent_endpoint.clone().ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "container instance {} serves no logs: its agent registered no log endpoint \
                     (a simulated agent of berth-fleet runs nothing and serves none)",
                    instance.id
                ),
            )
        })?;
        let certificate = instance
            .agent_certificate
            .as_deref()
            .and_then(berth_auth::token::decode_hex)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(no_agent)?;
        let credential = state.agent_credential(instance.id).ok_or_else(no_agent)?;
        let secret = app
            .keyring
            .secret_of(credential)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.message))?;
        let signer = Credentials {
            access_key_id: credential.access_key_id.clone(),
            secret,
        };
        Ok((endpoint, certificate, signer, id, container))
    })();
    let (endpoint, certificate, signer, id, container) = match located {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    // The agent's own certificate and no other: anyone else at that address gets neither the
    // request nor the signature.
    let transport = match berth_client::Transport::new(&Trust::Certificate(certificate)) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let client = berth_client::Client::new(
        transport,
        &endpoint,
        &signer,
        DEFAULT_REGION,
        AGENT_SIGNING_NAME,
    );
    let path = format!(
        "{AGENT_LOGS_PATH}/{id}/{}?follow={}",
        berth_client::path_segment(&container),
        q.follow
    );
    match client.stream("GET", &path).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut out = Response::new(Body::new(body.map_err(axum::Error::new)));
            *out.status_mut() = parts.status;
            if let Some(ct) = parts.headers.get("content-type") {
                out.headers_mut().insert("content-type", ct.clone());
            }
            out
        }
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("the agent at {endpoint} could not be reached: {e}"),
        ),
    }
}
