//! Services through the ECS API: CreateService, UpdateService, DeleteService,
//! DescribeServices, ListServices (and tags and DeleteCluster as they concern services),
//! driven by the official AWS SDK for Rust against a real `berth server` process.
//!
//! These tests check what the API edge decides: validation, the configuration a service is
//! stored with, its deployments as each call leaves them, idempotency, pagination and the error
//! each refusal is answered with. What the service reconciler does afterwards (start tasks,
//! complete rollouts, turn deleted services INACTIVE) is left to its own tests: no container
//! instance is registered here, so it has nothing to place, and nothing asserted here depends
//! on when or whether it runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerDefinition,
    DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentController,
    DeploymentControllerType, DeploymentRolloutState, LaunchType, LoadBalancer,
    NetworkConfiguration, PlacementConstraint, PlacementConstraintType, PlacementStrategy,
    PlacementStrategyType, PropagateTags, SchedulingStrategy, Service, ServiceField, Tag,
};
use common::{ecs_op, expect_error};
use serde_json::Value;

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";

fn arn(resource: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:{resource}")
}

fn service_arn(cluster: &str, name: &str) -> String {
    arn(&format!("service/{cluster}/{name}"))
}

fn task_definition_arn(family: &str, revision: i32) -> String {
    arn(&format!("task-definition/{family}:{revision}"))
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

/// `ecs-svc/` and 19 digits, as ECS makes deployment ids.
fn is_deployment_id(id: &str) -> bool {
    id.strip_prefix("ecs-svc/")
        .is_some_and(|d| d.len() == 19 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn member_of(expression: &str) -> PlacementConstraint {
    PlacementConstraint::builder()
        .r#type(PlacementConstraintType::MemberOf)
        .expression(expression)
        .build()
}

fn spread(field: &str) -> PlacementStrategy {
    PlacementStrategy::builder()
        .r#type(PlacementStrategyType::Spread)
        .field(field)
        .build()
}

fn percents(min: i32, max: i32) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .minimum_healthy_percent(min)
        .maximum_percent(max)
        .build()
}

/// Creates cluster `cluster` and registers family `web` twice (revisions 1 and 2).
async fn setup(ecs: &Client, cluster: &str) {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        register(ecs, "web").await;
    }
}

/// Registers a revision of a one-container family; returns its revision.
async fn register(ecs: &Client, family: &str) -> i32 {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("main")
                .image("nginx:1.27")
                .cpu(128)
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .revision()
}

/// A REPLICA service of `web` with `desired` tasks.
async fn create(ecs: &Client, cluster: &str, name: &str, desired: i32) -> Service {
    ecs.create_service()
        .cluster(cluster)
        .service_name(name)
        .task_definition("web")
        .desired_count(desired)
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone()
}

async fn describe(ecs: &Client, cluster: &str, name: &str) -> Service {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty(), "{:?}", out.failures());
    out.services()[0].clone()
}

