//! The ECS API end to end: a real `berth server` process driven by the official AWS SDK for Rust
//! (and by raw HTTP where the SDK would hide the wire: error shapes, malformed bodies, berth's
//! native `/v1/history` and `/v1/watch`).
//!
//! Every test starts its own server on a free port with its own data directory, so the tests
//! are independent of each other and of the order they run in.
//!
//! No test here runs a real agent: the tests play the agent's part with
//! `SubmitTaskStateChange` / `SubmitContainerStateChange`, which is exactly what the ECS agent
//! sends.

mod common;

use common::{
    TARGET_PREFIX, ecs_op, ecs_raw, expect_error, expect_one_of, int_of, int_resource, ports_of,
    ports_resource, raw,
};

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::client::Waiters;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    Attribute, ClusterField, ClusterSetting, ClusterSettingName, ContainerDefinition,
    ContainerInstance, ContainerInstanceField, ContainerInstanceStatus, ContainerOverride,
    ContainerStateChange, DesiredStatus, Failure, KeyValuePair, NetworkBinding, PortMapping,
    SortOrder, Tag, TargetType, Task, TaskDefinition, TaskDefinitionFamilyStatus,
    TaskDefinitionField, TaskDefinitionStatus, TaskField, TaskOverride, TaskStopCode,
    TransportProtocol, VersionInfo,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

/// `arn:aws:ecs:{region}:000000000000:{resource}`
fn arn(region: &str, resource: &str) -> String {
    format!("arn:aws:ecs:{region}:{ACCOUNT}:{resource}")
}

/// The last `/`-separated part of an ARN (a task or container-instance id).
fn id_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn is_ecs_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn attribute(name: &str, value: Option<&str>) -> Attribute {
    Attribute::builder()
        .name(name)
        .set_value(value.map(str::to_owned))
        .build()
        .unwrap()
}

fn target_attribute(name: &str, value: Option<&str>, target: &str) -> Attribute {
    Attribute::builder()
        .name(name)
        .set_value(value.map(str::to_owned))
        .target_type(TargetType::ContainerInstance)
        .target_id(target)
        .build()
        .unwrap()
}

fn attribute_map(attrs: &[Attribute]) -> BTreeMap<String, Option<String>> {
    attrs
        .iter()
        .map(|a| (a.name().to_owned(), a.value().map(str::to_owned)))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Ports the agent reserves on every host (what `berth agent` would register).
const RESERVED_PORTS: &[&str] = &["22", "2375", "2376", "51678", "51679"];

async fn create_cluster(ecs: &Client, name: &str) -> String {
    ecs.create_cluster()
        .cluster_name(name)
        .send()
        .await
        .unwrap()
        .cluster()
        .unwrap()
        .cluster_arn()
        .unwrap()
        .to_owned()
}

/// Registers a container instance with `cpu` units and `memory` MiB and the usual reserved
/// ports; returns its ARN.
async fn register_instance(ecs: &Client, cluster: &str, cpu: i32, memory: i32) -> String {
    ecs.register_container_instance()
        .cluster(cluster)
        .total_resources(int_resource("CPU", cpu))
        .total_resources(int_resource("MEMORY", memory))
        .total_resources(ports_resource("PORTS", RESERVED_PORTS))
        .total_resources(ports_resource("PORTS_UDP", &[]))
        .send()
        .await
        .unwrap()
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned()
}

async fn describe_instance(ecs: &Client, cluster: &str, instance: &str) -> ContainerInstance {
    let out = ecs
        .describe_container_instances()
        .cluster(cluster)
        .container_instances(instance)
        .include(ContainerInstanceField::Tags)
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    out.container_instances()[0].clone()
}

async fn describe_task(ecs: &Client, cluster: &str, task: &str) -> Task {
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .tasks(task)
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    out.tasks()[0].clone()
}

/// A container that reserves `cpu` units and `memory` MiB.
fn container(name: &str, cpu: i32, memory: i32) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image("nginx:1.27")
        .cpu(cpu)
        .memory(memory)
        .build()
}

fn tcp(container_port: i32, host_port: i32) -> PortMapping {
    PortMapping::builder()
        .container_port(container_port)
        .host_port(host_port)
        .protocol(TransportProtocol::Tcp)
        .build()
}

/// Registers a one-container task definition; returns it.
async fn register_family(ecs: &Client, family: &str, cpu: i32, memory: i32) -> TaskDefinition {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container("main", cpu, memory))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .clone()
}

/// Registers a one-container task definition that binds static host port `host_port`.
async fn register_with_port(
    ecs: &Client,
    family: &str,
    cpu: i32,
    memory: i32,
    host_port: i32,
) -> TaskDefinition {
    let c = ContainerDefinition::builder()
        .name("main")
        .image("nginx:1.27")
        .cpu(cpu)
        .memory(memory)
        .port_mappings(tcp(80, host_port))
        .build();
    ecs.register_task_definition()
        .family(family)
        .container_definitions(c)
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .clone()
}

async fn run(ecs: &Client, cluster: &str, family: &str, count: i32) -> (Vec<Task>, Vec<Failure>) {
    let out = ecs
        .run_task()
        .cluster(cluster)
        .task_definition(family)
        .count(count)
        .send()
        .await
        .unwrap();
    (out.tasks().to_vec(), out.failures().to_vec())
}

/// Plays the agent: reports the task's new last status.
async fn report(ecs: &Client, cluster: &str, task: &str, status: &str) {
    let out = ecs
        .submit_task_state_change()
        .cluster(cluster)
        .task(task)
        .status(status)
        .send()
        .await
        .unwrap();
    assert_eq!(out.acknowledgment(), Some("ACK"));
}

fn failure_summary(failures: &[Failure]) -> Vec<(String, String)> {
    failures
        .iter()
        .map(|f| {
            (
                f.arn().unwrap_or_default().to_owned(),
                f.reason().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn task_arns(tasks: &[Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect()
}

/// Every task ARN ListTasks returns for `configure`d filters, walking `nextToken` with pages
/// of `page` items; asserts no page is larger than asked and no ARN repeats.
async fn list_tasks_paged(
    ecs: &Client,
    cluster: &str,
    page: i32,
    configure: impl Fn(
        aws_sdk_ecs::operation::list_tasks::builders::ListTasksFluentBuilder,
    ) -> aws_sdk_ecs::operation::list_tasks::builders::ListTasksFluentBuilder,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let resp = configure(ecs.list_tasks().cluster(cluster))
            .max_results(page)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(resp.task_arns().len() <= page as usize);
        out.extend(resp.task_arns().iter().cloned());
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            let unique: BTreeSet<_> = out.iter().collect();
            assert_eq!(
                unique.len(),
                out.len(),
                "pagination repeated an ARN: {out:?}"
            );
            return out;
        }
    }
    panic!("ListTasks pagination did not end");
}

async fn list_tasks(
    ecs: &Client,
    cluster: &str,
    configure: impl Fn(
        aws_sdk_ecs::operation::list_tasks::builders::ListTasksFluentBuilder,
    ) -> aws_sdk_ecs::operation::list_tasks::builders::ListTasksFluentBuilder,
) -> BTreeSet<String> {
    let resp = configure(ecs.list_tasks().cluster(cluster))
        .send()
        .await
        .unwrap();
    assert!(resp.next_token().is_none());
    resp.task_arns().iter().cloned().collect()
}

async fn get_json(endpoint: &str, path: &str) -> (u16, Value) {
    let r = raw(endpoint, "GET", path, &[], b"").await;
    (r.status, r.json())
}

async fn applied_index(endpoint: &str) -> u64 {
    let (status, health) = get_json(endpoint, "/v1/health").await;
    assert_eq!(status, 200);
    health["index"].as_u64().expect("health has an index")
}

// ---------------------------------------------------------------------------------------------
// 1. Clusters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cluster_lifecycle_create_describe_list_update_delete() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let life_arn = arn(REGION, "cluster/life");

    // Create, with tags and settings.
    let created = ecs
        .create_cluster()
        .cluster_name("life")
        .tags(tag("team", "core"))
        .tags(tag("env", "test"))
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("enabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let c = created.cluster().unwrap();
    assert_eq!(c.cluster_arn(), Some(life_arn.as_str()));
    assert_eq!(c.cluster_name(), Some("life"));
    assert_eq!(c.status(), Some("ACTIVE"));
    assert_eq!(c.registered_container_instances_count(), 0);
    assert_eq!(c.running_tasks_count(), 0);
    assert_eq!(c.pending_tasks_count(), 0);
    assert_eq!(c.active_services_count(), 0);
    assert_eq!(
        tag_map(c.tags()),
        BTreeMap::from([
            ("team".into(), "core".into()),
            ("env".into(), "test".into())
        ])
    );
    assert_eq!(c.settings().len(), 1, "{:?}", c.settings());
    assert_eq!(
        c.settings()[0].name(),
        Some(&ClusterSettingName::ContainerInsights)
    );
    assert_eq!(c.settings()[0].value(), Some("enabled"));

    // Creating an existing cluster again answers with it, unchanged.
    let again = ecs
        .create_cluster()
        .cluster_name("life")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.cluster().unwrap().cluster_arn(),
        Some(life_arn.as_str())
    );
    create_cluster(&ecs, "other").await;

    // Describe: short name and ARN both accepted; unknown names are MISSING failures.
    let d = ecs
        .describe_clusters()
        .clusters("life")
        .clusters(&life_arn)
        .clusters("ghost")
        .include(ClusterField::Tags)
        .include(ClusterField::Settings)
        .include(ClusterField::Statistics)
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters().len(), 2);
    for c in d.clusters() {
        assert_eq!(c.cluster_arn(), Some(life_arn.as_str()));
        assert_eq!(c.status(), Some("ACTIVE"));
        assert_eq!(
            tag_map(c.tags()).get("team").map(String::as_str),
            Some("core")
        );
        assert_eq!(c.settings()[0].value(), Some("enabled"));
        let stats: BTreeMap<_, _> = c
            .statistics()
            .iter()
            .map(|kv| (kv.name().unwrap(), kv.value().unwrap()))
            .collect();
        assert_eq!(stats.get("runningEC2TasksCount"), Some(&"0"), "{stats:?}");
        assert_eq!(stats.get("pendingEC2TasksCount"), Some(&"0"), "{stats:?}");
    }
    assert_eq!(
        failure_summary(d.failures()),
        vec![(arn(REGION, "cluster/ghost"), "MISSING".to_owned())]
    );

    // Without `include`, tags, settings and statistics are left out.
    let plain = ecs
        .describe_clusters()
        .clusters("life")
        .send()
        .await
        .unwrap();
    let c = &plain.clusters()[0];
    assert!(c.tags().is_empty(), "{:?}", c.tags());
    assert!(c.settings().is_empty(), "{:?}", c.settings());
    assert!(c.statistics().is_empty(), "{:?}", c.statistics());

    // List, whole and page by page.
    let all = ecs.list_clusters().send().await.unwrap();
    assert_eq!(
        all.cluster_arns().iter().cloned().collect::<BTreeSet<_>>(),
        set(&[&life_arn, &arn(REGION, "cluster/other")])
    );
    let first = ecs.list_clusters().max_results(1).send().await.unwrap();
    assert_eq!(first.cluster_arns().len(), 1);
    let second = ecs
        .list_clusters()
        .max_results(1)
        .next_token(first.next_token().expect("a second page"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.cluster_arns().len(), 1);
    assert_ne!(first.cluster_arns(), second.cluster_arns());
    if let Some(t) = second.next_token() {
        let third = ecs
            .list_clusters()
            .max_results(1)
            .next_token(t)
            .send()
            .await
            .unwrap();
        assert!(third.cluster_arns().is_empty() && third.next_token().is_none());
    }

    // Update settings, through both UpdateClusterSettings and UpdateCluster.
    let updated = ecs
        .update_cluster_settings()
        .cluster(&life_arn)
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("disabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.cluster().unwrap().settings()[0].value(),
        Some("disabled")
    );
    ecs.update_cluster()
        .cluster("life")
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("enhanced")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let d = ecs
        .describe_clusters()
        .clusters("life")
        .include(ClusterField::Settings)
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].settings().len(), 1);
    assert_eq!(d.clusters()[0].settings()[0].value(), Some("enhanced"));
    expect_error(
        ecs.update_cluster_settings()
            .cluster("life")
            .settings(
                ClusterSetting::builder()
                    .name(ClusterSettingName::ContainerInsights)
                    .value("sometimes")
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );

    // An instance and a task: counts move, and DeleteCluster is refused.
    let instance = register_instance(&ecs, "life", 1024, 1024).await;
    register_family(&ecs, "life-app", 256, 256).await;
    let (tasks, failures) = run(&ecs, "life", "life-app", 1).await;
    assert!(failures.is_empty(), "{failures:?}");
    let task = tasks[0].task_arn().unwrap().to_owned();
    let d = ecs
        .describe_clusters()
        .clusters("life")
        .include(ClusterField::Statistics)
        .send()
        .await
        .unwrap();
    let c = &d.clusters()[0];
    assert_eq!(c.registered_container_instances_count(), 1);
    assert_eq!(c.pending_tasks_count(), 1);
    assert_eq!(c.running_tasks_count(), 0);
    report(&ecs, "life", &task, "RUNNING").await;
    let d = ecs
        .describe_clusters()
        .clusters("life")
        .include(ClusterField::Statistics)
        .send()
        .await
        .unwrap();
    let c = &d.clusters()[0];
    assert_eq!((c.pending_tasks_count(), c.running_tasks_count()), (0, 1));
    let stats: BTreeMap<_, _> = c
        .statistics()
        .iter()
        .map(|kv| (kv.name().unwrap(), kv.value().unwrap()))
        .collect();
    assert_eq!(stats.get("runningEC2TasksCount"), Some(&"1"), "{stats:?}");

    // A running task is reported first: it has to be stopped before anything else.
    let msg = expect_error(
        ecs.delete_cluster().cluster("life").send().await,
        "ClusterContainsTasksException",
    );
    assert!(msg.contains("Tasks"), "{msg}");

    // With the instance still registered but the task stopped, the instance blocks.
    ecs.stop_task()
        .cluster("life")
        .task(&task)
        .send()
        .await
        .unwrap();
    report(&ecs, "life", &task, "STOPPED").await;
    expect_error(
        ecs.delete_cluster().cluster(&life_arn).send().await,
        "ClusterContainsContainerInstancesException",
    );

    // Deregistered: the cluster can go.
    ecs.deregister_container_instance()
        .cluster("life")
        .container_instance(&instance)
        .send()
        .await
        .unwrap();
    let deleted = ecs
        .delete_cluster()
        .cluster(&life_arn)
        .send()
        .await
        .unwrap();
    let c = deleted.cluster().unwrap();
    assert_eq!(c.status(), Some("INACTIVE"));
    assert_eq!(c.cluster_arn(), Some(life_arn.as_str()));

    // INACTIVE in DescribeClusters, gone from ListClusters, and no longer usable.
    let d = ecs
        .describe_clusters()
        .clusters("life")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters().len(), 1, "{d:?}");
    assert_eq!(d.clusters()[0].status(), Some("INACTIVE"));
    let all = ecs.list_clusters().send().await.unwrap();
    assert_eq!(all.cluster_arns(), &[arn(REGION, "cluster/other")]);
    expect_error(
        ecs.list_tasks().cluster("life").send().await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.delete_cluster().cluster("ghost").send().await,
        "ClusterNotFoundException",
    );

    // A deleted cluster can be created again, ACTIVE and empty.
    let again = ecs
        .create_cluster()
        .cluster_name("life")
        .send()
        .await
        .unwrap();
    assert_eq!(again.cluster().unwrap().status(), Some("ACTIVE"));
}

