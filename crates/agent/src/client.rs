//! The agent's client of the server: ECS operations over AWS JSON 1.1, and the native join,
//! long-poll and health report, all signed (berth-client) with the agent's own credential.
//!
//! Agents speak ECS where ECS has an operation, so an agent's traffic is what an ECS agent's
//! would be. Errors keep the ECS exception name, because the agent decides what to retry by
//! it: transport failures and server errors are retried, client errors are not.
//!
//! A client knows every server the agent was given and fails over between them
//! ([`crate::endpoints`]): a call that fails transiently on one server goes to the next at
//! once, and only when every server has failed it once does the error reach the caller, whose
//! own backoff then applies. So losing one server costs one failed attempt, not a backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::agent::{
    DISCOVER_PATH, DiscoveryFeed, HEALTH_PATH, HealthReport, JOIN_PATH, JoinRequest, JoinResponse,
    POLL_PATH, PollResponse,
};
use berth_api::protocol::{CONTENT_TYPE, TARGET_PREFIX};
use berth_client::{Credentials, Transport};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::endpoints::{Endpoints, Failover};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error: its ECS exception name (or HTTP status) and message.
    #[error("{kind}: {message}")]
    Rejected {
        status: u16,
        kind: String,
        message: String,
    },
    /// The server could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
}

impl ClientError {
    /// Worth trying again, here or on another server: the server was unreachable, overloaded
    /// or had no leader.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Rejected { status, .. } => *status >= 500 || *status == 429,
        }
    }

    /// The server does not recognise the credential the request was signed with.
    pub fn is_unrecognized(&self) -> bool {
        matches!(self, ClientError::Rejected { kind, .. } if kind == "UnrecognizedClientException")
    }
}

impl From<berth_client::ClientError> for ClientError {
    fn from(e: berth_client::ClientError) -> Self {
        ClientError::Transport(e.to_string())
    }
}

/// One server, as the agent signs for it: for ECS (`ecs`) and for the native API (`berth`).
#[derive(Clone)]
struct Server {
    ecs: berth_client::Client,
    native: berth_client::Client,
}

/// Which API a request is for (they differ in signing name).
#[derive(Debug, Clone, Copy)]
enum Api {
    Ecs,
    Native,
}

/// A client of the cluster's servers, signing as one principal (the agent's own credential,
/// or a join token while joining). Its clones share which server is current.
#[derive(Clone)]
pub struct Client {
    servers: Arc<[Server]>,
    endpoints: Arc<Mutex<Endpoints>>,
}

impl Client {
    /// A client of `endpoints`, every one reached through `transport`: the servers of one
    /// cluster share its CA, so a CA pinned by a join token holds for all of them.
    pub fn new(transport: Transport, endpoints: Endpoints, credentials: &Credentials) -> Client {
        let servers = endpoints
            .urls()
            .iter()
            .map(|base| {
                let ecs = berth_client::Client::new(
                    transport.clone(),
                    base,
                    credentials,
                    "us-east-1",
                    "ecs",
                );
                Server {
                    native: ecs.for_service("berth"),
                    ecs,
                }
            })
            .collect();
        Client {
            servers,
            endpoints: Arc::new(Mutex::new(endpoints)),
        }
    }

    /// The same principal, at other endpoints of the same cluster.
    pub fn at(&self, transport: Transport, endpoints: Endpoints) -> Client {
        let ecs = &self.servers[0].ecs;
        let credentials = Credentials {
            access_key_id: ecs.access_key_id().to_owned(),
            secret: ecs.secret().clone(),
        };
        Client::new(transport, endpoints, &credentials)
    }

    /// The server calls go to now.
    pub fn base(&self) -> String {
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        endpoints.url(endpoints.current()).to_owned()
    }

    /// Whether this client already calls exactly `endpoints` (the same servers, in order).
    pub fn calls(&self, endpoints: &Endpoints) -> bool {
        self.endpoints.lock().expect("endpoints lock").urls() == endpoints.urls()
    }

