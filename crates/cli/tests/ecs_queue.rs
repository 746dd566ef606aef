//! Queued RunTask through aws-sdk-ecs against a real server and a real hollow agent: on a full
//! cluster a RunTask tagged `berth:queue-timeout` answers PROVISIONING tasks (counted pending,
//! listed, explained), which drain in queue order to RUNNING as tasks stop; a wait that runs
//! out is STOPPED with ECS's stop code and reason; StopTask takes a queued task out at once;
//! without the tag RunTask still fails RESOURCE:MEMORY; bad tag values are refused; the
//! cluster's tag is a default; and 200 queued tasks drain in order.

mod common;

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, DesiredStatus, Tag, Task};
use common::agent::AgentProcess;
use common::{Berth, eventually, expect_error, raw};

const TAG: &str = "berth:queue-timeout";

/// Registers family `job`: one container of `memory` MiB.
async fn family(ecs: &Client, memory: i32) {
    ecs.register_task_definition()
        .family("job")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .cpu(1)
                .memory(memory)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn wait_tag(seconds: &str) -> Tag {
    Tag::builder().key(TAG).value(seconds).build()
}

/// RunTask of `count` tasks of `job` in `cluster`, waiting up to `wait` seconds when given.
async fn run(
    ecs: &Client,
    cluster: &str,
    count: i32,
    wait: Option<&str>,
) -> (Vec<Task>, Vec<String>) {
    let out = ecs
        .run_task()
        .cluster(cluster)
        .task_definition("job")
        .count(count)
        .set_tags(wait.map(|w| vec![wait_tag(w)]))
        .send()
        .await
        .unwrap();
    let reasons = out
        .failures()
        .iter()
        .filter_map(|f| f.reason().map(str::to_owned))
        .collect();
    (out.tasks().to_vec(), reasons)
}

fn id(t: &Task) -> String {
    t.task_arn().unwrap().rsplit('/').next().unwrap().to_owned()
}

async fn describe(ecs: &Client, cluster: &str, ids: &[String]) -> Vec<Task> {
    let mut out = Vec::new();
    for chunk in ids.chunks(100) {
        let d = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        out.extend(d.tasks().iter().cloned());
    }
    out.sort_by_key(|t| ids.iter().position(|i| *i == id(t)));
    out
}

async fn status_of(ecs: &Client, cluster: &str, id: &str) -> String {
    describe(ecs, cluster, &[id.to_owned()]).await[0]
        .last_status()
        .unwrap()
        .to_owned()
}

async fn until_status(ecs: &Client, cluster: &str, id: &str, status: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("{id} {status}"),
        || async { status_of(ecs, cluster, id).await == status },
    )
    .await;
}

/// Queue order: created, then task id (ids are fixed-width hex, so text order is id order).
fn queue_order(mut tasks: Vec<Task>) -> Vec<String> {
    tasks.sort_by(|a, b| {
        (a.created_at().map(|t| t.as_nanos()), id(a))
            .cmp(&(b.created_at().map(|t| t.as_nanos()), id(b)))
    });
    tasks.iter().map(id).collect()
}