/// DeleteCluster must refuse while a task of the cluster is not yet STOPPED. In berth a live
/// task always sits on a registered instance (force-deregistering an instance stops its tasks),
/// so the refusal users see first is about the instance; what matters is that the cluster
/// is never deleted with a task in it, and that the refusal names what to do.
#[tokio::test]
async fn delete_cluster_is_refused_while_a_task_is_not_stopped() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "busy").await;
    let instance = register_instance(&ecs, "busy", 1024, 1024).await;
    register_family(&ecs, "busy-app", 128, 128).await;
    let (tasks, _) = run(&ecs, "busy", "busy-app", 1).await;
    let task = tasks[0].task_arn().unwrap().to_owned();
    // Asked to stop, but the agent has not reported it STOPPED yet: still a live task.
    ecs.stop_task()
        .cluster("busy")
        .task(&task)
        .send()
        .await
        .unwrap();
    expect_error(
        ecs.delete_cluster().cluster("busy").send().await,
        "ClusterContainsTasksException",
    );
    // The instance cannot be deregistered (without force) under the live task either.
    expect_one_of(
        ecs.deregister_container_instance()
            .cluster("busy")
            .container_instance(&instance)
            .send()
            .await,
        &["InvalidParameterException", "ClientException"],
    );
    let d = ecs
        .describe_clusters()
        .clusters("busy")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].status(), Some("ACTIVE"));

    // Once the agent reports the task STOPPED and the instance is gone, deletion succeeds.
    report(&ecs, "busy", &task, "STOPPED").await;
    ecs.deregister_container_instance()
        .cluster("busy")
        .container_instance(&instance)
        .send()
        .await
        .unwrap();
    let deleted = ecs.delete_cluster().cluster("busy").send().await.unwrap();
    assert_eq!(deleted.cluster().unwrap().status(), Some("INACTIVE"));
}

// ---------------------------------------------------------------------------------------------
// 2. Task definitions
// ---------------------------------------------------------------------------------------------

async fn register_image(ecs: &Client, family: &str, image: &str) -> TaskDefinition {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
                .memory(128)
                .build(),
        )
        .tags(tag("rev-of", family))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .clone()
}

async fn list_task_definitions_paged(ecs: &Client, prefix: &str, sort: SortOrder) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let page = ecs
            .list_task_definitions()
            .family_prefix(prefix)
            .sort(sort.clone())
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.task_definition_arns().len() <= 1);
        out.extend(page.task_definition_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
    panic!("ListTaskDefinitions pagination did not end");
}

async fn families(
    ecs: &Client,
    prefix: Option<&str>,
    status: Option<TaskDefinitionFamilyStatus>,
) -> Vec<String> {
    ecs.list_task_definition_families()
        .set_family_prefix(prefix.map(str::to_owned))
        .set_status(status)
        .send()
        .await
        .unwrap()
        .families()
        .to_vec()
}

#[tokio::test]
async fn task_definition_family_with_revisions() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let td_arn = |rev: &str| arn(REGION, &format!("task-definition/{rev}"));

    // Three revisions of `web`, one of `webapp` (a longer name with the same prefix) and one
    // of `worker`.
    for (i, image) in ["nginx:1.25", "nginx:1.26", "nginx:1.27"]
        .iter()
        .enumerate()
    {
        let t = register_image(&ecs, "web", image).await;
        let rev = i as i32 + 1;
        assert_eq!(t.revision(), rev);
        assert_eq!(t.family(), Some("web"));
        assert_eq!(t.status(), Some(&TaskDefinitionStatus::Active));
        assert_eq!(
            t.task_definition_arn(),
            Some(td_arn(&format!("web:{rev}")).as_str())
        );
        assert!(t.registered_at().is_some());
        assert_eq!(t.container_definitions()[0].image(), Some(*image));
    }
    register_image(&ecs, "webapp", "httpd:2").await;
    register_image(&ecs, "worker", "busybox:1").await;

    // Describe by family (latest ACTIVE), family:revision and ARN.
    let d = ecs
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    let t = d.task_definition().unwrap();
    assert_eq!(t.revision(), 3);
    assert_eq!(t.container_definitions()[0].image(), Some("nginx:1.27"));
    let d = ecs
        .describe_task_definition()
        .task_definition("web:2")
        .send()
        .await
        .unwrap();
    assert_eq!(d.task_definition().unwrap().revision(), 2);
    assert_eq!(
        d.task_definition().unwrap().container_definitions()[0].image(),
        Some("nginx:1.26")
    );
    let d = ecs
        .describe_task_definition()
        .task_definition(td_arn("web:1"))
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.task_definition().unwrap().revision(), 1);
    assert_eq!(
        tag_map(d.tags()),
        BTreeMap::from([("rev-of".into(), "web".into())])
    );
    expect_error(
        ecs.describe_task_definition()
            .task_definition("web:9")
            .send()
            .await,
        "ClientException",
    );
    expect_error(
        ecs.describe_task_definition()
            .task_definition("nosuchfamily")
            .send()
            .await,
        "ClientException",
    );

    // List: familyPrefix names one family exactly; ascending by default; DESC; paginated.
    let asc = ecs
        .list_task_definitions()
        .family_prefix("web")
        .send()
        .await
        .unwrap();
    let expected_asc = vec![td_arn("web:1"), td_arn("web:2"), td_arn("web:3")];
    assert_eq!(asc.task_definition_arns(), expected_asc.as_slice());
    let desc = ecs
        .list_task_definitions()
        .family_prefix("web")
        .sort(SortOrder::Desc)
        .send()
        .await
        .unwrap();
    let expected_desc: Vec<String> = expected_asc.iter().rev().cloned().collect();
    assert_eq!(desc.task_definition_arns(), expected_desc.as_slice());
    assert_eq!(
        list_task_definitions_paged(&ecs, "web", SortOrder::Asc).await,
        expected_asc
    );
    assert_eq!(
        list_task_definitions_paged(&ecs, "web", SortOrder::Desc).await,
        expected_desc
    );
    let everything = ecs.list_task_definitions().send().await.unwrap();
    assert_eq!(everything.task_definition_arns().len(), 5);
    assert!(
        everything
            .task_definition_arns()
            .contains(&td_arn("webapp:1"))
    );

    // Families: prefix match, all statuses by default.
    assert_eq!(
        families(&ecs, None, None).await,
        ["web", "webapp", "worker"]
    );
    assert_eq!(families(&ecs, Some("web"), None).await, ["web", "webapp"]);
    assert_eq!(families(&ecs, Some("wo"), None).await, ["worker"]);
    let page = ecs
        .list_task_definition_families()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.families(), ["web", "webapp"]);
    let rest = ecs
        .list_task_definition_families()
        .max_results(2)
        .next_token(page.next_token().expect("a second page"))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.families(), ["worker"]);
    assert!(rest.next_token().is_none());

    // Deregister the newest: INACTIVE, and `web` alone now means web:2.
    let dereg = ecs
        .deregister_task_definition()
        .task_definition("web:3")
        .send()
        .await
        .unwrap();
    let t = dereg.task_definition().unwrap();
    assert_eq!(t.status(), Some(&TaskDefinitionStatus::Inactive));
    assert!(t.deregistered_at().is_some());
    let d = ecs
        .describe_task_definition()
        .task_definition("web")
        .send()
        .await
        .unwrap();
    assert_eq!(d.task_definition().unwrap().revision(), 2);
    // An INACTIVE revision can still be described by number.
    let d = ecs
        .describe_task_definition()
        .task_definition("web:3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.task_definition().unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );
    let inactive = ecs
        .list_task_definitions()
        .family_prefix("web")
        .status(TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(inactive.task_definition_arns(), &[td_arn("web:3")]);
    let active = ecs
        .list_task_definitions()
        .family_prefix("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        active.task_definition_arns(),
        &[td_arn("web:1"), td_arn("web:2")]
    );

    // A family with no ACTIVE revision is INACTIVE.
    ecs.deregister_task_definition()
        .task_definition(td_arn("worker:1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        families(&ecs, None, Some(TaskDefinitionFamilyStatus::Active)).await,
        ["web", "webapp"]
    );
    assert_eq!(
        families(&ecs, None, Some(TaskDefinitionFamilyStatus::Inactive)).await,
        ["worker"]
    );
    assert_eq!(
        families(&ecs, None, Some(TaskDefinitionFamilyStatus::All)).await,
        ["web", "webapp", "worker"]
    );
    // `worker` alone resolves to nothing now.
    expect_error(
        ecs.describe_task_definition()
            .task_definition("worker")
            .send()
            .await,
        "ClientException",
    );

    // Delete: refused (as a failure) while ACTIVE; DELETE_IN_PROGRESS once INACTIVE.
    let del = ecs
        .delete_task_definitions()
        .task_definitions("web:1")
        .send()
        .await
        .unwrap();
    assert!(del.task_definitions().is_empty(), "{del:?}");
    assert_eq!(del.failures().len(), 1);
    assert_eq!(del.failures()[0].arn(), Some(td_arn("web:1").as_str()));
    let reason = del.failures()[0].reason().unwrap_or_default();
    assert!(reason.contains("ACTIVE"), "{reason}");
    let del = ecs
        .delete_task_definitions()
        .task_definitions(td_arn("web:3"))
        .send()
        .await
        .unwrap();
    assert!(del.failures().is_empty(), "{del:?}");
    assert_eq!(del.task_definitions().len(), 1);
    assert_eq!(
        del.task_definitions()[0].status(),
        Some(&TaskDefinitionStatus::DeleteInProgress)
    );
    assert!(del.task_definitions()[0].delete_requested_at().is_some());
    let deleting = ecs
        .list_task_definitions()
        .family_prefix("web")
        .status(TaskDefinitionStatus::DeleteInProgress)
        .send()
        .await
        .unwrap();
    assert_eq!(deleting.task_definition_arns(), &[td_arn("web:3")]);
    let inactive = ecs
        .list_task_definitions()
        .family_prefix("web")
        .status(TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert!(inactive.task_definition_arns().is_empty());

    // Revision numbers are never reused.
    let t = register_image(&ecs, "web", "nginx:1.28").await;
    assert_eq!(t.revision(), 4);
}

#[tokio::test]
async fn task_definition_validation_errors() {
    let berth = common::Berth::start();
    let ecs = berth.client();

    // memory (hard limit) below memoryReservation.
    let msg = expect_error(
        ecs.register_task_definition()
            .family("bad")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("nginx")
                    .memory(64)
                    .memory_reservation(128)
                    .build(),
            )
            .send()
            .await,
        "ClientException",
    );
    assert!(msg.contains("memoryReservation"), "{msg}");

    // Two containers with one name.
    let msg = expect_error(
        ecs.register_task_definition()
            .family("bad")
            .container_definitions(container("web", 0, 128))
            .container_definitions(container("web", 0, 128))
            .send()
            .await,
        "ClientException",
    );
    assert!(msg.contains("'web'"), "{msg}");

    // No image.
    let msg = expect_error(
        ecs.register_task_definition()
            .family("bad")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .memory(128)
                    .build(),
            )
            .send()
            .await,
        "ClientException",
    );
    assert!(msg.contains("image"), "{msg}");

    // Neither memory nor memoryReservation, and no task-level memory.
    let msg = expect_error(
        ecs.register_task_definition()
            .family("bad")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("nginx")
                    .build(),
            )
            .send()
            .await,
        "ClientException",
    );
    assert!(msg.contains("memory"), "{msg}");

    // No containers at all / no family / a malformed family.
    expect_one_of(
        ecs.register_task_definition().family("bad").send().await,
        &["ClientException", "InvalidParameterException"],
    );
    let msg = expect_error(
        ecs.register_task_definition()
            .container_definitions(container("web", 0, 128))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("family"), "{msg}");
    expect_one_of(
        ecs.register_task_definition()
            .family("has space")
            .container_definitions(container("web", 0, 128))
            .send()
            .await,
        &["ClientException", "InvalidParameterException"],
    );

    // Nothing was registered by any of these.
    assert!(families(&ecs, None, None).await.is_empty());
    let ok = register_family(&ecs, "bad", 0, 128).await;
    assert_eq!(
        ok.revision(),
        1,
        "failed registrations must not use up revisions"
    );
}

