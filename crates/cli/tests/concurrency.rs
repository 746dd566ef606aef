//! Concurrent writers never over-commit an instance.
//!
//! Many RunTask and StartTask callers race for a small, nearly full cluster. Every placement
//! is re-checked when it commits, so whatever interleaving happens, the committed state must
//! never give an instance more CPU, memory or static ports than it has, and every requested
//! task must come back either placed or explained in `failures[]`.

mod common;

use std::collections::{HashMap, HashSet};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, DesiredStatus, PlacementConstraint, PlacementConstraintType, PortMapping,
    Resource,
};

const INSTANCES: usize = 3;
const CPU: i32 = 1024;
const MEMORY: i32 = 1024;

async fn register(ecs: &Client, family: &str, cpu: i32, memory: i32, host_port: Option<i32>) {
    let mut c = ContainerDefinition::builder()
        .name("c")
        .image("busybox")
        .cpu(cpu)
        .memory(memory);
    if let Some(p) = host_port {
        c = c.port_mappings(
            PortMapping::builder()
                .container_port(80)
                .host_port(p)
                .build(),
        );
    }
    ecs.register_task_definition()
        .family(family)
        .container_definitions(c.build())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_run_and_start_task_never_over_commit() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("tight")
        .send()
        .await
        .unwrap();
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        let out = ecs
            .register_container_instance()
            .cluster("tight")
            .total_resources(
                Resource::builder()
                    .name("CPU")
                    .r#type("INTEGER")
                    .integer_value(CPU)
                    .build(),
            )
            .total_resources(
                Resource::builder()
                    .name("MEMORY")
                    .r#type("INTEGER")
                    .integer_value(MEMORY)
                    .build(),
            )
            .total_resources(
                Resource::builder()
                    .name("PORTS")
                    .r#type("STRINGSET")
                    .string_set_value("22")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        instances.push(
            out.container_instance()
                .unwrap()
                .container_instance_arn()
                .unwrap()
                .to_owned(),
        );
    }
    // Small tasks, memory-heavy tasks and tasks that each need host port 8080.
    register(&ecs, "small", 128, 64, None).await;
    register(&ecs, "fat", 64, 300, None).await;
    register(&ecs, "web", 32, 32, Some(8080)).await;
    // A group that must never share an instance (distinctInstance, re-checked at commit).
    register(&ecs, "solo", 16, 16, None).await;

    let mut callers = Vec::new();
    for caller in 0..24usize {
        let ecs = ecs.clone();
        let instances = instances.clone();
        callers.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            for round in 0..6usize {
                let family = ["small", "fat", "web"][(caller + round) % 3];
                if caller % 4 == 1 && round % 2 == 0 {
                    let out = ecs
                        .run_task()
                        .cluster("tight")
                        .task_definition("solo")
                        .placement_constraints(
                            PlacementConstraint::builder()
                                .r#type(PlacementConstraintType::DistinctInstance)
                                .build(),
                        )
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        out.tasks().len() + usize::from(!out.failures().is_empty()),
                        1
                    );
                    placed.extend(out.tasks().iter().map(|t| t.task_arn().unwrap().to_owned()));
                } else if caller % 4 == 0 {
                    // A custom scheduler: StartTask on instances it picked itself.
                    let target = instances[(caller + round) % INSTANCES].clone();
                    let out = ecs
                        .start_task()
                        .cluster("tight")
                        .task_definition(family)
                        .container_instances(target)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        out.tasks().len() + out.failures().len(),
                        1,
                        "StartTask answers for its instance"
                    );
                    placed.extend(out.tasks().iter().map(|t| t.task_arn().unwrap().to_owned()));
                } else {
                    let count = 1 + (caller + round) % 3;
                    let out = ecs
                        .run_task()
                        .cluster("tight")
                        .task_definition(family)
                        .count(count as i32)
                        .send()
                        .await
                        .unwrap();
                    let n = out.tasks().len();
                    assert!(n <= count);
                    if n < count {
                        assert!(
                            !out.failures().is_empty(),
                            "{} of {count} tasks placed, but no failure explains the rest",
                            n
                        );
                        for f in out.failures() {
                            assert!(
                                f.reason().is_some_and(|r| r.starts_with("RESOURCE:")),
                                "unexpected failure {f:?}"
                            );
                        }
                    }
                    placed.extend(out.tasks().iter().map(|t| t.task_arn().unwrap().to_owned()));
                }
            }
            placed
        }));
    }
    let mut placed = Vec::new();
    for c in callers {
        placed.extend(c.await.unwrap());
    }
    assert!(
        placed.len() > 10,
        "some tasks were placed: {}",
        placed.len()
    );
    let unique: HashSet<&String> = placed.iter().collect();
    assert_eq!(unique.len(), placed.len(), "no task reported twice");

    // The committed state: sum what every live task holds, per instance.
    let mut tasks = Vec::new();
    for chunk in placed.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster("tight")
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert!(out.failures().is_empty());
        tasks.extend(out.tasks().to_vec());
    }
    let listed = ecs
        .list_tasks()
        .cluster("tight")
        .desired_status(DesiredStatus::Running)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(
        listed.len(),
        placed.len(),
        "ListTasks agrees with what RunTask/StartTask returned"
    );

    let cpu_of = |family: &str| match family {
        "small" => (128, 64),
        "fat" => (64, 300),
        "solo" => (16, 16),
        _ => (32, 32),
    };
    let mut solo: HashMap<String, usize> = HashMap::new();
    let mut used: HashMap<String, (i32, i32, usize)> = HashMap::new();
    for t in &tasks {
        let family = t
            .task_definition_arn()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        let (c, m) = cpu_of(family);
        let e = used
            .entry(t.container_instance_arn().unwrap().to_owned())
            .or_default();
        e.0 += c;
        e.1 += m;
        if family == "web" {
            e.2 += 1;
        }
        if family == "solo" {
            *solo
                .entry(t.container_instance_arn().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert!(!solo.is_empty(), "some distinctInstance tasks were placed");
    for (instance, n) in &solo {
        assert_eq!(
            *n, 1,
            "{instance} runs {n} tasks of the distinctInstance group"
        );
    }
    for (instance, (cpu, memory, web)) in &used {
        assert!(*cpu <= CPU, "{instance} over-committed on CPU: {cpu}");
        assert!(
            *memory <= MEMORY,
            "{instance} over-committed on memory: {memory}"
        );
        assert!(*web <= 1, "{instance} has host port 8080 bound {web} times");
    }
    // And the server's own accounting matches ours.
    let out = ecs
        .describe_container_instances()
        .cluster("tight")
        .set_container_instances(Some(instances.clone()))
        .send()
        .await
        .unwrap();
    for ci in out.container_instances() {
        let arn = ci.container_instance_arn().unwrap();
        let (cpu, memory, web) = used.get(arn).copied().unwrap_or_default();
        let remaining = |name: &str| {
            ci.remaining_resources()
                .iter()
                .find(|r| r.name() == Some(name))
                .unwrap()
                .clone()
        };
        assert_eq!(remaining("CPU").integer_value(), CPU - cpu);
        assert_eq!(remaining("MEMORY").integer_value(), MEMORY - memory);
        let ports = remaining("PORTS").string_set_value().to_vec();
        assert_eq!(
            ports.contains(&"8080".to_owned()),
            web == 1,
            "{arn}: {ports:?}"
        );
        assert!(ports.contains(&"22".to_owned()));
    }
}
