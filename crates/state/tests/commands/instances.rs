//! RegisterContainerInstance (new and re-registration), DeregisterContainerInstance and
//! UpdateContainerInstancesState.

use berth_model::Error;
use berth_model::command::Partial;
use berth_model::entity::{DesiredStatus, InstanceStatus, TaskStatus};
use berth_model::{InstanceId, TaskId};

use crate::common::*;

#[test]
fn register_stores_an_active_connected_instance() {
    let mut w = World::with_cluster("prod");
    let i = w.ok(instance("prod", 1)
        .agent_version("1.80.0")
        .attribute("team", Some("a"))
        .tags(vec![tag("k", "v")])
        .build());
    assert_eq!(i.id, InstanceId(1));
    assert_eq!(&*i.cluster, "prod");
    assert_eq!(i.status, InstanceStatus::Active);
    assert!(i.agent_connected);
    assert_eq!(i.registered_at, w.now);
    assert_eq!(i.deregistered_at, None);
    assert_eq!(i.version, w.index);
    assert_eq!(i.attribute("team"), Some("a"));
    assert_eq!(i.attribute("ecs.os-type"), Some("linux"));
    assert_eq!(i.tags, vec![tag("k", "v")]);
    assert_eq!(w.state.counts("prod").registered_instances, 1);
    assert_eq!(w.state.usage(i.id), None, "nothing placed yet");
}

#[test]
fn register_refuses_an_id_in_use() {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    w.ok(instance("prod", 1).build());
    assert!(matches!(
        w.refused(instance("prod", 1).build()),
        Error::Client(_)
    ));
    // Ids are global: the same id in another cluster would make two instances of one key.
    assert!(matches!(
        w.refused(instance("test", 1).build()),
        Error::Client(_)
    ));
    w.ok(deregister_instance("prod", 1, false));
    assert!(matches!(
        w.refused(instance("prod", 1).build()),
        Error::Client(_)
    ));
    assert!(matches!(
        w.refused(instance("test", 1).build()),
        Error::Client(_)
    ));
}

#[test]
fn register_refuses_unknown_clusters() {
    let mut w = World::default();
    assert_eq!(
        w.refused(instance("nope", 1).build()),
        Error::ClusterNotFound("nope".into())
    );
}

#[test]
fn reregister_keeps_custom_attributes_and_replaces_builtin_ones() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1)
        .attribute("ecs.instance-type", Some("m5.large"))
        .agent_version("1.0.0")
        .tags(vec![tag("k", "v")])
        .build());
    w.ok(put_attributes(
        "prod",
        vec![attribute(1, "team", Some("a"))],
    ));
    w.place(place("prod", vec![task("prod", 10, 1)]));
    w.ok(set_instances_state("prod", &[1], InstanceStatus::Draining));
    let registered_at = w.instance(1).registered_at;

    let i = w.ok(instance("prod", 1)
        .no_attributes()
        .attribute("ecs.os-type", Some("linux"))
        .attribute("ecs.availability-zone", Some("eu-west-1b"))
        .cpu(2048)
        .memory(4096)
        .reregister()
        .build());
    assert_eq!(i.attribute("team"), Some("a"), "custom attribute kept");
    assert_eq!(i.attribute("ecs.availability-zone"), Some("eu-west-1b"));
    assert!(
        !i.attributes.contains_key("ecs.instance-type"),
        "built-in attributes are the agent's latest word"
    );
    assert_eq!((i.resources.cpu, i.resources.memory), (2048, 4096));
    assert_eq!(i.status, InstanceStatus::Draining, "status survives");
    assert_eq!(i.registered_at, registered_at);
    assert_eq!(
        i.version_info.as_ref().unwrap().agent_version.as_deref(),
        Some("1.0.0"),
        "kept when not re-sent"
    );
    assert_eq!(i.tags, vec![tag("k", "v")], "kept when none given");
    assert_eq!(w.state.tasks_on(i.id).count(), 1, "tasks kept");
    assert_eq!(w.state.usage(i.id).unwrap().cpu, 128);
    assert_eq!(w.state.counts("prod").registered_instances, 1);

    let i = w.ok(instance("prod", 1)
        .attribute("team", Some("b"))
        .agent_version("2.0.0")
        .tags(vec![tag("x", "y")])
        .reregister()
        .build());
    assert_eq!(
        i.attribute("team"),
        Some("b"),
        "a re-sent custom attribute wins"
    );
    assert_eq!(
        i.version_info.as_ref().unwrap().agent_version.as_deref(),
        Some("2.0.0")
    );
    assert_eq!(i.tags, vec![tag("x", "y")]);
}

