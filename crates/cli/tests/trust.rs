//! Every attack the trust issue reported, sent to a real `berth server` (and agents), as a
//! regression test: each one used to succeed against an unauthenticated berth.
//!
//! - Raft RPCs: a vote of term u64::MAX, a 4-byte snapshot, a membership entry, a forwarded
//!   write of a cluster named `evil/../x"<>` — unsigned they are refused; signed with the
//!   peers' own key (which the tests derive from the cluster secret file, as a compromised
//!   peer could) the hostile ones are still refused whole, and the node keeps serving writes
//!   and restarts cleanly;
//! - the ECS API without credentials, with `Bearer xyz`, a garbage signature, a wrong secret,
//!   an unknown key or a stale date;
//! - roles: read-only, an operator of another cluster, host privileges for non-admins;
//! - the agent protocol: polling another instance, forged state changes and network
//!   bindings, re-registering as another instance, heartbeats from someone else;
//! - SSRF through the agent-endpoint attribute;
//! - Mesos framework takeover;
//! - slow headers and stalled bodies.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime};

use berth_auth::{ClusterSecret, SecretKey, Signer};
use berth_client::Credentials;
use common::{Berth, HandAgent, TARGET_PREFIX, credential, ecs_op, raw, raw_as, raw_unsigned};
use serde_json::{Value, json};

// --- helpers ---------------------------------------------------------------------------------

/// The peers' signing key of a server, derived from its cluster secret file as every server
/// derives it.
fn peer_key(b: &Berth) -> Credentials {
    let text = std::fs::read_to_string(b.data_dir.join("cluster.secret")).expect("secret");
    Credentials {
        access_key_id: "BKPEER1".into(),
        secret: ClusterSecret::parse(&text).expect("secret").peer_secret(),
    }
}

/// A request signed with `credentials` the way servers sign to each other (body hash signed).
async fn as_peer(b: &Berth, path: &str, body: &[u8]) -> common::RawResponse {
    let client = berth_client::Client::new(
        berth_client::Transport::new(&berth_client::Trust::PlainHttp).unwrap(),
        &b.endpoint,
        &peer_key(b),
        "us-east-1",
        "berth",
    );
    let req = client
        .signed(
            "POST",
            path,
            &[("content-type", "application/json")],
            bytes::Bytes::copy_from_slice(body),
            true,
        )
        .unwrap();
    let resp = common::http().request(req).await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    use http_body_util::BodyExt;
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    common::RawResponse {
        status,
        headers,
        body,
    }
}