/// ECS caps a task definition at 64 KiB; without the cap, 50 registrations of 1.8 MiB kept
/// 200 MiB of memory and disk. The limit counts the JSON of what is stored, exactly: found
/// here from the size the refusal reports, then registered at the limit and refused one byte
/// over it.
#[tokio::test]
async fn task_definitions_over_64_kib_are_refused() {
    const LIMIT: usize = 65_536;
    let berth = common::Berth::start();
    let ecs = berth.client();
    let padded = |n: usize| {
        ecs.register_task_definition()
            .family("big")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("nginx")
                    .memory(128)
                    .environment(
                        KeyValuePair::builder()
                            .name("PAD")
                            .value("x".repeat(n))
                            .build(),
                    )
                    .build(),
            )
    };
    let size_in = |msg: &str| -> usize {
        let words: Vec<&str> = msg.split(' ').collect();
        let i = words.iter().position(|w| *w == "bytes").expect("a size");
        words[i - 1].parse().expect("a size in bytes")
    };

    let msg = expect_error(padded(1_800_000).send().await, "ClientException");
    assert!(msg.contains("limit is 65536 bytes (64 KiB)"), "{msg}");
    let over = size_in(&msg);
    assert!(over > 1_800_000, "{msg}");

    let at_limit = 1_800_000 - (over - LIMIT);
    let msg = expect_error(padded(at_limit + 1).send().await, "ClientException");
    assert_eq!(size_in(&msg), LIMIT + 1, "{msg}");
    let t = padded(at_limit).send().await.unwrap();
    assert_eq!(t.task_definition().unwrap().revision(), 1);
    let env = &t.task_definition().unwrap().container_definitions()[0].environment()[0];
    assert_eq!(env.value().map(str::len), Some(at_limit));
    assert_eq!(families(&ecs, None, None).await, ["big"]);
}

// ---------------------------------------------------------------------------------------------
// 3. Container instances
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn container_instance_registration_resources_and_state() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "fleet").await;

    let doc = json!({
        "instanceId": "i-0123456789abcdef0",
        "availabilityZone": "us-east-1b",
        "instanceType": "m5.large",
        "imageId": "ami-0abcdef1234567890",
        "region": "us-east-1",
        "accountId": "123456789012",
        "architecture": "x86_64",
    })
    .to_string();
    let registered = ecs
        .register_container_instance()
        .cluster("fleet")
        .instance_identity_document(doc)
        .total_resources(int_resource("CPU", 2048))
        .total_resources(int_resource("MEMORY", 4096))
        .total_resources(ports_resource("PORTS", RESERVED_PORTS))
        .total_resources(ports_resource("PORTS_UDP", &[]))
        .version_info(
            VersionInfo::builder()
                .agent_version("1.85.0")
                .agent_hash("4023248")
                .docker_version("DockerVersion: 25.0.3")
                .build(),
        )
        .attributes(attribute("stack", Some("prod")))
        .attributes(attribute("gpu", None))
        .tags(tag("rack", "r1"))
        .send()
        .await
        .unwrap();
    let a = registered.container_instance().unwrap();
    let a_arn = a.container_instance_arn().unwrap().to_owned();
    assert!(
        a_arn.starts_with(&arn(REGION, "container-instance/fleet/")),
        "{a_arn}"
    );
    assert!(is_ecs_id(id_of(&a_arn)), "{a_arn}");
    assert_eq!(a.ec2_instance_id(), Some("i-0123456789abcdef0"));
    assert_eq!(a.status(), Some("ACTIVE"));
    assert!(a.agent_connected());
    assert!(a.registered_at().is_some());
    let v = a.version_info().unwrap();
    assert_eq!(v.agent_version(), Some("1.85.0"));
    assert_eq!(v.docker_version(), Some("DockerVersion: 25.0.3"));
    let attrs = attribute_map(a.attributes());
    assert_eq!(
        attrs["ecs.availability-zone"].as_deref(),
        Some("us-east-1b")
    );
    assert_eq!(attrs["ecs.instance-type"].as_deref(), Some("m5.large"));
    assert_eq!(
        attrs["ecs.ami-id"].as_deref(),
        Some("ami-0abcdef1234567890")
    );
    assert_eq!(attrs["ecs.os-type"].as_deref(), Some("linux"));
    assert_eq!(attrs["stack"].as_deref(), Some("prod"));
    assert_eq!(attrs["gpu"], None);
    assert_eq!(int_of(a.registered_resources(), "CPU"), 2048);
    assert_eq!(int_of(a.registered_resources(), "MEMORY"), 4096);
    assert_eq!(
        ports_of(a.registered_resources(), "PORTS"),
        set(RESERVED_PORTS)
    );
    assert_eq!(int_of(a.remaining_resources(), "CPU"), 2048);
    assert_eq!(int_of(a.remaining_resources(), "MEMORY"), 4096);
    assert_eq!((a.running_tasks_count(), a.pending_tasks_count()), (0, 0));

    // Describe by id and by ARN; tags on request; unknown ids are MISSING.
    let bogus = "0123456789abcdef0123456789abcdef";
    let d = ecs
        .describe_container_instances()
        .cluster("fleet")
        .container_instances(id_of(&a_arn))
        .container_instances(bogus)
        .include(ContainerInstanceField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.container_instances().len(), 1);
    assert_eq!(
        d.container_instances()[0].container_instance_arn(),
        Some(a_arn.as_str())
    );
    assert_eq!(
        tag_map(d.container_instances()[0].tags()),
        BTreeMap::from([("rack".into(), "r1".into())])
    );
    assert_eq!(
        failure_summary(d.failures()),
        vec![(
            arn(REGION, &format!("container-instance/fleet/{bogus}")),
            "MISSING".to_owned()
        )]
    );

    // A task with a static host port (8080) and a dynamic one (hostPort 0).
    let web = ContainerDefinition::builder()
        .name("web")
        .image("nginx:1.27")
        .cpu(512)
        .memory(1024)
        .port_mappings(tcp(80, 8080))
        .port_mappings(tcp(443, 0))
        .build();
    ecs.register_task_definition()
        .family("svc")
        .container_definitions(web)
        .send()
        .await
        .unwrap();
    let started = ecs
        .start_task()
        .cluster("fleet")
        .task_definition("svc")
        .container_instances(&a_arn)
        .send()
        .await
        .unwrap();
    assert!(started.failures().is_empty(), "{:?}", started.failures());
    let task = started.tasks()[0].task_arn().unwrap().to_owned();
    let a = describe_instance(&ecs, "fleet", &a_arn).await;
    assert_eq!(int_of(a.remaining_resources(), "CPU"), 2048 - 512);
    assert_eq!(int_of(a.remaining_resources(), "MEMORY"), 4096 - 1024);
    let mut in_use = set(RESERVED_PORTS);
    in_use.insert("8080".into());
    assert_eq!(ports_of(a.remaining_resources(), "PORTS"), in_use);
    // Registered resources do not change with use.
    assert_eq!(int_of(a.registered_resources(), "CPU"), 2048);
    assert_eq!(
        ports_of(a.registered_resources(), "PORTS"),
        set(RESERVED_PORTS)
    );
    assert_eq!((a.running_tasks_count(), a.pending_tasks_count()), (0, 1));
    report(&ecs, "fleet", &task, "RUNNING").await;
    let a = describe_instance(&ecs, "fleet", &a_arn).await;
    assert_eq!((a.running_tasks_count(), a.pending_tasks_count()), (1, 0));

    // Port 8080 is taken: a second copy does not fit on this instance.
    let second = ecs
        .start_task()
        .cluster("fleet")
        .task_definition("svc")
        .container_instances(id_of(&a_arn))
        .send()
        .await
        .unwrap();
    assert!(second.tasks().is_empty());
    assert_eq!(
        failure_summary(second.failures()),
        vec![(a_arn.clone(), "RESOURCE:PORTS".to_owned())]
    );

    // A second instance; list with status filters; DRAINING and back.
    let b_arn = register_instance(&ecs, "fleet", 1024, 2048).await;
    let listed = ecs
        .list_container_instances()
        .cluster("fleet")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed
            .container_instance_arns()
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(&[&a_arn, &b_arn])
    );
    let drained = ecs
        .update_container_instances_state()
        .cluster("fleet")
        .container_instances(&b_arn)
        .container_instances(bogus)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert_eq!(drained.container_instances().len(), 1);
    assert_eq!(drained.container_instances()[0].status(), Some("DRAINING"));
    assert_eq!(
        failure_summary(drained.failures()),
        vec![(
            arn(REGION, &format!("container-instance/fleet/{bogus}")),
            "MISSING".to_owned()
        )]
    );
    let list_status = |status: ContainerInstanceStatus| {
        let ecs = ecs.clone();
        async move {
            ecs.list_container_instances()
                .cluster("fleet")
                .status(status)
                .send()
                .await
                .unwrap()
                .container_instance_arns()
                .to_vec()
        }
    };
    assert_eq!(
        list_status(ContainerInstanceStatus::Draining).await,
        std::slice::from_ref(&b_arn)
    );
    assert_eq!(
        list_status(ContainerInstanceStatus::Active).await,
        std::slice::from_ref(&a_arn)
    );
    // Nothing new is placed on a DRAINING instance.
    register_family(&ecs, "small", 64, 64).await;
    let on_b = ecs
        .start_task()
        .cluster("fleet")
        .task_definition("small")
        .container_instances(&b_arn)
        .send()
        .await
        .unwrap();
    assert!(on_b.tasks().is_empty(), "placed on a DRAINING instance");
    assert_eq!(on_b.failures().len(), 1);
    assert_eq!(on_b.failures()[0].arn(), Some(b_arn.as_str()));
    for _ in 0..5 {
        let (tasks, _) = run(&ecs, "fleet", "small", 1).await;
        assert_eq!(
            tasks[0].container_instance_arn(),
            Some(a_arn.as_str()),
            "RunTask placed a task on a DRAINING instance"
        );
    }
    let back = ecs
        .update_container_instances_state()
        .cluster("fleet")
        .container_instances(id_of(&b_arn))
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(back.container_instances()[0].status(), Some("ACTIVE"));
    assert!(
        list_status(ContainerInstanceStatus::Draining)
            .await
            .is_empty()
    );
    expect_error(
        ecs.update_container_instances_state()
            .cluster("fleet")
            .container_instances(&b_arn)
            .status(ContainerInstanceStatus::from("INACTIVE"))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Deregister: refused while tasks are live, allowed with force (tasks orphaned, STOPPED).
    let msg = expect_one_of(
        ecs.deregister_container_instance()
            .cluster("fleet")
            .container_instance(&a_arn)
            .send()
            .await,
        &["InvalidParameterException", "ClientException"],
    )
    .1;
    assert!(msg.contains("force"), "{msg}");
    assert_eq!(
        describe_instance(&ecs, "fleet", &a_arn).await.status(),
        Some("ACTIVE")
    );
    let gone = ecs
        .deregister_container_instance()
        .cluster("fleet")
        .container_instance(&a_arn)
        .force(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.container_instance().unwrap().status(),
        Some("INACTIVE")
    );
    let t = describe_task(&ecs, "fleet", &task).await;
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.desired_status(), Some("STOPPED"));
    assert!(t.stopped_at().is_some());
    assert!(t.stopped_reason().is_some());
    let a = describe_instance(&ecs, "fleet", &a_arn).await;
    assert_eq!(a.status(), Some("INACTIVE"));
    assert!(!a.agent_connected());
    // ListContainerInstances leaves INACTIVE out unless asked.
    let listed = ecs
        .list_container_instances()
        .cluster("fleet")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.container_instance_arns(),
        std::slice::from_ref(&b_arn)
    );
    let d = ecs
        .describe_clusters()
        .clusters("fleet")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].registered_container_instances_count(), 1);
    // Nothing more runs on the deregistered instance.
    let (tasks, _) = run(&ecs, "fleet", "small", 3).await;
    assert!(
        tasks
            .iter()
            .all(|t| t.container_instance_arn() == Some(b_arn.as_str()))
    );
}

