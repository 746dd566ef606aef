//! Services on several real agents at once: hollow `berth agent` processes on this host, each
//! its own container instance (in its own availability zone where the test needs zones).
//! Replica services spread over zones and instances and replace the tasks of a lost agent,
//! draining moves service tasks off an instance and leaves standalone ones alone, and a daemon
//! service follows instances as they join, match its constraint and drain.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::agent::AgentProcess;
use common::{Berth, ecs_op, eventually};
use serde_json::{Value, json};

const CLUSTER: &str = "svc";

async fn ok(b: &Berth, op: &str, body: Value) -> Value {
    let r = ecs_op(&b.endpoint, op, &body.to_string()).await;
    assert_eq!(r.status, 200, "{op}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A hollow agent in `zone` with the given extra flags.
fn agent(b: &Berth, zone: &str, extra: &[&str]) -> AgentProcess {
    let mut args = vec![
        "--runtime",
        "hollow",
        "--cpu",
        "2048",
        "--memory",
        "4096",
        "--availability-zone",
        zone,
    ];
    args.extend_from_slice(extra);
    AgentProcess::start(&b.endpoint, CLUSTER, &args)
}

async fn setup(b: &Berth) {
    ok(b, "CreateCluster", json!({"clusterName": CLUSTER})).await;
    ok(
        b,
        "RegisterTaskDefinition",
        json!({"family": "app", "containerDefinitions": [
            {"name": "web", "image": "app:1", "cpu": 256, "memory": 128,
             "portMappings": [{"containerPort": 8080}]}
        ]}),
    )
    .await;
}

async fn service(b: &Berth, name: &str) -> Value {
    let r = ok(
        b,
        "DescribeServices",
        json!({"cluster": CLUSTER, "services": [name]}),
    )
    .await;
    r["services"][0].clone()
}

/// The service's live tasks (desired RUNNING), described.
async fn service_tasks(b: &Berth, name: &str) -> Vec<Value> {
    let r = ok(
        b,
        "ListTasks",
        json!({"cluster": CLUSTER, "serviceName": name}),
    )
    .await;
    let arns = r["taskArns"].as_array().unwrap().clone();
    if arns.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for chunk in arns.chunks(100) {
        let r = ok(
            b,
            "DescribeTasks",
            json!({"cluster": CLUSTER, "tasks": chunk}),
        )
        .await;
        out.extend(r["tasks"].as_array().unwrap().iter().cloned());
    }
    out
}

/// ServicesStable as the waiter defines it: one deployment, running == desired.
async fn stable(b: &Berth, name: &str, desired: u64) {
    eventually(
        Duration::from_secs(60),
        &format!("{name} stable at {desired}"),
        || async {
            let s = service(b, name).await;
            s["deployments"].as_array().map(Vec::len) == Some(1)
                && s["runningCount"] == desired
                && s["desiredCount"] == desired
        },
    )
    .await;
}

fn count_by(tasks: &[Value], field: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks {
        *out.entry(t[field].as_str().unwrap_or("-").to_owned())
            .or_default() += 1;
    }
    out
}

fn events(s: &Value) -> Vec<String> {
    s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn replicas_spread_over_zones_and_replace_a_lost_agents_tasks() {
    let b = Berth::start_with(&["--agent-heartbeat-timeout", "2", "--agent-lost-after", "2"]);
    setup(&b).await;
    let mut agents = vec![
        agent(&b, "zone-a", &[]),
        agent(&b, "zone-a", &[]),
        agent(&b, "zone-b", &[]),
        agent(&b, "zone-b", &[]),
    ];
    ok(
        &b,
        "CreateService",
        json!({"cluster": CLUSTER, "serviceName": "web", "taskDefinition": "app", "desiredCount": 6}),
    )
    .await;
    stable(&b, "web", 6).await;
    let tasks = service_tasks(&b, "web").await;
    assert_eq!(tasks.len(), 6);
    // ECS's default for services: spread over zones, then over instances.
    let zones = count_by(&tasks, "availabilityZone");
    assert_eq!(
        zones.values().copied().collect::<Vec<_>>(),
        vec![3, 3],
        "{zones:?}"
    );
    let per_instance = count_by(&tasks, "containerInstanceArn");
    assert_eq!(per_instance.len(), 4, "{per_instance:?}");
    assert!(
        per_instance.values().all(|n| (1..=2).contains(n)),
        "{per_instance:?}"
    );
    for t in &tasks {
        assert_eq!(t["group"], "service:web");
        assert!(
            t["startedBy"].as_str().unwrap().starts_with("ecs-svc/"),
            "{t}"
        );
    }
    let s = service(&b, "web").await;
    let ev = events(&s);
    assert!(
        ev.iter()
            .any(|m| m == "(service web) has reached a steady state."),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|m| m.starts_with("(service web) has started 6 tasks: (task ")),
        "{ev:?}"
    );

    // The agent of one instance dies: its tasks are lost and replaced on the others.
    let dead = agents[0].instance_arn.clone();
    let on_dead = per_instance[&dead];
    agents[0].kill();
    eventually(Duration::from_secs(60), "lost tasks replaced", || async {
        let tasks = service_tasks(&b, "web").await;
        tasks.len() == 6
            && tasks
                .iter()
                .all(|t| t["containerInstanceArn"] != dead.as_str() && t["lastStatus"] == "RUNNING")
    })
    .await;
    let stopped = ok(
        &b,
        "ListTasks",
        json!({"cluster": CLUSTER, "serviceName": "web", "desiredStatus": "STOPPED"}),
    )
    .await;
    assert_eq!(
        stopped["taskArns"].as_array().unwrap().len(),
        on_dead,
        "{stopped}"
    );
    stable(&b, "web", 6).await;
    agents.truncate(0);
}

#[tokio::test]
async fn draining_replaces_service_tasks_and_leaves_standalone_ones() {
    let b = Berth::start();
    setup(&b).await;
    let agents = [
        agent(&b, "zone-a", &[]),
        agent(&b, "zone-b", &[]),
        agent(&b, "zone-c", &[]),
    ];
    ok(
        &b,
        "CreateService",
        json!({"cluster": CLUSTER, "serviceName": "web", "taskDefinition": "app", "desiredCount": 3,
               "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200}}),
    )
    .await;
    stable(&b, "web", 3).await;
    let draining = agents[0].instance_arn.clone();
    // A standalone task on the instance about to drain.
    let r = ok(
        &b,
        "StartTask",
        json!({"cluster": CLUSTER, "taskDefinition": "app", "containerInstances": [draining]}),
    )
    .await;
    let standalone = r["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    ok(
        &b,
        "UpdateContainerInstancesState",
        json!({"cluster": CLUSTER, "containerInstances": [draining], "status": "DRAINING"}),
    )
    .await;
    // Sample while the service moves: never fewer than 3 running (minimumHealthyPercent 100)
    // nor more than 6 (maximumPercent 200).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = service_tasks(&b, "web").await;
        let running = tasks
            .iter()
            .filter(|t| t["lastStatus"] == "RUNNING")
            .count();
        assert!(running >= 3, "{running} running while draining");
        assert!(tasks.len() <= 6, "{} tasks while draining", tasks.len());
        if tasks.len() == 3
            && running == 3
            && tasks
                .iter()
                .all(|t| t["containerInstanceArn"] != draining.as_str())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service tasks not moved off: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = ok(
        &b,
        "DescribeTasks",
        json!({"cluster": CLUSTER, "tasks": [standalone]}),
    )
    .await;
    assert_eq!(r["tasks"][0]["lastStatus"], "RUNNING", "{r}");
    assert_eq!(r["tasks"][0]["desiredStatus"], "RUNNING", "{r}");
    stable(&b, "web", 3).await;
}

#[tokio::test]
async fn a_daemon_service_follows_instances() {
    let b = Berth::start();
    setup(&b).await;
    let mut agents = vec![
        agent(&b, "zone-a", &["--attribute", "role=web"]),
        agent(&b, "zone-b", &["--attribute", "role=web"]),
        agent(&b, "zone-c", &["--attribute", "role=db"]),
    ];
    ok(
        &b,
        "CreateService",
        json!({"cluster": CLUSTER, "serviceName": "logs", "taskDefinition": "app",
               "schedulingStrategy": "DAEMON",
               "placementConstraints": [{"type": "memberOf", "expression": "attribute:role == web"}]}),
    )
    .await;
    stable(&b, "logs", 2).await;
    let on = |tasks: &[Value]| {
        let mut v: Vec<String> = tasks
            .iter()
            .map(|t| t["containerInstanceArn"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let mut expected = vec![
        agents[0].instance_arn.clone(),
        agents[1].instance_arn.clone(),
    ];
    expected.sort();
    assert_eq!(on(&service_tasks(&b, "logs").await), expected);

    // A new matching instance gets one; a non-matching one does not.
    agents.push(agent(&b, "zone-a", &["--attribute", "role=web"]));
    agents.push(agent(&b, "zone-b", &["--attribute", "role=db"]));
    stable(&b, "logs", 3).await;
    expected.push(agents[3].instance_arn.clone());
    expected.sort();
    assert_eq!(on(&service_tasks(&b, "logs").await), expected);

    // A draining instance loses its daemon task.
    let drained = agents[1].instance_arn.clone();
    ok(
        &b,
        "UpdateContainerInstancesState",
        json!({"cluster": CLUSTER, "containerInstances": [drained], "status": "DRAINING"}),
    )
    .await;
    stable(&b, "logs", 2).await;
    expected.retain(|a| *a != drained);
    assert_eq!(on(&service_tasks(&b, "logs").await), expected);

    // A new revision rolls over every instance.
    ok(
        &b,
        "RegisterTaskDefinition",
        json!({"family": "app", "containerDefinitions": [
            {"name": "web", "image": "app:2", "cpu": 256, "memory": 128}
        ]}),
    )
    .await;
    ok(
        &b,
        "UpdateService",
        json!({"cluster": CLUSTER, "service": "logs", "taskDefinition": "app:2"}),
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "daemon rolled to app:2",
        || async {
            let s = service(&b, "logs").await;
            let tasks = service_tasks(&b, "logs").await;
            s["deployments"].as_array().map(Vec::len) == Some(1)
                && s["deployments"][0]["rolloutState"] == "COMPLETED"
                && tasks.len() == 2
                && tasks.iter().all(|t| {
                    t["lastStatus"] == "RUNNING"
                        && t["taskDefinitionArn"].as_str().unwrap().ends_with("app:2")
                })
        },
    )
    .await;
    assert_eq!(on(&service_tasks(&b, "logs").await), expected);
}

/// Services compete for a cluster too small for all of them: the controller decides them on
/// one snapshot and commits concurrently, the state machine re-checks every placement, and no
/// instance is ever over-committed. Those left without room say why, in ECS's words.
#[tokio::test]
async fn competing_services_never_over_commit_an_instance() {
    let b = Berth::start();
    setup(&b).await;
    // Three instances registered through the API (no agent: tasks stay PENDING, holding their
    // reservation), each with room for four tasks of 256 CPU.
    let mut instances = Vec::new();
    for _ in 0..3 {
        let r = ok(
            &b,
            "RegisterContainerInstance",
            json!({"cluster": CLUSTER, "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}
            ]}),
        )
        .await;
        instances.push(
            r["containerInstance"]["containerInstanceArn"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let names: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let creates = names.iter().map(|name| {
        ok(
            &b,
            "CreateService",
            json!({"cluster": CLUSTER, "serviceName": name, "taskDefinition": "app", "desiredCount": 4}),
        )
    });
    futures::future::join_all(creates).await;
    // Every slot is taken, and no more.
    eventually(Duration::from_secs(30), "12 tasks placed", || async {
        let r = ok(&b, "ListTasks", json!({"cluster": CLUSTER})).await;
        r["taskArns"].as_array().unwrap().len() == 12
    })
    .await;
    // Give the controller time to try (and fail) to place more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = ok(&b, "ListTasks", json!({"cluster": CLUSTER})).await;
    assert_eq!(r["taskArns"].as_array().unwrap().len(), 12, "{r}");
    let r = ok(
        &b,
        "DescribeContainerInstances",
        json!({"cluster": CLUSTER, "containerInstances": instances}),
    )
    .await;
    for i in r["containerInstances"].as_array().unwrap() {
        let cpu = i["remainingResources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "CPU")
            .unwrap()["integerValue"]
            .as_i64()
            .unwrap();
        assert_eq!(cpu, 0, "every instance full, none over: {i}");
        assert_eq!(i["pendingTasksCount"], 4, "{i}");
    }
    let r = ok(
        &b,
        "DescribeServices",
        json!({"cluster": CLUSTER, "services": names}),
    )
    .await;
    let services = r["services"].as_array().unwrap();
    let placed: u64 = services
        .iter()
        .map(|s| s["pendingCount"].as_u64().unwrap() + s["runningCount"].as_u64().unwrap())
        .sum();
    assert_eq!(placed, 12);
    let short: Vec<&Value> = services
        .iter()
        .filter(|s| s["pendingCount"].as_u64().unwrap() < 4)
        .collect();
    assert!(!short.is_empty());
    for s in short {
        let name = s["serviceName"].as_str().unwrap();
        let ev = events(s);
        let expected = format!(
            "(service {name}) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance "
        );
        assert!(
            ev.iter()
                .any(|m| m.starts_with(&expected)
                    && m.contains("has insufficient CPU units available")),
            "{ev:?}"
        );
    }
}
