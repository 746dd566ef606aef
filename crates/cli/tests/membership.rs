//! The servers' Raft group changes at run time: `berth server --join` adds a server (learner,
//! caught up, then voter) with a server join token; `berth operator raft remove-peer` takes
//! one out, refusing to leave the group without a caught-up quorum; a dead server is
//! replaced by a fresh one under a new id. Everything goes through the `berth` binary an
//! operator runs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{caught_up, join_cluster, leader_of, start_cluster};
use common::{Berth, credential, ecs_op, get_json, raw, raw_as, raw_unsigned};
use serde_json::Value;

/// A server join token made through `endpoint` as its admin.
async fn server_join_token(endpoint: &str) -> String {
    let r = raw(
        endpoint,
        "POST",
        "/v1/join-tokens",
        &[("content-type", "application/json")],
        br#"{"server": true}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["token"].as_str().unwrap().to_owned()
}

/// `berth server --join VIA --join-token TOKEN --node-id ID` with a fresh data directory.
fn join(dir: &Path, id: u64, via: &Berth, token: &str) -> Berth {
    join_cluster(dir, id, &via.endpoint, token, &[])
}

/// `berth operator raft ARGS...` against `server`, as its admin: the JSON it printed, or the
/// error it failed with.
fn operator(server: &Berth, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["operator", "raft"])
        .args(args)
        .args(["--endpoint", &server.endpoint, "--credentials-file"])
        .arg(server.credentials_file())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .expect("run berth operator");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON on stdout"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The voters' ids in a `list-peers`/`remove-peer` answer.
fn voters(answer: &Value) -> Vec<u64> {
    answer["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

async fn create_cluster(server: &Berth, name: &str) {
    let r = ecs_op(
        &server.endpoint,
        "CreateCluster",
        &format!(r#"{{"clusterName":"{name}"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn has_cluster(server: &Berth, name: &str) -> bool {
    let r = ecs_op(
        &server.endpoint,
        "DescribeClusters",
        &format!(r#"{{"clusters":["{name}"]}}"#),
    )
    .await;
    r.json()["clusters"][0]["status"] == "ACTIVE"
}

/// Waits until `server` has applied everything `leader` had applied when called.
async fn catch_up(leader: &Berth, server: &Berth) {
    let index = get_json(&leader.endpoint, "/v1/health").await["index"]
        .as_u64()
        .unwrap();
    caught_up(server, index).await;
}

/// A level from the server's `/metrics` (a gauge without labels).
async fn gauge(server: &Berth, name: &str) -> f64 {
    let r = raw(&server.endpoint, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_join_a_running_server_and_leave_on_request() {
    let root = tempfile::tempdir().unwrap();
    let first = Berth::start();
    create_cluster(&first, "before").await;
    let token = server_join_token(&first.endpoint).await;

    let second = join(&root.path().join("two"), 2, &first, &token);
    let third = join(&root.path().join("three"), 3, &first, &token);
    let peers = operator(&first, &["list-peers", "-o", "json"]).unwrap();
    assert_eq!(voters(&peers), [1, 2, 3], "{peers}");
    assert_eq!(peers["leader"], 1, "{peers}");
    let health = get_json(&third.endpoint, "/v1/health").await;
    assert_eq!(health["voters"], serde_json::json!([1, 2, 3]), "{health}");
    assert_eq!(health["quorum"], true, "{health}");
    assert_eq!(gauge(&third, "berth_raft_voters").await, 3.0);
    assert_eq!(gauge(&first, "berth_raft_learners").await, 0.0);
    assert_eq!(gauge(&first, "berth_raft_membership_changing").await, 0.0);

    // The joined servers hold what was written before they joined, and take writes.
    catch_up(&first, &second).await;
    assert!(has_cluster(&second, "before").await);
    create_cluster(&third, "after").await;
    assert!(has_cluster(&first, "after").await);

    // A fresh server cannot take the id of a live voter.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(root.path().join("impostor"))
        .args([
            "--node-id",
            "2",
            "--join",
            &first.endpoint,
            "--join-token",
            &token,
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("node 2 is already a voter"), "{stderr}");
    assert_eq!(
        voters(&operator(&first, &["list-peers", "-o", "json"]).unwrap()),
        [1, 2, 3]
    );

    // Only an admin changes the group; a read-only key may look; the Raft paths are the
    // servers' own.
    let reader = credential(&first, "reader", "read-only").await;
    let look = raw_as(
        &reader,
        &first.endpoint,
        "GET",
        "/v1/operator/raft/peers",
        &[],
        b"",
    )
    .await;
    assert_eq!(look.status, 200, "{}", String::from_utf8_lossy(&look.body));
    let path = "/v1/operator/raft/peers/3";
    let r = raw_as(&reader, &first.endpoint, "DELETE", path, &[], b"").await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["__type"], "AccessDeniedException");
    let r = raw_unsigned(&first.endpoint, "DELETE", path, &[], b"").await;
    assert_eq!(r.json()["__type"], "MissingAuthenticationTokenException");
    let evict = br#"{"change":"removeVoter","id":3,"force":true}"#;
    for raft_path in ["/v1/raft/membership", "/v1/raft/join"] {
        let r = raw(&first.endpoint, "POST", raft_path, &[], evict).await;
        assert!(
            r.status == 401 || r.status == 403,
            "the admin is no peer: {raft_path} answered {}",
            r.status
        );
    }
    assert_eq!(
        voters(&operator(&first, &["list-peers", "-o", "json"]).unwrap()),
        [1, 2, 3]
    );

    // Removed through a follower, which carries the change to the leader.
    let after = operator(&second, &["remove-peer", "3"]).unwrap();
    assert_eq!(voters(&after), [1, 2], "{after}");
    let health = get_json(&first.endpoint, "/v1/health").await;
    assert_eq!(health["voters"], serde_json::json!([1, 2]), "{health}");
    assert_eq!(gauge(&first, "berth_raft_voters").await, 2.0);
    let err = operator(&first, &["remove-peer", "3"]).unwrap_err();
    assert!(err.contains("node 3 is not a voter"), "{err}");
    create_cluster(&second, "without-three").await;
    drop(third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_replaced_by_a_new_one_under_a_new_id() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(root.path(), 3);
    let leader = leader_of(&nodes).await as usize;
    let token = server_join_token(&nodes[leader - 1].as_ref().unwrap().endpoint).await;
    create_cluster(nodes[0].as_ref().unwrap(), "kept").await;
    // The dead server is one that does not lead, so the survivors keep their leader.
    let dead = (1..=3).rev().find(|n| *n != leader).unwrap();
    let live = (1..=3).find(|n| *n != leader && *n != dead).unwrap();
    nodes[dead - 1].take().unwrap().kill();
    let via = nodes[leader - 1].as_ref().unwrap();

    // Removing the other live server would leave the dead one and the leader: refused.
    let err = operator(via, &["remove-peer", &live.to_string()]).unwrap_err();
    assert!(
        err.contains("ClientException") && err.contains("quorum"),
        "{err}"
    );
    let peers = operator(via, &["list-peers", "-o", "json"]).unwrap();
    assert_eq!(voters(&peers).len(), 3, "{peers}");

    // The documented procedure: remove the dead server, then join a fresh one.
    let after = operator(via, &["remove-peer", &dead.to_string()]).unwrap();
    assert_eq!(voters(&after).len(), 2, "{after}");
    let fresh = join(&root.path().join("node4"), 4, via, &token);
    let peers = operator(via, &["list-peers", "-o", "json"]).unwrap();
    let mut expected = vec![leader as u64, live as u64, 4];
    expected.sort();
    assert_eq!(voters(&peers), expected, "{peers}");
    catch_up(via, &fresh).await;
    assert!(has_cluster(&fresh, "kept").await);

    // The new server is a voter in earnest: with the other original server gone too, the
    // leader and the new server are a quorum of three and still take writes.
    nodes[live - 1].take().unwrap().kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = ecs_op(
            &fresh.endpoint,
            "CreateCluster",
            r#"{"clusterName":"two-of-three"}"#,
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write through the new server: {}",
            String::from_utf8_lossy(&r.body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let via = nodes[leader - 1].as_ref().unwrap();
    assert!(has_cluster(via, "two-of-three").await);
}
