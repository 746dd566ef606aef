//! Shared by the integration tests: a real `berth` process on a loopback port, and an
//! official AWS SDK ECS client pointed at it, signing with the admin credential the server
//! wrote at its first start (tests use real credentials; nothing turns checks off).
//!
//! Every server started here registers its endpoint with its credentials file, so the raw
//! HTTP helpers ([`raw`], [`ecs_raw`], [`get_json`]) sign for whichever server they are
//! pointed at; [`raw_unsigned`] is for tests of what unsigned requests get.
#![allow(dead_code)]

pub mod agent;
pub mod cluster;
pub mod docker;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::collections::BTreeSet;
use std::fmt::Debug;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::Resource;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// The credentials file of each server these tests started, by endpoint.
static CREDENTIALS: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// The admin credentials file of the server at `endpoint`.
pub fn credentials_file(endpoint: &str) -> PathBuf {
    CREDENTIALS
        .lock()
        .expect("credentials registry")
        .iter()
        .rev()
        .find(|(e, _)| e == endpoint)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no berth server was started at {endpoint} by this test"))
}

/// How to reach the server at `endpoint`: over TLS it trusts the CA the server wrote beside its
/// credentials (`ca.pem`), as `aws --ca-bundle` would.
pub fn transport(endpoint: &str) -> berth_client::Transport {
    let trust = if endpoint.starts_with("https://") {
        let ca = credentials_file(endpoint).with_file_name("ca.pem");
        berth_client::Trust::from_pem(&std::fs::read(&ca).expect("ca.pem")).expect("a CA")
    } else {
        berth_client::Trust::PlainHttp
    };
    berth_client::Transport::new(&trust).expect("transport")
}

/// The admin credential of the server at `endpoint`.
pub fn admin(endpoint: &str) -> berth_client::Credentials {
    berth_client::credentials_file::read(&credentials_file(endpoint), "default")
        .expect("the server's admin.credentials")
}

/// The first line a spawned `berth server` prints on its piped stdout (its ready line, within
/// 60 s); the rest is drained so the child never blocks on a full pipe.
pub fn ready_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("berth server printed its address within 60 s")
}

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
        Berth::launch_logging(dir, listen, extra, None)
    }

    /// Like [`Berth::launch`]; with `log`, the server's stderr goes to that file, filtered as
    /// an operator's would be (berth's default log filter, not the tests' quieter one).
    pub fn launch_logging(dir: &Path, listen: &str, extra: &[&str], log: Option<&Path>) -> Berth {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(dir)
            // Tests register container instances with no agent behind them; they must stay
            // connected. Tests of heartbeats pass their own (later flags win).
            .args(["--agent-heartbeat-timeout", "3600"])
            .args(extra)
            .stdout(Stdio::piped());
        match log {
            Some(path) => command
                .env_remove("RUST_LOG")
                .stderr(std::fs::File::create(path).expect("create the server's log file")),
            None => command
                .env("RUST_LOG", "warn,openraft=error")
                .stderr(Stdio::inherit()),
        };
        let mut child = command.spawn().expect("spawn berth server");
        let line = ready_line(&mut child);
        let endpoint = line
            .rsplit(' ')
            .next()
            .expect("address on the ready line")
            .to_owned();
        assert!(
            endpoint.starts_with("http://") || endpoint.starts_with("https://"),
            "unexpected ready line: {line}"
        );
        let credentials = dir.join("admin.credentials");
        assert!(
            credentials.is_file(),
            "the server announced itself before writing {}",
            credentials.display()
        );
        CREDENTIALS
            .lock()
            .expect("credentials registry")
            .push((endpoint.clone(), credentials));
        Berth {
            child: Some(child),
            endpoint,
            data_dir: dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _temp: None,
        }
    }

    /// The server process's id while it runs (for SIGSTOP, SIGCONT and SIGTERM).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The `host:port` the server listens on.
    pub fn addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// An ECS client for this server (region us-east-1 unless given), signing as its admin.
    pub fn client(&self) -> Client {
        client(&self.endpoint, "us-east-1")
    }

    /// An ECS client for this server signing with `credentials`.
    pub fn client_as(&self, credentials: &berth_client::Credentials) -> Client {
        client_with(&self.endpoint, "us-east-1", credentials)
    }

    /// The admin credentials file this server wrote.
    pub fn credentials_file(&self) -> PathBuf {
        self.data_dir.join("admin.credentials")
    }

    /// Makes the raw helpers sign for this server at `endpoint` too (a second listener).
    pub fn also_at(&self, endpoint: &str) {
        CREDENTIALS
            .lock()
            .expect("credentials registry")
            .push((endpoint.to_owned(), self.credentials_file()));
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

/// An official AWS SDK ECS client with the server's admin credential and an endpoint override.
pub fn client(endpoint: &str, region: &str) -> Client {
    client_with(endpoint, region, &admin(endpoint))
}

/// An official AWS SDK ECS client signing with `credentials`.
pub fn client_with(
    endpoint: &str,
    region: &str,
    credentials: &berth_client::Credentials,
) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret.expose().to_owned(),
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    Client::from_conf(config)
}

