//! Preemption through aws-sdk-ecs against a real server and real hollow agents: a
//! priority-900 service on a full cluster displaces priority-100 work (standalone tasks and a
//! low-priority service's), reaches a steady state, and both sides say why — the stopped
//! tasks' stop code and reason name the task that took their place, the low service's events
//! say it lost a task to preemption; the dry-run shows what a queued task would preempt; a
//! queued high-priority RunTask preempts (an unqueued one fails as in ECS); a DAEMON service's
//! task lands on a new instance of a full cluster though queued work was waiting for exactly
//! that room. Each preemption is counted in `/metrics` (`berth_preemptions_total`,
//! `berth_preempted_tasks_total`), scraped signed and read with a Prometheus text-format parser.

mod common;

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerDefinition, SchedulingStrategy, Service, Tag, Task};
use common::agent::AgentProcess;
use common::{Berth, eventually, raw};
use prometheus_parse::{Scrape, Value};

const PRIORITY: &str = "berth:priority";
const WAIT: &str = "berth:queue-timeout";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap().to_owned()
}

/// Registers `family`: one container of 256 MiB.
async fn define(ecs: &Client, family: &str) {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(format!("{family}:1"))
                .cpu(1)
                .memory(256)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn run(ecs: &Client, cluster: &str, family: &str, count: i32, tags: Vec<Tag>) -> Vec<Task> {
    let out = ecs
        .run_task()
        .cluster(cluster)
        .task_definition(family)
        .count(count)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    out.tasks().to_vec()
}

/// The sum of the samples of `metric` whose labels include `labels` in one signed scrape of
/// `/metrics`, parsed as Prometheus parses it (0 when none match).
async fn metric(b: &Berth, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let r = raw(&b.endpoint, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8(r.body).expect("UTF-8");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("it parses");
    assert!(
        text.contains(&format!("# TYPE {metric} counter\n")) && scrape.docs.contains_key(metric),
        "{metric} is declared a counter with HELP in\n{text}"
    );
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) => *v,
            other => panic!("{metric} is not a counter: {other:?}"),
        })
        .sum()
}

async fn describe_tasks(ecs: &Client, cluster: &str, ids: &[String]) -> Vec<Task> {
    ecs.describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(ids.to_vec()))
        .send()
        .await
        .unwrap()
        .tasks()
        .to_vec()
}

async fn all_running(ecs: &Client, cluster: &str, ids: &[String]) -> bool {
    describe_tasks(ecs, cluster, ids)
        .await
        .iter()
        .all(|t| t.last_status() == Some("RUNNING"))
}

async fn service(ecs: &Client, cluster: &str, name: &str) -> Service {
    ecs.describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone()
}

async fn create_service(
    ecs: &Client,
    cluster: &str,
    name: &str,
    family: &str,
    desired: i32,
    priority: &str,
) {
    ecs.create_service()
        .cluster(cluster)
        .service_name(name)
        .task_definition(family)
        .desired_count(desired)
        .tags(tag(PRIORITY, priority))
        .send()
        .await
        .unwrap();
}

/// The ids of the service's tasks that are RUNNING.
async fn running_of(ecs: &Client, cluster: &str, name: &str) -> Vec<String> {
    let arns = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(name)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = arns.iter().map(|a| id(a)).collect();
    describe_tasks(ecs, cluster, &ids)
        .await
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .map(|t| id(t.task_arn().unwrap()))
        .collect()
}

async fn steady(ecs: &Client, cluster: &str, name: &str, count: usize) -> bool {
    let s = service(ecs, cluster, name).await;
    let newest = s.events().first().and_then(|e| e.message()).unwrap_or("");
    running_of(ecs, cluster, name).await.len() == count
        && newest == format!("(service {name}) has reached a steady state.")
}

