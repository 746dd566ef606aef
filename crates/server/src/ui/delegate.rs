//! What the UI asks of the API's own handlers: placement dry-runs and container logs.
//!
//! The UI does not re-implement them: it calls the very handlers behind
//! `POST /v1/placement/dry-run` and `GET /v1/tasks/{task}/logs` in-process, with the signed-in
//! principal where the authentication layer would have put it, so the UI is refused and
//! answered exactly as `berth explain` and `berth logs` are for the same person.
//!
//! Logs are bounded: a container's log is read (without following) for at most
//! [`LOG_READ_LIMIT`] bytes and [`LOG_READ_TIME`], and only its last [`LOG_LINES`] lines (at most
//! [`LOG_TAIL_BYTES`]) are kept, so a page's refresh costs the server and the agent a bounded
//! amount however long the log has grown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, Response};
use futures::StreamExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::App;
use crate::auth::Principal;

/// Lines of a container's log a page shows.
pub const LOG_LINES: usize = 200;
/// Bytes of a log's end kept while reading it.
pub const LOG_TAIL_BYTES: usize = 64 * 1024;
/// Most bytes read from an agent for one refresh.
pub const LOG_READ_LIMIT: usize = 8 * 1024 * 1024;
/// Longest one read of a log may take.
pub const LOG_READ_TIME: Duration = Duration::from_secs(5);
/// Largest dry-run answer read.
const DRY_RUN_LIMIT: usize = 4 * 1024 * 1024;

/// The end of a container's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogTail {
    /// At most [`LOG_LINES`] lines.
    pub text: String,
    /// Earlier output was left out.
    pub clipped: bool,
    /// The read stopped at [`LOG_READ_LIMIT`] or [`LOG_READ_TIME`]: the last lines shown may not
    /// be the log's last.
    pub unfinished: bool,
}

/// Why the UI has no dry-run answer or log tail to show; the page shows the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DelegateError {
    /// The task named in the page's URL is not in the cluster.
    #[error("cluster {cluster} has no task {task}")]
    NoTask { cluster: String, task: String },
    /// The in-process request could not be built (an unusable URI).
    #[error(transparent)]
    Request(Arc<axum::http::Error>),
    /// The handler answered with an error: its HTTP status and the API error's `message` (or
    /// the body itself).
    #[error("{status}: {message}")]
    Refused { status: u16, message: String },
    /// The answer's body could not be read.
    #[error(transparent)]
    Body(Arc<axum::Error>),
    /// The dry-run's answer is not JSON.
    #[error(transparent)]
    Decode(Arc<serde_json::Error>),
}

impl From<axum::http::Error> for DelegateError {
    fn from(e: axum::http::Error) -> Self {
        Self::Request(Arc::new(e))
    }
}

impl From<axum::Error> for DelegateError {
    fn from(e: axum::Error) -> Self {
        Self::Body(Arc::new(e))
    }
}

impl From<serde_json::Error> for DelegateError {
    fn from(e: serde_json::Error) -> Self {
        Self::Decode(Arc::new(e))
    }
}

/// Sends `request` as `principal` to `router`'s handler, without a socket.
async fn call(
    app: &Arc<App>,
    router: axum::Router<Arc<App>>,
    principal: &Principal,
    mut request: Request<Body>,
) -> Response<Body> {
    request.extensions_mut().insert(principal.clone());
    match router.with_state(app.clone()).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The refusal of an API error answer: its status and the body's `message`, or the body itself.
fn refused(status: axum::http::StatusCode, body: &[u8]) -> DelegateError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    DelegateError::Refused {
        status: status.as_u16(),
        message,
    }
}

/// The placement dry-run's answer for a RunTask `request`, or why there is none.
pub async fn dry_run(
    app: &Arc<App>,
    principal: &Principal,
    request: &Value,
) -> Result<Value, DelegateError> {
    let http = Request::builder()
        .method(Method::POST)
        .uri("/v1/placement/dry-run")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(request.to_string()))?;
    let response = call(app, crate::ecs::router(), principal, http).await;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), DRY_RUN_LIMIT).await?;
    if !status.is_success() {
        return Err(refused(status, &body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// The end of `container`'s log in task `task` of `cluster`, or why it cannot be read.
pub async fn log_tail(
    app: &Arc<App>,
    principal: &Principal,
    cluster: &str,
    task: &str,
    container: &str,
) -> Result<LogTail, DelegateError> {
    let uri = format!(
        "/v1/tasks/{task}/logs?cluster={}&container={}&follow=false",
        berth_client::path_segment(cluster),
        berth_client::path_segment(container)
    );
    let http = Request::builder().uri(uri).body(Body::empty())?;
    let response = call(app, crate::agents::router(), principal, http).await;
    let status = response.status();
    let mut body = response.into_body().into_data_stream();
    if !status.is_success() {
        let mut bytes = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > LOG_TAIL_BYTES {
                break;
            }
        }
        return Err(refused(status, &bytes));
    }
    let mut tail = Tail::default();
    let finished = tokio::time::timeout(LOG_READ_TIME, async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            tail.push(&chunk);
            if tail.read >= LOG_READ_LIMIT {
                return Ok(false);
            }
        }
        Ok::<bool, DelegateError>(true)
    })
    .await;
    let unfinished = !matches!(finished, Ok(Ok(true)));
    if let Ok(Err(e)) = finished {
        return Err(e);
    }
    Ok(tail.finish(unfinished))
}

/// The last [`LOG_TAIL_BYTES`] of a stream.
#[derive(Default)]
struct Tail {
    kept: VecDeque<u8>,
    read: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.read += chunk.len();
        let chunk = &chunk[chunk.len().saturating_sub(LOG_TAIL_BYTES)..];
        let over = (self.kept.len() + chunk.len()).saturating_sub(LOG_TAIL_BYTES);
        self.kept.drain(..over);
        self.kept.extend(chunk);
    }

    /// The last [`LOG_LINES`] whole lines (a first line cut by the byte bound is dropped).
    fn finish(self, unfinished: bool) -> LogTail {
        let bytes: Vec<u8> = self.kept.into();
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        let mut clipped = self.read > bytes.len();
        if clipped && !lines.is_empty() {
            lines.remove(0);
        }
        if lines.len() > LOG_LINES {
            lines.drain(..lines.len() - LOG_LINES);
            clipped = true;
        }
        LogTail {
            text: lines.join("\n"),
            clipped,
            unfinished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_lines_of_a_long_log_are_kept() {
        let mut tail = Tail::default();
        for n in 0..100_000 {
            tail.push(format!("line {n}\n").as_bytes());
        }
        let t = tail.finish(false);
        assert!(t.clipped);
        let lines: Vec<&str> = t.text.lines().collect();
        assert_eq!(lines.len(), LOG_LINES);
        assert_eq!(lines.last(), Some(&"line 99999"));
        assert_eq!(lines[0], format!("line {}", 100_000 - LOG_LINES));
    }

    #[test]
    fn a_short_log_is_whole() {
        let mut tail = Tail::default();
        tail.push(b"one\ntwo\n");
        let t = tail.finish(false);
        assert_eq!(t.text, "one\ntwo");
        assert!(!t.clipped && !t.unfinished);
    }

    #[test]
    fn a_line_cut_by_the_byte_bound_is_dropped() {
        let mut tail = Tail::default();
        tail.push(&vec![b'x'; LOG_TAIL_BYTES]);
        tail.push(b"\nlast\n");
        let t = tail.finish(false);
        assert_eq!(t.text, "last");
        assert!(t.clipped);
    }
}
