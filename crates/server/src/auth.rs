//! The authentication layer in front of every route: a request becomes a [`Principal`] here,
//! or is refused here. Handlers never see an anonymous request.
//!
//! ```text
//!  request ─► which API? ─┬─ /v1/health, /version ─────────────────────► handler (no principal)
//!                         ├─ /v1/raft/*, heartbeats ─ SigV4, peer key only, body hash signed
//!                         ├─ POST / (ECS) ─────────── SigV4 for `ecs`
//!                         ├─ /schedules* ──────────── SigV4 for `scheduler` (EventBridge Scheduler)
//!                         ├─ Mesos scheduler API ──── HTTP Basic (key id : secret) or SigV4
//!                         ├─ /ui ──────────────────── session cookie (crate::ui)
//!                         └─ everything else ──────── SigV4 for `berth`
//!        │ the key's secret: the peer key (derived from the cluster secret), or a credential
//!        │ from the replicated state, unsealed with the cluster's seal key
//!        ▼
//!  berth_auth::sigv4::verify ──► Principal in the request's extensions ──► handler
//! ```
//! Bodies are read here, within a deadline and a size limit, because the signature covers
//! them. A caller that signs `x-amz-content-sha256` (berth's servers do, for Raft) has its
//! signature checked before its body is read, so a large body is never buffered for
//! someone who cannot sign. Policies are evaluated by the handlers, which know what a
//! request touches; [`Principal::authorize`] is how.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_api::{EcsError, ErrorCode};
use berth_auth::sigv4::{self, Payload, SigV4Error, VerifyingKey};
use berth_auth::{ClusterSecret, SealKey, Sealed, SecretKey, SessionKey};
use berth_client::Credentials;
use berth_model::InstanceId;
use berth_model::Millis;
use berth_model::arn::ArnContext;
use berth_model::credential::{Credential, CredentialKind};
use bytes::Bytes;
use subtle::ConstantTimeEq;

use crate::App;

/// Access key ids of the servers themselves start with this (the node id follows).
pub const PEER_KEY_PREFIX: &str = "BKPEER";
/// How long a client has to send a request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest body of an ECS request.
pub const MAX_ECS_BODY: usize = 2 * 1024 * 1024;
/// Largest body of a native or Mesos request.
const MAX_BODY: usize = 1024 * 1024;
/// Largest body between servers (a Raft snapshot is installed in one message).
const MAX_PEER_BODY: usize = 1024 * 1024 * 1024;
/// How long a request waits for a starting server to finish bootstrapping.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(30);

/// Which API a request is for: it decides the signing name and who may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `/v1/health` and Mesos' `GET /version`: liveness and the Mesos API version, nothing
    /// sensitive, no credentials. A Mesos master serves `/version` to anyone, and frameworks
    /// (pymesos) read it before they authenticate.
    Open,
    /// `POST /`: the ECS API.
    Ecs,
    /// `POST /` with a Cloud Map `X-Amz-Target`: service discovery, signed for
    /// `servicediscovery`.
    CloudMap,
    /// The Mesos scheduler API.
    Mesos,
    /// EventBridge Scheduler's API (`/schedules...`), signed for `scheduler`.
    Scheduler,
    /// Raft RPCs and forwarded heartbeats: other servers only.
    Peer,
    /// The rest of `/v1/...`.
    Native,
    /// The web UI (`/ui`): a session cookie from its login page, not SigV4 (see `crate::ui`).
    Ui,
}

impl Api {
    /// The API a request is for, from its path and (for `POST /`) its `X-Amz-Target`.
    pub(crate) fn of(path: &str, target: Option<&str>) -> Api {
        match path {
            "/v1/health" | "/version" => Api::Open,
            "/" if target
                .is_some_and(|t| t.starts_with(crate::discovery::cloudmap::TARGET_PREFIX)) =>
            {
                Api::CloudMap
            }
            "/" => Api::Ecs,
            "/api/v1/scheduler" => Api::Mesos,
            p if p == "/schedules" || p.starts_with("/schedules/") => Api::Scheduler,
            p if p.starts_with("/v1/raft/") || p == crate::agents::FORWARD_PATH => Api::Peer,
            p if p == crate::ui::PREFIX || p.starts_with("/ui/") => Api::Ui,
            _ => Api::Native,
        }
    }

