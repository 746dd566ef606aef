//! A service's deployment history through aws-sdk-ecs against a real server and hollow agents:
//! ListServiceDeployments (status and time filters, pagination), DescribeServiceDeployments
//! (source and target revisions with their task counts), DescribeServiceRevisions (task
//! definition and images), StopServiceDeployment rolling a stuck deployment back, ECS's errors
//! for each, and authorization.

mod common;

use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, CreatedAt, ServiceDeploymentStatus, StopServiceDeploymentStopType,
};
use common::agent::AgentProcess;
use common::{Berth, credential, eventually, expect_error};

const CLUSTER: &str = "hist";
const SERVICE: &str = "web";

async fn revision(ecs: &Client, image: &str, memory: i32) -> String {
    ecs.register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
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

/// (status, target revision ARN) of every deployment, newest first.
async fn history(ecs: &Client) -> Vec<(ServiceDeploymentStatus, String, String)> {
    ecs.list_service_deployments()
        .cluster(CLUSTER)
        .service(SERVICE)
        .send()
        .await
        .unwrap()
        .service_deployments()
        .iter()
        .map(|d| {
            (
                d.status().cloned().unwrap(),
                d.service_deployment_arn().unwrap().to_owned(),
                d.target_service_revision_arn().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn settled(ecs: &Client, what: &str, expected: &[ServiceDeploymentStatus]) {
    eventually(Duration::from_secs(30), what, || async {
        let statuses: Vec<_> = history(ecs).await.into_iter().map(|h| h.0).collect();
        statuses == expected
    })
    .await;
}

#[tokio::test]
async fn deployments_and_revisions_are_listed_described_and_stopped() {
    use ServiceDeploymentStatus::{RollbackSuccessful, Successful};
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
    let v1 = revision(&ecs, "web:1", 64).await;
    let v2 = revision(&ecs, "web:2", 64).await;
    // More memory than any instance has: its deployment can never complete.
    let too_big = revision(&ecs, "web:3", 100_000).await;

    ecs.create_service()
        .cluster(CLUSTER)
        .service_name(SERVICE)
        .task_definition(&v1)
        .desired_count(2)
        .send()
        .await
        .unwrap();
    settled(&ecs, "v1 succeeds", &[Successful]).await;
    let before_v2 = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(SERVICE)
        .send()
        .await
        .unwrap()
        .services()[0]
        .created_at()
        .unwrap()
        .as_secs_f64();
    ecs.update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&v2)
        .send()
        .await
        .unwrap();
    settled(&ecs, "v2 succeeds", &[Successful, Successful]).await;
    let h = history(&ecs).await;
    let (v2_deployment, v2_revision) = (h[0].1.clone(), h[0].2.clone());
    let v1_revision = h[1].2.clone();
    assert!(
        v2_deployment.contains(&format!(":service-deployment/{CLUSTER}/{SERVICE}/")),
        "{v2_deployment}"
    );

    // The deployment moved from v1's revision to v2's, and says how many tasks each has now.
    let described = ecs
        .describe_service_deployments()
        .service_deployment_arns(&v2_deployment)
        .service_deployment_arns(v2_deployment.replace("/web/", "/nope/"))
        .send()
        .await
        .unwrap();
    let d = &described.service_deployments()[0];
    assert_eq!(d.status(), Some(&Successful));
    assert!(d.finished_at().is_some());
    let target = d.target_service_revision().unwrap();
    assert_eq!(target.arn(), Some(v2_revision.as_str()));
    assert_eq!(
        (target.requested_task_count(), target.running_task_count()),
        (2, 2)
    );
    let sources: Vec<_> = d
        .source_service_revisions()
        .iter()
        .map(|s| (s.arn().unwrap().to_owned(), s.running_task_count()))
        .collect();
    assert_eq!(sources, [(v1_revision.clone(), 0)]);
    assert_eq!(described.failures()[0].reason(), Some("MISSING"));

    let revisions = ecs
        .describe_service_revisions()
        .service_revision_arns(&v1_revision)
        .service_revision_arns(&v2_revision)
        .send()
        .await
        .unwrap();
    let defs: Vec<_> = revisions
        .service_revisions()
        .iter()
        .map(|r| {
            (
                r.task_definition().unwrap().to_owned(),
                r.container_images()[0].image().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        defs,
        [
            (v1.clone(), "web:1".to_owned()),
            (v2.clone(), "web:2".to_owned())
        ]
    );

    // A deployment that cannot complete is stopped: rolled back to v2.
    ecs.update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&too_big)
        .send()
        .await
        .unwrap();
    let h = history(&ecs).await;
    assert_eq!(h[0].0, ServiceDeploymentStatus::InProgress);
    let stuck = h[0].1.clone();
    expect_error(
        ecs.stop_service_deployment()
            .service_deployment_arn(&stuck)
            .stop_type(StopServiceDeploymentStopType::Abort)
            .send()
            .await,
        "InvalidParameterException",
    );
    expect_error(
        ecs.stop_service_deployment()
            .service_deployment_arn(&v2_deployment)
            .send()
            .await,
        "ConflictException",
    );
    let stopped = ecs
        .stop_service_deployment()
        .service_deployment_arn(&stuck)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.service_deployment_arn(), Some(stuck.as_str()));
    eventually(Duration::from_secs(30), "the rollback succeeds", || async {
        let h = history(&ecs).await;
        h.iter().find(|d| d.1 == stuck).map(|d| d.0.clone()) == Some(RollbackSuccessful)
    })
    .await;
    let d = ecs
        .describe_service_deployments()
        .service_deployment_arns(&stuck)
        .send()
        .await
        .unwrap();
    let d = &d.service_deployments()[0];
    let rollback = d.rollback().expect("rollback details");
    assert!(rollback.reason().unwrap().contains("StopServiceDeployment"));
    assert!(d.stopped_at().is_some());
    let svc = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(SERVICE)
        .send()
        .await
        .unwrap();
    assert_eq!(svc.services()[0].task_definition(), Some(v2.as_str()));

    // Filters and pagination.
    let ok = ecs
        .list_service_deployments()
        .cluster(CLUSTER)
        .service(SERVICE)
        .status(Successful)
        .send()
        .await
        .unwrap();
    assert!(
        ok.service_deployments()
            .iter()
            .all(|d| d.status() == Some(&Successful))
    );
    assert!(ok.service_deployments().len() >= 3, "{ok:?}");
    let later = ecs
        .list_service_deployments()
        .cluster(CLUSTER)
        .service(SERVICE)
        .created_at(
            CreatedAt::builder()
                .after(aws_sdk_ecs::primitives::DateTime::from_secs_f64(
                    before_v2 + 0.0005,
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        later
            .service_deployments()
            .iter()
            .all(|d| d.target_service_revision_arn() != Some(v1_revision.as_str()))
    );
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_service_deployments()
            .cluster(CLUSTER)
            .service(SERVICE)
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.service_deployments().len() <= 1);
        seen.extend(
            page.service_deployments()
                .iter()
                .map(|d| d.service_deployment_arn().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let all: Vec<_> = history(&ecs).await.into_iter().map(|h| h.1).collect();
    assert_eq!(seen, all, "pages of one are the whole list, in order");

    // Errors.
    expect_error(
        ecs.list_service_deployments()
            .cluster(CLUSTER)
            .service("nope")
            .send()
            .await,
        "ServiceNotFoundException",
    );
    expect_error(
        ecs.stop_service_deployment()
            .service_deployment_arn(format!(
                "{}/1111111111111111111",
                stuck.rsplit_once('/').unwrap().0
            ))
            .send()
            .await,
        "ServiceDeploymentNotFoundException",
    );
    expect_error(
        ecs.describe_service_revisions()
            .service_revision_arns("not-an-arn")
            .send()
            .await,
        "InvalidParameterException",
    );

    // A reader may look, not stop.
    let reader = b.client_as(&credential(&b, "reader", "read-only").await);
    assert!(
        !reader
            .list_service_deployments()
            .cluster(CLUSTER)
            .service(SERVICE)
            .send()
            .await
            .unwrap()
            .service_deployments()
            .is_empty()
    );
    expect_error(
        reader
            .stop_service_deployment()
            .service_deployment_arn(&stuck)
            .send()
            .await,
        "AccessDeniedException",
    );
}