/// `GET path` on a berth server, signed as its admin, parsed as JSON (panics on transport
/// errors).
pub async fn get_json(endpoint: &str, path: &str) -> serde_json::Value {
    raw(endpoint, "GET", path, &[], b"").await.json()
}

/// The `X-Amz-Target` prefix of every ECS operation.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

// --- SDK errors ---------------------------------------------------------------------------------

/// The tags of the resource `arn` as ListTagsForResource answers them, as `key=value`.
pub async fn tags_of(ecs: &Client, arn: &str) -> Vec<String> {
    let listed = ecs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    listed
        .tags()
        .iter()
        .map(|t| {
            format!(
                "{}={}",
                t.key().unwrap_or_default(),
                t.value().unwrap_or_default()
            )
        })
        .collect()
}

/// Asserts that an SDK call failed with the ECS exception `code`, answered as HTTP 400 (403
/// for AccessDeniedException, as AWS answers it) with a message a person can act on; returns
/// the message.
#[track_caller]
pub fn expect_error<T: Debug, E: ProvideErrorMetadata + Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
    code: &str,
) -> String {
    let err = match result {
        Ok(v) => panic!("expected {code}, but the call succeeded: {v:?}"),
        Err(e) => e,
    };
    assert_eq!(err.code(), Some(code), "wrong exception: {err:?}");
    let status = err.raw_response().map(|r| r.status().as_u16());
    let expected = if code == "AccessDeniedException" {
        403
    } else {
        400
    };
    assert_eq!(
        status,
        Some(expected),
        "{code} must be an HTTP {expected}: {err:?}"
    );
    let message = err.message().unwrap_or_default().to_owned();
    assert!(
        message.len() >= 10,
        "{code} needs a meaningful message, got {message:?}"
    );
    message
}

/// Like [`expect_error`] for calls where more than one exception name is defensible; returns
/// (code, message).
#[track_caller]
pub fn expect_one_of<T: Debug, E: ProvideErrorMetadata + Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
    codes: &[&str],
) -> (String, String) {
    let err = match result {
        Ok(v) => panic!("expected one of {codes:?}, but the call succeeded: {v:?}"),
        Err(e) => e,
    };
    let code = err.code().unwrap_or_default().to_owned();
    assert!(codes.contains(&code.as_str()), "wrong exception: {err:?}");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400), "{code} must be an HTTP 400: {err:?}");
    let message = err.message().unwrap_or_default().to_owned();
    assert!(message.len() >= 10, "{code} needs a meaningful message");
    (code, message)
}

// --- resources ----------------------------------------------------------------------------------

pub fn int_resource(name: &str, value: i32) -> Resource {
    Resource::builder()
        .name(name)
        .r#type("INTEGER")
        .integer_value(value)
        .build()
}

pub fn ports_resource(name: &str, ports: &[&str]) -> Resource {
    Resource::builder()
        .name(name)
        .r#type("STRINGSET")
        .set_string_set_value(Some(ports.iter().map(|p| p.to_string()).collect()))
        .build()
}

