//! Expire: STOPPED tasks, INACTIVE instances, deleted revisions and client tokens older than
//! the cut-offs are forgotten, history included.

use berth_model::entity::TaskStatus;
use berth_model::{InstanceId, Millis, TaskId};
use berth_state::EntityKey;

use crate::common::*;

#[test]
fn stopped_tasks_older_than_the_cut_off_are_forgotten() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place(
        "prod",
        vec![
            task("prod", 10, 1),
            task("prod", 11, 1),
            task("prod", 12, 1),
        ],
    ));
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    let first_stop = w.now;
    w.ok(report("prod", 11, Some(TaskStatus::Stopped)).build());

    w.ok(expire(first_stop, Millis(0)));
    assert!(
        w.state.task(TaskId(10)).is_some(),
        "the cut-off is exclusive"
    );
    w.ok(expire(Millis(first_stop.0 + 1), Millis(0)));
    assert!(w.state.task(TaskId(10)).is_none());
    assert!(w.state.history(&EntityKey::Task(TaskId(10))).is_none());
    assert!(w.state.task(TaskId(11)).is_some());
    assert!(w.state.history(&EntityKey::Task(TaskId(11))).is_some());

    w.ok(expire(Millis(i64::MAX), Millis(0)));
    assert!(w.state.task(TaskId(11)).is_none());
    assert!(
        w.state.task(TaskId(12)).is_some(),
        "live tasks are never expired"
    );
    assert_eq!(w.state.tasks_on(InstanceId(1)).count(), 1);
}

#[test]
fn inactive_instances_go_once_no_task_refers_to_them() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).build());
    w.ok(instance("prod", 3).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    w.ok(deregister_instance("prod", 1, true));
    let first_deregistered = w.now;
    w.ok(deregister_instance("prod", 2, false));
    let deregistered = w.now;

    // Instance 1 still has its (orphaned, STOPPED) task; instance 3 is ACTIVE.
    w.ok(expire(Millis(0), Millis(deregistered.0 + 1)));
    assert!(w.state.instance(InstanceId(1)).is_some());
    assert!(w.state.instance(InstanceId(2)).is_none());
    assert!(
        w.state
            .history(&EntityKey::Instance(InstanceId(2)))
            .is_none()
    );
    assert!(w.state.instance(InstanceId(3)).is_some());

    // Not yet old enough.
    w.ok(expire(Millis(i64::MAX), first_deregistered));
    assert!(w.state.task(TaskId(10)).is_none());
    assert!(w.state.instance(InstanceId(1)).is_some());
    // Its tasks and it go in one Expire.
    w.ok(w.expire_everything());
    assert!(w.state.instance(InstanceId(1)).is_none());
    assert_eq!(w.state.instances_after("prod", None).count(), 1);
    assert_eq!(w.state.counts("prod").registered_instances, 1);
}

#[test]
fn expire_with_nothing_to_do_changes_nothing() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place_with_token(
        "prod",
        vec![task("prod", 10, 1)],
        "tok",
        1,
        false,
    ));
    let before = w.state.persist();
    w.ok(expire(Millis(0), Millis(0)));
    let mut after = w.state.persist();
    after.index = before.index;
    assert_eq!(after, before);
}
