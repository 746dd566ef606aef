//! StopTask and TaskStateChange: desired and last status, containers, health, stop codes, and
//! the release of a task's reservation when it is STOPPED.

use berth_api::types as api;
use berth_model::command::ContainerChange;
use berth_model::entity::{DesiredStatus, HealthStatus, TaskStatus};
use berth_model::{Error, InstanceId, Millis};

use crate::common::*;

fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(create_cluster("test"));
    w.ok(instance("prod", 1).build());
    w.place(place("prod", vec![task("prod", 10, 1).tcp(&[80])]));
    w
}

fn health(name: &str, h: HealthStatus) -> ContainerChange {
    ContainerChange {
        name: name.into(),
        health_status: Some(h),
        ..Default::default()
    }
}

#[test]
fn stop_sets_desired_status_and_keeps_the_reservation_until_stopped() {
    let mut w = world();
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    let t = w.ok(stop_task("prod", 10));
    assert_eq!(t.desired_status, DesiredStatus::Stopped);
    assert_eq!(t.last_status, TaskStatus::Running, "the agent stops it");
    assert_eq!(t.stopping_at, Some(w.now));
    assert_eq!(t.stop_code.as_deref(), Some("UserInitiated"));
    assert_eq!(t.stopped_reason.as_deref(), Some("Task stopped by user"));
    assert_eq!(t.version, w.index);
    assert_eq!(w.state.usage(InstanceId(1)).unwrap().running, 1);
    assert_eq!(w.state.counts("prod").running_tasks, 1);

    // Stopping again answers the task as it is, first reason kept.
    let before = w.state.persist();
    let again = w.ok(stop_task_because(
        "prod",
        10,
        "again",
        "ServiceSchedulerInitiated",
    ));
    assert_eq!(again, t);
    let mut after = w.state.persist();
    after.index = before.index;
    assert_eq!(after, before);

    let t = w.ok(report("prod", 10, Some(TaskStatus::Stopped))
        .container(ContainerChange {
            name: "app".into(),
            status: Some(TaskStatus::Stopped),
            exit_code: Some(143),
            ..Default::default()
        })
        .build());
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(
        t.stop_code.as_deref(),
        Some("UserInitiated"),
        "the user's stop stays"
    );
    assert_eq!(t.stopped_reason.as_deref(), Some("Task stopped by user"));
    assert_eq!(t.containers[0].exit_code, Some(143));
    assert_eq!(w.state.usage(InstanceId(1)), None);
    assert_eq!(w.state.counts("prod").running_tasks, 0);
}

#[test]
fn stop_takes_the_callers_reason_and_code() {
    let mut w = world();
    let t = w.ok(stop_task_because(
        "prod",
        10,
        "Scaling down",
        "ServiceSchedulerInitiated",
    ));
    assert_eq!(t.stop_code.as_deref(), Some("ServiceSchedulerInitiated"));
    assert_eq!(t.stopped_reason.as_deref(), Some("Scaling down"));
}

#[test]
fn stop_and_report_refuse_unknown_or_foreign_tasks() {
    let mut w = world();
    for cluster in ["prod", "test"] {
        let id = if cluster == "prod" { 99 } else { 10 };
        assert!(matches!(
            w.refused(stop_task(cluster, id)),
            Error::InvalidParameter(_)
        ));
        assert!(matches!(
            w.refused(report(cluster, id, Some(TaskStatus::Running)).build()),
            Error::InvalidParameter(_)
        ));
    }
    assert_eq!(
        w.refused(stop_task("nope", 10)),
        Error::ClusterNotFound("nope".into())
    );
}

#[test]
fn last_status_only_moves_forward() {
    let mut w = world();
    let t = w.ok(report("prod", 10, Some(TaskStatus::Running))
        .pulled(Millis(1), Millis(2))
        .build());
    assert_eq!(t.last_status, TaskStatus::Running);
    let started = w.now;
    assert_eq!(t.started_at, Some(started));
    assert_eq!(
        (t.pull_started_at, t.pull_stopped_at),
        (Some(Millis(1)), Some(Millis(2)))
    );
    assert_eq!(w.state.counts("prod").running_tasks, 1);
    assert_eq!(w.state.counts("prod").pending_tasks, 0);

    // Late or repeated reports change nothing.
    let version = t.version;
    for status in [
        TaskStatus::Pending,
        TaskStatus::Activating,
        TaskStatus::Running,
    ] {
        let same = w.ok(report("prod", 10, Some(status))
            .pulled(Millis(3), Millis(4))
            .build());
        assert_eq!(same.version, version);
        assert_eq!(same.last_status, TaskStatus::Running);
        assert_eq!(same.pull_started_at, Some(Millis(1)), "set once");
    }

    let t = w.ok(report("prod", 10, Some(TaskStatus::Deactivating)).build());
    assert_eq!(t.stopping_at, Some(w.now));
    assert_eq!(t.started_at, Some(started));
    assert_eq!(t.desired_status, DesiredStatus::Running);
    assert_eq!(
        w.state.counts("prod").running_tasks,
        0,
        "not RUNNING any more"
    );
    assert!(w.state.usage(InstanceId(1)).is_some(), "but still holding");
}