async fn cluster(ecs: &Client, name: &str, tags: Vec<Tag>) {
    ecs.create_cluster()
        .cluster_name(name)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_cluster_queues_run_task_and_drains_it_in_order() {
    const C: &str = "q";
    let b = Berth::start();
    let ecs = b.client();
    cluster(&ecs, C, Vec::new()).await;
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "1024"],
    );
    family(&ecs, 512).await;

    // Full: two tasks take all the memory.
    let (running, _) = run(&ecs, C, 2, None).await;
    let running: Vec<String> = running.iter().map(id).collect();
    for r in &running {
        until_status(&ecs, C, r, "RUNNING").await;
    }
    // Without the tag: ECS's all-or-nothing answer, as before.
    let (tasks, reasons) = run(&ecs, C, 1, None).await;
    assert!(tasks.is_empty());
    assert_eq!(reasons, ["RESOURCE:MEMORY"]);

    // With it: PROVISIONING tasks on no instance.
    let (first, reasons) = run(&ecs, C, 2, Some("600")).await;
    assert!(reasons.is_empty(), "{reasons:?}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (last, _) = run(&ecs, C, 1, Some("600")).await;
    let queued: Vec<Task> = first.into_iter().chain(last).collect();
    for t in &queued {
        assert_eq!(t.last_status(), Some("PROVISIONING"));
        assert_eq!(t.desired_status(), Some("RUNNING"));
        assert_eq!(t.container_instance_arn(), None);
    }
    let order = queue_order(queued.clone());
    let clusters = ecs.describe_clusters().clusters(C).send().await.unwrap();
    assert_eq!(clusters.clusters()[0].pending_tasks_count(), 3);
    assert_eq!(clusters.clusters()[0].running_tasks_count(), 2);
    let listed = ecs
        .list_tasks()
        .cluster(C)
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.task_arns().len(),
        5,
        "queued tasks are listed as RUNNING-desired"
    );

    // Where the last one stands, and what it waits for.
    let standing = raw(
        &b.endpoint,
        "GET",
        &format!("/v1/placement/queue/{C}/{}", order[2]),
        &[],
        b"",
    )
    .await;
    assert_eq!(
        standing.status,
        200,
        "{}",
        String::from_utf8_lossy(&standing.body)
    );
    let standing = standing.json();
    assert_eq!(standing["position"], 3);
    assert_eq!(standing["queued"], 3);
    assert_eq!(standing["waitsFor"][0]["reason"], "RESOURCE:MEMORY");
    let metrics = raw(&b.endpoint, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("berth_queued_tasks{cluster=\"q\"} 3"),
        "{text}"
    );
    // The dry-run says the same RunTask would wait, behind three.
    let dry = raw(
        &b.endpoint,
        "POST",
        "/v1/placement/dry-run",
        &[("content-type", "application/json")],
        serde_json::json!({
            "cluster": C, "taskDefinition": "job",
            "tags": [{"key": TAG, "value": "60"}],
        })
        .to_string()
        .as_bytes(),
    )
    .await
    .json();
    assert_eq!(
        (dry["queued"].clone(), dry["queuedAhead"].clone()),
        (1.into(), 3.into())
    );

    // Capacity frees one task at a time: the head of the queue takes it.
    ecs.stop_task()
        .cluster(C)
        .task(&running[0])
        .send()
        .await
        .unwrap();
    until_status(&ecs, C, &order[0], "RUNNING").await;
    assert_eq!(status_of(&ecs, C, &order[1]).await, "PROVISIONING");
    assert_eq!(status_of(&ecs, C, &order[2]).await, "PROVISIONING");
    ecs.stop_task()
        .cluster(C)
        .task(&running[1])
        .send()
        .await
        .unwrap();
    until_status(&ecs, C, &order[1], "RUNNING").await;
    assert_eq!(status_of(&ecs, C, &order[2]).await, "PROVISIONING");

    // StopTask takes a queued task out at once.
    let stopped = ecs
        .stop_task()
        .cluster(C)
        .task(&order[2])
        .send()
        .await
        .unwrap();
    let t = stopped.task().unwrap();
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.stop_code().map(|c| c.as_str()), Some("UserInitiated"));

    // A wait that runs out: STOPPED, in ECS's words.
    let (waiting, _) = run(&ecs, C, 1, Some("1")).await;
    let late = id(&waiting[0]);
    until_status(&ecs, C, &late, "STOPPED").await;
    let t = &describe(&ecs, C, &[late]).await[0];
    assert_eq!(t.stop_code().map(|c| c.as_str()), Some("TaskFailedToStart"));
    assert_eq!(
        t.stopped_reason(),
        Some("TaskFailedToStart: RESOURCE:MEMORY")
    );
    assert_eq!(t.container_instance_arn(), None);

    // Values that are not 1 second to 7 days are refused wherever the tag is given.
    for bad in ["0", "soon", "604801", "1.5"] {
        let e = expect_error(
            ecs.run_task()
                .cluster(C)
                .task_definition("job")
                .tags(wait_tag(bad))
                .send()
                .await,
            "InvalidParameterException",
        );
        assert!(e.contains(TAG), "{e}");
        expect_error(
            ecs.tag_resource()
                .resource_arn(clusters.clusters()[0].cluster_arn().unwrap())
                .tags(wait_tag(bad))
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    // The cluster's tag is the default for RunTasks that give none.
    ecs.tag_resource()
        .resource_arn(clusters.clusters()[0].cluster_arn().unwrap())
        .tags(wait_tag("600"))
        .send()
        .await
        .unwrap();
    let (tasks, reasons) = run(&ecs, C, 1, None).await;
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(tasks[0].last_status(), Some("PROVISIONING"));
}

#[tokio::test]
async fn two_hundred_queued_tasks_drain_in_queue_order() {
    const C: &str = "drain";
    const SLOTS: usize = 10;
    let b = Berth::start();
    let ecs = b.client();
    cluster(&ecs, C, vec![wait_tag("600")]).await;
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "640"],
    );
    family(&ecs, 64).await;
    let (hogs, _) = run(&ecs, C, SLOTS as i32, None).await;
    assert_eq!(hogs.len(), SLOTS);
    let mut queued = Vec::new();
    for _ in 0..20 {
        let (tasks, reasons) = run(&ecs, C, 10, None).await;
        assert!(reasons.is_empty(), "{reasons:?}");
        queued.extend(tasks);
    }
    assert!(
        queued
            .iter()
            .all(|t| t.last_status() == Some("PROVISIONING"))
    );
    let order = queue_order(queued);
    let mut running: Vec<String> = hogs.iter().map(id).collect();
    let mut placed = 0;
    while placed < order.len() {
        for r in running.drain(..) {
            ecs.stop_task().cluster(C).task(&r).send().await.unwrap();
        }
        // The next SLOTS in queue order, and only they, leave PROVISIONING.
        let want = (placed + SLOTS).min(order.len());
        eventually(Duration::from_secs(20), "the next tasks placed", || async {
            let seen = describe(&ecs, C, &order).await;
            seen.iter()
                .filter(|t| t.last_status() != Some("PROVISIONING"))
                .count()
                >= want
        })
        .await;
        let seen = describe(&ecs, C, &order).await;
        for (k, t) in seen.iter().enumerate() {
            let waiting = t.last_status() == Some("PROVISIONING");
            assert_eq!(waiting, k >= want, "task {k} of the queue ({})", id(t));
        }
        running = order[placed..want].to_vec();
        for r in &running {
            until_status(&ecs, C, r, "RUNNING").await;
        }
        placed = want;
    }
}
