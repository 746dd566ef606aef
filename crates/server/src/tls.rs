//! TLS for berth's listeners: where the certificates come from.
//!
//! ```text
//!  --tls:  cluster secret ──HKDF──► Ed25519 seed ──► the cluster CA (identical on every server)
//!                                                      │ signs, at every start
//!                                                      ▼
//!                               a fresh P-256 certificate for the names this server is reached by
//!  --tls-cert/--tls-key [--tls-ca]: the operator's own certificate and CA
//! ```
//! Deriving the CA from the cluster secret means servers that were given nothing but that
//! secret trust each other's certificates, and nothing secret beyond it ever has to be
//! copied between machines. The CA certificate is written to `<data-dir>/ca.pem` for
//! `aws --ca-bundle`, and its SHA-256 goes into join tokens, so agents pin it.

use std::path::Path;
use std::sync::Arc;

use berth_auth::ClusterSecret;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or is not PEM.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A certificate could not be made.
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A listener's TLS: its configuration and the CA its clients trust.
#[derive(Clone)]
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    /// The CA certificate agents, peers and tools trust (DER).
    pub ca: CertificateDer<'static>,
}

/// PKCS#8 v1 of an Ed25519 private key: this fixed prefix, then the 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn cluster_ca(secret: &ClusterSecret) -> Result<(CertificateParams, KeyPair), TlsError> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&secret.ca_seed());
    let key = KeyPair::try_from(der.as_slice())?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "berth cluster CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Fixed, so every server derives the very same certificate.
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    params.serial_number = Some(SerialNumber::from(1u64));
    Ok((params, key))
}

impl Tls {
    /// A certificate for `names` (host names and IP addresses) issued by the cluster CA.
    pub fn from_cluster_secret(secret: &ClusterSecret, names: &[String]) -> Result<Tls, TlsError> {
        let (ca_params, ca_key) = cluster_ca(secret)?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "berth server");
        params.distinguished_name = name;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(397);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let ca = ca_cert.der().clone();
        let chain = vec![cert.der().clone(), ca.clone()];
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok(Tls {
            server: server_config(chain, key)?,
            ca,
        })
    }

    /// The operator's certificate chain and key; the CA is `ca` (its first certificate), else
    /// the chain's last certificate.
    pub fn from_files(cert: &Path, key: &Path, ca: Option<&Path>) -> Result<Tls, TlsError> {
        let file_error = |path: &Path, e: rustls_pki_types::pem::Error| TlsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_error(cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_error(cert, e))?;
        let last = chain.last().cloned().ok_or_else(|| TlsError::File {
            path: cert.display().to_string(),
            message: "holds no certificate".into(),
        })?;
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
        let ca = match ca {
            Some(path) => CertificateDer::pem_file_iter(path)
                .map_err(|e| file_error(path, e))?
                .next()
                .ok_or_else(|| TlsError::File {
                    path: path.display().to_string(),
                    message: "holds no certificate".into(),
                })?
                .map_err(|e| file_error(path, e))?,
            None => last,
        };
        Ok(Tls {
            server: server_config(chain, private)?,
            ca,
        })
    }

    /// The CA certificate in PEM, as `aws --ca-bundle` reads it.
    pub fn ca_pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.ca.as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// SHA-256 of the CA certificate: what join tokens pin.
    pub fn ca_sha256(&self) -> [u8; 32] {
        berth_client::sha256(self.ca.as_ref())
    }

    /// What a client of this server trusts.
    pub fn trust(&self) -> berth_client::Trust {
        berth_client::Trust::Ca(vec![self.ca.clone()])
    }
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_derives_the_same_ca_and_its_own_certificate() {
        let secret = ClusterSecret::from_random([7; 32]);
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = Tls::from_cluster_secret(&secret, &names).expect("a");
        let b = Tls::from_cluster_secret(&secret, &names).expect("b");
        assert_eq!(a.ca, b.ca, "the CA is a function of the cluster secret");
        assert_eq!(a.ca_sha256(), b.ca_sha256());
        let other =
            Tls::from_cluster_secret(&ClusterSecret::from_random([8; 32]), &names).expect("other");
        assert_ne!(a.ca, other.ca);
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        let parsed = berth_client::Trust::from_pem(a.ca_pem().as_bytes()).expect("PEM");
        assert!(matches!(parsed, berth_client::Trust::Ca(c) if c == vec![a.ca.clone()]));
    }
}