#[track_caller]
pub fn find_resource<'a>(resources: &'a [Resource], name: &str) -> &'a Resource {
    resources
        .iter()
        .find(|r| r.name() == Some(name))
        .unwrap_or_else(|| panic!("no {name} resource in {resources:?}"))
}

#[track_caller]
pub fn int_of(resources: &[Resource], name: &str) -> i32 {
    find_resource(resources, name).integer_value()
}

#[track_caller]
pub fn ports_of(resources: &[Resource], name: &str) -> BTreeSet<String> {
    find_resource(resources, name)
        .string_set_value()
        .iter()
        .cloned()
        .collect()
}

// --- raw HTTP ---------------------------------------------------------------------------------

pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

pub fn http() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

pub struct RawResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the ECS error shape for `code` and returns the message.
    #[track_caller]
    pub fn expect_error(&self, code: &str) -> String {
        let body = self.json();
        assert_eq!(self.status, 400, "{code} must be an HTTP 400: {body}");
        assert_eq!(body["__type"], code, "wrong __type: {body}");
        assert_eq!(
            self.header("x-amzn-errortype"),
            Some(code),
            "X-Amzn-Errortype must equal __type"
        );
        assert!(
            body.get("code").is_none(),
            "an error body must not carry `code` (the Rust SDK would prefer it): {body}"
        );
        let message = body["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.len() >= 10,
            "{code} needs a meaningful message: {body}"
        );
        message
    }
}

/// A request to the server at `endpoint`, signed with its admin credential (for the ECS API
/// at `/`, EventBridge Scheduler's at `/schedules`, else for berth's native API).
pub async fn raw(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    raw_as(&admin(endpoint), endpoint, method, path, headers, body).await
}

/// Like [`raw`], signed with `credentials`.
pub async fn raw_as(
    credentials: &berth_client::Credentials,
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let cloud_map = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("x-amz-target") && v.starts_with("Route53AutoNaming_")
    });
    let service = if path == "/" && cloud_map {
        "servicediscovery"
    } else if path == "/" {
        "ecs"
    } else if path == "/schedules"
        || path.starts_with("/schedules/")
        || path.starts_with("/schedules?")
    {
        "scheduler"
    } else {
        "berth"
    };
    let client = berth_client::Client::new(
        transport(endpoint),
        endpoint,
        credentials,
        "us-east-1",
        service,
    );
    let req = client
        .signed(method, path, headers, Bytes::copy_from_slice(body), false)
        .expect("signed request");
    send(transport(endpoint), req).await
}

