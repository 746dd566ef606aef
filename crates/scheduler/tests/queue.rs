//! The queue's decision (`berth_scheduler::queue::decide`) on real states: priority, then
//! round-robin between task groups, FIFO within a group among tasks that compete for the same
//! capacity, partial placement, expiry with ECS's
//! reason, constraints kept from the RunTask, preemption of lower-priority work; and a
//! state-machine property test interleaving queued RunTasks of several priorities, services
//! placing (and preempting) with and without task protection, capacity coming and going and
//! StopTask with the queue controller's passes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use berth_api::types as api;
use berth_model::command::preempt;
use berth_model::command::*;
use berth_model::entity::*;
use berth_model::priority::Priority;
use berth_model::queue::QueuedPlacement;
use berth_model::requirements::requirements;
use berth_model::{InstanceId, Millis, TaskId};
use berth_scheduler::preempt::choose;
use berth_scheduler::queue::{Decision, ahead_of_new, decide, order, standing};
use berth_scheduler::{PlacementRequest, TaskTemplate, complete_overrides, place};
use common::*;
use proptest::prelude::*;

/// Registers family `family` with one container of `cpu` units and `memory` MiB.
fn define(w: &mut World, family: &str, cpu: i32, memory: i32) {
    let spec = api::TaskDefinition {
        family: Some(family.into()),
        container_definitions: Some(vec![api::ContainerDefinition {
            name: Some("app".into()),
            image: Some("busybox".into()),
            cpu: Some(cpu),
            memory: Some(memory),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let needs = requirements(&spec, &api::TaskOverride::default()).unwrap();
    w.ok(RegisterTaskDefinition {
        family: family.into(),
        spec: Arc::new(spec),
        requirements: needs,
        tags: Vec::new(),
    });
}

/// Queues `n` tasks of `family` (revision 1) at `priority` as RunTask does when nothing fits:
/// they wait `wait_ms` from now, kept with `constraints`, in `group` (RunTask's default,
/// `family:NAME`, when `None`).
fn enqueue_with(
    w: &mut World,
    family: &str,
    n: usize,
    wait_ms: i64,
    constraints: Vec<api::PlacementConstraint>,
    priority: Priority,
    group: Option<&str>,
) -> Vec<TaskId> {
    let definition = w.state.task_definition(family, 1).unwrap().clone();
    let overrides = complete_overrides(&definition, None);
    let needs = requirements(&definition.spec, &overrides).unwrap();
    let template = TaskTemplate {
        overrides,
        needs,
        priority,
        ..TaskTemplate::plain(
            CLUSTER.into(),
            definition,
            group.map_or_else(|| format!("family:{family}"), str::to_owned),
            None,
            Vec::new(),
            Vec::new(),
            w.now(),
        )
    };
    let queued = QueuedPlacement {
        until: w.now().saturating_add_ms(wait_ms),
        constraints,
        strategies: Vec::new(),
    };
    let ids: Vec<TaskId> = (0..n).map(|_| w.task_id()).collect();
    let tasks = ids
        .iter()
        .map(|id| template.queued_task(*id, queued.clone()))
        .collect();
    let placed = w.ok(PlaceTasks {
        cluster: CLUSTER.into(),
        tasks,
        client_token: None,
        distinct_instance: false,
    });
    assert_eq!(placed.tasks.len(), n, "queued tasks are always accepted");
    assert!(placed.tasks.iter().all(|t| t.is_queued()));
    ids
}

fn enqueue(w: &mut World, family: &str, n: usize, wait_ms: i64) -> Vec<TaskId> {
    enqueue_with(
        w,
        family,
        n,
        wait_ms,
        Vec::new(),
        Priority::STANDALONE,
        None,
    )
}

fn enqueue_at(w: &mut World, priority: u16, family: &str, n: usize) -> Vec<TaskId> {
    let priority = Priority::new(priority).unwrap();
    enqueue_with(w, family, n, 60_000, Vec::new(), priority, None)
}

/// Queues `n` tasks of `family` in task group `group` at `priority`.
fn enqueue_in(w: &mut World, group: &str, priority: u16, family: &str, n: usize) -> Vec<TaskId> {
    let priority = Priority::new(priority).unwrap();
    enqueue_with(w, family, n, 60_000, Vec::new(), priority, Some(group))
}

/// The order the queue's decision tries the cluster's queued tasks in.
fn turns_of(w: &World) -> Vec<TaskId> {
    order(&w.state, CLUSTER).iter().map(|t| t.id).collect()
}

/// Commits a preemption as a controller does, and checks the state machine kept its promise:
/// every task it stopped was of lower priority than the preemptor and not protected.
fn commit_preemption(w: &mut World, command: PreemptAndPlace) -> Preempted {
    let preempted = w.ok(command);
    for victim in &preempted.evicted {
        assert!(
            victim.priority() < preempted.task.priority(),
            "{} (priority {}) evicted for {} (priority {})",
            victim.id,
            victim.priority(),
            preempted.task.id,
            preempted.task.priority()
        );
        assert!(
            !victim.protected_at(victim.stopped_at.unwrap()),
            "{} was protected",
            victim.id
        );
        assert_eq!(victim.stop_code.as_deref(), Some(preempt::STOP_CODE));
    }
    preempted
}

/// One pass of the queue controller at `now`: decides and commits. Returns the decision and
/// the ids it placed (in queue order; those placed by preemption after the others).
fn pass_at(w: &mut World, now: Millis) -> (Decision, Vec<TaskId>) {
    let decision = decide(&w.state, CLUSTER, now, 7);
    // Committed at the time it was decided, as the controller stamps its writes.
    w.advance_to(now);
    let mut placed = Vec::new();
    if let Some(command) = decision.place.clone() {
        let Placed { tasks, rejected } = w.ok(command);
        assert!(rejected.is_empty(), "refused at commit: {rejected:?}");
        placed = tasks.iter().map(|t| t.id).collect();
    }
    for command in decision.preempt.clone() {
        placed.push(commit_preemption(w, command).task.id);
    }
    if let Some(command) = decision.expire.clone() {
        let done = w.ok(command);
        assert!(done.failures.is_empty(), "{:?}", done.failures);
    }
    (decision, placed)
}

fn pass(w: &mut World) -> (Decision, Vec<TaskId>) {
    let now = w.now();
    pass_at(w, now)
}

fn queue_of(w: &World) -> Vec<TaskId> {
    w.state.queued(CLUSTER).map(|t| t.id).collect()
}

/// A cluster with one 1024-unit, 1024 MiB instance, full with one task; families `half`
/// (512 MiB) and `whole` (1024 MiB) registered.
fn full() -> (World, InstanceId, TaskId) {
    let mut w = World::new();
    define(&mut w, "half", 10, 512);
    define(&mut w, "whole", 10, 1024);
    define(&mut w, "huge", 10, 4096);
    let i = w.add(host(1024, 1024));
    let hog = w.run(i, "hog", needs(0, 1024));
    w.report(hog, TaskStatus::Running);
    (w, i, hog)
}

#[test]
fn queued_tasks_wait_holding_nothing_and_drain_in_fifo_order() {
    let (mut w, i, hog) = full();
    let a = enqueue(&mut w, "half", 1, 60_000)[0];
    let b = enqueue(&mut w, "half", 1, 60_000)[0];
    let c = enqueue(&mut w, "half", 1, 60_000)[0];
    assert_eq!(queue_of(&w), vec![a, b, c], "queue order is creation order");
    assert_eq!(
        w.state.usage(i).unwrap().memory,
        1024,
        "queued tasks hold nothing"
    );
    assert_eq!(w.state.counts(CLUSTER).pending_tasks, 3);

    let (d, placed) = pass(&mut w);
    assert!(placed.is_empty() && d.expire.is_none(), "{d:?}");
    assert_eq!(
        d.wake_at,
        Some(w.state.task(a).unwrap().queued.as_ref().unwrap().until),
        "it looks again when the first wait runs out"
    );

    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![a, b], "the first two fit, in order");
    assert_eq!(queue_of(&w), vec![c]);
    let t = w.state.task(a).unwrap();
    assert_eq!(
        (t.instance, t.last_status, t.desired_status),
        (Some(i), TaskStatus::Pending, DesiredStatus::Running)
    );
    assert_eq!(t.reservation.memory, 512);
    assert_eq!(w.state.usage(i).unwrap().memory, 1024);
    // A second pass on what the first left decides nothing.
    let (d, placed) = pass(&mut w);
    assert!(placed.is_empty() && d.expire.is_none(), "{d:?}");

    w.report(a, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![c]);
    assert!(queue_of(&w).is_empty());
    assert_eq!(w.state.counts(CLUSTER).pending_tasks, 2);
}

#[test]
fn a_task_that_cannot_fit_does_not_hold_up_smaller_ones_behind_it() {
    let (mut w, _, hog) = full();
    let whole = enqueue(&mut w, "whole", 1, 60_000)[0];
    let half = enqueue(&mut w, "half", 2, 60_000);
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![whole], "the head of the queue goes first");
    assert_eq!(queue_of(&w), half);

    let (mut w, _, hog) = full();
    let huge = enqueue(&mut w, "huge", 1, 60_000)[0];
    let half = enqueue(&mut w, "half", 1, 60_000)[0];
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![half], "no instance can ever take the huge one");
    assert_eq!(queue_of(&w), vec![huge]);
    let s = standing(&w.state, huge).unwrap();
    assert_eq!((s.position, s.length, s.fits_now), (1, 1, false));
    assert_eq!(s.waits_for[0].reason, FailureReason::ResourceMemory);
}

#[test]
fn higher_priority_goes_first_and_fifo_holds_within_a_priority() {
    let (mut w, _, hog) = full();
    let low = enqueue_at(&mut w, 100, "half", 2);
    let high = enqueue_at(&mut w, 900, "half", 1)[0];
    let mid = enqueue_at(&mut w, 500, "half", 1)[0];
    let high2 = enqueue_at(&mut w, 900, "half", 1)[0];
    assert_eq!(
        queue_of(&w),
        vec![high, high2, mid, low[0], low[1]],
        "by priority, then in the order they came"
    );
    let s = standing(&w.state, mid).unwrap();
    assert_eq!((s.priority.get(), s.position, s.length), (500, 3, 5));
    assert_eq!(
        w.state.task(high).unwrap().priority,
        Priority::new(900),
        "stored on the task"
    );

    // Room for two: the two high ones, though they came after the low ones.
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![high, high2]);
    assert_eq!(queue_of(&w), vec![mid, low[0], low[1]]);
    w.report(high, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![mid]);
    w.report(high2, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![low[0]], "FIFO within a priority");
}

