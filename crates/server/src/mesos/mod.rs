//! The Mesos v1 scheduler HTTP API: unmodified Mesos frameworks schedule on berth's cluster.
//!
//! ```text
//!  SUBSCRIBE ──► SubscribeFramework (Raft) ──► 200, chunked RecordIO stream: SUBSCRIBED, then
//!                                              OFFERS / RESCIND / UPDATE / HEARTBEAT
//!  ACCEPT, DECLINE, KILL, ACKNOWLEDGE, RECONCILE, REVIVE, SUPPRESS, TEARDOWN ──► 202 at once
//!  leader loop (every 250 ms): offers from free capacity · offer timeouts and rescinds ·
//!              status updates from task changes, resent until acknowledged · failover expiry
//! ```
//! Frameworks and offers are state (see `berth_model::mesos`): an offer holds its resources in
//! the accounting every scheduler's commit check reads. What only matters to a live
//! connection is kept here, in memory: the event streams, refuse filters, suppression, and
//! which status each task's framework was last sent. Streams belong to the node the framework
//! connected to; this first version serves frameworks on the leader.
//!
//! Each stream queues at most [`STREAM_CAPACITY`] events. A framework that does not read them
//! (its connection stalled, or it stopped reading on purpose) would otherwise grow this
//! server's memory without end, so when its queue is full its stream is closed and dropped
//! from the hub, and the leader loop disconnects it as if its connection had dropped (a Mesos
//! master does the same to a lagging scheduler); it can re-subscribe. The hub holds the only
//! sender of each stream, so a stream it lets go of (lag, re-subscription, teardown) ends.
//!
//! Capacity is shared by offering each instance to one framework at a time: the connected,
//! unsuppressed, unfiltered framework with the smallest dominant share of the cluster (DRF,
//! Mesos's default), ties by id.

mod translate;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use berth_api::agent::host_of;
use berth_api::protocol::DEFAULT_REGION;
use berth_mesos::Resources;
use berth_mesos::protocol::{MESOS_VERSION, STREAM_ID_HEADER};
use berth_mesos::recordio::record;
use berth_mesos::scheduler::{Call, CallType, Event};
use berth_mesos::v1::{self, FrameworkId, Reason, TaskState};
use berth_mesos::validate::{check_launch, validate_call, validate_operation};
use berth_model::TypedCommand;
use berth_model::arn::ArnContext;
use berth_model::command::{
    AcceptOffers, FrameworkDisconnected, MakeOffers, OffersMade, RegisterTaskDefinition,
    RemoveFramework, RemoveOffers, StopTask, SubscribeFramework,
};
use berth_model::entity::{InstanceStatus, Name, Reservation, Tag};
use berth_model::mesos::{Framework, Offer};
use berth_model::{InstanceId, Millis, OfferId, TaskId};
use berth_raft::Written;
use berth_scheduler::{Placement, TaskTemplate};
use berth_state::TaskFilter;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::App;
use crate::auth::Principal;

/// Seconds between HEARTBEAT events.
const HEARTBEAT_SECS: f64 = 15.0;
/// An offer nobody answers is rescinded after this long, so idle frameworks do not sit on
/// capacity other schedulers need.
const OFFER_TIMEOUT: Duration = Duration::from_secs(10);
/// A status update not acknowledged is sent again after this long.
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// How long a new leader waits for frameworks to re-subscribe before it treats those without
/// a stream as disconnected.
const RESUBSCRIBE_GRACE: Duration = Duration::from_secs(10);
/// Events queued for one stream before the framework counts as not reading. Events come in
/// bursts (a RECONCILE of all a framework's tasks queues one UPDATE per task at once), so this
/// is well above the tasks one framework runs at berth's scale; it bounds a stream nobody
/// reads to a few MiB (UPDATEs are a few hundred bytes).
const STREAM_CAPACITY: usize = 16_384;
/// Declined or timed-out offers' instances are not offered to that framework again for this
/// long, unless the decline asked otherwise.
const DEFAULT_REFUSE: Duration = Duration::from_secs(5);

/// One framework's open event stream.
struct Stream {
    id: String,
    /// The stream's only sender: the stream ends once the hub drops it.
    tx: mpsc::Sender<Bytes>,
}

/// The last status a framework was sent for a task, until acknowledged.
struct Sent {
    state: TaskState,
    uuid: Vec<u8>,
    status: v1::TaskStatus,
    at: Instant,
    acked: bool,
}

