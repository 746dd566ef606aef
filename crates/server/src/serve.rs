//! Serving the router on a listener: plain HTTP or TLS, with limits that hold against slow,
//! stalled or numerous clients, and graceful shutdown.
//!
//! ```text
//!  accept ──► (TLS handshake, ≤ 10 s) ──► HTTP/1.1 keep-alive connection, or HTTP/2 (its
//!     │            preface, with or without TLS)
//!     │            idle between requests: up to IDLE_TIMEOUT (clients keep pools, and Mesos
//!     │            frameworks keep one connection for all their calls)
//!     │            an HTTP/1.1 request head: within 10 s of its first byte (slow headers are
//!     │            cut off)
//!     │            a request body: read by the authentication layer within its own deadline
//!     │            HTTP/2: at most MAX_STREAMS requests in flight per connection
//!     └─ at most MAX_CONNECTIONS at once: beyond that, new connections wait in the backlog
//! ```
//! HTTP/2 is what lets one process stand in for thousands of agents (`berth-fleet`, issue 18):
//! every agent keeps a long-poll waiting, and over HTTP/1.1 each would hold a connection (a
//! file descriptor on both sides, an ephemeral port) of its own; over HTTP/2 they are streams
//! of a few connections. Real agents, the CLI and the SDKs speak either.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
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
/// Requests in flight at once on one HTTP/2 connection (hyper's default is 200): a client
/// multiplexing many agents' long-polls over one connection needs one stream per agent.
pub const MAX_STREAMS: u32 = 2_048;
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
    let mut http = auto::Builder::new(TokioExecutor::new());
    // No hyper timer: Guarded keeps both deadlines, with one timer per connection.
    http.http1().keep_alive(true);
    http.http2().max_concurrent_streams(MAX_STREAMS);
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
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = Requests {
            router: router.clone(),
            in_flight: in_flight.clone(),
        };
        let http = http.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let served = match tls {
                None => {
                    let io = Guarded::new(stream, in_flight);
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
                    let io = Guarded::new(stream, in_flight);
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

/// The router as hyper calls it, counting for the connection's [`Guarded`] the requests that
/// have arrived (their heads are complete) and have no response ready yet: the connection is
/// between requests when none is in flight. HTTP/1.1 has at most one; HTTP/2 any number.
#[derive(Clone)]
struct Requests {
    router: Router,
    in_flight: Arc<AtomicUsize>,
}

/// One request in flight, until its response is ready or it is abandoned (an HTTP/2 client
/// may reset a stream, and hyper then drops the request's future unfinished).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for Requests {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(self.in_flight.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request.map(Body::new)).await;
            drop(in_flight);
            response
        })
    }
}

/// A connection's IO with its two deadlines: a client that starts an HTTP/1.1 request head
/// must finish it within [`HEADER_READ_TIMEOUT`] of its first byte, and a connection idle
/// between requests for [`IDLE_TIMEOUT`] is closed. Whether a request is in progress comes
/// from [`Requests`] (hyper has the whole head once it calls the service).
///
/// An HTTP/2 connection has only the idle deadline: its client sends frames between requests
/// (settings acknowledgements, window updates, pings) that are not the start of a request
/// head, and the HTTP/2 codec bounds a request's headers itself. The connection tells which
/// it is by its first bytes: only HTTP/2's preface starts `PR` (`PRI * HTTP/2.0`).
///
/// One timer serves the connection's whole life and is re-armed lazily: it may fire early
/// (then the real deadline is computed again), never late. A busy connection therefore
/// costs a clock read per request, not a timer registration.
struct Guarded<IO> {
    io: IO,
    in_flight: Arc<AtomicUsize>,
    /// The connection's first two bytes, as far as they have arrived (`opened` of them).
    opening: [u8; 2],
    opened: usize,
    /// Whether the last read found the connection between requests.
    was_between: bool,
    /// When the connection last became idle (opened, or a response was ready).
    idle_since: Instant,
    /// When the first byte of the request head being read arrived.
    head_started: Option<Instant>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<IO> Guarded<IO> {
    fn new(io: IO, in_flight: Arc<AtomicUsize>) -> Self {
        let now = Instant::now();
        Guarded {
            io,
            in_flight,
            opening: [0; 2],
            opened: 0,
            was_between: true,
            idle_since: now,
            head_started: None,
            timer: Box::pin(tokio::time::sleep_until(now + IDLE_TIMEOUT)),
        }
    }

    /// Whether the client opened with HTTP/2's preface.
    fn http2(&self) -> bool {
        self.opened == 2 && self.opening == *b"PR"
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
        let between = self.in_flight.load(Ordering::Acquire) == 0;
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
                let read = buf.filled().len() - before;
                for &b in buf.filled()[before..].iter().take(2 - self.opened) {
                    let at = self.opened;
                    self.opening[at] = b;
                    self.opened = at + 1;
                }
                if between && read > 0 && self.head_started.is_none() && !self.http2() {
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

    fn connection() -> (DuplexStream, Guarded<DuplexStream>, Arc<AtomicUsize>) {
        let (client, server) = tokio::io::duplex(64);
        let in_flight = Arc::new(AtomicUsize::new(0));
        (client, Guarded::new(server, in_flight.clone()), in_flight)
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
        let (mut client, mut conn, in_flight) = connection();
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(read_for(&mut conn, SECOND).await.expect("read").is_ok());
        // The head is complete: the request is served, for as long as it takes.
        in_flight.store(1, Ordering::Release);
        let r = read_for(&mut conn, 2 * IDLE_TIMEOUT).await;
        assert!(r.is_none(), "{r:?}");
        // The response is ready: a full idle timeout starts now, not at the head.
        in_flight.store(0, Ordering::Release);
        assert!(read_for(&mut conn, IDLE_TIMEOUT - SECOND).await.is_none());
        let closed = read_for(&mut conn, 2 * SECOND).await.expect("closed");
        assert_eq!(closed.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_are_not_a_slow_head() {
        let (mut client, mut conn, _) = connection();
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .expect("write");
        assert!(read_for(&mut conn, SECOND).await.expect("read").is_ok());
        // A window update, say: no request follows for longer than a head may take.
        client.write_all(b"\0\0\x04\x08").await.expect("write");
        assert!(read_for(&mut conn, SECOND).await.expect("read").is_ok());
        let r = read_for(&mut conn, 3 * HEADER_READ_TIMEOUT).await;
        assert!(r.is_none(), "{r:?}");
        // The idle deadline still holds.
        let closed = read_for(&mut conn, IDLE_TIMEOUT).await.expect("closed");
        assert_eq!(closed.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_head_starting_with_p_keeps_its_deadline() {
        let (mut client, mut conn, _) = connection();
        client.write_all(b"P").await.expect("write");
        assert!(read_for(&mut conn, SECOND).await.expect("read").is_ok());
        client.write_all(b"OST / HT").await.expect("write");
        assert!(read_for(&mut conn, SECOND).await.expect("read").is_ok());
        let cut = read_for(&mut conn, HEADER_READ_TIMEOUT)
            .await
            .expect("cut off");
        assert_eq!(cut.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
