//! The Raft group, seen and changed by an operator, and joined by a new server:
//!
//! ```text
//!  GET    /v1/operator/raft/peers               berth:ListRaftPeers   → {leader, members}
//!  DELETE /v1/operator/raft/peers/{id}[?force]  berth:RemoveRaftPeer  → {leader, members}
//!  POST   /v1/operator/raft/transfer-leader     berth:TransferRaftLeadership
//!         {"to": ID} (or {}: the most up-to-date voter)     → {leader, previous, members}
//! ```
//! A joining server holds the cluster secret (from a server join token) and asks to be added
//! through `berth_raft`'s peer calls; what any change may do is `berth_raft::membership`'s
//! decision, made on the leader. A transfer is `berth_raft::transfer`'s, carried out on the
//! leader too.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use berth_api::{EcsError, ErrorCode};
use berth_auth::roles::action;
use berth_raft::{Member, MembershipChange, MembershipError, TransferError};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::auth::Principal;
use crate::ecs::{context, error_response};

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/operator/raft/peers", get(list_peers))
        .route("/v1/operator/raft/peers/{id}", delete(remove_peer))
        .route("/v1/operator/raft/transfer-leader", post(transfer_leader))
}

fn answer(app: &App, result: Result<Vec<Member>, MembershipError>) -> Response {
    match result {
        Ok(members) => {
            Json(json!({ "leader": app.node.leader().map(|(id, _)| id), "members": members }))
                .into_response()
        }
        Err(MembershipError::Refused(why)) => {
            error_response(EcsError::new(ErrorCode::ClientException, why))
        }
        Err(e) => error_response(EcsError::unavailable(e.to_string())),
    }
}

async fn list_peers(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&app, &headers, principal);
    if let Err(e) = ctx.authorize(action::LIST_RAFT_PEERS, &[], None) {
        return error_response(e);
    }
    answer(&app, Ok(app.node.members()))
}

#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

async fn remove_peer(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ctx = context(&app, &headers, principal);
    if let Err(e) = ctx.authorize(action::REMOVE_RAFT_PEER, &[], None) {
        return error_response(e);
    }
    let Ok(id) = id.parse::<u64>() else {
        return error_response(EcsError::invalid(format!("'{id}' is not a server id")));
    };
    let Ok(Query(RemoveQuery { force })) = query else {
        return error_response(EcsError::invalid("force must be true or false"));
    };
    let change = MembershipChange::RemoveVoter { id, force };
    let result = app.node.change_membership(change).await;
    answer(&app, result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    #[serde(default)]
    to: Option<u64>,
}

async fn transfer_leader(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(&app, &headers, principal);
    if let Err(e) = ctx.authorize(action::TRANSFER_RAFT_LEADERSHIP, &[], None) {
        return error_response(e);
    }
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let Ok(TransferBody { to }) = serde_json::from_slice(body) else {
        return error_response(EcsError::invalid(
            "the body must be {} or {\"to\": SERVER_ID}",
        ));
    };
    match app.node.transfer_leadership(to).await {
        Ok(done) => Json(json!({
            "leader": done.leader,
            "previous": done.previous,
            "members": app.node.members(),
        }))
        .into_response(),
        Err(TransferError::Refused(why)) => {
            error_response(EcsError::new(ErrorCode::ClientException, why))
        }
        Err(e) => error_response(EcsError::unavailable(e.to_string())),
    }
}
