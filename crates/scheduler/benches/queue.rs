//! What the queue and preemption cost at scale (issue 16): 1,000 instances of 4,096 CPU units
//! and 8,192 MiB, full with 16,000 tasks of 512 MiB, and 100,000 more waiting in the queue in
//! 10 task groups at one priority (so every pass takes turns between groups).
//!
//! Criterion, pure parts (`cargo bench -p berth-scheduler --bench queue`):
//! - `queue/decide_full`: a queue pass when nothing fits (what the leader pays on each wake of
//!   a full cluster);
//! - `queue/decide_1000_free`: a pass after 1,000 tasks stopped (one per instance): it places
//!   1,000 queued tasks, each planned and committed on the scratch state;
//! - `run_task/place_one`: an unqueued RunTask's scheduler work on the same state — plan one
//!   task and pass it through the commit check;
//! - `preempt/choose_found` and `preempt/choose_none`: one preemption search over the 1,000
//!   instances, for a priority-500 task (every instance has victims) and a priority-100 one
//!   (none has).
//!
//! One run (`cargo bench -p berth-scheduler --bench queue -- drain`): the 100,000-task queue
//! drained as capacity frees — a simulation over the scheduler's pure queue decision and the
//! real state machine, not an end-to-end run (no Raft, no HTTP, no agents): each round 2,000
//! running tasks (the oldest) stop, the queue decides, and its `PlaceQueuedTasks` is applied;
//! it prints the rounds, the scheduler's CPU in the passes and per placement, and an unqueued
//! RunTask's per placement on the same states, for comparison.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::types as api;
use berth_model::command::{PlaceTasks, Placed, RegisterTaskDefinition};
use berth_model::entity::{Task, TaskStatus};
use berth_model::priority::Priority;
use berth_model::queue::QueuedPlacement;
use berth_model::requirements::requirements;
use berth_model::{Millis, Stamped, TaskId};
use berth_scheduler::preempt::choose;
use berth_scheduler::queue::decide;
use berth_scheduler::{TaskTemplate, complete_overrides, place};
use berth_state::State;
use criterion::Criterion;

use common::*;

const INSTANCES: usize = 1_000;
/// 8,192 MiB / 512 MiB.
const PER_INSTANCE: usize = 16;
const QUEUED: usize = 100_000;
const GROUPS: usize = 10;
const MEMORY: i32 = 512;
const CPU: i32 = 128;

/// The `batch` family's template, in `group`, at `priority`.
fn template(w: &World, group: String, priority: Priority) -> TaskTemplate {
    let definition = w.state.task_definition("batch", 1).unwrap().clone();
    let overrides = complete_overrides(&definition, None);
    let needs = requirements(&definition.spec, &overrides).unwrap();
    TaskTemplate {
        overrides,
        needs,
        priority,
        ..TaskTemplate::plain(
            CLUSTER.into(),
            definition,
            group,
            None,
            Vec::new(),
            Vec::new(),
            w.now(),
        )
    }
}

fn commit(w: &mut World, tasks: Vec<Task>) -> Vec<TaskId> {
    let n = tasks.len();
    let Placed { tasks, rejected } = w.ok(PlaceTasks {
        cluster: CLUSTER.into(),
        tasks,
        client_token: None,
        distinct_instance: false,
    });
    assert!(rejected.is_empty() && tasks.len() == n, "{rejected:?}");
    tasks.iter().map(|t| t.id).collect()
}