#[test]
fn a_lower_priority_task_takes_only_room_no_higher_one_could_use() {
    // The high one cannot fit (1024 MiB on a half-free instance); a low one that fits in the
    // half may go — it takes nothing the high one could have used.
    // (The other half is held by a task of higher priority still, so the high one cannot
    // preempt it either.)
    let (mut w, i, hog) = full();
    let high = enqueue_at(&mut w, 900, "whole", 1)[0];
    let low = enqueue_at(&mut w, 100, "half", 1)[0];
    w.report(hog, TaskStatus::Stopped);
    w.run_at(i, "hog", 512, 1000, None);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![low]);
    assert_eq!(queue_of(&w), vec![high]);

    // With room for exactly one whole task, the high one takes it and the low ones wait,
    // though they came first and are smaller.
    let (mut w, _, hog) = full();
    let low = enqueue_at(&mut w, 100, "half", 2);
    let high = enqueue_at(&mut w, 900, "whole", 1)[0];
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![high]);
    assert_eq!(queue_of(&w), low);
}

#[test]
fn a_queued_task_preempts_lower_priority_work_but_never_its_equals_or_protected_tasks() {
    // The hog (standalone, 100) holds the instance: a queued 100 waits, a queued 500 takes
    // its place in one transaction, and the hog's stop says who took it.
    let (mut w, i, hog) = full();
    let equal = enqueue_at(&mut w, 100, "whole", 1)[0];
    let (d, placed) = pass(&mut w);
    assert!(placed.is_empty() && d.preempt.is_empty(), "{d:?}");
    let high = enqueue_at(&mut w, 500, "whole", 1)[0];
    let (d, placed) = pass(&mut w);
    assert_eq!(placed, vec![high]);
    assert_eq!(d.preempt[0].victims, vec![hog]);
    let t = w.state.task(high).unwrap();
    assert_eq!((t.instance, t.last_status), (Some(i), TaskStatus::Pending));
    let stopped = w.state.task(hog).unwrap();
    assert_eq!(stopped.stop_code.as_deref(), Some(preempt::STOP_CODE));
    assert!(
        stopped
            .stopped_reason
            .as_deref()
            .unwrap()
            .starts_with(&format!("Preempted by (task {high}) of priority 500")),
        "{:?}",
        stopped.stopped_reason
    );
    assert_eq!(queue_of(&w), vec![equal], "the equal one still waits");

    // A protected task is never taken, whatever the priority.
    let mut w = World::new();
    define(&mut w, "whole", 10, 1024);
    let i = w.add(host(1024, 1024));
    let until = Millis(w.now().0 + 3_600_000);
    let guarded = w.run_at(i, "hog", 1024, 0, Some(until));
    let top = enqueue_at(&mut w, 1000, "whole", 1)[0];
    let (d, placed) = pass(&mut w);
    assert!(placed.is_empty() && d.preempt.is_empty(), "{d:?}");
    assert!(w.state.task(guarded).unwrap().is_live());
    let s = standing(&w.state, top).unwrap();
    assert_eq!(s.position, 1);
}

