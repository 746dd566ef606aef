//! How long planning takes on a busy cluster: 1,000 instances across 3 AZs running 10,000 live
//! tasks in 50 groups (one of them 500 tasks strong). Placing 1 and 10 tasks with each kind of
//! strategy chain and with constraints, and choosing 10 of the 500 to stop.
//!
//! `cargo bench -p berth-scheduler --bench placement -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use berth_model::command::{PlaceTasks, Placed};
use berth_model::{InstanceId, TaskId};
use berth_scheduler::{
    BinpackField, Constraint, PlacementRequest, SpreadField, Strategy, choose_to_stop,
    parse_constraint, place,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use common::*;

const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const TYPES: [&str; 4] = ["m5.xlarge", "c5.xlarge", "r5.large", "t3.xlarge"];
const INSTANCES: usize = 1_000;
const TASKS: usize = 10_000;
const GROUPS: usize = 50;
/// The big group scale-in chooses from.
const BIG: usize = 500;

fn group(g: usize) -> String {
    format!("service:svc-{g:02}")
}

/// The cluster, and the tasks of the big group.
fn cluster() -> (World, Vec<TaskId>) {
    let mut w = World::new();
    let ids: Vec<InstanceId> = (0..INSTANCES)
        .map(|n| {
            let memory = [8192, 16384, 32768][n % 3];
            w.add(host(4096, memory).az(AZS[n % 3]).kind(TYPES[n / 3 % 4]))
        })
        .collect();
    let mut big = Vec::new();
    let mut batch = Vec::new();
    for n in 0..TASKS {
        // The first BIG tasks are group 0; the rest round-robin over the other 49.
        let g = if n < BIG { 0 } else { 1 + n % (GROUPS - 1) };
        let instance = ids[(n * 7919) % INSTANCES];
        let id = w.task_id();
        let memory = 128 * (1 + (n % 5) as i64);
        batch.push(task(id, CLUSTER, instance, &group(g), needs(128, memory)));
        if g == 0 {
            big.push(id);
        }
        if batch.len() == 500 {
            place_all(&mut w, std::mem::take(&mut batch));
        }
    }
    place_all(&mut w, batch);
    (w, big)
}

fn place_all(w: &mut World, tasks: Vec<berth_model::entity::Task>) {
    let n = tasks.len();
    let Placed { tasks, rejected } = w.ok(PlaceTasks {
        cluster: CLUSTER.into(),
        tasks,
        client_token: None,
        distinct_instance: false,
    });
    assert!(rejected.is_empty() && tasks.len() == n, "{rejected:?}");
}

fn benches(c: &mut Criterion) {
    let (w, big) = cluster();
    let state = &w.state;
    let az = || Strategy::Spread(SpreadField::Attribute(AZ.into()));
    let cases: Vec<(&str, Vec<Constraint>, Vec<Strategy>)> = vec![
        ("random", Vec::new(), vec![Strategy::Random]),
        ("binpack_memory", Vec::new(), vec![Strategy::Binpack(BinpackField::Memory)]),
        ("spread_az_binpack_memory", Vec::new(), vec![az(), Strategy::Binpack(BinpackField::Memory)]),
        // The ECS console's default, and the scale benchmark's (issue 18).
        ("spread_az_instance", Vec::new(), vec![az(), Strategy::Spread(SpreadField::Instance)]),
        (
            "member_of_distinct_instance",
            vec![
                parse_constraint("memberOf", Some("attribute:ecs.instance-type =~ m5.* or attribute:ecs.instance-type == c5.xlarge")).unwrap(),
                Constraint::DistinctInstance,
            ],
            Vec::new(),
        ),
    ];
    let mut g = c.benchmark_group("place");
    for (name, constraints, strategies) in &cases {
        for count in [1usize, 10, 100] {
            let mut req: PlacementRequest = request(&group(7), needs(256, 512), count);
            req.constraints = constraints.clone();
            req.strategies = strategies.clone();
            let plan = place(state, &req, 1);
            assert_eq!(plan.placements.len(), count, "{name}: {plan:?}");
            let mut seed = 0u64;
            g.bench_with_input(BenchmarkId::new(*name, count), &req, |b, req| {
                b.iter(|| {
                    seed += 1;
                    black_box(place(black_box(state), req, seed))
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("choose_to_stop");
    let chain = [az(), Strategy::Binpack(BinpackField::Memory)];
    assert_eq!(choose_to_stop(state, &big, &chain, 10, 1).len(), 10);
    let mut seed = 0u64;
    g.bench_function("spread_az_binpack_memory/10_of_500", |b| {
        b.iter(|| {
            seed += 1;
            black_box(choose_to_stop(black_box(state), &big, &chain, 10, seed))
        })
    });
    g.finish();
}

criterion_group!(placement, benches);
criterion_main!(placement);
