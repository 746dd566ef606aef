//! AgentConnectivity and AgentLost: an agent going silent stops placements on its instance;
//! one lost for the grace period has its live tasks STOPPED, and nothing else is touched.

use berth_model::command::{
    AgentConnectivity, AgentLost, DeregisterContainerInstance, FailureReason, Partial,
};
use berth_model::entity::{DesiredStatus, TaskStatus};
use berth_model::{InstanceId, Millis};

use crate::common::*;

fn connectivity(cluster: &str, ids: &[u128], connected: bool) -> AgentConnectivity {
    AgentConnectivity {
        cluster: cluster.into(),
        ids: ids.iter().map(|&i| InstanceId(i)).collect(),
        connected,
    }
}

fn lost(cluster: &str, id: u128) -> AgentLost {
    AgentLost {
        cluster: cluster.into(),
        id: InstanceId(id),
        reason: "agent lost".into(),
    }
}

fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    // Task 10 runs, task 11 is still PENDING, task 12 is already STOPPED; 20 is elsewhere.
    w.place(place(
        "prod",
        vec![
            task("prod", 10, 1).tcp(&[80]),
            task("prod", 11, 1),
            task("prod", 12, 1),
            task("prod", 20, 2),
        ],
    ));
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(report("prod", 12, Some(TaskStatus::Running)).build());
    w.ok(report("prod", 12, Some(TaskStatus::Stopped)).build());
    w
}

#[test]
fn a_silent_agent_is_disconnected_and_gets_no_placements() {
    let mut w = world();
    let Partial { done, failures } = w.ok(connectivity("prod", &[1, 99], false));
    assert_eq!(done.len(), 1);
    assert!(!done[0].agent_connected);
    assert_eq!(done[0].disconnected_at, Some(w.now));
    assert_eq!(
        failures.len(),
        1,
        "unknown instance 99 is a failure, not an error"
    );
    assert_eq!(failures[0].reason, FailureReason::Missing.as_str());

    let (placed, rejected) = w.place(place("prod", vec![task("prod", 30, 1)]));
    assert!(placed.is_empty());
    assert_eq!(rejected[0].reason, FailureReason::Agent);
    // Its tasks are untouched until it is lost.
    assert_eq!(w.task(10).last_status, TaskStatus::Running);

    // Disconnecting again keeps the first moment it went silent.
    let first = w.instance(1).disconnected_at;
    w.now = Millis(w.now.0 + 5_000);
    w.ok(connectivity("prod", &[1], false));
    assert_eq!(w.instance(1).disconnected_at, first);

    // Heard from again: connected, placeable.
    w.ok(connectivity("prod", &[1], true));
    assert!(w.instance(1).agent_connected);
    assert_eq!(w.instance(1).disconnected_at, None);
    let (placed, _) = w.place(place("prod", vec![task("prod", 31, 1)]));
    assert_eq!(placed.len(), 1);
}

#[test]
fn a_lost_agent_has_its_live_tasks_stopped() {
    let mut w = world();
    w.ok(connectivity("prod", &[1], false));
    let stopped_before = w.task(12);
    w.ok(lost("prod", 1));

    let running = w.task(10);
    assert_eq!(running.last_status, TaskStatus::Stopped);
    assert_eq!(running.desired_status, DesiredStatus::Stopped);
    assert_eq!(running.stop_code.as_deref(), Some("TerminationNotice"));
    assert_eq!(running.stopped_reason.as_deref(), Some("agent lost"));
    assert_eq!(running.stopped_at, Some(w.now));
    assert!(
        running
            .containers
            .iter()
            .all(|c| c.last_status == TaskStatus::Stopped)
    );

    let pending = w.task(11);
    assert_eq!(pending.last_status, TaskStatus::Stopped);
    // The host went away, not the task: not a failed launch.
    assert_eq!(pending.stop_code.as_deref(), Some("TerminationNotice"));

    assert_eq!(
        w.task(12),
        stopped_before,
        "an already STOPPED task is untouched"
    );
    assert_eq!(
        w.task(20).last_status,
        TaskStatus::Pending,
        "other instances untouched"
    );
    assert_eq!(
        w.state.usage(InstanceId(1)),
        None,
        "the reservations are released"
    );
    assert!(!w.instance(1).agent_connected);
}

#[test]
fn lost_is_a_no_op_once_the_agent_is_back() {
    let mut w = world();
    w.ok(connectivity("prod", &[1], false));
    w.ok(connectivity("prod", &[1], true));
    w.ok(lost("prod", 1));
    assert_eq!(w.task(10).last_status, TaskStatus::Running);
    assert_eq!(w.task(11).last_status, TaskStatus::Pending);
}

#[test]
fn connectivity_leaves_deregistered_instances_alone() {
    let mut w = world();
    w.ok(DeregisterContainerInstance {
        cluster: "prod".into(),
        id: InstanceId(2),
        force: true,
    });
    let before = w.instance(2);
    w.ok(connectivity("prod", &[2], true));
    assert_eq!(w.instance(2), before);
}

#[test]
fn a_task_that_never_ran_failed_to_start() {
    let mut w = world();
    let t = w.ok(report("prod", 11, Some(TaskStatus::Stopped))
        .container(container_status("app", TaskStatus::Stopped))
        .reason("CannotPullContainerError: no such image")
        .build());
    assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("CannotPullContainerError: no such image")
    );
}
