//! The EXTERNAL deployment controller: task sets driven through the service harness on a real
//! state and virtual time — a blue/green switch as an outside controller performs it, scale
//! rounding, service scaling, forced deletion, protection, draining instances, throttled
//! launches — with the harness's idempotence check after every commit.

mod common;
#[path = "service/harness.rs"]
mod harness;

use std::sync::Arc;

use berth_model::command::UpdateTaskProtection;
use berth_model::entity::*;
use berth_model::service::*;
use berth_model::{InstanceId, TaskId};
use berth_scheduler::service::events;

use common::{CLUSTER, host};
use harness::*;

const WEB: &str = "web";
const MINUTE: i64 = 60_000;

/// A harness with three roomy instances in three zones.
fn cluster() -> (Harness, Vec<InstanceId>) {
    let mut h = Harness::new();
    let ids = ["us-east-1a", "us-east-1b", "us-east-1c"]
        .into_iter()
        .map(|az| h.add(host(4096, 8192).az(az)))
        .collect();
    (h, ids)
}

/// The live tasks (meant to keep running) of task set `id`.
fn of_set(h: &Harness, id: &str) -> Vec<Arc<Task>> {
    h.running(WEB)
        .into_iter()
        .filter(|t| t.started_by.as_deref() == Some(id))
        .collect()
}

fn running_of(h: &Harness, id: &str) -> usize {
    of_set(h, id)
        .iter()
        .filter(|t| t.last_status == TaskStatus::Running)
        .count()
}

fn stability(h: &Harness, id: &str) -> StabilityStatus {
    h.task_set(WEB, id).expect("task set").stability_status
}

#[test]
fn an_external_controller_switches_blue_to_green() {
    let (mut h, _) = cluster();
    let blue_rev = h.register(def(GOOD));
    let green_rev = h.register(def(BETTER));
    let s = h.external(WEB, 4);
    h.create(s);
    h.settle();
    assert!(h.running(WEB).is_empty(), "no task set, no tasks");

    let blue = h.create_task_set(WEB, blue_rev, 100.0);
    h.settle();
    assert_eq!(running_of(&h, &blue), 4);
    assert_eq!(stability(&h, &blue), StabilityStatus::SteadyState);
    assert!(h.service(WEB).steady);
    h.change_task_set(WEB, &blue, |t| t.status = TaskSetStatus::Primary);

    // Green at scale 0 runs nothing and is steady at nothing.
    let green = h.create_task_set(WEB, green_rev, 0.0);
    h.settle();
    assert_eq!(of_set(&h, &green).len(), 0);
    assert_eq!(stability(&h, &green), StabilityStatus::SteadyState);

    // Scale green up: it runs its own revision next to blue, with no percent bounds between
    // them (the controller decides when to move).
    h.change_task_set(WEB, &green, |t| t.scale = 100.0);
    let decisions = h.step();
    assert!(
        decisions[0].stop.is_empty(),
        "scaling green up stops no blue task"
    );
    assert_eq!(decisions[0].launch.len(), 4);
    assert_eq!(stability(&h, &green), StabilityStatus::Stabilizing);
    assert!(!h.service(WEB).steady);
    h.settle();
    assert_eq!(running_of(&h, &green), 4);
    assert_eq!(running_of(&h, &blue), 4);
    for t in of_set(&h, &green) {
        assert_eq!(t.revision, green_rev);
    }

    // Swap the primary, scale blue to 0, delete it: it drains and leaves the service.
    h.change_task_set(WEB, &green, |t| t.status = TaskSetStatus::Primary);
    h.change_task_set(WEB, &blue, |t| t.status = TaskSetStatus::Active);
    h.change_task_set(WEB, &blue, |t| t.scale = 0.0);
    h.settle();
    assert_eq!(of_set(&h, &blue).len(), 0);
    h.change_task_set(WEB, &blue, |t| t.status = TaskSetStatus::Draining);
    h.settle();
    assert!(
        h.task_set(WEB, &blue).is_none(),
        "a drained task set is dropped"
    );
    let svc = h.service(WEB);
    assert_eq!(svc.task_sets.len(), 1);
    assert_eq!(svc.task_definition(), Some((&"web".into(), green_rev)));
    assert_eq!(running_of(&h, &green), 4);
    assert!(svc.steady);
    assert_eq!(h.events(WEB)[0], events::steady(WEB));
}