fn primary_id(s: &Service) -> String {
    let d = &s.deployments()[0];
    assert_eq!(d.status(), Some("PRIMARY"), "{:?}", s.deployments());
    d.id().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_describe_and_list_show_the_configuration() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "shop").await;

    let created = ecs
        .create_service()
        .cluster("shop")
        .service_name("web")
        .task_definition("web")
        .desired_count(2)
        .launch_type(LaunchType::Ec2)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(50)
                .maximum_percent(150)
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .build(),
        )
        .placement_constraints(member_of("attribute:ecs.os-type == linux"))
        .placement_strategy(spread("attribute:ecs.availability-zone"))
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Binpack)
                .field("memory")
                .build(),
        )
        .health_check_grace_period_seconds(30)
        .propagate_tags(PropagateTags::Service)
        .enable_execute_command(true)
        .tags(tag("team", "shop"))
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();

    assert_eq!(
        created.service_arn(),
        Some(service_arn("shop", "web").as_str())
    );
    assert_eq!(created.service_name(), Some("web"));
    assert_eq!(created.cluster_arn(), Some(arn("cluster/shop").as_str()));
    assert_eq!(created.status(), Some("ACTIVE"));
    assert_eq!(created.desired_count(), 2);
    assert_eq!(created.running_count(), 0);
    assert_eq!(created.pending_count(), 0);
    assert_eq!(created.launch_type(), Some(&LaunchType::Ec2));
    // A bare family means its newest ACTIVE revision.
    assert_eq!(
        created.task_definition(),
        Some(task_definition_arn("web", 2).as_str())
    );
    let config = created.deployment_configuration().unwrap();
    assert_eq!(config.minimum_healthy_percent(), Some(50));
    assert_eq!(config.maximum_percent(), Some(150));
    let breaker = config.deployment_circuit_breaker().unwrap();
    assert!(breaker.enable() && breaker.rollback());
    assert_eq!(
        created.scheduling_strategy(),
        Some(&SchedulingStrategy::Replica)
    );
    assert_eq!(
        created.deployment_controller().map(|c| c.r#type()),
        Some(&DeploymentControllerType::Ecs)
    );
    assert_eq!(created.placement_constraints().len(), 1);
    assert_eq!(
        created.placement_constraints()[0].expression(),
        Some("attribute:ecs.os-type == linux")
    );
    let strategies: Vec<(String, String)> = created
        .placement_strategy()
        .iter()
        .map(|s| {
            (
                s.r#type().unwrap().as_str().to_owned(),
                s.field().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        strategies,
        vec![
            ("spread".into(), "attribute:ecs.availability-zone".into()),
            ("binpack".into(), "memory".into())
        ]
    );
    assert_eq!(created.health_check_grace_period_seconds(), Some(30));
    assert_eq!(created.propagate_tags(), Some(&PropagateTags::Service));
    assert!(created.enable_execute_command());
    assert!(!created.enable_ecs_managed_tags());
    assert!(created.load_balancers().is_empty());
    assert!(created.service_registries().is_empty());
    assert!(created.created_at().is_some());
    assert_eq!(
        tag_map(created.tags()).get("team").map(String::as_str),
        Some("shop")
    );

    // One deployment, PRIMARY and just started.
    assert_eq!(created.deployments().len(), 1);
    let d = &created.deployments()[0];
    let id = d.id().unwrap();
    assert!(is_deployment_id(id), "{id}");
    assert_eq!(d.status(), Some("PRIMARY"));
    assert_eq!(
        d.task_definition(),
        Some(task_definition_arn("web", 2).as_str())
    );
    assert_eq!(d.desired_count(), 2);
    assert_eq!(d.running_count(), 0);
    assert_eq!(d.pending_count(), 0);
    assert_eq!(d.failed_tasks(), 0);
    assert_eq!(d.launch_type(), Some(&LaunchType::Ec2));
    assert_eq!(d.rollout_state(), Some(&DeploymentRolloutState::InProgress));
    assert_eq!(
        d.rollout_state_reason(),
        Some(format!("ECS deployment {id} in progress.").as_str())
    );
    assert!(d.created_at().is_some() && d.updated_at().is_some());

    // DescribeServices by name and by ARN; tags only when asked for.
    let described = describe(&ecs, "shop", "web").await;
    assert_eq!(described.service_arn(), created.service_arn());
    assert_eq!(described.desired_count(), 2);
    assert_eq!(described.deployments()[0].id(), Some(id));
    assert!(described.tags().is_empty(), "{:?}", described.tags());
    let with_tags = ecs
        .describe_services()
        .cluster(arn("cluster/shop"))
        .services(service_arn("shop", "web"))
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tag_map(with_tags.services()[0].tags()),
        BTreeMap::from([("team".to_owned(), "shop".to_owned())])
    );

    // ListServices.
    let listed = ecs.list_services().cluster("shop").send().await.unwrap();
    assert_eq!(listed.service_arns(), [service_arn("shop", "web")]);
    assert!(listed.next_token().is_none());
    // A service belongs to its cluster only.
    ecs.create_cluster()
        .cluster_name("other")
        .send()
        .await
        .unwrap();
    let other = ecs.list_services().cluster("other").send().await.unwrap();
    assert!(other.service_arns().is_empty());

    // The service has a history of its own.
    let r = common::raw(
        &berth.endpoint,
        "GET",
        &format!("/v1/history/{}", service_arn("shop", "web")),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let h: Value = r.json();
    let first = &h["versions"][0]["value"];
    assert_eq!(first["serviceName"], "web");
    assert_eq!(first["desiredCount"], 2);
    assert_eq!(first["deployments"][0]["id"], id);
}

#[tokio::test]
async fn update_service_changes_counts_and_starts_deployments() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "up").await;
    let created = create(&ecs, "up", "web", 1).await;
    let first = primary_id(&created);

    // desiredCount alone: the same deployment, scaled.
    let s = ecs
        .update_service()
        .cluster("up")
        .service("web")
        .desired_count(3)
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    assert_eq!(s.desired_count(), 3);
    assert_eq!(primary_id(&s), first);
    assert_eq!(s.deployments()[0].desired_count(), 3);
    assert_eq!(describe(&ecs, "up", "web").await.desired_count(), 3);

    // A new task definition: a new PRIMARY deployment in front, the old one ACTIVE.
    let s = ecs
        .update_service()
        .cluster("up")
        .service(service_arn("up", "web"))
        .task_definition("web:1")
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    let second = primary_id(&s);
    assert_ne!(second, first);
    assert!(is_deployment_id(&second));
    assert_eq!(
        s.task_definition(),
        Some(task_definition_arn("web", 1).as_str())
    );
    let d = &s.deployments()[0];
    assert_eq!(
        d.task_definition(),
        Some(task_definition_arn("web", 1).as_str())
    );
    assert_eq!(d.desired_count(), 3);
    assert_eq!(d.rollout_state(), Some(&DeploymentRolloutState::InProgress));
    let old = s
        .deployments()
        .iter()
        .find(|d| d.id() == Some(first.as_str()))
        .expect("the replaced deployment is still listed in the UpdateService answer");
    assert_eq!(old.status(), Some("ACTIVE"));
    assert_eq!(
        old.task_definition(),
        Some(task_definition_arn("web", 2).as_str())
    );

    // The same task definition again: nothing to deploy.
    let s = ecs
        .update_service()
        .cluster("up")
        .service("web")
        .task_definition("web:1")
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    assert_eq!(primary_id(&s), second);

    // forceNewDeployment: a new deployment of the same revision.
    let s = ecs
        .update_service()
        .cluster("up")
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    let third = primary_id(&s);
    assert!(third != second && third != first);
    assert_eq!(
        s.task_definition(),
        Some(task_definition_arn("web", 1).as_str())
    );

    // New placement: a new deployment too; the constraints and strategy are stored.
    let s = ecs
        .update_service()
        .cluster("up")
        .service("web")
        .placement_constraints(
            PlacementConstraint::builder()
                .r#type(PlacementConstraintType::DistinctInstance)
                .build(),
        )
        .placement_strategy(spread("instanceId"))
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    let fourth = primary_id(&s);
    assert_ne!(fourth, third);
    assert_eq!(
        s.placement_constraints()[0].r#type(),
        Some(&PlacementConstraintType::DistinctInstance)
    );
    assert_eq!(s.placement_strategy()[0].field(), Some("instanceId"));

    // Configuration only: stored, no new deployment; omitted members keep their values.
    let s = ecs
        .update_service()
        .cluster("up")
        .service("web")
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(0)
                .build(),
        )
        .health_check_grace_period_seconds(45)
        .enable_execute_command(true)
        .enable_ecs_managed_tags(true)
        .propagate_tags(PropagateTags::TaskDefinition)
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    assert_eq!(primary_id(&s), fourth);
    let config = s.deployment_configuration().unwrap();
    assert_eq!(config.minimum_healthy_percent(), Some(0));
    assert_eq!(config.maximum_percent(), Some(200));
    assert_eq!(s.health_check_grace_period_seconds(), Some(45));
    assert!(s.enable_execute_command());
    assert!(s.enable_ecs_managed_tags());
    assert_eq!(s.propagate_tags(), Some(&PropagateTags::TaskDefinition));
    let d = describe(&ecs, "up", "web").await;
    assert_eq!(primary_id(&d), fourth);
    assert_eq!(d.health_check_grace_period_seconds(), Some(45));
    assert_eq!(d.desired_count(), 3);
}