/// Connection state of the Mesos API on this node.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
    /// Held while a launch looks for an identical revision and registers one if there is
    /// none, so concurrent launches of one TaskInfo share a revision.
    registering: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct HubInner {
    streams: HashMap<String, Stream>,
    /// (framework, instance) → not offered again before.
    filters: HashMap<(String, InstanceId), Instant>,
    suppressed: HashSet<String>,
    /// Offers sent, by id → framework (to tell a framework when one is rescinded).
    offered: HashMap<OfferId, String>,
    sent: HashMap<TaskId, Sent>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `event` on `framework`'s stream, if it has one.
    fn send(&self, framework: &str, event: &Event) {
        self.send_on(framework, None, event);
    }

    /// Queues `event` on `framework`'s stream (only if that is `stream`, when given), and says
    /// whether the stream is still open. A stream whose queue is full is closed.
    fn send_on(&self, framework: &str, stream: Option<&str>, event: &Event) -> bool {
        let mut hub = self.lock();
        let queued = match hub.streams.get(framework) {
            Some(s) if stream.is_none_or(|id| id == s.id) => {
                s.tx.try_send(Bytes::from(record(event)))
            }
            _ => return false,
        };
        match queued {
            Ok(()) => true,
            // The connection is gone; its `Subscription` is dropped and tidies up.
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(_)) => {
                hub.streams.remove(framework);
                tracing::warn!(
                    framework,
                    "closed the event stream of a framework that left {STREAM_CAPACITY} events unread; it is disconnected until it subscribes again"
                );
                false
            }
        }
    }

    fn connected(&self) -> Vec<String> {
        self.lock().streams.keys().cloned().collect()
    }
}

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route(berth_mesos::protocol::VERSION_PATH, get(version))
        .route(berth_mesos::protocol::SCHEDULER_PATH, post(scheduler))
}

async fn version() -> Response {
    axum::Json(serde_json::json!({
        "version": MESOS_VERSION,
        "build_date": "2026-11-21",
        "build_user": "berth",
    }))
    .into_response()
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// The policy action of a call: `mesos:` and the call's name in PascalCase
/// (`ACCEPT_INVERSE_OFFERS` is `mesos:AcceptInverseOffers`).
fn call_action(kind: CallType) -> String {
    let mut action = String::from("mesos:");
    for word in kind.as_str().split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            action.push(first.to_ascii_uppercase());
            action.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    action
}

async fn scheduler(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Streams and offers live on the leader: a follower sends frameworks there, as a Mesos
    // master that is not leading does.
    if let Some((leader, addr)) = app.node.leader()
        && leader != app.node.id()
    {
        let scheme = if app.tls.is_some() { "https" } else { "http" };
        let location = format!("{scheme}://{addr}{}", berth_mesos::protocol::SCHEDULER_PATH);
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    let call = match Call::from_json(&body) {
        Ok(c) => c,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body: {e}"),
            );
        }
    };
    let kind = match validate_call(&call) {
        Ok(k) => k,
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            return plain(status, format!("Failed to validate scheduler::Call: {e}"));
        }
    };
    // Every call is authorized for the cluster frameworks schedule on.
    let region = ArnContext::new(DEFAULT_REGION, app.config.account_id.clone());
    if let Err(e) = principal.authorize(
        &region,
        &call_action(kind),
        &[],
        Some(&app.config.mesos_cluster),
    ) {
        return plain(StatusCode::FORBIDDEN, e.message);
    }
    let stream_id = headers
        .get(STREAM_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let named = call
        .framework_id
        .as_ref()
        .or(call
            .subscribe
            .as_ref()
            .and_then(|s| s.framework_info.id.as_ref()))
        .map(|f| f.value.clone());
    // A framework belongs to the principal that registered it: nobody else subscribes as it,
    // or acts for it. Checked before anything is touched (a refused takeover must not even
    // disturb the owner's stream).
    if let Some(id) = &named
        && let Some(fw) = app.node.state().framework(id)
        && fw.owner.is_some()
        && fw.owner.as_deref() != Some(principal.actor().as_str())
    {
        return plain(
            StatusCode::FORBIDDEN,
            format!("Framework {id} is registered by another principal"),
        );
    }
    if kind == CallType::Subscribe {
        if stream_id.is_some() {
            return plain(
                StatusCode::BAD_REQUEST,
                "Expecting 'Mesos-Stream-Id' header to be absent on SUBSCRIBE",
            );
        }
        return subscribe(app, principal, call).await;
    }
    let Some(framework) = named else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Expecting 'framework_id' to be present",
        );
    };
    {
        let hub = app.mesos.lock();
        match (hub.streams.get(&framework), &stream_id) {
            (None, _) => {
                return plain(
                    StatusCode::FORBIDDEN,
                    format!("Framework {framework} is not subscribed"),
                );
            }
            (_, None) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
                );
            }
            (Some(s), Some(id)) if s.id != *id => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The stream ID '{id}' included in this request didn't match the stream ID currently associated with framework ID {framework}"
                    ),
                );
            }
            _ => {}
        }
    }
    handle(&app, &principal, &framework, kind, call).await;
    StatusCode::ACCEPTED.into_response()
}

/// An event stream that tells the hub when its connection goes away.
struct Subscription {
    rx: mpsc::Receiver<Bytes>,
    app: Arc<App>,
    framework: String,
    stream: String,
}