#[test]
fn reregister_refuses_unknown_foreign_and_deregistered_instances() {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    assert!(matches!(
        w.refused(instance("prod", 1).reregister().build()),
        Error::InvalidParameter(_)
    ));
    w.ok(instance("prod", 1).build());
    assert!(matches!(
        w.refused(instance("test", 1).reregister().build()),
        Error::InvalidParameter(_)
    ));
    w.ok(deregister_instance("prod", 1, false));
    assert!(matches!(
        w.refused(instance("prod", 1).reregister().build()),
        Error::Client(_)
    ));
}

fn with_custom(mut b: InstanceBuilder, n: usize) -> InstanceBuilder {
    for k in 0..n {
        b = b.attribute(&format!("custom{k}"), Some("x"));
    }
    b
}

#[test]
fn at_most_ten_custom_attributes_at_registration() {
    let mut w = World::with_cluster("prod");
    assert!(matches!(
        w.refused(with_custom(instance("prod", 1), 11).build()),
        Error::AttributeLimitExceeded(_)
    ));
    let i = w.ok(with_custom(instance("prod", 1), 10)
        .attribute("ecs.ami-id", Some("ami-1"))
        .build());
    assert_eq!(i.attributes.len(), 13, "ecs.* attributes do not count");
}

#[test]
fn reregister_refuses_when_merged_custom_attributes_exceed_ten() {
    let mut w = World::with_cluster("prod");
    w.ok(with_custom(instance("prod", 1), 6).build());
    let extra: Vec<_> = (0..4)
        .map(|k| attribute(1, &format!("put{k}"), None))
        .collect();
    w.ok(put_attributes("prod", extra));
    // The agent re-sends its six plus one new: 6 + 4 put + 1 = 11.
    let e = w.refused(
        with_custom(instance("prod", 1), 6)
            .attribute("new", None)
            .reregister()
            .build(),
    );
    assert!(matches!(e, Error::AttributeLimitExceeded(_)));
    w.ok(with_custom(instance("prod", 1), 6).reregister().build());
}

#[test]
fn deregister_without_force_refuses_while_tasks_are_live() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place(
        "prod",
        vec![task("prod", 10, 1), task("prod", 11, 1)],
    ));
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    assert!(matches!(
        w.refused(deregister_instance("prod", 1, false)),
        Error::InvalidParameter(_)
    ));
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    w.ok(report("prod", 11, Some(TaskStatus::Stopped)).build());
    let i = w.ok(deregister_instance("prod", 1, false));
    assert_eq!(i.status, InstanceStatus::Inactive);
    assert!(!i.agent_connected);
    assert_eq!(i.deregistered_at, Some(w.now));
    assert_eq!(w.state.counts("prod").registered_instances, 0);
    assert_eq!(
        w.state.tasks_on(i.id).count(),
        2,
        "stopped tasks stay until expired"
    );
}