#[test]
fn a_task_sets_count_is_its_scale_of_the_desired_count_rounded_up() {
    let (mut h, _) = cluster();
    let rev = h.register(def(GOOD));
    let s = h.external(WEB, 3);
    h.create(s);
    let a = h.create_task_set(WEB, rev, 50.0);
    let b = h.create_task_set(WEB, rev, 10.0);
    h.settle();
    assert_eq!(running_of(&h, &a), 2, "1.5 rounds up to 2");
    assert_eq!(running_of(&h, &b), 1, "0.3 rounds up to 1");

    // The service's desired count scales every task set.
    h.update(WEB, |s| s.desired_count = 10);
    h.settle();
    assert_eq!(running_of(&h, &a), 5);
    assert_eq!(running_of(&h, &b), 1);
    h.update(WEB, |s| s.desired_count = 0);
    h.settle();
    assert!(h.running(WEB).is_empty());
    assert_eq!(stability(&h, &a), StabilityStatus::SteadyState);
}

#[test]
fn a_task_set_deleted_with_force_stops_its_tasks_and_leaves() {
    let (mut h, _) = cluster();
    let rev = h.register(def(GOOD));
    let s = h.external(WEB, 3);
    h.create(s);
    let a = h.create_task_set(WEB, rev, 100.0);
    let b = h.create_task_set(WEB, rev, 100.0);
    h.settle();
    let doomed: Vec<TaskId> = of_set(&h, &a).iter().map(|t| t.id).collect();
    assert_eq!(doomed.len(), 3);
    h.change_task_set(WEB, &a, |t| t.status = TaskSetStatus::Draining);
    let decisions = h.step();
    let mut stopped: Vec<TaskId> = decisions[0].stop.iter().map(|s| s.task).collect();
    stopped.sort();
    let mut expected = doomed.clone();
    expected.sort();
    assert_eq!(stopped, expected, "exactly the deleted set's tasks stop");
    assert!(
        h.task_set(WEB, &a).is_some(),
        "it stays, DRAINING, while its tasks stop"
    );
    h.settle();
    assert!(h.task_set(WEB, &a).is_none());
    for id in doomed {
        let t = h.task(id);
        assert_eq!(t.last_status, TaskStatus::Stopped);
        assert!(t.stopped_reason.as_deref().unwrap_or_default().contains(&a));
    }
    assert_eq!(running_of(&h, &b), 3, "the other set is untouched");
}

#[test]
fn scaling_a_task_set_in_spares_protected_tasks() {
    let (mut h, _) = cluster();
    let rev = h.register(def(GOOD));
    let s = h.external(WEB, 4);
    h.create(s);
    let set = h.create_task_set(WEB, rev, 100.0);
    h.settle();
    let all: Vec<TaskId> = of_set(&h, &set).iter().map(|t| t.id).collect();
    let until = h.now.saturating_add_ms(10 * MINUTE);
    let done = h.ok(UpdateTaskProtection {
        cluster: CLUSTER.into(),
        tasks: all.clone(),
        until: Some(until),
    });
    assert!(done.failures.is_empty());
    h.change_task_set(WEB, &set, |t| t.scale = 50.0);
    h.settle();
    assert_eq!(of_set(&h, &set).len(), 4, "every task is protected");
    assert_eq!(stability(&h, &set), StabilityStatus::Stabilizing);
    assert!(h.events(WEB)[0].contains("protected from scale-in"));
    // Once protection lapses, scale-in goes ahead.
    h.advance(11 * MINUTE);
    h.settle();
    assert_eq!(of_set(&h, &set).len(), 2);
    assert_eq!(stability(&h, &set), StabilityStatus::SteadyState);
}

#[test]
fn a_task_on_a_draining_instance_is_replaced_before_it_stops() {
    let (mut h, ids) = cluster();
    let rev = h.register(def(GOOD));
    let s = h.external(WEB, 3);
    h.create(s);
    let set = h.create_task_set(WEB, rev, 100.0);
    h.settle();
    let on_first: Vec<TaskId> = of_set(&h, &set)
        .iter()
        .filter(|t| t.instance == Some(ids[0]))
        .map(|t| t.id)
        .collect();
    assert_eq!(on_first.len(), 1, "spread over the three zones");
    h.drain(ids[0]);
    let first = h.step();
    assert_eq!(first[0].launch.len(), 1, "the replacement starts first");
    assert!(first[0].stop.is_empty(), "the old task waits for it");
    h.settle();
    assert_eq!(h.task(on_first[0]).last_status, TaskStatus::Stopped);
    assert_eq!(running_of(&h, &set), 3);
    assert!(of_set(&h, &set).iter().all(|t| t.instance != Some(ids[0])));
}

