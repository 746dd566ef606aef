//! How a server, an agent or `berth dev` is watched from outside: the format of its log lines,
//! and the optional `/metrics` listener Prometheus scrapes without credentials.
//!
//! The listener is off unless asked for, and answers `GET /metrics` only. It serves plain HTTP
//! with no authentication (as exporters do: Prometheus scrape configs rarely sign requests), so
//! an address other hosts can reach is refused unless `--metrics-public` says that is meant:
//! metrics name clusters and show their load, which is not for everyone on the network. On the
//! API port, `/metrics` is always there and always signed (`berth:GetMetrics`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use prometheus_client::registry::Registry;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one readable line per event, coloured on a terminal.
    Text,
    /// For log collectors: one JSON object per line (timestamp, level, target, message and
    /// the event's fields).
    Json,
}

#[derive(Args)]
pub struct Observability {
    /// How log lines on stderr are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "BERTH_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Also serve `GET /metrics` on this address, without authentication, for Prometheus
    /// (e.g. 127.0.0.1:9642). Off by default; the API port's /metrics needs a signed request.
    #[arg(long, value_name = "ADDR", env = "BERTH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Allow --metrics-listen on an address other hosts can reach: anyone there can read the
    /// metrics (cluster names, task counts, request rates) without credentials.
    #[arg(long, requires = "metrics_listen")]
    pub metrics_public: bool,
}

/// Starts logging to stderr in `format`, filtered by `RUST_LOG` (default `info`, openraft's
/// own chatter at `warn`). openraft's line per failed call to a peer is dropped whatever the
/// filter: berth's transport says when a peer stops and starts answering
/// (`berth_raft::QuietRetries`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,openraft=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour for a person at a terminal; plain text for the files service managers and
        // redirections write.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish()
            .with(berth_raft::QuietRetries)
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(berth_raft::QuietRetries)
            .init(),
    }
}

impl Observability {
    /// Binds `--metrics-listen`, if given, and serves `registry` there until `shutdown`.
    /// Refuses an address other hosts can reach without `--metrics-public`.
    pub async fn serve_metrics(
        &self,
        registry: Arc<Registry>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Some(addr) = self.metrics_listen else {
            return Ok(());
        };
        check_exposure(addr, self.metrics_public)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (--metrics-listen)"))?;
        tracing::info!(
            address = %listener.local_addr()?,
            "serving unauthenticated GET /metrics"
        );
        let router = berth_server::metrics::exporter(registry);
        tokio::spawn(berth_server::serve::serve(listener, router, None, shutdown));
        Ok(())
    }
}

/// Refuses an unauthenticated metrics address other hosts can reach unless asked for by name.
fn check_exposure(addr: SocketAddr, public: bool) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !public {
        anyhow::bail!(
            "--metrics-listen {addr} is reachable from other hosts, and it answers without \
             credentials: use a loopback address (127.0.0.1:PORT), or add --metrics-public to \
             let anyone who reaches it read the metrics"
        );
    }
    tracing::warn!(
        "PUBLIC: serving metrics without authentication on {addr}; anyone who reaches it can \
         read cluster names, task counts and request rates"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_metrics_are_served_without_asking() {
        let ok = |a: &str, public| check_exposure(a.parse().unwrap(), public).is_ok();
        assert!(ok("127.0.0.1:9642", false));
        assert!(ok("[::1]:9642", false));
        assert!(!ok("0.0.0.0:9642", false));
        assert!(!ok("10.0.0.5:9642", false));
        assert!(ok("0.0.0.0:9642", true));
    }
}
