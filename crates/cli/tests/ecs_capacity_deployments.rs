//! What ECS's API reference says of capacity provider updates and deletions, task set answers
//! and deployment lifecycle stages, through aws-sdk-ecs (and raw JSON where the SDK cannot tell
//! an absent member from an empty one) against a real server:
//!
//! - UpdateCapacityProvider changes only the settings it is given, `managedScaling` member by
//!   member; DeleteCapacityProvider of a provider a cluster has answers DELETE_FAILED with the
//!   reason (no error); a missing or deleted provider is a ClientException; a deleted one
//!   stays describable (INACTIVE).
//! - A task set's `tags` appear only when asked for; an empty `clientToken` or `externalId`
//!   is none; DescribeTaskSets of a deleted service is ServiceNotActiveException.
//! - DescribeServiceDeployments' `lifecycleStage` of a rolling deployment, stage by stage, with
//!   a real hollow agent; ListServiceDeployments takes an empty `nextToken` as none.

mod common;

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, AutoScalingGroupProviderUpdate, ContainerDefinition,
    DeploymentController, DeploymentControllerType, ManagedDraining, ManagedScaling,
    ManagedScalingStatus, ManagedTerminationProtection, Scale, ScaleUnit, ServiceDeploymentStatus,
    Tag,
};
use common::agent::AgentProcess;
use common::{Berth, ecs_op, eventually, expect_error};
use serde_json::json;

const MISSING_PROVIDER: &str =
    "The specified capacity provider does not exist. Specify a valid name or ARN and try again.";

fn scaling(target: i32) -> ManagedScaling {
    ManagedScaling::builder().target_capacity(target).build()
}