impl futures::Stream for Subscription {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|b| b.map(Ok))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let still_current = {
            let mut hub = self.app.mesos.lock();
            let current = hub
                .streams
                .get(&self.framework)
                .is_some_and(|s| s.id == self.stream);
            if current {
                hub.streams.remove(&self.framework);
            }
            current
        };
        if still_current {
            let app = self.app.clone();
            let id = self.framework.clone();
            tokio::spawn(async move {
                write_or_warn(&app, FrameworkDisconnected { id }).await;
            });
        }
    }
}

async fn subscribe(app: Arc<App>, principal: Principal, call: Call) -> Response {
    let Some(sub) = call.subscribe else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Expecting 'subscribe' to be present",
        );
    };
    let info = sub.framework_info;
    let id = info
        .id
        .as_ref()
        .or(call.framework_id.as_ref())
        .map(|f| f.value.clone())
        .unwrap_or_else(|| format!("{:032x}-0000", rand::random::<u128>()));
    let framework = Framework {
        id: id.clone(),
        cluster: app.config.mesos_cluster.as_str().into(),
        name: info.name.clone(),
        user: info.user.clone(),
        roles: info
            .effective_roles()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        hostname: info.hostname.clone(),
        principal: info.principal.clone(),
        webui_url: info.webui_url.clone(),
        capabilities: info
            .capabilities
            .iter()
            .filter_map(|c| c.r#type.map(|t| t.as_str().to_owned()))
            .collect(),
        checkpoint: info.checkpoint.unwrap_or(false),
        failover_timeout: info.failover_timeout(),
        connected: true,
        disconnected_at: None,
        registered_at: Millis::now(),
        owner: None,
        version: 0,
    };
    let stream_id = uuid_string();
    let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
    let _ = tx.try_send(Bytes::from(record(&Event::subscribed(
        FrameworkId::new(id.clone()),
        HEARTBEAT_SECS,
        None,
    ))));
    {
        let mut hub = app.mesos.lock();
        // A re-subscription replaces the old stream (which ends when its sender drops), and
        // starts with fresh filters; every status is sent again.
        hub.streams.insert(
            id.clone(),
            Stream {
                id: stream_id.clone(),
                tx,
            },
        );
        hub.filters.retain(|(f, _), _| *f != id);
        if sub.suppressed_roles.is_empty() {
            hub.suppressed.remove(&id);
        } else {
            hub.suppressed.insert(id.clone());
        }
        let state = app.node.state();
        hub.sent.retain(|task, _| {
            state
                .task(*task)
                .is_none_or(|t| t.started_by.as_deref() != Some(id.as_str()))
        });
    }
    // The stream is registered before the framework is written as connected, so the leader
    // never sees it connected without a stream.
    let written = app
        .node
        .write_by(
            &principal.actor(),
            SubscribeFramework {
                framework: Arc::new(framework),
            },
        )
        .await;
    let refused = match written {
        Ok(w) => w
            .result
            .err()
            .map(|e| (StatusCode::BAD_REQUEST, e.to_string())),
        Err(e) => Some((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    if let Some((status, why)) = refused {
        let mut hub = app.mesos.lock();
        if hub.streams.get(&id).is_some_and(|s| s.id == stream_id) {
            hub.streams.remove(&id);
        }
        return plain(status, why);
    }
    let heartbeats = (app.clone(), id.clone(), stream_id.clone());
    tokio::spawn(async move {
        let (app, framework, stream) = heartbeats;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(HEARTBEAT_SECS));
        tick.tick().await;
        loop {
            tick.tick().await;
            if !app
                .mesos
                .send_on(&framework, Some(&stream), &Event::heartbeat())
            {
                break;
            }
        }
    });
    let body = Body::from_stream(Subscription {
        rx,
        app: app.clone(),
        framework: id,
        stream: stream_id.clone(),
    });
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    h.insert(
        STREAM_ID_HEADER,
        stream_id.parse().expect("a uuid is a header value"),
    );
    response
}

fn uuid_bytes() -> Vec<u8> {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b.to_vec()
}

fn uuid_string() -> String {
    let h: String = uuid_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Writes a command nobody waits on (the loop's, and those of calls answered with 202): its
/// output, or `None` after logging why it was not written or was refused. The loop decides
/// from the state on every tick, so most lost writes are decided again (offers made again or
/// timed out, frameworks found orphaned or past their failover timeout); a lost KILL is the
/// framework's to send again, as it would to a Mesos master.
async fn write_or_warn<C: TypedCommand>(app: &App, command: C) -> Option<C::Output> {
    match app.node.write(command).await {
        Ok(Written {
            result: Ok(output), ..
        }) => Some(output),
        Ok(Written {
            result: Err(refused),
            ..
        }) => {
            tracing::warn!(command = C::NAME, error = %refused, "Mesos: a command was refused");
            None
        }
        Err(e) => {
            tracing::warn!(command = C::NAME, error = %e, "Mesos: a command was not written");
            None
        }
    }
}

/// Carries out one (validated, authorized) call of a subscribed framework.
async fn handle(
    app: &Arc<App>,
    principal: &Principal,
    framework: &str,
    kind: CallType,
    call: Call,
) {
    match kind {
        CallType::Teardown => {
            write_or_warn(
                app,
                RemoveFramework {
                    id: framework.to_owned(),
                    reason: "Framework torn down".into(),
                },
            )
            .await;
            app.mesos.lock().streams.remove(framework);
        }
        CallType::Accept => {
            if let Some(accept) = call.accept {
                accept_offers(app, principal, framework, accept).await;
            }
        }
        CallType::Decline => {
            if let Some(d) = call.decline {
                let refuse = d.filters.as_ref().map_or(DEFAULT_REFUSE, |f| {
                    Duration::from_secs_f64(f.refuse_seconds())
                });
                let ids: Vec<OfferId> = d
                    .offer_ids
                    .iter()
                    .filter_map(|o| o.value.parse().ok())
                    .collect();
                release(app, framework, &ids, refuse).await;
            }
        }
        CallType::Revive => {
            let mut hub = app.mesos.lock();
            hub.suppressed.remove(framework);
            hub.filters.retain(|(f, _), _| f != framework);
        }
        CallType::Suppress => {
            app.mesos.lock().suppressed.insert(framework.to_owned());
        }
        CallType::Kill => {
            if let Some(k) = call.kill {
                kill(app, framework, &k.task_id.value).await;
            }
        }
        CallType::Acknowledge => {
            if let Some(a) = call.acknowledge {
                let id = translate::task_id(framework, &a.task_id.value);
                let mut hub = app.mesos.lock();
                if let Some(sent) = hub.sent.get_mut(&id)
                    && sent.uuid == a.uuid.as_slice()
                {
                    sent.acked = true;
                }
            }
        }
        CallType::Reconcile => {
            if let Some(r) = call.reconcile {
                reconcile(
                    app,
                    framework,
                    r.tasks.iter().map(|t| t.task_id.value.clone()).collect(),
                );
            }
        }
        // Accepted and ignored: berth has no executors, inverse offers or operation feedback.
        _ => {}
    }
}

/// Releases offers (declined, or unused by an accept) and keeps their instances from this
/// framework for `refuse`.
async fn release(app: &App, framework: &str, ids: &[OfferId], refuse: Duration) {
    let state = app.node.state();
    {
        let mut hub = app.mesos.lock();
        for id in ids {
            hub.offered.remove(id);
            if let Some(o) = state.offer(*id).filter(|o| o.framework == framework) {
                hub.filters
                    .insert((framework.to_owned(), o.instance), Instant::now() + refuse);
            }
        }
    }
    let mine: Vec<OfferId> = ids
        .iter()
        .copied()
        .filter(|id| state.offer(*id).is_some_and(|o| o.framework == framework))
        .collect();
    if !mine.is_empty() {
        write_or_warn(app, RemoveOffers { ids: mine }).await;
    }
}

/// Sends `state` for Mesos task `task_id` with no uuid (nothing to acknowledge).
fn tell(
    app: &App,
    framework: &str,
    task_id: &str,
    state: TaskState,
    reason: Reason,
    message: String,
) {
    let status = translate::status(task_id, None, state, Some(reason), Some(message));
    if let Ok(event) = Event::update(status) {
        app.mesos.send(framework, &event);
    }
}

async fn accept_offers(
    app: &Arc<App>,
    principal: &Principal,
    framework: &str,
    accept: berth_mesos::scheduler::Accept,
) {
    let refuse = accept.filters.as_ref().map_or(DEFAULT_REFUSE, |f| {
        Duration::from_secs_f64(f.refuse_seconds())
    });
    let ids: Vec<OfferId> = accept
        .offer_ids
        .iter()
        .filter_map(|o| o.value.parse().ok())
        .collect();
    let infos: Vec<v1::TaskInfo> = accept
        .operations
        .iter()
        .filter_map(|op| validate_operation(op).ok())
        .flat_map(|op| match op {
            berth_mesos::validate::LaunchOperation::Launch(tasks) => tasks.to_vec(),
            berth_mesos::validate::LaunchOperation::LaunchGroup { task_group, .. } => {
                task_group.tasks.clone()
            }
        })
        .collect();
    let state = app.node.state();
    let Some(fw) = state.framework(framework).cloned() else {
        return;
    };
    let offers: Vec<Arc<Offer>> = ids
        .iter()
        .filter_map(|id| state.offer(*id).cloned())
        .collect();
    let valid = !ids.is_empty()
        && offers.len() == ids.len()
        && offers.iter().all(|o| o.framework == framework)
        && offers.iter().all(|o| o.instance == offers[0].instance);
    if !valid {
        for t in &infos {
            tell(
                app,
                framework,
                &t.task_id.value,
                TaskState::Dropped.for_framework(false),
                Reason::InvalidOffers,
                "Some offers are no longer valid".into(),
            );
        }
        return;
    }
    let instance_id = offers[0].instance;
    let Some(instance) = state.instance(instance_id).cloned() else {
        return;
    };
    let offered: Resources = offers.iter().fold(Resources::default(), |acc, o| {
        acc.plus(
            &Resources::parse(&translate::offer_resources(
                o.hold.cpu,
                o.hold.memory,
                &o.hold.tcp,
            ))
            .unwrap_or_default(),
        )
    });
    let agent = translate::agent_id(instance_id);
    let check = check_launch(&agent, &offered, &infos, |id| {
        state
            .task(translate::task_id(framework, &id.value))
            .is_some()
    });
    let family = translate::family(&fw.name);
    let mut tasks = Vec::new();
    for (info, result) in infos.iter().zip(check.tasks) {
        let needs = match result {
            Ok(n) => n,
            Err(e) => {
                tell(
                    app,
                    framework,
                    &info.task_id.value,
                    TaskState::Error,
                    Reason::TaskInvalid,
                    e.to_string(),
                );
                continue;
            }
        };
        match launch_task(app, principal, &fw, &family, info, &needs, &instance).await {
            Ok(t) => tasks.push(t),
            Err(why) => tell(
                app,
                framework,
                &info.task_id.value,
                TaskState::Error,
                Reason::TaskInvalid,
                why.to_string(),
            ),
        }
    }
    app.mesos.lock().offered.retain(|id, _| !ids.contains(id));
    let written = app
        .node
        .write(AcceptOffers {
            framework: framework.to_owned(),
            offers: ids.clone(),
            tasks: tasks.clone(),
        })
        .await;
    let refused = match written {
        Ok(w) => w.result.err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = refused {
        for t in &tasks {
            let mesos = translate::mesos_task_id(t).unwrap_or_default().to_owned();
            tell(
                app,
                framework,
                &mesos,
                TaskState::Dropped.for_framework(false),
                Reason::InvalidOffers,
                why.clone(),
            );
        }
        return;
    }
    app.mesos
        .lock()
        .filters
        .insert((framework.to_owned(), instance_id), Instant::now() + refuse);
}

/// Why a valid TaskInfo cannot be launched: the message of its TASK_ERROR.
#[derive(Debug, thiserror::Error)]
enum LaunchError {
    /// The task definition it translates to is not one ECS would register.
    #[error(transparent)]
    Definition(berth_model::Error),
    /// It needs a host privilege the framework's principal lacks.
    #[error(
        "launching this task needs the {} permission ({}), which the framework's principal does not have",
        .0.action(),
        .0.describe()
    )]
    Unauthorized(berth_auth::Privilege),
    /// Registering its task definition was not acknowledged.
    #[error(transparent)]
    Write(#[from] berth_raft::WriteError),
    /// Registering its task definition was refused.
    #[error(transparent)]
    Register(berth_model::Error),
}

/// The berth task for one valid TaskInfo: its definition (an identical revision of the
/// framework's family is reused), on the offers' instance, with the ports it asked for.
async fn launch_task(
    app: &App,
    principal: &Principal,
    fw: &Framework,
    family: &str,
    info: &v1::TaskInfo,
    needs: &Resources,
    instance: &berth_model::entity::ContainerInstance,
) -> Result<berth_model::entity::Task, LaunchError> {
    let request = translate::definition(family, info, needs);
    let valid = berth_model::validate::task_definition::register(&request)
        .map_err(LaunchError::Definition)?;
    // A command task is a host process, a privileged container is root on the host: the
    // framework's principal needs the same permissions an ECS caller would.
    let region = ArnContext::new(DEFAULT_REGION, app.config.account_id.clone());
    for privilege in berth_model::privileges::privileges(&valid.spec) {
        principal
            .authorize(&region, privilege.action(), &[], Some(&fw.cluster))
            .map_err(|_| LaunchError::Unauthorized(privilege))?;
    }
    let _registering = app.mesos.registering.lock().await;
    let state = app.node.state();
    let existing = state
        .task_definitions_after(Some((family.into(), 0)), false)
        .take_while(|t| &*t.family == family)
        .filter(|t| t.status == berth_model::entity::TaskDefinitionStatus::Active)
        .find(|t| *t.spec == valid.spec)
        .cloned();
    let definition = match existing {
        Some(d) => d,
        None => {
            let written = app
                .node
                .write_by(
                    &principal.actor(),
                    RegisterTaskDefinition {
                        family: family.into(),
                        spec: Arc::new(valid.spec),
                        requirements: valid.requirements,
                        tags: Vec::new(),
                    },
                )
                .await?;
            written.result.map_err(LaunchError::Register)?
        }
    };
    let template = TaskTemplate::plain(
        fw.cluster.clone(),
        definition,
        fw.group(),
        Some(fw.id.clone()),
        Vec::new(),
        Vec::new(),
        Millis::now(),
    );
    let placement = Placement {
        instance: instance.id,
        dynamic_tcp: Vec::new(),
        dynamic_udp: Vec::new(),
    };
    let mut task = template.task(
        translate::task_id(&fw.id, &info.task_id.value),
        instance,
        &placement,
    );
    task.tags = vec![Tag {
        key: translate::TASK_ID_TAG.into(),
        value: info.task_id.value.clone(),
    }];
    Ok(task)
}

async fn kill(app: &App, framework: &str, task_id: &str) {
    let state = app.node.state();
    let id = translate::task_id(framework, task_id);
    match state.task(id) {
        Some(t) if t.started_by.as_deref() == Some(framework) => {
            let stop = StopTask {
                cluster: t.cluster.clone(),
                id,
                reason: Some("Killed by the framework".into()),
                stop_code: Some("UserInitiated".into()),
            };
            write_or_warn(app, stop).await;
        }
        _ => tell(
            app,
            framework,
            task_id,
            TaskState::Lost,
            Reason::TaskUnknown,
            "Task is unknown".into(),
        ),
    }
}

/// Answers RECONCILE: the latest state of each named task (all the framework's tasks when
/// none is named), without uuid; unknown tasks are TASK_LOST.
fn reconcile(app: &App, framework: &str, named: Vec<String>) {
    let state = app.node.state();
    let Some(fw) = state.framework(framework) else {
        return;
    };
    let ids: Vec<String> = if named.is_empty() {
        state
            .tasks_after(
                &fw.cluster,
                &TaskFilter {
                    started_by: Some(framework.to_owned()),
                    ..Default::default()
                },
                None,
            )
            .filter(|t| t.is_live())
            .filter_map(|t| translate::mesos_task_id(t).map(str::to_owned))
            .collect()
    } else {
        named
    };
    for mesos in ids {
        let task = state.task(translate::task_id(framework, &mesos));
        let status = match task {
            Some(t) => {
                let (s, _, message) = translate::status_of(t);
                translate::status(&mesos, Some(t), s, Some(Reason::Reconciliation), message)
            }
            None => translate::status(
                &mesos,
                None,
                TaskState::Lost,
                Some(Reason::Reconciliation),
                Some("Task is unknown".into()),
            ),
        };
        if let Ok(e) = Event::update(status) {
            app.mesos.send(framework, &e);
        }
    }
}

/// The leader's Mesos loop: offers, offer timeouts and rescinds, status updates and resends,
/// failover expiry.
pub struct MesosLoop;

impl MesosLoop {
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut leading_since: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = app.stopping() => return,
                }
                if !app.node.is_leader() {
                    leading_since = None;
                    continue;
                }
                let since = *leading_since.get_or_insert_with(Instant::now);
                // Frameworks the state calls connected but that have no stream here (this
                // server restarted, leadership moved, or the hub closed a stream nobody read)
                // had their failover clock stopped: once they had time to re-subscribe, they
                // are disconnected, and it runs.
                if since.elapsed() >= RESUBSCRIBE_GRACE {
                    orphan_frameworks(&app).await;
                }
                expire_frameworks(&app).await;
                if app.mesos.connected().is_empty() {
                    continue;
                }
                send_updates(&app);
                expire_offers(&app).await;
                make_offers(&app).await;
            }
        })
    }
}