/// The node still commits writes.
async fn serves_writes(b: &Berth, name: &str) {
    let r = ecs_op(
        &b.endpoint,
        "CreateCluster",
        &json!({ "clusterName": name }).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = ecs_op(&b.endpoint, "ListClusters", "{}").await;
    assert!(
        r.json()["clusterArns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().ends_with(&format!("/{name}"))),
        "{}",
        r.json()
    );
}

async fn ecs_as(c: &Credentials, b: &Berth, op: &str, body: Value) -> common::RawResponse {
    let target = format!("{TARGET_PREFIX}{op}");
    raw_as(
        c,
        &b.endpoint,
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

#[track_caller]
fn refused(r: &common::RawResponse, status: u16, code: &str) -> String {
    let body = r.json();
    assert_eq!(r.status, status, "{body}");
    assert_eq!(body["__type"], code, "{body}");
    assert_eq!(r.header("x-amzn-errortype"), Some(code));
    body["message"].as_str().unwrap_or_default().to_owned()
}

fn vote(term: u64) -> Value {
    json!({"vote": {"leader_id": {"term": term, "node_id": 1}, "committed": false}, "last_log_id": null})
}

// --- Raft RPCs -------------------------------------------------------------------------------

/// Reported: an unauthenticated vote of term u64::MAX was granted, openraft panicked, every
/// write answered 500, and the node panicked again at every restart.
#[tokio::test]
async fn a_vote_of_term_u64_max_leaves_the_node_serving_and_restartable() {
    let mut b = Berth::start();
    let body = vote(u64::MAX).to_string();
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/v1/raft/vote",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    refused(&r, 403, "MissingAuthenticationTokenException");
    // The admin is no server: refused too.
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/raft/vote",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // Even from a peer (a bug, or a compromised server), the absurd term is refused whole.
    let r = as_peer(&b, "/v1/raft/vote", body.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("term"));
    serves_writes(&b, "after-vote").await;
    b.restart();
    serves_writes(&b, "after-restart").await;
}

/// Reported: a higher vote with 4 bytes of snapshot data made the node quit its Raft core and
/// refuse to start.
#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_never_installed() {
    let mut b = Berth::start();
    let body = json!({
        "vote": {"leader_id": {"term": 99, "node_id": 1}, "committed": true},
        "meta": {
            "last_log_id": {"leader_id": {"term": 99, "node_id": 1}, "index": 3},
            "last_membership": {"log_id": null, "membership": {"configs": [[1]], "nodes": {"1": {"addr": "127.0.0.1:1"}}}},
            "snapshot_id": "evil"
        },
        "offset": 0,
        "data": [1, 2, 3, 4],
        "done": true
    })
    .to_string();
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/v1/raft/snapshot",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    refused(&r, 403, "MissingAuthenticationTokenException");
    let r = as_peer(&b, "/v1/raft/snapshot", body.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("does not decode"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    serves_writes(&b, "after-snapshot").await;
    b.restart();
    serves_writes(&b, "after-restart").await;
}

/// Reported: an append with a membership entry naming voters {1,2,3} made a single server lose
/// quorum for good; one with a normal entry created a cluster.
#[tokio::test]
async fn appended_entries_from_strangers_are_refused() {
    let mut b = Berth::start();
    let membership = json!({
        "vote": {"leader_id": {"term": 50, "node_id": 1}, "committed": true},
        "prev_log_id": null,
        "entries": [{"log_id": {"leader_id": {"term": 50, "node_id": 1}, "index": 1},
                     "payload": {"Membership": {"configs": [[1, 2, 3]],
                        "nodes": {"1": {"addr": "127.0.0.1:1"}, "2": {"addr": "127.0.0.1:2"}, "3": {"addr": "127.0.0.1:3"}}}}}],
        "leader_commit": null
    })
    .to_string();
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/v1/raft/append",
        &[("content-type", "application/json")],
        membership.as_bytes(),
    )
    .await;
    refused(&r, 403, "MissingAuthenticationTokenException");
    // Signed with a made-up key: the server knows no such peer.
    let stranger = Credentials {
        access_key_id: "BKPEER9".into(),
        secret: SecretKey::new("not the cluster's peer secret"),
    };
    let r = raw_as(
        &stranger,
        &b.endpoint,
        "POST",
        "/v1/raft/append",
        &[("content-type", "application/json")],
        membership.as_bytes(),
    )
    .await;
    assert!(r.status == 400 || r.status == 403, "{}", r.status);
    // From a peer, entries that do not follow on from the log are refused whole.
    let gap = json!({
        "vote": {"leader_id": {"term": u64::MAX, "node_id": 1}, "committed": true},
        "prev_log_id": null,
        "entries": [],
        "leader_commit": null
    })
    .to_string();
    let r = as_peer(&b, "/v1/raft/append", gap.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    serves_writes(&b, "after-append").await;
    b.restart();
    serves_writes(&b, "after-restart").await;
    let h = raw_unsigned(&b.endpoint, "GET", "/v1/health", &[], b"")
        .await
        .json();
    assert_eq!(h["leader"], 1, "still its own single-voter group: {h}");
}

/// Reported: `/v1/raft/write` applied any command, skipping all validation (clusters named
/// `""` or `evil/../x"<>`).
#[tokio::test]
async fn forwarded_writes_are_checked_as_the_api_checks_requests() {
    let b = Berth::start();
    let write = |name: &str| {
        json!({"at": 0, "command": {"CreateCluster": {"name": name, "settings": [],
            "configuration": null, "service_connect_defaults": null, "tags": []}}})
        .to_string()
    };
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/v1/raft/write",
        &[("content-type", "application/json")],
        write("evil/../x\"<>").as_bytes(),
    )
    .await;
    refused(&r, 403, "MissingAuthenticationTokenException");
    for name in ["", "evil/../x\"<>"] {
        let r = as_peer(&b, "/v1/raft/write", write(name).as_bytes()).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = ecs_op(&b.endpoint, "ListClusters", "{}").await;
    assert_eq!(r.json()["clusterArns"], json!([]), "nothing was written");
}

// --- the ECS API -------------------------------------------------------------------------------

/// Reported: no Authorization header, `Bearer xyz`, a garbage SigV4 signature and a wrong
/// secret all got 200.
#[tokio::test]
async fn requests_without_a_valid_signature_get_aws_exceptions() {
    let b = Berth::start();
    let target = format!("{TARGET_PREFIX}ListClusters");
    let plain = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let r = raw_unsigned(&b.endpoint, "POST", "/", &plain, b"{}").await;
    refused(&r, 403, "MissingAuthenticationTokenException");

    let mut bearer = plain.to_vec();
    bearer.push(("authorization", "Bearer xyz"));
    let r = raw_unsigned(&b.endpoint, "POST", "/", &bearer, b"{}").await;
    refused(&r, 400, "IncompleteSignatureException");

    let admin = common::admin(&b.endpoint);
    let garbage = format!(
        "AWS4-HMAC-SHA256 Credential={}/20261201/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        admin.access_key_id,
        "0".repeat(64)
    );
    let mut forged = plain.to_vec();
    forged.push(("authorization", &garbage));
    forged.push(("x-amz-date", "20261201T000000Z"));
    let r = raw_unsigned(&b.endpoint, "POST", "/", &forged, b"{}").await;
    refused(&r, 400, "InvalidSignatureException");

    // The official SDK with a wrong secret, and with a key berth never issued.
    let wrong = Credentials {
        secret: SecretKey::new("wrong"),
        ..admin.clone()
    };
    let err = b
        .client_as(&wrong)
        .list_clusters()
        .send()
        .await
        .unwrap_err();
    use aws_sdk_ecs::error::ProvideErrorMetadata;
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
    let unknown = Credentials {
        access_key_id: "BKIAUNKNOWNUNKNOWN00".into(),
        secret: SecretKey::new("x"),
    };
    let err = b
        .client_as(&unknown)
        .list_clusters()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
    b.client()
        .list_clusters()
        .send()
        .await
        .expect("the admin key works");

    // A correct signature made 10 minutes ago.
    let stale = Signer {
        access_key_id: admin.access_key_id.clone(),
        secret: admin.secret.clone(),
        region: "us-east-1".into(),
        service: "ecs".into(),
    };
    let host = b.addr().to_owned();
    let mut headers: Vec<(&str, &str)> = plain.to_vec();
    headers.push(("host", &host));
    let added = stale
        .sign(
            "POST",
            &format!("{}/", b.endpoint),
            &headers,
            b"{}",
            false,
            SystemTime::now() - Duration::from_secs(600),
        )
        .unwrap();
    let mut all: Vec<(&str, &str)> = plain.to_vec();
    all.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
    let r = raw_unsigned(&b.endpoint, "POST", "/", &all, b"{}").await;
    let message = refused(&r, 400, "InvalidSignatureException");
    assert!(message.contains("Signature expired"), "{message}");
}

/// Roles as ECS users know them: read-only reads, an operator acts in its cluster only, and
/// host privileges are admin's.
#[tokio::test]
async fn roles_allow_what_they_say_and_nothing_more() {
    let b = Berth::start();
    for c in ["a", "b"] {
        let r = ecs_op(
            &b.endpoint,
            "CreateCluster",
            &json!({"clusterName": c}).to_string(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let td = json!({"family": "web", "containerDefinitions": [
        {"name": "web", "image": "busybox", "memory": 32}]});
    assert_eq!(
        ecs_op(&b.endpoint, "RegisterTaskDefinition", &td.to_string())
            .await
            .status,
        200
    );

    let reader = credential(&b, "reader", "read-only").await;
    assert_eq!(
        ecs_as(&reader, &b, "ListClusters", json!({})).await.status,
        200
    );
    let r = ecs_as(
        &reader,
        &b,
        "RunTask",
        json!({"cluster": "a", "taskDefinition": "web"}),
    )
    .await;
    let message = refused(&r, 403, "AccessDeniedException");
    assert!(message.contains("ecs:RunTask"), "{message}");
    assert!(message.contains("user/reader"), "{message}");

    let r = ecs_op(
        &b.endpoint,
        "RegisterContainerInstance",
        &json!({"cluster": "a", "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}]})
        .to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let operator = credential(&b, "ops-a", "operator:a").await;
    let r = ecs_as(
        &operator,
        &b,
        "RunTask",
        json!({"cluster": "a", "taskDefinition": "web"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (op, body) in [
        ("RunTask", json!({"cluster": "b", "taskDefinition": "web"})),
        ("ListTasks", json!({"cluster": "b"})),
        ("DeleteCluster", json!({"cluster": "b"})),
        ("DescribeClusters", json!({"clusters": ["b"]})),
    ] {
        let r = ecs_as(&operator, &b, op, body).await;
        refused(&r, 403, "AccessDeniedException");
    }
    // Credentials are admin's business.
    let r = raw_as(&operator, &b.endpoint, "GET", "/v1/credentials", &[], b"").await;
    refused(&r, 403, "AccessDeniedException");

    // The reported root-on-every-host task definition: refused for the operator, with the
    // missing permission named; admin may.
    let root = json!({"family": "root", "networkMode": "host", "pidMode": "host", "ipcMode": "host",
        "containerDefinitions": [{"name": "x", "image": "busybox", "memory": 32, "privileged": true,
            "linuxParameters": {"capabilities": {"add": ["ALL"]}},
            "mountPoints": [{"sourceVolume": "root", "containerPath": "/host"},
                            {"sourceVolume": "sock", "containerPath": "/var/run/docker.sock"}]}],
        "volumes": [{"name": "root", "host": {"sourcePath": "/"}},
                    {"name": "sock", "host": {"sourcePath": "/var/run/docker.sock"}}]});
    let r = ecs_as(&operator, &b, "RegisterTaskDefinition", root.clone()).await;
    let message = refused(&r, 403, "AccessDeniedException");
    assert!(
        message.contains("berth:"),
        "names the permission: {message}"
    );
    for privileged in [
        json!({"family": "p", "containerDefinitions": [{"name": "x", "image": "i", "memory": 8, "privileged": true}]}),
        json!({"family": "p", "networkMode": "host", "containerDefinitions": [{"name": "x", "image": "i", "memory": 8}]}),
        json!({"family": "p", "containerDefinitions": [{"name": "x", "image": "i", "memory": 8,
            "linuxParameters": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
        json!({"family": "p", "containerDefinitions": [{"name": "x", "image": "i", "memory": 8,
            "dockerLabels": {"berth.runtime": "process"}}]}),
    ] {
        let r = ecs_as(&operator, &b, "RegisterTaskDefinition", privileged).await;
        refused(&r, 403, "AccessDeniedException");
    }
    let r = ecs_op(&b.endpoint, "RegisterTaskDefinition", &root.to_string()).await;
    assert_eq!(
        r.status,
        200,
        "admin may: {}",
        String::from_utf8_lossy(&r.body)
    );
    // ... and what admin registered, the operator still may not run.
    let r = ecs_as(
        &operator,
        &b,
        "RunTask",
        json!({"cluster": "a", "taskDefinition": "root"}),
    )
    .await;
    refused(&r, 403, "AccessDeniedException");

    // History names who did what.
    let history = common::get_json(
        &b.endpoint,
        "/v1/history/arn:aws:ecs:us-east-1:000000000000:task-definition/root:1",
    )
    .await;
    assert_eq!(history["versions"][0]["by"], "user/admin", "{history}");
    assert_eq!(
        history["versions"][0]["value"]["registeredBy"], "arn:aws:iam::000000000000:user/admin",
        "{history}"
    );
}

/// A task that names no runtime runs as a host process on an agent without Docker: a caller
/// who may not run host processes does not get it placed there, cannot StartTask it there,
/// and cannot relabel the agent to pretend otherwise.
#[tokio::test]
async fn tasks_of_callers_without_host_process_rights_stay_off_process_agents() {
    let b = Berth::start();
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"c"}"#).await;
    assert_eq!(r.status, 200);
    let plain = json!({"family": "plain", "containerDefinitions": [
        {"name": "x", "image": "busybox", "memory": 32}]});
    ecs_op(&b.endpoint, "RegisterTaskDefinition", &plain.to_string()).await;
    let agent = HandAgent::join_with(
        &b.endpoint,
        "c",
        "https://127.0.0.1:9",
        &[("berth.default-runtime", "process")],
    )
    .await;
    let operator = credential(&b, "ops-c", "operator:c").await;
    let r = ecs_as(
        &operator,
        &b,
        "RunTask",
        json!({"cluster": "c", "taskDefinition": "plain"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["tasks"], json!([]), "{v}");
    assert_eq!(v["failures"][0]["reason"], "ATTRIBUTE", "{v}");
    let r = ecs_as(
        &operator,
        &b,
        "StartTask",
        json!({"cluster": "c", "taskDefinition": "plain", "containerInstances": [agent.instance_arn]}),
    )
    .await;
    let message = refused(&r, 403, "AccessDeniedException");
    assert!(message.contains("berth:RunHostProcess"), "{message}");
    for op in ["PutAttributes", "DeleteAttributes"] {
        let r = ecs_as(
            &operator,
            &b,
            op,
            json!({"cluster": "c", "attributes": [{"name": "berth.default-runtime",
                "value": "docker", "targetId": agent.instance_arn}]}),
        )
        .await;
        r.expect_error("InvalidParameterException");
    }
    // A service of the operator's carries the same guard.
    let r = ecs_as(
        &operator,
        &b,
        "CreateService",
        json!({"cluster": "c", "serviceName": "s", "taskDefinition": "plain", "desiredCount": 1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["service"]["placementConstraints"][0]["expression"],
        berth_model::privileges::NOT_ON_HOST_PROCESS_AGENTS
    );
    // The admin may.
    let r = ecs_op(
        &b.endpoint,
        "RunTask",
        r#"{"cluster":"c","taskDefinition":"plain"}"#,
    )
    .await;
    assert_eq!(
        r.json()["tasks"].as_array().unwrap().len(),
        1,
        "{}",
        r.json()
    );
}

// --- the agent protocol -------------------------------------------------------------------------

async fn two_agents(b: &Berth) -> (HandAgent, HandAgent, String) {
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"c"}"#).await;
    assert_eq!(r.status, 200);
    let td = json!({"family": "app", "containerDefinitions": [{"name": "web", "image": "busybox",
        "memory": 32, "environment": [{"name": "SECRET", "value": "s3cr3t"}],
        "portMappings": [{"containerPort": 80}]}]});
    assert_eq!(
        ecs_op(&b.endpoint, "RegisterTaskDefinition", &td.to_string())
            .await
            .status,
        200
    );
    let victim = HandAgent::join(&b.endpoint, "c", "https://127.0.0.1:9").await;
    let attacker = HandAgent::join(&b.endpoint, "c", "https://127.0.0.1:9").await;
    // A task on the victim only.
    let r = ecs_op(
        &b.endpoint,
        "StartTask",
        &json!({"cluster": "c", "taskDefinition": "app", "containerInstances": [victim.instance_arn]})
            .to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let task = r.json()["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    (victim, attacker, task)
}

fn poll_path(instance: &str) -> String {
    format!(
        "/v1/agent/poll?cluster=c&instance={}&since=0&wait=0",
        instance.replace(':', "%3A").replace('/', "%2F")
    )
}

/// Reported: polling with any instance id returned that instance's task definitions,
/// environment secrets included.
#[tokio::test]
async fn an_agent_cannot_read_another_instances_assignments() {
    let b = Berth::start();
    let (victim, attacker, _) = two_agents(&b).await;
    let r = attacker
        .call(&b.endpoint, "GET", &poll_path(&victim.instance_arn), b"")
        .await;
    refused(&r, 403, "AccessDeniedException");
    assert!(!String::from_utf8_lossy(&r.body).contains("s3cr3t"));
    // Not the admin either: the poll is the agent's own.
    let r = raw(
        &b.endpoint,
        "GET",
        &poll_path(&victim.instance_arn),
        &[],
        b"",
    )
    .await;
    refused(&r, 403, "AccessDeniedException");
    let r = victim
        .call(&b.endpoint, "GET", &poll_path(&victim.instance_arn), b"")
        .await;
    assert_eq!(r.status, 200);
    assert!(
        String::from_utf8_lossy(&r.body).contains("s3cr3t"),
        "its own"
    );
}

/// Reported: a forged SubmitTaskStateChange STOPPED made the real agent kill the task, and
/// forged network bindings stuck.
#[tokio::test]
async fn forged_reports_about_another_instances_tasks_change_nothing() {
    let b = Berth::start();
    let (victim, attacker, task) = two_agents(&b).await;
    let r = attacker
        .ecs(
            &b.endpoint,
            "SubmitTaskStateChange",
            json!({"cluster": "c", "task": task, "status": "STOPPED", "reason": "forged"}),
        )
        .await;
    refused(&r, 403, "AccessDeniedException");
    let r = attacker
        .ecs(
            &b.endpoint,
            "SubmitContainerStateChange",
            json!({"cluster": "c", "task": task, "containerName": "web", "status": "RUNNING",
                   "networkBindings": [{"bindIP": "6.6.6.6", "containerPort": 80, "hostPort": 6666}]}),
        )
        .await;
    refused(&r, 403, "AccessDeniedException");
    let health = json!({"cluster": "c", "task": task, "containers": [
        {"containerName": "web", "healthStatus": "UNHEALTHY"}]})
    .to_string();
    let r = attacker
        .call(&b.endpoint, "POST", "/v1/agent/health", health.as_bytes())
        .await;
    refused(&r, 403, "AccessDeniedException");
    let t = ecs_op(
        &b.endpoint,
        "DescribeTasks",
        &json!({"cluster": "c", "tasks": [task]}).to_string(),
    )
    .await
    .json();
    let t = &t["tasks"][0];
    assert_eq!(t["lastStatus"], "PENDING", "{t}");
    assert_eq!(t["desiredStatus"], "RUNNING", "{t}");
    assert_eq!(t["containers"][0]["networkBindings"], json!([]), "{t}");
    assert_eq!(t["healthStatus"], "UNKNOWN", "{t}");
    // The task's own agent may.
    let r = victim
        .ecs(
            &b.endpoint,
            "SubmitTaskStateChange",
            json!({"cluster": "c", "task": task, "status": "RUNNING"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Reported: RegisterContainerInstance with another instance's ARN rewrote its resources.
#[tokio::test]
async fn an_agent_cannot_register_as_another_instance() {
    let b = Berth::start();
    let (victim, attacker, _) = two_agents(&b).await;
    let r = attacker
        .ecs(
            &b.endpoint,
            "RegisterContainerInstance",
            json!({"cluster": "c", "containerInstanceArn": victim.instance_arn, "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 999999},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 999999}]}),
        )
        .await;
    refused(&r, 403, "AccessDeniedException");
    let d = ecs_op(
        &b.endpoint,
        "DescribeContainerInstances",
        &json!({"cluster": "c", "containerInstances": [victim.instance_arn]}).to_string(),
    )
    .await
    .json();
    assert_eq!(
        d["containerInstances"][0]["registeredResources"][0]["integerValue"],
        2048
    );
}

/// Reported: polling kept a dead agent "connected" — anyone's poll counted as its heartbeat.
#[tokio::test]
async fn only_an_agents_own_polls_keep_it_connected() {
    let b = Berth::start_with(&[
        "--agent-heartbeat-timeout",
        "1",
        "--agent-lost-after",
        "600",
    ]);
    let (victim, attacker, _) = two_agents(&b).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Someone else keeps polling for the victim, which is silent.
        let _ = attacker
            .call(&b.endpoint, "GET", &poll_path(&victim.instance_arn), b"")
            .await;
        let _ = raw(
            &b.endpoint,
            "GET",
            &poll_path(&victim.instance_arn),
            &[],
            b"",
        )
        .await;
        let d = ecs_op(
            &b.endpoint,
            "DescribeContainerInstances",
            &json!({"cluster": "c", "containerInstances": [victim.instance_arn]}).to_string(),
        )
        .await
        .json();
        if d["containerInstances"][0]["agentConnected"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the silent agent stayed connected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reported: PutAttributes `berth.agent-endpoint=http://127.0.0.1:18999/internal/admin` then
/// `GET /v1/tasks/{id}/logs` made the server fetch that URL and return its body.
#[tokio::test]
async fn the_agent_endpoint_attribute_cannot_point_the_server_elsewhere() {
    // Something internal the attacker wants the server to fetch.
    let internal = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let internal_addr = internal.local_addr().unwrap();
    internal.set_nonblocking(true).unwrap();

    let b = Berth::start();
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"c"}"#).await;
    assert_eq!(r.status, 200);
    let td = json!({"family": "app", "containerDefinitions": [{"name": "web", "image": "i", "memory": 8}]});
    ecs_op(&b.endpoint, "RegisterTaskDefinition", &td.to_string()).await;
    let r = ecs_op(
        &b.endpoint,
        "RegisterContainerInstance",
        &json!({"cluster": "c", "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}]})
        .to_string(),
    )
    .await;
    let instance = r.json()["containerInstance"]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("http://{internal_addr}/internal/admin");
    let r = ecs_op(
        &b.endpoint,
        "PutAttributes",
        &json!({"cluster": "c", "attributes": [{"name": "berth.agent-endpoint", "value": url,
            "targetId": instance}]})
        .to_string(),
    )
    .await;
    let message = r.expect_error("InvalidParameterException");
    assert!(message.contains("berth.agent-endpoint"), "{message}");
    // Nor at registration, by anyone but the instance's own agent.
    let r = ecs_op(
        &b.endpoint,
        "RegisterContainerInstance",
        &json!({"cluster": "c", "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}],
            "attributes": [{"name": "berth.agent-endpoint", "value": url}]})
        .to_string(),
    )
    .await;
    r.expect_error("InvalidParameterException");
    let r = ecs_op(
        &b.endpoint,
        "StartTask",
        &json!({"cluster": "c", "taskDefinition": "app", "containerInstances": [instance]})
            .to_string(),
    )
    .await;
    let task = r.json()["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    let id = task.rsplit('/').next().unwrap();
    let r = raw(
        &b.endpoint,
        "GET",
        &format!("/v1/tasks/{id}/logs?cluster=c"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        internal.accept().is_err(),
        "the server connected to the attacker's URL"
    );
}

// --- Mesos ---------------------------------------------------------------------------------------

/// Reported: SUBSCRIBE with another framework's id (visible as startedBy) took it over; KILL
/// and TEARDOWN followed.
#[tokio::test]
async fn a_framework_belongs_to_the_principal_that_registered_it() {
    let b = Berth::start();
    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"default"}"#).await;
    assert_eq!(r.status, 200);
    let owner = credential(&b, "fw-owner", "framework").await;
    let thief = credential(&b, "fw-thief", "framework").await;
    let basic = |c: &Credentials| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                c.access_key_id,
                c.secret.expose()
            ))
        )
    };
    // The owner subscribes and keeps its stream open.
    let subscribe = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "mine"}}});
    let req = hyper::Request::post(format!("{}/api/v1/scheduler", b.endpoint))
        .header("content-type", "application/json")
        .header("authorization", basic(&owner))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            subscribe.to_string(),
        )))
        .unwrap();
    let stream = common::http().request(req).await.unwrap();
    assert_eq!(stream.status(), 200);
    let stream_id = stream.headers()["mesos-stream-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = stream.into_body();
    let framework = {
        use http_body_util::BodyExt;
        let mut decoder = berth_mesos::recordio::Decoder::new();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("SUBSCRIBED in time")
                .expect("an open stream")
                .expect("a frame");
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if let Some(record) = decoder.feed(&data).expect("RecordIO").into_iter().next() {
                let event: Value = serde_json::from_slice(&record).unwrap();
                break event["subscribed"]["framework_id"]["value"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
        }
    };
    // Unauthenticated, and with the wrong secret: 401.
    let takeover = json!({"type": "SUBSCRIBE", "framework_id": {"value": framework},
        "subscribe": {"framework_info": {"id": {"value": framework}, "user": "u", "name": "mine"}}});
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/api/v1/scheduler",
        &[("content-type", "application/json")],
        takeover.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);
    let wrong = Credentials {
        secret: SecretKey::new("wrong"),
        ..owner.clone()
    };
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/api/v1/scheduler",
        &[
            ("content-type", "application/json"),
            ("authorization", &basic(&wrong)),
        ],
        takeover.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);
    // Another principal: 403, for SUBSCRIBE, KILL and TEARDOWN alike.
    for call in [
        takeover.clone(),
        json!({"type": "KILL", "framework_id": {"value": framework}, "kill": {"task_id": {"value": "t"}}}),
        json!({"type": "TEARDOWN", "framework_id": {"value": framework}}),
    ] {
        let r = raw_unsigned(
            &b.endpoint,
            "POST",
            "/api/v1/scheduler",
            &[
                ("content-type", "application/json"),
                ("authorization", &basic(&thief)),
                ("mesos-stream-id", "guess"),
            ],
            call.to_string().as_bytes(),
        )
        .await;
        assert_eq!(
            r.status,
            403,
            "{call}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The owner is still subscribed: its calls on its own stream are accepted.
    let revive = json!({"type": "REVIVE", "framework_id": {"value": framework}});
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/api/v1/scheduler",
        &[
            ("content-type", "application/json"),
            ("authorization", &basic(&owner)),
            ("mesos-stream-id", &stream_id),
        ],
        revive.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    drop(body);
}

// --- connections ---------------------------------------------------------------------------------

/// Reported: connections that send headers slowly or stop mid-body were never closed. (An
/// idle keep-alive connection, as Mesos frameworks keep, is not cut off for being idle.)
#[tokio::test]
async fn slow_headers_and_stalled_bodies_are_cut_off() {
    let b = Berth::start();
    let addr = b.addr().to_owned();
    let idle_keep_alive = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut answers = Vec::new();
            for pause in [0, 12] {
                std::thread::sleep(Duration::from_secs(pause));
                s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
                    .unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            answers
        }
    });
    let slow_headers = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            t.elapsed()
        }
    });
    // A known key, so the server reads the body (the signature covers it) before refusing.
    let key = common::admin(&b.endpoint).access_key_id;
    let stalled_body = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 100\r\nx-amz-date: 20261201T000000Z\r\nauthorization: AWS4-HMAC-SHA256 Credential={key}/20261201/us-east-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\n\r\n{{\"a\":",
            "0".repeat(64)
        );
        s.write_all(head.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let t = Instant::now();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        (t.elapsed(), out)
    });
    let headers_took = slow_headers.join().unwrap();
    assert!(
        headers_took < Duration::from_secs(50),
        "a client that never finished its headers was never cut off ({headers_took:?})"
    );
    let (body_took, answer) = stalled_body.join().unwrap();
    assert!(
        body_took < Duration::from_secs(50),
        "a stalled body was never cut off ({body_took:?})"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("did not arrive within"),
        "the stalled body was answered with {answer:?}"
    );
    for answer in idle_keep_alive.join().unwrap() {
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "a request on a connection idle for 12 s got {answer:?}"
        );
    }
    serves_writes(&b, "still-serving").await;
}

// --- TLS ---------------------------------------------------------------------------------------

/// Over TLS: the admin's tools trust the CA the server wrote; an agent trusts exactly the CA
/// its join token pins, and refuses a server whose certificate authority is another.
#[tokio::test]
async fn agents_join_over_tls_pinning_the_ca_their_token_names() {
    let b = Berth::start_with(&["--tls"]);
    assert!(b.endpoint.starts_with("https://"), "{}", b.endpoint);
    let ca = std::fs::read(b.data_dir.join("ca.pem")).expect("ca.pem written at start");
    assert!(String::from_utf8_lossy(&ca).starts_with("-----BEGIN CERTIFICATE-----"));
    serves_writes(&b, "default").await;

    // Without the CA, a client cannot even connect.
    let blind = berth_client::Client::new(
        berth_client::Transport::new(&berth_client::Trust::PlainHttp).unwrap(),
        &b.endpoint,
        &common::admin(&b.endpoint),
        "us-east-1",
        "berth",
    );
    let err = blind
        .send(
            "GET",
            "/v1/credentials",
            &[],
            bytes::Bytes::new(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // The join token carries the CA's hash; the agent pins it and registers over TLS.
    let token = common::agent::join_token(&b.endpoint, "default");
    let parsed = berth_auth::JoinToken::parse(&token).unwrap();
    assert_eq!(
        parsed.ca_sha256,
        Some(berth_client::sha256(
            &berth_client::Trust::from_pem(&ca)
                .map(|t| match t {
                    berth_client::Trust::Ca(c) => c[0].to_vec(),
                    _ => unreachable!(),
                })
                .unwrap()
        ))
    );
    let agent =
        common::agent::AgentProcess::start(&b.endpoint, "default", &["--runtime", "hollow"]);
    let d = ecs_op(
        &b.endpoint,
        "DescribeContainerInstances",
        &json!({"containerInstances": [agent.instance_arn]}).to_string(),
    )
    .await
    .json();
    assert_eq!(d["containerInstances"][0]["agentConnected"], true, "{d}");

    // A token pinning another CA: the agent refuses the server's certificate.
    let forged = format!(
        "bj1.{}.{}.{}",
        parsed.id,
        parsed.secret.expose(),
        "ab".repeat(32)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["agent", "--server", &b.endpoint, "--runtime", "hollow"])
        .args(["--listen", "127.0.0.1:0", "--token", &forged, "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run berth agent");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate authority does not match"),
        "{stderr}"
    );
}

/// A plain HTTP listener on an address other hosts reach is refused without --insecure.
#[test]
fn plain_http_on_a_network_address_needs_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run berth server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure"), "{stderr}");
}

/// A server join token gets a new server what it needs to join (the cluster secret), and
/// nothing else can: not an agent's token, not an unsigned request.
#[tokio::test]
async fn a_server_join_token_and_only_it_hands_out_the_cluster_secret() {
    let b = Berth::start();
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/join-tokens",
        &[("content-type", "application/json")],
        br#"{"server": true, "ttlSeconds": 60}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = berth_auth::JoinToken::parse(r.json()["token"].as_str().unwrap()).unwrap();
    let as_token = Credentials {
        access_key_id: token.id.clone(),
        secret: token.secret.clone(),
    };
    let r = raw_as(&as_token, &b.endpoint, "POST", "/v1/servers/join", &[], b"").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let file = std::fs::read_to_string(b.data_dir.join("cluster.secret")).unwrap();
    assert_eq!(r.json()["clusterSecret"], file.trim());
    // The token does nothing else.
    let r = raw_as(&as_token, &b.endpoint, "GET", "/v1/credentials", &[], b"").await;
    refused(&r, 403, "AccessDeniedException");
    // An agent's join token cannot get the secret.
    let agent_token = common::join_token(&b.endpoint, "default").await;
    let r = raw_as(
        &Credentials {
            access_key_id: agent_token.id,
            secret: agent_token.secret,
        },
        &b.endpoint,
        "POST",
        "/v1/servers/join",
        &[],
        b"",
    )
    .await;
    refused(&r, 403, "AccessDeniedException");
    let r = raw_unsigned(&b.endpoint, "POST", "/v1/servers/join", &[], b"").await;
    refused(&r, 403, "MissingAuthenticationTokenException");
}

/// Deleting the bootstrap admin (after making another admin) is final: its key is refused at
/// once, and a restarted server neither makes a new one nor leaves the old file behind.
#[tokio::test]
async fn a_deleted_bootstrap_admin_stays_deleted_across_restarts() {
    let mut b = Berth::start();
    let bootstrap = common::admin(&b.endpoint);
    let second = credential(&b, "second-admin", "admin").await;
    let path = format!("/v1/credentials/{}", bootstrap.access_key_id);
    let r = raw_as(&second, &b.endpoint, "DELETE", &path, &[], b"").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = ecs_as(&bootstrap, &b, "ListClusters", json!({})).await;
    refused(&r, 400, "UnrecognizedClientException");

    let listen = b.addr().to_owned();
    b.kill();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", &listen, "--data-dir"])
        .arg(&b.data_dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("berth server listening on"), "{ready}");
    let second_line = lines.next().unwrap().unwrap();
    assert!(second_line.contains("none"), "{second_line}");
    assert!(!b.data_dir.join("admin.credentials").exists());
    let r = ecs_as(&second, &b, "ListClusters", json!({})).await;
    assert_eq!(r.status, 200, "the other admin still works");
    let _ = child.kill();
    let _ = child.wait();
}

/// A user name is one principal (the history records writes by it): a second key under the
/// name is a rotation with the same permissions, and a user holds two keys at most, as in
/// IAM. Reported: any number of credentials could share a name with different policies.
#[tokio::test]
async fn a_user_name_names_one_set_of_permissions_with_at_most_two_keys() {
    let b = Berth::start();
    let create = |role: &'static str| {
        let body = json!({"name": "alice", "role": role}).to_string();
        let endpoint = b.endpoint.clone();
        async move {
            raw(
                &endpoint,
                "POST",
                "/v1/credentials",
                &[("content-type", "application/json")],
                body.as_bytes(),
            )
            .await
        }
    };
    let first = create("read-only").await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let message = refused(&create("admin").await, 400, "ConflictException");
    assert!(message.contains("alice"), "{message}");
    let rotated = create("read-only").await;
    assert_eq!(
        rotated.status, 200,
        "a second key with the same role is a rotation"
    );
    let message = refused(&create("read-only").await, 400, "LimitExceededException");
    assert!(message.contains("2 access keys"), "{message}");

    // The refused ones were not made: alice has exactly the two read-only keys.
    let list = raw(&b.endpoint, "GET", "/v1/credentials", &[], b"")
        .await
        .json();
    let alices: Vec<&Value> = list["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "alice")
        .collect();
    assert_eq!(alices.len(), 2, "{list}");
    assert!(alices.iter().all(|c| c["role"] == "read-only"), "{list}");
}

/// A join token names a cluster agents may join: one that does not exist, or was deleted, is
/// refused when the token is made (ClusterNotFoundException, naming it), through the API and
/// the CLI alike. `default` may be named before it exists: an agent's join creates it.
#[tokio::test]
async fn a_join_token_is_refused_for_a_cluster_that_does_not_exist() {
    let b = Berth::start();
    let token_for = |cluster: &str| json!({ "cluster": cluster }).to_string();
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/join-tokens",
        &[("content-type", "application/json")],
        token_for("nope").as_bytes(),
    )
    .await;
    let message = r.expect_error("ClusterNotFoundException");
    assert!(message.contains("nope"), "{message}");

    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"gone"}"#).await;
    assert_eq!(r.status, 200);
    let r = ecs_op(&b.endpoint, "DeleteCluster", r#"{"cluster":"gone"}"#).await;
    assert_eq!(r.status, 200);
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/join-tokens",
        &[("content-type", "application/json")],
        token_for("gone").as_bytes(),
    )
    .await;
    let message = r.expect_error("ClusterNotFoundException");
    assert!(message.contains("gone"), "{message}");
    let r = raw(&b.endpoint, "GET", "/v1/join-tokens", &[], b"").await;
    assert_eq!(r.json()["joinTokens"], json!([]), "nothing was made");

    for cluster in ["default", "live"] {
        if cluster == "live" {
            let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"live"}"#).await;
            assert_eq!(r.status, 200);
        }
        let r = raw(
            &b.endpoint,
            "POST",
            "/v1/join-tokens",
            &[("content-type", "application/json")],
            token_for(cluster).as_bytes(),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{cluster}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "join-token",
            "create",
            "--cluster",
            "nope",
            "-q",
            "--endpoint",
        ])
        .arg(&b.endpoint)
        .arg("--credentials-file")
        .arg(b.credentials_file())
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run berth join-token create");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token is printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("ClusterNotFoundException").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("nope"), "{stderr}");
}

/// An agent whose join is refused says why once: the server's refusal is not repeated by
/// every layer of the error report.
#[tokio::test]
async fn an_agents_refused_join_is_reported_once() {
    let b = Berth::start();
    // A token for any cluster, and an agent asking for one that does not exist.
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/join-tokens",
        &[("content-type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let token = r.json()["token"].as_str().expect("a token").to_owned();
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["agent", "--server", &b.endpoint, "--cluster", "nope"])
        .args([
            "--token",
            &token,
            "--runtime",
            "hollow",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run berth agent");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("Cluster not found: nope").count(),
        1,
        "the refusal, once: {stderr}"
    );
    assert!(stderr.contains("ClusterNotFoundException"), "{stderr}");
    assert!(
        stderr.contains(&format!("joining through {}", b.endpoint)),
        "{stderr}"
    );
}

/// A server refuses to start with a cluster secret file or an admin credentials file that its
/// group or others may read, naming the file and the fix, as ssh refuses an open private key.
#[test]
fn secret_files_open_to_others_are_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    // The server's stderr once it exited; a server that started instead (its ready line on
    // stdout) is stopped and fails the test.
    let start = |data: &std::path::Path, extra: &[&str]| -> String {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run berth server");
        let stdout = child.stdout.take().unwrap();
        if let Some(Ok(line)) = std::io::BufReader::new(stdout).lines().next() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started: {line}");
        }
        let out = child.wait_with_output().expect("berth server's exit");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.secret");
    std::fs::write(
        &secret,
        ClusterSecret::from_random(*b"an open cluster secret file.....").render(),
    )
    .unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = secret.display().to_string();
    let stderr = start(&dir.path().join("data"), &["--cluster-secret-file", &path]);
    assert!(stderr.contains(&format!("chmod 600 {path}")), "{stderr}");
    assert!(stderr.contains("mode 644"), "{stderr}");

    // A data directory whose admin credentials file was opened up since its last start.
    let data = dir.path().join("own");
    std::fs::create_dir_all(&data).unwrap();
    let admin = data.join("admin.credentials");
    std::fs::write(&admin, "[default]\n").unwrap();
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o640)).unwrap();
    let stderr = start(&data, &[]);
    let path = admin.display().to_string();
    assert!(stderr.contains(&format!("chmod 600 {path}")), "{stderr}");
}
