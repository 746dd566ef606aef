//! Placement through the ECS API: strategies, constraints (in RunTask and in task
//! definitions), the cluster query language in `ListContainerInstances --filter`, failures that
//! name the closest instance, dynamic host ports, and the native dry-run explanation.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, Failure, PlacementConstraint, PlacementConstraintType, PlacementStrategy,
    PlacementStrategyType, PortMapping, Task, TaskDefinitionPlacementConstraint,
    TaskDefinitionPlacementConstraintType,
};
use common::{Berth, ecs_op, expect_error, int_of, int_resource, ports_of, ports_resource};
use serde_json::{Value, json};

/// Registers an instance in `az` with `memory` MiB (and 4096 CPU units); returns its ARN.
async fn instance(ecs: &Client, az: &str, memory: i32, instance_type: &str) -> String {
    instance_with(ecs, az, 4096, memory, instance_type).await
}

async fn instance_with(
    ecs: &Client,
    az: &str,
    cpu: i32,
    memory: i32,
    instance_type: &str,
) -> String {
    let doc = json!({
        "instanceId": format!("i-{az}-{memory}-{}", rand_suffix()),
        "availabilityZone": az,
        "instanceType": instance_type,
        "imageId": "ami-berth",
    });
    ecs.register_container_instance()
        .cluster("place")
        .instance_identity_document(doc.to_string())
        .total_resources(int_resource("CPU", cpu))
        .total_resources(int_resource("MEMORY", memory))
        .total_resources(ports_resource("PORTS", &["22"]))
        .send()
        .await
        .unwrap()
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned()
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn family(ecs: &Client, name: &str, memory: i32) {
    ecs.register_task_definition()
        .family(name)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .cpu(10)
                .memory(memory)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn setup() -> (Berth, Client) {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("place")
        .send()
        .await
        .unwrap();
    (berth, ecs)
}

fn strategy(kind: PlacementStrategyType, field: &str) -> PlacementStrategy {
    PlacementStrategy::builder()
        .r#type(kind)
        .field(field)
        .build()
}

fn member_of(expression: &str) -> PlacementConstraint {
    PlacementConstraint::builder()
        .r#type(PlacementConstraintType::MemberOf)
        .expression(expression)
        .build()
}

fn distinct() -> PlacementConstraint {
    PlacementConstraint::builder()
        .r#type(PlacementConstraintType::DistinctInstance)
        .build()
}

/// Tasks per container instance ARN.
fn per_instance(tasks: &[Task]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in tasks {
        *m.entry(t.container_instance_arn().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

fn reasons(failures: &[Failure]) -> BTreeSet<String> {
    failures
        .iter()
        .filter_map(|f| f.reason().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn binpack_on_memory_fills_the_tightest_instance_first() {
    let (_b, ecs) = setup().await;
    let small = instance(&ecs, "us-east-1a", 1024, "t3.small").await;
    let medium = instance(&ecs, "us-east-1a", 2048, "t3.medium").await;
    let _large = instance(&ecs, "us-east-1a", 4096, "t3.large").await;
    family(&ecs, "half", 512).await;
    let mut placed = Vec::new();
    for _ in 0..3 {
        let out = ecs
            .run_task()
            .cluster("place")
            .task_definition("half")
            .placement_strategy(strategy(PlacementStrategyType::Binpack, "memory"))
            .send()
            .await
            .unwrap();
        assert_eq!(out.tasks().len(), 1, "{:?}", out.failures());
        placed.push(out.tasks()[0].container_instance_arn().unwrap().to_owned());
    }
    assert_eq!(
        placed,
        [small.clone(), small.clone(), medium.clone()],
        "tightest fit first"
    );
    // A batch of four continues to pack: the medium instance takes what fits, then the large.
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("half")
        .count(4)
        .placement_strategy(strategy(PlacementStrategyType::Binpack, "memory"))
        .send()
        .await
        .unwrap();
    let m = per_instance(out.tasks());
    assert_eq!(m.get(&medium), Some(&3), "{m:?}");
    assert_eq!(m.len(), 2);
}

#[tokio::test]
async fn spread_over_zones_balances_and_chains_with_binpack() {
    let (_b, ecs) = setup().await;
    let mut by_az: BTreeMap<String, String> = BTreeMap::new();
    for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
        for memory in [2048, 8192] {
            let arn = instance(&ecs, az, memory, "m5.large").await;
            by_az.insert(arn, az.to_owned());
        }
    }
    family(&ecs, "web", 256).await;
    let spread_then_pack = [
        strategy(
            PlacementStrategyType::Spread,
            "attribute:ecs.availability-zone",
        ),
        strategy(PlacementStrategyType::Binpack, "memory"),
    ];
    let mut tasks = Vec::new();
    for count in [4, 5] {
        let out = ecs
            .run_task()
            .cluster("place")
            .task_definition("web")
            .count(count)
            .set_placement_strategy(Some(spread_then_pack.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.tasks().len(), count as usize, "{:?}", out.failures());
        tasks.extend(out.tasks().to_vec());
    }
    let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tasks {
        *zones
            .entry(by_az[t.container_instance_arn().unwrap()].as_str())
            .or_default() += 1;
        assert_eq!(
            t.availability_zone(),
            Some(by_az[t.container_instance_arn().unwrap()].as_str()),
            "a task reports its instance's zone"
        );
    }
    assert_eq!(
        zones.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{zones:?}"
    );
    // Within each zone binpack chose the smaller (2048 MiB) instance.
    let described = ecs
        .describe_container_instances()
        .cluster("place")
        .set_container_instances(Some(by_az.keys().cloned().collect()))
        .send()
        .await
        .unwrap();
    for ci in described.container_instances() {
        let registered = int_of(ci.registered_resources(), "MEMORY");
        let used = registered - int_of(ci.remaining_resources(), "MEMORY");
        assert_eq!(used, if registered == 2048 { 768 } else { 0 }, "{ci:?}");
    }
    // spread on instanceId: one task per instance.
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("web")
        .group("even")
        .count(6)
        .placement_strategy(strategy(PlacementStrategyType::Spread, "instanceId"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        per_instance(out.tasks())
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [1; 6]
    );
}

#[tokio::test]
async fn distinct_instance_puts_each_task_of_a_group_on_its_own_instance() {
    let (_b, ecs) = setup().await;
    for az in ["us-east-1a", "us-east-1b", "us-east-1c"] {
        instance(&ecs, az, 4096, "m5.large").await;
    }
    family(&ecs, "db", 128).await;
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("db")
        .group("database")
        .count(5)
        .placement_constraints(distinct())
        .send()
        .await
        .unwrap();
    assert_eq!(out.tasks().len(), 3, "one per instance");
    assert!(per_instance(out.tasks()).values().all(|n| *n == 1));
    assert_eq!(
        reasons(out.failures()),
        BTreeSet::from(["ATTRIBUTE".to_owned()])
    );
    assert!(
        out.failures()
            .iter()
            .all(|f| f.detail().unwrap_or_default().contains("distinctInstance")),
        "{:?}",
        out.failures()
    );
    // The group is now on every instance: no room for another distinct task of it, while
    // another group is unaffected.
    let again = ecs
        .run_task()
        .cluster("place")
        .task_definition("db")
        .group("database")
        .placement_constraints(distinct())
        .send()
        .await
        .unwrap();
    assert!(again.tasks().is_empty());
    let other = ecs
        .run_task()
        .cluster("place")
        .task_definition("db")
        .group("cache")
        .placement_constraints(distinct())
        .send()
        .await
        .unwrap();
    assert_eq!(other.tasks().len(), 1);
}

#[tokio::test]
async fn member_of_from_the_request_and_the_task_definition_both_bind() {
    let (_b, ecs) = setup().await;
    let t3_b = instance(&ecs, "us-east-1b", 4096, "t3.large").await;
    let _t3_a = instance(&ecs, "us-east-1a", 4096, "t3.large").await;
    let _m5_b = instance(&ecs, "us-east-1b", 4096, "m5.large").await;
    ecs.register_task_definition()
        .family("burst")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .memory(64)
                .build(),
        )
        .placement_constraints(
            TaskDefinitionPlacementConstraint::builder()
                .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                .expression("attribute:ecs.instance-type =~ t3.*")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("burst")
        .count(3)
        .placement_constraints(member_of("attribute:ecs.availability-zone == us-east-1b"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        per_instance(out.tasks()),
        BTreeMap::from([(t3_b.clone(), 3)])
    );
    // Nothing satisfies both: every instance is rejected with ATTRIBUTE, saying which.
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("burst")
        .placement_constraints(member_of("attribute:ecs.availability-zone == us-east-1c"))
        .send()
        .await
        .unwrap();
    assert!(out.tasks().is_empty());
    assert_eq!(out.failures().len(), 3);
    assert_eq!(
        reasons(out.failures()),
        BTreeSet::from(["ATTRIBUTE".to_owned()])
    );
    assert!(
        out.failures()[0].detail().unwrap().contains("memberOf("),
        "{:?}",
        out.failures()
    );
    // task:group in an expression: next to the tasks of group family:burst only.
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("burst")
        .group("sidecar")
        .placement_constraints(member_of("task:group == family:burst"))
        .send()
        .await
        .unwrap();
    assert_eq!(per_instance(out.tasks()), BTreeMap::from([(t3_b, 1)]));
}

#[tokio::test]
async fn failures_list_every_instance_closest_first_and_say_what_it_lacked() {
    let (_b, ecs) = setup().await;
    let tiny = instance(&ecs, "us-east-1a", 256, "t3.nano").await;
    let mid = instance(&ecs, "us-east-1a", 1024, "t3.small").await;
    let few_cpu = instance_with(&ecs, "us-east-1a", 5, 8192, "c5.large").await;
    family(&ecs, "big", 2000).await;
    let out = ecs
        .run_task()
        .cluster("place")
        .task_definition("big")
        .send()
        .await
        .unwrap();
    assert!(out.tasks().is_empty());
    let order: Vec<(&str, &str)> = out
        .failures()
        .iter()
        .map(|f| (f.arn().unwrap(), f.reason().unwrap()))
        .collect();
    // CPU fails before memory in ECS's filter order, so the memory misses came closer; of
    // those, the instance with more memory is closer still.
    assert_eq!(
        order,
        [
            (mid.as_str(), "RESOURCE:MEMORY"),
            (tiny.as_str(), "RESOURCE:MEMORY"),
            (few_cpu.as_str(), "RESOURCE:CPU")
        ]
    );
    let detail = out.failures()[0].detail().unwrap();
    assert!(
        detail.contains("1024") && detail.contains("2000"),
        "{detail}"
    );
}

#[tokio::test]
async fn bad_constraints_and_strategies_are_refused_clearly() {
    let (_b, ecs) = setup().await;
    instance(&ecs, "us-east-1a", 1024, "t3.small").await;
    family(&ecs, "app", 64).await;
    let msg = expect_error(
        ecs.run_task()
            .cluster("place")
            .task_definition("app")
            .placement_constraints(member_of("attribute:stack = prod"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(
        msg.contains("column 17") && msg.contains("operator"),
        "{msg}"
    );
    let msg = expect_error(
        ecs.run_task()
            .cluster("place")
            .task_definition("app")
            .placement_strategy(strategy(PlacementStrategyType::Binpack, "disk"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("cpu or memory"), "{msg}");
    let six = vec![strategy(PlacementStrategyType::Spread, "instanceId"); 6];
    expect_error(
        ecs.run_task()
            .cluster("place")
            .task_definition("app")
            .set_placement_strategy(Some(six))
            .send()
            .await,
        "InvalidParameterException",
    );
    let eleven = vec![member_of("agentConnected == true"); 11];
    let msg = expect_error(
        ecs.run_task()
            .cluster("place")
            .task_definition("app")
            .set_placement_constraints(Some(eleven))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("10"), "{msg}");
    let msg = expect_error(
        ecs.run_task()
            .cluster("place")
            .task_definition("app")
            .placement_constraints(
                PlacementConstraint::builder()
                    .r#type(PlacementConstraintType::DistinctInstance)
                    .expression("agentConnected == true")
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("distinctInstance"), "{msg}");
}

/// The security issue's expression: 76 alternatives of a 200-fold Unicode class, 1,972
/// characters. It cost 6.9 CPU s and ~900 MiB per request, and as a stored constraint the same
/// again on every reconcile.
fn regex_bomb() -> String {
    let alternatives: Vec<&str> = vec!["attribute:a =~ \\w{200}"; 76];
    let expression = alternatives
        .chunks(2)
        .map(|pair| pair.join(" or "))
        .collect::<Vec<_>>()
        .join(" || ");
    assert_eq!(expression.len(), 1972);
    expression
}

/// Wherever a cluster-query-language expression is read (a filter, RunTask's and a service's
/// constraints, a task definition's), one whose regexes compile too big is refused at once and
/// says why; ordinary regexes keep working.
#[tokio::test]
async fn expressions_whose_regexes_compile_too_big_are_refused_everywhere() {
    let (_b, ecs) = setup().await;
    let _t3 = instance(&ecs, "us-east-1a", 1024, "t3.small").await;
    let g2 = instance(&ecs, "us-east-1b", 1024, "g2.2xlarge").await;
    family(&ecs, "app", 64).await;
    let bomb = regex_bomb();
    let says_why = |msg: &str| {
        assert!(
            msg.contains("column 16")
                && msg.contains("regular expressions that compile to at most 1024 KiB"),
            "{msg}"
        );
    };

    let msg = expect_error(
        ecs.list_container_instances()
            .cluster("place")
            .filter(&bomb)
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.starts_with("filter: "), "{msg}");
    says_why(&msg);

    let msg = expect_error(
        ecs.run_task()
            .cluster("place")
            .task_definition("app")
            .placement_constraints(member_of(&bomb))
            .send()
            .await,
        "InvalidParameterException",
    );
    says_why(&msg);

    let msg = expect_error(
        ecs.create_service()
            .cluster("place")
            .service_name("bombed")
            .task_definition("app")
            .desired_count(1)
            .placement_constraints(member_of(&bomb))
            .send()
            .await,
        "InvalidParameterException",
    );
    says_why(&msg);

    let msg = expect_error(
        ecs.register_task_definition()
            .family("bombed")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image("busybox")
                    .memory(64)
                    .build(),
            )
            .placement_constraints(
                TaskDefinitionPlacementConstraint::builder()
                    .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression(&bomb)
                    .build(),
            )
            .send()
            .await,
        "ClientException",
    );
    assert!(msg.starts_with("placementConstraints[0]: "), "{msg}");
    says_why(&msg);

    // Short but too big on its own.
    expect_error(
        ecs.list_container_instances()
            .cluster("place")
            .filter("ec2InstanceId =~ \\w{20}")
            .send()
            .await,
        "InvalidParameterException",
    );

    // Ordinary regexes, in a filter and in a constraint, work as before.
    let g2_only = "attribute:ecs.instance-type =~ g2.*";
    let listed = ecs
        .list_container_instances()
        .cluster("place")
        .filter(g2_only)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.container_instance_arns(), std::slice::from_ref(&g2));
    let ran = ecs
        .run_task()
        .cluster("place")
        .task_definition("app")
        .placement_constraints(member_of(&format!("{g2_only} and attribute:a !~ \\w+")))
        .send()
        .await
        .unwrap();
    assert_eq!(ran.tasks().len(), 1, "{:?}", ran.failures());
    assert_eq!(ran.tasks()[0].container_instance_arn(), Some(g2.as_str()));
}

#[tokio::test]
async fn list_container_instances_filters_with_the_cluster_query_language() {
    let (_b, ecs) = setup().await;
    let a = instance(&ecs, "us-east-1a", 1024, "t3.small").await;
    let b = instance(&ecs, "us-east-1b", 1024, "m5.large").await;
    let c = instance(&ecs, "us-east-1c", 1024, "g4dn.xlarge").await;
    family(&ecs, "web", 64).await;
    ecs.start_task()
        .cluster("place")
        .task_definition("web")
        .container_instances(&b)
        .send()
        .await
        .unwrap();
    let list = |filter: &'static str| {
        let ecs = ecs.clone();
        async move {
            let out = ecs
                .list_container_instances()
                .cluster("place")
                .filter(filter)
                .send()
                .await;
            out.map(|o| {
                o.container_instance_arns()
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
            })
        }
    };
    let set = |v: &[&String]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        list("attribute:ecs.availability-zone in [us-east-1a, us-east-1c]")
            .await
            .unwrap(),
        set(&[&a, &c])
    );
    assert_eq!(
        list("attribute:ecs.instance-type =~ g4.*").await.unwrap(),
        set(&[&c])
    );
    assert_eq!(list("task:group == family:web").await.unwrap(), set(&[&b]));
    assert_eq!(
        list("not(task:group == family:web) and agentConnected == true")
            .await
            .unwrap(),
        set(&[&a, &c])
    );
    assert_eq!(
        list("attribute:ecs.os-type == linux").await.unwrap(),
        set(&[&a, &b, &c])
    );
    assert_eq!(list("registeredAt < 2000-01-01").await.unwrap(), set(&[]));
    let msg = expect_error(
        list("attribute:ecs.os-type === linux").await,
        "InvalidParameterException",
    );
    assert!(msg.contains("column"), "{msg}");
}

#[tokio::test]
async fn dynamic_host_ports_are_chosen_by_the_scheduler_and_never_collide() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("place")
        .send()
        .await
        .unwrap();
    let inst = instance(&ecs, "us-east-1a", 8192, "m5.large").await;
    ecs.register_task_definition()
        .family("dyn")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("busybox")
                .memory(32)
                .port_mappings(PortMapping::builder().container_port(80).build())
                .port_mappings(
                    PortMapping::builder()
                        .container_port(443)
                        .host_port(0)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let body = json!({"cluster": "place", "taskDefinition": "dyn", "count": 10}).to_string();
    let plan = ecs_op(&berth.endpoint, "RunTask", &body).await;
    assert_eq!(plan.status, 200, "{}", String::from_utf8_lossy(&plan.body));
    // Dynamic ports are held (a dry-run now sees them taken) but not listed as PORTS.
    let d = ecs
        .describe_container_instances()
        .cluster("place")
        .container_instances(&inst)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ports_of(d.container_instances()[0].remaining_resources(), "PORTS"),
        BTreeSet::from(["22".to_owned()])
    );
    let r = common::raw(
        &berth.endpoint,
        "POST",
        "/v1/placement/dry-run",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    let v: Value = r.json();
    assert_eq!(r.status, 200, "{v}");
    let mut seen = BTreeSet::new();
    for p in v["placements"].as_array().unwrap() {
        let ports: Vec<u64> = p["dynamicTcpPorts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(ports.len(), 2);
        for port in ports {
            assert!((61000..=65535).contains(&port), "{port}");
            assert!(seen.insert(port), "port {port} chosen twice");
        }
    }
    assert_eq!(seen.len(), 20);
}

#[tokio::test]
async fn dry_run_explains_every_instance_and_commits_nothing() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("place")
        .send()
        .await
        .unwrap();
    let small = instance(&ecs, "us-east-1a", 512, "t3.nano").await;
    let tight = instance(&ecs, "us-east-1a", 2048, "t3.medium").await;
    let roomy = instance(&ecs, "us-east-1b", 8192, "m5.xlarge").await;
    family(&ecs, "api", 1024).await;
    let before = common::get_json(&berth.endpoint, "/v1/health").await["index"]
        .as_u64()
        .unwrap();
    let body = json!({
        "cluster": "place",
        "taskDefinition": "api",
        "placementStrategy": [{"type": "binpack", "field": "memory"}],
    });
    let r = common::raw(
        &berth.endpoint,
        "POST",
        "/v1/placement/dry-run",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;
    let v = r.json();
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["placed"], 1);
    let verdicts: BTreeMap<String, (String, String)> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["containerInstanceArn"].as_str().unwrap().to_owned(),
                (
                    i["verdict"].as_str().unwrap().to_owned(),
                    i["detail"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(verdicts[&tight].0, "chosen");
    assert_eq!(verdicts[&small].0, "rejected");
    assert!(verdicts[&small].1.contains("512"), "{:?}", verdicts[&small]);
    assert_eq!(verdicts[&roomy].0, "passed-over");
    assert!(
        verdicts[&roomy].1.contains("binpack(memory)"),
        "{:?}",
        verdicts[&roomy]
    );
    let rejected_reason = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["containerInstanceArn"] == small.as_str())
        .unwrap()["reason"]
        .clone();
    assert_eq!(rejected_reason, "RESOURCE:MEMORY");
    // Nothing was written.
    let after = common::get_json(&berth.endpoint, "/v1/health").await["index"]
        .as_u64()
        .unwrap();
    assert_eq!(before, after);
    assert!(
        ecs.list_tasks()
            .cluster("place")
            .send()
            .await
            .unwrap()
            .task_arns()
            .is_empty()
    );
    // Bad input has the ECS error shape.
    let r = common::raw(
        &berth.endpoint,
        "POST",
        "/v1/placement/dry-run",
        &[],
        b"{\"cluster\":\"place\"}",
    )
    .await;
    r.expect_error("InvalidParameterException");
}
