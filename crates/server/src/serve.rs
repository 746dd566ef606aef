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
//! expect of a server; so the head deadline starts at a request's first byte ([`Guarded`]) and
//! hyper's own timer only bounds idleness.

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
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
    // Counted by hyper from the end of one response: with Guarded timing request heads, this
    // is the idle limit.
    http.timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .keep_alive(true);
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

/// A connection's IO that cuts off a client which starts a request head and does not finish
/// it within [`HEADER_READ_TIMEOUT`]: the deadline is armed by the first byte read between
/// requests and dropped once hyper has the whole head (the request reaches [`Requests`]).
struct Guarded<IO> {
    io: IO,
    between_requests: Arc<AtomicBool>,
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> Guarded<IO> {
    fn new(io: IO, between_requests: Arc<AtomicBool>) -> Self {
        Guarded {
            io,
            between_requests,
            head_deadline: None,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let waiting_for_head = self.between_requests.load(Ordering::Acquire);
        if !waiting_for_head {
            self.head_deadline = None;
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        match read {
            Poll::Ready(Ok(())) => {
                if waiting_for_head && buf.filled().len() > before && self.head_deadline.is_none() {
                    self.head_deadline = Some(Box::pin(tokio::time::sleep(HEADER_READ_TIMEOUT)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if waiting_for_head
                    && let Some(deadline) = self.head_deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )));
                }
                Poll::Pending
            }
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