    fn signing_name(self) -> &'static str {
        match self {
            Api::Ecs => "ecs",
            Api::CloudMap => "servicediscovery",
            Api::Scheduler => "scheduler",
            Api::Open | Api::Mesos | Api::Peer | Api::Native | Api::Ui => "berth",
        }
    }

    fn max_body(self) -> usize {
        match self {
            Api::Ecs => MAX_ECS_BODY,
            Api::Peer => MAX_PEER_BODY,
            Api::Open | Api::Mesos | Api::CloudMap | Api::Scheduler | Api::Native | Api::Ui => {
                MAX_BODY
            }
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A credential from the cluster's state.
    Credential(Arc<Credential>),
    /// Another server of this cluster.
    Peer,
}

impl Principal {
    /// Who the audit trail names: `user/alice`, `container-instance/<cluster>/<id>`, ...
    pub fn actor(&self) -> String {
        match self {
            Principal::Credential(c) => c.actor(),
            Principal::Peer => "server".into(),
        }
    }

    /// The principal as an ARN, as AWS names principals in its messages.
    pub fn arn(&self, arn: &ArnContext) -> String {
        match self {
            Principal::Credential(c) => match &c.kind {
                CredentialKind::Agent { cluster, instance } => {
                    arn.container_instance(cluster, *instance)
                }
                _ => format!("arn:{}:iam::{}:user/{}", arn.partition, arn.account, c.name),
            },
            Principal::Peer => format!("arn:{}:iam::{}:root", arn.partition, arn.account),
        }
    }

    /// The container instance an agent credential acts for.
    pub fn agent_instance(&self) -> Option<(&str, InstanceId)> {
        match self {
            Principal::Credential(c) => match &c.kind {
                CredentialKind::Agent { cluster, instance } => Some((cluster, *instance)),
                _ => None,
            },
            Principal::Peer => None,
        }
    }

    /// Whether `action` is allowed whatever resources and cluster it touches (see
    /// [`berth_auth::Policy::allows_everywhere`]): callers skip building ARNs when it is.
    pub fn allows_everywhere(&self, action: &str) -> bool {
        matches!(self, Principal::Credential(c) if c.policy.allows_everywhere(action))
    }

    /// Allows `action` on `resources` (ARNs; none means `*`) in `cluster` (a name), or answers
    /// AccessDeniedException in AWS's words.
    pub fn authorize(
        &self,
        arn: &ArnContext,
        action: &str,
        resources: &[String],
        cluster: Option<&str>,
    ) -> Result<(), EcsError> {
        let Principal::Credential(c) = self else {
            return Err(EcsError::new(
                ErrorCode::AccessDeniedException,
                format!("Servers of this cluster may not perform {action}"),
            ));
        };
        if c.policy.allows_everywhere(action) {
            return Ok(());
        }
        let cluster_arn = cluster.map(|c| arn.cluster(c));
        let mut context: Vec<(&str, &str)> = vec![("aws:username", c.name.as_str())];
        if let Some(cluster) = &cluster_arn {
            context.push(("ecs:cluster", cluster));
        }
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        c.policy
            .authorize(action, &resources, &context)
            .map_err(|denial| {
                EcsError::new(
                    ErrorCode::AccessDeniedException,
                    denial.message(&self.arn(arn)),
                )
            })
    }
}

/// The secrets behind authentication: the seal key credential secrets are stored under, the
/// peers' signing secret, and the secrets already unsealed.
pub struct Keyring {
    seal: SealKey,
    session: SessionKey,
    peer_secret: SecretKey,
    /// What peers' requests are verified with (the peer secret, and its derived key).
    peer_key: Arc<VerifyingKey>,
    cluster_secret: ClusterSecret,
    /// Unsealed secrets by access key id, with the credential version they came from.
    open: Mutex<HashMap<String, (u64, Arc<VerifyingKey>)>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(** redacted **)")
    }
}

