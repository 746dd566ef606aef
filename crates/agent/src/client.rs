//! The agent's client of the server: ECS operations over AWS JSON 1.1, and the native
//! long-poll and health report.
//!
//! Agents speak ECS where ECS has an operation, so an agent's traffic is what an ECS agent's
//! would be. Errors keep the ECS exception name, because the agent decides what to retry by
//! it: transport failures and server errors are retried, client errors are not.

use std::time::Duration;

use berth_api::agent::{HEALTH_PATH, HealthReport, POLL_PATH, PollResponse};
use berth_api::protocol::{CONTENT_TYPE, TARGET_PREFIX};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
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
}

/// A client of one server endpoint (`http://host:port`).
#[derive(Clone)]
pub struct Client {
    base: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: HttpClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let response = tokio::time::timeout(timeout, async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ClientError::Transport(format!("{}: {e}", self.base)))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        })
        .await
        .map_err(|_| ClientError::Transport(format!("{}: no answer in {timeout:?}", self.base)))?;
        let (status, body) = response?;
        if status < 300 {
            return Ok(body);
        }
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Err(ClientError::Rejected {
            status,
            kind: parsed["__type"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            message: parsed["message"].as_str().map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
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
        let request = hyper::Request::post(format!("{}/", self.base))
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", format!("{TARGET_PREFIX}{operation}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let body = self.send(request, Duration::from_secs(30)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable {operation} response: {e}")))
    }

    /// The tasks assigned to `instance`, once any changed past `since` (or after `wait`).
    pub async fn poll(
        &self,
        cluster: &str,
        instance: &str,
        since: u64,
        wait: Duration,
    ) -> Result<PollResponse, ClientError> {
        let url = format!(
            "{}{POLL_PATH}?cluster={}&instance={}&since={since}&wait={}",
            self.base,
            encode(cluster),
            encode(instance),
            wait.as_secs()
        );
        let request = hyper::Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let body = self.send(request, wait + Duration::from_secs(15)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("unreadable poll response: {e}")))
    }

    pub async fn report_health(&self, report: &HealthReport) -> Result<(), ClientError> {
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Transport(e.to_string()))?;
        let request = hyper::Request::post(format!("{}{HEALTH_PATH}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        self.send(request, Duration::from_secs(30)).await.map(drop)
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
