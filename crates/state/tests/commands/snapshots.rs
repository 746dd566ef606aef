//! Snapshots are O(1) clones of immutable values: a clone taken before a write never sees it,
//! and writes after a clone do not disturb it.

use berth_model::entity::{InstanceStatus, TaskStatus};
use berth_model::{InstanceId, TaskId};
use berth_state::TaskFilter;

use crate::common::*;

#[test]
fn a_snapshot_does_not_see_later_writes() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.place(place("prod", vec![task("prod", 10, 1)]));
    let snapshot = w.state.clone();
    let frozen = snapshot.persist();

    w.place(place("prod", vec![task("prod", 11, 1).cpu(512).tcp(&[80])]));
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(put_attributes(
        "prod",
        vec![attribute(1, "team", Some("a"))],
    ));
    w.ok(set_instances_state("prod", &[1], InstanceStatus::Draining));
    w.ok(tag_resource(cluster_arn("prod"), vec![tag("a", "1")]));
    w.ok(register_task_definition("web"));
    w.ok(stop_task("prod", 11));
    w.ok(report("prod", 11, Some(TaskStatus::Stopped)).build());
    w.ok(w.expire_everything());

    assert_eq!(snapshot.persist(), frozen, "the snapshot is unchanged");
    assert_eq!(snapshot.index() + 9, w.state.index());
    assert!(snapshot.task(TaskId(11)).is_none());
    assert_eq!(
        snapshot.task(TaskId(10)).unwrap().last_status,
        TaskStatus::Pending
    );
    let usage = snapshot.usage(InstanceId(1)).unwrap();
    assert_eq!((usage.cpu, usage.pending, usage.running), (128, 1, 0));
    assert!(usage.tcp.is_empty());
    assert_eq!(snapshot.counts("prod").pending_tasks, 1);
    assert_eq!(
        snapshot.instance(InstanceId(1)).unwrap().status,
        InstanceStatus::Active
    );
    assert!(
        snapshot
            .instance(InstanceId(1))
            .unwrap()
            .attribute("team")
            .is_none()
    );
    assert!(snapshot.cluster("prod").unwrap().tags.is_empty());
    assert_eq!(snapshot.latest_active("web").unwrap().revision, 1);
    assert_eq!(
        snapshot
            .tasks_after("prod", &TaskFilter::default(), None)
            .count(),
        1
    );
    assert_eq!(snapshot.changes_since(snapshot.index()), Some(Vec::new()));
    check(&snapshot);

    // And the live state is what the writes made it.
    assert_eq!(
        w.state.task(TaskId(10)).unwrap().last_status,
        TaskStatus::Running
    );
    assert!(w.state.task(TaskId(11)).is_none());
}

#[test]
fn writes_to_a_snapshot_do_not_reach_the_original() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    let original = w.state.persist();
    let mut fork = World {
        state: w.state.clone(),
        index: w.index,
        now: w.now,
    };
    fork.place(place("prod", vec![task("prod", 10, 1)]));
    assert_eq!(w.state.persist(), original);
    assert_eq!(w.state.usage(InstanceId(1)), None);
}

#[test]
fn a_snapshot_shares_every_value_with_the_state() {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).cpu(1 << 20).memory(1 << 20).build());
    let plan: Vec<_> = (1..=500).map(|id| task("prod", 100 + id, 1)).collect();
    w.place(place("prod", plan));
    let snapshot = w.state.clone();
    let shared = |a: &berth_state::State, b: &berth_state::State| {
        (101..=600u128)
            .filter(|id| {
                std::sync::Arc::ptr_eq(a.task(TaskId(*id)).unwrap(), b.task(TaskId(*id)).unwrap())
            })
            .count()
    };
    assert_eq!(shared(&snapshot, &w.state), 500, "a clone copies no value");
    w.ok(stop_task("prod", 101));
    assert_eq!(
        shared(&snapshot, &w.state),
        499,
        "a write replaces only what it changes"
    );
    assert!(std::sync::Arc::ptr_eq(
        snapshot.instance(InstanceId(1)).unwrap(),
        w.state.instance(InstanceId(1)).unwrap()
    ));
}
