//! Several servers form one Raft group through configuration alone (`--node-id`, `--peer`):
//! writes sent to any server are forwarded to the leader, every server serves the same state,
//! losing the leader elects another, and a restarted server catches up.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ContainerDefinition, Resource};
use common::cluster::{caught_up, leader_of, start_cluster, start_cluster_with};
use common::get_json;

/// Over TLS, servers given only the cluster secret derive the same CA, so they trust each
/// other's certificates: they elect a leader, forward writes to it and replicate them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_over_tls_trust_each_other_through_the_cluster_secret() {
    let root = tempfile::tempdir().unwrap();
    let nodes = start_cluster_with(root.path(), 3, &["--tls"]);
    let cas: Vec<Vec<u8>> = nodes
        .iter()
        .flatten()
        .map(|n| std::fs::read(n.data_dir.join("ca.pem")).unwrap())
        .collect();
    assert!(
        cas.windows(2).all(|w| w[0] == w[1]),
        "one CA for the cluster"
    );
    let leader = leader_of(&nodes).await;
    let follower = nodes[(1..=3).find(|id| *id != leader).unwrap() as usize - 1]
        .as_ref()
        .unwrap();
    assert!(follower.endpoint.starts_with("https://"));
    let r = common::ecs_op(
        &follower.endpoint,
        "CreateCluster",
        r#"{"clusterName":"tls"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let index = get_json(&follower.endpoint, "/v1/health").await["index"]
        .as_u64()
        .unwrap();
    for n in nodes.iter().flatten() {
        caught_up(n, index).await;
        let r = common::ecs_op(&n.endpoint, "DescribeClusters", r#"{"clusters":["tls"]}"#).await;
        assert_eq!(
            r.json()["clusters"][0]["status"],
            "ACTIVE",
            "{}",
            n.endpoint
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_replicate_forward_writes_and_survive_losing_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(root.path(), 3);
    let leader = leader_of(&nodes).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let via_follower = nodes[follower as usize - 1].as_ref().unwrap().client();

    // Writes through a follower are forwarded to the leader.
    via_follower
        .create_cluster()
        .cluster_name("ha")
        .send()
        .await
        .unwrap();
    via_follower
        .register_task_definition()
        .family("svc")
        .container_definitions(
            ContainerDefinition::builder()
                .name("c")
                .image("busybox")
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
    via_follower
        .register_container_instance()
        .cluster("ha")
        .total_resources(
            Resource::builder()
                .name("CPU")
                .r#type("INTEGER")
                .integer_value(4096)
                .build(),
        )
        .total_resources(
            Resource::builder()
                .name("MEMORY")
                .r#type("INTEGER")
                .integer_value(4096)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let run = via_follower
        .run_task()
        .cluster("ha")
        .task_definition("svc")
        .count(3)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 3, "{:?}", run.failures());
    let arns: Vec<String> = run
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect();

    // Every server serves the replicated state.
    let index = get_json(
        &nodes[leader as usize - 1].as_ref().unwrap().endpoint,
        "/v1/health",
    )
    .await["index"]
        .as_u64()
        .unwrap();
    for n in nodes.iter().flatten() {
        caught_up(n, index).await;
        let out = n
            .client()
            .describe_tasks()
            .cluster("ha")
            .set_tasks(Some(arns.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.tasks().len(), 3, "{} serves the tasks", n.endpoint);
    }

    // A Mesos framework that reaches a follower is sent to the leader, as a Mesos master that
    // is not leading does.
    let follower_endpoint = &nodes[follower as usize - 1].as_ref().unwrap().endpoint;
    let leader_endpoint = &nodes[leader as usize - 1].as_ref().unwrap().endpoint;
    let subscribe =
        br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#;
    let r = common::raw(
        follower_endpoint,
        "POST",
        "/api/v1/scheduler",
        &[("content-type", "application/json")],
        subscribe,
    )
    .await;
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("location"),
        Some(format!("{leader_endpoint}/api/v1/scheduler").as_str())
    );

    // Lose the leader: the other two elect a new one and keep accepting writes.
    nodes[leader as usize - 1].as_mut().unwrap().kill();
    let killed = nodes[leader as usize - 1].take().unwrap();
    let new_leader = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut found = None;
            for n in nodes.iter().flatten() {
                let h = get_json(&n.endpoint, "/v1/health").await;
                if let Some(l) = h["leader"].as_u64().filter(|l| *l != leader) {
                    found = Some(l);
                }
            }
            if let Some(l) = found {
                break l;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader after losing {leader}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_ne!(new_leader, leader);
    let survivor = nodes.iter().flatten().next().unwrap().client();
    let more = survivor
        .run_task()
        .cluster("ha")
        .task_definition("svc")
        .count(2)
        .send()
        .await
        .unwrap();
    assert_eq!(more.tasks().len(), 2, "{:?}", more.failures());
    let before = survivor
        .describe_tasks()
        .cluster("ha")
        .set_tasks(Some(arns.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        before.tasks().len(),
        3,
        "writes acknowledged before the failover are kept"
    );

    // The old leader comes back as a follower and catches up.
    let mut back = killed;
    back.restart();
    let index = get_json(
        &nodes[new_leader as usize - 1].as_ref().unwrap().endpoint,
        "/v1/health",
    )
    .await["index"]
        .as_u64()
        .unwrap();
    caught_up(&back, index).await;
    let listed = back
        .client()
        .list_tasks()
        .cluster("ha")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_arns().len(), 5);
}