#[tokio::test]
async fn a_priority_900_service_preempts_priority_100_work_and_both_sides_say_why() {
    const C: &str = "pre";
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "1024"],
    );
    define(&ecs, "batch").await;
    define(&ecs, "web").await;

    // Full: two standalone batch tasks (priority 100 by default) and a priority-100
    // service's two tasks, 256 MiB each.
    let batch: Vec<String> = run(&ecs, C, "batch", 2, vec![])
        .await
        .iter()
        .map(|t| id(t.task_arn().unwrap()))
        .collect();
    create_service(&ecs, C, "low", "batch", 2, "100").await;
    eventually(Duration::from_secs(30), "low runs two tasks", || async {
        running_of(&ecs, C, "low").await.len() == 2
    })
    .await;
    let low = running_of(&ecs, C, "low").await;
    eventually(Duration::from_secs(30), "batch tasks RUNNING", || async {
        all_running(&ecs, C, &batch).await
    })
    .await;

    // The dry-run of a queued priority-950 RunTask shows whom it would stop.
    let dry = raw(
        &b.endpoint,
        "POST",
        "/v1/placement/dry-run",
        &[("content-type", "application/json")],
        serde_json::json!({
            "cluster": C, "taskDefinition": "web",
            "tags": [{"key": WAIT, "value": "60"}, {"key": PRIORITY, "value": "950"}],
        })
        .to_string()
        .as_bytes(),
    )
    .await
    .json();
    assert_eq!(dry["queued"], 1, "{dry}");
    let stops = dry["preemptions"][0]["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "one 256 MiB task makes room: {dry}");
    assert_eq!(stops[0]["priority"], 100, "{dry}");

    // A priority-900 service of four: it takes the whole instance.
    create_service(&ecs, C, "web", "web", 4, "900").await;
    eventually(
        Duration::from_secs(60),
        "web steady with four tasks",
        || async { steady(&ecs, C, "web", 4).await },
    )
    .await;
    let web = running_of(&ecs, C, "web").await;

    // Every displaced task names the web task that took its place.
    let displaced: Vec<String> = batch.iter().chain(&low).cloned().collect();
    for t in describe_tasks(&ecs, C, &displaced).await {
        assert_eq!(t.last_status(), Some("STOPPED"));
        assert_eq!(t.stop_code().map(|c| c.as_str()), Some("SpotInterruption"));
        let reason = t.stopped_reason().unwrap();
        assert!(
            web.iter()
                .any(|w| reason.starts_with(&format!("Preempted by (task {w}) of priority 900"))),
            "{reason}"
        );
    }
    // The low service says which of its tasks went, and why; it cannot replace them.
    let events: Vec<String> = service(&ecs, C, "low")
        .await
        .events()
        .iter()
        .filter_map(|e| e.message().map(str::to_owned))
        .collect();
    for t in &low {
        assert!(
            events.iter().any(|e| e.starts_with(&format!(
                "(service low) has stopped 1 running tasks: (task {t}). Reason: preempted by (task "
            ))),
            "{events:#?}"
        );
    }
    assert!(
        events[0].contains("was unable to place a task"),
        "{events:#?}"
    );
    // Counted: four tasks stopped by the service controller's committed preemptions, none by
    // the queue's.
    let service = [("preemptor", "service")];
    assert_eq!(
        metric(&b, "berth_preempted_tasks_total", &service).await,
        4.0
    );
    assert_eq!(
        metric(
            &b,
            "berth_preemptions_total",
            &[("preemptor", "service"), ("outcome", "committed")]
        )
        .await,
        4.0,
        "one 256 MiB task makes room for each web task"
    );
    assert_eq!(
        metric(&b, "berth_preempted_tasks_total", &[("preemptor", "queue")]).await,
        0.0
    );
}

