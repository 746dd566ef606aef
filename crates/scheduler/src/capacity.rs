//! Capacity provider strategies and managed scaling, as pure functions of their inputs.
//!
//! - [`split`]: how many of `total` tasks each provider of a strategy gets. `base` first (only
//!   one item may have one), then the rest in proportion to the weights. The weighted part is
//!   apportioned by Balinski and Young's quota method: every provider gets its proportional
//!   share rounded down or up, never further off, and raising the total never takes a task
//!   from any provider — so a service keeps its split as it scales up and down.
//! - [`reservations`]: ECS's CapacityProviderReservation for each provider attached to a
//!   cluster, the figure an external autoscaler tracks against `managedScaling.targetCapacity`
//!   (berth launches no machines itself).
//!
//! ```text
//!  [{A, base 2, weight 1}, {B, weight 3}], 10 tasks ─► A: 2 (base) + 2, B: 6
//!  reservation = M / N × 100   M: instances needed (busy ones + room for waiting tasks)
//!                              N: instances the provider has (200 when N = 0 < M; 100 when
//!                                 both are 0)
//! ```

use berth_model::capacity::{PROVIDER_ATTRIBUTE, StrategyItem};
use berth_model::entity::{DesiredStatus, InstanceStatus, Name};
use berth_model::service::{SchedulingStrategy, ServiceStatus, TaskSetStatus};
use berth_state::{State, TaskFilter};

/// How `total` tasks split over `strategy`'s providers, in strategy order: the provider with a
/// `base` gets up to that many first, the rest go by weight. Weights that are all zero (one
/// provider with weight 0, the only such strategy ECS accepts) share the rest evenly.
pub fn split(strategy: &[StrategyItem], total: u32) -> Vec<u32> {
    let mut counts = vec![0u32; strategy.len()];
    if strategy.is_empty() {
        return counts;
    }
    let mut left = total;
    if let Some(k) = strategy.iter().position(|i| i.base > 0) {
        counts[k] = strategy[k].base.min(left);
        left -= counts[k];
    }
    let weights: Vec<u64> = if strategy.iter().all(|i| i.weight == 0) {
        vec![1; strategy.len()]
    } else {
        strategy.iter().map(|i| u64::from(i.weight)).collect()
    };
    let sum: u64 = weights.iter().sum();
    let mut weighted = vec![0u64; strategy.len()];
    for house in 1..=u64::from(left) {
        // Eligible: one more keeps the provider within its upper quota (a < house·w/W); the
        // quota method picks the eligible one with the highest w/(a+1), first in order on ties.
        let mut best: Option<usize> = None;
        for i in 0..strategy.len() {
            if weights[i] == 0 || weighted[i] * sum >= house * weights[i] {
                continue;
            }
            let better = best.is_none_or(|b| {
                u128::from(weights[i]) * u128::from(weighted[b] + 1)
                    > u128::from(weights[b]) * u128::from(weighted[i] + 1)
            });
            if better {
                best = Some(i);
            }
        }
        // Some provider is always below its upper quota: the quotas sum to `house`.
        if let Some(b) = best {
            weighted[b] += 1;
        }
    }
    for (c, w) in counts.iter_mut().zip(weighted) {
        *c += w as u32;
    }
    counts
}

/// ECS's CapacityProviderReservation inputs for one provider in one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// N: the provider's container instances in the cluster (not deregistered).
    pub instances: u32,
    /// M: instances needed for its running tasks and the tasks waiting for room on it.
    pub needed: u32,
    /// Tasks that services want on the provider but that have no place yet.
    pub waiting_tasks: u32,
}

impl Reservation {
    /// M / N × 100, as ECS computes it: 200 when there is demand and no instance, 100 when
    /// there is neither.
    pub fn percent(&self) -> f64 {
        match (self.needed, self.instances) {
            (0, 0) => 100.0,
            (_, 0) => 200.0,
            (m, n) => f64::from(m) / f64::from(n) * 100.0,
        }
    }
}

