//! Credentials and join tokens over the native API, and the join-token exchanges.
//!
//! ```text
//!  POST   /v1/credentials         {name, role | policy} → the credential, its secret this once
//!  GET    /v1/credentials         → every credential, never a secret
//!  DELETE /v1/credentials/{id}
//!  POST   /v1/join-tokens         {cluster?, ttlSeconds?, server?} → {token, ...}, shown once
//!  GET    /v1/join-tokens
//!  DELETE /v1/join-tokens/{id}
//!  POST   /v1/agent/join          signed with an agent join token → the instance's credential
//!  POST   /v1/servers/join        signed with a server join token → the cluster secret, CA
//! ```
//! All of it is signed like every request, and authorized like the ECS API: managing
//! credentials is `berth:CreateCredential` and friends, which only `admin` holds; joining is
//! what a join token's own policy allows and nothing else. A join token for a named cluster is
//! refused unless the cluster is ACTIVE (ClusterNotFoundException, as ECS names a missing or
//! deleted cluster), so a typo fails when the token is made, not later on the agent's host;
//! the exception is `default` while it does not exist, which an agent's join creates, as ECS's
//! agent does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Extension, Json, Router};
use berth_api::agent::{JOIN_PATH, JoinRequest, JoinResponse};
use berth_api::{EcsError, ErrorCode};
use berth_auth::roles::{agent_join_policy, agent_policy, server_join_policy};
use berth_auth::{JoinToken, KeyKind, Policy, Role, action};
use berth_model::command::{CreateCluster, CreateCredential, DeleteCredential};
use berth_model::credential::{Credential, CredentialKind, valid_principal_name};
use berth_model::{InstanceId, Millis};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::auth::Principal;
use crate::bootstrap::{NewCredential, new_credential};
use crate::ecs::{DEFAULT_CLUSTER, context, error_response};

/// Where a joining server gets the cluster secret.
pub const SERVER_JOIN_PATH: &str = "/v1/servers/join";
/// Longest a join token may live (0 in a request: until deleted).
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/credentials", post(create).get(list))
        .route("/v1/credentials/{id}", delete(remove))
        .route("/v1/join-tokens", post(create_token).get(list_tokens))
        .route("/v1/join-tokens/{id}", delete(remove_token))
        .route(JOIN_PATH, post(join_agent))
        .route(SERVER_JOIN_PATH, post(join_server))
}

fn respond(result: Result<Value, EcsError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(e),
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, EcsError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        EcsError::new(
            ErrorCode::SerializationException,
            format!("Could not read the request body: {e}"),
        )
    })
}

/// A credential as listed: everything but the secret.
fn render(c: &Credential) -> Value {
    let (kind, cluster, instance) = match &c.kind {
        CredentialKind::User => ("user", None, None),
        CredentialKind::Agent { cluster, instance } => (
            "agent",
            Some(cluster.to_string()),
            Some(instance.to_string()),
        ),
        CredentialKind::AgentJoinToken { cluster } => (
            "agent-join-token",
            cluster.as_deref().map(str::to_owned),
            None,
        ),
        CredentialKind::ServerJoinToken => ("server-join-token", None, None),
    };
    json!({
        "accessKeyId": c.access_key_id,
        "name": c.name,
        "kind": kind,
        "cluster": cluster,
        "containerInstanceId": instance,
        "role": c.role,
        "policy": &*c.policy,
        "createdAt": c.created_at.as_epoch_seconds(),
        "createdBy": c.created_by,
        "expiresAt": c.expires_at.map(|e| e.as_epoch_seconds()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    role: Option<String>,
    policy: Option<Value>,
}

async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    respond(
        async {
            let ctx = context(&app, &headers, principal.clone());
            ctx.authorize(action::CREATE_CREDENTIAL, &[], None)?;
            let req: CreateRequest = body(&bytes)?;
            if !valid_principal_name(&req.name) {
                return Err(EcsError::invalid(
                    "name must be 1 to 64 letters, digits or +=,.@_-",
                ));
            }
            let (policy, role) = match (req.role, req.policy) {
                (Some(role), None) => {
                    let role = Role::parse(&role).map_err(|e| EcsError::invalid(e.to_string()))?;
                    (role.policy(), Some(role.to_string()))
                }
                (None, Some(doc)) => (
                    Policy::parse(&doc.to_string())
                        .map_err(|e| EcsError::new(ErrorCode::InvalidParameterException, e.to_string()))?,
                    None,
                ),
                _ => {
                    return Err(EcsError::invalid(
                        "give exactly one of role (admin, read-only, framework, operator:CLUSTER) and policy",
                    ));
                }
            };
            let (credentials, credential) = new_credential(
                &app,
                NewCredential {
                    key: KeyKind::User,
                    name: req.name,
                    kind: CredentialKind::User,
                    policy,
                    role,
                    created_by: principal.actor(),
                    expires_at: None,
                },
            );
            let stored = app
                .write_by(&principal, CreateCredential { credential })
                .await?;
            let mut out = render(&stored);
            out["secretAccessKey"] = credentials.secret.expose().into();
            Ok(out)
        }
        .await,
    )
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let ctx = context(&app, &headers, principal.clone());
        ctx.authorize(action::LIST_CREDENTIALS, &[], None)?;
        let state = app.node.state();
        let items: Vec<Value> = state
            .credentials()
            .filter(|c| !c.kind.is_join_token())
            .map(|c| render(c))
            .collect();
        Ok(json!({ "credentials": items }))
    })())
}

