//! Task sets and the EXTERNAL deployment controller through aws-sdk-ecs against a real server
//! and real hollow agents: a blue/green switch as an outside controller performs it (create
//! green at 0 %, shift to 100 %, swap the primary, delete blue), each operation's documented
//! errors, idempotent creates, DescribeTaskSets with `include` and failures, what UpdateService
//! refuses on an EXTERNAL service, and authorization (read-only and another cluster's operator).

mod common;

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, Scale, ScaleUnit,
    StabilityStatus, Tag, TaskSetField,
};
use common::agent::AgentProcess;
use common::{Berth, credential, eventually, expect_error, tags_of};

const CLUSTER: &str = "bg";
const SERVICE: &str = "web";

fn percent(value: f64) -> Scale {
    Scale::builder()
        .value(value)
        .unit(ScaleUnit::Percent)
        .build()
}

async fn revision(ecs: &Client, image: &str) -> String {
    ecs.register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
                .cpu(100)
                .memory(64)
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

async fn external_service(ecs: &Client, desired: i32) {
    let created = ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name(SERVICE)
        .desired_count(desired)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::External)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let s = created.service().unwrap();
    assert_eq!(
        s.deployment_controller().map(|c| c.r#type()),
        Some(&DeploymentControllerType::External)
    );
    assert!(s.deployments().is_empty());
    assert!(s.task_sets().is_empty());
    assert_eq!(s.task_definition(), None);
}

/// An EXTERNAL service of one task in [`CLUSTER`] (which must exist) with one task set at
/// 0 %: the task definition's ARN and the set as CreateTaskSet answered.
async fn idle_task_set(ecs: &Client) -> (String, aws_sdk_ecs::types::TaskSet) {
    let def = revision(ecs, "web:1").await;
    external_service(ecs, 1).await;
    let created = ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&def)
        .scale(percent(0.0))
        .send()
        .await
        .unwrap();
    (def, created.task_set().unwrap().clone())
}

/// (running, stability) of the task set `id`, as DescribeTaskSets says.
async fn progress(ecs: &Client, id: &str) -> (i32, Option<StabilityStatus>, i32) {
    let d = ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_sets(id)
        .send()
        .await
        .unwrap();
    let t = &d.task_sets()[0];
    (
        t.running_count(),
        t.stability_status().cloned(),
        t.computed_desired_count(),
    )
}

async fn steady_at(ecs: &Client, id: &str, running: i32) {
    eventually(
        Duration::from_secs(30),
        &format!("task set {id} steady at {running}"),
        || async {
            progress(ecs, id).await == (running, Some(StabilityStatus::SteadyState), running)
        },
    )
    .await;
}

