//! The agent's log endpoint on the wire: TLS with a certificate made at every start.
//!
//! Container output holds whatever a task prints, secrets included, so it never crosses the
//! network in the clear. The agent has no CA of its own to ask (a cluster may use the
//! operator's certificates, and agents never hold the cluster secret), so it makes a fresh
//! self-signed certificate each time it starts and registers the certificate's SHA-256 with its
//! container instance over its own authenticated channel; servers accept that certificate and
//! no other (`berth_client::Trust::Certificate`), as an SSH client pins a host key. Past TLS,
//! only requests signed with the agent's own credential get an answer (see `crate::agent`).
//!
//! The only clients are the cluster's servers, so the limits are small: a bounded number of
//! connections, and deadlines for the handshake and for each request's headers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::AgentError;

/// How long a client has for the TLS handshake, and then for a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once: servers follow a few logs each, nobody else gets past TLS.
const MAX_CONNECTIONS: usize = 256;

/// The log endpoint's TLS identity.
pub struct LogTls {
    config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate (DER): what the agent registers and servers pin.
    pub certificate_sha256: [u8; 32],
}

impl LogTls {
    /// A fresh key and a self-signed certificate naming `host` (an IP address or a DNS name;
    /// informational only, since servers pin the hash).
    pub fn generate(host: &str) -> Result<LogTls, AgentError> {
        let setup = |e: &dyn std::fmt::Display| {
            AgentError::Setup(format!("making the log endpoint's certificate: {e}"))
        };
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(|e| setup(&e))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "berth agent");
        params.distinguished_name = name;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let key = KeyPair::generate().map_err(|e| setup(&e))?;
        let cert = params.self_signed(&key).map_err(|e| setup(&e))?;
        let der: CertificateDer<'static> = cert.der().clone();
        let certificate_sha256 = berth_client::sha256(der.as_ref());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![der], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .map_err(|e| setup(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(LogTls {
            config: Arc::new(config),
            certificate_sha256,
        })
    }

    /// Serves `router` over TLS on `listener` until the task is aborted.
    pub async fn serve(self, listener: TcpListener, router: Router) {
        let acceptor = TlsAcceptor::from(self.config);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "the log endpoint could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                else {
                    return;
                };
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "a log endpoint connection ended");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_makes_a_new_certificate() {
        let a = LogTls::generate("127.0.0.1").expect("a");
        let b = LogTls::generate("127.0.0.1").expect("b");
        assert_ne!(a.certificate_sha256, b.certificate_sha256);
    }
}
