//! The Mesos v1 scheduler API, driven over HTTP as a framework would (a RecordIO event stream
//! read with berth-mesos's decoder), against a real `berth server` and `berth agent`: the
//! answers to bad calls, offers that hold their resources against RunTask, declines, command
//! tasks through RUNNING to FINISHED or FAILED with acknowledgements, kills, reconciliation,
//! teardown, and offer timeouts (none unless the operator sets one, as on a Mesos master). (Unmodified pymesos frameworks are run in tests/mesos.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_mesos::recordio::Decoder;
use bytes::Bytes;
use common::agent::AgentProcess;
use common::{Berth, ecs_op, http, raw, raw_unsigned};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATH: &str = "/api/v1/scheduler";

/// HTTP Basic credentials, as a Mesos framework sends its principal and secret.
fn basic(credentials: &berth_client::Credentials) -> String {
    use base64::Engine;
    let pair = format!(
        "{}:{}",
        credentials.access_key_id,
        credentials.secret.expose()
    );
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A subscribed framework: its id, stream id, and the events read so far. Dropping it closes
/// its event stream, as a framework process that dies does.
struct Framework {
    endpoint: String,
    id: String,
    stream: String,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    reader: tokio::task::JoinHandle<()>,
    /// Cleared to stop reading the stream while keeping its connection open.
    reading: Arc<AtomicBool>,
}

impl Drop for Framework {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Framework {
    async fn subscribe(endpoint: &str, name: &str) -> Framework {
        Self::subscribe_with(endpoint, json!({"user": "root", "name": name})).await
    }

    async fn subscribe_with(endpoint: &str, info: Value) -> Framework {
        let mut body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}});
        if let Some(id) = info.get("id") {
            body["framework_id"] = id.clone();
        }
        let req = hyper::Request::builder()
            .method("POST")
            .uri(format!("{endpoint}{PATH}"))
            .header("content-type", "application/json")
            .header("authorization", basic(&common::admin(endpoint)))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = http().request(req).await.expect("subscribe");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()
                .get("transfer-encoding")
                .and_then(|v| v.to_str().ok()),
            Some("chunked"),
            "pymesos needs a chunked stream"
        );
        let stream = resp
            .headers()
            .get("mesos-stream-id")
            .and_then(|v| v.to_str().ok())
            .expect("Mesos-Stream-Id")
            .to_owned();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut body = resp.into_body();
        let reading = Arc::new(AtomicBool::new(true));
        let still_reading = reading.clone();
        let reader = tokio::spawn(async move {
            let mut decoder = Decoder::new();
            while still_reading.load(Ordering::Relaxed) {
                let Some(Ok(frame)) = body.frame().await else {
                    return;
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for record in decoder.feed(&data).expect("RecordIO") {
                    let _ = tx.send(serde_json::from_slice(&record).expect("JSON event"));
                }
            }
            // A stalled framework: the connection stays open (this task holds `body` until it
            // is aborted), and nothing more is read from it.
            std::future::pending::<()>().await;
        });
        let mut f = Framework {
            endpoint: endpoint.to_owned(),
            id: String::new(),
            stream,
            events: rx,
            seen: Vec::new(),
            reader,
            reading,
        };
        let subscribed = f.next("SUBSCRIBED", |_| true).await;
        f.id = subscribed["subscribed"]["framework_id"]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(subscribed["subscribed"]["heartbeat_interval_seconds"], 15.0);
        f
    }

    /// The next event of `kind` that `pick` accepts (others are kept in `seen`).
    async fn next(&mut self, kind: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = tokio::time::timeout(left, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event within 30 s; saw {:#?}", self.seen))
                .expect("stream open");
            self.seen.push(e.clone());
            if e["type"] == kind && pick(&e) {
                return e;
            }
        }
    }

    /// Stops reading the event stream (after the frame being read, if any), keeping its
    /// connection open.
    fn stop_reading(&self) {
        self.reading.store(false, Ordering::Relaxed);
    }

    /// An UPDATE for `task` in `state`.
    async fn update(&mut self, task: &str, state: &str) -> Value {
        let e = self
            .next("UPDATE", |e| {
                e["update"]["status"]["task_id"]["value"] == task
                    && e["update"]["status"]["state"] == state
            })
            .await;
        e["update"]["status"].clone()
    }

    async fn call(&self, body: Value) -> u16 {
        raw(
            &self.endpoint,
            "POST",
            PATH,
            &[
                ("content-type", "application/json"),
                ("mesos-stream-id", &self.stream),
            ],
            body.to_string().as_bytes(),
        )
        .await
        .status
    }

    async fn offer(&mut self) -> Value {
        let e = self.next("OFFERS", |_| true).await;
        e["offers"]["offers"][0].clone()
    }

    async fn launch(&self, offer: &Value, tasks: Vec<Value>) -> u16 {
        self.launch_refusing(offer, tasks, 0.1).await
    }

    /// [`Framework::launch`], asking not to be offered the rest of the agent for
    /// `refuse_seconds`.
    async fn launch_refusing(&self, offer: &Value, tasks: Vec<Value>, refuse_seconds: f64) -> u16 {
        self.call(json!({
            "type": "ACCEPT",
            "framework_id": {"value": self.id},
            "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                "filters": {"refuse_seconds": refuse_seconds}
            }
        }))
        .await
    }
}