impl Keyring {
    pub fn new(cluster_secret: ClusterSecret) -> Keyring {
        Keyring {
            seal: cluster_secret.seal_key(),
            session: cluster_secret.session_key(),
            peer_secret: cluster_secret.peer_secret(),
            peer_key: Arc::new(VerifyingKey::new(cluster_secret.peer_secret())),
            cluster_secret,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Seals a new credential's secret.
    pub fn seal(&self, access_key_id: &str, secret: &SecretKey) -> Sealed {
        self.seal.seal(access_key_id, secret, rand::random())
    }

    /// The secret of a credential from the state.
    pub fn secret_of(&self, credential: &Credential) -> Result<SecretKey, EcsError> {
        Ok(self.verifying_key(credential)?.secret().clone())
    }

    /// What requests signed with a credential from the state are verified with.
    fn verifying_key(&self, credential: &Credential) -> Result<Arc<VerifyingKey>, EcsError> {
        let mut open = self.open.lock().expect("keyring lock");
        if let Some((version, key)) = open.get(&credential.access_key_id)
            && *version == credential.version
        {
            return Ok(key.clone());
        }
        let secret = self
            .seal
            .open(&credential.access_key_id, &credential.sealed_secret)
            .map_err(|e| {
                tracing::error!(error = %e, "a credential cannot be unsealed");
                EcsError::server(
                    "This credential cannot be checked: its secret was sealed with another cluster secret",
                )
            })?;
        if open.len() > 100_000 {
            open.clear();
        }
        let key = Arc::new(VerifyingKey::new(secret));
        open.insert(
            credential.access_key_id.clone(),
            (credential.version, key.clone()),
        );
        Ok(key)
    }

    /// What web UI sessions are signed with.
    pub fn session_key(&self) -> &SessionKey {
        &self.session
    }

    /// How server `node` signs its requests to its peers.
    pub fn peer_credentials(&self, node: u64) -> Credentials {
        Credentials {
            access_key_id: format!("{PEER_KEY_PREFIX}{node}"),
            secret: self.peer_secret.clone(),
        }
    }

    /// The cluster secret itself, for a server joining with a server join token.
    pub fn cluster_secret(&self) -> &ClusterSecret {
        &self.cluster_secret
    }
}

/// A refused request, in the shape of the API it was for.
struct Refusal {
    api: Api,
    error: EcsError,
}

impl Refusal {
    fn new(api: Api, code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            api,
            error: EcsError::new(code, message),
        }
    }

    fn signature(api: Api, e: SigV4Error) -> Refusal {
        let code = match e {
            SigV4Error::Missing => ErrorCode::MissingAuthenticationTokenException,
            SigV4Error::Incomplete(_) => ErrorCode::IncompleteSignatureException,
            SigV4Error::SessionToken => ErrorCode::UnrecognizedClientException,
            SigV4Error::WrongService { .. }
            | SigV4Error::Expired { .. }
            | SigV4Error::NotYetCurrent { .. }
            | SigV4Error::Mismatch => ErrorCode::InvalidSignatureException,
        };
        Refusal::new(api, code, e.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.api == Api::Mesos {
            // As a Mesos master answers: 401 with a Basic challenge, 403 when not allowed.
            let status = match self.error.code {
                ErrorCode::AccessDeniedException => StatusCode::FORBIDDEN,
                ErrorCode::ServerException => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut r = (status, self.error.message).into_response();
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Basic realm=\"berth\""),
            );
            return r;
        }
        crate::ecs::error_response(self.error)
    }
}

/// The middleware: authenticates the request, or answers for it.
pub(crate) async fn authenticate(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let api = Api::of(request.uri().path(), target);
    if api == Api::Open {
        return next.run(request).await;
    }
    if api != Api::Peer && !app.wait_bootstrapped(BOOTSTRAP_WAIT).await {
        return Refusal::new(
            api,
            ErrorCode::ServerException,
            "The server is still starting: it has not finished bootstrapping its credentials",
        )
        .into_response();
    }
    if api == Api::Ui {
        return crate::ui::gate(&app, request, next).await;
    }
    let (mut parts, body) = request.into_parts();
    match identify(&app, api, &parts, body).await {
        Ok((principal, body)) => {
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn read_body(api: Api, body: Body) -> Result<Bytes, Refusal> {
    let limit = api.max_body();
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(Refusal::new(
            api,
            ErrorCode::InvalidParameterException,
            format!("The request body is larger than {limit} bytes, or was cut short"),
        )),
        Err(_) => Err(Refusal::new(
            api,
            ErrorCode::InvalidParameterException,
            format!(
                "The request body did not arrive within {}s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Who sent `parts`, and its body once read.
async fn identify(
    app: &App,
    api: Api,
    parts: &Parts,
    body: Body,
) -> Result<(Principal, Bytes), Refusal> {
    let Some(authorization) = header(&parts.headers, "authorization") else {
        return Err(Refusal::signature(api, SigV4Error::Missing));
    };
    if api == Api::Mesos
        && let Some(basic) = authorization.strip_prefix("Basic ")
    {
        let principal = basic_principal(app, basic.trim())?;
        return Ok((principal, read_body(api, body).await?));
    }
    let auth = sigv4::parse_authorization(authorization).map_err(|e| Refusal::signature(api, e))?;
    let (principal, key) = lookup(app, api, auth.access_key_id)?;
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let method = parts.method.as_str();
    let now = SystemTime::now();
    let signed_hash = header(&parts.headers, "x-amz-content-sha256")
        .filter(|_| auth.signed_headers.contains(&"x-amz-content-sha256"));
    let body = match signed_hash {
        Some(hash) => {
            // The signature covers the hash: check it before reading what it covers.
            let request = sigv4::Request {
                method,
                path_and_query,
                headers: &headers,
                payload: Payload::Sha256Hex(hash),
            };
            sigv4::verify(&auth, &request, api.signing_name(), &key, now)
                .map_err(|e| Refusal::signature(api, e))?;
            let body = read_body(api, body).await?;
            if !sigv4::sha256_hex(&body).eq_ignore_ascii_case(hash) {
                return Err(Refusal::new(
                    api,
                    ErrorCode::InvalidSignatureException,
                    "The request body does not match its signed x-amz-content-sha256",
                ));
            }
            body
        }
        None if api == Api::Peer => {
            return Err(Refusal::new(
                api,
                ErrorCode::IncompleteSignatureException,
                "Requests between servers must sign x-amz-content-sha256",
            ));
        }
        None => {
            let body = read_body(api, body).await?;
            let request = sigv4::Request {
                method,
                path_and_query,
                headers: &headers,
                payload: Payload::Bytes(&body),
            };
            sigv4::verify(&auth, &request, api.signing_name(), &key, now)
                .map_err(|e| Refusal::signature(api, e))?;
            body
        }
    };
    Ok((principal, body))
}

/// The principal behind an access key id, and what its signatures are verified with.
fn lookup(
    app: &App,
    api: Api,
    access_key_id: &str,
) -> Result<(Principal, Arc<VerifyingKey>), Refusal> {
    let unknown = || {
        Refusal::new(
            api,
            ErrorCode::UnrecognizedClientException,
            "The security token included in the request is invalid.",
        )
    };
    if access_key_id.starts_with(PEER_KEY_PREFIX) {
        if api != Api::Peer {
            return Err(unknown());
        }
        return Ok((Principal::Peer, app.keyring.peer_key.clone()));
    }
    if api == Api::Peer {
        return Err(Refusal::new(
            api,
            ErrorCode::AccessDeniedException,
            "Only the servers of this cluster may call this endpoint",
        ));
    }
    let state = app.node.state();
    let credential = state.credential(access_key_id).ok_or_else(unknown)?;
    if !credential.valid_at(Millis::now()) {
        return Err(Refusal::new(
            api,
            ErrorCode::UnrecognizedClientException,
            "The security token included in the request is expired.",
        ));
    }
    let key = app
        .keyring
        .verifying_key(credential)
        .map_err(|error| Refusal { api, error })?;
    Ok((Principal::Credential(credential.clone()), key))
}

/// `Authorization: Basic base64(access key id ":" secret)`, as Mesos frameworks send it.
fn basic_principal(app: &App, encoded: &str) -> Result<Principal, Refusal> {
    use base64::Engine;
    let api = Api::Mesos;
    let refused = || {
        Refusal::new(
            api,
            ErrorCode::UnrecognizedClientException,
            "The principal or secret is not valid",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| refused())?;
    let text = String::from_utf8(decoded).map_err(|_| refused())?;
    let (id, secret) = text.split_once(':').ok_or_else(refused)?;
    let (principal, expected) = lookup(app, api, id)?;
    if bool::from(
        expected
            .secret()
            .expose()
            .as_bytes()
            .ct_eq(secret.as_bytes()),
    ) {
        Ok(principal)
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_their_api() {
        assert_eq!(Api::of("/v1/health", None), Api::Open);
        assert_eq!(Api::of("/", None), Api::Ecs);
        assert_eq!(
            Api::of("/", Some("AmazonEC2ContainerServiceV20141113.ListClusters")),
            Api::Ecs
        );
        assert_eq!(
            Api::of("/", Some("Route53AutoNaming_v20170314.ListNamespaces")),
            Api::CloudMap
        );
        assert_eq!(Api::of("/api/v1/scheduler", None), Api::Mesos);
        assert_eq!(Api::of("/schedules", None), Api::Scheduler);
        assert_eq!(Api::of("/schedules/nightly", None), Api::Scheduler);
        assert_eq!(Api::of("/schedulesx", None), Api::Native);
        assert_eq!(Api::of("/version", None), Api::Open);
        assert_eq!(Api::of("/v1/raft/vote", None), Api::Peer);
        assert_eq!(Api::of("/v1/raft/write", None), Api::Peer);
        assert_eq!(Api::of("/v1/agent/heartbeats", None), Api::Peer);
        assert_eq!(Api::of("/v1/agent/poll", None), Api::Native);
        assert_eq!(
            Api::of("/v1/health/", None),
            Api::Native,
            "only the exact path is open"
        );
        assert_eq!(Api::of("/metrics", None), Api::Native);
        assert_eq!(Api::of("/ui", None), Api::Ui);
        assert_eq!(Api::of("/ui/login", None), Api::Ui);
        assert_eq!(Api::of("/uix", None), Api::Native);
    }
}
