//! The scheduler endpoint's HTTP edge: `GET /version` and `POST /api/v1/scheduler`.
//!
//! A call is parsed, validated and authorized here, then either opens an event stream
//! (SUBSCRIBE) or is checked against the caller's stream and handed to [`super::calls`],
//! answered 202 at once as a master answers it. Streams and offers live on the leader: a
//! follower sends frameworks there with 307, as a Mesos master that is not leading does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use berth_api::protocol::DEFAULT_REGION;
use berth_mesos::protocol::{MESOS_VERSION, STREAM_ID_HEADER};
use berth_mesos::recordio::record;
use berth_mesos::scheduler::{Call, CallType, Event};
use berth_mesos::v1::FrameworkId;
use berth_mesos::validate::validate_call;
use berth_model::Millis;
use berth_model::OfferId;
use berth_model::arn::ArnContext;
use berth_model::command::{RemoveOffers, SubscribeFramework};
use berth_model::mesos::Framework;
use berth_raft::Written;
use tokio::sync::mpsc;

use super::calls::handle;
use super::hub::{STREAM_CAPACITY, Stream, Subscription};
use super::{uuid_string, write_or_warn};
use crate::App;
use crate::auth::Principal;

/// Seconds between HEARTBEAT events.
const HEARTBEAT_SECS: f64 = 15.0;

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

/// Answers a SUBSCRIBE whose framework was not written, closing the stream it opened.
fn refuse(
    app: &App,
    framework: &str,
    stream_id: &str,
    status: StatusCode,
    why: impl std::fmt::Display,
) -> Response {
    let mut hub = app.mesos.lock();
    if hub
        .streams
        .get(framework)
        .is_some_and(|s| s.id == stream_id)
    {
        hub.streams.remove(framework);
    }
    plain(status, why.to_string())
}

/// Releases the offers `framework` was made before its subscription at log index
/// `subscribed_at`, as a Mesos master does when a framework fails over: its new stream never
/// heard of them, and since offers do not time out by default they would otherwise hold their
/// instances for good. No RESCIND is sent for them, as a master sends none.
async fn release_earlier_offers(app: &App, framework: &str, subscribed_at: u64) {
    let earlier: Vec<OfferId> = app
        .node
        .state()
        .offers()
        .filter(|o| o.framework == framework && o.version < subscribed_at)
        .map(|o| o.id)
        .collect();
    if earlier.is_empty() {
        return;
    }
    {
        let mut hub = app.mesos.lock();
        for id in &earlier {
            hub.offered.remove(id);
        }
    }
    write_or_warn(app, RemoveOffers { ids: earlier }).await;
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
        hub.filters.clear(&id);
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
    let subscribed_at = match written {
        Ok(Written {
            index,
            result: Ok(_),
        }) => index,
        Ok(Written { result: Err(e), .. }) => {
            return refuse(&app, &id, &stream_id, StatusCode::BAD_REQUEST, e);
        }
        Err(e) => return refuse(&app, &id, &stream_id, StatusCode::SERVICE_UNAVAILABLE, e),
    };
    release_earlier_offers(&app, &id, subscribed_at).await;
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