/// A new credential with one of the ready roles (`read-only`, `operator:CLUSTER`, ...), made
/// through `b` as its admin.
pub async fn credential(b: &Berth, name: &str, role: &str) -> berth_client::Credentials {
    let body = serde_json::json!({ "name": name, "role": role }).to_string();
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/credentials",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    berth_client::Credentials {
        access_key_id: v["accessKeyId"].as_str().unwrap().into(),
        secret: berth_auth::SecretKey::new(v["secretAccessKey"].as_str().unwrap()),
    }
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request as it is: no signature unless `headers` carry one.
pub async fn raw_unsigned(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("{endpoint}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let transport =
        berth_client::Transport::new(&berth_client::Trust::PlainHttp).expect("transport");
    send(
        transport,
        req.body(Full::new(Bytes::copy_from_slice(body))).unwrap(),
    )
    .await
}

async fn send(transport: berth_client::Transport, req: hyper::Request<Full<Bytes>>) -> RawResponse {
    let resp = transport.request(req).await.expect("HTTP request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    RawResponse {
        status,
        headers,
        body,
    }
}

/// `POST /` with `X-Amz-Target: <target>` (no target header when `None`), unsigned.
pub async fn ecs_raw(endpoint: &str, target: Option<&str>, body: &[u8]) -> RawResponse {
    let mut headers = vec![("content-type", "application/x-amz-json-1.1")];
    if let Some(t) = target {
        headers.push(("x-amz-target", t));
    }
    raw(endpoint, "POST", "/", &headers, body).await
}

pub async fn ecs_op(endpoint: &str, op: &str, body: &str) -> RawResponse {
    let target = format!("{TARGET_PREFIX}{op}");
    ecs_raw(endpoint, Some(&target), body.as_bytes()).await
}

// --- agents by hand -------------------------------------------------------------------------------

/// A join token for agents of `cluster`, made through the native API as an admin.
pub async fn join_token(endpoint: &str, cluster: &str) -> berth_auth::JoinToken {
    let body = serde_json::json!({ "cluster": cluster }).to_string();
    let r = raw(
        endpoint,
        "POST",
        "/v1/join-tokens",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    berth_auth::JoinToken::parse(r.json()["token"].as_str().expect("token")).expect("a token")
}

/// The server side of an agent, played by hand: joined with a token, registered with its own
/// credential (which every agent-protocol call of the test then signs with).
pub struct HandAgent {
    pub instance_arn: String,
    pub credentials: berth_client::Credentials,
}

impl HandAgent {
    /// Joins `cluster` and registers an instance with 2 vCPU and 2 GiB whose log endpoint is
    /// `endpoint_attribute` (the agent's own address).
    pub async fn join(endpoint: &str, cluster: &str, log_endpoint: &str) -> HandAgent {
        Self::join_with(endpoint, cluster, log_endpoint, &[]).await
    }

    /// Like [`HandAgent::join`], registering `attributes` (name, value) too.
    pub async fn join_with(
        endpoint: &str,
        cluster: &str,
        log_endpoint: &str,
        attributes: &[(&str, &str)],
    ) -> HandAgent {
        let token = join_token(endpoint, cluster).await;
        let token_credentials = berth_client::Credentials {
            access_key_id: token.id.clone(),
            secret: token.secret.clone(),
        };
        let body = serde_json::json!({ "cluster": cluster }).to_string();
        let r = raw_as(
            &token_credentials,
            endpoint,
            "POST",
            "/v1/agent/join",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let joined = r.json();
        let agent = HandAgent {
            instance_arn: joined["containerInstanceArn"]
                .as_str()
                .expect("arn")
                .to_owned(),
            credentials: berth_client::Credentials {
                access_key_id: joined["accessKeyId"].as_str().expect("id").to_owned(),
                secret: berth_auth::SecretKey::new(
                    joined["secretAccessKey"].as_str().expect("secret"),
                ),
            },
        };
        // A certificate hash nobody serves: logs from a hand agent are never fetched.
        let mut attrs = vec![
            serde_json::json!({"name": "berth.agent-endpoint", "value": log_endpoint}),
            serde_json::json!({"name": "berth.agent-certificate", "value": "0".repeat(64)}),
        ];
        attrs.extend(
            attributes
                .iter()
                .map(|(name, value)| serde_json::json!({"name": name, "value": value})),
        );
        let r = agent
            .ecs(
                endpoint,
                "RegisterContainerInstance",
                serde_json::json!({"cluster": cluster, "containerInstanceArn": agent.instance_arn,
                    "totalResources": [
                        {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                        {"name": "MEMORY", "type": "INTEGER", "integerValue": 2048}
                    ],
                    "attributes": attrs}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        agent
    }

    /// An ECS call signed with the agent's own credential.
    pub async fn ecs(&self, endpoint: &str, op: &str, body: serde_json::Value) -> RawResponse {
        let target = format!("{TARGET_PREFIX}{op}");
        raw_as(
            &self.credentials,
            endpoint,
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
            ],
            body.to_string().as_bytes(),
        )
        .await
    }

    /// A native call signed with the agent's own credential.
    pub async fn call(&self, endpoint: &str, method: &str, path: &str, body: &[u8]) -> RawResponse {
        raw_as(
            &self.credentials,
            endpoint,
            method,
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }
}

/// `GET path` signed as the server's admin, answered as a stream (followed logs).
pub async fn stream_get(endpoint: &str, path: &str) -> hyper::Response<hyper::body::Incoming> {
    berth_client::Client::new(
        transport(endpoint),
        endpoint,
        &admin(endpoint),
        "us-east-1",
        "berth",
    )
    .stream("GET", path)
    .await
    .expect("a signed streaming GET")
}
