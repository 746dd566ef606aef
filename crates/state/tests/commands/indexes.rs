//! The placement engine's indexes — registered instances by free CPU and memory, instances by
//! attribute value, live tasks per group and instance — as commands move instances and tasks
//! in and out of them. (`World` also checks every index against brute force after each
//! command; these tests pin the answers down.)

use berth_model::Millis;
use berth_model::command::{FailureReason, Placed};
use berth_model::entity::{InstanceStatus, TaskStatus};
use berth_model::{InstanceId, TaskId};
use berth_state::{Capacity, State};

use crate::common::*;

fn free(state: &State, capacity: Capacity, at_least: i64) -> Vec<(i64, u128)> {
    state
        .by_free("prod", capacity, at_least)
        .map(|(f, i)| (f, i.0))
        .collect()
}

fn holders(state: &State, name: &str) -> Vec<(Option<String>, u128)> {
    state
        .attribute_holders("prod", name)
        .map(|(v, i)| (v.map(str::to_owned), i.0))
        .collect()
}

fn some(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Instances 1 (1024 CPU, 2048 MiB), 2 (512, 4096) and 3 (1024, 2048) in `prod`.
fn world() -> World {
    let mut w = World::with_cluster("prod");
    w.ok(instance("prod", 1).build());
    w.ok(instance("prod", 2).cpu(512).memory(4096).build());
    w.ok(instance("prod", 3).build());
    w
}

#[test]
fn by_free_orders_least_free_first_ties_by_id_and_follows_live_tasks() {
    let mut w = world();
    assert_eq!(
        free(&w.state, Capacity::Cpu, 0),
        [(512, 2), (1024, 1), (1024, 3)]
    );
    w.place(place(
        "prod",
        vec![task("prod", 10, 1).cpu(512).memory(1024)],
    ));
    assert_eq!(
        free(&w.state, Capacity::Cpu, 0),
        [(512, 1), (512, 2), (1024, 3)]
    );
    assert_eq!(
        free(&w.state, Capacity::Memory, 0),
        [(1024, 1), (2048, 3), (4096, 2)]
    );
    assert_eq!(free(&w.state, Capacity::Cpu, 513), [(1024, 3)]);
    assert_eq!(
        free(&w.state, Capacity::Memory, 2048),
        [(2048, 3), (4096, 2)]
    );
    assert!(free(&w.state, Capacity::Memory, 4097).is_empty());
    assert!(
        w.state
            .by_free("test", Capacity::Cpu, i64::MIN)
            .next()
            .is_none()
    );

    // RUNNING changes nothing; a stop request neither; STOPPED gives it back.
    w.ok(report("prod", 10, Some(TaskStatus::Running)).build());
    w.ok(stop_task("prod", 10));
    assert_eq!(free(&w.state, Capacity::Cpu, 0)[0], (512, 1));
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    assert_eq!(
        free(&w.state, Capacity::Cpu, 0),
        [(512, 2), (1024, 1), (1024, 3)]
    );
    // Expiring the stopped task changes nothing either.
    w.ok(w.expire_everything());
    assert_eq!(
        free(&w.state, Capacity::Memory, 0),
        [(2048, 1), (2048, 3), (4096, 2)]
    );
}

#[test]
fn draining_instances_stay_in_the_indexes_deregistered_ones_leave() {
    let mut w = world();
    w.ok(put_attributes(
        "prod",
        vec![
            attribute(1, "team", Some("a")),
            attribute(2, "team", Some("b")),
        ],
    ));
    w.ok(set_instances_state("prod", &[1], InstanceStatus::Draining));
    assert_eq!(free(&w.state, Capacity::Cpu, 0).len(), 3);
    assert_eq!(holders(&w.state, "team"), [(some("a"), 1), (some("b"), 2)]);

    w.ok(deregister_instance("prod", 1, false));
    assert_eq!(free(&w.state, Capacity::Cpu, 0), [(512, 2), (1024, 3)]);
    assert_eq!(
        free(&w.state, Capacity::Memory, i64::MIN),
        [(2048, 3), (4096, 2)]
    );
    assert_eq!(holders(&w.state, "team"), [(some("b"), 2)]);
    assert_eq!(
        holders(&w.state, "ecs.os-type"),
        [(some("linux"), 2), (some("linux"), 3)]
    );
    // The INACTIVE instance keeps its attributes; it is just not a candidate any more.
    assert_eq!(w.instance(1).attribute("team"), Some("a"));

    // Forced, with live tasks: they are orphaned (STOPPED) and the instance leaves.
    w.place(place(
        "prod",
        vec![
            task("prod", 10, 2).group("g"),
            task("prod", 11, 3).group("g"),
        ],
    ));
    w.ok(deregister_instance("prod", 2, true));
    assert_eq!(free(&w.state, Capacity::Cpu, i64::MIN), [(896, 3)]);
    assert_eq!(holders(&w.state, "team"), []);
    let live: Vec<_> = w.state.live_in_group("prod", "g").collect();
    assert_eq!(live, [(InstanceId(3), 1)]);
    assert_eq!(w.state.usage(InstanceId(2)), None);
}

#[test]
fn reregistration_moves_an_instance_by_its_new_resources_and_attributes() {
    let mut w = world();
    w.ok(instance("prod", 4)
        .attribute("ecs.instance-type", Some("t3.small"))
        .build());
    w.ok(put_attributes(
        "prod",
        vec![attribute(4, "team", Some("a"))],
    ));
    w.place(place("prod", vec![task("prod", 10, 4).cpu(256).group("g")]));
    assert_eq!(
        free(&w.state, Capacity::Cpu, 0),
        [(512, 2), (768, 4), (1024, 1), (1024, 3)]
    );

    w.ok(instance("prod", 4)
        .no_attributes()
        .attribute("ecs.instance-type", Some("t3.large"))
        .attribute("ecs.cpu-architecture", Some("arm64"))
        .cpu(2048)
        .memory(8192)
        .reregister()
        .build());
    assert_eq!(
        free(&w.state, Capacity::Cpu, 0),
        [(512, 2), (1024, 1), (1024, 3), (1792, 4)]
    );
    assert_eq!(
        free(&w.state, Capacity::Memory, 4096),
        [(4096, 2), (8064, 4)]
    );
    assert_eq!(
        holders(&w.state, "ecs.instance-type"),
        [(some("t3.large"), 4)]
    );
    assert_eq!(
        holders(&w.state, "ecs.cpu-architecture"),
        [(some("arm64"), 4)]
    );
    assert_eq!(
        holders(&w.state, "team"),
        [(some("a"), 4)],
        "custom attribute kept"
    );
    assert_eq!(
        holders(&w.state, "ecs.os-type"),
        [(some("linux"), 1), (some("linux"), 2), (some("linux"), 3)],
        "a built-in attribute not re-sent is gone"
    );
    let live: Vec<_> = w.state.live_in_group("prod", "g").collect();
    assert_eq!(live, [(InstanceId(4), 1)], "tasks kept");

    // Smaller again, still above what the task holds: it moves down.
    w.ok(instance("prod", 4).cpu(512).reregister().build());
    assert_eq!(
        free(&w.state, Capacity::Cpu, 0),
        [(256, 4), (512, 2), (1024, 1), (1024, 3)]
    );
}

#[test]
fn an_instance_shrunk_below_its_tasks_has_negative_free() {
    // An agent may re-register with less than its tasks hold (the host shrank): the
    // re-registration is accepted and the instance is over-committed until tasks stop, which
    // `World` would flag, so these commands skip its checks.
    let mut w = world();
    w.place(place(
        "prod",
        vec![task("prod", 10, 1).cpu(768).memory(1024)],
    ));
    w.apply_unchecked(
        instance("prod", 1)
            .cpu(512)
            .memory(512)
            .reregister()
            .build(),
    )
    .unwrap();
    assert_eq!(
        free(&w.state, Capacity::Cpu, i64::MIN),
        [(-256, 1), (512, 2), (1024, 3)]
    );
    assert_eq!(free(&w.state, Capacity::Memory, 0), [(2048, 3), (4096, 2)]);
    let restored = State::restore(w.state.persist(), w.state.config().clone());
    for capacity in [Capacity::Cpu, Capacity::Memory] {
        assert_eq!(
            free(&restored, capacity, i64::MIN),
            free(&w.state, capacity, i64::MIN),
            "a restored state has the same order"
        );
    }
    let Placed { rejected, .. } = w
        .apply_unchecked(place("prod", vec![task("prod", 11, 1).cpu(0).memory(0)]))
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        rejected[0].reason,
        FailureReason::ResourceCpu,
        "even a task that needs nothing"
    );
    // Once the task is STOPPED the instance is whole again.
    w.ok(report("prod", 10, Some(TaskStatus::Stopped)).build());
    assert_eq!(free(&w.state, Capacity::Cpu, i64::MIN)[0], (512, 1));
}