/// The image of every live task of the service, sorted.
async fn images(ecs: &Client) -> Vec<String> {
    let arns = ecs
        .list_tasks()
        .cluster(CLUSTER)
        .service_name(SERVICE)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Vec::new();
    }
    let tasks = ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(arns))
        .send()
        .await
        .unwrap();
    let mut out: Vec<String> = tasks
        .tasks()
        .iter()
        .filter(|t| t.desired_status() == Some("RUNNING"))
        .map(|t| t.containers()[0].image().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn an_external_controller_switches_blue_to_green() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let _agents: Vec<AgentProcess> = (0..2)
        .map(|_| {
            AgentProcess::start(
                &b.endpoint,
                CLUSTER,
                &["--runtime", "hollow", "--cpu", "4096", "--memory", "8192"],
            )
        })
        .collect();
    let blue_def = revision(&ecs, "web:blue").await;
    let green_def = revision(&ecs, "web:green").await;
    external_service(&ecs, 4).await;

    let blue = ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&blue_def)
        .external_id("blue")
        .scale(percent(100.0))
        .send()
        .await
        .unwrap();
    let blue = blue.task_set().unwrap();
    assert_eq!(blue.status(), Some("ACTIVE"));
    assert_eq!(blue.computed_desired_count(), 4);
    assert_eq!(blue.external_id(), Some("blue"));
    let blue_id = blue.id().unwrap().to_owned();
    assert!(blue_id.starts_with("ecs-svc/"), "{blue_id}");
    assert!(
        blue.task_set_arn()
            .unwrap()
            .ends_with(&format!(":task-set/{CLUSTER}/{SERVICE}/{blue_id}")),
        "{:?}",
        blue.task_set_arn()
    );
    ecs.update_service_primary_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .primary_task_set(&blue_id)
        .send()
        .await
        .unwrap();
    steady_at(&ecs, &blue_id, 4).await;

    // Green at 0 %, then shifted to 100 %: both run side by side.
    let green = ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&green_def)
        .scale(percent(0.0))
        .send()
        .await
        .unwrap();
    let green_id = green.task_set().unwrap().id().unwrap().to_owned();
    steady_at(&ecs, &green_id, 0).await;
    let shifted = ecs
        .update_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_set(&green_id)
        .scale(percent(100.0))
        .send()
        .await
        .unwrap();
    assert_eq!(shifted.task_set().unwrap().computed_desired_count(), 4);
    steady_at(&ecs, &green_id, 4).await;
    let mut both = vec!["web:blue".to_owned(); 4];
    both.extend(vec!["web:green".to_owned(); 4]);
    assert_eq!(images(&ecs).await, both);

    // Swap the primary: the service now names green's task definition.
    let swapped = ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .primary_task_set(&green_id)
        .send()
        .await
        .unwrap();
    assert_eq!(swapped.task_set().unwrap().status(), Some("PRIMARY"));
    let svc = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(SERVICE)
        .send()
        .await
        .unwrap();
    let svc = &svc.services()[0];
    assert_eq!(svc.task_definition(), Some(green_def.as_str()));
    let statuses: Vec<(&str, &str)> = svc
        .task_sets()
        .iter()
        .map(|t| (t.id().unwrap(), t.status().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [(blue_id.as_str(), "ACTIVE"), (green_id.as_str(), "PRIMARY")]
    );

    // Blue cannot be deleted while it still has tasks; scaled to 0 it can.
    expect_error(
        ecs.delete_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_set(&blue_id)
            .send()
            .await,
        "InvalidParameterException",
    );
    ecs.update_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_set(&blue_id)
        .scale(percent(0.0))
        .send()
        .await
        .unwrap();
    let deleted = ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_set(&blue_id)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.task_set().unwrap().status(), Some("DRAINING"));
    eventually(Duration::from_secs(30), "blue is gone", || async {
        let d = ecs
            .describe_task_sets()
            .cluster(CLUSTER)
            .service(SERVICE)
            .send()
            .await
            .unwrap();
        d.task_sets().len() == 1 && images(&ecs).await == vec!["web:green".to_owned(); 4]
    })
    .await;
    let d = ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_sets(&blue_id)
        .send()
        .await
        .unwrap();
    assert!(d.task_sets().is_empty());
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    eventually(Duration::from_secs(30), "the service is steady", || async {
        let s = ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(SERVICE)
            .send()
            .await
            .unwrap();
        let s = &s.services()[0];
        s.running_count() == 4
            && s.events().first().and_then(|e| e.message())
                == Some("(service web) has reached a steady state.")
    })
    .await;
}

