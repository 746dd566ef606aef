//! `choose_to_stop`: the placement strategies in reverse. Spread stops where the group is most
//! concentrated, binpack where the most capacity is free, and the answer is a function of the
//! snapshot, the candidates and the seed that never repeats a task or invents one.

mod common;

use std::collections::{BTreeSet, HashMap};

use berth_model::entity::TaskStatus;
use berth_model::{InstanceId, TaskId};
use berth_scheduler::{BinpackField, SpreadField, Strategy, choose_to_stop};
use berth_state::State;
use proptest::prelude::*;
use proptest::strategy::Strategy as Gen;

use common::*;

const AZS: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const GROUP: &str = "service:api";

/// Free `field` on the instance of `task` once the tasks already chosen have stopped.
fn free_after(state: &State, task: TaskId, chosen: &[TaskId], field: BinpackField) -> i64 {
    let t = state.task(task).unwrap();
    let i = state.instance(t.instance.unwrap()).unwrap();
    let back: i64 = chosen
        .iter()
        .map(|c| state.task(*c).unwrap())
        .filter(|c| c.instance == t.instance)
        .map(|c| match field {
            BinpackField::Cpu => c.reservation.cpu,
            BinpackField::Memory => c.reservation.memory,
        })
        .sum();
    oracle::free(state, i, field) + back
}

fn bucket_of(state: &State, task: TaskId, field: &SpreadField) -> String {
    let t = state.task(task).unwrap();
    oracle::bucket(field, state.instance(t.instance.unwrap()).unwrap())
}

/// What each stop must satisfy given what is left: the chain's reverse, strategy by strategy.
fn check_stops(state: &State, candidates: &[TaskId], strategies: &[Strategy], stops: &[TaskId]) {
    let mut pool: Vec<TaskId> = candidates
        .iter()
        .copied()
        .filter(|t| state.task(*t).is_some())
        .collect();
    pool.sort();
    pool.dedup();
    for (k, stop) in stops.iter().enumerate() {
        let chosen = &stops[..k];
        let mut keep = pool.clone();
        for s in strategies {
            match s {
                Strategy::Random => break,
                Strategy::Spread(field) => {
                    let mut counts: HashMap<String, usize> = HashMap::new();
                    for t in &pool {
                        *counts.entry(bucket_of(state, *t, field)).or_default() += 1;
                    }
                    let worst = keep
                        .iter()
                        .map(|t| counts[&bucket_of(state, *t, field)])
                        .max()
                        .unwrap();
                    keep.retain(|t| counts[&bucket_of(state, *t, field)] == worst);
                }
                Strategy::Binpack(field) => {
                    let most = keep
                        .iter()
                        .map(|t| free_after(state, *t, chosen, *field))
                        .max()
                        .unwrap();
                    keep.retain(|t| free_after(state, *t, chosen, *field) == most);
                }
            }
        }
        assert!(
            keep.contains(stop),
            "stop {k} ({stop}) is not among {keep:?} for {strategies:?}"
        );
        pool.retain(|t| t != stop);
    }
}

