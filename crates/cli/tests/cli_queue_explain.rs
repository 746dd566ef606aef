//! `berth task explain` end to end: the built `berth` binary, signing as an operator's shell
//! would, asks a real server (with a real hollow agent) where a task queued by RunTask
//! (`berth:queue-timeout`) stands. Three tasks wait on a full instance, two of the group that
//! fills it and then one of another group: groups take turns, the one running fewest first,
//! so the other group's task has the first turn though it came last; the table and `-o json`
//! say so and name the instance it waits for and why. A task that is not waiting is refused
//! with exit 1 and the server's reason.

mod common;

use std::process::{Command, Output, Stdio};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use common::Berth;
use common::agent::AgentProcess;
use serde_json::Value;

const C: &str = "qx";

/// `berth ARGS...` against `b` with its admin credential (BERTH_ENDPOINT,
/// AWS_SHARED_CREDENTIALS_FILE), no colour, nothing from the environment.
fn berth(b: &Berth, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("BERTH_ENDPOINT", &b.endpoint)
        .env("AWS_SHARED_CREDENTIALS_FILE", b.credentials_file())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("BERTH_CLUSTER")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

#[track_caller]
fn ok(b: &Berth, args: &[&str]) -> String {
    let out = berth(b, args);
    assert!(
        out.status.success(),
        "berth {args:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// RunTask of `count` tasks of `batch` in `group` (RunTask's default when `None`), with
/// `tags`; the task ARNs.
async fn run(ecs: &Client, count: i32, group: Option<&str>, tags: Vec<Tag>) -> Vec<String> {
    let out = ecs
        .run_task()
        .cluster(C)
        .task_definition("batch")
        .count(count)
        .set_group(group.map(str::to_owned))
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    out.tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect()
}

fn id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn task_explain_shows_a_queued_tasks_turn_and_what_it_waits_for() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "512"],
    );
    ecs.register_task_definition()
        .family("batch")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("batch:1")
                .cpu(1)
                .memory(256)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Full, then three wait: two of the default group, then one of job:b.
    let hogs = run(&ecs, 2, None, Vec::new()).await;
    let wait = || {
        vec![
            Tag::builder()
                .key("berth:queue-timeout")
                .value("600")
                .build(),
        ]
    };
    let first = run(&ecs, 2, None, wait()).await;
    let other = run(&ecs, 1, Some("job:b"), wait()).await.remove(0);

    // By ARN (which names the cluster): the other group runs nothing, the default group the
    // two hogs, so the other group's task has the first turn.
    let table = ok(&b, &["task", "explain", &other]);
    let instance = ecs
        .list_container_instances()
        .cluster(C)
        .send()
        .await
        .unwrap()
        .container_instance_arns()[0]
        .clone();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "Task {} waits for capacity in {C} (priority 100): turn 1 of 3 queued, 0 ahead of it",
            id(&other)
        ),
        "{table}"
    );
    assert!(lines[1].starts_with("Its wait ends at "), "{table}");
    assert_eq!(
        lines[2],
        "It waits for room; no instance can take it now (closest first):"
    );
    let row: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(row[..2], [id(&instance), "RESOURCE:MEMORY"], "{table}");

    // By id and --cluster, as JSON: the default group's two waiting tasks come after it (in
    // the order the queue keeps them: created, then id).
    let mut positions = Vec::new();
    for arn in &first {
        let json: Value = serde_json::from_str(&ok(
            &b,
            &["task", "explain", id(arn), "--cluster", C, "-o", "json"],
        ))
        .unwrap();
        assert_eq!(json["taskArn"], arn.as_str(), "{json}");
        assert_eq!(json["queued"], 3, "{json}");
        assert_eq!(json["fitsNow"], false);
        assert_eq!(
            json["waitsFor"][0]["containerInstanceArn"],
            instance.as_str()
        );
        assert_eq!(json["waitsFor"][0]["reason"], "RESOURCE:MEMORY");
        positions.push(json["position"].as_u64().unwrap());
    }
    positions.sort_unstable();
    assert_eq!(positions, [2, 3]);

    // A placed task has no place in the queue: refused, exit 1, with the server's reason.
    let out = berth(&b, &["task", "explain", &hogs[0]]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not waiting for capacity"), "{stderr}");
}
