//! Capacity providers through aws-sdk-ecs against a real server and real hollow agents: the
//! five operations with ECS's errors, pagination and `include`; instances joining a provider
//! with `berth agent --capacity-provider`; RunTask and services splitting tasks by `base` and
//! `weight` (the 4 + 6); the cluster's default strategy; providers that cannot be
//! detached or deleted while in use; the managed-scaling gauge; and authorization.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, AutoScalingGroupProviderUpdate, CapacityProviderField,
    CapacityProviderStrategyItem, ContainerDefinition, LaunchType, ManagedScaling,
    ManagedScalingStatus, Tag,
};
use common::agent::AgentProcess;
use common::{Berth, credential, eventually, expect_error, raw, tags_of};

const CLUSTER: &str = "cap";

fn group(arn: &str) -> AutoScalingGroupProvider {
    AutoScalingGroupProvider::builder()
        .auto_scaling_group_arn(arn)
        .managed_scaling(
            ManagedScaling::builder()
                .status(ManagedScalingStatus::Enabled)
                .target_capacity(80)
                .build(),
        )
        .build()
        .unwrap()
}

fn item(provider: &str, base: i32, weight: i32) -> CapacityProviderStrategyItem {
    CapacityProviderStrategyItem::builder()
        .capacity_provider(provider)
        .base(base)
        .weight(weight)
        .build()
        .unwrap()
}

async fn provider(ecs: &Client, name: &str) {
    ecs.create_capacity_provider()
        .name(name)
        .auto_scaling_group_provider(group(&format!("asg-{name}")))
        .send()
        .await
        .unwrap();
}

/// A hollow agent in [`CLUSTER`], in `provider` when given.
fn agent(b: &Berth, provider: Option<&str>) -> AgentProcess {
    let mut args = vec!["--runtime", "hollow", "--cpu", "4096", "--memory", "8192"];
    if let Some(p) = provider {
        args.extend(["--capacity-provider", p]);
    }
    AgentProcess::start(&b.endpoint, CLUSTER, &args)
}

async fn family(ecs: &Client) {
    ecs.register_task_definition()
        .family("app")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .cpu(100)
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The live (desired RUNNING) tasks of `service`, counted by capacity provider.
async fn split_of(ecs: &Client, service: &str) -> BTreeMap<String, usize> {
    let arns = ecs
        .list_tasks()
        .cluster(CLUSTER)
        .service_name(service)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    let mut split = BTreeMap::new();
    if arns.is_empty() {
        return split;
    }
    let tasks = ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(arns))
        .send()
        .await
        .unwrap();
    for t in tasks.tasks() {
        let p = t.capacity_provider_name().unwrap_or("none").to_owned();
        *split.entry(p).or_default() += 1;
    }
    split
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(p, n)| (p.to_string(), *n)).collect()
}