#[tokio::test]
async fn a_daemon_lands_first_on_a_new_instance_of_a_full_cluster() {
    const C: &str = "dmn";
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let _first = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "512"],
    );
    define(&ecs, "agentd").await;
    define(&ecs, "batch").await;
    ecs.create_service()
        .cluster(C)
        .service_name("agentd")
        .task_definition("agentd")
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "agentd on the first instance",
        || async { running_of(&ecs, C, "agentd").await.len() == 1 },
    )
    .await;
    // Full, and two more batch tasks wait for capacity: exactly a new instance's room.
    run(&ecs, C, "batch", 1, vec![]).await;
    let queued = run(&ecs, C, "batch", 2, vec![tag(WAIT, "600")]).await;
    assert!(
        queued
            .iter()
            .all(|t| t.last_status() == Some("PROVISIONING")),
        "{queued:?}"
    );

    let _second = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "512"],
    );
    eventually(
        Duration::from_secs(60),
        "agentd steady on both instances",
        || async { steady(&ecs, C, "agentd", 2).await },
    )
    .await;
    let instances = ecs
        .list_container_instances()
        .cluster(C)
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .to_vec();
    assert_eq!(instances.len(), 2);
    let daemons = describe_tasks(&ecs, C, &running_of(&ecs, C, "agentd").await).await;
    for arn in &instances {
        assert!(
            daemons
                .iter()
                .any(|t| t.container_instance_arn() == Some(arn.as_str())),
            "no daemon on {arn}"
        );
        // Never more than the instance holds: the daemon and at most one batch task.
        let live = ecs
            .list_tasks()
            .cluster(C)
            .container_instance(arn)
            .send()
            .await
            .unwrap()
            .task_arns()
            .len();
        assert!(live <= 2, "{live} tasks on {arn}");
    }
}

#[tokio::test]
async fn a_queued_high_priority_run_task_preempts_a_standalone_task() {
    const C: &str = "q";
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    let _agent = AgentProcess::start(
        &b.endpoint,
        C,
        &["--runtime", "hollow", "--cpu", "1024", "--memory", "512"],
    );
    define(&ecs, "batch").await;
    let hogs: Vec<String> = run(&ecs, C, "batch", 2, vec![])
        .await
        .iter()
        .map(|t| id(t.task_arn().unwrap()))
        .collect();
    eventually(Duration::from_secs(30), "hogs RUNNING", || async {
        all_running(&ecs, C, &hogs).await
    })
    .await;
    // Without the queue, RunTask keeps ECS's answer, priority or not: it fails.
    let out = ecs
        .run_task()
        .cluster(C)
        .task_definition("batch")
        .tags(tag(PRIORITY, "500"))
        .send()
        .await
        .unwrap();
    assert!(out.tasks().is_empty());
    assert_eq!(out.failures()[0].reason(), Some("RESOURCE:MEMORY"));
    // Queued at 500, it takes one hog's place.
    let urgent = run(
        &ecs,
        C,
        "batch",
        1,
        vec![tag(WAIT, "600"), tag(PRIORITY, "500")],
    )
    .await;
    let urgent = id(urgent[0].task_arn().unwrap());
    eventually(
        Duration::from_secs(30),
        "the urgent task RUNNING",
        || async { all_running(&ecs, C, std::slice::from_ref(&urgent)).await },
    )
    .await;
    let stopped: Vec<Task> = describe_tasks(&ecs, C, &hogs)
        .await
        .into_iter()
        .filter(|t| t.last_status() == Some("STOPPED"))
        .collect();
    assert_eq!(stopped.len(), 1, "one hog makes room");
    assert!(
        stopped[0]
            .stopped_reason()
            .unwrap()
            .starts_with(&format!("Preempted by (task {urgent}) of priority 500")),
        "{:?}",
        stopped[0].stopped_reason()
    );
    let queue = [("preemptor", "queue")];
    assert_eq!(metric(&b, "berth_preempted_tasks_total", &queue).await, 1.0);
    let committed = [("preemptor", "queue"), ("outcome", "committed")];
    assert_eq!(metric(&b, "berth_preemptions_total", &committed).await, 1.0);
    // A queued task of the hogs' own priority finds nothing it may stop: the searches that
    // found no set are counted, and nothing more is preempted.
    let no_set = [("preemptor", "queue"), ("outcome", "no_set")];
    let before = metric(&b, "berth_preemptions_total", &no_set).await;
    run(&ecs, C, "batch", 1, vec![tag(WAIT, "600")]).await;
    eventually(
        Duration::from_secs(30),
        "a search without a set counted",
        || async { metric(&b, "berth_preemptions_total", &no_set).await > before },
    )
    .await;
    assert_eq!(metric(&b, "berth_preempted_tasks_total", &queue).await, 1.0);
}