/// Connected frameworks without a stream on this (leading) node are disconnected.
async fn orphan_frameworks(app: &App) {
    let state = app.node.state();
    let streams: HashSet<String> = app.mesos.connected().into_iter().collect();
    let orphans: Vec<String> = state
        .frameworks()
        .filter(|f| f.connected && !streams.contains(&f.id))
        .map(|f| f.id.clone())
        .collect();
    for id in orphans {
        write_or_warn(app, FrameworkDisconnected { id }).await;
    }
}

/// Disconnected frameworks past their failover timeout are removed, their tasks killed.
async fn expire_frameworks(app: &App) {
    let state = app.node.state();
    let now = Millis::now();
    let expired: Vec<String> = state
        .frameworks()
        .filter(|f| !f.connected)
        .filter(|f| {
            f.disconnected_at
                .is_some_and(|d| now.0 - d.0 >= (f.failover_timeout * 1000.0) as i64)
        })
        .map(|f| f.id.clone())
        .collect();
    for id in expired {
        let remove = RemoveFramework {
            id,
            reason: "Framework failover timeout".into(),
        };
        write_or_warn(app, remove).await;
    }
}

/// Offers past [`OFFER_TIMEOUT`] are released; offers gone from the state (their instance
/// drained or lost) are rescinded.
async fn expire_offers(app: &App) {
    let state = app.node.state();
    let now = Millis::now();
    let old: Vec<Arc<Offer>> = state
        .offers()
        .filter(|o| now.0 - o.created_at.0 >= OFFER_TIMEOUT.as_millis() as i64)
        .cloned()
        .collect();
    if !old.is_empty() {
        // One write for all of them, so a framework sitting on many offers does not hold up
        // the loop.
        {
            let mut hub = app.mesos.lock();
            for o in &old {
                hub.offered.remove(&o.id);
                hub.filters.insert(
                    (o.framework.clone(), o.instance),
                    Instant::now() + DEFAULT_REFUSE,
                );
            }
        }
        let ids = old.iter().map(|o| o.id).collect();
        write_or_warn(app, RemoveOffers { ids }).await;
        for o in &old {
            app.mesos.send(
                &o.framework,
                &Event::rescind(v1::OfferId::new(o.id.to_string())),
            );
        }
    }
    let gone: Vec<(OfferId, String)> = {
        let mut hub = app.mesos.lock();
        let gone: Vec<_> = hub
            .offered
            .iter()
            .filter(|(id, _)| state.offer(**id).is_none())
            .map(|(id, f)| (*id, f.clone()))
            .collect();
        for (id, _) in &gone {
            hub.offered.remove(id);
        }
        gone
    };
    for (id, framework) in gone {
        app.mesos.send(
            &framework,
            &Event::rescind(v1::OfferId::new(id.to_string())),
        );
    }
}