fn command_task(id: &str, agent: &Value, command: &str) -> Value {
    json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": agent,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}
        ],
        "command": {"value": command}
    })
}

/// Polls `check` every 100 ms until it answers `Ok`, failing after `within` with what it last
/// said.
async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(why) => assert!(Instant::now() < deadline, "not within {within:?}: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tasks of cluster `default` with `desiredStatus`, described.
async fn tasks(b: &Berth, desired: &str) -> Vec<Value> {
    let list = json!({"desiredStatus": desired}).to_string();
    let r = ecs_op(&b.endpoint, "ListTasks", &list).await.json();
    let r = ecs_op(
        &b.endpoint,
        "DescribeTasks",
        &json!({"tasks": r["taskArns"]}).to_string(),
    )
    .await
    .json();
    r["tasks"].as_array().cloned().unwrap_or_default()
}

/// Waits until no task of cluster `default` is meant to run.
async fn none_running(b: &Berth, within: Duration) {
    eventually(within, || async {
        let running = tasks(b, "RUNNING").await;
        if running.is_empty() {
            Ok(())
        } else {
            Err(format!("tasks still meant to run: {running:?}"))
        }
    })
    .await
}

/// A server and an agent on cluster `default`. Command tasks run as host processes, which
/// outlive a killed agent by design: tests that leave tasks running use `hollow`.
async fn setup_with(runtime: &[&str]) -> (Berth, AgentProcess) {
    setup_server_with(&[], runtime).await
}

/// [`setup_with`], with extra `berth server` flags.
async fn setup_server_with(server: &[&str], runtime: &[&str]) -> (Berth, AgentProcess) {
    let b = Berth::start_with(server);
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"default"}"#).await;
    assert_eq!(r.status, 200);
    let mut flags = vec!["--cpu", "1024", "--memory", "2048"];
    flags.extend_from_slice(runtime);
    let agent = AgentProcess::start(&b.endpoint, "default", &flags);
    (b, agent)
}

async fn setup() -> (Berth, AgentProcess) {
    setup_with(&[]).await
}

