//! Shared by the integration tests: a real `berth` process on a loopback port, and an
//! official AWS SDK ECS client pointed at it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};

/// A `berth server` child process with its own data directory.
pub struct Berth {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl Berth {
    /// Starts a server on a free loopback port with a fresh data directory.
    pub fn start() -> Berth {
        Berth::start_with(&[])
    }

    /// Like [`Berth::start`], with extra `berth server` flags (kept across restarts).
    pub fn start_with(extra: &[&str]) -> Berth {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let mut b = Berth::launch(&dir, "127.0.0.1:0", extra);
        b._temp = Some(temp);
        b
    }

    /// Starts a server on `listen` with state in `dir` (kept as it is).
    pub fn start_in(dir: &Path, listen: &str) -> Berth {
        Berth::launch(dir, listen, &[])
    }

    /// Starts `berth server --listen LISTEN --data-dir DIR EXTRA...`.
    pub fn launch(dir: &Path, listen: &str, extra: &[&str]) -> Berth {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn,openraft=error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("berth server printed its address within 60 s");
        let endpoint = line
            .rsplit(' ')
            .next()
            .expect("address on the ready line")
            .to_owned();
        assert!(
            endpoint.starts_with("http://"),
            "unexpected ready line: {line}"
        );
        Berth {
            child: Some(child),
            endpoint,
            data_dir: dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _temp: None,
        }
    }

    /// The `host:port` the server listens on.
    pub fn addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// An ECS client for this server (region us-east-1 unless given).
    pub fn client(&self) -> Client {
        client(&self.endpoint, "us-east-1")
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr().to_owned();
        let temp = self._temp.take();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let mut again = Berth::launch(&self.data_dir, &listen, &extra);
        self.child = again.child.take();
        self.endpoint = again.endpoint.clone();
        self._temp = temp;
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An official AWS SDK ECS client with dummy credentials and an endpoint override.
pub fn client(endpoint: &str, region: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("AKIDBERTH", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    Client::from_conf(config)
}

/// `GET path` on a berth server, parsed as JSON (panics on transport errors).
pub async fn get_json(endpoint: &str, path: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let uri: hyper::Uri = format!("{endpoint}{path}").parse().expect("uri");
    let resp = client.get(uri).await.expect("GET");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&body).expect("JSON body")
}
