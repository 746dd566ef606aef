//! Conformance with the Amazon ECS API reference where berth once answered differently: each
//! test drives a real `berth server` through the official AWS SDK for Rust and checks what ECS
//! answers (the exception class, the shape, the failure entries), not only that a call works.
//!
//! Where the SDK hides the wire (an empty list and an absent one look the same through it),
//! the test reads the raw JSON too.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    Attribute, ClusterField, ClusterSetting, ClusterSettingName, Compatibility,
    ContainerDefinition, ContainerInstanceStatus, Failure, LaunchType, Tag, TargetType, TaskField,
};
use common::{Berth, ecs_op, expect_error, int_of, int_resource};
use serde_json::{Value, json};

const ACCOUNT: &str = "000000000000";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn container(name: Option<&str>, image: Option<&str>) -> ContainerDefinition {
    ContainerDefinition::builder()
        .set_name(name.map(str::to_owned))
        .set_image(image.map(str::to_owned))
        .memory(64)
        .build()
}

async fn register_family(ecs: &Client, family: &str) -> String {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container(Some("app"), Some("busybox:1.36")))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned()
}

/// An EC2 instance identity document as the instance metadata service hands it out.
fn identity_document(instance_id: &str, instance_type: &str) -> String {
    json!({
        "accountId": "123456789012",
        "architecture": "x86_64",
        "availabilityZone": "us-east-1a",
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": "ami-0abcdef1234567890",
        "instanceId": instance_id,
        "instanceType": instance_type,
        "kernelId": null,
        "pendingTime": "2024-05-01T10:00:00Z",
        "privateIp": "10.0.0.12",
        "ramdiskId": null,
        "region": "us-east-1",
        "version": "2017-09-30"
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. RegisterContainerInstance from an identity document alone
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn register_container_instance_takes_resources_from_the_instance_type() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("ec2")
        .send()
        .await
        .unwrap();

    // A known type: vCPUs × 1024 and its memory in MiB, without any totalResources.
    let out = ecs
        .register_container_instance()
        .cluster("ec2")
        .instance_identity_document(identity_document("i-0aaa", "t3.medium"))
        .send()
        .await
        .expect("ECS registers an instance from its identity document alone");
    let i = out.container_instance().unwrap();
    assert_eq!(i.ec2_instance_id(), Some("i-0aaa"));
    assert_eq!(int_of(i.registered_resources(), "CPU"), 2 * 1024);
    assert_eq!(int_of(i.registered_resources(), "MEMORY"), 4 * 1024);
    assert_eq!(int_of(i.remaining_resources(), "CPU"), 2 * 1024);
    let instance_type = i
        .attributes()
        .iter()
        .find(|a| a.name() == "ecs.instance-type")
        .and_then(|a| a.value());
    assert_eq!(instance_type, Some("t3.medium"));

    // What it registered is capacity the scheduler uses.
    register_family(&ecs, "app").await;
    let run = ecs
        .run_task()
        .cluster("ec2")
        .task_definition("app")
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 1, "{:?}", run.failures());

    // A totalResources entry that is given wins; the missing one comes from the type.
    let out = ecs
        .register_container_instance()
        .cluster("ec2")
        .instance_identity_document(identity_document("i-0bbb", "m5.large"))
        .total_resources(int_resource("CPU", 1000))
        .send()
        .await
        .unwrap();
    let i = out.container_instance().unwrap();
    assert_eq!(int_of(i.registered_resources(), "CPU"), 1000);
    assert_eq!(int_of(i.registered_resources(), "MEMORY"), 8 * 1024);

    // An instance type berth does not know, or no document at all: registered with no
    // CPU and no memory, never refused.
    for doc in [Some(identity_document("i-0ccc", "zz9.plural")), None] {
        let out = ecs
            .register_container_instance()
            .cluster("ec2")
            .set_instance_identity_document(doc)
            .send()
            .await
            .expect("registration is never refused for want of totalResources");
        let i = out.container_instance().unwrap();
        assert_eq!(i.status(), Some("ACTIVE"));
        assert_eq!(int_of(i.registered_resources(), "CPU"), 0);
        assert_eq!(int_of(i.registered_resources(), "MEMORY"), 0);
    }
    let listed = ecs
        .list_container_instances()
        .cluster("ec2")
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.container_instance_arns().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// 2. An unknown cluster is a ClusterNotFoundException on every operation that takes one
// ---------------------------------------------------------------------------------------------

/// Asserts ClusterNotFoundException with a message naming `cluster`.
#[track_caller]
fn cluster_not_found<T, E>(
    op: &str,
    result: Result<T, aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>>,
    cluster: &str,
) where
    T: std::fmt::Debug,
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::fmt::Debug,
{
    let message = expect_error(result, "ClusterNotFoundException");
    assert!(
        message.contains(cluster),
        "{op}: the message should name the cluster {cluster}: {message:?}"
    );
}

#[tokio::test]
async fn an_unknown_cluster_is_cluster_not_found_on_every_operation() {
    let berth = Berth::start();
    let ecs = berth.client();
    // Something real elsewhere, so nothing below fails for want of a task definition.
    ecs.create_cluster()
        .cluster_name("real")
        .send()
        .await
        .unwrap();
    register_family(&ecs, "app").await;
    ecs.create_cluster()
        .cluster_name("gone")
        .send()
        .await
        .unwrap();
    ecs.delete_cluster().cluster("gone").send().await.unwrap();

    let id = "0123456789abcdef0123456789abcdef";
    // A never-created cluster, by name and by ARN, and a deleted (INACTIVE) one.
    for (cluster, name) in [
        ("ghost".to_owned(), "ghost"),
        (
            format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/ghost"),
            "ghost",
        ),
        ("gone".to_owned(), "gone"),
    ] {
        let c = cluster.as_str();
        let task_arn = format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/{name}/{id}");
        let instance_arn =
            format!("arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/{name}/{id}");
        let attribute = Attribute::builder()
            .name("stack")
            .value("prod")
            .target_type(TargetType::ContainerInstance)
            .target_id(id)
            .build()
            .unwrap();
        cluster_not_found(
            "DescribeTasks",
            ecs.describe_tasks().cluster(c).tasks(id).send().await,
            name,
        );
        cluster_not_found(
            "StopTask",
            ecs.stop_task().cluster(c).task(&task_arn).send().await,
            name,
        );
        cluster_not_found("ListTasks", ecs.list_tasks().cluster(c).send().await, name);
        cluster_not_found(
            "RunTask",
            ecs.run_task()
                .cluster(c)
                .task_definition("app")
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "StartTask",
            ecs.start_task()
                .cluster(c)
                .task_definition("app")
                .container_instances(&instance_arn)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "DescribeContainerInstances",
            ecs.describe_container_instances()
                .cluster(c)
                .container_instances(id)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "ListContainerInstances",
            ecs.list_container_instances().cluster(c).send().await,
            name,
        );
        cluster_not_found(
            "UpdateContainerInstancesState",
            ecs.update_container_instances_state()
                .cluster(c)
                .container_instances(&instance_arn)
                .status(ContainerInstanceStatus::Draining)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "DeregisterContainerInstance",
            ecs.deregister_container_instance()
                .cluster(c)
                .container_instance(id)
                .force(true)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "RegisterContainerInstance",
            ecs.register_container_instance()
                .cluster(c)
                .total_resources(int_resource("CPU", 1024))
                .total_resources(int_resource("MEMORY", 1024))
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "PutAttributes",
            ecs.put_attributes()
                .cluster(c)
                .attributes(attribute.clone())
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "DeleteAttributes",
            ecs.delete_attributes()
                .cluster(c)
                .attributes(attribute.clone())
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "ListAttributes",
            ecs.list_attributes()
                .cluster(c)
                .target_type(TargetType::ContainerInstance)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "CreateService",
            ecs.create_service()
                .cluster(c)
                .service_name("web")
                .task_definition("app")
                .desired_count(1)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "DescribeServices",
            ecs.describe_services()
                .cluster(c)
                .services("web")
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "ListServices",
            ecs.list_services().cluster(c).send().await,
            name,
        );
        cluster_not_found(
            "UpdateService",
            ecs.update_service()
                .cluster(c)
                .service("web")
                .desired_count(2)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "DeleteService",
            ecs.delete_service()
                .cluster(c)
                .service("web")
                .force(true)
                .send()
                .await,
            name,
        );
        cluster_not_found(
            "DeleteCluster",
            ecs.delete_cluster().cluster(c).send().await,
            name,
        );
        cluster_not_found(
            "UpdateClusterSettings",
            ecs.update_cluster_settings()
                .cluster(c)
                .settings(
                    ClusterSetting::builder()
                        .name(ClusterSettingName::ContainerInsights)
                        .value("enabled")
                        .build(),
                )
                .send()
                .await,
            name,
        );
    }
    // ListTagsForResource of a resource in a cluster that does not exist.
    cluster_not_found(
        "ListTagsForResource",
        ecs.list_tags_for_resource()
            .resource_arn(format!("arn:aws:ecs:us-east-1:{ACCOUNT}:service/ghost/web"))
            .send()
            .await,
        "ghost",
    );
    // DescribeClusters is the exception: unknown clusters are MISSING failures.
    let d = ecs
        .describe_clusters()
        .clusters("ghost")
        .send()
        .await
        .unwrap();
    assert!(d.clusters().is_empty());
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
}

// ---------------------------------------------------------------------------------------------
// 3. Tags in cluster and task shapes
// ---------------------------------------------------------------------------------------------

/// ECS answers CreateCluster with the cluster's tags (`[]` when it has none), and
/// DescribeClusters and DescribeTasks with `tags: []` unless `include: ["TAGS"]` asked for them
/// (the AWS CLI's own examples show exactly this, e.g. `aws ecs create-cluster --cluster-name
/// MyCluster` answering `"statistics": [], "tags": []`).
#[tokio::test]
async fn tags_appear_in_cluster_and_task_shapes_as_ecs_shows_them() {
    let berth = Berth::start();
    let ecs = berth.client();
    let json = |r: common::RawResponse| -> Value {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    };

    let plain = json(
        ecs_op(
            &berth.endpoint,
            "CreateCluster",
            r#"{"clusterName":"plain"}"#,
        )
        .await,
    );
    assert_eq!(plain["cluster"]["tags"], json!([]), "{plain}");
    let tagged = ecs
        .create_cluster()
        .cluster_name("tagged")
        .tags(tag("team", "core"))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.cluster().unwrap().tags(), &[tag("team", "core")]);

    // Described without include: no tags, even for a tagged cluster; with TAGS: its tags.
    let d = json(
        ecs_op(
            &berth.endpoint,
            "DescribeClusters",
            r#"{"clusters":["plain","tagged"]}"#,
        )
        .await,
    );
    for c in d["clusters"].as_array().unwrap() {
        assert_eq!(c["tags"], json!([]), "{c}");
    }
    let d = ecs
        .describe_clusters()
        .clusters("tagged")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].tags(), &[tag("team", "core")]);

    // Tasks: TagResource answers `{}`; DescribeTasks shows the tags only when asked.
    ecs.register_container_instance()
        .cluster("tagged")
        .total_resources(int_resource("CPU", 1024))
        .total_resources(int_resource("MEMORY", 1024))
        .send()
        .await
        .unwrap();
    register_family(&ecs, "app").await;
    let run = ecs
        .run_task()
        .cluster("tagged")
        .task_definition("app")
        .send()
        .await
        .unwrap();
    let task = run.tasks()[0].task_arn().unwrap().to_owned();
    let body = json!({"resourceArn": task, "tags": [{"key": "job", "value": "nightly"}]});
    let tagged = json(ecs_op(&berth.endpoint, "TagResource", &body.to_string()).await);
    assert_eq!(tagged, json!({}));
    let body = json!({"cluster": "tagged", "tasks": [task]}).to_string();
    let d = json(ecs_op(&berth.endpoint, "DescribeTasks", &body).await);
    assert_eq!(d["tasks"][0]["tags"], json!([]), "{d}");
    let d = ecs
        .describe_tasks()
        .cluster("tagged")
        .tasks(&task)
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.tasks()[0].tags(), &[tag("job", "nightly")]);
}