#[tokio::test]
async fn bad_calls_are_answered_as_a_master_answers_them() {
    let b = Berth::start();
    // Without the cluster frameworks schedule on, SUBSCRIBE says so.
    let subscribe =
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#;
    let r = raw(
        &b.endpoint,
        "POST",
        PATH,
        &[("content-type", "application/json")],
        subscribe.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("Cluster not found: default."),
        "{r:?}",
        r = String::from_utf8_lossy(&r.body)
    );
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"default"}"#).await;
    assert_eq!(r.status, 200);
    // As from a Mesos master, the version is anyone's to read (pymesos reads it unsigned).
    let r = raw_unsigned(&b.endpoint, "GET", "/version", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], "1.11.0");
    let post = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let endpoint = b.endpoint.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw(&endpoint, "POST", PATH, &h, body.as_bytes()).await
        }
    };
    let ct = || ("content-type", "application/json".to_owned());
    // Not JSON, no type, an unknown type.
    assert_eq!(post(vec![ct()], "{not json").await.status, 400);
    assert_eq!(
        post(vec![ct()], r#"{"framework_id":{"value":"x"}}"#)
            .await
            .status,
        400
    );
    // SUBSCRIBE must not carry a stream id.
    let r = post(
        vec![ct(), ("mesos-stream-id", "abc".into())],
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    // A call from a framework nobody subscribed: 403.
    let r = post(
        vec![ct(), ("mesos-stream-id", "abc".into())],
        r#"{"type":"REVIVE","framework_id":{"value":"nobody"}}"#,
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // A subscribed framework's calls need its stream id.
    let f = Framework::subscribe(&b.endpoint, "bad-calls").await;
    let body = format!(
        r#"{{"type":"REVIVE","framework_id":{{"value":"{}"}}}}"#,
        f.id
    );
    let r = raw(
        &b.endpoint,
        "POST",
        PATH,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = raw(
        &b.endpoint,
        "POST",
        PATH,
        &[
            ("content-type", "application/json"),
            ("mesos-stream-id", "wrong"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(f.call(serde_json::from_str(&body).unwrap()).await, 202);

    // An ACCEPT of an offer that does not exist: its tasks are dropped (TASK_LOST for a
    // framework that is not partition-aware), with REASON_INVALID_OFFERS, and nothing runs.
    let mut f = f;
    let accept = json!({
        "type": "ACCEPT",
        "framework_id": {"value": f.id},
        "accept": {
            "offer_ids": [{"value": "00000000000000000000000000000bad"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
                command_task("orphan", &json!({"value": "nowhere"}), "true")
            ]}}]
        }
    });
    assert_eq!(f.call(accept).await, 202);
    let dropped = f.update("orphan", "TASK_LOST").await;
    assert_eq!(dropped["reason"], "REASON_INVALID_OFFERS");
    assert_eq!(dropped["source"], "SOURCE_MASTER");
    let r = ecs_op(&b.endpoint, "ListTasks", "{}").await.json();
    assert_eq!(r["taskArns"], json!([]));
}

#[tokio::test]
async fn an_offer_holds_its_resources_until_declined() {
    let (b, agent) = setup().await;
    let mut f = Framework::subscribe(&b.endpoint, "holder").await;
    let offer = f.offer().await;
    assert_eq!(
        offer["agent_id"]["value"],
        agent.instance_arn.rsplit('/').next().unwrap()
    );
    // The host the agent registered its endpoint at (it listens on 127.0.0.1).
    assert_eq!(offer["hostname"], "127.0.0.1", "{offer}");
    let resources = offer["resources"].as_array().unwrap();
    let get = |name: &str| {
        resources
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(get("cpus")["scalar"]["value"], 1.0);
    assert_eq!(get("mem")["scalar"]["value"], 2048.0);
    assert_eq!(
        get("ports")["ranges"]["range"][0],
        json!({"begin": 31000, "end": 31099})
    );

    // While the offer is outstanding, RunTask cannot take what it holds.
    let r = ecs_op(
        &b.endpoint,
        "RegisterTaskDefinition",
        r#"{"family":"web","containerDefinitions":[{"name":"w","image":"busybox","cpu":256,"memory":64,"dockerLabels":{"berth.runtime":"hollow"}}]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = ecs_op(&b.endpoint, "RunTask", r#"{"taskDefinition":"web"}"#)
        .await
        .json();
    assert_eq!(r["failures"][0]["reason"], "RESOURCE:CPU", "{r}");

    // Declined for 60 s: the resources are back for RunTask, and not re-offered to it.
    let status = f
        .call(json!({
            "type": "DECLINE",
            "framework_id": {"value": f.id},
            "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 60}}
        }))
        .await;
    assert_eq!(status, 202);
    eventually(Duration::from_secs(10), || async {
        let r = ecs_op(&b.endpoint, "RunTask", r#"{"taskDefinition":"web"}"#)
            .await
            .json();
        if r["failures"].as_array().is_some_and(Vec::is_empty) {
            Ok(())
        } else {
            Err(format!("RunTask never got the declined resources: {r}"))
        }
    })
    .await;
    let again = tokio::time::timeout(Duration::from_secs(2), f.next("OFFERS", |_| true)).await;
    assert!(again.is_err(), "re-offered within refuse_seconds");
    // REVIVE clears the filter.
    let status = f
        .call(json!({"type": "REVIVE", "framework_id": {"value": f.id}}))
        .await;
    assert_eq!(status, 202);
    f.offer().await;
}

/// Mesos never times an offer out unless the operator sets `--offer_timeout`, and neither
/// does berth: an ACCEPT sent 12 s after its offer (past the fixed 10 s berth used to rescind
/// at) still launches.
#[tokio::test]
async fn without_an_offer_timeout_a_late_accept_still_launches() {
    let (b, _agent) = setup_with(&["--runtime", "hollow"]).await;
    let mut f = Framework::subscribe(&b.endpoint, "unhurried").await;
    let offer = f.offer().await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let task = command_task("late", &offer["agent_id"], "sleep 600");
    assert_eq!(f.launch(&offer, vec![task]).await, 202);
    f.update("late", "TASK_RUNNING").await;
    assert!(
        !f.seen.iter().any(|e| e["type"] == "RESCIND"),
        "an offer was rescinded: {:#?}",
        f.seen
    );
}

/// With `--mesos-offer-timeout`, an unanswered offer is rescinded once it is that old, an
/// ACCEPT of it afterwards is told its offers are no longer valid, and the instance is offered
/// again.
#[tokio::test]
async fn with_an_offer_timeout_an_unanswered_offer_is_rescinded() {
    let (b, _agent) =
        setup_server_with(&["--mesos-offer-timeout", "1"], &["--runtime", "hollow"]).await;
    let mut f = Framework::subscribe(&b.endpoint, "slow").await;
    let offer = f.offer().await;
    f.next("RESCIND", |e| e["rescind"]["offer_id"] == offer["id"])
        .await;
    let task = command_task("late", &offer["agent_id"], "sleep 600");
    assert_eq!(f.launch(&offer, vec![task]).await, 202);
    let lost = f.update("late", "TASK_LOST").await;
    assert_eq!(lost["message"], "Some offers are no longer valid");
    assert_eq!(lost["reason"], "REASON_INVALID_OFFERS");
    let again = f.offer().await;
    assert_eq!(again["agent_id"], offer["agent_id"]);
    assert_ne!(again["id"], offer["id"]);
}

#[tokio::test]
async fn command_tasks_run_finish_fail_and_are_killed() {
    let (b, _agent) = setup().await;
    let mut f = Framework::subscribe(&b.endpoint, "runner").await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    let status = f
        .launch(
            &offer,
            vec![
                command_task("ok", &agent, "echo hello; exit 0"),
                command_task("bad", &agent, "exit 3"),
                command_task("long", &agent, "sleep 600"),
            ],
        )
        .await;
    assert_eq!(status, 202);

    let running = f.update("ok", "TASK_RUNNING").await;
    assert_eq!(running["agent_id"], agent);
    let finished = f.update("ok", "TASK_FINISHED").await;
    assert_eq!(finished["agent_id"], agent);
    let uuid = finished["uuid"]
        .as_str()
        .expect("an agent's update carries a uuid");
    let failed = f.update("bad", "TASK_FAILED").await;
    assert_eq!(failed["message"], "Command exited with status 3");
    assert_eq!(failed["reason"], "REASON_COMMAND_EXECUTOR_FAILED");
    f.update("long", "TASK_RUNNING").await;

    // Acknowledged updates are not sent again.
    let ack = f
        .call(json!({
            "type": "ACKNOWLEDGE",
            "framework_id": {"value": f.id},
            "acknowledge": {"agent_id": agent, "task_id": {"value": "ok"}, "uuid": uuid}
        }))
        .await;
    assert_eq!(ack, 202);

    // The tasks are ordinary berth tasks.
    let stopped = tasks(&b, "STOPPED").await;
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    assert!(
        stopped.iter().all(|t| t["group"] == "mesos:runner"),
        "{stopped:?}"
    );

    // KILL a running task; KILL an unknown one.
    let id = f.id.clone();
    let kill = |task: &str| json!({"type": "KILL", "framework_id": {"value": id}, "kill": {"task_id": {"value": task}}});
    assert_eq!(f.call(kill("long")).await, 202);
    f.update("long", "TASK_KILLED").await;
    assert_eq!(f.call(kill("nope")).await, 202);
    let lost = f.update("nope", "TASK_LOST").await;
    assert!(lost.get("uuid").is_none(), "{lost}");

    // RECONCILE: the latest state, no uuid.
    let r = f
        .call(json!({
            "type": "RECONCILE",
            "framework_id": {"value": f.id},
            "reconcile": {"tasks": [{"task_id": {"value": "bad"}}, {"task_id": {"value": "ghost"}}]}
        }))
        .await;
    assert_eq!(r, 202);
    let s = f.update("bad", "TASK_FAILED").await;
    let s = if s["reason"] == "REASON_RECONCILIATION" {
        s
    } else {
        f.update("bad", "TASK_FAILED").await
    };
    assert_eq!(s["reason"], "REASON_RECONCILIATION");
    assert!(s.get("uuid").is_none());
    let ghost = f.update("ghost", "TASK_LOST").await;
    assert_eq!(ghost["reason"], "REASON_RECONCILIATION");
}

#[tokio::test]
async fn teardown_kills_the_frameworks_tasks_and_forgets_it() {
    let (b, _agent) = setup().await;
    let mut f = Framework::subscribe(&b.endpoint, "short-lived").await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    assert_eq!(
        f.launch(&offer, vec![command_task("t", &agent, "sleep 600")])
            .await,
        202
    );
    f.update("t", "TASK_RUNNING").await;
    assert_eq!(
        f.call(json!({"type": "TEARDOWN", "framework_id": {"value": f.id}}))
            .await,
        202
    );
    none_running(&b, Duration::from_secs(20)).await;
    // It is gone: its calls are refused.
    assert_eq!(
        f.call(json!({"type": "REVIVE", "framework_id": {"value": f.id}}))
            .await,
        403
    );
}

/// A framework that dies and comes back within its failover timeout finds its tasks running
/// and is told their state again; one that stays away longer has them killed.
#[tokio::test]
async fn a_framework_fails_over_within_its_timeout_and_loses_its_tasks_after() {
    let (b, _agent) = setup_with(&["--runtime", "hollow"]).await;
    let info = json!({"user": "root", "name": "failing-over", "failover_timeout": 3.0});
    let mut f = Framework::subscribe_with(&b.endpoint, info.clone()).await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    assert_eq!(
        f.launch(&offer, vec![command_task("keep", &agent, "sleep 600")])
            .await,
        202
    );
    f.update("keep", "TASK_RUNNING").await;
    let id = f.id.clone();
    drop(f);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back, with its id: the same framework, its task still running and reported again.
    let mut info_again = info.clone();
    info_again["id"] = json!({"value": id});
    let mut f = Framework::subscribe_with(&b.endpoint, info_again.clone()).await;
    assert_eq!(f.id, id);
    f.update("keep", "TASK_RUNNING").await;
    assert_eq!(tasks(&b, "RUNNING").await.len(), 1);

    // Gone for longer than failover_timeout: its task is killed and it is forgotten.
    drop(f);
    none_running(&b, Duration::from_secs(20)).await;
    let stopped = tasks(&b, "STOPPED").await;
    assert_eq!(
        stopped[0]["stoppedReason"], "Framework failover timeout",
        "{stopped:?}"
    );
}

/// A framework that stops reading its event stream while the server has more and more to tell
/// it (here: RECONCILE calls for a thousand unknown tasks each, one UPDATE per task) is not
/// buffered for without end: once its stream's queue is full the stream is closed, its calls
/// are refused as a stranger's, and it is disconnected as if its connection had dropped, so
/// its failover timeout runs and its task is killed.
#[tokio::test]
async fn a_framework_that_stops_reading_its_events_is_disconnected() {
    let (b, _agent) = setup_with(&["--runtime", "hollow"]).await;
    let info = json!({"user": "root", "name": "stalled", "failover_timeout": 1.0});
    let mut f = Framework::subscribe_with(&b.endpoint, info).await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    assert_eq!(
        f.launch(&offer, vec![command_task("kept", &agent, "sleep 600")])
            .await,
        202
    );
    f.update("kept", "TASK_RUNNING").await;
    f.stop_reading();

    let ghosts: Vec<Value> = (0..1000)
        .map(|i| json!({"task_id": {"value": format!("ghost-{i:04}-{}", "x".repeat(80))}}))
        .collect();
    let reconcile = json!({
        "type": "RECONCILE",
        "framework_id": {"value": f.id},
        "reconcile": {"tasks": ghosts}
    });
    // Socket buffers take some tens of thousands of events before the server's queue fills;
    // an unbounded queue would take these 300,000 (and any number more).
    let mut calls = 0;
    loop {
        let status = f.call(reconcile.clone()).await;
        calls += 1;
        if status == 403 {
            break;
        }
        assert_eq!(status, 202);
        assert!(
            calls < 300,
            "still subscribed with {calls}000 events unread: the server queues them without bound"
        );
    }

    none_running(&b, Duration::from_secs(30)).await;
    let stopped = tasks(&b, "STOPPED").await;
    assert_eq!(
        stopped[0]["stoppedReason"], "Framework failover timeout",
        "{stopped:?}"
    );
}

/// A framework launching on every offer and RunTask callers compete for one small instance:
/// nothing is ever over-committed, and each side sees the other's tasks.
#[tokio::test]
async fn frameworks_and_run_task_never_over_commit_an_instance() {
    let (b, agent) = setup_with(&["--runtime", "hollow"]).await;
    let r = ecs_op(
        &b.endpoint,
        "RegisterTaskDefinition",
        r#"{"family":"web","containerDefinitions":[{"name":"w","image":"busybox","cpu":128,"memory":64,"dockerLabels":{"berth.runtime":"hollow"}}]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let mut f = Framework::subscribe(&b.endpoint, "greedy").await;
    let endpoint = b.endpoint.clone();
    let run_tasks = tokio::spawn(async move {
        let mut placed = 0;
        for _ in 0..40 {
            let r = ecs_op(&endpoint, "RunTask", r#"{"taskDefinition":"web"}"#)
                .await
                .json();
            match r["failures"].as_array().map(Vec::len) {
                Some(0) => placed += 1,
                _ => assert_eq!(r["failures"][0]["reason"], "RESOURCE:CPU", "{r}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        placed
    });
    // The framework takes 0.125 cpus per task from every offer it gets, as much as fits.
    let mut launched = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let Ok(offer) = tokio::time::timeout(Duration::from_secs(1), f.offer()).await else {
            continue;
        };
        let cpus = offer["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "cpus")
            .unwrap()["scalar"]["value"]
            .as_f64()
            .unwrap();
        let n = ((cpus / 0.125).floor() as usize).min(3);
        let tasks: Vec<Value> = (0..n)
            .map(|k| {
                let mut t =
                    command_task(&format!("t{launched}-{k}"), &offer["agent_id"], "sleep 600");
                t["resources"][0]["scalar"]["value"] = json!(0.125);
                t
            })
            .collect();
        launched += n;
        assert_eq!(f.launch(&offer, tasks).await, 202);
    }
    let placed = run_tasks.await.unwrap();
    let r = ecs_op(
        &b.endpoint,
        "DescribeContainerInstances",
        &json!({"containerInstances": [agent.instance_arn]}).to_string(),
    )
    .await
    .json();
    let i = &r["containerInstances"][0];
    let remaining = i["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "CPU")
        .unwrap()["integerValue"]
        .as_i64()
        .unwrap();
    assert!(remaining >= 0, "over-committed: {i}");
    let live = i["runningTasksCount"].as_i64().unwrap() + i["pendingTasksCount"].as_i64().unwrap();
    let running = tasks(&b, "RUNNING").await;
    let cpu: i64 = running
        .iter()
        .map(|t| {
            let c = &t["containers"][0]["cpu"];
            c.as_str()
                .and_then(|c| c.parse::<i64>().ok())
                .or_else(|| c.as_i64())
                .unwrap_or_else(|| panic!("every task reserves CPU: {t}"))
        })
        .sum();
    assert!(cpu <= 1024, "tasks hold {cpu} CPU units of 1024");
    assert_eq!(running.len() as i64, live);
    let mesos = running
        .iter()
        .filter(|t| t["group"] == "mesos:greedy")
        .count();
    assert!(
        placed > 0 && mesos > 0,
        "both sides got capacity: {placed} RunTask, {mesos} Mesos"
    );
    assert_eq!(running.len(), placed + mesos);
}

/// `--mesos-listen` serves the scheduler API on a second address, and `--mesos-cluster`
/// chooses the cluster frameworks schedule on.
#[tokio::test]
async fn a_second_listener_and_another_cluster() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let b = Berth::start_with(&["--mesos-listen", &listen, "--mesos-cluster", "frameworks"]);
    let r = ecs_op(
        &b.endpoint,
        "CreateCluster",
        r#"{"clusterName":"frameworks"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let _agent = AgentProcess::start(&b.endpoint, "frameworks", &["--runtime", "hollow"]);
    let mesos = format!("http://{listen}");
    b.also_at(&mesos);
    let r = raw(&mesos, "GET", "/version", &[], b"").await;
    assert_eq!(r.json()["version"], "1.11.0");
    let mut f = Framework::subscribe(&mesos, "elsewhere").await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    assert_eq!(
        f.launch(&offer, vec![command_task("x", &agent, "sleep 600")])
            .await,
        202
    );
    f.update("x", "TASK_RUNNING").await;
    let r = ecs_op(&b.endpoint, "ListTasks", r#"{"cluster":"frameworks"}"#)
        .await
        .json();
    assert_eq!(r["taskArns"].as_array().unwrap().len(), 1, "{r}");
}

/// A `container.docker` task runs on the Docker Engine: bridge networking with the host port
/// the framework took from its offer, answering HTTP there, and KILL stops the container.
#[tokio::test]
async fn a_docker_task_runs_in_a_container_with_its_port() {
    if !common::docker::docker_or_skip() {
        return;
    }
    let cluster = format!("mesos-docker-{}", std::process::id());
    let _cleanup = common::docker::Cleanup {
        cluster: cluster.clone(),
    };
    let b = Berth::start_with(&["--mesos-cluster", &cluster]);
    let r = ecs_op(
        &b.endpoint,
        "CreateCluster",
        &json!({"clusterName": cluster}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let _agent = AgentProcess::start(&b.endpoint, &cluster, &[]);
    let mut f = Framework::subscribe(&b.endpoint, "containers").await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    let port = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ports")
        .unwrap()["ranges"]["range"][0]["begin"]
        .as_u64()
        .unwrap();
    let task = json!({
        "name": "web",
        "task_id": {"value": "web"},
        "agent_id": agent,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": port, "end": port}]}}
        ],
        "command": {"value": "echo mesos > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"},
        "container": {
            "type": "DOCKER",
            "docker": {
                "image": "berth-test/busybox:latest",
                "network": "BRIDGE",
                "port_mappings": [{"host_port": port, "container_port": 8080, "protocol": "tcp"}]
            }
        }
    });
    assert_eq!(f.launch(&offer, vec![task]).await, 202);
    f.update("web", "TASK_RUNNING").await;
    // RUNNING means the container started, not that httpd listens yet: until it does, Docker's
    // port proxy accepts and closes the connection.
    let body = eventually(Duration::from_secs(20), || async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .map_err(|e| format!("port {port}: {e}"))?;
        conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .map_err(|e| format!("port {port}: {e}"))?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)
            .await
            .map_err(|e| format!("port {port}: {e}"))?;
        match answer.split_once("\r\n\r\n") {
            Some((head, body)) if head.split(' ').nth(1) == Some("200") => Ok(body.to_owned()),
            _ => Err(format!("port {port} answered {answer:?}")),
        }
    })
    .await;
    assert_eq!(body.trim(), "mesos");
    let kill = json!({"type": "KILL", "framework_id": {"value": f.id}, "kill": {"task_id": {"value": "web"}}});
    assert_eq!(f.call(kill).await, 202);
    f.update("web", "TASK_KILLED").await;
}

/// Frameworks are state: after the server restarts, one that re-subscribes with its id is the
/// same framework with its task still running, and one that does not come back loses its
/// tasks once the new leader's grace to re-subscribe and its failover timeout have passed.
#[tokio::test]
async fn frameworks_outlive_a_server_restart() {
    let (mut b, _agent) = setup_with(&["--runtime", "hollow"]).await;
    let back_info = json!({"user": "root", "name": "comes-back", "failover_timeout": 600.0});
    let gone_info = json!({"user": "root", "name": "stays-away", "failover_timeout": 1.0});
    let mut back = Framework::subscribe_with(&b.endpoint, back_info.clone()).await;
    let offer = back.offer().await;
    let agent = offer["agent_id"].clone();
    let mut one = command_task("back-task", &agent, "sleep 600");
    one["resources"][0]["scalar"]["value"] = json!(0.25);
    // What is left of the agent is refused for an hour: offers do not time out, so an offer
    // of it to `back` would otherwise keep it from `gone`.
    assert_eq!(back.launch_refusing(&offer, vec![one], 3600.0).await, 202);
    back.update("back-task", "TASK_RUNNING").await;
    let mut gone = Framework::subscribe_with(&b.endpoint, gone_info).await;
    let offer = gone.offer().await;
    assert_eq!(
        gone.launch(&offer, vec![command_task("gone-task", &agent, "sleep 600")])
            .await,
        202
    );
    gone.update("gone-task", "TASK_RUNNING").await;
    let back_id = back.id.clone();
    drop(back);
    drop(gone);

    b.restart();
    let mut info = back_info.clone();
    info["id"] = json!({"value": back_id});
    let mut back = Framework::subscribe_with(&b.endpoint, info).await;
    assert_eq!(back.id, back_id);
    back.update("back-task", "TASK_RUNNING").await;

    eventually(Duration::from_secs(40), || async {
        let running = tasks(&b, "RUNNING").await;
        let groups: Vec<&str> = running.iter().filter_map(|t| t["group"].as_str()).collect();
        if groups == ["mesos:comes-back"] {
            Ok(())
        } else {
            Err(format!(
                "expected only the returning framework's task to run: {groups:?}"
            ))
        }
    })
    .await;
}

/// Capacity is shared in DRF order, counting what is offered: two frameworks that decline
/// everything at once on four equal instances are each offered about half, over and over, not
/// all of it to one.
#[tokio::test]
async fn offers_are_shared_between_frameworks() {
    let b = Berth::start();
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"default"}"#).await;
    assert_eq!(r.status, 200);
    let _agents: Vec<AgentProcess> = (0..4)
        .map(|_| AgentProcess::start(&b.endpoint, "default", &["--runtime", "hollow"]))
        .collect();
    let mut frameworks = [
        Framework::subscribe(&b.endpoint, "first").await,
        Framework::subscribe(&b.endpoint, "second").await,
    ];
    let mut got = [0usize; 2];
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for (k, f) in frameworks.iter_mut().enumerate() {
            let Ok(e) =
                tokio::time::timeout(Duration::from_millis(100), f.next("OFFERS", |_| true)).await
            else {
                continue;
            };
            let ids: Vec<Value> = e["offers"]["offers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].clone())
                .collect();
            got[k] += ids.len();
            let decline = json!({
                "type": "DECLINE",
                "framework_id": {"value": f.id},
                "decline": {"offer_ids": ids, "filters": {"refuse_seconds": 0}}
            });
            assert_eq!(f.call(decline).await, 202);
        }
    }
    let (a, b) = (got[0] as f64, got[1] as f64);
    assert!(a >= 4.0 && b >= 4.0, "offers per framework: {got:?}");
    assert!(a / b < 2.0 && b / a < 2.0, "unfair shares: {got:?}");
}

/// A framework keeps its tasks across a leader change: when the leader its stream was on dies,
/// a surviving server sends it to the new leader (307, as a Mesos master that is not leading
/// does), where it re-subscribes with its framework id and hears about its running task again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_follows_the_leader_by_resubscribing() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = common::cluster::start_cluster(root.path(), 3);
    let leader = common::cluster::leader_of(&nodes).await as usize;
    let endpoint =
        |nodes: &[Option<Berth>], n: usize| nodes[n - 1].as_ref().unwrap().endpoint.clone();
    let first = endpoint(&nodes, leader);
    let r = ecs_op(&first, "CreateCluster", r#"{"clusterName":"default"}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let others: Vec<String> = (1..=3)
        .filter(|n| *n != leader)
        .map(|n| endpoint(&nodes, n))
        .collect();
    let others = others.join(",");
    let _agent = AgentProcess::start(
        &first,
        "default",
        &["--runtime", "hollow", "--server", &others],
    );

    let info = json!({"user": "root", "name": "follower", "failover_timeout": 600.0});
    let mut f = Framework::subscribe_with(&first, info.clone()).await;
    let offer = f.offer().await;
    let agent = offer["agent_id"].clone();
    assert_eq!(
        f.launch(&offer, vec![command_task("kept", &agent, "sleep 600")])
            .await,
        202
    );
    f.update("kept", "TASK_RUNNING").await;
    let id = f.id.clone();
    drop(f);

    nodes[leader - 1].as_mut().unwrap().kill();
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    let survivor_url = endpoint(&nodes, survivor);
    // The survivor names the new leader once there is one (the other survivor: 307 before
    // the call is even read; itself: the empty call is refused as malformed). Until the
    // survivors have elected one, it may still name the dead leader: a framework retries.
    let find_leader = || {
        eventually(Duration::from_secs(20), || async {
            let r = raw(
                &survivor_url,
                "POST",
                PATH,
                &[("content-type", "application/json")],
                b"{}",
            )
            .await;
            match r.status {
                307 => {
                    let to = r.header("location").unwrap().trim_end_matches(PATH);
                    if to == first {
                        Err("still sent to the dead leader".to_owned())
                    } else {
                        Ok(to.to_owned())
                    }
                }
                400 => Ok(survivor_url.clone()),
                other => Err(format!("{other}: {}", String::from_utf8_lossy(&r.body))),
            }
        })
    };

    let mut again = info.clone();
    again["id"] = json!({"value": id});
    // After a failover a framework reconciles, as with a Mesos master: the new leader answers
    // with the task's state. On a loaded machine the two survivors may trade leadership once
    // more before settling; a framework told 307 then follows again, as it would on Mesos.
    let mut attempts = 0;
    let mut f = loop {
        attempts += 1;
        let location = find_leader().await;
        let f = Framework::subscribe_with(&location, again.clone()).await;
        assert_eq!(f.id, id, "the same framework");
        let r = f
            .call(json!({
                "type": "RECONCILE",
                "framework_id": {"value": id},
                "reconcile": {"tasks": [{"task_id": {"value": "kept"}}]}
            }))
            .await;
        if r == 202 {
            break f;
        }
        assert_eq!(
            r, 307,
            "RECONCILE is accepted, or sent on to a newer leader"
        );
        assert!(attempts < 5, "leadership never settled");
    };
    f.update("kept", "TASK_RUNNING").await;
    let offer = f.offer().await;
    assert_eq!(offer["agent_id"], agent, "offers go on from the new leader");
}