#[test]
fn a_wait_that_runs_out_stops_the_task_with_ecs_words() {
    let (mut w, i, hog) = full();
    let [early, late] = enqueue(&mut w, "half", 2, 5_000)[..] else {
        unreachable!()
    };
    let until = w.state.task(early).unwrap().queued.as_ref().unwrap().until;
    let (d, _) = pass_at(&mut w, Millis(until.0 - 1));
    assert!(d.is_empty() && d.wake_at == Some(until), "{d:?}");

    let (d, _) = pass_at(&mut w, until);
    let expired = d.expire.unwrap();
    assert_eq!(expired.tasks.len(), 2);
    let t = w.state.task(early).unwrap();
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.desired_status, DesiredStatus::Stopped);
    assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("TaskFailedToStart: RESOURCE:MEMORY")
    );
    assert!(!w.state.task(late).unwrap().is_live());
    assert!(queue_of(&w).is_empty());
    assert_eq!(w.state.counts(CLUSTER).pending_tasks, 0);
    assert_eq!(w.state.usage(i).unwrap().memory, 1024);

    // A task whose wait is over but which fits now is placed, not failed.
    let late = enqueue(&mut w, "half", 1, 1)[0];
    w.report(hog, TaskStatus::Stopped);
    let later = Millis(w.now().0 + 10_000);
    let (d, placed) = pass_at(&mut w, later);
    assert_eq!(placed, vec![late]);
    assert!(d.expire.is_none());
}