/// The reservation of every capacity provider attached to `cluster`, in the cluster's order.
///
/// M counts the provider's instances running at least one live task, plus the instances the
/// waiting tasks need: tasks a service's (or a task set's) strategy assigns to the provider
/// beyond those it has there (they could not be placed, so they need new room) and queued
/// RunTask tasks of the provider, sized by the provider's largest instance (one instance when
/// it has none).
pub fn reservations(state: &State, cluster: &str) -> Vec<(Name, Reservation)> {
    let Some(c) = state.cluster(cluster) else {
        return Vec::new();
    };
    c.capacity_providers
        .iter()
        .map(|p| (p.clone(), reservation(state, cluster, p)))
        .collect()
}

/// Tasks a service wants split between capacity providers: a REPLICA service's (by its
/// PRIMARY deployment), or one task set of an EXTERNAL one.
struct Demand<'a> {
    strategy: &'a [StrategyItem],
    count: u32,
    group: String,
    /// The task set whose tasks count, for an EXTERNAL service.
    started_by: Option<&'a str>,
    family: &'a Name,
    revision: u32,
}

fn service_demands<'a>(state: &'a State, cluster: &str) -> Vec<Demand<'a>> {
    let mut out = Vec::new();
    for s in state.services_after(cluster, None) {
        if s.status != ServiceStatus::Active || s.scheduling_strategy != SchedulingStrategy::Replica
        {
            continue;
        }
        if s.external() {
            out.extend(
                s.task_sets
                    .iter()
                    .filter(|t| t.status != TaskSetStatus::Draining)
                    .filter(|t| !t.capacity_provider_strategy.is_empty())
                    .map(|t| Demand {
                        strategy: &t.capacity_provider_strategy,
                        count: t.computed_desired_count(s.desired_count),
                        group: s.group(),
                        started_by: Some(&t.id),
                        family: &t.family,
                        revision: t.revision,
                    }),
            );
        } else if let Some(d) = s.primary()
            && !s.capacity_provider_strategy.is_empty()
        {
            out.push(Demand {
                strategy: &s.capacity_provider_strategy,
                count: s.desired_count,
                group: s.group(),
                started_by: None,
                family: &d.family,
                revision: d.revision,
            });
        }
    }
    out
}

