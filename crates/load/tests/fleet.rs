//! `berth-fleet` at the scale CI can afford: a real `berth server` and one fleet process of
//! 500 hollow agents, each its own container instance signing with its own credential, which
//! all register and run a service's tasks to RUNNING, while the fleet holds a few dozen files.
//!
//! The bound on open files is the point (issue 18): an agent per host, or an agent with a log
//! listener and a connection of its own, costs two or more descriptors each, which is what ran
//! a 10,000-agent fleet out of them. Here every agent's long-poll and reports are streams of
//! one shared HTTP/2 connection, and hollow agents bind no listener. A restarted fleet comes
//! back as the same instances: the agents' identities are kept, in one file for all.
//!
//! The server is the `berth` binary beside `berth-fleet` in the target directory (`cargo test
//! --workspace`, or `cargo build -p berth` first).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_load::{Conn, Endpoint};
use bytes::Bytes;
use serde_json::{Value, json};

const AGENTS: usize = 500;
/// 500 agents with a listener and a connection apiece hold over 1,000 files.
const MAX_FLEET_FILES: usize = 64;
const CLUSTER: &str = "fleet";

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines the child prints on stdout, read on a thread of their own.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line of `rx` that contains `what`, waiting at most `within` for it.
fn line_with(rx: &mpsc::Receiver<String>, what: &str, within: Duration) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with '{what}' ({e})"),
        }
    }
}

fn berth_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_berth-fleet")).with_file_name("berth");
    assert!(
        path.exists(),
        "{} is missing: build the server first (cargo build -p berth)",
        path.display()
    );
    path
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the fleet's /proc/PID/fd")
        .count()
}

async fn call(conn: &mut Conn, op: &str, body: Value) -> Value {
    conn.call_json(op, body)
        .await
        .unwrap_or_else(|e| panic!("{op}: {e:#}"))
}

/// Polls `check` once a second until it holds; panics with `what` after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not {what}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_agents_share_a_few_files_register_and_run_a_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Killed(
        Command::new(berth_binary())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("server"))
            .args(["--agent-heartbeat-timeout", "600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth server"),
    );
    let ready = line_with(
        &lines(&mut server.0),
        "listening on http://",
        Duration::from_secs(60),
    );
    let addr: SocketAddr = ready
        .split("listening on http://")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in '{ready}'"));
    let creds = dir.path().join("server/admin.credentials");
    let admin = berth_client::credentials_file::read(&creds, "default").expect("admin credential");
    let endpoint = Endpoint::new(addr, admin.clone(), None).expect("endpoint");
    let mut conn = Conn::open(&endpoint).await.expect("connection");
    call(&mut conn, "CreateCluster", json!({"clusterName": CLUSTER})).await;

    let mut fleet = Killed(
        Command::new(env!("CARGO_BIN_EXE_berth-fleet"))
            .arg("--server")
            .arg(format!("http://{addr}"))
            .arg("--credentials-file")
            .arg(&creds)
            .args(["--cluster", CLUSTER, "--count", &AGENTS.to_string()])
            .args(["--cpu", "1024", "--memory", "2048"])
            .arg("--data-dir")
            .arg(dir.path().join("fleet"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth-fleet"),
    );
    let pid = fleet.0.id();
    let out = lines(&mut fleet.0);
    line_with(
        &out,
        &format!("fleet ready: {AGENTS} agents"),
        Duration::from_secs(90),
    );
    let registered = call(
        &mut conn,
        "DescribeClusters",
        json!({"clusters": [CLUSTER]}),
    )
    .await;
    assert_eq!(
        registered["clusters"][0]["registeredContainerInstancesCount"],
        AGENTS
    );
    let files = open_files(pid);
    assert!(
        files <= MAX_FLEET_FILES,
        "{AGENTS} agents hold {files} open files once registered"
    );

    // Two tasks per instance, spread over them all.
    call(
        &mut conn,
        "RegisterTaskDefinition",
        json!({"family": "ghost", "containerDefinitions": [
            {"name": "web", "image": "ghost", "cpu": 256, "memory": 128}]}),
    )
    .await;
    let tasks = 2 * AGENTS;
    call(
        &mut conn,
        "CreateService",
        json!({"cluster": CLUSTER, "serviceName": "ghosts", "taskDefinition": "ghost",
               "desiredCount": tasks}),
    )
    .await;
    eventually(Duration::from_secs(90), "every task RUNNING", || {
        let endpoint = endpoint.clone();
        async move {
            let mut conn = Conn::open(&endpoint).await.expect("connection");
            let d = call(
                &mut conn,
                "DescribeServices",
                json!({"cluster": CLUSTER, "services": ["ghosts"]}),
            )
            .await;
            d["services"][0]["runningCount"] == tasks
        }
    })
    .await;
    let files = open_files(pid);
    assert!(
        files <= MAX_FLEET_FILES,
        "{AGENTS} agents hold {files} open files with {tasks} tasks RUNNING"
    );

    // A hollow agent of the fleet serves no logs, and the server says so.
    let listed = call(
        &mut conn,
        "ListTasks",
        json!({"cluster": CLUSTER, "maxResults": 1}),
    )
    .await;
    let arn = listed["taskArns"][0].as_str().expect("a task").to_owned();
    let native = berth_client::Client::new(
        berth_client::Transport::new(&berth_client::Trust::PlainHttp).expect("transport"),
        &format!("http://{addr}"),
        &admin,
        berth_load::REGION,
        "berth",
    );
    let id = arn.rsplit('/').next().expect("task id");
    let answer = native
        .send(
            "GET",
            &format!("/v1/tasks/{id}/logs?cluster={CLUSTER}"),
            &[],
            Bytes::new(),
            Duration::from_secs(30),
        )
        .await
        .expect("the logs request");
    let body = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, 404, "{body}");
    assert!(body.contains("serves no logs"), "{body}");

    // Started again on the same directory, the fleet's agents are the same instances: their
    // identities were kept (in one file), so none joins anew.
    drop(fleet);
    let mut fleet = Killed(
        Command::new(env!("CARGO_BIN_EXE_berth-fleet"))
            .arg("--server")
            .arg(format!("http://{addr}"))
            .arg("--credentials-file")
            .arg(&creds)
            .args(["--cluster", CLUSTER, "--count", &AGENTS.to_string()])
            .args(["--cpu", "1024", "--memory", "2048"])
            .arg("--data-dir")
            .arg(dir.path().join("fleet"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth-fleet, again"),
    );
    line_with(
        &lines(&mut fleet.0),
        &format!("fleet ready: {AGENTS} agents"),
        Duration::from_secs(90),
    );
    let registered = call(
        &mut conn,
        "DescribeClusters",
        json!({"clusters": [CLUSTER]}),
    )
    .await;
    assert_eq!(
        registered["clusters"][0]["registeredContainerInstancesCount"], AGENTS,
        "the restarted fleet registered new instances"
    );
}
