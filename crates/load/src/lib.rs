//! What berth's load harnesses share: how they reach a server (its address, TLS or not, the
//! credential they sign with) and one keep-alive HTTP/1.1 connection speaking raw AWS JSON
//! 1.1, every request SigV4-signed. The connection adds as little as it can to the signing
//! itself (aws-sigv4 through `berth_auth::Signer`, the largest part of the client's CPU per
//! request, ~9 µs): no pool, and the endpoint's host, URL and signer are built once.
//!
//! ```text
//!  --credentials-file (the server's <data-dir>/admin.credentials) ──► Endpoint ──► Conn
//!  --ca-file (the server's <data-dir>/ca.pem, with `berth server --tls`) ─┘    one TCP (or TLS)
//!                                                                              connection; each
//!  call: content-type, host, x-amz-target ──berth_auth::Signer (aws-sigv4)──► + authorization,
//!        x-amz-date (signing name `ecs`, the body hashed into the signature, as the AWS SDKs do)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use berth_auth::Signer;
use berth_client::{Credentials, Trust, credentials_file};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// The region the harnesses sign for (berth accepts any).
pub const REGION: &str = "us-east-1";
const JSON_1_1: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The command-line options every harness takes to reach a server.
#[derive(clap::Args, Debug, Clone)]
pub struct Access {
    /// The AWS shared credentials file to sign with (profile `default`): berth writes the
    /// admin's to <data-dir>/admin.credentials at first start.
    #[arg(
        long,
        env = "AWS_SHARED_CREDENTIALS_FILE",
        default_value = "./berth-data/admin.credentials"
    )]
    pub credentials_file: PathBuf,
    /// Speak HTTPS, trusting these CA certificate(s) (PEM): `berth server --tls` writes
    /// <data-dir>/ca.pem.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

impl Access {
    pub fn credentials(&self) -> Result<Credentials> {
        Ok(credentials_file::read(&self.credentials_file, "default")?)
    }

    /// The CA file's text, when there is one.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>> {
        self.ca_file
            .as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .transpose()
    }

    /// What a `berth_client::Transport` should trust.
    pub fn trust(&self) -> Result<Trust> {
        Ok(match self.ca_pem()? {
            Some(pem) => Trust::from_pem(&pem)?,
            None => Trust::PlainHttp,
        })
    }

    /// The server at `addr`, reached as these options say.
    pub fn endpoint(&self, addr: SocketAddr) -> Result<Endpoint> {
        Endpoint::new(addr, self.credentials()?, self.ca_pem()?.as_deref())
    }
}

/// A server and how to reach it: cheap to clone, shared by every connection to it.
#[derive(Clone)]
pub struct Endpoint(Arc<Target>);

struct Target {
    addr: SocketAddr,
    /// The `host` header, signed.
    host: String,
    /// `http://ADDR/` or `https://ADDR/`: what the ECS API's requests are signed for.
    url: String,
    tls: Option<TlsConnector>,
    credentials: Credentials,
    /// Signs for the ECS API (`ecs`).
    signer: Signer,
}

impl Endpoint {
    /// The server at `addr`, signed for as `credentials`; over TLS trusting the CA
    /// certificates in `ca_pem` when there are some.
    pub fn new(addr: SocketAddr, credentials: Credentials, ca_pem: Option<&[u8]>) -> Result<Self> {
        let tls = ca_pem.map(tls_connector).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Endpoint(Arc::new(Target {
            addr,
            host: addr.to_string(),
            url: format!("{scheme}://{addr}/"),
            tls,
            signer: Signer {
                access_key_id: credentials.access_key_id.clone(),
                secret: credentials.secret.clone(),
                region: REGION.into(),
                service: "ecs".into(),
            },
            credentials,
        })))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn base_url(&self) -> &str {
        self.0.url.trim_end_matches('/')
    }

    /// `Authorization: Basic base64(access key id ":" secret)`, as Mesos frameworks send it.
    pub fn basic_authorization(&self) -> String {
        use base64::Engine;
        let c = &self.0.credentials;
        let pair = format!("{}:{}", c.access_key_id, c.secret.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

fn tls_connector(pem: &[u8]) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(cert.context("the CA file is not PEM")?)
            .context("a CA certificate")?;
    }
    if roots.is_empty() {
        bail!("the CA file holds no certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One keep-alive HTTP/1.1 connection to a server's ECS API.
pub struct Conn {
    endpoint: Endpoint,
    sender: SendRequest<Full<Bytes>>,
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> Result<Conn> {
        let addr = endpoint.addr();
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let sender = match &endpoint.0.tls {
            None => handshake(stream).await?,
            Some(tls) => {
                // berth's certificates name the addresses the server listens on.
                let name = ServerName::IpAddress(addr.ip().into());
                let stream = tls
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                handshake(stream).await?
            }
        };
        Ok(Conn {
            endpoint: endpoint.clone(),
            sender,
        })
    }

    /// One ECS call, signed; returns the HTTP status and body.
    pub async fn call(&mut self, op: &str, body: Bytes) -> Result<(u16, Bytes)> {
        let t = &*self.endpoint.0;
        let target = format!("{TARGET_PREFIX}{op}");
        let headers = [
            ("content-type", JSON_1_1),
            ("host", t.host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let signature = t
            .signer
            .sign("POST", &t.url, &headers, &body, false, SystemTime::now())?;
        let mut req = hyper::Request::post("/");
        for (name, value) in headers {
            req = req.header(name, value);
        }
        for (name, value) in signature {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(body))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    pub async fn call_json(&mut self, op: &str, body: Value) -> Result<Value> {
        let (status, bytes) = self.call(op, Bytes::from(body.to_string())).await?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != 200 {
            bail!("{op} answered {status}: {v}");
        }
        Ok(v)
    }
}

/// What `/proc` tells about a process: its resident set and the CPU time it has used.
#[derive(Debug, Clone, Copy)]
pub struct ProcStats {
    pub rss_mib: f64,
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
}

/// CPU seconds all processes of this machine have used since it booted (busy time in
/// `/proc/stat`: everything but idle and iowait). Linux only; `None` elsewhere.
pub fn machine_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = ticks.iter().take(8).sum::<f64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy / 100.0)
}

/// Reads `/proc/PID/status` and `/proc/PID/stat` (Linux only; `None` elsewhere or when the
/// process is gone). CPU ticks are taken as 1/100 s, the USER_HZ of every Linux port.
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it start with the state (3),
    // so utime (14) and stime (15) are the 12th and 13th after the closing parenthesis.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ProcStats {
        rss_mib: rss_kib / 1024.0,
        cpu_s: ticks / 100.0,
    })
}
