//! The queue in the state machine: queued tasks hold nothing and count as pending; they are
//! placed (re-checked like any placement), expired or stopped — each only while still waiting.

use berth_model::command::*;
use berth_model::entity::{DesiredStatus, TaskStatus};
use berth_model::{InstanceId, Millis, TaskId};

use crate::common::*;

/// `prod` with a 1024 MiB instance that a running task fills, and tasks 20, 21 queued.
fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).memory(1024).build());
    w.place(place("prod", vec![task("prod", 10, 1).memory(1024)]));
    let until = Millis(w.now.0 + 60_000);
    let (placed, rejected) = w.place(place(
        "prod",
        vec![
            task("prod", 20, 0).memory(512).queued(until),
            task("prod", 21, 0).memory(512).queued(until),
        ],
    ));
    assert_eq!(
        (placed.len(), rejected.len()),
        (2, 0),
        "queued tasks always join"
    );
    w
}

fn placed_on(w: &World, id: u128, instance: u128) -> QueuedTaskPlacement {
    let mut task = (*w.task(id)).clone();
    task.instance = Some(InstanceId(instance));
    task.last_status = TaskStatus::Pending;
    QueuedTaskPlacement {
        task,
        distinct_instance: false,
    }
}

#[test]
fn queued_tasks_hold_nothing_and_count_as_pending() {
    let w = world();
    assert_eq!(w.state.usage(InstanceId(1)).unwrap().memory, 1024);
    assert_eq!(w.state.counts("prod").pending_tasks, 3);
    let queue: Vec<TaskId> = w.state.queued("prod").map(|t| t.id).collect();
    assert_eq!(queue, [TaskId(20), TaskId(21)]);
    assert_eq!(w.state.queue_lengths(), vec![("prod".into(), 2)]);
    assert_eq!(w.task(20).instance, None);
}

#[test]
fn a_queued_placement_is_re_checked_like_any_other() {
    let mut w = world();
    let command = PlaceQueuedTasks {
        cluster: "prod".into(),
        placements: vec![placed_on(&w, 20, 1)],
    };
    let Placed { tasks, rejected } = w.ok(command.clone());
    assert!(tasks.is_empty());
    assert_eq!(rejected[0].reason, FailureReason::ResourceMemory);
    assert!(w.task(20).is_queued());

    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    let Placed { tasks, .. } = w.ok(command.clone());
    assert_eq!(tasks.len(), 1);
    assert_eq!(w.state.usage(InstanceId(1)).unwrap().memory, 512);
    assert_eq!(w.state.queued("prod").count(), 1);
    // Placed once: a second commit of the same plan finds it no longer waiting.
    let Placed { tasks, rejected } = w.ok(command);
    assert!(tasks.is_empty());
    assert_eq!(rejected[0].reason, FailureReason::Missing);
}

#[test]
fn stopping_a_queued_task_stops_it_at_once() {
    let mut w = world();
    let t = w.ok(stop_task("prod", 20));
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.desired_status, DesiredStatus::Stopped);
    assert_eq!(t.stopped_at, Some(w.now));
    assert_eq!(w.state.counts("prod").pending_tasks, 2);
    assert_eq!(w.state.queued("prod").count(), 1);
    assert_eq!(w.state.usage(InstanceId(1)).unwrap().memory, 1024);
    // Nothing reports for a task with no instance.
    let e = w.refused(report("prod", 21, Some(TaskStatus::Running)).build());
    assert!(e.to_string().contains("waiting for capacity"), "{e}");
}

#[test]
fn a_wait_ends_only_once_it_is_due() {
    let mut w = world();
    let expire = ExpireQueuedTasks {
        cluster: "prod".into(),
        tasks: vec![QueueExpiry {
            id: TaskId(20),
            reason: "TaskFailedToStart: RESOURCE:MEMORY".into(),
        }],
    };
    let early = w.ok(expire.clone());
    assert!(early.done.is_empty());
    assert_eq!(early.failures.len(), 1);
    assert!(w.task(20).is_queued());

    w.now = Millis(w.now.0 + 60_000);
    let done = w.ok(expire.clone());
    let t = &done.done[0];
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("TaskFailedToStart: RESOURCE:MEMORY")
    );
    assert_eq!(w.state.counts("prod").pending_tasks, 2);
    // A second expiry of the same task changes nothing.
    assert!(w.ok(expire).done.is_empty());
}