#[tokio::test]
async fn container_instance_attributes_put_list_delete_and_limit() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "attrs").await;
    let a = ecs
        .register_container_instance()
        .cluster("attrs")
        .total_resources(int_resource("CPU", 1024))
        .total_resources(int_resource("MEMORY", 1024))
        .attributes(attribute("stack", Some("prod")))
        .attributes(attribute("gpu", None))
        .send()
        .await
        .unwrap()
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned();
    let b = register_instance(&ecs, "attrs", 1024, 1024).await;

    // PutAttributes by ARN and by id.
    let put = ecs
        .put_attributes()
        .cluster("attrs")
        .attributes(target_attribute("team", Some("blue"), &a))
        .attributes(target_attribute("team", Some("red"), id_of(&b)))
        .send()
        .await
        .unwrap();
    assert_eq!(put.attributes().len(), 2);
    assert_eq!(put.attributes()[1].target_id(), Some(b.as_str()));

    let list = |name: Option<&str>, value: Option<&str>| {
        let ecs = ecs.clone();
        let (name, value) = (name.map(str::to_owned), value.map(str::to_owned));
        async move {
            let out = ecs
                .list_attributes()
                .cluster("attrs")
                .target_type(TargetType::ContainerInstance)
                .set_attribute_name(name)
                .set_attribute_value(value)
                .send()
                .await
                .unwrap();
            out.attributes()
                .iter()
                .map(|a| {
                    assert_eq!(a.target_type(), Some(&TargetType::ContainerInstance));
                    (
                        a.target_id().unwrap().to_owned(),
                        a.name().to_owned(),
                        a.value().map(str::to_owned),
                    )
                })
                .collect::<BTreeSet<_>>()
        }
    };
    let team =
        |target: &str, value: &str| (target.to_owned(), "team".to_owned(), Some(value.to_owned()));
    assert_eq!(
        list(Some("team"), None).await,
        BTreeSet::from([team(&a, "blue"), team(&b, "red")])
    );
    assert_eq!(
        list(Some("team"), Some("red")).await,
        BTreeSet::from([team(&b, "red")])
    );
    assert!(list(Some("team"), Some("green")).await.is_empty());
    assert_eq!(
        list(Some("stack"), None).await,
        BTreeSet::from([(a.clone(), "stack".to_owned(), Some("prod".to_owned()))])
    );
    // Without a name filter, every attribute of every instance, built-in ones included.
    let all = list(None, None).await;
    assert!(all.contains(&team(&a, "blue")));
    assert!(all.iter().any(|(t, n, _)| t == &b && n == "ecs.os-type"));
    // Page by page, the same attributes.
    let mut paged = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = ecs
            .list_attributes()
            .cluster("attrs")
            .target_type(TargetType::ContainerInstance)
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(out.attributes().len() <= 1);
        for a in out.attributes() {
            let item = (
                a.target_id().unwrap().to_owned(),
                a.name().to_owned(),
                a.value().map(str::to_owned),
            );
            assert!(paged.insert(item), "pagination repeated an attribute");
        }
        pages += 1;
        token = out.next_token().map(str::to_owned);
        if token.is_none() || pages > 100 {
            break;
        }
    }
    assert_eq!(paged, all);
    // A value filter needs a name.
    expect_error(
        ecs.list_attributes()
            .cluster("attrs")
            .target_type(TargetType::ContainerInstance)
            .attribute_value("red")
            .send()
            .await,
        "InvalidParameterException",
    );

    // DeleteAttributes.
    ecs.delete_attributes()
        .cluster("attrs")
        .attributes(target_attribute("team", None, &a))
        .send()
        .await
        .unwrap();
    assert_eq!(
        list(Some("team"), None).await,
        BTreeSet::from([team(&b, "red")])
    );
    let described = describe_instance(&ecs, "attrs", &a).await;
    assert!(!attribute_map(described.attributes()).contains_key("team"));

    // Ten custom attributes per instance: `a` has stack and gpu, so 8 more fit...
    let mut put = ecs.put_attributes().cluster("attrs");
    for i in 0..8 {
        put = put.attributes(target_attribute(&format!("custom-{i}"), Some("x"), &a));
    }
    put.send().await.unwrap();
    // ...replacing a value does not count as another attribute...
    ecs.put_attributes()
        .cluster("attrs")
        .attributes(target_attribute("custom-0", Some("y"), &a))
        .send()
        .await
        .unwrap();
    // ...and an eleventh is refused, leaving the instance as it was.
    let msg = expect_error(
        ecs.put_attributes()
            .cluster("attrs")
            .attributes(target_attribute("one-too-many", Some("x"), &a))
            .send()
            .await,
        "AttributeLimitExceededException",
    );
    assert!(msg.contains("10"), "{msg}");
    let described = attribute_map(describe_instance(&ecs, "attrs", &a).await.attributes());
    assert!(!described.contains_key("one-too-many"));
    assert_eq!(described["custom-0"].as_deref(), Some("y"));
    assert_eq!(
        described.keys().filter(|k| !k.starts_with("ecs.")).count(),
        10
    );
    // Registering with eleven custom attributes is refused too.
    let mut reg = ecs
        .register_container_instance()
        .cluster("attrs")
        .total_resources(int_resource("CPU", 1024))
        .total_resources(int_resource("MEMORY", 1024));
    for i in 0..11 {
        reg = reg.attributes(attribute(&format!("a{i}"), Some("v")));
    }
    expect_error(reg.send().await, "AttributeLimitExceededException");

    // Built-in names are berth's; unknown targets are reported as such.
    expect_error(
        ecs.put_attributes()
            .cluster("attrs")
            .attributes(target_attribute("ecs.instance-type", Some("huge"), &a))
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.put_attributes()
            .cluster("attrs")
            .attributes(target_attribute(
                "team",
                Some("x"),
                "0123456789abcdef0123456789abcdef",
            ))
            .send()
            .await,
        "TargetNotFoundException",
    );
    expect_error(
        ecs.put_attributes()
            .cluster("attrs")
            .attributes(target_attribute("bad name!", Some("x"), &a))
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn reregistering_an_instance_keeps_its_identity_tasks_and_attributes() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "rereg").await;
    let doc =
        json!({"instanceId": "i-0aaaabbbbccccdddd", "availabilityZone": "us-east-1a"}).to_string();
    let first = ecs
        .register_container_instance()
        .cluster("rereg")
        .instance_identity_document(&doc)
        .total_resources(int_resource("CPU", 1024))
        .total_resources(int_resource("MEMORY", 1024))
        .attributes(attribute("stack", Some("prod")))
        .version_info(VersionInfo::builder().agent_version("1.85.0").build())
        .send()
        .await
        .unwrap();
    let inst = first
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned();
    ecs.put_attributes()
        .cluster("rereg")
        .attributes(target_attribute("team", Some("blue"), &inst))
        .send()
        .await
        .unwrap();
    register_family(&ecs, "held", 256, 256).await;
    let (tasks, _) = run(&ecs, "rereg", "held", 1).await;
    assert_eq!(tasks.len(), 1);

    // The agent restarts on a bigger host and registers again under the same ARN.
    let again = ecs
        .register_container_instance()
        .cluster("rereg")
        .container_instance_arn(&inst)
        .instance_identity_document(&doc)
        .total_resources(int_resource("CPU", 2048))
        .total_resources(int_resource("MEMORY", 4096))
        .version_info(VersionInfo::builder().agent_version("1.86.0").build())
        .send()
        .await
        .unwrap();
    let i = again.container_instance().unwrap();
    assert_eq!(i.container_instance_arn(), Some(inst.as_str()));
    assert_eq!(i.ec2_instance_id(), Some("i-0aaaabbbbccccdddd"));
    assert_eq!(
        i.version_info().and_then(|v| v.agent_version()),
        Some("1.86.0")
    );
    let i = describe_instance(&ecs, "rereg", &inst).await;
    assert_eq!(int_of(i.registered_resources(), "CPU"), 2048);
    assert_eq!(int_of(i.remaining_resources(), "CPU"), 2048 - 256);
    assert_eq!(int_of(i.remaining_resources(), "MEMORY"), 4096 - 256);
    assert_eq!(i.pending_tasks_count(), 1);
    let attrs = attribute_map(i.attributes());
    assert_eq!(attrs["team"].as_deref(), Some("blue"));
    assert_eq!(attrs["stack"].as_deref(), Some("prod"));
    assert_eq!(
        attrs["ecs.availability-zone"].as_deref(),
        Some("us-east-1a")
    );
    let listed = ecs
        .list_container_instances()
        .cluster(arn(REGION, "cluster/rereg"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.container_instance_arns(),
        std::slice::from_ref(&inst)
    );

    // Re-registering an instance that was never registered is refused.
    expect_one_of(
        ecs.register_container_instance()
            .cluster("rereg")
            .container_instance_arn("0123456789abcdef0123456789abcdef")
            .total_resources(int_resource("CPU", 1024))
            .total_resources(int_resource("MEMORY", 1024))
            .send()
            .await,
        &["InvalidParameterException", "ClientException"],
    );
}