fn reservation(state: &State, cluster: &str, provider: &Name) -> Reservation {
    let mut instances = 0u32;
    let mut busy = 0u32;
    let (mut cpu_size, mut memory_size) = (0i64, 0i64);
    for i in state.instances_after(cluster, None) {
        if i.status == InstanceStatus::Inactive || i.attribute(PROVIDER_ATTRIBUTE) != Some(provider)
        {
            continue;
        }
        instances += 1;
        cpu_size = cpu_size.max(i.resources.cpu);
        memory_size = memory_size.max(i.resources.memory);
        if state.tasks_on(i.id).any(|t| t.is_live()) {
            busy += 1;
        }
    }
    let (mut waiting, mut cpu, mut memory) = (0u32, 0i64, 0i64);
    for want in service_demands(state, cluster) {
        let Some(k) = want.strategy.iter().position(|i| i.provider == *provider) else {
            continue;
        };
        let wanted = split(want.strategy, want.count)[k];
        let filter = TaskFilter {
            group: Some(want.group.clone()),
            started_by: want.started_by.map(str::to_owned),
            ..TaskFilter::default()
        };
        let there = state
            .tasks_after(cluster, &filter, None)
            .filter(|t| t.is_live() && t.desired_status == DesiredStatus::Running)
            .filter(|t| t.capacity_provider.as_ref() == Some(provider))
            .count() as u32;
        let missing = wanted.saturating_sub(there);
        if missing == 0 {
            continue;
        }
        waiting += missing;
        if let Some(d) = state.task_definition(want.family, want.revision) {
            cpu += d.requirements.cpu * i64::from(missing);
            memory += d.requirements.memory * i64::from(missing);
        }
    }
    // Queued RunTask tasks of this provider wait for room too.
    for t in state
        .queued(cluster)
        .filter(|t| t.capacity_provider.as_ref() == Some(provider))
    {
        waiting += 1;
        cpu += t.reservation.cpu;
        memory += t.reservation.memory;
    }
    let more = if waiting == 0 {
        0
    } else {
        let per = |need: i64, size: i64| {
            if size > 0 {
                need.max(0).unsigned_abs().div_ceil(size.unsigned_abs())
            } else {
                0
            }
        };
        per(cpu, cpu_size).max(per(memory, memory_size)).max(1) as u32
    };
    Reservation {
        instances,
        needed: busy + more,
        waiting_tasks: waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(name: &str, base: u32, weight: u32) -> StrategyItem {
        StrategyItem {
            provider: name.into(),
            base,
            weight,
        }
    }

    /// The acceptance example: base 2 on A, then A:B = 1:3.
    #[test]
    fn base_first_then_weights() {
        let s = [item("a", 2, 1), item("b", 0, 3)];
        assert_eq!(split(&s, 10), [4, 6]);
        assert_eq!(split(&s, 0), [0, 0]);
        assert_eq!(split(&s, 1), [1, 0]);
        assert_eq!(split(&s, 2), [2, 0]);
        assert_eq!(split(&s, 3), [2, 1]);
        assert_eq!(split(&s, 6), [3, 3]);
        assert_eq!(split(&[item("a", 0, 1), item("b", 0, 4)], 5), [1, 4]);
        assert_eq!(split(&[item("a", 0, 1), item("b", 0, 1)], 3), [2, 1]);
        // A weight of 0 takes only its base.
        assert_eq!(split(&[item("a", 3, 0), item("b", 0, 1)], 10), [3, 7]);
        // One provider with weight 0 takes everything.
        assert_eq!(split(&[item("a", 0, 0)], 4), [4]);
        assert_eq!(split(&[], 4), Vec::<u32>::new());
    }

    #[test]
    fn reservation_percent_follows_ecs_special_cases() {
        let r = |needed, instances| Reservation {
            instances,
            needed,
            waiting_tasks: 0,
        };
        assert_eq!(r(0, 0).percent(), 100.0);
        assert_eq!(r(2, 0).percent(), 200.0);
        assert_eq!(r(0, 4).percent(), 0.0);
        assert_eq!(r(3, 4).percent(), 75.0);
        assert_eq!(r(5, 4).percent(), 125.0);
    }

    fn strategies() -> impl Strategy<Value = Vec<StrategyItem>> {
        (1usize..=6).prop_flat_map(|n| {
            (
                proptest::collection::vec(0u32..=20, n),
                proptest::option::of((0..n, 0u32..=30)),
            )
                .prop_filter_map("some weight above zero", move |(weights, base)| {
                    if n > 1 && weights.iter().all(|w| *w == 0) {
                        return None;
                    }
                    Some(
                        weights
                            .iter()
                            .enumerate()
                            .map(|(k, w)| StrategyItem {
                                provider: format!("p{k}").into(),
                                base: match base {
                                    Some((at, b)) if at == k => b,
                                    _ => 0,
                                },
                                weight: *w,
                            })
                            .collect(),
                    )
                })
        })
    }

    proptest! {
        /// Counts sum to the total; the base is served first; the rest is within one task of
        /// each provider's proportional share (rounded down or up); and one more task never
        /// takes one away from any provider.
        #[test]
        fn split_is_exact_proportional_and_monotone(s in strategies(), total in 0u32..200) {
            let counts = split(&s, total);
            prop_assert_eq!(counts.iter().sum::<u32>(), total);
            let base_at = s.iter().position(|i| i.base > 0);
            let base = base_at.map_or(0, |k| s[k].base.min(total));
            if let Some(k) = base_at {
                prop_assert!(counts[k] >= base);
            }
            let rest = u64::from(total - base);
            let all_zero = s.iter().all(|i| i.weight == 0);
            let weight = |i: &StrategyItem| if all_zero { 1 } else { u64::from(i.weight) };
            let sum: u64 = s.iter().map(weight).sum();
            for (k, i) in s.iter().enumerate() {
                let weighted = u64::from(counts[k]) - if Some(k) == base_at { u64::from(base) } else { 0 };
                let exact = rest * weight(i);
                prop_assert!(weighted >= exact / sum, "{:?} {}: {:?}", s, total, counts);
                prop_assert!(weighted <= exact.div_ceil(sum), "{:?} {}: {:?}", s, total, counts);
            }
            let next = split(&s, total + 1);
            prop_assert!(next.iter().zip(&counts).all(|(a, b)| a >= b), "{:?} {} → {:?} {:?}", s, total, counts, next);
        }
    }
}