#[tokio::test]
async fn capacity_provider_operations_answer_as_ecs_does() {
    let b = Berth::start();
    let ecs = b.client();
    let created = ecs
        .create_capacity_provider()
        .name("pool-a")
        .auto_scaling_group_provider(group("arn:aws:autoscaling:us-east-1:1:autoScalingGroup:x"))
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let p = created.capacity_provider().unwrap();
    assert_eq!(p.name(), Some("pool-a"));
    assert_eq!(p.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert!(
        p.capacity_provider_arn()
            .unwrap()
            .ends_with(":capacity-provider/pool-a")
    );
    let asg = p.auto_scaling_group_provider().unwrap();
    assert_eq!(
        asg.auto_scaling_group_arn(),
        "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:x"
    );
    let scaling = asg.managed_scaling().unwrap();
    assert_eq!(scaling.target_capacity(), Some(80));
    assert_eq!(scaling.instance_warmup_period(), Some(300), "ECS's default");

    expect_error(
        ecs.create_capacity_provider()
            .name("pool-a")
            .auto_scaling_group_provider(group("g"))
            .send()
            .await,
        "ClientException",
    );
    for bad in ["aws-pool", "ecs1", "Fargate2", "has space"] {
        expect_error(
            ecs.create_capacity_provider()
                .name(bad)
                .auto_scaling_group_provider(group("g"))
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    let message = expect_error(
        ecs.create_capacity_provider().name("no-group").send().await,
        "InvalidParameterException",
    );
    assert!(message.contains("autoScalingGroupProvider"), "{message}");
    provider(&ecs, "pool-b").await;
    provider(&ecs, "pool-c").await;

    // Every provider, a page at a time, by name; tags only with include TAGS.
    let first = ecs
        .describe_capacity_providers()
        .max_results(2)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = first
        .capacity_providers()
        .iter()
        .filter_map(|p| p.name())
        .collect();
    assert_eq!(names, ["pool-a", "pool-b"]);
    assert!(first.capacity_providers()[0].tags().is_empty());
    let rest = ecs
        .describe_capacity_providers()
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.capacity_providers()[0].name(), Some("pool-c"));
    assert_eq!(rest.next_token(), None);
    let named = ecs
        .describe_capacity_providers()
        .capacity_providers("pool-a")
        .capacity_providers("nope")
        .include(CapacityProviderField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(named.capacity_providers().len(), 1);
    assert_eq!(named.capacity_providers()[0].tags()[0].key(), Some("team"));
    let failure = &named.failures()[0];
    assert_eq!(failure.reason(), Some("MISSING"));
    assert!(failure.arn().unwrap().ends_with(":capacity-provider/nope"));
    expect_error(
        ecs.describe_capacity_providers()
            .max_results(11)
            .send()
            .await,
        "InvalidParameterException",
    );

    let updated = ecs
        .update_capacity_provider()
        .name("pool-a")
        .auto_scaling_group_provider(
            AutoScalingGroupProviderUpdate::builder()
                .managed_scaling(
                    ManagedScaling::builder()
                        .status(ManagedScalingStatus::Disabled)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = updated.capacity_provider().unwrap();
    assert_eq!(
        p.update_status().map(|s| s.as_str()),
        Some("UPDATE_COMPLETE")
    );
    assert_eq!(
        p.auto_scaling_group_provider()
            .unwrap()
            .managed_scaling()
            .unwrap()
            .status()
            .map(|s| s.as_str()),
        Some("DISABLED")
    );

    // Clusters: providers at creation, checked; a default strategy may name attached ones only.
    expect_error(
        ecs.create_cluster()
            .cluster_name("other")
            .capacity_providers("missing")
            .send()
            .await,
        "InvalidParameterException",
    );
    let cluster = ecs
        .create_cluster()
        .cluster_name(CLUSTER)
        .capacity_providers("pool-a")
        .capacity_providers("pool-b")
        .default_capacity_provider_strategy(item("pool-b", 0, 1))
        .send()
        .await
        .unwrap();
    let c = cluster.cluster().unwrap();
    assert_eq!(c.capacity_providers(), ["pool-a", "pool-b"]);
    assert_eq!(
        c.default_capacity_provider_strategy()[0].capacity_provider(),
        "pool-b"
    );
    expect_error(
        ecs.put_cluster_capacity_providers()
            .cluster(CLUSTER)
            .capacity_providers("pool-a")
            .default_capacity_provider_strategy(item("pool-c", 0, 1))
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.put_cluster_capacity_providers()
            .cluster(CLUSTER)
            .capacity_providers("pool-a")
            .capacity_providers("pool-b")
            .default_capacity_provider_strategy(item("pool-a", 1, 1))
            .default_capacity_provider_strategy(item("pool-b", 1, 1))
            .send()
            .await,
        "InvalidParameterException",
    );

    // A provider attached to a cluster is not deleted (ECS answers DELETE_FAILED and why);
    // detached, it is.
    let refused = ecs
        .delete_capacity_provider()
        .capacity_provider("pool-a")
        .send()
        .await
        .unwrap();
    let p = refused.capacity_provider().unwrap();
    assert_eq!(p.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(p.update_status().map(|s| s.as_str()), Some("DELETE_FAILED"));
    let reason = p.update_status_reason().unwrap_or_default();
    assert!(reason.contains(CLUSTER), "{reason}");
    let put = ecs
        .put_cluster_capacity_providers()
        .cluster(CLUSTER)
        .capacity_providers("pool-b")
        .set_default_capacity_provider_strategy(Some(Vec::new()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.cluster().unwrap().capacity_providers(), ["pool-b"]);
    let deleted = ecs
        .delete_capacity_provider()
        .capacity_provider("pool-a")
        .send()
        .await
        .unwrap();
    let p = deleted.capacity_provider().unwrap();
    assert_eq!(p.status().map(|s| s.as_str()), Some("INACTIVE"));
    assert_eq!(
        p.update_status().map(|s| s.as_str()),
        Some("DELETE_COMPLETE")
    );
    let described = ecs
        .describe_clusters()
        .clusters(CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(described.clusters()[0].capacity_providers(), ["pool-b"]);
    expect_error(
        ecs.put_cluster_capacity_providers()
            .cluster(CLUSTER)
            .capacity_providers("pool-a")
            .set_default_capacity_provider_strategy(Some(Vec::new()))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Every operation is authorized: a read-only principal may describe, not create.
    let reader = credential(&b, "reader", "read-only").await;
    let as_reader = b.client_as(&reader);
    as_reader
        .describe_capacity_providers()
        .send()
        .await
        .unwrap();
    for result in [
        as_reader
            .create_capacity_provider()
            .name("sneaky")
            .auto_scaling_group_provider(group("g"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.into_service_error().meta().code().map(str::to_owned)),
        as_reader
            .delete_capacity_provider()
            .capacity_provider("pool-b")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.into_service_error().meta().code().map(str::to_owned)),
    ] {
        assert_eq!(result, Err(Some("AccessDeniedException".into())));
    }
}

#[tokio::test]
async fn capacity_providers_are_tagged_by_arn() {
    let b = Berth::start();
    let ecs = b.client();
    provider(&ecs, "pool-t").await;
    let described = ecs
        .describe_capacity_providers()
        .capacity_providers("pool-t")
        .send()
        .await
        .unwrap();
    let arn = described.capacity_providers()[0]
        .capacity_provider_arn()
        .unwrap()
        .to_owned();

    ecs.tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("team").value("web").build())
        .tags(
            Tag::builder()
                .key("berth:queue-timeout")
                .value("60")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&ecs, &arn).await,
        ["team=web", "berth:queue-timeout=60"]
    );
    let with_tags = ecs
        .describe_capacity_providers()
        .capacity_providers("pool-t")
        .include(CapacityProviderField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(with_tags.capacity_providers()[0].tags().len(), 2);

    ecs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&ecs, &arn).await, ["berth:queue-timeout=60"]);

    // The provider tag is checked like every berth tag; a missing provider is not tagged.
    expect_error(
        ecs.tag_resource()
            .resource_arn(&arn)
            .tags(
                Tag::builder()
                    .key("berth:queue-timeout")
                    .value("soon")
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    let missing = arn.replace("pool-t", "pool-nope");
    expect_error(
        ecs.list_tags_for_resource()
            .resource_arn(&missing)
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.tag_resource()
            .resource_arn(&missing)
            .tags(Tag::builder().key("k").value("v").build())
            .send()
            .await,
        "ResourceNotFoundException",
    );

    // Tagging is a write: a read-only principal may list the tags, not change them.
    let reader = credential(&b, "reader", "read-only").await;
    let as_reader = b.client_as(&reader);
    assert_eq!(tags_of(&as_reader, &arn).await.len(), 1);
    expect_error(
        as_reader
            .tag_resource()
            .resource_arn(&arn)
            .tags(Tag::builder().key("k").value("v").build())
            .send()
            .await,
        "AccessDeniedException",
    );
}

#[tokio::test]
async fn tasks_split_between_providers_by_base_and_weight() {
    let b = Berth::start();
    let ecs = b.client();
    for p in ["pool-a", "pool-b", "pool-c"] {
        provider(&ecs, p).await;
    }
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .capacity_providers("pool-a")
        .capacity_providers("pool-b")
        .capacity_providers("pool-c")
        .default_capacity_provider_strategy(item("pool-b", 0, 1))
        .send()
        .await
        .unwrap();
    family(&ecs).await;
    let a = agent(&b, Some("pool-a"));
    let in_b = agent(&b, Some("pool-b"));
    let _plain = agent(&b, None);
    let instances = ecs
        .describe_container_instances()
        .cluster(CLUSTER)
        .container_instances(&a.instance_arn)
        .container_instances(&in_b.instance_arn)
        .send()
        .await
        .unwrap();
    let providers: Vec<_> = instances
        .container_instances()
        .iter()
        .map(|i| i.capacity_provider_name())
        .collect();
    assert_eq!(providers, [Some("pool-a"), Some("pool-b")]);

    // The example: A base 2 weight 1, B weight 3, ten tasks: 4 on A, 6 on B.
    let run = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("app")
        .count(10)
        .capacity_provider_strategy(item("pool-a", 2, 1))
        .capacity_provider_strategy(item("pool-b", 0, 3))
        .send()
        .await
        .unwrap();
    assert!(run.failures().is_empty(), "{:?}", run.failures());
    let mut by_provider: BTreeMap<String, usize> = BTreeMap::new();
    for t in run.tasks() {
        let p = t.capacity_provider_name().unwrap().to_owned();
        let expected = if p == "pool-a" { &a } else { &in_b };
        assert_eq!(
            t.container_instance_arn(),
            Some(expected.instance_arn.as_str())
        );
        *by_provider.entry(p).or_default() += 1;
    }
    assert_eq!(by_provider, counts(&[("pool-a", 4), ("pool-b", 6)]));

    // Neither a strategy nor a launch type: the cluster's default (all on B).
    let run = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("app")
        .count(3)
        .send()
        .await
        .unwrap();
    assert!(
        run.tasks()
            .iter()
            .all(|t| t.capacity_provider_name() == Some("pool-b")),
        "{:?}",
        run.tasks()
    );
    // A launch type bypasses the default; both at once is refused.
    let run = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("app")
        .launch_type(LaunchType::Ec2)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks()[0].capacity_provider_name(), None);
    expect_error(
        ecs.run_task()
            .cluster(CLUSTER)
            .task_definition("app")
            .launch_type(LaunchType::Ec2)
            .capacity_provider_strategy(item("pool-a", 0, 1))
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.run_task()
            .cluster(CLUSTER)
            .task_definition("app")
            .capacity_provider_strategy(item("not-attached", 0, 1))
            .send()
            .await,
        "InvalidParameterException",
    );
    // A provider without instances: the tasks fail with a reason that names it.
    let run = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("app")
        .count(2)
        .capacity_provider_strategy(item("pool-c", 0, 1))
        .send()
        .await
        .unwrap();
    assert!(run.tasks().is_empty());
    let failure = &run.failures()[0];
    assert!(
        failure
            .arn()
            .unwrap()
            .ends_with(":capacity-provider/pool-c"),
        "{failure:?}"
    );
    assert!(
        failure
            .detail()
            .unwrap()
            .contains("--capacity-provider pool-c")
    );

    // A service keeps the split as it scales out and in.
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("app")
        .desired_count(10)
        .capacity_provider_strategy(item("pool-a", 2, 1))
        .capacity_provider_strategy(item("pool-b", 0, 3))
        .send()
        .await
        .unwrap();
    let described = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("web")
        .send()
        .await
        .unwrap();
    let svc = &described.services()[0];
    assert_eq!(svc.capacity_provider_strategy().len(), 2);
    assert_eq!(svc.launch_type(), None);
    for (desired, expected) in [
        (10, [("pool-a", 4), ("pool-b", 6)]),
        (6, [("pool-a", 3), ("pool-b", 3)]),
        (14, [("pool-a", 5), ("pool-b", 9)]),
    ] {
        ecs.update_service()
            .cluster(CLUSTER)
            .service("web")
            .desired_count(desired)
            .send()
            .await
            .unwrap();
        let want = counts(&expected);
        eventually(
            Duration::from_secs(30),
            &format!("web at {desired} split as {want:?}"),
            || {
                let ecs = ecs.clone();
                let want = want.clone();
                async move { split_of(&ecs, "web").await == want }
            },
        )
        .await;
    }

    // Its providers cannot leave the cluster while it uses them.
    let message = expect_error(
        ecs.put_cluster_capacity_providers()
            .cluster(CLUSTER)
            .capacity_providers("pool-b")
            .capacity_providers("pool-c")
            .set_default_capacity_provider_strategy(Some(Vec::new()))
            .send()
            .await,
        "ResourceInUseException",
    );
    assert!(message.contains("pool-a"), "{message}");

    // A new strategy is a new deployment: the service moves to B alone.
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .capacity_provider_strategy(item("pool-b", 0, 1))
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "web all on pool-b", || {
        let ecs = ecs.clone();
        async move { split_of(&ecs, "web").await == counts(&[("pool-b", 14)]) }
    })
    .await;

    // A service whose provider has no instances: its tasks wait, its events say why, and the
    // provider's reservation asks for capacity (M > 0, N = 0: 200 %).
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("starved")
        .task_definition("app")
        .desired_count(2)
        .capacity_provider_strategy(item("pool-c", 0, 1))
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the starved service says why",
        || {
            let ecs = ecs.clone();
            async move {
                let s = ecs
                    .describe_services()
                    .cluster(CLUSTER)
                    .services("starved")
                    .send()
                    .await
                    .unwrap();
                s.services()[0].events().iter().any(|e| {
                    e.message()
                        .unwrap_or_default()
                        .contains("capacity provider pool-c")
                })
            }
        },
    )
    .await;
    let metrics = raw(&b.endpoint, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    let sample = |name: &str, provider: &str| -> f64 {
        let prefix = format!("{name}{{cluster=\"{CLUSTER}\",provider=\"{provider}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        sample("berth_capacity_provider_reservation_percent", "pool-c"),
        200.0
    );
    assert_eq!(
        sample("berth_capacity_provider_waiting_tasks", "pool-c"),
        2.0
    );
    assert_eq!(sample("berth_capacity_provider_instances", "pool-c"), 0.0);
    // pool-a's one instance runs tasks, and nothing waits for it: M = N = 1.
    assert_eq!(
        sample("berth_capacity_provider_reservation_percent", "pool-a"),
        100.0
    );
    assert_eq!(
        sample("berth_capacity_provider_target_percent", "pool-a"),
        80.0
    );
}