#[test]
fn an_expiry_decided_on_a_stale_snapshot_does_not_touch_a_placed_task() {
    let (mut w, _, hog) = full();
    let t = enqueue(&mut w, "half", 1, 1)[0];
    let stale = decide(&w.state, CLUSTER, Millis(w.now().0 + 10_000), 1);
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![t]);
    let done = w.ok(stale.expire.unwrap());
    assert!(done.done.is_empty());
    assert_eq!(done.failures.len(), 1);
    assert_eq!(w.state.task(t).unwrap().last_status, TaskStatus::Pending);
}

#[test]
fn a_queued_task_keeps_its_constraints() {
    let mut w = World::new();
    define(&mut w, "half", 10, 512);
    let a = w.add(host(1024, 1024).az("a"));
    let b = w.add(host(1024, 1024).az("b"));
    let hog_a = w.run(a, "hog", needs(0, 1024));
    let hog_b = w.run(b, "hog", needs(0, 1024));
    let only_b = api::PlacementConstraint {
        r#type: Some("memberOf".into()),
        expression: Some(format!("attribute:{AZ} == b")),
    };
    let t = enqueue_with(
        &mut w,
        "half",
        1,
        60_000,
        vec![only_b],
        Priority::STANDALONE,
        None,
    )[0];
    w.report(hog_a, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert!(placed.is_empty(), "room in zone a is not for it");
    let s = standing(&w.state, t).unwrap();
    let why: Vec<_> = s.waits_for.iter().map(|r| (r.instance, r.reason)).collect();
    assert_eq!(
        why,
        vec![
            (a, FailureReason::Attribute),
            (b, FailureReason::ResourceMemory)
        ],
        "closest first: a has the room but not the zone"
    );
    w.report(hog_b, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![t]);
    assert_eq!(w.state.task(t).unwrap().instance, Some(b));
}

#[test]
fn stopping_a_queued_task_stops_it_at_once_and_the_queue_moves_on() {
    let (mut w, _, hog) = full();
    let [a, b] = enqueue(&mut w, "whole", 2, 60_000)[..] else {
        unreachable!()
    };
    let stopped = w.ok(StopTask {
        cluster: CLUSTER.into(),
        id: a,
        reason: None,
        stop_code: Some("UserInitiated".into()),
    });
    assert_eq!(stopped.last_status, TaskStatus::Stopped);
    assert_eq!(queue_of(&w), vec![b]);
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![b]);
}

