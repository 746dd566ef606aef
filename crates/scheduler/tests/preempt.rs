//! Preemption (`berth_scheduler::preempt::choose`) on real states, and its commit
//! (`PreemptAndPlace`) through the state machine: victims are of lower priority and
//! unprotected, the set is the greedy cheap one and irreducible, the cheapest instance wins,
//! nothing is chosen when nothing would make room, and the commit re-checks all of it.

mod common;

use berth_model::command::preempt::STOP_CODE;
use berth_model::command::*;
use berth_model::entity::*;
use berth_model::priority::Priority;
use berth_model::{Error, Millis};
use berth_scheduler::PlacementRequest;
use berth_scheduler::preempt::{Choice, choose};
use common::*;

fn p(value: u16) -> Priority {
    Priority::new(value).unwrap()
}

fn wants(memory: i64) -> PlacementRequest {
    request("urgent", needs(0, memory), 1)
}

fn pick(w: &World, memory: i64, priority: u16) -> Option<Choice> {
    choose(&w.state, &wants(memory), p(priority), w.now(), 1, &[])
}

/// The preemptor as a task, placed where `choice` says.
fn preemptor(w: &mut World, choice: &Choice, memory: i64, priority: u16) -> PreemptAndPlace {
    let id = w.task_id();
    PreemptAndPlace {
        cluster: CLUSTER.into(),
        task: Box::new(Task {
            priority: Some(p(priority)),
            ..task(id, CLUSTER, choice.instance, "urgent", needs(0, memory))
        }),
        distinct_instance: false,
        victims: choice.victims.clone(),
    }
}

#[test]
fn only_lower_priority_unprotected_tasks_are_chosen_lowest_first() {
    let mut w = World::new();
    let i = w.add(host(1024, 1024));
    let service = w.run_at(i, "batch", 512, 500, None);
    let batch = w.run_at(i, "batch", 512, 100, None);
    let choice = pick(&w, 512, 900).expect("the batch task makes room");
    assert_eq!(choice.instance, i);
    assert_eq!(
        choice.victims,
        vec![batch],
        "the lowest priority goes first"
    );
    // At the service's own priority, only the batch task is below it.
    assert_eq!(pick(&w, 512, 500).unwrap().victims, vec![batch]);
    // Not even the batch task is below 100: nothing to preempt.
    assert_eq!(pick(&w, 512, 100), None);
    // Needing both tasks' room, a 600 may take the 500 too; a 500 may not.
    assert_eq!(pick(&w, 1024, 600).unwrap().victims.len(), 2);
    assert_eq!(pick(&w, 1024, 500), None, "{service} is not below 500");
}

#[test]
fn protected_tasks_are_never_chosen() {
    let mut w = World::new();
    let i = w.add(host(1024, 1024));
    let until = Millis(w.now().0 + 3_600_000);
    let guarded = w.run_at(i, "batch", 512, 100, Some(until));
    let open = w.run_at(i, "batch", 512, 100, None);
    assert_eq!(pick(&w, 512, 900).unwrap().victims, vec![open]);
    assert_eq!(pick(&w, 1024, 900), None, "{guarded} is protected");
    // Once its protection lapses it is fair game.
    let later = choose(&w.state, &wants(1024), p(900), Millis(until.0 + 1), 1, &[]).unwrap();
    assert_eq!(later.victims.len(), 2);
}

#[test]
fn nothing_is_chosen_when_no_set_would_make_room() {
    let mut w = World::new();
    let i = w.add(host(1024, 1024));
    w.run_at(i, "batch", 1024, 100, None);
    assert_eq!(pick(&w, 2048, 900), None, "bigger than the instance");
    let mut empty = World::new();
    empty.add(host(1024, 1024));
    assert_eq!(
        pick(&empty, 512, 900),
        None,
        "it fits without preempting: not a preemption"
    );
    assert_eq!(pick(&World::new(), 512, 900), None, "no instance at all");
}

#[test]
fn the_greedy_set_is_irreducible_and_prefers_tasks_that_cover_the_shortfall() {
    let mut w = World::new();
    let i = w.add(host(1024, 1024));
    let small_a = w.run_at(i, "batch", 128, 50, None);
    let small_b = w.run_at(i, "batch", 128, 50, None);
    let big = w.run_at(i, "batch", 768, 100, None);
    // The greedy pass takes the two priority-50 tasks first, then the big one; the pruning
    // pass finds that the big one alone is enough.
    let choice = pick(&w, 768, 500).unwrap();
    assert_eq!(choice.victims, vec![big]);
    // Among equals, the task covering the shortfall is taken rather than several small ones.
    let mut v = World::new();
    let j = v.add(host(1024, 1024));
    for _ in 0..3 {
        v.run_at(j, "batch", 128, 100, None);
    }
    let large = v.run_at(j, "batch", 640, 100, None);
    assert_eq!(pick(&v, 640, 500).unwrap().victims, vec![large]);
    // Where only the small ones are lower, both of them go: the fewest that make room.
    let choice = pick(&w, 256, 90).unwrap();
    let mut victims = choice.victims.clone();
    victims.sort();
    assert_eq!(victims, vec![small_a, small_b]);
}