#[test]
fn deregister_with_force_orphans_live_tasks_and_releases_their_resources() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.place(place(
        "prod",
        vec![
            task("prod", 10, 1).tcp(&[80]).udp(&[53]),
            task("prod", 11, 1),
            task("prod", 12, 2).tcp(&[80]),
        ],
    ));
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(report("prod", 11, Some(TaskStatus::Stopped)).build());
    let stopped_11 = w.task(11);
    assert_eq!(w.state.counts("prod").running_tasks, 1);
    assert_eq!(w.state.counts("prod").pending_tasks, 1);

    let i = w.ok(deregister_instance("prod", 1, true));
    assert_eq!(i.status, InstanceStatus::Inactive);
    let t = w.task(10);
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.desired_status, DesiredStatus::Stopped);
    assert_eq!(t.stopped_at, Some(w.now));
    assert_eq!(t.stopping_at, Some(w.now));
    assert_eq!(t.execution_stopped_at, Some(w.now));
    assert_eq!(t.version, w.index);
    assert!(t.stopped_reason.as_deref().unwrap().contains("orphaned"));
    assert_eq!(w.task(11), stopped_11, "already stopped: untouched");
    assert_eq!(w.state.usage(InstanceId(1)), None, "everything released");
    assert_eq!(w.state.usage(InstanceId(2)).unwrap().tcp.len(), 1);
    let counts = w.state.counts("prod");
    assert_eq!(
        (
            counts.registered_instances,
            counts.running_tasks,
            counts.pending_tasks
        ),
        (1, 0, 1)
    );
}

#[test]
fn deregister_twice_answers_unchanged_and_unknown_is_refused() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    let first = w.ok(deregister_instance("prod", 1, false));
    let before = w.state.persist();
    assert_eq!(w.ok(deregister_instance("prod", 1, true)), first);
    let mut after = w.state.persist();
    after.index = before.index;
    assert_eq!(after, before);
    assert!(matches!(
        w.refused(deregister_instance("prod", 2, true)),
        Error::InvalidParameter(_)
    ));
    w.ok(create_cluster("test"));
    assert!(matches!(
        w.refused(deregister_instance("test", 1, true)),
        Error::InvalidParameter(_)
    ));
}

#[test]
fn draining_and_back_with_per_instance_failures() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.ok(instance("prod", 3).build());
    w.ok(deregister_instance("prod", 3, false));
    w.place(place("prod", vec![task("prod", 10, 1)]));

    let Partial { done, failures } = w.ok(set_instances_state(
        "prod",
        &[1, 9, 3, 2],
        InstanceStatus::Draining,
    ));
    assert_eq!(
        done.iter()
            .map(|i| (i.id.0, i.status, i.version))
            .collect::<Vec<_>>(),
        vec![
            (1, InstanceStatus::Draining, w.index),
            (2, InstanceStatus::Draining, w.index)
        ]
    );
    let reasons: Vec<_> = failures.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(reasons, ["MISSING", "INACTIVE"]);
    assert_eq!(
        failures[0].resource,
        Some(instance_arn("prod", 9)),
        "the failure names the instance"
    );
    assert_eq!(
        w.state.counts("prod").registered_instances,
        2,
        "draining is registered"
    );
    assert_eq!(
        w.task(10).desired_status,
        DesiredStatus::Running,
        "standalone tasks are left alone"
    );

    // Already DRAINING: answered, not rewritten.
    let version = w.instance(1).version;
    let Partial { done, .. } = w.ok(set_instances_state("prod", &[1], InstanceStatus::Draining));
    assert_eq!(done[0].version, version);

    let Partial { done, failures } =
        w.ok(set_instances_state("prod", &[1, 2], InstanceStatus::Active));
    assert!(failures.is_empty());
    assert!(done.iter().all(|i| i.status == InstanceStatus::Active));
}

#[test]
fn instance_state_must_be_active_or_draining() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    for status in [
        InstanceStatus::Registering,
        InstanceStatus::RegistrationFailed,
        InstanceStatus::Deregistering,
        InstanceStatus::Inactive,
    ] {
        assert!(matches!(
            w.refused(set_instances_state("prod", &[1], status)),
            Error::InvalidParameter(_)
        ));
    }
    assert_eq!(
        w.refused(set_instances_state("nope", &[1], InstanceStatus::Draining)),
        Error::ClusterNotFound("nope".into())
    );
}

#[test]
fn tasks_of_a_deregistered_instance_need_no_agent_to_stop() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    w.ok(deregister_instance("prod", 1, true));
    assert_eq!(w.task(10).last_status, TaskStatus::Stopped);
    // StopTask of an orphan answers it as it is.
    let t = w.ok(stop_task("prod", 10));
    assert_eq!(t, w.task(10));
    assert!(w.state.task(TaskId(10)).is_some());
}
