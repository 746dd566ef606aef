//! Service discovery: namespaces and discovery services are created once (a retry with the
//! same request id answers with the first) and deleted only when nothing depends on them; a
//! discovery service's instances are the RUNNING, still-wanted tasks of the ECS services that
//! register in it, on ACTIVE instances, healthy unless their health says otherwise — read
//! from the tasks, so every change to a task or its instance moves them at once.

use std::sync::Arc;

use berth_api::types as api;
use berth_model::command::*;
use berth_model::discovery::*;
use berth_model::entity::*;
use berth_model::{Error, TaskId};

use crate::common::*;
use crate::services::service;

fn namespace(id: &str, name: &str, request: Option<&str>) -> CreateNamespace {
    CreateNamespace {
        namespace: Namespace {
            id: id.into(),
            name: name.into(),
            kind: NamespaceType::DnsPrivate,
            description: None,
            creator_request_id: request.map(str::to_owned),
            tags: Vec::new(),
            created_at: EPOCH,
            version: 0,
        },
    }
}

fn discovery_service(id: &str, namespace: &str, name: &str) -> CreateDiscoveryService {
    CreateDiscoveryService {
        service: DiscoveryService {
            id: id.into(),
            name: name.into(),
            namespace_id: namespace.into(),
            description: None,
            dns: Some(DnsConfig {
                routing_policy: RoutingPolicy::Multivalue,
                records: vec![DnsRecord {
                    kind: RecordType::Srv,
                    ttl: 5,
                }],
            }),
            creator_request_id: None,
            tags: Vec::new(),
            created_at: EPOCH,
            version: 0,
        },
    }
}

/// Cluster `prod` with instances 1 and 2, namespace `prod.berth` with discovery service
/// `web`, and ECS service `web` registering its `app` container's port 80 there.
fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.ok(namespace("ns-prod", "prod.berth", None));
    w.ok(discovery_service("srv-web", "ns-prod", "web"));
    let mut ecs = service("prod", "web");
    ecs.service_registries = vec![ServiceRegistry {
        registry_id: "srv-web".into(),
        container_name: Some("app".into()),
        container_port: Some(80),
        port: None,
    }];
    w.ok(CreateService {
        service: Arc::new(ecs),
    });
    w
}