    /// How many servers this client fails over between.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Sends a request to the current server and, when it fails transiently, to the next,
    /// until one answers or every server has failed once; then the last failure is returned,
    /// and the caller backs off before it tries again.
    ///
    /// Retrying on another server after a timeout may apply a write twice: the first server
    /// may have committed it before the agent gave up on it. What the agent sends is safe to
    /// repeat. SubmitTaskStateChange, SubmitContainerStateChange and health reports each
    /// become one `TaskStateChange`, whose statuses only move forward and whose other fields
    /// are set to the values sent: the same report applied again leaves the task as it was
    /// (the apply returns the old task, with no new version). A supervisor sends its reports
    /// one at a time, so a repeat never overtakes a newer report of the same task. A repeated
    /// RegisterContainerInstance names the agent's own instance, which it registers again with
    /// the same resources and attributes. A repeated join mints a second credential that is
    /// never used (the agent keeps the one it got), as a retry on the same server already
    /// could. The poll and DiscoverPollEndpoint write nothing but the instance's
    /// connectivity, which is idempotent.
    async fn send(
        &self,
        api: Api,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let mut at = self.endpoints.lock().expect("endpoints lock").current();
        let mut attempts = 0;
        loop {
            let server = &self.servers[at];
            let client = match api {
                Api::Ecs => &server.ecs,
                Api::Native => &server.native,
            };
            let error = match send_to(client, method, path, headers, body.clone(), timeout).await {
                Ok(answer) => return Ok(answer),
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => e,
            };
            attempts += 1;
            let next = {
                let mut endpoints = self.endpoints.lock().expect("endpoints lock");
                let next = endpoints.failed(at);
                if let Failover::Switched { from, to } = next {
                    tracing::warn!(
                        "server {} unreachable ({error}); trying {}",
                        endpoints.url(from),
                        endpoints.url(to)
                    );
                }
                next
            };
            match next {
                Failover::Switched { to, .. } | Failover::AlreadyMoved { to }
                    if attempts < self.servers.len() =>
                {
                    at = to;
                }
                _ => return Err(error),
            }
        }
    }

    /// Calls one ECS operation.
    pub async fn ecs<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|e| ClientError::Transport(e.to_string()))?;
        let target = format!("{TARGET_PREFIX}{operation}");
        let body = self
            .send(
                Api::Ecs,
                "POST",
                "/",
                &[("content-type", CONTENT_TYPE), ("x-amz-target", &target)],
                Bytes::from(body),
                Duration::from_secs(30),
            )
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable {operation} response: {e}")))
    }

    /// Exchanges the join token this client signs with for the instance's own credential.
    pub async fn join(&self, request: &JoinRequest) -> Result<JoinResponse, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|e| ClientError::Transport(e.to_string()))?;
        let body = self
            .send(
                Api::Native,
                "POST",
                JOIN_PATH,
                &[("content-type", "application/json")],
                Bytes::from(body),
                Duration::from_secs(30),
            )
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable join response: {e}")))
    }

    /// The tasks assigned to `instance`, once any changed past `since` (or after `wait`).
    pub async fn poll(
        &self,
        cluster: &str,
        instance: &str,
        since: u64,
        wait: Duration,
    ) -> Result<PollResponse, ClientError> {
        let path = format!(
            "{POLL_PATH}?cluster={}&instance={}&since={since}&wait={}",
            encode(cluster),
            encode(instance),
            wait.as_secs()
        );
        self.long_poll(&path, wait, "poll response").await
    }

    /// The discovery feed, once its revision differs from `revision` or after `wait`.
    pub async fn discover(
        &self,
        revision: u64,
        wait: Duration,
    ) -> Result<DiscoveryFeed, ClientError> {
        let path = format!(
            "{DISCOVER_PATH}?revision={revision}&wait={}",
            wait.as_secs()
        );
        self.long_poll(&path, wait, "discovery feed").await
    }

    /// A native long-poll GET that the server answers within `wait`, read as JSON (`what` it
    /// is names it in errors).
    async fn long_poll<T: DeserializeOwned>(
        &self,
        path: &str,
        wait: Duration,
        what: &str,
    ) -> Result<T, ClientError> {
        let body = self
            .send(
                Api::Native,
                "GET",
                path,
                &[],
                Bytes::new(),
                wait + Duration::from_secs(15),
            )
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable {what}: {e}")))
    }

    pub async fn report_health(&self, report: &HealthReport) -> Result<(), ClientError> {
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Transport(e.to_string()))?;
        self.send(
            Api::Native,
            "POST",
            HEALTH_PATH,
            &[("content-type", "application/json")],
            Bytes::from(body),
            Duration::from_secs(30),
        )
        .await
        .map(drop)
    }
}

