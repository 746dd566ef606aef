//! Which server certificates a client accepts.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::ClientError;

/// What a client trusts when it speaks TLS.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Plain HTTP only: an `https://` URL fails to connect.
    PlainHttp,
    /// These CA certificates (e.g. the cluster's `ca.pem`).
    Ca(Vec<CertificateDer<'static>>),
    /// The CA whose certificate (DER) has this SHA-256, learned from the server's own chain
    /// (a join token carries the hash).
    Pinned([u8; 32]),
    /// Exactly the (self-signed) certificate whose DER has this SHA-256, whatever name was
    /// dialled: an agent's log endpoint, whose hash the agent registered over its
    /// authenticated channel, as an SSH client pins a host key.
    Certificate([u8; 32]),
}

impl Trust {
    /// The CA certificates in a PEM file's text.
    pub fn from_pem(pem: &[u8]) -> Result<Trust, ClientError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Request(format!("the CA file is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::Request(
                "the CA file holds no certificate".into(),
            ));
        }
        Ok(Trust::Ca(certs))
    }
}

/// SHA-256 of a certificate's DER.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Request(e.to_string()))?;
    // hyper-rustls sets ALPN itself: http/1.1, or h2 and http/1.1 for a multiplexed pool.
    let config = match trust {
        Trust::PlainHttp => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        Trust::Ca(certs) => {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .map_err(|e| ClientError::Request(format!("a CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCa {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
                provider,
            }))
            .with_no_client_auth(),
        Trust::Certificate(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The handshake-signature checks both verifiers share: rustls's own, over `self.algorithms`.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

/// Accepts a chain only if one of its certificates is the pinned CA, and the server's own
/// certificate is valid under that CA for the name dialled: exactly the usual verification,
/// with the root taken from the chain once it matches the pin.
#[derive(Debug)]
struct PinnedCa {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's certificate authority does not match the CA hash this client \
                     was given (join token)"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let rest: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| sha256(c) != self.pin)
            .cloned()
            .collect();
        verifier.verify_server_cert(end_entity, &rest, server_name, ocsp_response, now)
    }

    handshake_signatures!();
}

/// Accepts only the certificate with the pinned hash. Its validity dates and names are not
/// checked: the pin was learned over an authenticated channel and is replaced whenever the
/// agent restarts, so the hash is the whole identity. The handshake still proves the peer holds
/// the certificate's key.
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if sha256(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the peer's certificate is not the one its agent registered".into(),
            ))
        }
    }

    handshake_signatures!();
}
