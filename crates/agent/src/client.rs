//! The agent's client of the server: ECS operations over AWS JSON 1.1, and the native join,
//! long-poll and health report, all signed (berth-client) with the agent's own credential.
//!
//! Agents speak ECS where ECS has an operation, so an agent's traffic is what an ECS agent's
//! would be. Errors keep the ECS exception name, because the agent decides what to retry by
//! it: transport failures and server errors are retried, client errors are not.

use std::time::Duration;

use berth_api::agent::{
    HEALTH_PATH, HealthReport, JOIN_PATH, JoinRequest, JoinResponse, POLL_PATH, PollResponse,
};
use berth_api::protocol::{CONTENT_TYPE, TARGET_PREFIX};
use berth_client::{Credentials, Transport};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// Worth trying again: the server was unreachable, overloaded or had no leader.
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

/// A client of one server endpoint, signing as one principal (the agent's own credential,
/// or a join token while joining).
#[derive(Clone)]
pub struct Client {
    ecs: berth_client::Client,
    native: berth_client::Client,
}

impl Client {
    pub fn new(transport: Transport, base: &str, credentials: &Credentials) -> Client {
        let ecs = berth_client::Client::new(transport, base, credentials, "us-east-1", "ecs");
        Client {
            native: ecs.for_service("berth"),
            ecs,
        }
    }

    /// The same principal, at another endpoint of the same cluster.
    pub fn at(&self, transport: Transport, base: &str) -> Client {
        let credentials = Credentials {
            access_key_id: self.ecs.access_key_id().to_owned(),
            secret: self.ecs.secret().clone(),
        };
        Client::new(transport, base, &credentials)
    }

    pub fn base(&self) -> &str {
        self.ecs.base()
    }

    async fn send(
        &self,
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
                &self.ecs,
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
                &self.native,
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
        let body = self
            .send(
                &self.native,
                "GET",
                &path,
                &[],
                Bytes::new(),
                wait + Duration::from_secs(15),
            )
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable poll response: {e}")))
    }

    pub async fn report_health(&self, report: &HealthReport) -> Result<(), ClientError> {
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Transport(e.to_string()))?;
        self.send(
            &self.native,
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
    use super::encode;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("arn:aws:ecs:us-east-1:0:container-instance/c/ab"),
            "arn%3Aaws%3Aecs%3Aus-east-1%3A0%3Acontainer-instance%2Fc%2Fab"
        );
        assert_eq!(encode("plain-name_1.x~"), "plain-name_1.x~");
    }
}