#[test]
fn a_task_set_whose_image_fails_is_throttled_on_its_own() {
    let (mut h, _) = cluster();
    let good = h.register(def(GOOD));
    let broken = h.register(def(BROKEN));
    h.script(BROKEN, Image::FailsToStart);
    let s = h.external(WEB, 2);
    h.create(s);
    let ok = h.create_task_set(WEB, good, 100.0);
    let bad = h.create_task_set(WEB, broken, 100.0);
    h.settle();
    assert_eq!(running_of(&h, &ok), 2);
    assert_eq!(running_of(&h, &bad), 0);
    assert!(h.count_events(WEB, "unable to consistently start tasks") >= 1);
    let tried = h
        .tasks(WEB)
        .iter()
        .filter(|t| t.started_by.as_deref() == Some(bad.as_str()))
        .count();
    // The throttle holds until its delay passes: nothing more is tried meanwhile.
    h.settle();
    let tried_again = h
        .tasks(WEB)
        .iter()
        .filter(|t| t.started_by.as_deref() == Some(bad.as_str()))
        .count();
    assert_eq!(tried, tried_again);
    assert_eq!(stability(&h, &bad), StabilityStatus::Stabilizing);
    assert_eq!(stability(&h, &ok), StabilityStatus::SteadyState);
}

#[test]
fn a_deleted_external_service_stops_every_task_set() {
    let (mut h, _) = cluster();
    let rev = h.register(def(GOOD));
    let s = h.external(WEB, 2);
    h.create(s);
    h.create_task_set(WEB, rev, 100.0);
    h.create_task_set(WEB, rev, 50.0);
    h.settle();
    assert_eq!(h.running(WEB).len(), 3);
    h.delete(WEB);
    h.settle();
    assert!(h.running(WEB).is_empty());
    assert_eq!(h.service(WEB).status, ServiceStatus::Inactive);
}

#[test]
fn a_task_set_splits_by_its_own_strategy_and_asks_its_provider_for_room() {
    use berth_api::types as api;
    use berth_model::capacity::{PROVIDER_ATTRIBUTE, StrategyItem};
    use berth_model::command::{CreateCapacityProvider, PutClusterCapacityProviders};
    use berth_scheduler::capacity::reservations;
    let (mut h, ids) = cluster();
    for p in ["a", "empty"] {
        h.ok(CreateCapacityProvider {
            name: p.into(),
            auto_scaling_group: api::AutoScalingGroupProvider::default(),
            tags: Vec::new(),
        });
    }
    h.ok(PutClusterCapacityProviders {
        cluster: CLUSTER.into(),
        providers: vec!["a".into(), "empty".into()],
        default_strategy: Vec::new(),
    });
    h.put_attribute(ids[0], PROVIDER_ATTRIBUTE, Some("a"));
    let rev = h.register(def(GOOD));
    let s = h.external(WEB, 4);
    h.create(s);
    let item = |provider: &str| StrategyItem {
        provider: provider.into(),
        base: 0,
        weight: 1,
    };
    let on_a = h.create_task_set(WEB, rev, 50.0);
    h.change_task_set(WEB, &on_a, |t| {
        t.capacity_provider_strategy = vec![item("a")]
    });
    let nowhere = h.create_task_set(WEB, rev, 75.0);
    h.change_task_set(WEB, &nowhere, |t| {
        t.capacity_provider_strategy = vec![item("empty")]
    });
    h.settle();
    let a_tasks = of_set(&h, &on_a);
    assert_eq!(a_tasks.len(), 2);
    assert!(a_tasks.iter().all(|t| t.instance == Some(ids[0])));
    assert!(of_set(&h, &nowhere).is_empty());
    assert!(h.count_events(WEB, "capacity provider empty has no container instances") >= 1);
    // The empty provider's reservation counts the set's three waiting tasks.
    let waiting: Vec<(String, u32)> = reservations(&h.state, CLUSTER)
        .into_iter()
        .map(|(p, r)| (p.to_string(), r.waiting_tasks))
        .collect();
    assert_eq!(waiting, [("a".into(), 0), ("empty".into(), 3)]);
}
