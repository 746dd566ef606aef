//! Honest failover: a server that cannot reach a quorum says so on `/v1/health` and answers
//! writes within the configured bound with a 503 `ServerException` whose message says the
//! outcome is unknown, instead of holding the caller until the quorum is back; once it is
//! back the same server takes writes again. Linearizable reads (a read barrier confirmed by a
//! quorum) are refused without a quorum and see the latest acknowledged write on any server.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{leader_of, start_cluster_with};
use common::{RawResponse, ecs_op, raw};

/// The write bound the servers of these tests run with.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1500);

async fn health(endpoint: &str) -> RawResponse {
    raw(endpoint, "GET", "/v1/health", &[], b"").await
}

/// Polls `endpoint`'s health until `wanted` returns true for it (at most 20 s).
async fn health_until(endpoint: &str, what: &str, wanted: impl Fn(&RawResponse) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = health(endpoint).await;
        if wanted(&h) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} never reported {what}: {} {}",
            h.status,
            String::from_utf8_lossy(&h.body)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn no_quorum(h: &RawResponse) -> bool {
    h.status == 503 && h.json()["status"] == "no-quorum" && h.json()["quorum"] == false
}

fn quorum(h: &RawResponse) -> bool {
    h.status == 200 && h.json()["status"] == "ok" && h.json()["quorum"] == true
}

/// Sends CreateCluster `name` to `endpoint`; the answer and how long it took.
async fn create_cluster(endpoint: &str, name: &str) -> (RawResponse, Duration) {
    let started = Instant::now();
    let body = format!(r#"{{"clusterName":"{name}"}}"#);
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        ecs_op(endpoint, "CreateCluster", &body),
    )
    .await
    .expect("a write without quorum must be answered, not held");
    (answer, started.elapsed())
}

