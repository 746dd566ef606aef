//! Scale-in: which tasks to stop, by the placement strategies run in reverse.
//!
//! Placing fills the best candidate; stopping empties the worst: `spread` stops a task where
//! the group is most concentrated (so max − min shrinks), `binpack` stops one on the instance
//! with the most free capacity (so lightly used instances empty out and the rest stay packed),
//! `random` at random. Ties left after the chain are broken by the seed.

use std::collections::HashMap;

use berth_model::entity::Task;
use berth_model::{InstanceId, TaskId};
use berth_state::State;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::request::{BinpackField, SpreadField, Strategy};

/// A spread bucket: the task's instance, or its instance's value of the attribute (absent
/// being a value of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket<'a> {
    Instance(Option<InstanceId>),
    Value(Option<&'a str>),
}

fn bucket<'a>(state: &'a State, field: &SpreadField, t: &Task) -> Bucket<'a> {
    match field {
        SpreadField::Instance => Bucket::Instance(t.instance),
        SpreadField::Attribute(name) => Bucket::Value(
            t.instance
                .and_then(|i| state.instance(i))
                .and_then(|i| i.attribute(name)),
        ),
    }
}

/// Chooses `count` of `candidates` (tasks of one group) to stop, in the order to stop them.
pub fn choose_to_stop(
    state: &State,
    candidates: &[TaskId],
    strategies: &[Strategy],
    count: usize,
    seed: u64,
) -> Vec<TaskId> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pool: Vec<&Task> = candidates
        .iter()
        .filter_map(|id| state.task(*id))
        .map(|t| &**t)
        .collect();
    pool.sort_by_key(|t| t.id);
    pool.dedup_by_key(|t| t.id);
    // Each task's bucket per spread strategy (by position in the chain), and how many tasks
    // left in the pool share it: worked out once, then kept up to date as tasks are chosen.
    let mut buckets: Vec<Vec<Bucket<'_>>> = pool
        .iter()
        .map(|t| {
            strategies
                .iter()
                .map(|s| match s {
                    Strategy::Spread(field) => bucket(state, field, t),
                    // A placeholder no other strategy reads.
                    _ => Bucket::Instance(None),
                })
                .collect()
        })
        .collect();
    let mut counts: Vec<HashMap<Bucket<'_>, usize>> = vec![HashMap::new(); strategies.len()];
    for b in &buckets {
        for (k, key) in b.iter().enumerate() {
            *counts[k].entry(*key).or_default() += 1;
        }
    }
    // Capacity each instance will have back once the chosen tasks stop.
    let mut freed: HashMap<InstanceId, (i64, i64)> = HashMap::new();
    let mut out = Vec::new();
    while out.len() < count && !pool.is_empty() {
        let mut keep: Vec<usize> = (0..pool.len()).collect();
        for (k, s) in strategies.iter().enumerate() {
            if keep.len() <= 1 {
                break;
            }
            match s {
                Strategy::Random => {
                    let pick = keep[rng.random_range(0..keep.len())];
                    keep = vec![pick];
                }
                Strategy::Spread(_) => {
                    let score = |n: usize| counts[k][&buckets[n][k]];
                    let worst = keep.iter().map(|n| score(*n)).max().unwrap_or(0);
                    keep.retain(|n| score(*n) == worst);
                }
                Strategy::Binpack(field) => {
                    let free = |n: usize| -> i64 {
                        let t = pool[n];
                        let Some(i) = t.instance.and_then(|i| state.instance(i)) else {
                            return i64::MAX;
                        };
                        let usage = state.usage(i.id);
                        let back = freed.get(&i.id).copied().unwrap_or_default();
                        match field {
                            BinpackField::Cpu => {
                                i.resources.cpu - usage.map_or(0, |u| u.cpu) + back.0
                            }
                            BinpackField::Memory => {
                                i.resources.memory - usage.map_or(0, |u| u.memory) + back.1
                            }
                        }
                    };
                    let most = keep.iter().map(|n| free(*n)).max().unwrap_or(0);
                    keep.retain(|n| free(*n) == most);
                }
            }
        }
        let chosen = keep[if keep.len() > 1 {
            rng.random_range(0..keep.len())
        } else {
            0
        }];
        let t = pool.remove(chosen);
        for (k, key) in buckets.remove(chosen).into_iter().enumerate() {
            if let Some(n) = counts[k].get_mut(&key) {
                *n -= 1;
            }
        }
        if let Some(i) = t.instance {
            let f = freed.entry(i).or_default();
            f.0 += t.reservation.cpu;
            f.1 += t.reservation.memory;
        }
        out.push(t.id);
    }
    out
}