#[test]
fn the_cheapest_instance_wins_lowest_priority_then_fewest_victims() {
    let mut w = World::new();
    let two = w.add(host(1024, 1024));
    let one = w.add(host(1024, 1024));
    let mid = w.add(host(1024, 1024));
    w.run_at(two, "batch", 512, 100, None);
    w.run_at(two, "batch", 512, 100, None);
    let whole = w.run_at(one, "batch", 1024, 100, None);
    w.run_at(mid, "batch", 1024, 300, None);
    let choice = pick(&w, 1024, 900).unwrap();
    assert_eq!(
        (choice.instance, choice.victims),
        (one, vec![whole]),
        "one victim of 100 beats two of 100 and one of 300"
    );
    // An instance this pass already disturbed is preferred at equal cost.
    let other = w.add(host(1024, 1024));
    let twin = w.run_at(other, "batch", 1024, 100, None);
    let touched = choose(&w.state, &wants(1024), p(900), w.now(), 1, &[other]).unwrap();
    assert_eq!((touched.instance, touched.victims), (other, vec![twin]));
}

#[test]
fn a_daemon_preempts_on_its_own_instance_only() {
    let mut w = World::new();
    let a = w.add(host(1024, 1024));
    let b = w.add(host(1024, 1024));
    w.run_at(a, "batch", 1024, 100, None);
    let on_b = w.run_at(b, "batch", 1024, 100, None);
    let mut daemon = wants(256);
    daemon.instances = Some(vec![b]);
    let choice = choose(&w.state, &daemon, Priority::DAEMON, w.now(), 1, &[]).unwrap();
    assert_eq!((choice.instance, choice.victims), (b, vec![on_b]));
}

#[test]
fn the_commit_stops_the_victims_naming_the_preemptor_and_places_it() {
    let mut w = World::new();
    let i = w.add(host(1024, 1024));
    let victim = w.run_at(i, "batch", 1024, 100, None);
    let choice = pick(&w, 1024, 900).unwrap();
    let command = preemptor(&mut w, &choice, 1024, 900);
    let by = command.task.id;
    let Preempted { task, evicted } = w.ok(command);
    assert_eq!(task.instance, Some(i));
    assert_eq!(evicted.len(), 1);
    let stopped = w.state.task(victim).unwrap();
    assert_eq!(stopped.last_status, TaskStatus::Stopped);
    assert_eq!(stopped.desired_status, DesiredStatus::Stopped);
    assert_eq!(stopped.stop_code.as_deref(), Some(STOP_CODE));
    let reason = stopped.stopped_reason.as_deref().unwrap();
    assert!(
        reason.contains(&format!("Preempted by (task {by}) of priority 900")),
        "{reason}"
    );
    assert!(reason.len() <= 255);
    // The instance holds exactly the preemptor.
    assert_eq!(w.state.usage(i).map(|u| u.memory), Some(1024));
}

#[test]
fn the_commit_refuses_the_whole_preemption_when_anything_moved() {
    let mut w = World::new();
    let i = w.add(host(1024, 1024));
    let first = w.run_at(i, "batch", 512, 100, None);
    let second = w.run_at(i, "batch", 512, 100, None);
    let choice = pick(&w, 1024, 900).unwrap();
    assert_eq!(choice.victims.len(), 2);
    let refused = |w: &mut World, command: PreemptAndPlace| {
        let before = w.state.clone();
        match w.apply(command) {
            Err(Error::Conflict(m)) => assert!(m.contains("no longer holds"), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(w.state.task(first), before.task(first), "nothing changed");
        assert_eq!(w.state.task(second), before.task(second), "nothing changed");
        assert_eq!(w.state.usage(i), before.usage(i));
    };
    // A victim at or above the preemptor's priority.
    let command = preemptor(&mut w, &choice, 1024, 100);
    refused(&mut w, command);
    // A victim protected since the snapshot.
    let mut stale = w.fork();
    let id = stale.task_id();
    stale.ok(PlaceTasks {
        cluster: CLUSTER.into(),
        tasks: vec![Task {
            priority: Some(p(100)),
            protected_until: Some(Millis(w.now().0 + 3_600_000)),
            ..task(id, CLUSTER, i, "batch", needs(0, 0))
        }],
        client_token: None,
        distinct_instance: false,
    });
    let mut command = preemptor(&mut w, &choice, 1024, 900);
    command.victims.push(id);
    refused(&mut stale, command);
    // Only one of the two victims: the preemptor would not fit.
    let mut command = preemptor(&mut w, &choice, 1024, 900);
    command.victims.truncate(1);
    refused(&mut w, command);
    // A victim already stopped.
    let command = preemptor(&mut w, &choice, 1024, 900);
    w.report(second, TaskStatus::Stopped);
    refused(&mut w, command);
}
