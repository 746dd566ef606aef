//! How berth's programs reach a berth server: every request SigV4-signed, over plain HTTP or
//! TLS.
//!
//! ```text
//!  agent / peer server / CLI / load harness / tests
//!      │ Client::send(method, path, headers, body)
//!      ▼
//!  sign (berth-auth's Signer: aws-sigv4, the AWS SDK's own signer) ──► Transport
//!      │                                         http:// ─ loopback and test clusters
//!      └──────────────────────────────────────── https:// ─ trusting the cluster CA, given as a
//!                                                           certificate or pinned by hash
//! ```
//! One crate owns this so that the agent, the servers talking to each other and the tools all
//! trust, sign and time out the same way. Trust is never "any certificate": a client either
//! has the CA certificate or the SHA-256 a join token carries (the kubeadm discovery-hash
//! idea), and in the second case accepts only a chain whose CA hashes to the pin.

pub mod credentials_file;
mod tls;

use std::time::{Duration, SystemTime};

use berth_auth::{SecretKey, Signer};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use tls::{Trust, sha256};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-._~`).
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a value for one path segment or query value: names in berth's paths
/// (container names, access key ids, clusters) are free text.
pub fn path_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, RESERVED).to_string()
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made (refused, unreachable, TLS handshake failed): the request
    /// never left, so sending it elsewhere cannot apply it twice.
    #[error("{0}")]
    Unconnected(String),
    /// The connection failed once the request may have been sent, or the answer was cut off.
    #[error("{0}")]
    Transport(String),
    /// No answer in time.
    #[error("{url}: no answer in {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The request could not be built or signed.
    #[error("{0}")]
    Request(String),
}

/// An access key and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret: SecretKey,
}

/// A connection pool to servers reached with one kind of trust.
#[derive(Clone)]
pub struct Transport {
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    /// A pool that speaks plain HTTP, and HTTPS when `trust` says which CA to trust.
    pub fn new(trust: &Trust) -> Result<Transport, ClientError> {
        Transport::build(trust, false)
    }

    /// A pool that carries every request to a server as a stream of one HTTP/2 connection,
    /// however many are in flight. With HTTP/1.1 each request in flight holds a connection of
    /// its own, so a process standing in for thousands of agents (`berth-fleet`), each with a
    /// long-poll always waiting, would need a socket per agent; this way the agents sharing
    /// one transport share one socket.
    ///
    /// Plain HTTP (`Trust::PlainHttp`) speaks HTTP/2 from the start (prior knowledge), which
    /// berth servers accept. Over TLS the protocol is what ALPN settles: HTTP/2 where the
    /// server offers `h2`, HTTP/1.1 (a connection per request in flight) where it does not.
    pub fn multiplexed(trust: &Trust) -> Result<Transport, ClientError> {
        Transport::build(trust, true)
    }

    fn build(trust: &Trust, multiplexed: bool) -> Result<Transport, ClientError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(trust)?)
            .https_or_http();
        let https = if multiplexed {
            builder.enable_all_versions().wrap_connector(connector)
        } else {
            builder.enable_http1().wrap_connector(connector)
        };
        Ok(Transport {
            http: HttpClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .http2_only(multiplexed && matches!(trust, Trust::PlainHttp))
                .build(https),
        })
    }

    /// Sends a request as it is (already signed, or not needing a signature).
    pub async fn request(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let uri = request.uri().to_string();
        self.http.request(request).await.map_err(|e| {
            let why = format!("{uri}: {}", error_chain(&e));
            if e.is_connect() {
                ClientError::Unconnected(why)
            } else {
                ClientError::Transport(why)
            }
        })
    }
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// A client of one server, signing as one principal for one API.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    /// `scheme://host:port`, without a trailing slash.
    base: String,
    signer: Signer,
}

impl Client {
    /// A client of `base` (`http://host:port` or `https://host:port`) signing with
    /// `credentials` for the API whose signing name is `service` (`ecs`, `berth`).
    pub fn new(
        transport: Transport,
        base: &str,
        credentials: &Credentials,
        region: &str,
        service: &str,
    ) -> Client {
        Client {
            transport,
            base: base.trim_end_matches('/').to_owned(),
            signer: Signer {
                access_key_id: credentials.access_key_id.clone(),
                secret: credentials.secret.clone(),
                region: region.to_owned(),
                service: service.to_owned(),
            },
        }
    }

    /// The same server and principal, for another API.
    pub fn for_service(&self, service: &str) -> Client {
        let mut c = self.clone();
        c.signer.service = service.to_owned();
        c
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn access_key_id(&self) -> &str {
        &self.signer.access_key_id
    }

    pub fn secret(&self) -> &SecretKey {
        &self.signer.secret
    }

    /// Builds and signs a request. `content_sha256` signs the body's hash as a header, which
    /// lets a server check the signature before it reads a large body.
    pub fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        content_sha256: bool,
    ) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| ClientError::Request(format!("{url}: {e}")))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| ClientError::Request(format!("{url} names no host")))?;
        let mut signed_headers: Vec<(&str, &str)> = headers.to_vec();
        signed_headers.push(("host", &host));
        let added = self
            .signer
            .sign(
                method,
                &url,
                &signed_headers,
                &body,
                content_sha256,
                SystemTime::now(),
            )
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        for (k, v) in signed_headers.iter() {
            builder = builder.header(*k, *v);
        }
        for (k, v) in &added {
            builder = builder.header(*k, v.as_str());
        }
        builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    /// Sends a signed request (its body's hash signed too, so a server can check the signature
    /// before reading the body) and reads the whole answer within `timeout`.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, ClientError> {
        let request = self.signed(method, path_and_query, headers, body, true)?;
        let url = format!("{}{path_and_query}", self.base);
        tokio::time::timeout(timeout, async {
            let response = self.transport.request(request).await?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ClientError::Transport(format!("{url}: {e}")))?
                .to_bytes();
            Ok(Answer {
                status,
                headers: parts.headers,
                body,
            })
        })
        .await
        .map_err(|_| ClientError::Timeout { url, timeout })?
    }

    /// Sends a signed request and hands back the response as it streams.
    pub async fn stream(
        &self,
        method: &str,
        path_and_query: &str,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let request = self.signed(method, path_and_query, &[], Bytes::new(), true)?;
        self.transport.request(request).await
    }
}

/// An error and its sources on one line (hyper's own message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_path_segment_keeps_unreserved_characters_and_encodes_the_rest() {
        assert_eq!(super::path_segment("web-1.a_b~"), "web-1.a_b~");
        assert_eq!(super::path_segment("a b/?&=ü"), "a%20b%2F%3F%26%3D%C3%BC");
    }
}