/// DescribeClusters of `name` through `endpoint`, linearizable (the read-barrier header) or
/// as the server serves it by default.
async fn describe_cluster(endpoint: &str, name: &str, linearizable: bool) -> RawResponse {
    let target = format!("{}DescribeClusters", common::TARGET_PREFIX);
    let mut headers = vec![
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    if linearizable {
        headers.push(("x-berth-read-consistency", "linearizable"));
    }
    let body = format!(r#"{{"clusters":["{name}"]}}"#);
    tokio::time::timeout(
        Duration::from_secs(30),
        raw(endpoint, "POST", "/", &headers, body.as_bytes()),
    )
    .await
    .expect("a read without quorum must be answered, not held")
}

/// Asserts the answer to a write that no quorum acknowledged.
#[track_caller]
fn expect_unacknowledged(answer: &RawResponse, took: Duration) {
    let body = answer.json();
    assert_eq!(answer.status, 503, "{body}");
    assert_eq!(body["__type"], "ServerException", "{body}");
    assert_eq!(answer.header("x-amzn-errortype"), Some("ServerException"));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("may or may not take effect") && message.contains("clientToken"),
        "the message must say the outcome is unknown and how to retry: {message}"
    );
    // The bound is the configured write timeout; the margin is for a loaded test machine.
    assert!(
        took >= WRITE_TIMEOUT && took < WRITE_TIMEOUT + Duration::from_secs(3),
        "answered after {took:?}, the bound is {WRITE_TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_quorum_says_so_and_bounds_its_writes() {
    let root = tempfile::tempdir().unwrap();
    let timeout_ms = WRITE_TIMEOUT.as_millis().to_string();
    let mut nodes = start_cluster_with(root.path(), 3, &["--write-timeout-ms", &timeout_ms]);
    let leader = leader_of(&nodes).await;
    for n in nodes.iter().flatten() {
        health_until(&n.endpoint, "a quorum", quorum).await;
        let h = health(&n.endpoint).await.json();
        assert_eq!(h["leader"], leader, "{h}");
        assert_eq!(h["voters"], serde_json::json!([1, 2, 3]), "{h}");
        assert!(h["term"].as_u64().unwrap() >= 1, "{h}");
    }
    let leader_endpoint = nodes[leader as usize - 1]
        .as_ref()
        .unwrap()
        .endpoint
        .clone();
    let (answer, _) = create_cluster(&leader_endpoint, "before").await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    // Both followers die: the leader still believes it leads, but no write can commit.
    let followers: Vec<usize> = (0..3).filter(|i| *i + 1 != leader as usize).collect();
    for &i in &followers {
        nodes[i].as_mut().unwrap().kill();
    }
    health_until(&leader_endpoint, "the lost quorum", no_quorum).await;
    let (answer, took) = create_cluster(&leader_endpoint, "alone").await;
    expect_unacknowledged(&answer, took);
    // A plain read is served from the leader's state; a linearizable one cannot be
    // confirmed by a quorum, and says so within the bound rather than risk a stale answer.
    let plain = describe_cluster(&leader_endpoint, "before", false).await;
    assert_eq!(
        plain.status,
        200,
        "{}",
        String::from_utf8_lossy(&plain.body)
    );
    let started = Instant::now();
    let strict = describe_cluster(&leader_endpoint, "before", true).await;
    assert_eq!(
        strict.status,
        503,
        "{}",
        String::from_utf8_lossy(&strict.body)
    );
    assert_eq!(strict.json()["__type"], "ServerException");
    assert!(started.elapsed() < WRITE_TIMEOUT + Duration::from_secs(3));

    // One follower comes back: a quorum again, and the same server takes writes.
    nodes[followers[0]].as_mut().unwrap().restart();
    let back = nodes[followers[0]].as_ref().unwrap().endpoint.clone();
    health_until(&leader_endpoint, "a quorum again", quorum).await;
    let (answer, _) = create_cluster(&leader_endpoint, "together").await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let r = ecs_op(
        &back,
        "DescribeClusters",
        r#"{"clusters":["before","together"]}"#,
    )
    .await;
    let described = r.json();
    let names: Vec<&str> = described["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clusterName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["before", "together"], "{described}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_leader_and_peer_died_says_so_and_bounds_its_writes() {
    let root = tempfile::tempdir().unwrap();
    let timeout_ms = WRITE_TIMEOUT.as_millis().to_string();
    let mut nodes = start_cluster_with(root.path(), 3, &["--write-timeout-ms", &timeout_ms]);
    let leader = leader_of(&nodes).await as usize;
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    for i in (1..=3).filter(|n| *n != survivor) {
        nodes[i - 1].as_mut().unwrap().kill();
    }
    let endpoint = nodes[survivor - 1].as_ref().unwrap().endpoint.clone();
    // It says so at once (its leader proves no quorum), and names no leader once its
    // election timer has run out.
    health_until(&endpoint, "the lost quorum", no_quorum).await;
    health_until(&endpoint, "no leader", |h| {
        no_quorum(h) && h.json()["leader"].is_null()
    })
    .await;
    let (answer, took) = create_cluster(&endpoint, "alone").await;
    expect_unacknowledged(&answer, took);
    let strict = describe_cluster(&endpoint, "default", true).await;
    assert_eq!(
        strict.status,
        503,
        "{}",
        String::from_utf8_lossy(&strict.body)
    );
}

/// Reported: with the quorum lost, a follower that still heard its leader said "ok" while no
/// write could commit. A follower reports a quorum only when its leader proves one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_a_leader_without_quorum_says_so() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster_with(root.path(), 5, &[]);
    let leader = leader_of(&nodes).await;
    let followers: Vec<usize> = (0..5).filter(|i| *i + 1 != leader as usize).collect();
    let survivor = nodes[followers[0]].as_ref().unwrap().endpoint.clone();
    health_until(&survivor, "a quorum", quorum).await;
    // Three of five gone: the leader and one follower are left, and still hear each other.
    for &i in &followers[1..] {
        nodes[i].as_mut().unwrap().kill();
    }
    health_until(&survivor, "the lost quorum", no_quorum).await;
    let h = health(&survivor).await.json();
    assert_eq!(h["leader"], leader, "it still hears its leader: {h}");
}