/// DiscoverPollEndpoint (agent-only in ECS): where to poll is the server that answers, for the
/// cluster alone or for one of its instances (by ARN or id); a malformed cluster, or an
/// instance that does not parse, is another cluster's or is not registered, is an
/// InvalidParameterException; who may ask is what the policy says (the model's
/// AccessDeniedException): the cluster's operator and its agents, not a read-only credential,
/// another cluster's operator or another cluster's agent.
#[tokio::test]
async fn discover_poll_endpoint_names_the_server_for_the_clusters_instances() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "polled").await;
    create_cluster(&ecs, "elsewhere").await;
    let instance = register_instance(&ecs, "polled", 1024, 1024).await;
    let other = register_instance(&ecs, "elsewhere", 1024, 1024).await;
    let here = format!("{}/", berth.endpoint);
    let cluster_arn = arn(REGION, "cluster/polled");

    let asks = [
        (Some("polled"), None),
        (Some(cluster_arn.as_str()), None),
        (Some("polled"), Some(instance.as_str())),
        (Some("polled"), Some(id_of(&instance))),
        (None, None),
    ];
    for (cluster, container_instance) in asks {
        let out = ecs
            .discover_poll_endpoint()
            .set_cluster(cluster.map(str::to_owned))
            .set_container_instance(container_instance.map(str::to_owned))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{cluster:?} {container_instance:?}: {e:?}"));
        assert_eq!(out.endpoint(), Some(here.as_str()), "{cluster:?}");
        assert_eq!(out.telemetry_endpoint(), Some(here.as_str()));
        assert_eq!(out.service_connect_endpoint(), Some(here.as_str()));
    }

    // ECS's errors for what cannot be answered.
    let ask = |cluster: &str, container_instance: Option<&str>| {
        ecs.discover_poll_endpoint()
            .cluster(cluster)
            .set_container_instance(container_instance.map(str::to_owned))
            .send()
    };
    let msg = expect_error(
        ask(&arn(REGION, "task/polled/0123"), None).await,
        "InvalidParameterException",
    );
    assert!(msg.contains("cluster"), "{msg}");
    let bad = [
        ("not-an-instance", "not-an-instance"),
        (other.as_str(), "elsewhere"),
        (id_of(&other), "not found in cluster polled"),
        (
            "0123456789abcdef0123456789abcdef",
            "not found in cluster polled",
        ),
    ];
    for (reference, says) in bad {
        let msg = expect_error(
            ask("polled", Some(reference)).await,
            "InvalidParameterException",
        );
        assert!(msg.contains(says), "{reference}: {msg}");
    }
    let msg = expect_error(
        ask("ghost", Some(id_of(&instance))).await,
        "InvalidParameterException",
    );
    assert!(msg.contains("not found in cluster ghost"), "{msg}");

    // Authorization: an agent-protocol action, in the cluster it names.
    let reader = berth.client_as(&common::credential(&berth, "reader", "read-only").await);
    let outsider = berth.client_as(&common::credential(&berth, "ops", "operator:elsewhere").await);
    let operator =
        berth.client_as(&common::credential(&berth, "polled-ops", "operator:polled").await);
    for denied in [&reader, &outsider] {
        let msg = expect_error(
            denied
                .discover_poll_endpoint()
                .cluster("polled")
                .send()
                .await,
            "AccessDeniedException",
        );
        assert!(msg.contains("ecs:DiscoverPollEndpoint"), "{msg}");
    }
    let out = operator
        .discover_poll_endpoint()
        .cluster("polled")
        .container_instance(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(out.endpoint(), Some(here.as_str()));
    let agent = common::HandAgent::join(&berth.endpoint, "polled", "https://127.0.0.1:9").await;
    let as_agent = berth.client_as(&agent.credentials);
    let out = as_agent
        .discover_poll_endpoint()
        .cluster("polled")
        .container_instance(&agent.instance_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(out.endpoint(), Some(here.as_str()));
    expect_error(
        as_agent
            .discover_poll_endpoint()
            .cluster("elsewhere")
            .send()
            .await,
        "AccessDeniedException",
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Tasks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn run_task_fields_group_started_by_overrides_and_tags() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let cluster_arn = create_cluster(&ecs, "work").await;
    let a = register_instance(&ecs, "work", 1024, 2048).await;
    let b = register_instance(&ecs, "work", 1024, 2048).await;
    let td = register_family(&ecs, "app", 256, 512).await;

    let out = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .count(3)
        .started_by("ci-42")
        .tags(tag("owner", "alice"))
        .overrides(
            TaskOverride::builder()
                .container_overrides(
                    ContainerOverride::builder()
                        .name("main")
                        .command("echo")
                        .command("hi")
                        .environment(KeyValuePair::builder().name("MODE").value("batch").build())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    assert_eq!(out.tasks().len(), 3);
    for t in out.tasks() {
        let task_arn = t.task_arn().unwrap();
        assert!(
            task_arn.starts_with(&arn(REGION, "task/work/")),
            "{task_arn}"
        );
        assert!(is_ecs_id(id_of(task_arn)), "{task_arn}");
        assert_eq!(t.cluster_arn(), Some(cluster_arn.as_str()));
        assert_eq!(t.task_definition_arn(), td.task_definition_arn());
        assert_eq!(t.group(), Some("family:app"));
        assert_eq!(t.started_by(), Some("ci-42"));
        assert_eq!(t.last_status(), Some("PENDING"));
        assert_eq!(t.desired_status(), Some("RUNNING"));
        assert_eq!(t.launch_type().map(|l| l.as_str()), Some("EC2"));
        assert!(t.created_at().is_some());
        assert!(t.started_at().is_none());
        let instance = t.container_instance_arn().unwrap();
        assert!(instance == a || instance == b, "{instance}");
        assert_eq!(
            tag_map(t.tags()).get("owner").map(String::as_str),
            Some("alice")
        );
        let o = t.overrides().unwrap();
        let main = o
            .container_overrides()
            .iter()
            .find(|c| c.name() == Some("main"))
            .expect("an override entry for the container");
        assert_eq!(main.command(), ["echo", "hi"]);
        assert_eq!(main.environment()[0].name(), Some("MODE"));
        assert_eq!(t.containers().len(), 1);
        let c = &t.containers()[0];
        assert_eq!(c.name(), Some("main"));
        assert_eq!(c.image(), Some("nginx:1.27"));
        assert_eq!(c.last_status(), Some("PENDING"));
        assert_eq!(c.task_arn(), Some(task_arn));
    }
    let ids = task_arns(out.tasks());
    assert_eq!(ids.len(), 3, "task ARNs must be distinct");
    // DescribeTasks sees the same, tags included on request.
    let d = ecs
        .describe_tasks()
        .cluster(&cluster_arn)
        .set_tasks(Some(ids.iter().cloned().collect()))
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(task_arns(d.tasks()), ids);
    assert!(
        d.tasks()
            .iter()
            .all(|t| tag_map(t.tags()).contains_key("owner"))
    );

    // An explicit group; the default cluster is used when none is named.
    let grouped = ecs
        .run_task()
        .cluster("work")
        .task_definition("app:1")
        .group("batch-jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(grouped.tasks()[0].group(), Some("batch-jobs"));
    assert!(grouped.tasks()[0].started_by().is_none());
    expect_error(
        ecs.run_task().task_definition("app").send().await,
        "ClusterNotFoundException",
    );

    // Unknown and INACTIVE task definitions.
    expect_error(
        ecs.run_task()
            .cluster("work")
            .task_definition("nope")
            .send()
            .await,
        "ClientException",
    );
    ecs.deregister_task_definition()
        .task_definition("app:1")
        .send()
        .await
        .unwrap();
    expect_error(
        ecs.run_task()
            .cluster("work")
            .task_definition("app:1")
            .send()
            .await,
        "ClientException",
    );
    expect_error(
        ecs.run_task()
            .cluster("work")
            .task_definition("app")
            .send()
            .await,
        "ClientException",
    );
}

#[tokio::test]
async fn placement_never_exceeds_instance_resources() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "full").await;

    // No instances at all.
    register_family(&ecs, "quarter", 256, 512).await;
    let msg = expect_error(
        ecs.run_task()
            .cluster("full")
            .task_definition("quarter")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("Container Instances"), "{msg}");

    let a = register_instance(&ecs, "full", 1024, 2048).await;
    let b = register_instance(&ecs, "full", 1024, 2048).await;
    let instances = set(&[&a, &b]);

    // Each instance fits four: 3 + 10 asked, 8 placed, and the rest reported RESOURCE:CPU
    // against the instances.
    let (first, failures) = run(&ecs, "full", "quarter", 3).await;
    assert_eq!(first.len(), 3);
    assert!(failures.is_empty());
    let (second, failures) = run(&ecs, "full", "quarter", 10).await;
    assert_eq!(second.len(), 5, "{failures:?}");
    assert!(!failures.is_empty());
    for f in &failures {
        assert_eq!(f.reason(), Some("RESOURCE:CPU"), "{f:?}");
        assert!(instances.contains(f.arn().unwrap()), "{f:?}");
        assert!(f.detail().is_some_and(|d| !d.is_empty()), "{f:?}");
    }
    for i in [&a, &b] {
        let d = describe_instance(&ecs, "full", i).await;
        assert_eq!(int_of(d.remaining_resources(), "CPU"), 0);
        assert_eq!(int_of(d.remaining_resources(), "MEMORY"), 0);
        assert_eq!(d.pending_tasks_count(), 4);
        let on = list_tasks(&ecs, "full", |l| l.container_instance(i.as_str())).await;
        assert_eq!(on.len(), 4);
    }
    // Full: nothing more fits.
    let (none, failures) = run(&ecs, "full", "quarter", 1).await;
    assert!(none.is_empty());
    assert_eq!(failures.len(), 2, "one failure per instance: {failures:?}");

    // On a fresh cluster with one instance: each kind of misfit, named with the instance.
    create_cluster(&ecs, "small").await;
    let c = register_instance(&ecs, "small", 1024, 2048).await;
    register_family(&ecs, "cpu-hog", 2048, 128).await;
    register_family(&ecs, "mem-hog", 128, 4096).await;
    register_with_port(&ecs, "web8080", 128, 128, 8080).await;
    register_with_port(&ecs, "web22", 128, 128, 22).await;

    let (tasks, failures) = run(&ecs, "small", "cpu-hog", 1).await;
    assert!(tasks.is_empty());
    assert_eq!(
        failure_summary(&failures),
        vec![(c.clone(), "RESOURCE:CPU".to_owned())]
    );
    let (tasks, failures) = run(&ecs, "small", "mem-hog", 1).await;
    assert!(tasks.is_empty());
    assert_eq!(
        failure_summary(&failures),
        vec![(c.clone(), "RESOURCE:MEMORY".to_owned())]
    );
    // A reserved port (22) never fits.
    let (tasks, failures) = run(&ecs, "small", "web22", 1).await;
    assert!(tasks.is_empty());
    assert_eq!(
        failure_summary(&failures),
        vec![(c.clone(), "RESOURCE:PORTS".to_owned())]
    );
    // Two copies of a static port: the first fits, the second does not.
    let (tasks, failures) = run(&ecs, "small", "web8080", 2).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        failure_summary(&failures),
        vec![(c.clone(), "RESOURCE:PORTS".to_owned())]
    );
    let d = describe_instance(&ecs, "small", &c).await;
    assert!(ports_of(d.remaining_resources(), "PORTS").contains("8080"));
    assert_eq!(int_of(d.remaining_resources(), "CPU"), 1024 - 128);
}

/// Many RunTask calls at once: each plans on its own snapshot, and the commit-time re-check
/// must keep the instances from being overcommitted.
#[tokio::test]
async fn concurrent_run_tasks_never_overcommit_an_instance() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "race").await;
    let a = register_instance(&ecs, "race", 1024, 4096).await;
    let b = register_instance(&ecs, "race", 1024, 4096).await;
    register_family(&ecs, "racer", 256, 256).await;

    let calls = (0..12).map(|_| {
        let ecs = ecs.clone();
        async move {
            ecs.run_task()
                .cluster("race")
                .task_definition("racer")
                .send()
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(calls).await;
    let placed: Vec<&Task> = results.iter().flat_map(|r| r.tasks()).collect();
    assert_eq!(placed.len(), 8, "two instances of four slots each");
    for r in &results {
        assert_eq!(r.tasks().len() + r.failures().len().min(1), 1, "{r:?}");
        for f in r.failures() {
            assert_eq!(f.reason(), Some("RESOURCE:CPU"), "{f:?}");
        }
    }
    for i in [&a, &b] {
        let d = describe_instance(&ecs, "race", i).await;
        assert_eq!(int_of(d.remaining_resources(), "CPU"), 0);
        assert_eq!(d.pending_tasks_count(), 4);
        let here = placed
            .iter()
            .filter(|t| t.container_instance_arn() == Some(i.as_str()))
            .count();
        assert_eq!(here, 4);
    }
    assert_eq!(list_tasks(&ecs, "race", |l| l).await.len(), 8);
}

/// Contended RunTask calls asking for several tasks each still fill the cluster exactly: no
/// call gives up on capacity that is there, none overcommits.
#[tokio::test]
async fn concurrent_multi_task_run_tasks_fill_the_cluster_exactly() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "crowd").await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(register_instance(&ecs, "crowd", 2048, 8192).await);
    }
    register_family(&ecs, "crowd", 256, 256).await;
    // 3 instances × 8 slots = 24 slots; 10 calls × 3 tasks = 30 asked.
    let calls = (0..10).map(|_| {
        let ecs = ecs.clone();
        async move {
            ecs.run_task()
                .cluster("crowd")
                .task_definition("crowd")
                .count(3)
                .send()
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(calls).await;
    let placed: usize = results.iter().map(|r| r.tasks().len()).sum();
    assert_eq!(placed, 24, "{results:#?}");
    for r in &results {
        if r.tasks().len() < 3 {
            assert!(!r.failures().is_empty(), "short without saying why: {r:?}");
        } else {
            assert!(r.failures().is_empty(), "{r:?}");
        }
    }
    for i in &instances {
        let d = describe_instance(&ecs, "crowd", i).await;
        assert_eq!(int_of(d.remaining_resources(), "CPU"), 0);
        assert_eq!(d.pending_tasks_count(), 8);
    }
}

/// The same clientToken sent twice at once (an SDK retry racing the original) starts the
/// tasks once.
#[tokio::test]
async fn concurrent_run_tasks_with_one_client_token_start_tasks_once() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "twice").await;
    register_instance(&ecs, "twice", 4096, 4096).await;
    register_family(&ecs, "twice", 128, 128).await;
    let calls = (0..4).map(|_| {
        let ecs = ecs.clone();
        async move {
            ecs.run_task()
                .cluster("twice")
                .task_definition("twice")
                .count(2)
                .client_token("same-token-for-all")
                .send()
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(calls).await;
    let first = task_arns(results[0].tasks());
    assert_eq!(first.len(), 2);
    for r in &results {
        assert_eq!(task_arns(r.tasks()), first);
    }
    assert_eq!(list_tasks(&ecs, "twice", |l| l).await, first);
}

#[tokio::test]
async fn run_task_overrides_change_what_a_task_reserves() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "ov").await;
    let inst = register_instance(&ecs, "ov", 1024, 2048).await;
    register_family(&ecs, "ov", 128, 128).await;

    let with = |o: TaskOverride| {
        let ecs = ecs.clone();
        async move {
            ecs.run_task()
                .cluster("ov")
                .task_definition("ov")
                .overrides(o)
                .send()
                .await
        }
    };
    // A container cpu override larger than the instance.
    let out = with(
        TaskOverride::builder()
            .container_overrides(ContainerOverride::builder().name("main").cpu(2048).build())
            .build(),
    )
    .await
    .unwrap();
    assert!(out.tasks().is_empty());
    assert_eq!(
        failure_summary(out.failures()),
        vec![(inst.clone(), "RESOURCE:CPU".to_owned())]
    );
    // A task-level memory override larger than the instance.
    let out = with(TaskOverride::builder().memory("4096").build())
        .await
        .unwrap();
    assert!(out.tasks().is_empty());
    assert_eq!(
        failure_summary(out.failures()),
        vec![(inst.clone(), "RESOURCE:MEMORY".to_owned())]
    );
    // A memory override that fits: the instance accounts for the overridden amount.
    let out = with(
        TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name("main")
                    .memory(1024)
                    .cpu(512)
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
    assert_eq!(out.tasks().len(), 1, "{out:?}");
    let c = &out.tasks()[0].containers()[0];
    assert_eq!(c.memory(), Some("1024"));
    assert_eq!(c.cpu(), Some("512"));
    let d = describe_instance(&ecs, "ov", &inst).await;
    assert_eq!(int_of(d.remaining_resources(), "CPU"), 1024 - 512);
    assert_eq!(int_of(d.remaining_resources(), "MEMORY"), 2048 - 1024);
    // An override for a container the task definition does not have.
    let msg = expect_error(
        with(
            TaskOverride::builder()
                .container_overrides(ContainerOverride::builder().name("ghost").build())
                .build(),
        )
        .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("ghost"), "{msg}");
    // launchType filters: every berth task is EC2.
    assert_eq!(
        list_tasks(&ecs, "ov", |l| l
            .launch_type(aws_sdk_ecs::types::LaunchType::Ec2))
        .await
        .len(),
        1
    );
    assert!(
        list_tasks(&ecs, "ov", |l| l
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate))
        .await
        .is_empty()
    );
    // RunTask asking for Fargate is refused with a reason.
    let msg = expect_one_of(
        ecs.run_task()
            .cluster("ov")
            .task_definition("ov")
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .send()
            .await,
        &["InvalidParameterException", "UnsupportedFeatureException"],
    )
    .1;
    assert!(msg.contains("FARGATE"), "{msg}");
}

#[tokio::test]
async fn start_task_places_on_the_chosen_instances() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "pick").await;
    let a = register_instance(&ecs, "pick", 1024, 1024).await;
    let b = register_instance(&ecs, "pick", 1024, 1024).await;
    register_family(&ecs, "job", 512, 256).await;

    let one = ecs
        .start_task()
        .cluster("pick")
        .task_definition("job")
        .container_instances(&b)
        .started_by("picker")
        .send()
        .await
        .unwrap();
    assert!(one.failures().is_empty());
    assert_eq!(one.tasks().len(), 1);
    let t = &one.tasks()[0];
    assert_eq!(t.container_instance_arn(), Some(b.as_str()));
    assert_eq!(t.group(), Some("family:job"));
    assert_eq!(t.started_by(), Some("picker"));

    let both = ecs
        .start_task()
        .cluster("pick")
        .task_definition("job")
        .container_instances(id_of(&a))
        .container_instances(&b)
        .send()
        .await
        .unwrap();
    assert!(both.failures().is_empty(), "{:?}", both.failures());
    let placed: BTreeSet<_> = both
        .tasks()
        .iter()
        .map(|t| t.container_instance_arn().unwrap().to_owned())
        .collect();
    assert_eq!(placed, set(&[&a, &b]));

    // b is now full (2 × 512 CPU): StartTask does not overcommit it; an unknown instance is
    // MISSING.
    let bogus = "ffffffffffffffffffffffffffffffff";
    let refused = ecs
        .start_task()
        .cluster("pick")
        .task_definition("job")
        .container_instances(&b)
        .container_instances(bogus)
        .send()
        .await
        .unwrap();
    assert!(refused.tasks().is_empty());
    let mut got = failure_summary(refused.failures());
    got.sort();
    let mut want = vec![
        (b.clone(), "RESOURCE:CPU".to_owned()),
        (
            arn(REGION, &format!("container-instance/pick/{bogus}")),
            "MISSING".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    let d = describe_instance(&ecs, "pick", &b).await;
    assert_eq!(int_of(d.remaining_resources(), "CPU"), 0);

    // An instance of another cluster is not a target here.
    create_cluster(&ecs, "elsewhere").await;
    let foreign = register_instance(&ecs, "elsewhere", 4096, 4096).await;
    let r = ecs
        .start_task()
        .cluster("pick")
        .task_definition("job")
        .container_instances(&foreign)
        .send()
        .await;
    match r {
        Ok(out) => {
            assert!(
                out.tasks().is_empty(),
                "placed on another cluster's instance"
            );
            assert_eq!(out.failures().len(), 1);
        }
        Err(e) => assert_eq!(e.code(), Some("InvalidParameterException"), "{e:?}"),
    }
    let r = ecs
        .start_task()
        .cluster("pick")
        .task_definition("job")
        .container_instances(id_of(&foreign))
        .send()
        .await
        .unwrap();
    assert!(r.tasks().is_empty(), "placed on another cluster's instance");
}

#[tokio::test]
async fn describe_and_list_tasks_with_every_filter() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "lt").await;
    let a = register_instance(&ecs, "lt", 4096, 4096).await;
    let b = register_instance(&ecs, "lt", 4096, 4096).await;
    register_family(&ecs, "alpha", 128, 128).await;
    register_family(&ecs, "beta", 128, 128).await;

    let start = |family: &'static str, on: Vec<String>, by: Option<&'static str>| {
        let ecs = ecs.clone();
        async move {
            let out = ecs
                .start_task()
                .cluster("lt")
                .task_definition(family)
                .set_container_instances(Some(on))
                .set_started_by(by.map(str::to_owned))
                .send()
                .await
                .unwrap();
            assert!(out.failures().is_empty(), "{:?}", out.failures());
            task_arns(out.tasks())
        }
    };
    let alpha_a = start("alpha", vec![a.clone(), a.clone()], Some("job-1")).await;
    let alpha_b = start("alpha", vec![b.clone()], None).await;
    let beta_b = start("beta", vec![b.clone(), b.clone()], Some("job-2")).await;
    assert_eq!((alpha_a.len(), alpha_b.len(), beta_b.len()), (2, 1, 2));
    let stopped = alpha_a.iter().next().unwrap().clone();
    ecs.stop_task()
        .cluster("lt")
        .task(&stopped)
        .send()
        .await
        .unwrap();

    let union = |sets: &[&BTreeSet<String>]| -> BTreeSet<String> {
        sets.iter().flat_map(|s| s.iter().cloned()).collect()
    };
    let mut running = union(&[&alpha_a, &alpha_b, &beta_b]);
    running.remove(&stopped);

    // desiredStatus defaults to RUNNING.
    assert_eq!(list_tasks(&ecs, "lt", |l| l).await, running);
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.desired_status(DesiredStatus::Running)).await,
        running
    );
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.desired_status(DesiredStatus::Stopped)).await,
        set(&[&stopped])
    );
    // ECS accepts PENDING but never sets it as a desired status: nothing matches.
    assert!(
        list_tasks(&ecs, "lt", |l| l.desired_status(DesiredStatus::Pending))
            .await
            .is_empty()
    );
    // containerInstance, by ARN and by id.
    let mut on_a = alpha_a.clone();
    on_a.remove(&stopped);
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.container_instance(a.as_str())).await,
        on_a
    );
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.container_instance(id_of(&b))).await,
        union(&[&alpha_b, &beta_b])
    );
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l
            .container_instance(a.as_str())
            .desired_status(DesiredStatus::Stopped))
        .await,
        set(&[&stopped])
    );
    // family.
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.family("alpha")).await,
        union(&[&on_a, &alpha_b])
    );
    assert_eq!(list_tasks(&ecs, "lt", |l| l.family("beta")).await, beta_b);
    assert!(
        list_tasks(&ecs, "lt", |l| l.family("gamma"))
            .await
            .is_empty()
    );
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l
            .family("alpha")
            .container_instance(b.as_str()))
        .await,
        alpha_b
    );
    // startedBy.
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.started_by("job-1")).await,
        on_a
    );
    assert_eq!(
        list_tasks(&ecs, "lt", |l| l.started_by("job-2")).await,
        beta_b
    );
    assert!(
        list_tasks(&ecs, "lt", |l| l.started_by("job-3"))
            .await
            .is_empty()
    );
    // serviceName: no standalone task belongs to a service. (ECS may instead answer
    // ServiceNotFoundException for a service that does not exist; either is fine, listing the
    // standalone tasks is not.)
    match ecs
        .list_tasks()
        .cluster("lt")
        .service_name("frontend")
        .send()
        .await
    {
        Ok(out) => assert!(out.task_arns().is_empty(), "{:?}", out.task_arns()),
        Err(e) => assert_eq!(e.code(), Some("ServiceNotFoundException"), "{e:?}"),
    }

    // Pagination: pages of 1 and of 2 walk to the same set.
    let all = list_tasks_paged(&ecs, "lt", 1, |l| l).await;
    assert_eq!(all.iter().cloned().collect::<BTreeSet<_>>(), running);
    assert_eq!(all.len(), running.len());
    let all = list_tasks_paged(&ecs, "lt", 2, |l| l.container_instance(b.as_str())).await;
    assert_eq!(
        all.into_iter().collect::<BTreeSet<_>>(),
        union(&[&alpha_b, &beta_b])
    );
    let all = list_tasks_paged(&ecs, "lt", 1, |l| l.family("beta")).await;
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), beta_b);

    // DescribeTasks: ARNs and ids, unknown ones as MISSING failures.
    let bogus = "00000000000000000000000000000001";
    let first = running.iter().next().unwrap().clone();
    let d = ecs
        .describe_tasks()
        .cluster("lt")
        .tasks(&first)
        .tasks(id_of(&stopped))
        .tasks(bogus)
        .send()
        .await
        .unwrap();
    assert_eq!(task_arns(d.tasks()), set(&[&first, &stopped]));
    assert_eq!(
        failure_summary(d.failures()),
        vec![(
            arn(REGION, &format!("task/lt/{bogus}")),
            "MISSING".to_owned()
        )]
    );
    let t = d
        .tasks()
        .iter()
        .find(|t| t.task_arn() == Some(stopped.as_str()))
        .unwrap();
    assert_eq!(t.desired_status(), Some("STOPPED"));
    // A task of another cluster is MISSING here.
    create_cluster(&ecs, "other").await;
    let d = ecs
        .describe_tasks()
        .cluster("other")
        .tasks(id_of(&first))
        .send()
        .await
        .unwrap();
    assert!(d.tasks().is_empty());
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
}