#[test]
fn task_groups_at_one_priority_take_turns_and_each_group_is_fifo() {
    let (mut w, _, hog) = full();
    // A big batch job queues first, two small ones after it, all at priority 100.
    let big = enqueue_in(&mut w, "job:big", 100, "half", 4);
    let small = enqueue_in(&mut w, "job:small", 100, "half", 2);
    let tiny = enqueue_in(&mut w, "job:tiny", 100, "half", 1)[0];
    // A higher priority still goes first, whatever its group.
    let urgent = enqueue_in(&mut w, "job:urgent", 500, "half", 1)[0];
    assert_eq!(
        queue_of(&w),
        [vec![urgent], big.clone(), small.clone(), vec![tiny]].concat(),
        "the state keeps arrival order"
    );
    assert_eq!(
        turns_of(&w),
        vec![
            urgent, big[0], small[0], tiny, big[1], small[1], big[2], big[3]
        ],
        "round 1: every group's first, in arrival order; round 2: the seconds; then the rest"
    );
    let s = standing(&w.state, tiny).unwrap();
    assert_eq!((s.position, s.length), (4, 8), "its place is its turn");
    assert_eq!(
        ahead_of_new(&w.state, CLUSTER, Priority::STANDALONE, "job:tiny"),
        6,
        "a second tiny task goes after round 2's big and small ones"
    );
    assert_eq!(
        ahead_of_new(&w.state, CLUSTER, Priority::STANDALONE, "job:other"),
        4,
        "a new group's first task takes round 1's last turn"
    );
    assert_eq!(
        ahead_of_new(&w.state, CLUSTER, Priority::SERVICE, "job:big"),
        1
    );

    // Room for two: the urgent one and the big job's head.
    w.report(hog, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![urgent, big[0]]);
    assert_eq!(
        turns_of(&w),
        vec![small[0], tiny, big[1], small[1], big[2], big[3]],
        "the big job runs one now: the others' first tasks go before its second"
    );
    assert_eq!(
        ahead_of_new(&w.state, CLUSTER, Priority::STANDALONE, "job:big"),
        6,
        "behind every waiting task: its round is 5, the others' end at 2"
    );
    // Room frees one task at a time: the groups running fewest go first.
    w.report(urgent, TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![small[0]], "its turn, though big[1] came first");
    w.report(big[0], TaskStatus::Stopped);
    let (_, placed) = pass(&mut w);
    assert_eq!(
        placed,
        vec![big[1]],
        "nothing of the big job runs now: round 1, oldest"
    );
    assert_eq!(turns_of(&w), vec![tiny, big[2], small[1], big[3]]);
    let (d, placed) = pass(&mut w);
    assert!(
        placed.is_empty() && d.is_empty(),
        "a second pass decides nothing: {d:?}"
    );
}