#[tokio::test]
async fn task_set_operations_answer_as_ecs_does() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let def = revision(&ecs, "web:1").await;

    // An ECS-controlled service has no task sets to manage.
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("rolling")
        .task_definition(&def)
        .desired_count(0)
        .send()
        .await
        .unwrap();
    expect_error(
        ecs.create_task_set()
            .cluster(CLUSTER)
            .service("rolling")
            .task_definition(&def)
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.describe_task_sets()
            .cluster(CLUSTER)
            .service("rolling")
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.create_task_set()
            .cluster(CLUSTER)
            .service("nope")
            .task_definition(&def)
            .send()
            .await,
        "ServiceNotFoundException",
    );
    expect_error(
        ecs.describe_task_sets()
            .cluster("no-such-cluster")
            .service(SERVICE)
            .send()
            .await,
        "ClusterNotFoundException",
    );

    // What an EXTERNAL service leaves to its task sets, it refuses itself.
    let controller = DeploymentController::builder()
        .r#type(DeploymentControllerType::External)
        .build()
        .unwrap();
    expect_error(
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("x")
            .task_definition(&def)
            .deployment_controller(controller.clone())
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("x")
            .deployment_controller(
                DeploymentController::builder()
                    .r#type(DeploymentControllerType::CodeDeploy)
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    external_service(&ecs, 2).await;
    for attempt in [
        ecs.update_service()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_definition(&def)
            .send()
            .await
            .map(|_| ()),
        ecs.update_service()
            .cluster(CLUSTER)
            .service(SERVICE)
            .force_new_deployment(true)
            .send()
            .await
            .map(|_| ()),
        ecs.update_service()
            .cluster(CLUSTER)
            .service(SERVICE)
            .deployment_controller(
                DeploymentController::builder()
                    .r#type(DeploymentControllerType::Ecs)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .map(|_| ()),
    ] {
        expect_error(attempt, "InvalidParameterException");
    }
    let scaled = ecs
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .desired_count(5)
        .send()
        .await
        .unwrap();
    assert_eq!(scaled.service().unwrap().desired_count(), 5);

    // Create: bad scales and references are refused; a retried clientToken answers with the
    // same task set.
    for bad in [percent(150.0), percent(-1.0)] {
        expect_error(
            ecs.create_task_set()
                .cluster(CLUSTER)
                .service(SERVICE)
                .task_definition(&def)
                .scale(bad)
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    expect_error(
        ecs.create_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_definition("web:99")
            .send()
            .await,
        "InvalidParameterException",
    );
    let first = ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&def)
        .scale(percent(30.0))
        .client_token("token-1")
        .tags(Tag::builder().key("color").value("blue").build())
        .send()
        .await
        .unwrap();
    let first = first.task_set().unwrap();
    assert_eq!(
        first.computed_desired_count(),
        2,
        "30 % of 5 is 1.5, rounded up"
    );
    assert_eq!(first.scale().map(|s| s.value()), Some(30.0));
    assert_eq!(
        first.scale().and_then(|s| s.unit()),
        Some(&ScaleUnit::Percent)
    );
    assert_eq!(first.launch_type().map(|l| l.as_str()), Some("EC2"));
    let again = ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&def)
        .scale(percent(30.0))
        .client_token("token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.task_set().unwrap().id(), first.id());
    let id = first.id().unwrap().to_owned();

    // Describe: by id and by ARN, tags only when asked for, unknown ones as failures.
    let arn = first.task_set_arn().unwrap().to_owned();
    let d = ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_sets(&arn)
        .task_sets("ecs-svc/1111111111111111111")
        .include(TaskSetField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.task_sets().len(), 1);
    assert_eq!(d.task_sets()[0].id(), Some(id.as_str()));
    assert_eq!(d.task_sets()[0].tags()[0].value(), Some("blue"));
    assert_eq!(d.failures().len(), 1);
    assert!(
        d.failures()[0]
            .arn()
            .unwrap()
            .ends_with("ecs-svc/1111111111111111111")
    );
    let plain = ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(SERVICE)
        .send()
        .await
        .unwrap();
    assert!(plain.task_sets()[0].tags().is_empty());
    expect_error(
        ecs.describe_task_sets()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_sets("not-a-task-set")
            .send()
            .await,
        "InvalidParameterException",
    );

    // Update, primary and delete on sets that are not there.
    let ghost = "ecs-svc/2222222222222222222";
    expect_error(
        ecs.update_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_set(ghost)
            .scale(percent(10.0))
            .send()
            .await,
        "TaskSetNotFoundException",
    );
    expect_error(
        ecs.update_service_primary_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .primary_task_set(ghost)
            .send()
            .await,
        "TaskSetNotFoundException",
    );
    expect_error(
        ecs.delete_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_set(ghost)
            .send()
            .await,
        "TaskSetNotFoundException",
    );
    // An ARN of another service's task set is refused, not applied here.
    let elsewhere = arn.replace(&format!("/{SERVICE}/"), "/other/");
    expect_error(
        ecs.update_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_set(&elsewhere)
            .scale(percent(10.0))
            .send()
            .await,
        "InvalidParameterException",
    );

    // The PRIMARY needs force; with it, it goes DRAINING and then away.
    ecs.update_service_primary_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .primary_task_set(&id)
        .send()
        .await
        .unwrap();
    expect_error(
        ecs.delete_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_set(&id)
            .send()
            .await,
        "InvalidParameterException",
    );
    let gone = ecs
        .delete_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_set(&id)
        .force(true)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.task_set().unwrap().status(), Some("DRAINING"));
    expect_error(
        ecs.update_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_set(&id)
            .scale(percent(10.0))
            .send()
            .await,
        "InvalidParameterException",
    );

    // At most five task sets at once.
    for _ in 0..5 {
        ecs.create_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_definition(&def)
            .scale(percent(0.0))
            .send()
            .await
            .unwrap();
    }
    expect_error(
        ecs.create_task_set()
            .cluster(CLUSTER)
            .service(SERVICE)
            .task_definition(&def)
            .scale(percent(0.0))
            .send()
            .await,
        "ClientException",
    );
}

#[tokio::test]
async fn task_sets_are_authorized_like_their_service() {
    let b = Berth::start();
    let ecs = b.client();
    for c in [CLUSTER, "other"] {
        ecs.create_cluster().cluster_name(c).send().await.unwrap();
    }
    let (def, set) = idle_task_set(&ecs).await;
    let id = set.id().unwrap().to_owned();

    let reader = b.client_as(&credential(&b, "reader", "read-only").await);
    reader
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(SERVICE)
        .send()
        .await
        .unwrap();
    let outsider = b.client_as(&credential(&b, "ops-other", "operator:other").await);
    let insider = b.client_as(&credential(&b, "ops-bg", &format!("operator:{CLUSTER}")).await);
    for client in [&reader, &outsider] {
        expect_error(
            client
                .create_task_set()
                .cluster(CLUSTER)
                .service(SERVICE)
                .task_definition(&def)
                .send()
                .await,
            "AccessDeniedException",
        );
        expect_error(
            client
                .update_task_set()
                .cluster(CLUSTER)
                .service(SERVICE)
                .task_set(&id)
                .scale(percent(100.0))
                .send()
                .await,
            "AccessDeniedException",
        );
        expect_error(
            client
                .delete_task_set()
                .cluster(CLUSTER)
                .service(SERVICE)
                .task_set(&id)
                .send()
                .await,
            "AccessDeniedException",
        );
    }
    expect_error(
        outsider
            .describe_task_sets()
            .cluster(CLUSTER)
            .service(SERVICE)
            .send()
            .await,
        "AccessDeniedException",
    );
    // The cluster's own operator may.
    insider
        .update_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_set(&id)
        .scale(percent(100.0))
        .send()
        .await
        .unwrap();
    insider
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service(SERVICE)
        .primary_task_set(&id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn task_sets_are_tagged_by_arn_within_their_cluster() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let (_, set) = idle_task_set(&ecs).await;
    let (id, arn) = (set.id().unwrap(), set.task_set_arn().unwrap());

    ecs.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("colour").value("blue").build())
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&ecs, arn).await, ["colour=blue"]);
    let described = ecs
        .describe_task_sets()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_sets(id)
        .include(TaskSetField::Tags)
        .send()
        .await
        .unwrap();
    let shown: Vec<_> = described.task_sets()[0]
        .tags()
        .iter()
        .map(|t| t.value().unwrap())
        .collect();
    assert_eq!(shown, ["blue"]);

    // Another cluster's operator may not tag it; this cluster's operator may.
    let outsider = b.client_as(&credential(&b, "ops-other", "operator:other").await);
    let insider = b.client_as(&credential(&b, "ops-bg", &format!("operator:{CLUSTER}")).await);
    expect_error(
        outsider
            .tag_resource()
            .resource_arn(arn)
            .tags(Tag::builder().key("colour").value("red").build())
            .send()
            .await,
        "AccessDeniedException",
    );
    insider
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("colour")
        .send()
        .await
        .unwrap();
    assert!(tags_of(&ecs, arn).await.is_empty());

    // A task set that is not there, in a service that is there or not.
    let missing = arn.replace(id, "ecs-svc/1");
    expect_error(
        ecs.list_tags_for_resource()
            .resource_arn(&missing)
            .send()
            .await,
        "TaskSetNotFoundException",
    );
    expect_error(
        ecs.tag_resource()
            .resource_arn(&missing)
            .tags(Tag::builder().key("k").value("v").build())
            .send()
            .await,
        "ResourceNotFoundException",
    );
    expect_error(
        ecs.list_tags_for_resource()
            .resource_arn(arn.replace("/web/", "/gone/"))
            .send()
            .await,
        "ServiceNotFoundException",
    );
}
