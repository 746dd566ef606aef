//! The Raft group, seen and changed by an operator, and joined by a new server:
//!
//! ```text
//!  GET    /v1/operator/raft/peers               berth:ListRaftPeers   → {leader, members}
//!  DELETE /v1/operator/raft/peers/{id}[?force]  berth:RemoveRaftPeer  → {leader, members}
//! ```
//! A joining server holds the cluster secret (from a server join token) and asks to be added
//! through `berth_raft`'s peer calls; what any change may do is `berth_raft::membership`'s
//! decision, made on the leader.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use berth_api::{EcsError, ErrorCode};
use berth_auth::roles::action;
use berth_raft::{Member, MembershipChange, MembershipError};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::auth::Principal;
use crate::ecs::{context, error_response};

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/operator/raft/peers", get(list_peers))
        .route("/v1/operator/raft/peers/{id}", delete(remove_peer))
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
