//! Serving the router on a listener: plain HTTP or TLS, with limits that hold against slow,
//! stalled or numerous clients, and graceful shutdown.
//!
//! ```text
//!  accept ──► (TLS handshake, ≤ 10 s) ──► HTTP/1.1 keep-alive connection
//!     │            idle between requests: up to IDLE_TIMEOUT (clients keep pools, and Mesos
//!     │            frameworks keep one connection for all their calls)
//!     │            a request head: within 10 s of its first byte (slow headers are cut off)
//!     │            a request body: read by the authentication layer within its own deadline
//!     └─ at most MAX_CONNECTIONS at once: beyond that, new connections wait in the backlog
//! ```
//! axum's own `serve` has no timer, so a client that sends its headers one byte a minute held
//! a connection (and a file descriptor) forever. hyper's header timeout alone would also cut
//! off every keep-alive connection idle for as long, which clients such as pymesos do not
//! expect of a server, and it arms a timer for every request; so [`Guarded`] keeps both
//! deadlines itself: the head deadline starts at a request's first byte, and one lazily
//! re-armed timer per connection serves both.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client has to send a request's headers once it has started them.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a keep-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a client has to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (the process may hold 20,000 files; leave room for the rest).
pub const MAX_CONNECTIONS: usize = 10_000;
/// How long a graceful shutdown waits for responses in flight (streams included).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets responses in flight
/// finish (up to a grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    // No hyper timer: Guarded keeps both deadlines, with one timer per connection.
    http.keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or the peer gave up before accept: back off a
                // moment rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let between_requests = Arc::new(AtomicBool::new(true));
        let service = Requests {
            router: router.clone(),
            between_requests: between_requests.clone(),
        };
        let http = http.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let served = match tls {
                None => {
                    let io = Guarded::new(stream, between_requests);
                    let conn = http.serve_connection(TokioIo::new(io), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let io = Guarded::new(stream, between_requests);
                    let conn = http.serve_connection(TokioIo::new(io), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

/// The router as hyper calls it, telling the connection's [`Guarded`] when a request has
/// arrived (its head is complete) and when its response is ready (waiting for the next).
#[derive(Clone)]
struct Requests {
    router: Router,
    between_requests: Arc<AtomicBool>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Requests {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.between_requests.store(false, Ordering::Release);
        let router = self.router.clone();
        let between_requests = self.between_requests.clone();
        Box::pin(async move {
            let response = router.oneshot(request.map(Body::new)).await;
            between_requests.store(true, Ordering::Release);
            response
        })
    }
}

/// A connection's IO with its two deadlines: a client that starts a request head must finish
/// it within [`HEADER_READ_TIMEOUT`] of its first byte, and a connection idle between
/// requests for [`IDLE_TIMEOUT`] is closed. Whether a request is in progress comes from
/// [`Requests`] (hyper has the whole head once it calls the service).
///
/// One timer serves the connection's whole life and is re-armed lazily: it may fire early
/// (then the real deadline is computed again), never late. A busy connection therefore
/// costs a clock read per request, not a timer registration.
struct Guarded<IO> {
    io: IO,
    between_requests: Arc<AtomicBool>,
    /// Whether the last read found the connection between requests.
    was_between: bool,
    /// When the connection last became idle (opened, or a response was ready).
    idle_since: Instant,
    /// When the first byte of the request head being read arrived.
    head_started: Option<Instant>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<IO> Guarded<IO> {
    fn new(io: IO, between_requests: Arc<AtomicBool>) -> Self {
        let now = Instant::now();
        Guarded {
            io,
            between_requests,
            was_between: true,
            idle_since: now,
            head_started: None,
            timer: Box::pin(tokio::time::sleep_until(now + IDLE_TIMEOUT)),
        }
    }

    /// Whether the deadline of what the connection waits for has passed; otherwise the timer
    /// is armed to wake the connection no later than that deadline.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        let (deadline, why) = match self.head_started {
            Some(started) => (
                started + HEADER_READ_TIMEOUT,
                "the request head did not arrive in time",
            ),
            None => (
                self.idle_since + IDLE_TIMEOUT,
                "the connection was idle too long",
            ),
        };
        loop {
            if deadline <= Instant::now() {
                return Some(why);
            }
            if self.timer.deadline() > deadline || self.timer.is_elapsed() {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            // It fired for an earlier deadline that no longer holds: re-arm it.
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let between = self.between_requests.load(Ordering::Acquire);
        if between != self.was_between {
            // A request arrived, or its response is ready: either way no head is being read.
            self.head_started = None;
            if between {
                self.idle_since = Instant::now();
            }
        }
        self.was_between = between;
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if between && buf.filled().len() > before && self.head_started.is_none() {
                    self.head_started = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if between => match self.expired(cx) {
                Some(why) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
                None => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn connection() -> (DuplexStream, Guarded<DuplexStream>, Arc<AtomicBool>) {
        let (client, server) = tokio::io::duplex(64);
        let between = Arc::new(AtomicBool::new(true));
        (client, Guarded::new(server, between.clone()), between)
    }

    /// Reads for `wait` (paused time): `None` if nothing happened by then.
    async fn read_for(
        conn: &mut Guarded<DuplexStream>,
        wait: Duration,
    ) -> Option<io::Result<usize>> {
        let mut buf = [0u8; 64];
        tokio::time::timeout(wait, conn.read(&mut buf)).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let (_client, mut conn, _) = connection();
        assert!(read_for(&mut conn, IDLE_TIMEOUT - SECOND).await.is_none());
        let closed = read_for(&mut conn, 2 * SECOND).await.expect("closed");
        assert_eq!(closed.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_head_must_finish_in_time() {
        let (mut client, mut conn, _) = connection();
        // Idle for most of the idle timeout: the head deadline starts at its first byte.
        assert!(
            read_for(&mut conn, IDLE_TIMEOUT - 2 * SECOND)
                .await
                .is_none()
        );
        client.write_all(b"GET / HT").await.expect("write");
        assert_eq!(
            read_for(&mut conn, SECOND)
                .await
                .expect("read")
                .expect("bytes"),
            8
        );
        assert!(
            read_for(&mut conn, HEADER_READ_TIMEOUT - 2 * SECOND)
                .await
                .is_none()
        );
        let cut = read_for(&mut conn, 2 * SECOND).await.expect("cut off");
        assert_eq!(cut.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_have_no_deadline_and_restart_the_idle_clock() {
        let (mut client, mut conn, between) = connection();
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(read_for(&mut conn, SECOND).await.expect("read").is_ok());
        // The head is complete: the request is served, for as long as it takes.
        between.store(false, Ordering::Release);
        let r = read_for(&mut conn, 2 * IDLE_TIMEOUT).await;
        assert!(r.is_none(), "{r:?}");
        // The response is ready: a full idle timeout starts now, not at the head.
        between.store(true, Ordering::Release);
        assert!(read_for(&mut conn, IDLE_TIMEOUT - SECOND).await.is_none());
        let closed = read_for(&mut conn, 2 * SECOND).await.expect("closed");
        assert_eq!(closed.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
