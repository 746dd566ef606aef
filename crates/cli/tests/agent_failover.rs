//! An agent given every server of a three-server cluster keeps running its tasks and
//! reporting through the loss of the server it talks to: a real `berth agent` process (hollow
//! runtime, no Docker) and three `berth server` processes, each killed with SIGKILL in turn.

mod common;

use std::time::{Duration, Instant};

use common::agent::AgentProcess;
use common::cluster::{leader_of, start_cluster_with};
use common::{Berth, ecs_op, eventually, get_json};
use serde_json::{Value, json};

const CLUSTER: &str = "ha";

/// Seconds the leader waits on a silent agent before it marks it disconnected.
const HEARTBEAT_TIMEOUT: u64 = 3;

async fn ok(b: &Berth, op: &str, body: Value) -> Value {
    let r = ecs_op(&b.endpoint, op, &body.to_string()).await;
    assert_eq!(
        r.status,
        200,
        "{op} on {}: {}",
        b.endpoint,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

async fn task(b: &Berth, arn: &str) -> Value {
    ok(
        b,
        "DescribeTasks",
        json!({"cluster": CLUSTER, "tasks": [arn]}),
    )
    .await["tasks"][0]
        .clone()
}

async fn instance(b: &Berth, arn: &str) -> Value {
    ok(
        b,
        "DescribeContainerInstances",
        json!({"cluster": CLUSTER, "containerInstances": [arn]}),
    )
    .await["containerInstances"][0]
        .clone()
}

async fn run(b: &Berth) -> String {
    let r = ok(
        b,
        "RunTask",
        json!({"cluster": CLUSTER, "taskDefinition": "app"}),
    )
    .await;
    assert_eq!(r["failures"], json!([]), "{r}");
    r["tasks"][0]["taskArn"].as_str().unwrap().to_owned()
}

/// Waits until a server other than `old` leads, as `survivor` sees it.
async fn new_leader(survivor: &Berth, old: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = get_json(&survivor.endpoint, "/v1/health").await;
        if let Some(l) = h["leader"].as_u64().filter(|l| *l != old) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader after losing {old}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For longer than the heartbeat timeout (counted from when a leader was there to count it),
/// the instance is connected every time `survivor` is asked and `tasks` stay RUNNING.
async fn stays_connected(survivor: &Berth, instance_arn: &str, tasks: &[&str], what: &str) {
    let until = Instant::now() + Duration::from_secs(2 * HEARTBEAT_TIMEOUT + 2);
    while Instant::now() < until {
        let i = instance(survivor, instance_arn).await;
        assert_eq!(i["agentConnected"], true, "{what}: {i}");
        for arn in tasks {
            let t = task(survivor, arn).await;
            assert_eq!(t["lastStatus"], "RUNNING", "{what}: {t}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Three servers (the leader first), a hollow agent given all three, and one task RUNNING.
struct Setup {
    servers: Vec<Berth>,
    /// The Raft node id of each of `servers`.
    ids: Vec<u64>,
    agent: AgentProcess,
    task: String,
    _root: tempfile::TempDir,
}

async fn setup(extra: &[&str]) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let timeout = HEARTBEAT_TIMEOUT.to_string();
    let mut flags = vec!["--agent-heartbeat-timeout", &timeout];
    flags.extend_from_slice(extra);
    let nodes = start_cluster_with(root.path(), 3, &flags);
    // Node ids are 1-based positions in `nodes`; put the leader first, so that the server the
    // agent starts with is the leader and losing it costs an election too.
    let leader = leader_of(&nodes).await;
    let mut servers: Vec<Berth> = nodes.into_iter().map(Option::unwrap).collect();
    let mut ids: Vec<u64> = (1..=3).collect();
    servers.swap(0, leader as usize - 1);
    ids.swap(0, leader as usize - 1);
    let urls: Vec<String> = servers.iter().map(|s| s.endpoint.clone()).collect();

    ok(
        &servers[1],
        "CreateCluster",
        json!({"clusterName": CLUSTER}),
    )
    .await;
    ok(
        &servers[1],
        "RegisterTaskDefinition",
        json!({"family": "app", "containerDefinitions": [
            {"name": "web", "image": "app:1", "cpu": 256, "memory": 128}
        ]}),
    )
    .await;
    // The first server from the helper's `--server`, the other two as one comma-separated
    // `--server`: both forms add to the list. Over TLS the join token pins the cluster CA,
    // which then has to hold for all three.
    let others = format!("{},{}", urls[1], urls[2]);
    let agent = AgentProcess::start(
        &urls[0],
        CLUSTER,
        &[
            "--server",
            &others,
            "--runtime",
            "hollow",
            "--cpu",
            "2048",
            "--memory",
            "4096",
            "--poll-wait",
            "1",
        ],
    );
    // The agent registered through the leader; a follower plans on its own applied state,
    // which may trail by a moment (reads are not linearizable by default).
    eventually(
        Duration::from_secs(15),
        "the instance known to a follower",
        || async { instance(&servers[1], &agent.instance_arn).await["agentConnected"] == true },
    )
    .await;
    let task = run(&servers[1]).await;
    eventually(Duration::from_secs(15), "the task RUNNING", || async {
        self::task(&servers[1], &task).await["lastStatus"] == "RUNNING"
    })
    .await;
    Setup {
        servers,
        ids,
        agent,
        task,
        _root: root,
    }
}

/// Stops `tasks` through `survivor` and waits until the agent has reported them STOPPED.
async fn stop_through(survivor: &Berth, tasks: &[&str]) {
    for arn in tasks {
        ok(
            survivor,
            "StopTask",
            json!({"cluster": CLUSTER, "task": arn, "reason": "done"}),
        )
        .await;
    }
    for arn in tasks {
        eventually(Duration::from_secs(15), "the task STOPPED", || async {
            task(survivor, arn).await["lastStatus"] == "STOPPED"
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_given_three_servers_keeps_working_through_the_loss_of_each() {
    let started = Instant::now();
    let Setup {
        mut servers,
        ids,
        agent,
        task: first,
        _root,
    } = setup(&[]).await;
    let inst = agent.instance_arn.clone();

    // Lose the leader, which the agent talks to (the first server it was given).
    servers[0].kill();
    let elected = new_leader(&servers[1], ids[0]).await;
    stays_connected(
        &servers[1],
        &inst,
        &[&first],
        "after losing the first server",
    )
    .await;
    // It still takes new work, and reports it, through the others.
    let second = run(&servers[2]).await;
    eventually(Duration::from_secs(15), "a new task RUNNING", || async {
        task(&servers[1], &second).await["lastStatus"] == "RUNNING"
    })
    .await;

    // The first server comes back; now lose the second, which the agent moved on to.
    servers[0].restart();
    servers[1].kill();
    if elected == ids[1] {
        new_leader(&servers[2], ids[1]).await;
    }
    stays_connected(
        &servers[2],
        &inst,
        &[&first, &second],
        "after losing the second server",
    )
    .await;

    // Stopping works through what is left: the agent polls the stop and reports it done.
    stop_through(&servers[2], &[&first, &second]).await;
    let i = instance(&servers[0], &inst).await;
    assert_eq!(i["agentConnected"], true, "{i}");
    eprintln!("agent failover test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_ca_the_token_pinned_holds_for_every_server() {
    let Setup {
        mut servers,
        ids,
        agent,
        task,
        _root,
    } = setup(&["--tls"]).await;
    assert!(servers[1].endpoint.starts_with("https://"));
    servers[0].kill();
    new_leader(&servers[1], ids[0]).await;
    stays_connected(&servers[1], &agent.instance_arn, &[&task], "over TLS").await;
    stop_through(&servers[2], &[&task]).await;
}