fn strategies() -> impl Gen<Value = Vec<Strategy>> {
    let az = || Strategy::Spread(SpreadField::Attribute(AZ.into()));
    prop_oneof![
        Just(vec![az()]),
        Just(vec![az(), Strategy::Binpack(BinpackField::Memory)]),
        Just(vec![Strategy::Spread(SpreadField::Instance)]),
        Just(vec![Strategy::Binpack(BinpackField::Memory)]),
        Just(vec![Strategy::Binpack(BinpackField::Cpu), Strategy::Random]),
        Just(vec![Strategy::Random]),
        Just(Vec::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn stops_follow_the_reversed_strategies_and_never_repeat_or_invent_a_task(
        hosts in prop::collection::vec((prop::option::weighted(0.85, 0..AZS.len()), 1i64..=8), 1..8),
        tasks in prop::collection::vec((0usize..8, 0i64..=4, any::<bool>()), 0..40),
        strategies in strategies(),
        count in 0usize..20,
        seed in any::<u64>(),
        extra in prop::collection::vec(any::<u128>(), 0..3),
    ) {
        let mut w = World::new();
        let ids: Vec<InstanceId> = hosts
            .iter()
            .map(|(az, gib)| {
                let h = host(1 << 16, gib * 1024);
                w.add(match az {
                    Some(z) => h.az(AZS[*z]),
                    None => h,
                })
            })
            .collect();
        let mut group = Vec::new();
        for (n, (h, memory, ours)) in tasks.iter().enumerate() {
            let i = ids[h % ids.len()];
            let g = if *ours { GROUP } else { "service:other" };
            if let Some(t) = w.try_run(i, g, needs(16, memory * 128)) {
                if n % 3 == 0 {
                    w.report(t, TaskStatus::Running);
                }
                if *ours {
                    group.push(t);
                }
            }
        }
        // Candidates as a caller might pass them: repeated, and with ids nobody knows.
        let mut candidates = group.clone();
        candidates.extend(group.iter().take(2).copied());
        candidates.extend(extra.iter().map(|x| TaskId(x | (1 << 100))));
        let stops = choose_to_stop(&w.state, &candidates, &strategies, count, seed);
        prop_assert_eq!(&stops, &choose_to_stop(&w.state.clone(), &candidates, &strategies, count, seed));
        prop_assert_eq!(stops.len(), count.min(group.len()));
        let distinct: BTreeSet<TaskId> = stops.iter().copied().collect();
        prop_assert_eq!(distinct.len(), stops.len(), "a task chosen twice: {:?}", stops);
        prop_assert!(stops.iter().all(|t| group.contains(t)), "{:?} not all in {:?}", stops, group);
        check_stops(&w.state, &candidates, &strategies, &stops);
    }
}

#[test]
fn spread_stops_where_the_group_is_most_concentrated() {
    let mut w = World::new();
    let zones: Vec<InstanceId> = AZS.iter().map(|z| w.add(host(4096, 4096).az(z))).collect();
    let mut tasks = Vec::new();
    for (z, n) in [(0, 4), (1, 2), (2, 1)] {
        for _ in 0..n {
            tasks.push(w.run(zones[z], GROUP, needs(1, 1)));
        }
    }
    let strategies = [Strategy::Spread(SpreadField::Attribute(AZ.into()))];
    for seed in 0..16 {
        let stops = choose_to_stop(&w.state, &tasks, &strategies, 3, seed);
        let mut counts = [4i64, 2, 1];
        let mut gaps = vec![3];
        for t in &stops {
            let z = zones
                .iter()
                .position(|i| Some(*i) == w.state.task(*t).unwrap().instance)
                .unwrap();
            assert_eq!(
                counts[z],
                *counts.iter().max().unwrap(),
                "seed {seed}: stopped in a thinner zone"
            );
            counts[z] -= 1;
            gaps.push(counts.iter().max().unwrap() - counts.iter().min().unwrap());
        }
        assert!(
            gaps.windows(2).all(|g| g[1] <= g[0]),
            "seed {seed}: {gaps:?}"
        );
        assert_eq!(*gaps.last().unwrap(), 1);
        // The first two always come from the busiest zone.
        for t in &stops[..2] {
            assert_eq!(w.state.task(*t).unwrap().instance, Some(zones[0]));
        }
    }
}

#[test]
fn binpack_stops_on_the_instance_with_the_most_free_capacity() {
    let mut w = World::new();
    let packed = w.add(host(4096, 2048));
    let half = w.add(host(4096, 4096));
    let empty = w.add(host(4096, 8192));
    let mut by_instance: HashMap<InstanceId, Vec<TaskId>> = HashMap::new();
    for (i, n) in [(packed, 3), (half, 2), (empty, 1)] {
        for _ in 0..n {
            by_instance
                .entry(i)
                .or_default()
                .push(w.run(i, GROUP, needs(64, 512)));
        }
    }
    let all: Vec<TaskId> = by_instance.values().flatten().copied().collect();
    let strategies = [Strategy::Binpack(BinpackField::Memory)];
    // Free memory: packed 512, half 3072, empty 7680. The lone task on the nearly empty
    // instance goes first (emptying it), then the half-full instance's tasks.
    let stops = choose_to_stop(&w.state, &all, &strategies, 3, 0);
    assert_eq!(stops[0], by_instance[&empty][0]);
    assert!(
        stops[1..].iter().all(|t| by_instance[&half].contains(t)),
        "{stops:?}"
    );
    // By CPU every instance has the same room but for what the tasks hold.
    let stops = choose_to_stop(
        &w.state,
        &all,
        &[Strategy::Binpack(BinpackField::Cpu)],
        1,
        0,
    );
    assert_eq!(stops, vec![by_instance[&empty][0]]);
}

#[test]
fn stopping_is_deterministic_per_seed_and_varies_across_seeds() {
    let mut w = World::new();
    let ids: Vec<InstanceId> = (0..5).map(|_| w.add(host(4096, 4096))).collect();
    let tasks: Vec<TaskId> = (0..20)
        .map(|n| w.run(ids[n % 5], GROUP, needs(1, 1)))
        .collect();
    for strategies in [
        vec![Strategy::Random],
        vec![Strategy::Spread(SpreadField::Instance)],
        Vec::new(),
    ] {
        let mut seen = BTreeSet::new();
        for seed in 0..16 {
            let a = choose_to_stop(&w.state, &tasks, &strategies, 4, seed);
            assert_eq!(a, choose_to_stop(&w.state, &tasks, &strategies, 4, seed));
            seen.insert(a);
        }
        assert!(
            seen.len() > 1,
            "{strategies:?}: every seed stopped {seen:?}"
        );
    }
}

#[test]
fn asking_for_more_than_there_is_stops_each_candidate_once() {
    let mut w = World::new();
    let i = w.add(host(4096, 4096));
    let tasks: Vec<TaskId> = (0..3).map(|_| w.run(i, GROUP, needs(1, 1))).collect();
    let mut candidates = tasks.clone();
    candidates.extend(tasks.iter().rev().copied());
    candidates.push(TaskId(u128::MAX));
    let mut stops = choose_to_stop(
        &w.state,
        &candidates,
        &[Strategy::Spread(SpreadField::Instance)],
        10,
        1,
    );
    stops.sort();
    assert_eq!(stops, tasks);
    assert!(choose_to_stop(&w.state, &candidates, &[], 0, 1).is_empty());
    assert!(choose_to_stop(&w.state, &[], &[], 5, 1).is_empty());
}