async fn remove(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    remove_any(
        &app,
        &principal,
        &headers,
        &id,
        action::DELETE_CREDENTIAL,
        false,
    )
    .await
}

async fn remove_token(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    remove_any(
        &app,
        &principal,
        &headers,
        &id,
        action::DELETE_JOIN_TOKEN,
        true,
    )
    .await
}

async fn remove_any(
    app: &App,
    principal: &Principal,
    headers: &HeaderMap,
    id: &str,
    action: &str,
    token: bool,
) -> Response {
    respond(
        async {
            let ctx = context(app, headers, principal.clone());
            ctx.authorize(action, &[], None)?;
            let state = app.node.state();
            match state.credential(id) {
                Some(c) if c.kind.is_join_token() == token => {}
                _ => {
                    return Err(EcsError::new(
                        ErrorCode::ResourceNotFoundException,
                        format!(
                            "No {} with the id '{}'",
                            if token { "join token" } else { "credential" },
                            id.chars().take(64).collect::<String>()
                        ),
                    ));
                }
            }
            let removed = app
                .write_by(
                    principal,
                    DeleteCredential {
                        access_key_id: id.to_owned(),
                    },
                )
                .await?;
            Ok(render(&removed))
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    cluster: Option<String>,
    ttl_seconds: Option<u64>,
    #[serde(default)]
    server: bool,
}

/// A join token for agents of `cluster`, made by the server itself (`berth dev`'s own agent).
pub async fn issue_agent_token(
    app: &App,
    cluster: &str,
    actor: &str,
) -> Result<JoinToken, EcsError> {
    let (token, _) = issue_token(
        app,
        actor,
        Some(cluster.to_owned()),
        false,
        Some(Duration::from_secs(3600)),
    )
    .await?;
    Ok(token)
}

async fn issue_token(
    app: &App,
    actor: &str,
    cluster: Option<String>,
    server: bool,
    ttl: Option<Duration>,
) -> Result<(JoinToken, Arc<Credential>), EcsError> {
    if let Some(c) = &cluster {
        if !berth_model::arn::valid_cluster_name(c) {
            return Err(EcsError::invalid(format!(
                "'{}' is not a cluster name",
                c.chars().take(64).collect::<String>()
            )));
        }
        let state = app.node.state();
        if !(c == DEFAULT_CLUSTER && state.cluster(c).is_none()) {
            crate::ecs::active_cluster(&state, c)?;
        }
    }
    let (kind, policy) = if server {
        (CredentialKind::ServerJoinToken, server_join_policy())
    } else {
        (
            CredentialKind::AgentJoinToken {
                cluster: cluster.as_deref().map(Into::into),
            },
            agent_join_policy(cluster.as_deref()),
        )
    };
    let expires_at = ttl.map(|t| Millis::now().saturating_add_ms(t.as_millis() as i64));
    let (credentials, credential) = new_credential(
        app,
        NewCredential {
            key: KeyKind::JoinToken,
            name: if server { "server-join" } else { "agent-join" }.to_owned(),
            kind,
            policy,
            role: None,
            created_by: actor.to_owned(),
            expires_at,
        },
    );
    let stored = app
        .node
        .write_by(actor, CreateCredential { credential })
        .await
        .map_err(crate::ecs::unavailable)?
        .result
        .map_err(EcsError::from)?;
    let token = JoinToken {
        id: credentials.access_key_id,
        secret: credentials.secret,
        ca_sha256: app.tls.as_ref().map(|t| t.ca_sha256()),
    };
    Ok((token, stored))
}

async fn create_token(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    respond(
        async {
            let ctx = context(&app, &headers, principal.clone());
            ctx.authorize(action::CREATE_JOIN_TOKEN, &[], None)?;
            let req: TokenRequest = body(&bytes)?;
            let ttl = match req.ttl_seconds {
                None => Some(Duration::from_secs(24 * 3600)),
                Some(0) => None,
                Some(s) if Duration::from_secs(s) > MAX_TTL => {
                    return Err(EcsError::invalid(format!(
                        "ttlSeconds is at most {} (a year); 0 means until deleted",
                        MAX_TTL.as_secs()
                    )));
                }
                Some(s) => Some(Duration::from_secs(s)),
            };
            if req.server && req.cluster.is_some() {
                return Err(EcsError::invalid("a server join token names no cluster"));
            }
            let (token, stored) =
                issue_token(&app, &principal.actor(), req.cluster, req.server, ttl).await?;
            let mut out = render(&stored);
            out["token"] = token.render().into();
            Ok(out)
        }
        .await,
    )
}

async fn list_tokens(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let ctx = context(&app, &headers, principal.clone());
        ctx.authorize(action::LIST_JOIN_TOKENS, &[], None)?;
        let state = app.node.state();
        let now = Millis::now();
        let items: Vec<Value> = state
            .credentials()
            .filter(|c| c.kind.is_join_token())
            .map(|c| {
                let mut v = render(c);
                v["expired"] = (!c.valid_at(now)).into();
                v
            })
            .collect();
        Ok(json!({ "joinTokens": items }))
    })())
}