#[test]
fn put_and_delete_attributes_move_instances_by_value() {
    let mut w = world();
    w.ok(put_attributes(
        "prod",
        vec![
            attribute(3, "team", Some("a")),
            attribute(1, "team", Some("b")),
            attribute(2, "team", None),
        ],
    ));
    assert_eq!(
        holders(&w.state, "team"),
        [(None, 2), (some("a"), 3), (some("b"), 1)],
        "by value (no value first), then id"
    );
    w.ok(put_attributes(
        "prod",
        vec![attribute(1, "team", Some("a"))],
    ));
    assert_eq!(
        holders(&w.state, "team"),
        [(None, 2), (some("a"), 1), (some("a"), 3)]
    );
    w.ok(delete_attributes("prod", vec![attribute(2, "team", None)]));
    assert_eq!(holders(&w.state, "team"), [(some("a"), 1), (some("a"), 3)]);
    assert_eq!(holders(&w.state, "tea"), []);
    assert_eq!(holders(&w.state, "team2"), []);
    assert!(w.state.attribute_holders("test", "team").next().is_none());
}

#[test]
fn expire_takes_forgotten_instances_and_tasks_out_of_every_index() {
    let mut w = world();
    w.ok(put_attributes(
        "prod",
        vec![attribute(1, "team", Some("a"))],
    ));
    w.place(place(
        "prod",
        vec![
            task("prod", 10, 1).group("g").dynamic_tcp(&[49153]),
            task("prod", 11, 2).group("g"),
        ],
    ));
    w.ok(deregister_instance("prod", 1, true));
    w.ok(report("prod", 11, Some(TaskStatus::Stopped)).build());
    w.ok(w.expire_everything());
    assert!(w.state.instance(InstanceId(1)).is_none());
    assert!(w.state.task(TaskId(10)).is_none());
    assert!(w.state.task(TaskId(11)).is_none());
    assert_eq!(w.state.live_in_group("prod", "g").count(), 0);
    assert_eq!(
        free(&w.state, Capacity::Cpu, i64::MIN),
        [(512, 2), (1024, 3)]
    );
    assert_eq!(holders(&w.state, "team"), []);

    // The id is free again: a new instance under it starts afresh in every index.
    w.ok(instance("prod", 1)
        .cpu(4096)
        .attribute("team", Some("z"))
        .build());
    assert_eq!(free(&w.state, Capacity::Cpu, 1024), [(1024, 3), (4096, 1)]);
    assert_eq!(holders(&w.state, "team"), [(some("z"), 1)]);
    assert_eq!(w.state.usage(InstanceId(1)), None);
    let (placed, _) = w.place(place(
        "prod",
        vec![task("prod", 10, 1).dynamic_tcp(&[49153])],
    ));
    assert_eq!(placed.len(), 1, "the forgotten task's dynamic port is free");
    // An Expire with nothing old enough leaves the indexes as they are.
    let before = free(&w.state, Capacity::Memory, i64::MIN);
    w.ok(expire(Millis(0), Millis(0)));
    assert_eq!(free(&w.state, Capacity::Memory, i64::MIN), before);
}
