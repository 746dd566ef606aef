//! The server's side of the agent protocol, driven by hand (no agent process, no Docker): an
//! agent joined with a token and signing with its own credential, the assignment long-poll and
//! its answers, heartbeats and the connected → disconnected → lost transitions, health
//! reports, the logs endpoint's errors, and the TLS between the server and an agent's log
//! endpoint.

mod common;

use std::time::{Duration, Instant};

use common::{Berth, HandAgent, ecs_op, eventually, raw};
use serde_json::{Value, json};

/// Calls an ECS operation and returns its JSON answer, failing on an error answer.
async fn ok(b: &Berth, op: &str, body: Value) -> Value {
    let r = ecs_op(&b.endpoint, op, &body.to_string()).await;
    assert_eq!(r.status, 200, "{op}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A cluster `c` with one instance, joined and registered by its agent, and a task definition
/// `app`. The agent's log endpoint (port 9, discard) answers nothing.
async fn setup(b: &Berth) -> HandAgent {
    ok(b, "CreateCluster", json!({"clusterName": "c"})).await;
    ok(
        b,
        "RegisterTaskDefinition",
        json!({"family": "app", "containerDefinitions": [
            {"name": "web", "image": "busybox", "memory": 32, "portMappings": [{"containerPort": 80}]},
            {"name": "side", "image": "busybox", "memory": 32, "essential": false}
        ]}),
    )
    .await;
    HandAgent::join(&b.endpoint, "c", "https://127.0.0.1:9").await
}

async fn run(b: &Berth) -> String {
    let r = ok(
        b,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "app"}),
    )
    .await;
    assert_eq!(r["failures"], json!([]), "{r}");
    r["tasks"][0]["taskArn"].as_str().unwrap().to_owned()
}

fn encode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

/// A poll for `instance`, signed with `agent`'s credential.
async fn poll(b: &Berth, agent: &HandAgent, instance: &str, since: u64, wait: u64) -> (u16, Value) {
    let path = format!(
        "/v1/agent/poll?cluster=c&instance={}&since={since}&wait={wait}",
        encode(instance)
    );
    let r = agent.call(&b.endpoint, "GET", &path, b"").await;
    (r.status, r.json())
}

async fn task(b: &Berth, arn: &str) -> Value {
    let r = ok(b, "DescribeTasks", json!({"cluster": "c", "tasks": [arn]})).await;
    r["tasks"][0].clone()
}

async fn instance(b: &Berth, arn: &str) -> Value {
    let r = ok(
        b,
        "DescribeContainerInstances",
        json!({"cluster": "c", "containerInstances": [arn]}),
    )
    .await;
    r["containerInstances"][0].clone()
}