#[test]
fn a_group_whose_task_cannot_fit_does_not_hold_up_other_groups_turns() {
    let (mut w, i, hog) = full();
    let whole = enqueue_in(&mut w, "job:a", 100, "whole", 1)[0];
    let halves = enqueue_in(&mut w, "job:a", 100, "half", 2);
    let other = enqueue_in(&mut w, "job:b", 100, "half", 1)[0];
    assert_eq!(turns_of(&w), vec![whole, other, halves[0], halves[1]]);
    // Half the instance frees: job:a's head cannot fit, job:b's turn comes next.
    w.report(hog, TaskStatus::Stopped);
    w.run_at(i, "hog", 512, 1000, None);
    let (_, placed) = pass(&mut w);
    assert_eq!(placed, vec![other]);
    assert_eq!(turns_of(&w), vec![whole, halves[0], halves[1]]);
}

// ---- the state machine property ----

#[derive(Debug, Clone)]
enum Step {
    /// A queued RunTask of `count` tasks of family `sizes[size]` in task group `job:<group>` at
    /// `priority`, waiting `wait` seconds.
    Queue {
        size: usize,
        group: usize,
        count: usize,
        wait: i64,
        priority: u16,
    },
    /// A new instance of `memory` MiB.
    Register { memory: i64 },
    /// The instance at this position (of those registered) is deregistered.
    Deregister(usize),
    /// The live placed task at this position stops (its agent reports STOPPED).
    Finish(usize),
    /// The queued task at this position is stopped by its user.
    StopQueued(usize),
    /// Time passes, in seconds.
    Wait(i64),
    /// A service places one task of this size at this priority, as its reconciler does:
    /// anywhere it fits, else by preemption; protected (for the whole run) or not.
    Service {
        size: usize,
        priority: u16,
        protected: bool,
    },
}

const SIZES: [(&str, i32); 3] = [("s", 256), ("m", 512), ("l", 1024)];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..SIZES.len(), 0..3usize, 1..4usize, 1..30i64, prop_oneof![Just(100u16), Just(500), Just(900)])
            .prop_map(|(size, group, count, wait, priority)| Step::Queue { size, group, count, wait, priority }),
        1 => prop_oneof![Just(512i64), Just(1024), Just(2048)]
            .prop_map(|memory| Step::Register { memory }),
        1 => (0..8usize).prop_map(Step::Deregister),
        3 => (0..16usize).prop_map(Step::Finish),
        1 => (0..16usize).prop_map(Step::StopQueued),
        2 => (1..20i64).prop_map(Step::Wait),
        2 => (0..SIZES.len(), prop_oneof![Just(100u16), Just(500), Just(900)], any::<bool>())
            .prop_map(|(size, priority, protected)| Step::Service { size, priority, protected }),
    ]
}

/// How each queued task left the queue, for the end-of-run check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Placed,
    Expired,
    Stopped,
}

