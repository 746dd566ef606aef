//! PlaceTasks with `distinct_instance`: the commit refuses (ATTRIBUTE) a task whose instance
//! already runs a live task of its group — placed earlier, with or without the constraint, or
//! earlier in the same plan.

use berth_model::command::FailureReason;
use berth_model::entity::TaskStatus;
use berth_model::{InstanceId, TaskId};

use crate::common::*;

/// Cluster `prod` with instances 1, 2 and 3.
fn world() -> World {
    let mut w = World::with_cluster("prod");
    for i in 1..=3 {
        w.ok(instance("prod", i).build());
    }
    w
}

fn svc(id: u128, instance: u128) -> TaskBuilder {
    task("prod", id, instance).group("service:web")
}

fn placed_ids(
    w: &mut World,
    command: berth_model::command::PlaceTasks,
) -> (Vec<u128>, Vec<(u128, FailureReason)>) {
    let (placed, rejected) = w.place(command);
    (
        placed.iter().map(|t| t.id.0).collect(),
        rejected.iter().map(|r| (r.task.0, r.reason)).collect(),
    )
}

#[test]
fn an_instance_running_the_group_is_refused() {
    let mut w = world();
    // Placed without the constraint: it still counts against later distinct plans.
    w.place(place("prod", vec![svc(10, 1)]));
    let (placed, rejected) = w.place(place_distinct("prod", vec![svc(11, 1)]));
    assert!(placed.is_empty());
    let r = &rejected[0];
    assert_eq!(
        (r.task, r.instance, r.reason),
        (TaskId(11), Some(InstanceId(1)), FailureReason::Attribute)
    );
    assert!(r.detail.contains("distinctInstance"), "{}", r.detail);
    assert!(w.state.task(TaskId(11)).is_none());

    assert_eq!(
        placed_ids(&mut w, place_distinct("prod", vec![svc(11, 2)])),
        (vec![11], vec![]),
        "another instance"
    );
    assert_eq!(
        placed_ids(
            &mut w,
            place_distinct("prod", vec![task("prod", 12, 1).group("service:api")])
        ),
        (vec![12], vec![]),
        "another group"
    );
    assert_eq!(
        placed_ids(&mut w, place("prod", vec![svc(13, 1)])),
        (vec![13], vec![]),
        "without the constraint tasks of a group may share an instance"
    );
    assert_eq!(
        w.state
            .live_in_group_on("prod", "service:web", InstanceId(1)),
        2
    );
    let by_instance: Vec<_> = w.state.live_in_group("prod", "service:web").collect();
    assert_eq!(by_instance, [(InstanceId(1), 2), (InstanceId(2), 1)]);
}

#[test]
fn a_stopping_task_still_counts_and_a_stopped_one_does_not() {
    let mut w = world();
    w.place(place_distinct("prod", vec![svc(10, 1)]));
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(stop_task("prod", 10));
    assert_eq!(
        placed_ids(&mut w, place_distinct("prod", vec![svc(11, 1)])),
        (vec![], vec![(11, FailureReason::Attribute)]),
        "desired STOPPED but not yet stopped: still live"
    );
    w.ok(report("prod", 10, Some(TaskStatus::Deactivating)).build());
    assert_eq!(
        placed_ids(&mut w, place_distinct("prod", vec![svc(11, 1)])),
        (vec![], vec![(11, FailureReason::Attribute)])
    );
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    assert_eq!(
        w.state
            .live_in_group_on("prod", "service:web", InstanceId(1)),
        0
    );
    assert_eq!(w.state.live_in_group("prod", "service:web").count(), 0);
    assert_eq!(
        placed_ids(&mut w, place_distinct("prod", vec![svc(11, 1)])),
        (vec![11], vec![]),
        "accepted once the other task is STOPPED"
    );
    // The stopped task stays listed in its group but does not count.
    assert_eq!(
        w.state
            .live_in_group_on("prod", "service:web", InstanceId(1)),
        1
    );
}

#[test]
fn two_tasks_of_one_plan_on_one_instance() {
    let mut w = world();
    assert_eq!(
        placed_ids(
            &mut w,
            place_distinct("prod", vec![svc(10, 1), svc(11, 1), svc(12, 2), svc(13, 2)])
        ),
        (
            vec![10, 12],
            vec![
                (11, FailureReason::Attribute),
                (13, FailureReason::Attribute)
            ]
        ),
        "the first of each instance is placed, the second refused"
    );
    // A task refused for resources is never placed, so it does not count; a resource misfit
    // is reported before the constraint.
    assert_eq!(
        placed_ids(
            &mut w,
            place_distinct(
                "prod",
                vec![svc(20, 3).cpu(4096), svc(21, 3), svc(22, 1).cpu(4096)]
            )
        ),
        (
            vec![21],
            vec![
                (20, FailureReason::ResourceCpu),
                (22, FailureReason::ResourceCpu)
            ]
        )
    );
    // The same plan without the constraint co-locates.
    assert_eq!(
        placed_ids(&mut w, place("prod", vec![svc(30, 3), svc(31, 3)])),
        (vec![30, 31], vec![])
    );
    assert_eq!(
        w.state
            .live_in_group_on("prod", "service:web", InstanceId(3)),
        3
    );
}

#[test]
fn groups_are_per_cluster() {
    let mut w = world();
    w.ok(create_cluster("test"));
    w.ok(instance("test", 9).build());
    w.place(place_distinct("prod", vec![svc(10, 1)]));
    assert_eq!(
        placed_ids(
            &mut w,
            place_distinct("test", vec![task("test", 11, 9).group("service:web")])
        ),
        (vec![11], vec![])
    );
    let prod: Vec<_> = w.state.live_in_group("prod", "service:web").collect();
    let test: Vec<_> = w.state.live_in_group("test", "service:web").collect();
    assert_eq!(prod, [(InstanceId(1), 1)]);
    assert_eq!(test, [(InstanceId(9), 1)]);
    assert_eq!(
        w.state
            .live_in_group_on("test", "service:web", InstanceId(1)),
        0
    );
}

#[test]
fn force_deregistration_frees_the_instance_for_the_group() {
    let mut w = world();
    w.place(place_distinct("prod", vec![svc(10, 1), svc(11, 2)]));
    w.ok(deregister_instance("prod", 1, true));
    let by_instance: Vec<_> = w.state.live_in_group("prod", "service:web").collect();
    assert_eq!(
        by_instance,
        [(InstanceId(2), 1)],
        "the orphaned task is STOPPED"
    );
    assert_eq!(
        placed_ids(&mut w, place_distinct("prod", vec![svc(12, 2), svc(13, 3)])),
        (vec![13], vec![(12, FailureReason::Attribute)])
    );
}