#[tokio::test]
async fn the_poll_answers_assignments_and_wakes_on_change() {
    let b = Berth::start();
    let agent = setup(&b).await;
    let inst = agent.instance_arn.clone();

    let (status, first) = poll(&b, &agent, &inst, 0, 0).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["instanceStatus"], "ACTIVE");
    assert_eq!(first["tasks"], json!([]));
    let since = first["version"].as_u64().unwrap();

    // Nothing changed: the poll waits its full time.
    let t = Instant::now();
    let (_, idle) = poll(&b, &agent, &inst, since, 1).await;
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(idle["version"].as_u64(), Some(since));

    // A placement wakes a waiting poll at once, with everything the agent needs.
    let waiting = {
        let endpoint = b.endpoint.clone();
        let inst = inst.clone();
        let agent = HandAgent {
            instance_arn: inst.clone(),
            credentials: agent.credentials.clone(),
        };
        tokio::spawn(async move {
            let t = Instant::now();
            let path = format!(
                "/v1/agent/poll?cluster=c&instance={}&since={since}&wait=30",
                encode(&inst)
            );
            let r = agent.call(&endpoint, "GET", &path, b"").await;
            (t.elapsed(), r.json())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let arn = run(&b).await;
    let (took, woke) = waiting.await.unwrap();
    assert!(took < Duration::from_secs(5), "woken after {took:?}");
    let a = &woke["tasks"][0];
    assert_eq!(a["taskArn"], arn.as_str());
    assert_eq!(a["desiredStatus"], "RUNNING");
    assert_eq!(a["lastStatus"], "PENDING");
    assert_eq!(a["started"], false);
    assert_eq!(a["taskDefinition"]["family"], "app");
    assert_eq!(
        a["taskDefinition"]["containerDefinitions"][0]["name"],
        "web"
    );
    assert_eq!(a["ports"][0]["containerName"], "web");
    assert_eq!(a["ports"][0]["containerPort"], 80);
    let host_port = a["ports"][0]["hostPort"].as_u64().unwrap();
    assert!(
        (61000..=65535).contains(&host_port),
        "dynamic port {host_port}"
    );
    let since = woke["version"].as_u64().unwrap();
    assert!(since > 0);

    // StopTask: the next poll carries desiredStatus STOPPED.
    ok(&b, "StopTask", json!({"cluster": "c", "task": arn})).await;
    let (_, stopping) = poll(&b, &agent, &inst, since, 10).await;
    assert_eq!(stopping["tasks"][0]["desiredStatus"], "STOPPED");

    // Once the agent reports it STOPPED, it is no longer assigned.
    let r = agent
        .ecs(
            &b.endpoint,
            "SubmitTaskStateChange",
            json!({"cluster": "c", "task": arn, "status": "STOPPED"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (_, done) = poll(&b, &agent, &inst, 0, 0).await;
    assert_eq!(done["tasks"], json!([]));
}

#[tokio::test]
async fn bad_polls_are_refused_plainly() {
    let b = Berth::start();
    let agent = setup(&b).await;
    let inst = agent.instance_arn.clone();
    // Another instance than its own: refused (an agent polls for itself only).
    let unknown = inst.replace(
        inst.rsplit('/').next().unwrap(),
        "0123456789abcdef0123456789abcdef",
    );
    let (status, body) = poll(&b, &agent, &unknown, 0, 0).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["__type"], "AccessDeniedException");

    let r = agent
        .call(&b.endpoint, "GET", "/v1/agent/poll?cluster=c", b"")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("instance"));
    let r = agent
        .call(
            &b.endpoint,
            "GET",
            "/v1/agent/poll?cluster=c&instance=nope&since=x",
            b"",
        )
        .await;
    assert_eq!(r.status, 400);

    // Its own instance in another cluster's name: refused too.
    ok(&b, "CreateCluster", json!({"clusterName": "other"})).await;
    let path = format!(
        "/v1/agent/poll?cluster=other&instance={}",
        encode(inst.rsplit('/').next().unwrap())
    );
    let r = agent.call(&b.endpoint, "GET", &path, b"").await;
    assert_eq!(r.status, 403);

    // Its own instance once deregistered: the poll says so (the agent stops).
    ok(
        &b,
        "DeregisterContainerInstance",
        json!({"cluster": "c", "containerInstance": inst, "force": true}),
    )
    .await;
    let (status, body) = poll(&b, &agent, &inst, 0, 0).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instanceStatus"], "INACTIVE");
}

#[tokio::test]
async fn a_silent_agent_is_disconnected_then_lost() {
    let b = Berth::start_with(&["--agent-heartbeat-timeout", "1", "--agent-lost-after", "2"]);
    let agent = setup(&b).await;
    let inst = agent.instance_arn.clone();
    let arn = run(&b).await;
    ok(
        &b,
        "SubmitTaskStateChange",
        json!({"cluster": "c", "task": arn, "status": "RUNNING"}),
    )
    .await;

    eventually(Duration::from_secs(15), "agentConnected false", || async {
        instance(&b, &inst).await["agentConnected"] == false
    })
    .await;
    // No placements on a disconnected instance.
    let r = ok(
        &b,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "app"}),
    )
    .await;
    assert_eq!(r["failures"][0]["reason"], "AGENT", "{r}");
    assert_eq!(task(&b, &arn).await["lastStatus"], "RUNNING");

    // Heard from again before the grace period ends: connected, tasks untouched.
    let (status, _) = poll(&b, &agent, &inst, 0, 0).await;
    assert_eq!(status, 200);
    assert_eq!(instance(&b, &inst).await["agentConnected"], true);
    assert_eq!(task(&b, &arn).await["lastStatus"], "RUNNING");

    // Silent for good: disconnected, then after the grace period its task is STOPPED.
    eventually(
        Duration::from_secs(20),
        "the task STOPPED as lost",
        || async { task(&b, &arn).await["lastStatus"] == "STOPPED" },
    )
    .await;
    let t = task(&b, &arn).await;
    assert_eq!(t["desiredStatus"], "STOPPED");
    assert_eq!(t["stopCode"], "TerminationNotice");
    let reason = t["stoppedReason"].as_str().unwrap();
    assert!(reason.contains("stopped sending heartbeats"), "{reason}");
    assert_eq!(instance(&b, &inst).await["agentConnected"], false);
    assert_eq!(instance(&b, &inst).await["runningTasksCount"], 0);
}

#[tokio::test]
async fn polling_keeps_an_agent_connected() {
    let b = Berth::start_with(&["--agent-heartbeat-timeout", "2", "--agent-lost-after", "1"]);
    let agent = setup(&b).await;
    let inst = agent.instance_arn.clone();
    let arn = run(&b).await;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let (status, _) = poll(&b, &agent, &inst, u64::MAX, 1).await;
        assert_eq!(status, 200);
        assert_eq!(instance(&b, &inst).await["agentConnected"], true);
    }
    assert_eq!(task(&b, &arn).await["lastStatus"], "PENDING");
}