#[tokio::test]
async fn concurrent_updates_all_succeed() {
    // Every UpdateService here reads the same version of the service; all but one are refused
    // at commit and must re-read and decide again rather than fail or overwrite each other.
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "race").await;
    create(&ecs, "race", "web", 1).await;
    let calls = (0..6).map(|_| {
        let ecs = ecs.clone();
        async move {
            ecs.update_service()
                .cluster("race")
                .service("web")
                .force_new_deployment(true)
                .send()
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut ids = BTreeSet::new();
    for r in results {
        let s = r
            .expect("every concurrent UpdateService succeeds")
            .service
            .unwrap();
        ids.insert(primary_id(&s));
    }
    assert_eq!(
        ids.len(),
        6,
        "each update started its own deployment: {ids:?}"
    );
    // The last one written is PRIMARY and every other one it replaced is not.
    let now = describe(&ecs, "race", "web").await;
    assert!(ids.contains(&primary_id(&now)));
    assert_eq!(
        now.deployments()
            .iter()
            .filter(|d| d.status() == Some("PRIMARY"))
            .count(),
        1
    );
}

#[tokio::test]
async fn delete_service_needs_scale_to_zero_or_force() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "del").await;
    create(&ecs, "del", "web", 2).await;

    let msg = expect_error(
        ecs.delete_service()
            .cluster("del")
            .service("web")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("scaled above 0"), "{msg}");
    assert_eq!(describe(&ecs, "del", "web").await.status(), Some("ACTIVE"));

    let deleted = ecs
        .delete_service()
        .cluster("del")
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    assert_eq!(deleted.status(), Some("DRAINING"));
    assert_eq!(deleted.desired_count(), 0);
    assert!(deleted.deployments().iter().all(|d| d.desired_count() == 0));

    // It is no longer ACTIVE: no second delete, no update.
    let msg = expect_error(
        ecs.delete_service()
            .cluster("del")
            .service("web")
            .force(true)
            .send()
            .await,
        "ServiceNotActiveException",
    );
    assert!(!msg.is_empty());
    expect_error(
        ecs.update_service()
            .cluster("del")
            .service("web")
            .desired_count(1)
            .send()
            .await,
        "ServiceNotActiveException",
    );
    // Still described (DRAINING, or INACTIVE once the reconciler is done with it).
    let d = describe(&ecs, "del", "web").await;
    assert!(
        matches!(d.status(), Some("DRAINING") | Some("INACTIVE")),
        "{:?}",
        d.status()
    );

    // Scaled to 0 first, no force is needed.
    create(&ecs, "del", "api", 1).await;
    ecs.update_service()
        .cluster("del")
        .service("api")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    let deleted = ecs
        .delete_service()
        .cluster("del")
        .service(service_arn("del", "api"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.service().unwrap().status(), Some("DRAINING"));

    // Unknown services.
    expect_error(
        ecs.delete_service()
            .cluster("del")
            .service("ghost")
            .send()
            .await,
        "ServiceNotFoundException",
    );
}

#[tokio::test]
async fn daemon_services_take_no_count_and_no_strategy() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "d").await;
    let s = ecs
        .create_service()
        .cluster("d")
        .service_name("agent")
        .task_definition("web:1")
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .clone();
    assert_eq!(s.scheduling_strategy(), Some(&SchedulingStrategy::Daemon));
    assert_eq!(s.desired_count(), 0);
    let config = s.deployment_configuration().unwrap();
    assert_eq!(config.minimum_healthy_percent(), Some(0));
    assert_eq!(config.maximum_percent(), Some(100));

    let msg = expect_error(
        ecs.create_service()
            .cluster("d")
            .service_name("agent2")
            .task_definition("web:1")
            .scheduling_strategy(SchedulingStrategy::Daemon)
            .placement_strategy(spread("instanceId"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("DAEMON"), "{msg}");
    let msg = expect_error(
        ecs.create_service()
            .cluster("d")
            .service_name("agent3")
            .task_definition("web:1")
            .scheduling_strategy(SchedulingStrategy::Daemon)
            .deployment_configuration(percents(50, 200))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("maximumPercent"), "{msg}");

    // UpdateService: no desiredCount, no strategy.
    let msg = expect_error(
        ecs.update_service()
            .cluster("d")
            .service("agent")
            .desired_count(3)
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("DAEMON"), "{msg}");
    expect_error(
        ecs.update_service()
            .cluster("d")
            .service("agent")
            .placement_strategy(spread("instanceId"))
            .send()
            .await,
        "InvalidParameterException",
    );
    // A DAEMON service is deleted without scaling it first.
    let deleted = ecs
        .delete_service()
        .cluster("d")
        .service("agent")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.service().unwrap().status(), Some("DRAINING"));
    // Only the failed creations' names were never taken.
    assert!(
        ecs.list_services()
            .cluster("d")
            .send()
            .await
            .unwrap()
            .service_arns()
            .iter()
            .all(|a| a.ends_with("/agent"))
    );
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_service_is_idempotent_for_the_same_request_only() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "idem").await;
    let request = || {
        ecs.create_service()
            .cluster("idem")
            .service_name("web")
            .task_definition("web:2")
            .desired_count(2)
            .client_token("token-1")
    };
    let first = request().send().await.unwrap().service.unwrap();
    let again = request().send().await.unwrap().service.unwrap();
    assert_eq!(again.service_arn(), first.service_arn());
    assert_eq!(primary_id(&again), primary_id(&first));
    assert_eq!(again.created_at(), first.created_at());

    let msg = expect_error(
        ecs.create_service()
            .cluster("idem")
            .service_name("web")
            .task_definition("web:2")
            .desired_count(3)
            .client_token("token-1")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_eq!(msg, "Creation of service was not idempotent.");
    // Nothing was changed by the refused request.
    let d = describe(&ecs, "idem", "web").await;
    assert_eq!(d.desired_count(), 2);
    assert_eq!(primary_id(&d), primary_id(&first));

    // A DRAINING service still holds its name.
    ecs.delete_service()
        .cluster("idem")
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap();
    let d = describe(&ecs, "idem", "web").await;
    if d.status() == Some("DRAINING") {
        expect_error(
            ecs.create_service()
                .cluster("idem")
                .service_name("web")
                .task_definition("web:1")
                .desired_count(1)
                .send()
                .await,
            "InvalidParameterException",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_service_validates_like_ecs() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "v").await;
    let base = |name: &str| {
        ecs.create_service()
            .cluster("v")
            .service_name(name)
            .task_definition("web")
            .desired_count(1)
    };
    let invalid = "InvalidParameterException";

    // Names.
    let msg = expect_error(base("bad.name").send().await, invalid);
    assert!(msg.contains("serviceName"), "{msg}");
    expect_error(base(&"s".repeat(256)).send().await, invalid);
    base(&"s".repeat(255)).send().await.unwrap();

    // Task definition: required, must exist, must be ACTIVE.
    let msg = expect_error(
        ecs.create_service()
            .cluster("v")
            .service_name("a")
            .desired_count(1)
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("taskDefinition"), "{msg}");
    let msg = expect_error(base("a").task_definition("nope").send().await, invalid);
    assert!(msg.contains("TaskDefinition not found"), "{msg}");
    expect_error(base("a").task_definition("web:9").send().await, invalid);
    expect_error(base("a").task_definition("web:x:y").send().await, invalid);
    let old = register(&ecs, "retired").await;
    ecs.deregister_task_definition()
        .task_definition(format!("retired:{old}"))
        .send()
        .await
        .unwrap();
    let msg = expect_error(
        base("a")
            .task_definition(format!("retired:{old}"))
            .send()
            .await,
        "ClientException",
    );
    assert!(msg.contains("INACTIVE"), "{msg}");

    // desiredCount: required for REPLICA, not negative.
    let msg = expect_error(
        ecs.create_service()
            .cluster("v")
            .service_name("a")
            .task_definition("web")
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("desiredCount"), "{msg}");
    let msg = expect_error(base("a").desired_count(-1).send().await, invalid);
    assert!(msg.contains("desiredCount"), "{msg}");

    // Launch types, capacity providers, load balancers, registries, awsvpc, controllers.
    for lt in [LaunchType::Fargate, LaunchType::ManagedInstances] {
        let msg = expect_error(base("a").launch_type(lt).send().await, invalid);
        assert!(msg.contains("launchType"), "{msg}");
    }
    base("external")
        .launch_type(LaunchType::External)
        .send()
        .await
        .unwrap();
    let msg = expect_error(
        base("a")
            .capacity_provider_strategy(
                CapacityProviderStrategyItem::builder()
                    .capacity_provider("FARGATE")
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("capacityProviderStrategy"), "{msg}");
    let msg = expect_error(
        base("a")
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(
                        "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/x/1",
                    )
                    .container_name("main")
                    .container_port(80)
                    .build(),
            )
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("loadBalancers"), "{msg}");
    let msg = expect_error(
        base("a")
            .service_registries(
                aws_sdk_ecs::types::ServiceRegistry::builder()
                    .registry_arn("arn:aws:servicediscovery:us-east-1:000000000000:service/srv-1")
                    .build(),
            )
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("serviceRegistries"), "{msg}");
    let msg = expect_error(
        base("a")
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .subnets("subnet-1")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("awsvpc"), "{msg}");
    // CodeDeploy is AWS's; EXTERNAL takes its task definition from task sets, not here.
    for (kind, says) in [
        (DeploymentControllerType::CodeDeploy, "deploymentController"),
        (DeploymentControllerType::External, "CreateTaskSet"),
    ] {
        let msg = expect_error(
            base("a")
                .deployment_controller(
                    DeploymentController::builder()
                        .r#type(kind)
                        .build()
                        .unwrap(),
                )
                .send()
                .await,
            invalid,
        );
        assert!(msg.contains(says), "{msg}");
    }
    base("ecs-controller")
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::Ecs)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Deployment configuration.
    for (min, max, word) in [
        (101, 200, "minimumHealthyPercent"),
        (-1, 200, "minimumHealthyPercent"),
        (50, 99, "maximumPercent"),
    ] {
        let msg = expect_error(
            base("a")
                .deployment_configuration(percents(min, max))
                .send()
                .await,
            invalid,
        );
        assert!(msg.contains(word), "{min}/{max}: {msg}");
    }
    let s = base("full-range")
        .deployment_configuration(percents(100, 100))
        .send()
        .await
        .unwrap()
        .service
        .unwrap();
    let c = s.deployment_configuration().unwrap();
    assert_eq!(
        (c.minimum_healthy_percent(), c.maximum_percent()),
        (Some(100), Some(100))
    );
    // Defaults: 100/200, breaker off.
    let s = base("defaults").send().await.unwrap().service.unwrap();
    let c = s.deployment_configuration().unwrap();
    assert_eq!(
        (c.minimum_healthy_percent(), c.maximum_percent()),
        (Some(100), Some(200))
    );
    let breaker = c.deployment_circuit_breaker().unwrap();
    assert!(!breaker.enable() && !breaker.rollback());
    assert_eq!(s.propagate_tags(), Some(&PropagateTags::None));
    assert!(!s.enable_execute_command());
    // The circuit breaker needs both of its members (the SDK always sends them; raw JSON).
    let r = ecs_op(
        &berth.endpoint,
        "CreateService",
        r#"{"cluster":"v","serviceName":"cb","taskDefinition":"web","desiredCount":1,
            "deploymentConfiguration":{"deploymentCircuitBreaker":{"enable":true}}}"#,
    )
    .await;
    let msg = r.expect_error(invalid);
    assert!(msg.contains("rollback"), "{msg}");

    // Placement.
    let msg = expect_error(
        base("a")
            .placement_constraints(member_of("attribute:ecs.os-type ~~ linux"))
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("memberOf"), "{msg}");
    let msg = expect_error(
        base("a")
            .set_placement_constraints(Some(
                (0..11)
                    .map(|_| member_of("agentConnected == true"))
                    .collect(),
            ))
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("at most 10"), "{msg}");
    let msg = expect_error(
        base("a")
            .placement_strategy(
                PlacementStrategy::builder()
                    .r#type(PlacementStrategyType::Binpack)
                    .field("disk")
                    .build(),
            )
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("binpack"), "{msg}");
    let msg = expect_error(
        base("a")
            .set_placement_strategy(Some((0..6).map(|_| spread("instanceId")).collect()))
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("At most 5"), "{msg}");

    // The task definition's constraints count towards the ten.
    ecs.register_task_definition()
        .family("pinned")
        .container_definitions(
            ContainerDefinition::builder()
                .name("main")
                .image("nginx:1.27")
                .memory(64)
                .build(),
        )
        .set_placement_constraints(Some(
            (0..3)
                .map(|_| {
                    aws_sdk_ecs::types::TaskDefinitionPlacementConstraint::builder()
                        .r#type(aws_sdk_ecs::types::TaskDefinitionPlacementConstraintType::MemberOf)
                        .expression("agentConnected == true")
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    let msg = expect_error(
        base("a")
            .task_definition("pinned")
            .set_placement_constraints(Some(
                (0..8)
                    .map(|_| member_of("agentConnected == true"))
                    .collect(),
            ))
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("task definition"), "{msg}");
    base("pinned")
        .task_definition("pinned")
        .set_placement_constraints(Some(
            (0..7)
                .map(|_| member_of("agentConnected == true"))
                .collect(),
        ))
        .send()
        .await
        .unwrap();

    // Grace period, tags, propagateTags, clientToken.
    let msg = expect_error(
        base("a").health_check_grace_period_seconds(-5).send().await,
        invalid,
    );
    assert!(msg.contains("healthCheckGracePeriodSeconds"), "{msg}");
    expect_error(base("a").tags(tag("aws:owner", "x")).send().await, invalid);
    expect_error(
        base("a")
            .tags(tag("k", "1"))
            .tags(tag("k", "2"))
            .send()
            .await,
        invalid,
    );
    let r = ecs_op(
        &berth.endpoint,
        "CreateService",
        r#"{"cluster":"v","serviceName":"a","taskDefinition":"web","desiredCount":1,"propagateTags":"EVERYTHING"}"#,
    )
    .await;
    assert!(r.expect_error(invalid).contains("propagateTags"));
    let msg = expect_error(base("a").client_token("t".repeat(37)).send().await, invalid);
    assert!(msg.contains("clientToken"), "{msg}");

    // Clusters: the cluster must exist.
    let msg = expect_error(
        ecs.create_service()
            .cluster("ghost")
            .service_name("a")
            .task_definition("web")
            .desired_count(1)
            .send()
            .await,
        "ClusterNotFoundException",
    );
    assert!(!msg.is_empty());

    // None of the refused requests created anything.
    let names: BTreeSet<String> = ecs
        .list_services()
        .cluster("v")
        .max_results(100)
        .send()
        .await
        .unwrap()
        .service_arns()
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = [
        "s".repeat(255),
        "external".into(),
        "ecs-controller".into(),
        "full-range".into(),
        "defaults".into(),
        "pinned".into(),
    ]
    .into_iter()
    .collect();
    assert_eq!(names, want);
}

#[tokio::test]
async fn update_service_validates_like_ecs() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "uv").await;
    let created = create(&ecs, "uv", "web", 1).await;
    let invalid = "InvalidParameterException";

    let msg = expect_error(
        ecs.update_service()
            .cluster("uv")
            .service("ghost")
            .desired_count(1)
            .send()
            .await,
        "ServiceNotFoundException",
    );
    assert!(!msg.is_empty());
    expect_error(
        ecs.update_service()
            .cluster("nowhere")
            .service("web")
            .desired_count(1)
            .send()
            .await,
        "ClusterNotFoundException",
    );
    // A service ARN names its cluster; a different cluster parameter contradicts it.
    ecs.create_cluster().cluster_name("x").send().await.unwrap();
    let msg = expect_error(
        ecs.update_service()
            .cluster("x")
            .service(service_arn("uv", "web"))
            .desired_count(1)
            .send()
            .await,
        invalid,
    );
    assert!(msg.contains("belongs to cluster"), "{msg}");

    for (label, r) in [
        (
            "desiredCount",
            ecs.update_service()
                .cluster("uv")
                .service("web")
                .desired_count(-2)
                .send()
                .await,
        ),
        (
            "TaskDefinition not found",
            ecs.update_service()
                .cluster("uv")
                .service("web")
                .task_definition("web:77")
                .send()
                .await,
        ),
        (
            "minimumHealthyPercent",
            ecs.update_service()
                .cluster("uv")
                .service("web")
                .deployment_configuration(percents(150, 200))
                .send()
                .await,
        ),
        (
            "loadBalancers",
            ecs.update_service()
                .cluster("uv")
                .service("web")
                .load_balancers(
                    LoadBalancer::builder()
                        .load_balancer_name("lb")
                        .container_name("main")
                        .container_port(80)
                        .build(),
                )
                .send()
                .await,
        ),
        (
            "capacityProviderStrategy",
            ecs.update_service()
                .cluster("uv")
                .service("web")
                .capacity_provider_strategy(
                    CapacityProviderStrategyItem::builder()
                        .capacity_provider("FARGATE_SPOT")
                        .build()
                        .unwrap(),
                )
                .send()
                .await,
        ),
        (
            "placement constraint type",
            ecs.update_service()
                .cluster("uv")
                .service("web")
                .placement_constraints(
                    PlacementConstraint::builder()
                        .r#type(PlacementConstraintType::from("sameHost"))
                        .build(),
                )
                .send()
                .await,
        ),
    ] {
        let msg = expect_error(r, invalid);
        assert!(msg.contains(label), "{label}: {msg}");
    }

    // None of that changed the service.
    let d = describe(&ecs, "uv", "web").await;
    assert_eq!(d.desired_count(), 1);
    assert_eq!(primary_id(&d), primary_id(&created));
    let c = d.deployment_configuration().unwrap();
    assert_eq!(
        (c.minimum_healthy_percent(), c.maximum_percent()),
        (Some(100), Some(200))
    );
    assert!(d.placement_constraints().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Describe and list
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_services_reports_missing_ones_and_limits_the_batch() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "ds").await;
    ecs.create_cluster()
        .cluster_name("ds2")
        .send()
        .await
        .unwrap();
    create(&ecs, "ds", "web", 1).await;
    create(&ecs, "ds2", "web", 1).await;

    let out = ecs
        .describe_services()
        .cluster("ds")
        .services("web")
        .services("ghost")
        .services(service_arn("ds", "web"))
        // Another cluster's service is not this cluster's.
        .services(service_arn("ds2", "web"))
        .send()
        .await
        .unwrap();
    let found: Vec<&str> = out
        .services()
        .iter()
        .filter_map(|s| s.service_arn())
        .collect();
    assert_eq!(
        found,
        vec![
            service_arn("ds", "web").as_str(),
            service_arn("ds", "web").as_str()
        ]
    );
    let failures: Vec<(&str, &str)> = out
        .failures()
        .iter()
        .map(|f| (f.arn().unwrap(), f.reason().unwrap()))
        .collect();
    let ghost = service_arn("ds", "ghost");
    let foreign = service_arn("ds2", "web");
    assert_eq!(
        failures,
        vec![(ghost.as_str(), "MISSING"), (foreign.as_str(), "MISSING")]
    );

    // Up to 10 names; at least one.
    let ten: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let out = ecs
        .describe_services()
        .cluster("ds")
        .set_services(Some(ten.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failures().len(), 10);
    let mut eleven = ten;
    eleven.push("web".into());
    let msg = expect_error(
        ecs.describe_services()
            .cluster("ds")
            .set_services(Some(eleven))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(msg.contains("10"), "{msg}");
    expect_error(
        ecs.describe_services()
            .cluster("ds")
            .set_services(Some(Vec::new()))
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.describe_services()
            .cluster("ghost")
            .services("web")
            .send()
            .await,
        "ClusterNotFoundException",
    );
    let r = ecs_op(
        &berth.endpoint,
        "DescribeServices",
        r#"{"cluster":"ds","services":["web"],"include":["EVERYTHING"]}"#,
    )
    .await;
    assert!(
        r.expect_error("InvalidParameterException")
            .contains("include")
    );
}

#[tokio::test]
async fn list_services_paginates_in_name_order() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "many").await;
    let mut want = Vec::new();
    for i in 0..25 {
        let name = format!("svc-{i:02}");
        create(&ecs, "many", &name, 0).await;
        want.push(service_arn("many", &name));
    }
    ecs.create_service()
        .cluster("many")
        .service_name("zz-daemon")
        .task_definition("web")
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .send()
        .await
        .unwrap();
    want.push(service_arn("many", "zz-daemon"));

    // The default page is 10.
    let first = ecs.list_services().cluster("many").send().await.unwrap();
    assert_eq!(first.service_arns(), &want[..10]);
    assert!(first.next_token().is_some());

    let mut got = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let page = ecs
            .list_services()
            .cluster("many")
            .max_results(10)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.service_arns().len() <= 10);
        got.extend(page.service_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want);

    // The SDK's paginator walks the same list.
    let paged: Vec<String> = ecs
        .list_services()
        .cluster("many")
        .max_results(7)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged, want);

    // Filters.
    let daemons = ecs
        .list_services()
        .cluster("many")
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .send()
        .await
        .unwrap();
    assert_eq!(daemons.service_arns(), [service_arn("many", "zz-daemon")]);
    let fargate = ecs
        .list_services()
        .cluster("many")
        .launch_type(LaunchType::Fargate)
        .send()
        .await
        .unwrap();
    assert!(fargate.service_arns().is_empty());
    let ec2 = ecs
        .list_services()
        .cluster("many")
        .launch_type(LaunchType::Ec2)
        .max_results(100)
        .send()
        .await
        .unwrap();
    assert_eq!(ec2.service_arns().len(), 26);

    // Deleted services are still listed while DRAINING, not once INACTIVE.
    ecs.delete_service()
        .cluster("many")
        .service("svc-00")
        .send()
        .await
        .unwrap();
    let status = describe(&ecs, "many", "svc-00")
        .await
        .status()
        .unwrap()
        .to_owned();
    let listed = ecs
        .list_services()
        .cluster("many")
        .max_results(100)
        .send()
        .await
        .unwrap();
    let has = listed
        .service_arns()
        .contains(&service_arn("many", "svc-00"));
    if status == "INACTIVE" {
        assert!(!has);
    }

    // Bad parameters.
    for n in [0, 101] {
        let msg = expect_error(
            ecs.list_services()
                .cluster("many")
                .max_results(n)
                .send()
                .await,
            "InvalidParameterException",
        );
        assert!(msg.contains("maxResults"), "{msg}");
    }
    expect_error(
        ecs.list_services()
            .cluster("many")
            .next_token("not-a-token")
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.list_services().cluster("ghost").send().await,
        "ClusterNotFoundException",
    );
}