/// No instance holds more than it has: the live tasks on it, summed.
fn not_over_committed(w: &World) {
    let mut held: BTreeMap<InstanceId, i64> = BTreeMap::new();
    for t in w.state.tasks_after(CLUSTER, &Default::default(), None) {
        if let (Some(i), true) = (t.instance, t.is_live()) {
            *held.entry(i).or_default() += t.reservation.memory;
        }
    }
    for (i, memory) in held {
        let instance = w.state.instance(i).unwrap();
        assert!(
            memory <= instance.resources.memory,
            "instance {i} holds {memory} MiB of {}",
            instance.resources.memory
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_never_over_commits_keeps_priority_and_fifo_and_every_task_leaves_it(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let mut w = World::new();
        for (family, memory) in SIZES {
            define(&mut w, family, 0, memory);
        }
        let mut instances = vec![w.add(host(4096, 1024))];
        let mut fates: BTreeMap<TaskId, Fate> = BTreeMap::new();
        let mut memory_of: BTreeMap<TaskId, i64> = BTreeMap::new();
        let mut priority_of: BTreeMap<TaskId, u16> = BTreeMap::new();
        let mut guarded: BTreeSet<TaskId> = BTreeSet::new();
        let mut clock = w.now();
        for s in steps {
            match s {
                Step::Queue { size, group, count, wait, priority } => {
                    let (family, memory) = SIZES[size];
                    let p = Priority::new(priority).unwrap();
                    let group = format!("job:{group}");
                    let wait = wait * 1000;
                    for id in enqueue_with(&mut w, family, count, wait, Vec::new(), p, Some(&group)) {
                        memory_of.insert(id, i64::from(memory));
                        priority_of.insert(id, priority);
                    }
                }
                Step::Register { memory } => instances.push(w.add(host(4096, memory))),
                Step::Deregister(k) => {
                    if let Some(i) = instances.get(k).copied() {
                        w.deregister(i);
                    }
                }
                Step::Finish(k) => {
                    let live: Vec<TaskId> = w
                        .state
                        .tasks_after(CLUSTER, &Default::default(), None)
                        .filter(|t| t.is_live() && t.instance.is_some())
                        .map(|t| t.id)
                        .collect();
                    if let Some(id) = live.get(k % live.len().max(1)).copied() {
                        w.report(id, TaskStatus::Stopped);
                    }
                }
                Step::StopQueued(k) => {
                    let queue = queue_of(&w);
                    if let Some(id) = queue.get(k % queue.len().max(1)).copied() {
                        w.ok(StopTask {
                            cluster: CLUSTER.into(),
                            id,
                            reason: None,
                            stop_code: Some("UserInitiated".into()),
                        });
                        fates.insert(id, Fate::Stopped);
                    }
                }
                Step::Wait(seconds) => clock = Millis(clock.0 + seconds * 1000),
                Step::Service { size, priority, protected } => {
                    let memory = i64::from(SIZES[size].1);
                    let group = format!("service:svc{priority}");
                    let req = PlacementRequest::new(CLUSTER, &group, needs(0, memory), 1);
                    let p = Priority::new(priority).unwrap();
                    let until = protected.then_some(Millis(i64::MAX / 2));
                    let id = w.task_id();
                    let on = |instance| Task {
                        priority: Some(p),
                        protected_until: until,
                        ..task(id, CLUSTER, instance, &group, needs(0, memory))
                    };
                    let plan = place(&w.state, &req, 3);
                    if let Some(first) = plan.placements.first() {
                        w.ok(PlaceTasks {
                            cluster: CLUSTER.into(),
                            tasks: vec![on(first.instance)],
                            client_token: None,
                            distinct_instance: false,
                        });
                    } else if let Some(choice) =
                        choose(&w.state, &req, p, clock.max(w.now()), 3, &[])
                    {
                        commit_preemption(&mut w, PreemptAndPlace {
                            cluster: CLUSTER.into(),
                            task: Box::new(on(choice.instance)),
                            distinct_instance: false,
                            victims: choice.victims,
                        });
                    }
                    if w.state.task(id).is_some() {
                        if protected {
                            guarded.insert(id);
                        }
                        priority_of.insert(id, priority);
                    }
                }
            }
            clock = clock.max(w.now());
            // Protected tasks are never preempted.
            for id in &guarded {
                prop_assert_ne!(
                    w.state.task(*id).unwrap().stop_code.as_deref(),
                    Some(preempt::STOP_CODE),
                    "protected {} was preempted", id
                );
            }
            // The state keeps the queue by priority, then arrival.
            for pair in queue_of(&w).windows(2) {
                let (a, b) = (w.state.task(pair[0]).unwrap(), w.state.task(pair[1]).unwrap());
                prop_assert!(priority_of[&a.id] >= priority_of[&b.id], "{} before {}", a.id, b.id);
                if priority_of[&a.id] == priority_of[&b.id] {
                    prop_assert!(a.created_at <= b.created_at, "{} before {}", a.id, b.id);
                }
            }
            // The controller's pass after every change, as it wakes on each.
            let before = turns_of(&w);
            prop_assert_eq!(before.len(), queue_of(&w).len());
            // Queue order holds within a priority: priority never rises along the turns;
            // within one, groups take turns (a group's k-th waiting task goes in round k past
            // the group's placed live tasks, and rounds never go back) and each group is FIFO.
            let every = berth_state::TaskFilter::default();
            let live = w
                .state
                .tasks_after(CLUSTER, &every, None)
                .filter(|t| t.is_live() && t.instance.is_some())
                .fold(BTreeMap::<&str, usize>::new(), |mut m, t| {
                    *m.entry(&t.group).or_default() += 1;
                    m
                });
            let mut round_of: BTreeMap<(u16, &str), usize> = BTreeMap::new();
            let mut last: Option<(u16, usize)> = None;
            let mut newest: BTreeMap<(u16, &str), (Millis, TaskId)> = BTreeMap::new();
            for id in &before {
                let t = w.state.task(*id).unwrap();
                let p = priority_of[id];
                let round = round_of
                    .entry((p, &t.group))
                    .or_insert_with(|| live.get(&*t.group).copied().unwrap_or(0));
                *round += 1;
                if let Some((lp, lr)) = last {
                    prop_assert!(lp >= p, "{} (priority {}) after priority {}", id, p, lp);
                    prop_assert!(lp > p || lr <= *round, "{} in round {} after round {}", id, round, lr);
                }
                last = Some((p, *round));
                let key = (t.created_at, t.id);
                if let Some(prev) = newest.insert((p, &t.group), key) {
                    prop_assert!(prev < key, "{} overtook a task of its group", id);
                }
            }
            let (decision, placed) = pass_at(&mut w, clock);
            for id in &placed {
                fates.insert(*id, Fate::Placed);
            }
            for e in decision.expire.iter().flat_map(|e| &e.tasks) {
                fates.insert(e.id, Fate::Expired);
                prop_assert!(e.reason.starts_with("TaskFailedToStart: "));
            }
            not_over_committed(&w);
            // FIFO: a task placed in this pass never overtook one earlier in the turns, still
            // waiting, that needs no more than it does (it would have fit where it went).
            let waiting: BTreeSet<TaskId> = queue_of(&w).into_iter().collect();
            // Priority: a lower-priority task is never placed while a higher-priority one
            // that needs no more waits.
            for id in &placed {
                for high in &waiting {
                    prop_assert!(
                        !(priority_of[high] > priority_of[id] && memory_of[high] <= memory_of[id]),
                        "{id} (priority {}) was placed while {high} (priority {}), no bigger, waits",
                        priority_of[id],
                        priority_of[high]
                    );
                }
            }
            for (k, id) in before.iter().enumerate() {
                if !placed.contains(id) {
                    continue;
                }
                for earlier in &before[..k] {
                    prop_assert!(
                        !(waiting.contains(earlier) && memory_of[earlier] <= memory_of[id]),
                        "{id} was placed while {earlier}, ahead of it and no bigger, waits"
                    );
                }
            }
        }
        // Drain: every wait runs out; each task left the queue one way or another.
        // A pass that preempts leaves the tasks behind it to the next one.
        let end = Millis(clock.0 + 60_000);
        for _ in 0..=memory_of.len() {
            let (decision, placed) = pass_at(&mut w, end);
            for id in placed {
                fates.insert(id, Fate::Placed);
            }
            for e in decision.expire.iter().flat_map(|e| &e.tasks) {
                fates.insert(e.id, Fate::Expired);
            }
            if decision.preempt.is_empty() {
                break;
            }
        }
        prop_assert!(queue_of(&w).is_empty());
        for id in memory_of.keys() {
            let fate = fates.get(id);
            prop_assert!(fate.is_some(), "{id} left the queue unaccounted for");
            let t = w.state.task(*id).unwrap();
            match fate {
                Some(Fate::Placed) => prop_assert!(t.instance.is_some()),
                Some(Fate::Expired) => {
                    prop_assert_eq!(t.stop_code.as_deref(), Some("TaskFailedToStart"))
                }
                _ => prop_assert_eq!(t.stop_code.as_deref(), Some("UserInitiated")),
            }
        }
        not_over_committed(&w);
    }
}
