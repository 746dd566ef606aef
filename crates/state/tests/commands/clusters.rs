//! CreateCluster, DeleteCluster, UpdateCluster.

use berth_model::Error;
use berth_model::command::{Command, CreateCluster, UpdateCluster};
use berth_model::entity::{ClusterStatus, TaskStatus};
use berth_state::EntityKey;

use crate::common::*;

#[test]
fn create_fills_container_insights_and_stamps_version() {
    let mut w = World::default();
    let c = w.ok(create_cluster_tagged("prod", vec![tag("team", "a")]));
    assert_eq!(c.status, ClusterStatus::Active);
    assert_eq!(c.version, w.index);
    assert_eq!(c.created_at, w.now);
    assert_eq!(c.tags, vec![tag("team", "a")]);
    assert_eq!(c.settings, vec![setting("containerInsights", "disabled")]);
    assert_eq!(w.state.cluster("prod"), Some(&c));
}

#[test]
fn create_keeps_a_given_container_insights_setting() {
    let mut w = World::default();
    let c = w.ok(CreateCluster {
        name: "prod".into(),
        settings: vec![setting("containerInsights", "enabled")],
        configuration: None,
        service_connect_defaults: None,
        tags: Vec::new(),
        capacity_providers: Vec::new(),
        default_strategy: Vec::new(),
    });
    assert_eq!(c.settings, vec![setting("containerInsights", "enabled")]);
}

#[test]
fn create_is_idempotent_for_an_active_cluster() {
    let mut w = World::default();
    let first = w.ok(create_cluster_tagged("prod", vec![tag("a", "1")]));
    let before = w.state.persist();
    let again = w.ok(create_cluster_tagged("prod", vec![tag("b", "2")]));
    assert_eq!(again, first, "the existing cluster, unchanged");
    let mut after = w.state.persist();
    after.index = before.index;
    assert_eq!(after, before, "nothing written");
    assert_eq!(
        w.state
            .history(&EntityKey::Cluster("prod".into()))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn delete_then_create_again_starts_afresh() {
    let mut w = World::default();
    w.ok(create_cluster_tagged("prod", vec![tag("a", "1")]));
    let deleted = w.ok(delete_cluster("prod"));
    assert_eq!(deleted.status, ClusterStatus::Inactive);
    assert_eq!(deleted.tags, vec![tag("a", "1")]);
    assert_eq!(
        w.state.cluster("prod").unwrap().status,
        ClusterStatus::Inactive
    );

    let created = w.ok(create_cluster("prod"));
    assert_eq!(created.status, ClusterStatus::Active);
    assert_eq!(created.created_at, w.now);
    assert!(created.tags.is_empty());
    let history = w.state.history(&EntityKey::Cluster("prod".into())).unwrap();
    let statuses: Vec<_> = history
        .iter()
        .map(|v| match &v.value {
            Some(berth_state::Entity::Cluster(c)) => c.status,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ClusterStatus::Active,
            ClusterStatus::Inactive,
            ClusterStatus::Active
        ]
    );
}

#[test]
fn delete_refuses_missing_and_inactive_clusters() {
    let mut w = World::default();
    assert_eq!(
        w.refused(delete_cluster("nope")),
        Error::ClusterNotFound("nope".into())
    );
    w.ok(create_cluster("prod"));
    w.ok(delete_cluster("prod"));
    assert_eq!(
        w.refused(delete_cluster("prod")),
        Error::ClusterInactive("prod".into())
    );
}

#[test]
fn delete_refuses_while_instances_are_registered_even_draining() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    assert_eq!(
        w.refused(delete_cluster("prod")),
        Error::ClusterContainsInstances
    );
    w.ok(set_instances_state(
        "prod",
        &[1],
        berth_model::entity::InstanceStatus::Draining,
    ));
    assert_eq!(
        w.refused(delete_cluster("prod")),
        Error::ClusterContainsInstances
    );
    w.ok(deregister_instance("prod", 1, false));
    w.ok(delete_cluster("prod"));
}

#[test]
fn delete_refuses_while_tasks_are_live_in_any_phase() {
    for status in [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Deactivating,
        TaskStatus::Deprovisioning,
    ] {
        let mut w = World::with_cluster("prod");
        w.ok(instance("prod", 1).build());
        w.place(place("prod", vec![task("prod", 10, 1)]));
        w.ok(report("prod", 10, Some(status)).build());
        // Tasks are reported before instances: they have to be stopped first.
        assert_eq!(
            w.refused(delete_cluster("prod")),
            Error::ClusterContainsTasks,
            "a {status} task on a registered instance"
        );
        // A live task whose instance is gone (no command does this today) still blocks.
        w.edit_snapshot(|s| s["instances"][0]["status"] = "INACTIVE".into());
        assert_eq!(w.state.counts("prod").registered_instances, 0);
        assert_eq!(
            w.refused(delete_cluster("prod")),
            Error::ClusterContainsTasks,
            "a {status} task"
        );
    }
}

#[test]
fn delete_after_tasks_stopped_and_instances_deregistered() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    w.ok(deregister_instance("prod", 1, false));
    let c = w.ok(delete_cluster("prod"));
    assert_eq!(c.status, ClusterStatus::Inactive);
}

#[test]
fn commands_on_an_inactive_cluster_are_refused() {
    let mut w = World::with_cluster("prod");
    w.ok(delete_cluster("prod"));
    let commands: [Command; 9] = [
        update_cluster("prod", Some(vec![setting("containerInsights", "enabled")])).into(),
        instance("prod", 1).build().into(),
        deregister_instance("prod", 1, true).into(),
        set_instances_state("prod", &[1], berth_model::entity::InstanceStatus::Draining).into(),
        put_attributes("prod", vec![attribute(1, "a", None)]).into(),
        delete_attributes("prod", vec![attribute(1, "a", None)]).into(),
        place("prod", vec![task("prod", 10, 1)]).into(),
        stop_task("prod", 10).into(),
        report("prod", 10, Some(TaskStatus::Running)).build().into(),
    ];
    for command in commands {
        assert_eq!(w.refused(command), Error::ClusterInactive("prod".into()));
    }
}

#[test]
fn update_merges_settings_and_replaces_given_parts() {
    let mut w = World::with_cluster("prod");
    let c = w.ok(update_cluster(
        "prod",
        Some(vec![
            setting("containerInsights", "enabled"),
            setting("other", "x"),
        ]),
    ));
    assert_eq!(
        c.settings,
        vec![
            setting("containerInsights", "enabled"),
            setting("other", "x")
        ]
    );
    assert_eq!(c.version, w.index);
    let c = w.ok(UpdateCluster {
        name: "prod".into(),
        settings: None,
        configuration: Some(Default::default()),
        service_connect_defaults: None,
    });
    assert_eq!(c.settings.len(), 2, "settings left as they were");
    assert_eq!(c.configuration, Some(Default::default()));
    assert_eq!(
        w.refused(update_cluster("nope", None)),
        Error::ClusterNotFound("nope".into())
    );
}