/// The full cluster and its queue; the running tasks, oldest first.
fn cluster() -> (World, VecDeque<TaskId>) {
    let mut w = World::new();
    let spec = api::TaskDefinition {
        family: Some("batch".into()),
        container_definitions: Some(vec![api::ContainerDefinition {
            name: Some("app".into()),
            image: Some("busybox".into()),
            cpu: Some(CPU),
            memory: Some(MEMORY),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let needs = requirements(&spec, &api::TaskOverride::default()).unwrap();
    w.ok(RegisterTaskDefinition {
        family: "batch".into(),
        spec: Arc::new(spec),
        requirements: needs,
        tags: Vec::new(),
    });
    let ids: Vec<_> = (0..INSTANCES).map(|_| w.add(host(4096, 8192))).collect();
    // Full: the standalone tasks that were there first, spread over every instance.
    let running = template(&w, "family:batch".into(), Priority::STANDALONE);
    let mut placed = VecDeque::new();
    for _ in 0..PER_INSTANCE {
        for chunk in ids.chunks(500) {
            let tasks: Vec<Task> = chunk
                .iter()
                .map(|i| {
                    let id = w.task_id();
                    let instance = w.state.instance(*i).unwrap();
                    let placement = place(&w.state, &running.request(1, Some(vec![*i]), false), 1)
                        .placements
                        .remove(0);
                    running.task(id, instance, &placement)
                })
                .collect();
            placed.extend(commit(&mut w, tasks));
        }
    }
    // The queue: 10 groups, each RunTask of 1,000 tasks, the groups arriving in turn.
    let until = Millis(w.now().0 + 86_400_000);
    let queued = QueuedPlacement {
        until,
        constraints: Vec::new(),
        strategies: Vec::new(),
    };
    for batch in 0..QUEUED / 1_000 {
        let t = template(&w, format!("job:{}", batch % GROUPS), Priority::STANDALONE);
        let tasks = (0..1_000)
            .map(|_| {
                let id = w.task_id();
                t.queued_task(id, queued.clone())
            })
            .collect();
        commit(&mut w, tasks);
    }
    assert_eq!(w.state.queued(CLUSTER).count(), QUEUED);
    (w, placed)
}

/// Stops `n` of `running`, oldest first, as their agents report.
fn free(w: &mut World, running: &mut VecDeque<TaskId>, n: usize) {
    for id in running.drain(..n.min(running.len())) {
        w.report(id, TaskStatus::Stopped);
    }
}

/// An unqueued RunTask's scheduler work for one task: plan it and pass it through the commit
/// check (on a copy: the benchmark's state stays as it is).
fn run_task_once(state: &State, template: &TaskTemplate, now: Millis) -> bool {
    let plan = place(state, &template.request(1, None, false), 7);
    let Some(p) = plan.placements.first() else {
        return false;
    };
    let instance = state.instance(p.instance).unwrap();
    let mut scratch = state.clone();
    let index = scratch.index();
    let command = PlaceTasks {
        cluster: CLUSTER.into(),
        tasks: vec![template.task(TaskId(u128::MAX), instance, p)],
        client_token: None,
        distinct_instance: false,
    };
    scratch
        .apply(
            index,
            &Stamped {
                at: now,
                command: command.into(),
                by: None,
            },
        )
        .is_ok()
}

fn benches(c: &mut Criterion) {
    let (w, running) = cluster();
    let now = w.now();
    let mut g = c.benchmark_group("queue");
    g.sample_size(10);
    g.bench_function("decide_full", |b| {
        b.iter(|| black_box(decide(&w.state, CLUSTER, now, 7)))
    });
    // One task stopped on each instance: room for 1,000.
    let mut freed = w.fork();
    let mut oldest = running.clone();
    free(&mut freed, &mut oldest, INSTANCES);
    let d = decide(&freed.state, CLUSTER, freed.now(), 7);
    assert_eq!(
        d.place.as_ref().map(|p| p.placements.len()),
        Some(INSTANCES)
    );
    g.bench_function("decide_1000_free", |b| {
        b.iter(|| black_box(decide(&freed.state, CLUSTER, now, 7)))
    });
    g.finish();

    let t = template(&freed, "job:0".into(), Priority::STANDALONE);
    assert!(run_task_once(&freed.state, &t, now));
    c.bench_function("run_task/place_one", |b| {
        b.iter(|| black_box(run_task_once(&freed.state, &t, now)))
    });

    let mut g = c.benchmark_group("preempt");
    g.sample_size(10);
    let request = template(&w, "urgent".into(), Priority::SERVICE).request(1, None, false);
    assert!(choose(&w.state, &request, Priority::SERVICE, now, 7, &[]).is_some());
    g.bench_function("choose_found", |b| {
        b.iter(|| black_box(choose(&w.state, &request, Priority::SERVICE, now, 7, &[])))
    });
    assert!(choose(&w.state, &request, Priority::STANDALONE, now, 7, &[]).is_none());
    g.bench_function("choose_none", |b| {
        b.iter(|| {
            black_box(choose(
                &w.state,
                &request,
                Priority::STANDALONE,
                now,
                7,
                &[],
            ))
        })
    });
    g.finish();
}

/// The one run: drains the whole queue as capacity frees, 2,000 tasks a round.
fn drain() {
    const PER_ROUND: usize = 2_000;
    let built = Instant::now();
    let (mut w, mut running) = cluster();
    eprintln!(
        "drain: built {INSTANCES} instances, {} running, {QUEUED} queued in {:.1} s",
        running.len(),
        built.elapsed().as_secs_f64()
    );
    let t = template(&w, "job:0".into(), Priority::STANDALONE);
    let (mut rounds, mut placed) = (0usize, 0usize);
    let (mut deciding, mut committing, mut run_task) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut slowest = Duration::ZERO;
    let mut run_tasks = 0u32;
    let started = Instant::now();
    while w.state.queued(CLUSTER).next().is_some() {
        free(&mut w, &mut running, PER_ROUND);
        rounds += 1;
        // An unqueued RunTask on the same state, for comparison (not committed).
        if rounds % 5 == 1 {
            let at = Instant::now();
            assert!(run_task_once(&w.state, &t, w.now()));
            run_task += at.elapsed();
            run_tasks += 1;
        }
        let at = Instant::now();
        let d = decide(&w.state, CLUSTER, w.now(), rounds as u64);
        let took = at.elapsed();
        deciding += took;
        slowest = slowest.max(took);
        let Some(command) = d.place else {
            panic!("round {rounds}: room for {PER_ROUND} and nothing placed");
        };
        let at = Instant::now();
        let Placed { tasks, rejected } = w.ok(command);
        assert!(rejected.is_empty(), "{rejected:?}");
        let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
        committing += at.elapsed();
        placed += ids.len();
        running.extend(ids);
    }
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    eprintln!(
        "drain: {placed} placed in {rounds} rounds; {:.1} s in all (stopping tasks included)",
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "drain: queue passes {:.2} s of CPU ({:.0} ms mean, {:.0} ms slowest), {:.1} µs per placement",
        deciding.as_secs_f64(),
        deciding.as_secs_f64() * 1e3 / rounds as f64,
        slowest.as_secs_f64() * 1e3,
        per(deciding, placed)
    );
    eprintln!(
        "drain: committing the placements {:.2} s, {:.1} µs per task",
        committing.as_secs_f64(),
        per(committing, placed)
    );
    eprintln!(
        "drain: an unqueued RunTask (plan 1 + commit check) {:.1} µs per placement (mean of {run_tasks})",
        per(run_task, run_tasks as usize)
    );
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "drain") {
        drain();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