/// An agent's join: a new credential bound to a new container instance id, which the agent
/// then registers with RegisterContainerInstance, signed with that credential.
async fn join_agent(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let result = async {
        let ctx = context(&app, &headers, principal.clone());
        let req: JoinRequest = body(&bytes)?;
        let cluster = crate::ecs::cluster_param(&Some(req.cluster.clone()))?;
        ctx.authorize(action::JOIN_AGENT, &[], Some(&cluster))?;
        if cluster == DEFAULT_CLUSTER && app.node.state().cluster(&cluster).is_none() {
            // As ECS's agent does: the default cluster appears with its first instance.
            app.write_by(
                &principal,
                CreateCluster {
                    name: cluster.as_str().into(),
                    settings: Vec::new(),
                    configuration: None,
                    service_connect_defaults: None,
                    tags: Vec::new(),
                    capacity_providers: Vec::new(),
                    default_strategy: Vec::new(),
                },
            )
            .await?;
        }
        crate::ecs::active_cluster(&app.node.state(), &cluster)?;
        let instance = InstanceId(rand::random());
        let (credentials, credential) = new_credential(
            &app,
            NewCredential {
                key: KeyKind::Agent,
                name: format!("{cluster}/{instance}"),
                kind: CredentialKind::Agent {
                    cluster: cluster.as_str().into(),
                    instance,
                },
                policy: agent_policy(&cluster),
                role: None,
                created_by: principal.actor(),
                expires_at: None,
            },
        );
        app.write_by(&principal, CreateCredential { credential })
            .await?;
        Ok(JoinResponse {
            container_instance_arn: ctx.arn.container_instance(&cluster, instance),
            cluster,
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret.expose().to_owned(),
        })
    }
    .await;
    match result {
        Ok(r) => Json(r).into_response(),
        Err(e) => error_response(e),
    }
}

/// A new server's join: the cluster secret (everything else it derives), and the CA.
async fn join_server(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let ctx = context(&app, &headers, principal.clone());
        ctx.authorize(action::JOIN_SERVER, &[], None)?;
        Ok(json!({
            "clusterSecret": app.keyring.cluster_secret().render(),
            "caCertificate": app.tls.as_ref().map(|t| t.ca_pem()),
        }))
    })())
}