#[test]
fn container_reports_update_containers_forward_only() {
    let mut w = world();
    let binding = api::NetworkBinding {
        host_port: Some(80),
        container_port: Some(8080),
        ..Default::default()
    };
    let t = w.ok(report("prod", 10, None)
        .container(ContainerChange {
            name: "app".into(),
            status: Some(TaskStatus::Running),
            runtime_id: Some("abc".into()),
            image_digest: Some("sha256:1".into()),
            network_bindings: Some(vec![binding.clone()]),
            ..Default::default()
        })
        .build());
    assert_eq!(
        t.last_status,
        TaskStatus::Pending,
        "the task's status is its own"
    );
    let app = &t.containers[0];
    assert_eq!(app.last_status, TaskStatus::Running);
    assert_eq!(app.runtime_id.as_deref(), Some("abc"));
    assert_eq!(app.image_digest.as_deref(), Some("sha256:1"));
    assert_eq!(app.network_bindings, vec![binding]);
    assert_eq!(t.containers[1].last_status, TaskStatus::Pending);

    let t = w.ok(report("prod", 10, None)
        .container(container_status("app", TaskStatus::Pending))
        .container(ContainerChange {
            name: "sidecar".into(),
            status: Some(TaskStatus::Stopped),
            exit_code: Some(1),
            reason: Some("OOM".into()),
            ..Default::default()
        })
        .build());
    assert_eq!(
        t.containers[0].last_status,
        TaskStatus::Running,
        "not backwards"
    );
    assert_eq!(t.containers[0].runtime_id.as_deref(), Some("abc"), "kept");
    assert_eq!(t.containers[1].last_status, TaskStatus::Stopped);
    assert_eq!(t.containers[1].exit_code, Some(1));
    assert_eq!(t.containers[1].reason.as_deref(), Some("OOM"));
    assert_eq!(
        t.last_status,
        TaskStatus::Pending,
        "a non-essential exit stops nothing"
    );
}

#[test]
fn a_report_naming_an_unknown_container_is_refused_whole() {
    let mut w = world();
    let e = w.refused(
        report("prod", 10, Some(TaskStatus::Running))
            .container(container_status("app", TaskStatus::Running))
            .container(container_status("nope", TaskStatus::Running))
            .build(),
    );
    assert!(matches!(e, Error::InvalidParameter(_)));
}

#[test]
fn task_health_follows_essential_containers() {
    let mut w = world();
    let t = w.ok(report("prod", 10, None)
        .container(health("sidecar", HealthStatus::Healthy))
        .build());
    assert_eq!(
        t.health_status,
        HealthStatus::Unknown,
        "app's health is unknown"
    );
    let t = w.ok(report("prod", 10, None)
        .container(health("app", HealthStatus::Healthy))
        .container(health("sidecar", HealthStatus::Unhealthy))
        .build());
    assert_eq!(
        t.health_status,
        HealthStatus::Healthy,
        "non-essential containers do not count"
    );
    let t = w.ok(report("prod", 10, None)
        .container(health("app", HealthStatus::Unhealthy))
        .build());
    assert_eq!(t.health_status, HealthStatus::Unhealthy);
}

#[test]
fn an_essential_exit_is_essential_container_exited() {
    let mut w = world();
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    let t = w.ok(report("prod", 10, Some(TaskStatus::Stopped))
        .container(ContainerChange {
            name: "app".into(),
            status: Some(TaskStatus::Stopped),
            exit_code: Some(0),
            ..Default::default()
        })
        .execution_stopped_at(Millis(42))
        .build());
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.desired_status, DesiredStatus::Stopped);
    assert_eq!(t.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("Essential container in task exited")
    );
    assert_eq!(t.stopped_at, Some(w.now));
    assert_eq!(t.stopping_at, Some(w.now));
    assert_eq!(t.execution_stopped_at, Some(Millis(42)));
    assert!(
        t.containers
            .iter()
            .all(|c| c.last_status == TaskStatus::Stopped)
    );
    assert_eq!(w.state.usage(InstanceId(1)), None, "released");
    let counts = w.state.counts("prod");
    assert_eq!((counts.running_tasks, counts.pending_tasks), (0, 0));
}

#[test]
fn a_task_that_never_ran_failed_to_start() {
    let mut w = world();
    let t = w.ok(report("prod", 10, Some(TaskStatus::Stopped))
        .reason("CannotPullContainerError: pull access denied")
        .build());
    assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("CannotPullContainerError: pull access denied")
    );
    assert_eq!(t.started_at, None);
    assert_eq!(t.execution_stopped_at, Some(w.now));
}

#[test]
fn a_stopped_task_stays_stopped() {
    let mut w = world();
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    let stopped = w.task(10);
    for status in [TaskStatus::Running, TaskStatus::Stopped] {
        let t = w.ok(report("prod", 10, Some(status)).build());
        assert_eq!(t, stopped);
    }
    // Late container news is still recorded, without moving anything back.
    let t = w.ok(report("prod", 10, Some(TaskStatus::Running))
        .container(ContainerChange {
            name: "app".into(),
            status: Some(TaskStatus::Running),
            exit_code: Some(2),
            ..Default::default()
        })
        .build());
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.containers[0].last_status, TaskStatus::Stopped);
    assert_eq!(t.containers[0].exit_code, Some(2));
    assert_eq!(t.stopped_at, stopped.stopped_at);
    assert_eq!(w.state.usage(InstanceId(1)), None);
    // The port is free for another task.
    let (placed, _) = w.place(place("prod", vec![task("prod", 11, 1).tcp(&[80])]));
    assert_eq!(placed.len(), 1);
}