#[tokio::test]
async fn health_reports_reach_the_task() {
    let b = Berth::start();
    let agent = setup(&b).await;
    let arn = run(&b).await;
    let report = |container: &str, health: &str| {
        json!({"cluster": "c", "task": arn, "containers": [
            {"containerName": container, "healthStatus": health}
        ]})
        .to_string()
    };
    let post = |body: String| {
        let endpoint = b.endpoint.clone();
        let agent = &agent;
        async move {
            agent
                .call(&endpoint, "POST", "/v1/agent/health", body.as_bytes())
                .await
        }
    };
    assert_eq!(post(report("web", "HEALTHY")).await.status, 204);
    let t = task(&b, &arn).await;
    assert_eq!(t["containers"][0]["healthStatus"], "HEALTHY");
    assert_eq!(t["healthStatus"], "HEALTHY", "the only essential container");
    assert_eq!(post(report("web", "UNHEALTHY")).await.status, 204);
    assert_eq!(task(&b, &arn).await["healthStatus"], "UNHEALTHY");

    let r = post(report("nope", "HEALTHY")).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("nope"));
    let r = post(report("web", "GREAT")).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("GREAT"));
    let r = post("{not json".into()).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        task(&b, &arn).await["healthStatus"],
        "UNHEALTHY",
        "unchanged"
    );
}

#[tokio::test]
async fn the_logs_endpoint_explains_what_it_cannot_do() {
    let b = Berth::start();
    let _agent = setup(&b).await;
    let arn = run(&b).await;
    let id = arn.rsplit('/').next().unwrap();
    let get = |path: String| {
        let endpoint = b.endpoint.clone();
        async move { raw(&endpoint, "GET", &path, &[], b"").await }
    };
    let r = get(format!("/v1/tasks/{id}/logs?cluster=c")).await;
    assert_eq!(r.status, 400, "two containers: which one?");
    assert!(r.json()["message"].as_str().unwrap().contains("container="));
    let r = get(format!("/v1/tasks/{id}/logs?cluster=c&container=nope")).await;
    assert_eq!(r.status, 404);
    let r = get("/v1/tasks/0123456789abcdef0123456789abcdef/logs?cluster=c".into()).await;
    assert_eq!(r.status, 404);
    // The instance's agent endpoint (port 9, discard) does not answer: a gateway error.
    let r = get(format!("/v1/tasks/{id}/logs?cluster=c&container=web")).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    // A whole task ARN names its cluster, slashes and all.
    let r = get(format!("/v1/tasks/{arn}/logs?container=web")).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let r = get(format!("/v1/tasks/{arn}/logs?cluster=other&container=web")).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = get(format!("/v1/tasks/{id}/nope")).await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
}

