//! CreateService and PutService: a service is stored whole, its writes are refused when
//! decided on a stale version, names are reusable once INACTIVE, the cluster's service count
//! follows, DeleteCluster is refused while services are live, tags work on services, and
//! INACTIVE services expire.

use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::command::{CreateService, PutService, TagResource, UntagResource};
use berth_model::service::*;
use berth_model::{Error, Millis};
use berth_state::EntityKey;

use crate::common::*;

pub(crate) fn service(cluster: &str, name: &str) -> Service {
    Service {
        cluster: cluster.into(),
        name: name.into(),
        status: ServiceStatus::Active,
        scheduling_strategy: SchedulingStrategy::Replica,
        desired_count: 2,
        deployment_configuration: DeploymentConfig::default_for(SchedulingStrategy::Replica),
        placement_constraints: Vec::new(),
        placement_strategy: Vec::new(),
        health_check_grace_period_seconds: None,
        deployments: vec![Deployment {
            id: "ecs-svc/1000000000000000001".into(),
            status: DeploymentStatus::Primary,
            family: "web".into(),
            revision: 1,
            desired_count: 2,
            rollout_state: RolloutState::InProgress,
            rollout_state_reason: None,
            failed_tasks: 0,
            rollback_of: None,
            created_at: Millis(0),
            updated_at: Millis(0),
            rolled_back_by: None,
            sources: Vec::new(),
            capacity_provider_strategy: Vec::new(),
            finished_at: None,
        }],
        events: Vec::new(),
        steady: false,
        enable_ecs_managed_tags: false,
        propagate_tags: None,
        enable_execute_command: false,
        tags: Vec::new(),
        created_at: Millis(0),
        deleted_at: None,
        request_digest: 7,
        version: 0,
        created_by: None,
        capacity_provider_strategy: Vec::new(),
        deployment_controller: DeploymentControllerType::Ecs,
        task_sets: Vec::new(),
        past_deployments: Vec::new(),
        service_registries: Vec::new(),
    }
}

/// An EXTERNAL service: no deployments; task sets come later.
fn external(cluster: &str, name: &str) -> Service {
    let mut s = service(cluster, name);
    s.deployments.clear();
    s.deployment_controller = DeploymentControllerType::External;
    s
}

fn task_set(id: u64, revision: u32) -> TaskSet {
    TaskSet {
        id: format!("ecs-svc/{}", 2_000_000_000_000_000_000u64 + id),
        status: TaskSetStatus::Active,
        family: "web".into(),
        revision,
        external_id: None,
        scale: 100.0,
        capacity_provider_strategy: Vec::new(),
        stability_status: StabilityStatus::Stabilizing,
        stability_status_at: Millis(0),
        tags: Vec::new(),
        client_token: None,
        created_at: Millis(0),
        updated_at: Millis(0),
    }
}

fn create(s: Service) -> CreateService {
    CreateService {
        service: Arc::new(s),
    }
}

fn put(s: Service, expected_version: u64) -> PutService {
    PutService {
        service: Arc::new(s),
        expected_version,
    }
}

#[test]
fn a_service_is_created_counted_and_listed() {
    let mut w = World::with_cluster("prod");
    let s = w.ok(create(service("prod", "web")));
    assert_eq!(s.version, w.state.index());
    assert_eq!(w.state.counts("prod").active_services, 1);
    assert_eq!(w.state.service("prod", "web"), Some(&s));
    assert_eq!(w.state.live_services().count(), 1);
    assert!(
        w.state
            .history(&EntityKey::Service("prod".into(), "web".into()))
            .is_some()
    );
    // Another of the same name is refused while this one lives.
    let e = w.refused(create(service("prod", "web")));
    assert_eq!(e, Error::invalid("Creation of service was not idempotent."));
    // DeleteCluster waits for services.
    assert_eq!(
        w.refused(delete_cluster("prod")),
        Error::ClusterContainsServices
    );
}

#[test]
fn creating_needs_an_active_cluster_and_existing_revisions() {
    let mut w = World::with_cluster("prod");
    assert_eq!(
        w.refused(create(service("nope", "web"))),
        Error::ClusterNotFound("nope".into())
    );
    let mut s = service("prod", "web");
    s.deployments[0].revision = 9;
    assert!(matches!(w.refused(create(s)), Error::InvalidParameter(m) if m.contains("web:9")));
    let mut s = service("prod", "web");
    s.deployments.clear();
    assert!(matches!(w.refused(create(s)), Error::InvalidParameter(_)));
}

