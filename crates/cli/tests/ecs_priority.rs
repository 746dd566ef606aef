//! Task priorities through aws-sdk-ecs against a real server and a real hollow agent: on a full
//! cluster a low-priority queued RunTask and then a high-priority one — when capacity frees,
//! the high-priority one is placed first; the priority comes from the most specific
//! `berth:priority` tag (the RunTask's over the task definition's); berth's own views show it;
//! and bad values are refused wherever the tag can be set.

mod common;

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, Tag, Task};
use common::agent::AgentProcess;
use common::{Berth, eventually, expect_error, raw};

const PRIORITY: &str = "berth:priority";
const WAIT: &str = "berth:queue-timeout";
const C: &str = "prio";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn id(t: &Task) -> String {
    t.task_arn().unwrap().rsplit('/').next().unwrap().to_owned()
}

async fn status_of(ecs: &Client, id: &str) -> String {
    let d = ecs
        .describe_tasks()
        .cluster(C)
        .tasks(id)
        .send()
        .await
        .unwrap();
    d.tasks()[0].last_status().unwrap().to_owned()
}

async fn until_status(ecs: &Client, id: &str, status: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("{id} {status}"),
        || async { status_of(ecs, id).await == status },
    )
    .await;
}

/// RunTask of one `job` with `tags`; its one task.
async fn run(ecs: &Client, tags: Vec<Tag>) -> Task {
    let out = ecs
        .run_task()
        .cluster(C)
        .task_definition("job")
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    out.tasks()[0].clone()
}

/// Where a queued task stands (`GET /v1/placement/queue/...`).
async fn standing(b: &Berth, id: &str) -> serde_json::Value {
    let r = raw(
        &b.endpoint,
        "GET",
        &format!("/v1/placement/queue/{C}/{id}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn a_high_priority_queued_task_is_placed_before_an_earlier_low_priority_one() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "1024"],
    );
    // The definition asks for 300; a RunTask's own tag overrides it.
    ecs.register_task_definition()
        .family("job")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .cpu(1)
                .memory(512)
                .build(),
        )
        .tags(tag(PRIORITY, "300"))
        .send()
        .await
        .unwrap();

    // Full: two tasks take all the memory.
    let hogs = [run(&ecs, vec![]).await, run(&ecs, vec![]).await];
    for h in &hogs {
        until_status(&ecs, &id(h), "RUNNING").await;
    }
    // First a low-priority task queues, then one with the definition's priority.
    let low = run(&ecs, vec![tag(WAIT, "600"), tag(PRIORITY, "50")]).await;
    let high = run(&ecs, vec![tag(WAIT, "600")]).await;
    for t in [&low, &high] {
        assert_eq!(t.last_status(), Some("PROVISIONING"));
    }
    let (low, high) = (id(&low), id(&high));

    // berth's own views say so; DescribeTasks stays ECS-shaped.
    let s = standing(&b, &high).await;
    assert_eq!(
        (s["priority"].clone(), s["position"].clone()),
        (300.into(), 1.into())
    );
    let s = standing(&b, &low).await;
    assert_eq!(
        (s["priority"].clone(), s["position"].clone()),
        (50.into(), 2.into())
    );
    let dry = raw(
        &b.endpoint,
        "POST",
        "/v1/placement/dry-run",
        &[("content-type", "application/json")],
        serde_json::json!({
            "cluster": C, "taskDefinition": "job",
            "tags": [{"key": WAIT, "value": "60"}, {"key": PRIORITY, "value": "100"}],
        })
        .to_string()
        .as_bytes(),
    )
    .await
    .json();
    assert_eq!(dry["priority"], 100);
    assert_eq!(dry["queued"], 1);
    assert_eq!(
        dry["queuedAhead"], 1,
        "only the 300 is ahead of a 100: the 50 is behind"
    );

    // Room for one: the high-priority task takes it, though it came second.
    ecs.stop_task()
        .cluster(C)
        .task(id(&hogs[0]))
        .send()
        .await
        .unwrap();
    until_status(&ecs, &high, "RUNNING").await;
    assert_eq!(status_of(&ecs, &low).await, "PROVISIONING");
    ecs.stop_task()
        .cluster(C)
        .task(id(&hogs[1]))
        .send()
        .await
        .unwrap();
    until_status(&ecs, &low, "RUNNING").await;
}

#[tokio::test]
async fn bad_priority_values_are_refused_wherever_the_tag_is_set() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let container = || {
        ContainerDefinition::builder()
            .name("app")
            .image("app:1")
            .memory(16)
            .build()
    };
    let registered = ecs
        .register_task_definition()
        .family("job")
        .container_definitions(container())
        .tags(tag(PRIORITY, "1000"))
        .send()
        .await
        .unwrap();
    let definition_arn = registered
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    let service = ecs
        .create_service()
        .cluster(C)
        .service_name("web")
        .task_definition("job")
        .desired_count(0)
        .tags(tag(PRIORITY, "0"))
        .send()
        .await
        .unwrap();
    let service_arn = service.service().unwrap().service_arn().unwrap().to_owned();

    for bad in ["1001", "-1", "high", "5.5", ""] {
        let refused = |e: String| assert!(e.contains(PRIORITY), "{bad}: {e}");
        refused(expect_error(
            ecs.run_task()
                .cluster(C)
                .task_definition("job")
                .tags(tag(PRIORITY, bad))
                .send()
                .await,
            "InvalidParameterException",
        ));
        refused(expect_error(
            ecs.register_task_definition()
                .family("job")
                .container_definitions(container())
                .tags(tag(PRIORITY, bad))
                .send()
                .await,
            "InvalidParameterException",
        ));
        refused(expect_error(
            ecs.create_service()
                .cluster(C)
                .service_name("other")
                .task_definition("job")
                .desired_count(0)
                .tags(tag(PRIORITY, bad))
                .send()
                .await,
            "InvalidParameterException",
        ));
        for arn in [&service_arn, &definition_arn] {
            refused(expect_error(
                ecs.tag_resource()
                    .resource_arn(arn)
                    .tags(tag(PRIORITY, bad))
                    .send()
                    .await,
                "InvalidParameterException",
            ));
        }
    }
    // A good value goes through TagResource.
    ecs.tag_resource()
        .resource_arn(&service_arn)
        .tags(tag(PRIORITY, "750"))
        .send()
        .await
        .unwrap();
}
