//! berth's native API (beyond ECS) and the Raft RPC endpoints.
//!
//! - `GET /v1/history/{arn}`: the retained versions of a cluster, task definition, container
//!   instance or task, oldest first, each with the log index that produced it and who caused
//!   it (`by`: `user/alice`, `container-instance/<cluster>/<id>`, ...).
//! - `GET /v1/watch?index=N&timeout=S`: blocks until the state passes index N (or S seconds,
//!   default 30, at most 300), then returns the new index and what changed since N.
//! - `GET /v1/health`: this node's applied index, the leader and term it knows, the voters,
//!   and whether it can reach a quorum (503 when it cannot).
//! - `POST /v1/raft/*`: calls between servers (Raft RPCs, forwarded writes, read barriers,
//!   membership changes), answered by `berth_raft::rpc`; only peers get this far.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_api::protocol::DEFAULT_REGION;
use berth_auth::action;
use berth_model::arn::{ArnContext, ResourceArn, parse_resource_arn};
use berth_state::{Entity, EntityKey};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::App;
use crate::auth::Principal;
use crate::ecs::{error_response, render_for_history};

pub(crate) fn router() -> Router<Arc<App>> {
    let router = Router::new()
        .route("/v1/history/{*arn}", get(history))
        .route("/v1/watch", get(watch))
        .route("/v1/health", get(health));
    berth_raft::rpc::PATHS
        .into_iter()
        .fold(router, |router, path| router.route(path, post(peer_call)))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

#[derive(Deserialize)]
struct RegionQuery {
    region: Option<String>,
}

/// Query parameters, or a 400 JSON error naming the one that did not parse.
macro_rules! query {
    ($q:expr) => {
        match $q {
            Ok(Query(q)) => q,
            Err(e) => return error(StatusCode::BAD_REQUEST, QueryRejection::body_text(&e)),
        }
    };
}

async fn history(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(arn): Path<String>,
    q: Result<Query<RegionQuery>, QueryRejection>,
) -> Response {
    let q = query!(q);
    let resource = match parse_resource_arn(&arn) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let region = ArnContext::new(
        q.region.as_deref().unwrap_or(DEFAULT_REGION),
        app.config.account_id.clone(),
    );
    let cluster = resource.cluster();
    if let Err(e) = principal.authorize(
        &region,
        action::GET_HISTORY,
        &[resource.render(&region)],
        cluster,
    ) {
        return error_response(e);
    }
    let Some(key) = EntityKey::of(&resource) else {
        return error(
            StatusCode::NOT_FOUND,
            "berth keeps no history for this kind of resource yet",
        );
    };
    let ctx = ArnContext::new(
        q.region.as_deref().unwrap_or(DEFAULT_REGION),
        app.config.account_id.clone(),
    );
    let state = app.node.state();
    let Some(versions) = state.history(&key) else {
        return error(StatusCode::NOT_FOUND, format!("no history for {arn}"));
    };
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "index": v.index,
                "at": v.at.as_epoch_seconds(),
                "deleted": v.value.is_none(),
                "by": v.by.as_deref(),
                "value": v.value.as_ref().map(|e| render_for_history(&ctx, e)),
            })
        })
        .collect();
    Json(json!({ "arn": resource.render(&ctx), "index": state.index(), "versions": versions }))
        .into_response()
}

#[derive(Deserialize)]
struct WatchQuery {
    index: Option<u64>,
    timeout: Option<u64>,
    region: Option<String>,
}

#[derive(Serialize)]
struct Change {
    index: u64,
    arn: String,
}

async fn watch(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    q: Result<Query<WatchQuery>, QueryRejection>,
) -> Response {
    let q = query!(q);
    let region = ArnContext::new(
        q.region.as_deref().unwrap_or(DEFAULT_REGION),
        app.config.account_id.clone(),
    );
    // The change log spans every cluster: watching it is allowed as a whole or not at all.
    if let Err(e) = principal.authorize(&region, action::WATCH, &[], None) {
        return error_response(e);
    }
    let index = q.index.unwrap_or(0);
    let timeout = Duration::from_secs(q.timeout.unwrap_or(30).min(300));
    let state = app.node.wait_beyond(index, timeout).await;
    let ctx = ArnContext::new(
        q.region.as_deref().unwrap_or(DEFAULT_REGION),
        app.config.account_id.clone(),
    );
    let changes = state.changes_since(index);
    let truncated = changes.is_none();
    let changes: Vec<Change> = changes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(i, key)| {
            Some(Change {
                index: i,
                arn: key_arn(&state, &key)?.render(&ctx),
            })
        })
        .collect();
    Json(json!({
        "index": state.index(),
        "changed": state.index() > index,
        "truncated": truncated,
        "changes": changes,
    }))
    .into_response()
}

/// The ARN of an entity key; tasks and instances need their cluster, from the current state or
/// (for ones already forgotten) from their last retained version. Mesos frameworks and offers
/// have no ARN: the watch does not list them.
fn key_arn(state: &berth_state::State, key: &EntityKey) -> Option<ResourceArn> {
    let from_history = || {
        state.history(key).and_then(|h| {
            h.iter()
                .rev()
                .find_map(|v| v.value.as_ref().and_then(Entity::resource))
        })
    };
    Some(match key {
        EntityKey::Cluster(n) => ResourceArn::Cluster(n.to_string()),
        EntityKey::TaskDefinition(f, r) => ResourceArn::TaskDefinition(f.to_string(), *r),
        EntityKey::Instance(id) => state
            .instance(*id)
            .map(|i| ResourceArn::ContainerInstance(i.cluster.to_string(), *id))
            .or_else(from_history)
            .unwrap_or_else(|| ResourceArn::ContainerInstance("unknown".into(), *id)),
        EntityKey::Task(id) => state
            .task(*id)
            .map(|t| ResourceArn::Task(t.cluster.to_string(), *id))
            .or_else(from_history)
            .unwrap_or_else(|| ResourceArn::Task("unknown".into(), *id)),
        EntityKey::Service(c, n) => ResourceArn::Service(c.to_string(), n.to_string()),
        EntityKey::Framework(_) | EntityKey::Offer(_) | EntityKey::Credential(_) => return None,
    })
}

/// Liveness and standing: 200 with `"status": "ok"` while a write sent here can commit, 503
/// with `"status": "no-quorum"` when it cannot (no leader known, or a leader that no
/// quorum answers), so a load balancer or an operator's probe sees the difference.
async fn health(State(app): State<Arc<App>>) -> Response {
    let state = app.node.state();
    let standing = app.node.standing().await;
    let status = if standing.quorum {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Json(json!({
        "status": if standing.quorum { "ok" } else { "no-quorum" },
        "node": app.node.id(),
        "index": state.index(),
        "leader": standing.leader,
        "term": standing.term,
        "quorum": standing.quorum,
        "voters": standing.voters,
        "learners": standing.learners,
        "last_log_index": standing.last_log_index,
        "snapshot_index": standing.snapshot_index,
        "purged_index": standing.purged_index,
    }));
    (status, body).into_response()
}

/// A call from a peer (Raft RPCs, forwarded writes, read barriers, membership changes): the
/// authentication layer let only peers through; `berth_raft` checks and answers it.
async fn peer_call(State(app): State<Arc<App>>, uri: Uri, body: Bytes) -> Response {
    let answer = app.node.serve_peer(uri.path(), &body).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(CONTENT_TYPE, "application/json")], answer.body).into_response()
}