/// One request to one server: the answer's body, or the error it was answered with.
async fn send_to(
    client: &berth_client::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, ClientError> {
    let answer = client.send(method, path, headers, body, timeout).await?;
    let status = answer.status;
    if status < 300 {
        return Ok(answer.body);
    }
    let parsed: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    Err(ClientError::Rejected {
        status,
        kind: parsed["__type"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_owned),
        message: parsed["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&answer.body).into_owned(),
            str::to_owned,
        ),
    })
}

/// Percent-encodes a query value (ARNs carry `:` and `/`).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use berth_auth::SecretKey;

    /// A server that answers every request with `status` and an ECS-shaped body.
    async fn answering(status: StatusCode) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || async move {
            let body = if status.is_success() {
                r#"{"acknowledgment":"ACK"}"#.to_owned()
            } else {
                format!(
                    r#"{{"__type":"Status{}","message":"as asked"}}"#,
                    status.as_u16()
                )
            };
            (status, body)
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// An address nothing listens on.
    fn unreachable() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    fn client(urls: &[String]) -> Client {
        let transport = Transport::new(&berth_client::Trust::PlainHttp).unwrap();
        let credentials = Credentials {
            access_key_id: "BKIATEST".into(),
            secret: SecretKey::new("secret"),
        };
        Client::new(transport, Endpoints::new(urls).unwrap(), &credentials)
    }

    #[tokio::test]
    async fn a_client_calls_exactly_its_own_servers() {
        let (a, b) = (
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
        );
        let c = client(std::slice::from_ref(&a));
        // What DiscoverPollEndpoint answers, with its trailing slash, is the same server.
        assert!(c.calls(&Endpoints::new(&[format!("{a}/")]).unwrap()));
        assert!(!c.calls(&Endpoints::new(std::slice::from_ref(&b)).unwrap()));
        assert!(!c.calls(&Endpoints::new(&[a.clone(), b.clone()]).unwrap()));
        assert!(client(&[a.clone(), b.clone()]).calls(&Endpoints::new(&[a, b]).unwrap()));
    }

    async fn call(c: &Client) -> Result<serde_json::Value, ClientError> {
        c.ecs("SubmitTaskStateChange", &serde_json::json!({})).await
    }

    #[tokio::test]
    async fn a_call_moves_on_from_a_lost_server_at_once_and_stays_on_the_next() {
        let (dead, live) = (unreachable(), answering(StatusCode::OK).await);
        let c = client(&[dead, live.clone(), answering(StatusCode::OK).await]);
        let started = std::time::Instant::now();
        assert_eq!(call(&c).await.unwrap()["acknowledgment"], "ACK");
        assert!(started.elapsed() < Duration::from_secs(2), "no backoff");
        assert_eq!(c.base(), live);
        // Clones share the current server; later calls go straight there.
        assert_eq!(c.clone().base(), live);
        call(&c).await.unwrap();
        assert_eq!(c.base(), live);
    }

    #[tokio::test]
    async fn a_server_error_moves_on_and_a_client_error_does_not() {
        let busy = answering(StatusCode::SERVICE_UNAVAILABLE).await;
        let live = answering(StatusCode::OK).await;
        let c = client(&[busy, live.clone()]);
        call(&c).await.unwrap();
        assert_eq!(c.base(), live);

        let refusing = answering(StatusCode::BAD_REQUEST).await;
        let c = client(&[refusing.clone(), live]);
        let err = call(&c).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Rejected { status: 400, .. }),
            "{err:?}"
        );
        assert_eq!(c.base(), refusing, "a refusal is not a reason to move on");
    }

    #[tokio::test]
    async fn when_every_server_fails_once_the_caller_gets_the_error() {
        let c = client(&[unreachable(), unreachable(), unreachable()]);
        let err = call(&c).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        // One round: back at the first server, where the caller's next attempt goes.
        let first = c.endpoints.lock().unwrap().url(0).to_owned();
        assert_eq!(c.base(), first);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("arn:aws:ecs:us-east-1:0:container-instance/c/ab"),
            "arn%3Aaws%3Aecs%3Aus-east-1%3A0%3Acontainer-instance%2Fc%2Fab"
        );
        assert_eq!(encode("plain-name_1.x~"), "plain-name_1.x~");
    }
}
