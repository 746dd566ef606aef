//! The two clients an operator's command talks through: the official `aws-sdk-ecs` client for
//! the ECS API (so `berth` exercises the same client code as every SDK user), and
//! `berth_client` for berth's native `/v1/...` API. Both sign with the credential
//! [`Connection`] finds the way AWS tools do.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ecs::config::timeout::TimeoutConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls;

use crate::admin::Connection;

/// The ECS API and the native API of one server.
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub native: berth_client::Client,
}

impl Clients {
    pub fn new(connection: &Connection) -> Result<Clients> {
        Ok(Clients {
            ecs: ecs(connection)?,
            native: connection.client()?,
        })
    }
}

/// An ECS client for the endpoint, trusting `--ca-bundle` (else the system's roots) over
/// https.
fn ecs(connection: &Connection) -> Result<aws_sdk_ecs::Client> {
    let credentials = connection.credentials()?;
    let endpoint = connection.endpoint();
    let builder = aws_smithy_http_client::Builder::new();
    let http = if endpoint.starts_with("https://") {
        let mut trust = tls::TrustStore::empty().with_native_roots(true);
        if let Some(path) = &connection.ca_bundle {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            trust = tls::TrustStore::empty().with_pem_certificate(pem);
        }
        let context = tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .context("setting up TLS")?;
        builder
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(context)
            .build_https()
    } else {
        builder.build_http()
    };
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(connection.region()))
        .credentials_provider(Credentials::new(
            credentials.access_key_id,
            credentials.secret.expose().to_owned(),
            None,
            None,
            "berth",
        ))
        .endpoint_url(&endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .http_client(http)
        .build();
    Ok(aws_sdk_ecs::Client::from_conf(config))
}