/// Container output never crosses the network in the clear: the agent serves its log endpoint
/// over TLS with a certificate it registered by hash, the server reads logs through it, and
/// plain HTTP to the agent gets no HTTP answer.
#[tokio::test]
async fn an_agent_serves_logs_over_tls_with_the_certificate_it_registered() {
    let b = Berth::start();
    ok(&b, "CreateCluster", json!({"clusterName": "c"})).await;
    let listen = format!("127.0.0.1:{}", common::cluster::free_port());
    let _agent = common::agent::AgentProcess::start(
        &b.endpoint,
        "c",
        &["--runtime", "hollow", "--listen", &listen],
    );
    ok(
        &b,
        "RegisterTaskDefinition",
        json!({"family": "ghost", "containerDefinitions": [
            {"name": "web", "image": "ghost", "memory": 64}]}),
    )
    .await;
    let r = ok(
        &b,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "ghost"}),
    )
    .await;
    let arn = r["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the task RUNNING", || async {
        task(&b, &arn).await["lastStatus"] == "RUNNING"
    })
    .await;
    let id = arn.rsplit('/').next().unwrap();
    let r = raw(
        &b.endpoint,
        "GET",
        &format!("/v1/tasks/{id}/logs?cluster=c"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("hollow container"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(&listen).await.unwrap();
    plain
        .write_all(format!("GET /v1/logs/{id}/web HTTP/1.1\r\nHost: {listen}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "the log endpoint answered plain HTTP: {}",
        String::from_utf8_lossy(&answer)
    );
}

/// The server reads logs only from the certificate the instance's agent registered: another TLS
/// server at that address (here a berth server of its own) gets neither the request nor its
/// signature, and the caller is told why.
#[tokio::test]
async fn logs_are_read_only_from_the_certificate_the_agent_registered() {
    let b = Berth::start();
    let impostor = Berth::start_with(&["--tls"]);
    let impostor_url = impostor.endpoint.clone();
    assert!(impostor_url.starts_with("https://"), "{impostor_url}");
    ok(&b, "CreateCluster", json!({"clusterName": "c"})).await;
    ok(
        &b,
        "RegisterTaskDefinition",
        json!({"family": "app", "containerDefinitions": [
            {"name": "web", "image": "busybox", "memory": 32}]}),
    )
    .await;
    let _agent = HandAgent::join(&b.endpoint, "c", &impostor_url).await;
    let arn = run(&b).await;
    let id = arn.rsplit('/').next().unwrap();
    let r = raw(
        &b.endpoint,
        "GET",
        &format!("/v1/tasks/{id}/logs?cluster=c"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("not the one its agent registered"),
        "{message}"
    );
}

/// An agent's log endpoint is https with a certificate hash, or nothing: plain http, a
/// malformed hash, or an endpoint without its hash is refused.
#[tokio::test]
async fn an_agent_registers_an_https_log_endpoint_with_its_certificate() {
    let b = Berth::start();
    let agent = setup(&b).await;
    let register = |attributes: Value| {
        json!({"cluster": "c", "containerInstanceArn": agent.instance_arn,
            "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 2048}],
            "attributes": attributes})
    };
    let hash = "ab".repeat(32);
    for (attributes, says) in [
        (
            json!([{"name": "berth.agent-endpoint", "value": "http://127.0.0.1:9"},
                   {"name": "berth.agent-certificate", "value": hash}]),
            "https://",
        ),
        (
            json!([{"name": "berth.agent-endpoint", "value": "https://127.0.0.1:9"},
                   {"name": "berth.agent-certificate", "value": "AB".repeat(32)}]),
            "64 lowercase hex",
        ),
        (
            json!([{"name": "berth.agent-endpoint", "value": "https://127.0.0.1:9"}]),
            "together",
        ),
    ] {
        let r = agent
            .ecs(
                &b.endpoint,
                "RegisterContainerInstance",
                register(attributes),
            )
            .await;
        let message = r.expect_error("InvalidParameterException");
        assert!(message.contains(says), "{message}");
    }
    let r = agent
        .ecs(
            &b.endpoint,
            "RegisterContainerInstance",
            register(
                json!([{"name": "berth.agent-endpoint", "value": "https://127.0.0.1:9"},
                {"name": "berth.agent-certificate", "value": hash}]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// A hollow agent (`--runtime hollow`) runs nothing but goes through the whole lifecycle: the
/// task definition's image need not exist, the task reports RUNNING with its bindings, and
/// StopTask ends it with the runtime's SIGTERM exit code.
#[tokio::test]
async fn a_hollow_agent_runs_tasks_through_their_lifecycle() {
    let b = Berth::start();
    ok(&b, "CreateCluster", json!({"clusterName": "c"})).await;
    let agent = common::agent::AgentProcess::start(
        &b.endpoint,
        "c",
        &["--runtime", "hollow", "--cpu", "4096", "--memory", "8192"],
    );
    let inst = instance(&b, &agent.instance_arn).await;
    let attributes: Vec<&str> = inst["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        attributes.contains(&"berth.runtime.hollow"),
        "{attributes:?}"
    );
    assert_eq!(inst["registeredResources"][0]["integerValue"], 4096);
    ok(
        &b,
        "RegisterTaskDefinition",
        json!({"family": "ghost", "containerDefinitions": [
            {"name": "web", "image": "no-such-registry.invalid/app:1", "memory": 64,
             "portMappings": [{"containerPort": 8080}]}
        ]}),
    )
    .await;
    let r = ok(
        &b,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "ghost", "count": 3}),
    )
    .await;
    let arns: Vec<String> = r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arns.len(), 3, "{r}");
    for arn in &arns {
        eventually(Duration::from_secs(30), "hollow task RUNNING", || async {
            task(&b, arn).await["lastStatus"] == "RUNNING"
        })
        .await;
        let t = task(&b, arn).await;
        let binding = &t["containers"][0]["networkBindings"][0];
        assert_eq!(binding["containerPort"], 8080);
        assert!(binding["hostPort"].as_u64().unwrap() >= 61000, "{binding}");
        assert!(
            t["pullStartedAt"].is_number() && t["startedAt"].is_number(),
            "{t}"
        );
    }
    ok(&b, "StopTask", json!({"cluster": "c", "task": arns[0]})).await;
    eventually(Duration::from_secs(30), "hollow task STOPPED", || async {
        task(&b, &arns[0]).await["lastStatus"] == "STOPPED"
    })
    .await;
    let t = task(&b, &arns[0]).await;
    assert_eq!(t["stopCode"], "UserInitiated");
    assert_eq!(t["containers"][0]["exitCode"], 143);
    assert_eq!(task(&b, &arns[1]).await["lastStatus"], "RUNNING");
}