async fn update(
    ecs: &Client,
    name: &str,
    change: AutoScalingGroupProviderUpdate,
) -> AutoScalingGroupProvider {
    ecs.update_capacity_provider()
        .name(name)
        .auto_scaling_group_provider(change)
        .send()
        .await
        .unwrap()
        .capacity_provider()
        .and_then(|p| p.auto_scaling_group_provider())
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn capacity_provider_updates_merge_and_deletions_answer_as_ecs_does() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_capacity_provider()
        .name("pool")
        .auto_scaling_group_provider(
            AutoScalingGroupProvider::builder()
                .auto_scaling_group_arn("asg-pool")
                .managed_scaling(
                    ManagedScaling::builder()
                        .status(ManagedScalingStatus::Enabled)
                        .target_capacity(80)
                        .minimum_scaling_step_size(2)
                        .maximum_scaling_step_size(50)
                        .instance_warmup_period(120)
                        .build(),
                )
                .managed_termination_protection(ManagedTerminationProtection::Enabled)
                .managed_draining(ManagedDraining::Disabled)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // One member of managedScaling: every other setting keeps its value.
    let group = update(
        &ecs,
        "pool",
        AutoScalingGroupProviderUpdate::builder()
            .managed_scaling(scaling(60))
            .build(),
    )
    .await;
    let s = group.managed_scaling().unwrap();
    assert_eq!(
        (
            s.status().map(|v| v.as_str()),
            s.target_capacity(),
            s.minimum_scaling_step_size(),
            s.maximum_scaling_step_size(),
            s.instance_warmup_period(),
        ),
        (Some("ENABLED"), Some(60), Some(2), Some(50), Some(120))
    );
    assert_eq!(group.auto_scaling_group_arn(), "asg-pool");
    assert_eq!(
        group.managed_termination_protection().map(|v| v.as_str()),
        Some("ENABLED")
    );
    assert_eq!(
        group.managed_draining().map(|v| v.as_str()),
        Some("DISABLED")
    );
    // managedDraining alone leaves managedScaling as it was.
    let group = update(
        &ecs,
        "pool",
        AutoScalingGroupProviderUpdate::builder()
            .managed_draining(ManagedDraining::Enabled)
            .build(),
    )
    .await;
    assert_eq!(
        group.managed_draining().map(|v| v.as_str()),
        Some("ENABLED")
    );
    assert_eq!(group.managed_scaling().unwrap().target_capacity(), Some(60));
    assert_eq!(
        group.managed_scaling().unwrap().instance_warmup_period(),
        Some(120)
    );
    // Checked once merged: a minimum step above the kept maximum.
    expect_error(
        ecs.update_capacity_provider()
            .name("pool")
            .auto_scaling_group_provider(
                AutoScalingGroupProviderUpdate::builder()
                    .managed_scaling(
                        ManagedScaling::builder()
                            .minimum_scaling_step_size(51)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );

    // Deleting a provider a cluster has: the provider, still ACTIVE, DELETE_FAILED and why.
    ecs.create_cluster()
        .cluster_name("cp")
        .capacity_providers("pool")
        .send()
        .await
        .unwrap();
    let refused = ecs
        .delete_capacity_provider()
        .capacity_provider("pool")
        .send()
        .await
        .unwrap();
    let p = refused.capacity_provider().unwrap();
    assert_eq!(p.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(p.update_status().map(|s| s.as_str()), Some("DELETE_FAILED"));
    assert_eq!(
        p.update_status_reason(),
        Some(
            "The capacity provider cannot be deleted because it is associated with cluster: cp. Remove the capacity provider from the cluster and try again."
        )
    );
    let described = ecs
        .describe_capacity_providers()
        .capacity_providers("pool")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.capacity_providers()[0]
            .update_status()
            .map(|s| s.as_str()),
        Some("DELETE_FAILED")
    );

    // Detached, it is deleted and stays describable, INACTIVE.
    ecs.put_cluster_capacity_providers()
        .cluster("cp")
        .set_capacity_providers(Some(Vec::new()))
        .set_default_capacity_provider_strategy(Some(Vec::new()))
        .send()
        .await
        .unwrap();
    let deleted = ecs
        .delete_capacity_provider()
        .capacity_provider("pool")
        .send()
        .await
        .unwrap();
    let p = deleted.capacity_provider().unwrap();
    assert_eq!(p.status().map(|s| s.as_str()), Some("INACTIVE"));
    assert_eq!(p.update_status_reason(), None);
    let described = ecs
        .describe_capacity_providers()
        .capacity_providers("pool")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.capacity_providers()[0]
            .status()
            .map(|s| s.as_str()),
        Some("INACTIVE")
    );

    // Deleting it again, or changing one that never was: ECS's ClientException, its words.
    for result in [
        ecs.delete_capacity_provider()
            .capacity_provider("pool")
            .send()
            .await
            .map(|_| ()),
        ecs.delete_capacity_provider()
            .capacity_provider("arn:aws:ecs:us-east-1:000000000000:capacity-provider/never")
            .send()
            .await
            .map(|_| ()),
    ] {
        assert_eq!(expect_error(result, "ClientException"), MISSING_PROVIDER);
    }
    let message = expect_error(
        ecs.update_capacity_provider()
            .name("never")
            .auto_scaling_group_provider(
                AutoScalingGroupProviderUpdate::builder()
                    .managed_scaling(scaling(50))
                    .build(),
            )
            .send()
            .await,
        "ClientException",
    );
    assert_eq!(message, MISSING_PROVIDER);
}

async fn register(ecs: &Client, family: &str, memory: i32) -> String {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(format!("{family}:{memory}"))
                .cpu(64)
                .memory(memory)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn task_sets_show_tags_only_when_asked_for_and_not_once_their_service_is_gone() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name("ts")
        .send()
        .await
        .unwrap();
    let def = register(&ecs, "web", 64).await;
    ecs.create_service()
        .cluster("ts")
        .service_name("web")
        .desired_count(0)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::External)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let created = ecs
        .create_task_set()
        .cluster("ts")
        .service("web")
        .task_definition(&def)
        .scale(Scale::builder().value(0.0).unit(ScaleUnit::Percent).build())
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let id = created.task_set().unwrap().id().unwrap().to_owned();
    assert_eq!(created.task_set().unwrap().tags()[0].key(), Some("team"));
    // An empty clientToken or externalId, as automation tools send by default, is none.
    let second = ecs
        .create_task_set()
        .cluster("ts")
        .service("web")
        .task_definition(&def)
        .scale(Scale::builder().value(0.0).unit(ScaleUnit::Percent).build())
        .client_token("")
        .external_id("")
        .send()
        .await
        .unwrap();
    let second = second.task_set().unwrap();
    assert_ne!(second.id(), Some(id.as_str()));
    assert_eq!(second.external_id(), None);

    let described = |include: bool| {
        let mut body = json!({"cluster": "ts", "service": "web"});
        if include {
            body["include"] = json!(["TAGS"]);
        }
        let endpoint = b.endpoint.clone();
        async move {
            let r = ecs_op(&endpoint, "DescribeTaskSets", &body.to_string()).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()["taskSets"][0].clone()
        }
    };
    let plain = described(false).await;
    assert_eq!(plain["id"], json!(id));
    assert!(plain.get("tags").is_none(), "no tags unless asked: {plain}");
    let tagged = described(true).await;
    assert_eq!(tagged["tags"], json!([{"key": "team", "value": "web"}]));
    let second_id = second.id().unwrap().to_owned();
    let updated = ecs_op(
        &b.endpoint,
        "UpdateTaskSet",
        &json!({"cluster": "ts", "service": "web", "taskSet": id,
                "scale": {"value": 0.0, "unit": "PERCENT"}})
        .to_string(),
    )
    .await;
    assert_eq!(updated.status, 200);
    assert!(updated.json()["taskSet"].get("tags").is_none());

    // Once its service is deleted, the task sets of it are not described.
    for set in [&id, &second_id] {
        ecs.delete_task_set()
            .cluster("ts")
            .service("web")
            .task_set(set)
            .force(true)
            .send()
            .await
            .unwrap();
    }
    ecs.delete_service()
        .cluster("ts")
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the service is INACTIVE",
        || async {
            let s = ecs
                .describe_services()
                .cluster("ts")
                .services("web")
                .send()
                .await
                .unwrap();
            s.services()
                .first()
                .and_then(|s| s.status())
                .is_some_and(|s| s == "INACTIVE")
        },
    )
    .await;
    expect_error(
        ecs.describe_task_sets()
            .cluster("ts")
            .service("web")
            .send()
            .await,
        "ServiceNotActiveException",
    );
}