/// What `framework` holds in its cluster, CPU and memory: its live tasks and its outstanding
/// offers (Mesos counts offered resources as allocated).
fn allocated(state: &berth_state::State, fw: &Framework) -> (i64, i64) {
    let filter = TaskFilter {
        started_by: Some(fw.id.clone()),
        ..Default::default()
    };
    let tasks = state
        .tasks_after(&fw.cluster, &filter, None)
        .filter(|t| t.is_live())
        .map(|t| (t.reservation.cpu, t.reservation.memory));
    let offers = state
        .offers()
        .filter(|o| o.framework == fw.id)
        .map(|o| (o.hold.cpu, o.hold.memory));
    tasks
        .chain(offers)
        .fold((0, 0), |(c, m), (tc, tm)| (c + tc, m + tm))
}

/// A dominant share: the larger of the CPU and memory fractions of `total`.
fn dominant_share(held: (i64, i64), total: (i64, i64)) -> f64 {
    let share = |used: i64, of: i64| {
        if of > 0 { used as f64 / of as f64 } else { 0.0 }
    };
    share(held.0, total.0).max(share(held.1, total.1))
}

async fn make_offers(app: &App) {
    let state = app.node.state();
    let connected = app.mesos.connected();
    let (filters, suppressed) = {
        let mut hub = app.mesos.lock();
        let now = Instant::now();
        hub.filters.retain(|_, until| *until > now);
        (hub.filters.clone(), hub.suppressed.clone())
    };
    let frameworks: Vec<Arc<Framework>> = connected
        .iter()
        .filter(|id| !suppressed.contains(*id))
        .filter_map(|id| state.framework(id).cloned())
        .filter(|f| f.connected)
        .collect();
    if frameworks.is_empty() {
        return;
    }
    let clusters: HashSet<Name> = frameworks.iter().map(|f| f.cluster.clone()).collect();
    let mut offers = Vec::new();
    for cluster in clusters {
        let instances: Vec<_> = state
            .instances_after(&cluster, None)
            .filter(|i| i.status == InstanceStatus::Active && i.agent_connected)
            .cloned()
            .collect();
        let total = instances.iter().fold((0, 0), |(c, m), i| {
            (c + i.resources.cpu, m + i.resources.memory)
        });
        // DRF: each instance goes to the eligible framework holding the smallest dominant
        // share, counting what this pass has just offered it.
        let mut held: HashMap<String, (i64, i64)> = frameworks
            .iter()
            .filter(|f| f.cluster == cluster)
            .map(|f| (f.id.clone(), allocated(&state, f)))
            .collect();
        for instance in &instances {
            if state.offers_on(instance.id).next().is_some() {
                continue;
            }
            let Some(fw) = frameworks
                .iter()
                .filter(|f| f.cluster == cluster)
                .filter(|f| !filters.contains_key(&(f.id.clone(), instance.id)))
                .min_by(|a, b| {
                    dominant_share(held[&a.id], total)
                        .total_cmp(&dominant_share(held[&b.id], total))
                        .then(a.id.cmp(&b.id))
                })
            else {
                continue;
            };
            let (cpu, memory, ports) = translate::free(instance, state.usage(instance.id));
            if cpu <= 0 || memory <= 0 {
                continue;
            }
            if let Some(h) = held.get_mut(&fw.id) {
                h.0 += cpu;
                h.1 += memory;
            }
            offers.push(Offer {
                id: OfferId(rand::random()),
                framework: fw.id.clone(),
                cluster: cluster.clone(),
                instance: instance.id,
                hold: Reservation {
                    cpu,
                    memory,
                    tcp: ports,
                    ..Default::default()
                },
                created_at: Millis::now(),
                version: 0,
            });
        }
    }
    if offers.is_empty() {
        return;
    }
    let Some(OffersMade { made, .. }) = write_or_warn(app, MakeOffers { offers }).await else {
        return;
    };
    let state = app.node.state();
    let mut by_framework: HashMap<String, Vec<v1::Offer>> = HashMap::new();
    {
        let mut hub = app.mesos.lock();
        for o in &made {
            hub.offered.insert(o.id, o.framework.clone());
        }
    }
    for o in made {
        let Some(instance) = state.instance(o.instance) else {
            continue;
        };
        by_framework
            .entry(o.framework.clone())
            .or_default()
            .push(v1::Offer {
                id: v1::OfferId::new(o.id.to_string()),
                framework_id: FrameworkId::new(o.framework.clone()),
                agent_id: translate::agent_id(o.instance),
                hostname: instance
                    .agent_endpoint
                    .as_deref()
                    .and_then(|url| url.split_once("://"))
                    .map_or("localhost", |(_, authority)| host_of(authority))
                    .to_owned(),
                url: None,
                resources: translate::offer_resources(o.hold.cpu, o.hold.memory, &o.hold.tcp),
                attributes: translate::attributes(instance),
                executor_ids: Vec::new(),
                unavailability: None,
                allocation_info: None,
            });
    }
    for (framework, offers) in by_framework {
        app.mesos.send(&framework, &Event::offers(offers));
    }
}