#[test]
fn an_external_service_holds_task_sets_of_existing_revisions_at_most_five() {
    let mut w = World::with_cluster("prod");
    // Created with no deployment and no task set; one with deployments is refused.
    let mut wrong = external("prod", "web");
    wrong.deployments = service("prod", "web").deployments;
    assert!(matches!(
        w.refused(create(wrong)),
        Error::InvalidParameter(_)
    ));
    let v1 = w.ok(create(external("prod", "web")));
    assert_eq!(v1.deployment_controller, DeploymentControllerType::External);

    // A task set of a revision that does not exist is refused.
    let mut next = (*v1).clone();
    next.task_sets.push(task_set(1, 9));
    assert!(
        matches!(w.refused(put(next, v1.version)), Error::InvalidParameter(m) if m.contains("web:9"))
    );
    // Five are fine, a sixth is not, unless one of them is being deleted.
    let mut next = (*v1).clone();
    next.task_sets = (1..=5).map(|i| task_set(i, 1)).collect();
    let v2 = w.ok(put(next, v1.version));
    let mut sixth = (*v2).clone();
    sixth.task_sets.push(task_set(6, 1));
    assert!(matches!(
        w.refused(put(sixth.clone(), v2.version)),
        Error::InvalidParameter(_)
    ));
    sixth.task_sets[0].status = TaskSetStatus::Draining;
    let v3 = w.ok(put(sixth, v2.version));
    assert_eq!(v3.task_sets.len(), 6);

    // The controller is fixed at creation.
    let mut switched = (*v3).clone();
    switched.deployment_controller = DeploymentControllerType::Ecs;
    assert!(matches!(
        w.refused(put(switched, v3.version)),
        Error::InvalidParameter(m) if m.contains("cannot be changed")
    ));
    // And an ECS service cannot be created with task sets.
    let mut odd = service("prod", "api");
    odd.task_sets.push(task_set(7, 1));
    assert!(matches!(w.refused(create(odd)), Error::InvalidParameter(_)));
}

#[test]
fn a_write_decided_on_a_stale_version_is_refused() {
    let mut w = World::with_cluster("prod");
    let v1 = w.ok(create(service("prod", "web")));
    let mut a = (*v1).clone();
    a.desired_count = 5;
    let v2 = w.ok(put(a, v1.version));
    assert_eq!(v2.desired_count, 5);
    assert!(v2.version > v1.version);
    // A second writer that read v1 loses.
    let mut b = (*v1).clone();
    b.desired_count = 1;
    assert!(matches!(
        w.refused(put(b.clone(), v1.version)),
        Error::Conflict(_)
    ));
    assert_eq!(w.state.service("prod", "web").unwrap().desired_count, 5);
    // Unknown services.
    let mut c = b;
    c.name = "other".into();
    assert_eq!(w.refused(put(c, 0)), Error::ServiceNotFound);
}

#[test]
fn an_inactive_service_frees_its_name_and_expires() {
    let mut w = World::with_cluster("prod");
    let v1 = w.ok(create(service("prod", "web")));
    let mut gone = (*v1).clone();
    gone.status = ServiceStatus::Inactive;
    gone.deleted_at = Some(w.now);
    let v2 = w.ok(put(gone.clone(), v1.version));
    assert_eq!(w.state.counts("prod").active_services, 0);
    assert_eq!(w.state.live_services().count(), 0);
    // An INACTIVE service cannot be changed, but its name can be used again.
    assert_eq!(w.refused(put(gone, v2.version)), Error::ServiceNotActive);
    let again = w.ok(create(service("prod", "web")));
    assert_eq!(again.status, ServiceStatus::Active);
    assert_eq!(w.state.counts("prod").active_services, 1);

    // Expire forgets INACTIVE services deleted before the cut-off, and only those.
    let mut w = World::with_cluster("prod");
    let v1 = w.ok(create(service("prod", "old")));
    w.ok(create(service("prod", "live")));
    let mut gone = (*v1).clone();
    gone.status = ServiceStatus::Inactive;
    let deleted = w.now;
    gone.deleted_at = Some(deleted);
    w.ok(put(gone, v1.version));
    w.ok(expire(Millis(0), deleted));
    assert!(
        w.state.service("prod", "old").is_some(),
        "the cut-off is exclusive"
    );
    w.ok(expire(Millis(0), Millis(deleted.0 + 1)));
    assert!(w.state.service("prod", "old").is_none());
    assert!(
        w.state
            .history(&EntityKey::Service("prod".into(), "old".into()))
            .is_none()
    );
    assert!(w.state.service("prod", "live").is_some());
}

#[test]
fn services_carry_tags_and_survive_a_snapshot() {
    let mut w = World::with_cluster("prod");
    w.ok(create(service("prod", "web")));
    let arn = ResourceArn::Service("prod".into(), "web".into());
    w.ok(TagResource {
        resource: arn.clone(),
        tags: vec![tag("team", "a")],
    });
    assert_eq!(
        w.state.service("prod", "web").unwrap().tags,
        vec![tag("team", "a")]
    );
    w.ok(UntagResource {
        resource: arn,
        keys: vec!["team".into()],
    });
    assert!(w.state.service("prod", "web").unwrap().tags.is_empty());
    let restored = berth_state::State::restore(w.state.persist(), w.state.config().clone());
    assert_eq!(
        restored.service("prod", "web"),
        w.state.service("prod", "web")
    );
    assert_eq!(restored.counts("prod").active_services, 1);
}