const CLUSTER: &str = "stages";

/// The newest deployment of `service`: its status, lifecycleStage, and the running tasks of
/// its target and of its sources.
async fn newest(ecs: &Client, service: &str) -> (String, Option<String>, i32, i32) {
    let listed = ecs
        .list_service_deployments()
        .cluster(CLUSTER)
        .service(service)
        .send()
        .await
        .unwrap();
    let newest = listed.service_deployments()[0]
        .service_deployment_arn()
        .unwrap()
        .to_owned();
    let described = ecs
        .describe_service_deployments()
        .service_deployment_arns(newest)
        .send()
        .await
        .unwrap();
    let d = &described.service_deployments()[0];
    (
        d.status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        d.lifecycle_stage().map(|s| s.as_str().to_owned()),
        d.target_service_revision()
            .map_or(0, |t| t.running_task_count()),
        d.source_service_revisions()
            .iter()
            .map(|r| r.running_task_count())
            .sum(),
    )
}

async fn reaches(ecs: &Client, service: &str, status: ServiceDeploymentStatus, stage: &str) {
    let wanted = (status.as_str().to_owned(), Some(stage.to_owned()));
    eventually(
        Duration::from_secs(30),
        &format!("{service}'s newest deployment {wanted:?}"),
        || async {
            let (status, stage, ..) = newest(ecs, service).await;
            (status, stage) == wanted
        },
    )
    .await;
}

async fn deploy(ecs: &Client, service: &str, definition: &str) {
    ecs.update_service()
        .cluster(CLUSTER)
        .service(service)
        .task_definition(definition)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn rolling_deployments_report_their_lifecycle_stage() {
    use ServiceDeploymentStatus::{InProgress, Successful};
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let _agent = AgentProcess::start(
        &b.endpoint,
        CLUSTER,
        &["--runtime", "hollow", "--cpu", "4096", "--memory", "4096"],
    );
    let small = register(&ecs, "web", 64).await;
    // One task of it fits beside two small ones, a second never does.
    let half = register(&ecs, "web", 3000).await;
    let too_big = register(&ecs, "web", 100_000).await;

    // Nothing of a deployment's target started yet: PRE_SCALE_UP.
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("big")
        .task_definition(&too_big)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    reaches(&ecs, "big", InProgress, "PRE_SCALE_UP").await;

    // Complete: every stage passed, the last one CLEAN_UP.
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition(&small)
        .desired_count(2)
        .send()
        .await
        .unwrap();
    reaches(&ecs, "web", Successful, "CLEAN_UP").await;
    // An empty nextToken is the first page.
    let first = ecs
        .list_service_deployments()
        .cluster(CLUSTER)
        .service("web")
        .next_token("")
        .send()
        .await
        .unwrap();
    assert_eq!(first.service_deployments().len(), 1);

    // The target runs fewer tasks than it asks for: SCALE_UP, until the old revision is down
    // to the one task the minimum healthy percent keeps beside the new one.
    deploy(&ecs, "web", &half).await;
    eventually(
        Duration::from_secs(30),
        "one task of each revision, SCALE_UP",
        || async {
            newest(&ecs, "web").await
                == (
                    InProgress.as_str().to_owned(),
                    Some("SCALE_UP".to_owned()),
                    1,
                    1,
                )
        },
    )
    .await;

    // A new deployment while two revisions still run tasks, none of its own yet:
    // RECONCILE_SERVICE.
    deploy(&ecs, "web", &too_big).await;
    reaches(&ecs, "web", InProgress, "RECONCILE_SERVICE").await;
}