/// Sends each connected framework the new state of its tasks, and again what it has not
/// acknowledged for [`RESEND_AFTER`].
fn send_updates(app: &App) {
    let state = app.node.state();
    for framework in app.mesos.connected() {
        let Some(fw) = state.framework(&framework) else {
            continue;
        };
        let tasks: Vec<_> = state
            .tasks_after(
                &fw.cluster,
                &TaskFilter {
                    started_by: Some(framework.clone()),
                    ..Default::default()
                },
                None,
            )
            .cloned()
            .collect();
        let mut out = Vec::new();
        {
            let mut hub = app.mesos.lock();
            for t in &tasks {
                let Some(mesos) = translate::mesos_task_id(t) else {
                    continue;
                };
                let (s, reason, message) = translate::status_of(t);
                match hub.sent.get_mut(&t.id) {
                    Some(sent) if sent.state == s => {
                        if !sent.acked && sent.at.elapsed() >= RESEND_AFTER {
                            sent.at = Instant::now();
                            out.push(sent.status.clone());
                        }
                    }
                    previous => {
                        // A task that ran and ended between two looks still reports RUNNING
                        // first, as an agent would have.
                        let ran = t.started_at.is_some()
                            && s.is_terminal()
                            && previous.is_none_or(|p| p.state != TaskState::Running);
                        if ran {
                            let mut running =
                                translate::status(mesos, Some(t), TaskState::Running, None, None);
                            running.source = Some(v1::StatusSource::Agent);
                            // Acknowledgeable like any agent update; only the newest status
                            // is resent, so its acknowledgement is not waited for.
                            running.uuid = Some(uuid_bytes().into());
                            out.push(running);
                        }
                        let mut status = translate::status(mesos, Some(t), s, reason, message);
                        status.source = Some(v1::StatusSource::Agent);
                        let uuid = uuid_bytes();
                        status.uuid = Some(uuid.clone().into());
                        hub.sent.insert(
                            t.id,
                            Sent {
                                state: s,
                                uuid,
                                status: status.clone(),
                                at: Instant::now(),
                                acked: false,
                            },
                        );
                        out.push(status);
                    }
                }
            }
        }
        for status in out {
            if let Ok(e) = Event::update(status) {
                app.mesos.send(&framework, &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscriber that reads nothing holds at most [`STREAM_CAPACITY`] events: then its
    /// stream is closed and leaves the hub, and what it had queued ends with the stream.
    #[test]
    fn a_stream_nobody_reads_is_closed_once_its_queue_is_full() {
        let hub = Hub::default();
        let (tx, mut rx) = mpsc::channel(STREAM_CAPACITY);
        hub.lock().streams.insert(
            "fw".into(),
            Stream {
                id: "s1".into(),
                tx,
            },
        );
        // Heartbeats of an older stream of the framework are not sent on this one.
        assert!(!hub.send_on("fw", Some("s0"), &Event::heartbeat()));
        for _ in 0..STREAM_CAPACITY {
            assert!(hub.send_on("fw", Some("s1"), &Event::heartbeat()));
        }
        assert_eq!(hub.connected(), vec!["fw".to_owned()]);
        assert!(!hub.send_on("fw", None, &Event::heartbeat()));
        assert!(hub.connected().is_empty(), "a full stream stays in the hub");
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, STREAM_CAPACITY);
        assert_eq!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected),
            "the closed stream must end"
        );
        // Later events for the framework go nowhere.
        assert!(!hub.send_on("fw", None, &Event::heartbeat()));
    }
}