fn running(w: &mut World, id: u128, host_port: i32) {
    w.ok(report("prod", id, Some(TaskStatus::Running))
        .container(ContainerChange {
            name: "app".into(),
            status: Some(TaskStatus::Running),
            network_bindings: Some(vec![api::NetworkBinding {
                container_port: Some(80),
                host_port: Some(host_port),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .build());
}

/// (task id, host port, healthy) of each instance of `srv-web`.
fn instances(w: &World) -> Vec<(TaskId, Option<u16>, bool)> {
    let service = w.state.discovery_service("srv-web").unwrap();
    w.state
        .discovery_instances(service)
        .into_iter()
        .map(|i| (i.id.parse().unwrap(), i.port, i.healthy))
        .collect()
}

#[test]
fn the_instances_are_the_services_running_wanted_tasks_on_active_instances() {
    let mut w = world();
    w.place(place(
        "prod",
        vec![
            task("prod", 10, 1).group("service:web"),
            task("prod", 11, 2).group("service:web"),
            task("prod", 12, 1).group("service:web"),
            task("prod", 13, 1).group("service:other"),
        ],
    ));
    assert!(instances(&w).is_empty(), "nothing runs yet");
    running(&mut w, 10, 31010);
    running(&mut w, 11, 31011);
    running(&mut w, 13, 31013);
    assert_eq!(
        instances(&w),
        [
            (TaskId(10), Some(31010), true),
            (TaskId(11), Some(31011), true)
        ],
        "PENDING 12 and another service's 13 are not instances"
    );

    // Unhealthy: still an instance, not healthy.
    w.ok(report("prod", 11, None)
        .container(ContainerChange {
            name: "app".into(),
            health_status: Some(HealthStatus::Unhealthy),
            ..Default::default()
        })
        .build());
    assert_eq!(instances(&w)[1], (TaskId(11), Some(31011), false));

    // Being stopped: gone at the StopTask, before the agent stops it.
    w.ok(stop_task("prod", 10));
    assert_eq!(instances(&w).len(), 1);
    assert_eq!(instances(&w)[0].0, TaskId(11));

    // On a DRAINING instance: gone.
    w.ok(set_instances_state("prod", &[2], InstanceStatus::Draining));
    assert!(instances(&w).is_empty());
}

#[test]
fn a_task_with_a_health_check_is_healthy_only_once_it_says_so() {
    let mut w = world();
    let mut checked = register_task_definition("web");
    let mut spec = (*checked.spec).clone();
    spec.container_definitions.as_mut().unwrap()[0].health_check = Some(api::HealthCheck {
        command: Some(vec!["CMD-SHELL".into(), "true".into()]),
        ..Default::default()
    });
    checked.spec = Arc::new(spec);
    w.ok(checked);
    let (placed, rejected) = w.place(place(
        "prod",
        vec![task("prod", 20, 1).family("web", 2).group("service:web")],
    ));
    assert_eq!((placed.len(), rejected.len()), (1, 0), "{rejected:?}");
    running(&mut w, 20, 31020);
    assert_eq!(instances(&w), [(TaskId(20), Some(31020), false)], "UNKNOWN");
    w.ok(report("prod", 20, None)
        .container(ContainerChange {
            name: "app".into(),
            health_status: Some(HealthStatus::Healthy),
            ..Default::default()
        })
        .build());
    assert_eq!(instances(&w), [(TaskId(20), Some(31020), true)]);
}

#[test]
fn names_are_taken_once_and_retries_answer_with_the_first() {
    let mut w = world();
    let first = w.ok(namespace("ns-a", "a.berth", Some("req-1")));
    let retry = w.ok(namespace("ns-b", "a.berth", Some("req-1")));
    assert_eq!(
        retry.id, first.id,
        "the same request id answers with the first"
    );
    assert!(matches!(
        w.refused(namespace("ns-c", "a.berth", Some("req-2"))),
        Error::Conflict(_)
    ));
    assert!(matches!(
        w.refused(discovery_service("srv-other", "ns-prod", "web")),
        Error::Conflict(_)
    ));
    assert!(matches!(
        w.refused(discovery_service("srv-x", "ns-missing", "x")),
        Error::ResourceNotFound(_)
    ));
}

#[test]
fn deletions_wait_for_what_depends_on_them() {
    let mut w = world();
    assert!(matches!(
        w.refused(DeleteNamespace {
            id: "ns-prod".into()
        }),
        Error::ResourceInUse(_)
    ));
    assert!(matches!(
        w.refused(DeleteDiscoveryService {
            id: "srv-web".into()
        }),
        Error::ResourceInUse(_)
    ));
    // Once the ECS service is INACTIVE, both go.
    let mut gone = (**w.state.service("prod", "web").unwrap()).clone();
    gone.status = berth_model::service::ServiceStatus::Inactive;
    w.ok(PutService {
        service: Arc::new(gone),
        expected_version: w.state.service("prod", "web").unwrap().version,
    });
    w.ok(DeleteDiscoveryService {
        id: "srv-web".into(),
    });
    w.ok(DeleteNamespace {
        id: "ns-prod".into(),
    });
    assert!(w.state.namespaces().next().is_none());
    assert!(matches!(
        w.refused(DeleteNamespace {
            id: "ns-prod".into()
        }),
        Error::ResourceNotFound(_)
    ));
}

#[test]
fn namespaces_and_services_survive_a_snapshot() {
    let w = world();
    let restored = berth_state::State::restore(w.state.persist(), Default::default());
    assert_eq!(restored.namespace("ns-prod"), w.state.namespace("ns-prod"));
    assert_eq!(
        restored.discovery_service("srv-web"),
        w.state.discovery_service("srv-web")
    );
}