// ---------------------------------------------------------------------------------------------
// Tags and clusters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn services_can_be_tagged() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "tg").await;
    let arn = ecs
        .create_service()
        .cluster("tg")
        .service_name("web")
        .task_definition("web")
        .desired_count(1)
        .tags(tag("team", "a"))
        .send()
        .await
        .unwrap()
        .service()
        .unwrap()
        .service_arn()
        .unwrap()
        .to_owned();

    ecs.tag_resource()
        .resource_arn(&arn)
        .tags(tag("env", "prod"))
        .tags(tag("team", "b"))
        .send()
        .await
        .unwrap();
    let tags = ecs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tag_map(tags.tags()),
        BTreeMap::from([
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "b".to_owned())
        ])
    );
    ecs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let described = ecs
        .describe_services()
        .cluster("tg")
        .services("web")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tag_map(described.services()[0].tags()),
        BTreeMap::from([("env".to_owned(), "prod".to_owned())])
    );

    // An unknown service's ARN is not a resource.
    let ghost = service_arn("tg", "ghost");
    expect_error(
        ecs.list_tags_for_resource()
            .resource_arn(&ghost)
            .send()
            .await,
        "ServiceNotFoundException",
    );
    let (code, _) = common::expect_one_of(
        ecs.tag_resource()
            .resource_arn(&ghost)
            .tags(tag("a", "b"))
            .send()
            .await,
        &["InvalidParameterException", "ResourceNotFoundException"],
    );
    assert!(!code.is_empty());
}

#[tokio::test]
async fn a_cluster_with_an_active_service_cannot_be_deleted() {
    let berth = common::Berth::start();
    let ecs = berth.client();
    setup(&ecs, "busy").await;
    create(&ecs, "busy", "web", 0).await;
    let msg = expect_error(
        ecs.delete_cluster().cluster("busy").send().await,
        "ClusterContainsServicesException",
    );
    assert!(!msg.is_empty());
    let cluster = ecs
        .describe_clusters()
        .clusters("busy")
        .send()
        .await
        .unwrap();
    assert_eq!(cluster.clusters()[0].status(), Some("ACTIVE"));
    assert_eq!(cluster.clusters()[0].active_services_count(), 1);
}