// ---------------------------------------------------------------------------------------------
// 4. DeleteCluster answers with the cluster
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_an_empty_cluster_answers_with_it_inactive() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("empty")
        .send()
        .await
        .unwrap();
    let out = ecs.delete_cluster().cluster("empty").send().await.unwrap();
    let c = out
        .cluster()
        .expect("DeleteCluster answers with the cluster");
    assert_eq!(c.cluster_name(), Some("empty"));
    assert_eq!(
        c.cluster_arn(),
        Some(format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/empty").as_str())
    );
    assert_eq!(c.status(), Some("INACTIVE"));
}

// ---------------------------------------------------------------------------------------------
// 5. DescribeServices failures name the service ARN ECS builds
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn describe_services_reports_missing_services_by_their_arn() {
    let berth = Berth::start();
    // Another region, so the ARN is built from the caller's region, not a default.
    let ecs = common::client(&berth.endpoint, "eu-west-1");
    ecs.create_cluster()
        .cluster_name("shop")
        .send()
        .await
        .unwrap();
    let d = ecs
        .describe_services()
        .cluster("shop")
        .services("cart")
        .services(format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:service/shop/till"))
        .send()
        .await
        .unwrap();
    assert!(d.services().is_empty());
    let failures: Vec<(&str, &str)> = d
        .failures()
        .iter()
        .map(|f: &Failure| (f.arn().unwrap_or_default(), f.reason().unwrap_or_default()))
        .collect();
    assert_eq!(
        failures,
        vec![
            (
                format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:service/shop/cart").as_str(),
                "MISSING"
            ),
            (
                format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:service/shop/till").as_str(),
                "MISSING"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A force-deleted service with nothing running ends INACTIVE
// ---------------------------------------------------------------------------------------------

async fn service_status(ecs: &Client, cluster: &str, service: &str) -> String {
    let d = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap();
    d.services()[0].status().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_force_deleted_service_without_tasks_ends_inactive() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("svc")
        .send()
        .await
        .unwrap();
    register_family(&ecs, "app").await;
    // No container instances: the service wants two tasks and has none.
    ecs.create_service()
        .cluster("svc")
        .service_name("web")
        .task_definition("app")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let deleted = ecs
        .delete_service()
        .cluster("svc")
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap();
    let s = deleted.service().unwrap();
    assert!(
        matches!(s.status(), Some("DRAINING" | "INACTIVE")),
        "{:?}",
        s.status()
    );
    assert_eq!(s.desired_count(), 0);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = service_status(&ecs, "svc", "web").await;
        if status == "INACTIVE" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service is still {status} 15 s after DeleteService, with nothing to drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Gone from ListServices, and the cluster can be deleted.
    let listed = ecs.list_services().cluster("svc").send().await.unwrap();
    assert!(listed.service_arns().is_empty(), "{listed:?}");
    let c = ecs.delete_cluster().cluster("svc").send().await.unwrap();
    assert_eq!(c.cluster().unwrap().status(), Some("INACTIVE"));
}

// ---------------------------------------------------------------------------------------------
// 7. ListTagsForResource of a missing service
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_tags_for_a_missing_service_is_service_not_found() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster()
        .cluster_name("shop")
        .send()
        .await
        .unwrap();
    let message = expect_error(
        ecs.list_tags_for_resource()
            .resource_arn(format!("arn:aws:ecs:us-east-1:{ACCOUNT}:service/shop/cart"))
            .send()
            .await,
        "ServiceNotFoundException",
    );
    assert!(message.contains("cart"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// 8. Validation outcomes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn validation_outcomes_follow_ecs() {
    let berth = Berth::start();
    let ecs = berth.client();
    ecs.create_cluster().cluster_name("v").send().await.unwrap();

    // A container definition without a name or an image is the caller's mistake, whatever
    // else the definition asks for.
    for (name, image) in [(None, Some("busybox")), (Some("app"), None)] {
        for compatibility in [None, Some(Compatibility::Fargate)] {
            let req = ecs
                .register_task_definition()
                .family("broken")
                .container_definitions(container(name, image))
                .set_requires_compatibilities(compatibility.map(|c| vec![c]));
            let message = expect_error(req.send().await, "ClientException");
            let missing = if name.is_none() { "name" } else { "image" };
            assert!(message.contains(missing), "{message}");
        }
    }

    // A launch type that is not one: the message lists the valid ones.
    register_family(&ecs, "app").await;
    let message = expect_error(
        ecs.run_task()
            .cluster("v")
            .task_definition("app")
            .launch_type(LaunchType::from("SPACESHIP"))
            .send()
            .await,
        "InvalidParameterException",
    );
    for valid in ["EC2", "FARGATE", "EXTERNAL"] {
        assert!(message.contains(valid), "{message}");
    }

    // DeregisterTaskDefinition needs a revision, and says so.
    let message = expect_error(
        ecs.deregister_task_definition()
            .task_definition("app")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert!(
        message.to_lowercase().contains("revision is missing"),
        "{message}"
    );

    // DeleteTaskDefinitions: an ACTIVE, a malformed and a non-existent revision each fail on
    // their own, with their own reason, in the order given.
    let out = ecs
        .delete_task_definitions()
        .task_definitions("app:1")
        .task_definitions("app:one")
        .task_definitions("app:99")
        .send()
        .await
        .expect("one failure per revision, not an error for the whole call");
    assert!(out.task_definitions().is_empty(), "{out:?}");
    let failures = out.failures();
    assert_eq!(failures.len(), 3, "{failures:?}");
    let td = |r: &str| format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{r}");
    assert_eq!(failures[0].arn(), Some(td("app:1").as_str()));
    assert_eq!(failures[1].arn(), Some("app:one"));
    assert_eq!(failures[2].arn(), Some(td("app:99").as_str()));
    let reasons: Vec<&str> = failures
        .iter()
        .map(|f| f.reason().unwrap_or_default())
        .collect();
    assert!(reasons[0].contains("ACTIVE"), "{reasons:?}");
    assert!(reasons[1].contains("identifier is invalid"), "{reasons:?}");
    assert!(reasons[2].contains("does not exist"), "{reasons:?}");
}