#[tokio::test]
async fn task_lifecycle_through_agent_reports_and_stop_task() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "cycle").await;
    let inst = register_instance(&ecs, "cycle", 1024, 1024).await;
    let web = ContainerDefinition::builder()
        .name("web")
        .image("nginx:1.27")
        .cpu(512)
        .memory(512)
        .port_mappings(tcp(80, 8080))
        .build();
    let log = ContainerDefinition::builder()
        .name("log")
        .image("fluent-bit:3")
        .cpu(512)
        .memory(512)
        .essential(false)
        .build();
    ecs.register_task_definition()
        .family("site")
        .container_definitions(web)
        .container_definitions(log)
        .send()
        .await
        .unwrap();

    let (tasks, failures) = run(&ecs, "cycle", "site", 1).await;
    assert!(failures.is_empty(), "{failures:?}");
    let task = tasks[0].task_arn().unwrap().to_owned();
    assert_eq!(tasks[0].containers().len(), 2);
    // The instance is full: a second copy does not fit.
    let (none, failures) = run(&ecs, "cycle", "site", 1).await;
    assert!(none.is_empty());
    assert_eq!(failures[0].reason(), Some("RESOURCE:CPU"));

    // The agent reports RUNNING with the containers' runtime ids and port bindings.
    let binding = NetworkBinding::builder()
        .bind_ip("0.0.0.0")
        .container_port(80)
        .host_port(8080)
        .protocol(TransportProtocol::Tcp)
        .build();
    let ack = ecs
        .submit_task_state_change()
        .cluster("cycle")
        .task(&task)
        .status("RUNNING")
        .pull_started_at(DateTime::from_secs(1_700_000_000))
        .pull_stopped_at(DateTime::from_secs(1_700_000_005))
        .containers(
            ContainerStateChange::builder()
                .container_name("web")
                .status("RUNNING")
                .runtime_id("c0ffee")
                .network_bindings(binding)
                .build(),
        )
        .containers(
            ContainerStateChange::builder()
                .container_name("log")
                .status("RUNNING")
                .runtime_id("beef")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ack.acknowledgment(), Some("ACK"));
    let t = describe_task(&ecs, "cycle", &task).await;
    assert_eq!(t.last_status(), Some("RUNNING"));
    assert_eq!(t.desired_status(), Some("RUNNING"));
    let started_at = *t.started_at().expect("startedAt set once RUNNING");
    assert!(t.pull_started_at().is_some() && t.pull_stopped_at().is_some());
    assert!(t.stopped_at().is_none());
    let web = t
        .containers()
        .iter()
        .find(|c| c.name() == Some("web"))
        .unwrap();
    assert_eq!(web.last_status(), Some("RUNNING"));
    assert_eq!(web.runtime_id(), Some("c0ffee"));
    assert_eq!(web.network_bindings().len(), 1);
    assert_eq!(web.network_bindings()[0].host_port(), Some(8080));
    assert_eq!(web.network_bindings()[0].container_port(), Some(80));
    let d = ecs
        .describe_clusters()
        .clusters("cycle")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].running_tasks_count(), 1);
    assert_eq!(d.clusters()[0].pending_tasks_count(), 0);
    let i = describe_instance(&ecs, "cycle", &inst).await;
    assert_eq!((i.running_tasks_count(), i.pending_tasks_count()), (1, 0));
    // The SDK's TasksRunning waiter (what `aws ecs wait tasks-running` polls) is satisfied.
    ecs.wait_until_tasks_running()
        .cluster("cycle")
        .tasks(&task)
        .wait(Duration::from_secs(5))
        .await
        .expect("TasksRunning waiter");

    // A container exits on its own: recorded, the task keeps running (not essential).
    let ack = ecs
        .submit_container_state_change()
        .cluster("cycle")
        .task(&task)
        .container_name("log")
        .status("STOPPED")
        .exit_code(0)
        .reason("done")
        .send()
        .await
        .unwrap();
    assert_eq!(ack.acknowledgment(), Some("ACK"));
    let t = describe_task(&ecs, "cycle", &task).await;
    assert_eq!(t.last_status(), Some("RUNNING"));
    let log = t
        .containers()
        .iter()
        .find(|c| c.name() == Some("log"))
        .unwrap();
    assert_eq!(log.last_status(), Some("STOPPED"));
    assert_eq!(log.exit_code(), Some(0));
    assert_eq!(log.reason(), Some("done"));
    expect_error(
        ecs.submit_container_state_change()
            .cluster("cycle")
            .task(&task)
            .container_name("nope")
            .status("STOPPED")
            .send()
            .await,
        "InvalidParameterException",
    );

    // The essential container exits, then the task: STOPPED with the reason ECS gives.
    ecs.submit_container_state_change()
        .cluster("cycle")
        .task(&task)
        .container_name("web")
        .status("STOPPED")
        .exit_code(137)
        .send()
        .await
        .unwrap();
    report(&ecs, "cycle", &task, "STOPPED").await;
    let t = describe_task(&ecs, "cycle", &task).await;
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.desired_status(), Some("STOPPED"));
    let stopped_at = *t.stopped_at().expect("stoppedAt set once STOPPED");
    assert!(stopped_at.secs() >= started_at.secs());
    assert_eq!(t.started_at(), Some(&started_at), "startedAt must not move");
    assert_eq!(t.stop_code(), Some(&TaskStopCode::EssentialContainerExited));
    assert_eq!(
        t.stopped_reason(),
        Some("Essential container in task exited")
    );
    let web = t
        .containers()
        .iter()
        .find(|c| c.name() == Some("web"))
        .unwrap();
    assert_eq!(web.exit_code(), Some(137));
    assert_eq!(web.last_status(), Some("STOPPED"));
    assert_eq!(web.network_bindings()[0].host_port(), Some(8080));
    // TasksStopped is satisfied; TasksRunning fails at once on a STOPPED task.
    ecs.wait_until_tasks_stopped()
        .cluster("cycle")
        .tasks(&task)
        .wait(Duration::from_secs(5))
        .await
        .expect("TasksStopped waiter");
    let t0 = Instant::now();
    let err = ecs
        .wait_until_tasks_running()
        .cluster("cycle")
        .tasks(&task)
        .wait(Duration::from_secs(20))
        .await
        .expect_err("TasksRunning must fail on a STOPPED task");
    assert!(format!("{err:?}").contains("FailureState"), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // A late RUNNING report cannot bring it back.
    report(&ecs, "cycle", &task, "RUNNING").await;
    let t = describe_task(&ecs, "cycle", &task).await;
    assert_eq!(t.last_status(), Some("STOPPED"));

    // Its resources are free again, and a new copy fits.
    let i = describe_instance(&ecs, "cycle", &inst).await;
    assert_eq!(int_of(i.remaining_resources(), "CPU"), 1024);
    assert_eq!(int_of(i.remaining_resources(), "MEMORY"), 1024);
    assert!(!ports_of(i.remaining_resources(), "PORTS").contains("8080"));
    assert_eq!((i.running_tasks_count(), i.pending_tasks_count()), (0, 0));
    let (tasks, failures) = run(&ecs, "cycle", "site", 1).await;
    assert!(failures.is_empty(), "{failures:?}");
    let next = tasks[0].task_arn().unwrap().to_owned();

    // StopTask: desiredStatus STOPPED at once, lastStatus when the agent says so.
    let stopped = ecs
        .stop_task()
        .cluster("cycle")
        .task(id_of(&next))
        .reason("maintenance window")
        .send()
        .await
        .unwrap();
    let t = stopped.task().unwrap();
    assert_eq!(t.task_arn(), Some(next.as_str()));
    assert_eq!(t.desired_status(), Some("STOPPED"));
    assert_eq!(t.last_status(), Some("PENDING"));
    assert_eq!(t.stopped_reason(), Some("maintenance window"));
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert!(t.stopping_at().is_some());
    assert!(list_tasks(&ecs, "cycle", |l| l).await.is_empty());
    assert!(
        list_tasks(&ecs, "cycle", |l| l.desired_status(DesiredStatus::Stopped))
            .await
            .contains(&next)
    );
    // Until the agent reports STOPPED, the task still holds its resources.
    let i = describe_instance(&ecs, "cycle", &inst).await;
    assert_eq!(int_of(i.remaining_resources(), "CPU"), 0);
    // Stopping again changes nothing.
    let again = ecs
        .stop_task()
        .cluster("cycle")
        .task(&next)
        .reason("another reason")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.task().unwrap().stopped_reason(),
        Some("maintenance window")
    );
    report(&ecs, "cycle", &next, "STOPPED").await;
    let t = describe_task(&ecs, "cycle", &next).await;
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(t.stopped_reason(), Some("maintenance window"));
    assert!(t.stopped_at().is_some());
    let i = describe_instance(&ecs, "cycle", &inst).await;
    assert_eq!(int_of(i.remaining_resources(), "CPU"), 1024);

    // Unknown tasks.
    expect_error(
        ecs.stop_task()
            .cluster("cycle")
            .task("0123456789abcdef0123456789abcdef")
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.stop_task()
            .cluster("cycle")
            .task("not-a-task-id")
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn run_task_client_token_is_idempotent() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "idem").await;
    register_instance(&ecs, "idem", 4096, 4096).await;
    register_family(&ecs, "once", 128, 128).await;

    let call = |token: &'static str, count: i32, by: &'static str| {
        let ecs = ecs.clone();
        async move {
            ecs.run_task()
                .cluster("idem")
                .task_definition("once")
                .count(count)
                .started_by(by)
                .client_token(token)
                .send()
                .await
        }
    };
    let first = call("deploy-0001", 2, "deployer").await.unwrap();
    assert_eq!(first.tasks().len(), 2);
    let again = call("deploy-0001", 2, "deployer").await.unwrap();
    assert_eq!(task_arns(again.tasks()), task_arns(first.tasks()));
    assert!(again.failures().is_empty());
    assert_eq!(list_tasks(&ecs, "idem", |l| l).await.len(), 2);

    // Same token, different parameters.
    let msg = expect_error(
        call("deploy-0001", 1, "deployer").await,
        "ConflictException",
    );
    assert!(msg.contains("clientToken"), "{msg}");
    expect_error(
        call("deploy-0001", 2, "someone-else").await,
        "ConflictException",
    );
    assert_eq!(list_tasks(&ecs, "idem", |l| l).await.len(), 2);

    // A new token is a new request.
    let other = call("deploy-0002", 2, "deployer").await.unwrap();
    assert_eq!(other.tasks().len(), 2);
    assert!(task_arns(other.tasks()).is_disjoint(&task_arns(first.tasks())));
    assert_eq!(list_tasks(&ecs, "idem", |l| l).await.len(), 4);

    // Tokens are 1 to 64 printable characters.
    expect_error(
        ecs.run_task()
            .cluster("idem")
            .task_definition("once")
            .client_token("x".repeat(65))
            .send()
            .await,
        "InvalidParameterException",
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Tags
// ---------------------------------------------------------------------------------------------

async fn tags_of(ecs: &Client, resource: &str) -> BTreeMap<String, String> {
    tag_map(
        ecs.list_tags_for_resource()
            .resource_arn(resource)
            .send()
            .await
            .unwrap()
            .tags(),
    )
}

#[tokio::test]
async fn tags_on_clusters_task_definitions_instances_and_tasks() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let cluster = create_cluster(&ecs, "tagged").await;
    let instance = register_instance(&ecs, "tagged", 1024, 1024).await;
    let td = register_family(&ecs, "tagged-app", 128, 128).await;
    let td_arn = td.task_definition_arn().unwrap().to_owned();
    let (tasks, _) = run(&ecs, "tagged", "tagged-app", 1).await;
    let task = tasks[0].task_arn().unwrap().to_owned();

    for resource in [&cluster, &td_arn, &instance, &task] {
        assert!(tags_of(&ecs, resource).await.is_empty(), "{resource}");
        ecs.tag_resource()
            .resource_arn(resource)
            .tags(tag("a", "1"))
            .tags(tag("b", "2"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags_of(&ecs, resource).await,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            "{resource}"
        );
        // Tagging an existing key replaces its value.
        ecs.tag_resource()
            .resource_arn(resource)
            .tags(tag("a", "9"))
            .send()
            .await
            .unwrap();
        ecs.untag_resource()
            .resource_arn(resource)
            .tag_keys("b")
            .tag_keys("never-there")
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags_of(&ecs, resource).await,
            BTreeMap::from([("a".into(), "9".into())]),
            "{resource}"
        );
    }
    // The describe calls show the same tags.
    let d = ecs
        .describe_clusters()
        .clusters("tagged")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tag_map(d.clusters()[0].tags()).get("a").map(String::as_str),
        Some("9")
    );
    let d = ecs
        .describe_task_definition()
        .task_definition(&td_arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(tag_map(d.tags()).get("a").map(String::as_str), Some("9"));
    let i = describe_instance(&ecs, "tagged", &instance).await;
    assert_eq!(tag_map(i.tags()).get("a").map(String::as_str), Some("9"));
    let t = describe_task(&ecs, "tagged", &task).await;
    assert_eq!(tag_map(t.tags()).get("a").map(String::as_str), Some("9"));

    // 50 tags per resource: the cluster has 1, so 49 more fit and the 51st does not.
    let mut req = ecs.tag_resource().resource_arn(&cluster);
    for i in 0..49 {
        req = req.tags(tag(&format!("k{i:02}"), "v"));
    }
    req.send().await.unwrap();
    assert_eq!(tags_of(&ecs, &cluster).await.len(), 50);
    let msg = expect_error(
        ecs.tag_resource()
            .resource_arn(&cluster)
            .tags(tag("straw", "camel"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("50"), "{msg}");
    assert_eq!(tags_of(&ecs, &cluster).await.len(), 50);
    // Replacing a value at the limit is fine.
    ecs.tag_resource()
        .resource_arn(&cluster)
        .tags(tag("k00", "w"))
        .send()
        .await
        .unwrap();
    // 51 in a single call, or at creation, is refused.
    let mut req = ecs.tag_resource().resource_arn(&task);
    let mut create = ecs.create_cluster().cluster_name("overtagged");
    for i in 0..51 {
        req = req.tags(tag(&format!("k{i:02}"), "v"));
        create = create.tags(tag(&format!("k{i:02}"), "v"));
    }
    expect_error(req.send().await, "InvalidParameterException");
    expect_error(create.send().await, "InvalidParameterException");

    // The aws: prefix is reserved.
    let msg = expect_error(
        ecs.tag_resource()
            .resource_arn(&task)
            .tags(tag("aws:owner", "me"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("aws:"), "{msg}");
    expect_error(
        ecs.tag_resource()
            .resource_arn(&task)
            .tags(tag("AWS:Owner", "me"))
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.create_cluster()
            .cluster_name("reserved")
            .tags(tag("aws:x", "y"))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Unknown resources.
    let ghost_cluster = arn(REGION, "cluster/ghost");
    let ghost_task = arn(REGION, "task/tagged/0123456789abcdef0123456789abcdef");
    for ghost in [&ghost_cluster, &ghost_task] {
        expect_error(
            ecs.tag_resource()
                .resource_arn(ghost)
                .tags(tag("a", "1"))
                .send()
                .await,
            "ResourceNotFoundException",
        );
        expect_error(
            ecs.untag_resource()
                .resource_arn(ghost)
                .tag_keys("a")
                .send()
                .await,
            "ResourceNotFoundException",
        );
        // ListTagsForResource has no ResourceNotFoundException in the ECS model.
        expect_one_of(
            ecs.list_tags_for_resource()
                .resource_arn(ghost)
                .send()
                .await,
            &["InvalidParameterException", "ClusterNotFoundException"],
        );
    }
    expect_error(
        ecs.list_tags_for_resource()
            .resource_arn("not-an-arn")
            .send()
            .await,
        "InvalidParameterException",
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn protocol_errors_have_the_aws_json_error_shape() {
    let berth = common::Berth::start();
    let ep = &berth.endpoint;

    // Unknown operation, foreign service prefix, no target at all.
    let r = ecs_op(ep, "LaunchRockets", "{}").await;
    let msg = r.expect_error("UnknownOperationException");
    assert!(msg.contains("LaunchRockets"), "{msg}");
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(r.header("x-amzn-requestid").is_some_and(|v| !v.is_empty()));
    let r = ecs_raw(ep, Some("DynamoDB_20120810.GetItem"), b"{}").await;
    r.expect_error("UnknownOperationException");
    let r = ecs_raw(ep, None, b"{}").await;
    r.expect_error("UnknownOperationException");

    // Bodies that are not the operation's JSON.
    let r = ecs_op(ep, "ListClusters", "{\"maxResults\": ").await;
    r.expect_error("SerializationException");
    let r = ecs_op(ep, "CreateCluster", "not json at all").await;
    r.expect_error("SerializationException");
    let r = ecs_op(
        ep,
        "RunTask",
        r#"{"taskDefinition": "x", "count": "three"}"#,
    )
    .await;
    let msg = r.expect_error("SerializationException");
    // The message points at the bad value (naming the member would be kinder still).
    assert!(msg.contains("three"), "{msg}");
    let r = ecs_op(ep, "DescribeClusters", r#"{"clusters": "one"}"#).await;
    r.expect_error("SerializationException");
    let r = ecs_op(ep, "CreateCluster", r#"{"clusterName": 42}"#).await;
    r.expect_error("SerializationException");
    let r = ecs_op(ep, "CreateCluster", r#"{"tags": {"k": "v"}}"#).await;
    r.expect_error("SerializationException");

    // Success answers carry the JSON 1.1 content type and a request id too.
    let r = ecs_op(ep, "ListClusters", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(r.json()["clusterArns"].is_array());
}

#[tokio::test]
async fn parameter_errors_name_the_parameter() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "default").await;
    register_instance(&ecs, "default", 1024, 1024).await;
    register_family(&ecs, "p", 128, 128).await;

    // Missing required members.
    let msg = expect_error(ecs.run_task().send().await, "InvalidParameterException");
    assert!(msg.contains("taskDefinition"), "{msg}");
    let msg = expect_error(ecs.stop_task().send().await, "InvalidParameterException");
    assert!(msg.contains("task"), "{msg}");
    let msg = expect_error(
        ecs.describe_tasks().send().await,
        "InvalidParameterException",
    );
    assert!(msg.contains("tasks"), "{msg}");
    let msg = expect_error(
        ecs.delete_cluster().send().await,
        "InvalidParameterException",
    );
    assert!(msg.contains("cluster"), "{msg}");
    // RegisterContainerInstance needs no totalResources (ECS sizes an instance from its
    // identity document; with neither, it registers with no CPU or memory).
    let registered = ecs.register_container_instance().send().await.unwrap();
    let registered = registered.container_instance().unwrap();
    assert_eq!(int_of(registered.registered_resources(), "CPU"), 0);

    // Out of range.
    for count in [0, 11] {
        let msg = expect_error(
            ecs.run_task()
                .task_definition("p")
                .count(count)
                .send()
                .await,
            "InvalidParameterException",
        );
        assert!(msg.contains("count"), "{msg}");
    }
    for max in [0, 101, -1] {
        let msg = expect_error(
            ecs.list_clusters().max_results(max).send().await,
            "InvalidParameterException",
        );
        assert!(msg.contains("maxResults"), "{msg}");
        expect_error(
            ecs.list_tasks().max_results(max).send().await,
            "InvalidParameterException",
        );
        expect_error(
            ecs.list_task_definitions().max_results(max).send().await,
            "InvalidParameterException",
        );
        expect_error(
            ecs.list_container_instances().max_results(max).send().await,
            "InvalidParameterException",
        );
    }
    let mut too_many = ecs.describe_clusters();
    for i in 0..101 {
        too_many = too_many.clusters(format!("c{i}"));
    }
    expect_error(too_many.send().await, "InvalidParameterException");
    expect_error(
        ecs.describe_tasks().set_tasks(Some(vec![])).send().await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.create_cluster().cluster_name("no spaces").send().await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.list_tasks()
            .desired_status(DesiredStatus::from("SLEEPING"))
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.describe_tasks()
            .tasks("x")
            .include(TaskField::from("EVERYTHING"))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Unknown clusters.
    let msg = expect_error(
        ecs.list_tasks().cluster("ghost").send().await,
        "ClusterNotFoundException",
    );
    assert!(msg.contains("luster"), "{msg}");
    expect_error(
        ecs.list_container_instances().cluster("ghost").send().await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.run_task()
            .cluster("ghost")
            .task_definition("p")
            .send()
            .await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.describe_tasks()
            .cluster(arn(REGION, "cluster/ghost"))
            .tasks("0123456789abcdef0123456789abcdef")
            .send()
            .await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.delete_cluster().cluster("ghost").send().await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.register_container_instance()
            .cluster("ghost")
            .total_resources(int_resource("CPU", 1))
            .total_resources(int_resource("MEMORY", 1))
            .send()
            .await,
        "ClusterNotFoundException",
    );
    expect_error(
        ecs.update_cluster_settings()
            .cluster("ghost")
            .settings(
                ClusterSetting::builder()
                    .name(ClusterSettingName::ContainerInsights)
                    .value("enabled")
                    .build(),
            )
            .send()
            .await,
        "ClusterNotFoundException",
    );

    // Bad nextTokens: garbage, and a token of another operation.
    let msg = expect_error(
        ecs.list_clusters().next_token("garbage!!").send().await,
        "InvalidParameterException",
    );
    assert!(msg.contains("nextToken"), "{msg}");
    create_cluster(&ecs, "second").await;
    let page = ecs.list_clusters().max_results(1).send().await.unwrap();
    let token = page
        .next_token()
        .expect("two clusters, pages of one")
        .to_owned();
    expect_error(
        ecs.list_tasks().next_token(&token).send().await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.list_task_definitions().next_token(&token).send().await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.list_tasks()
            .next_token("eyJvcCI6Ikxpc3RUYXNrcyJ9")
            .send()
            .await,
        "InvalidParameterException",
    );
}

/// Every operation berth serves, fed bodies of every wrong kind: never a 500, always the ECS
/// error shape when refused.
#[tokio::test]
async fn no_request_gets_a_500() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    create_cluster(&ecs, "default").await;
    let inst = register_instance(&ecs, "default", 1024, 1024).await;
    register_family(&ecs, "x", 128, 128).await;
    let (tasks, _) = run(&ecs, "default", "x", 1).await;
    let task = tasks[0].task_arn().unwrap().to_owned();

    const OPS: &[&str] = &[
        "CreateCluster",
        "DeleteCluster",
        "DescribeClusters",
        "ListClusters",
        "UpdateCluster",
        "UpdateClusterSettings",
        "RegisterTaskDefinition",
        "DescribeTaskDefinition",
        "ListTaskDefinitions",
        "ListTaskDefinitionFamilies",
        "DeregisterTaskDefinition",
        "DeleteTaskDefinitions",
        "RegisterContainerInstance",
        "DeregisterContainerInstance",
        "ListContainerInstances",
        "DescribeContainerInstances",
        "UpdateContainerInstancesState",
        "PutAttributes",
        "ListAttributes",
        "DeleteAttributes",
        "RunTask",
        "StartTask",
        "StopTask",
        "DescribeTasks",
        "ListTasks",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "DiscoverPollEndpoint",
        "SubmitTaskStateChange",
        "SubmitContainerStateChange",
        "CreateService",
        "DescribeServices",
    ];
    let bodies: Vec<String> = vec![
        String::new(),
        "{}".into(),
        "[]".into(),
        "null".into(),
        "\"text\"".into(),
        "{\"cluster\": 5}".into(),
        "{\"cluster\": \"\"}".into(),
        "{\"cluster\": \"ghost\"}".into(),
        "{\"cluster\": \"arn:aws:ecs:us-east-1:000000000000:task/x\"}".into(),
        format!("{{\"cluster\": \"{}\"}}", "c".repeat(300)),
        "{\"taskDefinition\": \"x:y:z\", \"task\": \"\", \"containerInstance\": \"zz\"}".into(),
        "{\"taskDefinition\": \"x:99999999999\", \"count\": 2147483647}".into(),
        "{\"maxResults\": 9999999999999, \"nextToken\": \"\"}".into(),
        "{\"tasks\": [\"\"], \"clusters\": [\"\"], \"containerInstances\": [\"\"]}".into(),
        format!(
            "{{\"tasks\": [\"{task}\"], \"task\": \"{task}\", \"containerInstances\": [\"{inst}\"], \"containerInstance\": \"{inst}\", \"resourceArn\": \"{task}\", \"status\": \"BOGUS\"}}"
        ),
        "{\"attributes\": [{}], \"tags\": [{}], \"settings\": [{}], \"totalResources\": [{}]}".into(),
        "{\"containerDefinitions\": [{}], \"family\": \"f\"}".into(),
        "{\"family\": \"f\", \"containerDefinitions\": [{\"name\": \"a\", \"image\": \"i\", \"memory\": -1, \"cpu\": -5, \"portMappings\": [{\"containerPort\": 70000, \"hostPort\": -1}]}]}".into(),
        "{\"totalResources\": [{\"name\": \"CPU\", \"integerValue\": -1}, {\"name\": \"MEMORY\", \"longValue\": 9223372036854775807}, {\"name\": \"PORTS\", \"stringSetValue\": [\"99999\"]}]}".into(),
        "{\"instanceIdentityDocument\": \"{not json\"}".into(),
        "{\"overrides\": {\"containerOverrides\": [{\"name\": \"nope\", \"cpu\": -1}]}, \"taskDefinition\": \"x\"}".into(),
        "{\"\u{0}\": \"\u{ffff}\"}".into(),
    ];
    let mut checked = 0;
    for op in OPS {
        for body in &bodies {
            let r = ecs_op(&berth.endpoint, op, body).await;
            assert!(
                r.status == 200 || r.status == 400,
                "{op} {body} answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            if r.status == 400 {
                let v = r.json();
                let kind = v["__type"].as_str().unwrap_or_default().to_owned();
                assert!(!kind.is_empty(), "{op} {body}: {v}");
                r.expect_error(&kind);
            }
            checked += 1;
        }
    }
    // Binary garbage.
    let r = ecs_raw(
        &berth.endpoint,
        Some(&format!("{TARGET_PREFIX}RunTask")),
        &[0xff, 0xfe, 0x00, 0x7b],
    )
    .await;
    r.expect_error("SerializationException");
    assert!(checked > 500);
    // The server is still answering normally.
    ecs.list_clusters().send().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 7. Regions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn arns_carry_the_region_of_the_callers_signature() {
    let berth = common::Berth::start();
    let paris = common::client(&berth.endpoint, "eu-west-3");
    const EU: &str = "eu-west-3";

    let cluster = create_cluster(&paris, "paris").await;
    assert_eq!(cluster, arn(EU, "cluster/paris"));
    let instance = register_instance(&paris, "paris", 1024, 1024).await;
    assert!(
        instance.starts_with(&arn(EU, "container-instance/paris/")),
        "{instance}"
    );
    let td = register_family(&paris, "baguette", 128, 128).await;
    assert_eq!(
        td.task_definition_arn(),
        Some(arn(EU, "task-definition/baguette:1").as_str())
    );
    let (tasks, _) = run(&paris, "paris", "baguette", 1).await;
    let t = &tasks[0];
    assert!(
        t.task_arn().unwrap().starts_with(&arn(EU, "task/paris/")),
        "{t:?}"
    );
    assert_eq!(t.cluster_arn(), Some(cluster.as_str()));
    assert_eq!(t.container_instance_arn(), Some(instance.as_str()));
    assert_eq!(t.task_definition_arn(), td.task_definition_arn());
    assert!(
        t.containers()[0]
            .container_arn()
            .unwrap()
            .starts_with(&arn(EU, "container/"))
    );

    let listed = paris.list_clusters().send().await.unwrap();
    assert_eq!(listed.cluster_arns(), std::slice::from_ref(&cluster));
    let d = paris
        .describe_clusters()
        .clusters(&cluster)
        .clusters("nowhere")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].cluster_arn(), Some(cluster.as_str()));
    assert_eq!(
        d.failures()[0].arn(),
        Some(arn(EU, "cluster/nowhere").as_str())
    );
    let tasks = paris.list_tasks().cluster(&cluster).send().await.unwrap();
    assert!(tasks.task_arns()[0].starts_with(&arn(EU, "task/")));

    // A client signing for another region sees its own region in every ARN.
    let tokyo = common::client(&berth.endpoint, "ap-northeast-1");
    let listed = tokyo.list_clusters().send().await.unwrap();
    assert_eq!(
        listed.cluster_arns(),
        [arn("ap-northeast-1", "cluster/paris")]
    );
    let i = tokyo
        .list_container_instances()
        .cluster("paris")
        .send()
        .await
        .unwrap();
    assert!(i.container_instance_arns()[0].starts_with("arn:aws:ecs:ap-northeast-1:"));
}

// ---------------------------------------------------------------------------------------------
// 8. Native API: history and watch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn history_lists_every_version_of_a_task() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let cluster = create_cluster(&ecs, "hist").await;
    register_instance(&ecs, "hist", 1024, 1024).await;
    register_family(&ecs, "h", 128, 128).await;
    let (tasks, _) = run(&ecs, "hist", "h", 1).await;
    let task = tasks[0].task_arn().unwrap().to_owned();
    ecs.stop_task()
        .cluster("hist")
        .task(&task)
        .reason("done with it")
        .send()
        .await
        .unwrap();
    report(&ecs, "hist", &task, "STOPPED").await;

    let (status, h) = get_json(&berth.endpoint, &format!("/v1/history/{task}")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["arn"], task.as_str());
    let versions = h["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3, "RunTask, StopTask, STOPPED: {h:#}");
    let indexes: Vec<u64> = versions
        .iter()
        .map(|v| v["index"].as_u64().unwrap())
        .collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    assert!(h["index"].as_u64().unwrap() >= *indexes.last().unwrap());
    assert!(versions.iter().all(|v| v["deleted"] == false));
    assert!(versions.iter().all(|v| v["at"].as_f64().is_some()));
    let value = |i: usize| &versions[i]["value"];
    assert_eq!(value(0)["lastStatus"], "PENDING");
    assert_eq!(value(0)["desiredStatus"], "RUNNING");
    assert_eq!(value(0)["taskArn"], task.as_str());
    assert_eq!(value(1)["lastStatus"], "PENDING");
    assert_eq!(value(1)["desiredStatus"], "STOPPED");
    assert_eq!(value(1)["stoppedReason"], "done with it");
    assert_eq!(value(1)["stopCode"], "UserInitiated");
    assert_eq!(value(2)["lastStatus"], "STOPPED");
    assert_eq!(value(2)["desiredStatus"], "STOPPED");
    assert!(value(2)["stoppedAt"].as_f64().is_some());

    // Clusters have histories too; unknown resources and non-ARNs do not.
    let (status, h) = get_json(&berth.endpoint, &format!("/v1/history/{cluster}")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["versions"][0]["value"]["status"], "ACTIVE");
    let ghost = arn(REGION, "task/hist/0123456789abcdef0123456789abcdef");
    let (status, h) = get_json(&berth.endpoint, &format!("/v1/history/{ghost}")).await;
    assert_eq!(status, 404, "{h}");
    assert!(h["message"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, h) = get_json(&berth.endpoint, "/v1/history/not-an-arn").await;
    assert_eq!(status, 400, "{h}");
}

#[tokio::test]
async fn watch_returns_at_once_blocks_for_a_write_and_times_out() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    let first = create_cluster(&ecs, "w1").await;
    let index = applied_index(&berth.endpoint).await;
    assert!(index > 0);

    // Already past: returns at once with what changed.
    let t0 = Instant::now();
    let (status, w) = get_json(&berth.endpoint, "/v1/watch?index=0&timeout=5").await;
    assert_eq!(status, 200, "{w}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(w["changed"], true);
    assert!(w["index"].as_u64().unwrap() >= index);
    let changes = w["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["arn"] == first.as_str()), "{w:#}");

    // Not yet past: blocks until a write lands.
    let endpoint = berth.endpoint.clone();
    let watcher = tokio::spawn(async move {
        let t0 = Instant::now();
        let r = get_json(&endpoint, &format!("/v1/watch?index={index}&timeout=5")).await;
        (r, t0.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !watcher.is_finished(),
        "watch returned before anything changed"
    );
    let second = create_cluster(&ecs, "w2").await;
    let ((status, w), elapsed) = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("watch returned")
        .unwrap();
    assert_eq!(status, 200, "{w}");
    assert!(
        elapsed < Duration::from_secs(4),
        "watch waited for its timeout: {elapsed:?}"
    );
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(w["changed"], true);
    let new_index = w["index"].as_u64().unwrap();
    assert!(new_index > index, "{w}");
    let changes = w["changes"].as_array().unwrap();
    let change = changes
        .iter()
        .find(|c| c["arn"] == second.as_str())
        .unwrap_or_else(|| panic!("{second} not among the changes: {w:#}"));
    assert!(change["index"].as_u64().unwrap() > index);
    assert!(
        changes.iter().all(|c| c["arn"] != first.as_str()),
        "changes before index {index} must not be repeated: {w:#}"
    );

    // Nothing happens: returns unchanged after its timeout.
    let index = applied_index(&berth.endpoint).await;
    let t0 = Instant::now();
    let (status, w) = get_json(
        &berth.endpoint,
        &format!("/v1/watch?index={index}&timeout=1"),
    )
    .await;
    let elapsed = t0.elapsed();
    assert_eq!(status, 200, "{w}");
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(w["changed"], false);
    assert_eq!(w["index"].as_u64(), Some(index));
    assert!(w["changes"].as_array().unwrap().is_empty(), "{w}");
}
