//! The DAEMON scheduling strategy's half of the reconciler: one PRIMARY task on every ACTIVE
//! instance that meets the service's constraints, each placed on its own instance (preempting
//! there if it must), and old tasks replaced instance by instance within
//! minimumHealthyPercent. REPLICA services are counted instead (`replica` in the parent).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_model::InstanceId;
use berth_model::entity::*;
use berth_model::service::*;

use super::{DRAINING_REASON, Round, Settings, Split, events, scaling_reason};
use crate::request::Constraint;

/// DAEMON: one PRIMARY task on every ACTIVE instance that meets the constraints; old tasks
/// replaced instance by instance within minimumHealthyPercent.
pub(super) fn run(
    round: &mut Round<'_>,
    keep: Vec<Arc<Task>>,
    old: Vec<Arc<Task>>,
    throttled: bool,
    settings: &Settings,
) -> (usize, usize) {
    let state = round.state;
    let cluster = round.svc.cluster.clone();
    let constraints = round.template().map(|t| t.constraints).unwrap_or_default();
    let eligible: Vec<InstanceId> = state
        .instances_after(&cluster, None)
        .filter(|i| i.status == InstanceStatus::Active)
        .filter(|i| {
            constraints.iter().all(|c| match c {
                Constraint::MemberOf(expr) => crate::engine::instance_matches(state, i, expr),
                Constraint::DistinctInstance => true,
            })
        })
        .map(|i| i.id)
        .collect();
    let n = eligible.len() as u32;
    if round.svc.desired_count != n || round.svc.deployments[0].desired_count != n {
        round.svc.desired_count = n;
        round.svc.deployments[0].desired_count = n;
    }
    let name = round.svc.name.to_string();
    let primary = round.primary().clone();
    let mut by_instance: BTreeMap<Option<InstanceId>, Split> = BTreeMap::new();
    for t in keep {
        by_instance.entry(t.instance).or_default().0.push(t);
    }
    for t in old {
        by_instance.entry(t.instance).or_default().1.push(t);
    }
    let mut stopped = Vec::new();
    // Tasks on instances that should not run one, and duplicates.
    let mut kept: Vec<Arc<Task>> = Vec::new();
    let mut replace: Vec<Arc<Task>> = Vec::new();
    for (instance, (mut mine, others)) in std::mem::take(&mut by_instance) {
        let wanted = instance.is_some_and(|i| eligible.contains(&i));
        if !wanted {
            // An ACTIVE instance that is not eligible no longer meets the constraints.
            let active = instance
                .and_then(|i| state.instance(i))
                .is_some_and(|i| i.status == InstanceStatus::Active);
            let reason = if active {
                "Container instance no longer meets the service's placement constraints"
            } else {
                DRAINING_REASON
            };
            for t in mine.iter().chain(others.iter()) {
                round.stop(t, reason.into());
                stopped.push(t.id);
            }
            continue;
        }
        mine.sort_by_key(|t| (!round.healthy(t), t.created_at, t.id));
        for t in mine.iter().skip(1) {
            round.stop(t, scaling_reason(&primary.id));
            stopped.push(t.id);
        }
        match mine.first() {
            Some(t) => {
                // The replacement is in place: the old ones go once it is healthy (protected
                // ones once their protection lapses).
                if round.healthy(t) {
                    for o in &others {
                        if round.protected(o) {
                            continue;
                        }
                        let reason = scaling_reason(o.started_by.as_deref().unwrap_or_default());
                        round.stop(o, reason);
                        stopped.push(o.id);
                    }
                }
                kept.push(t.clone());
            }
            None => replace.extend(others),
        }
    }
    // Old tasks with no replacement yet: stop as many as minimumHealthyPercent allows; the
    // instance gets its new task once the old one has stopped.
    if primary.rollout_state != RolloutState::Failed {
        let min_healthy = round.svc.deployment_configuration.min_healthy(n) as usize;
        let mut healthy_now = kept
            .iter()
            .chain(replace.iter())
            .filter(|t| round.healthy(t))
            .count();
        round.order_old(&mut replace);
        for t in &replace {
            if round.protected(t) {
                continue;
            }
            let healthy = round.healthy(t);
            if healthy && healthy_now <= min_healthy {
                continue;
            }
            if healthy {
                healthy_now -= 1;
            }
            let reason = scaling_reason(t.started_by.as_deref().unwrap_or_default());
            round.stop(t, reason);
            stopped.push(t.id);
        }
    }
    if !stopped.is_empty() {
        round.post(events::stopped(&name, &stopped));
    }
    let group = round.svc.group();
    let empty: Vec<InstanceId> = eligible
        .iter()
        .copied()
        .filter(|i| state.live_in_group_on(&cluster, &group, *i) == 0)
        .collect();
    if primary.rollout_state != RolloutState::Failed && !throttled && !empty.is_empty() {
        round.launch(empty.len(), Some(empty), None, settings);
    }
    let healthy_kept = kept.iter().filter(|t| round.healthy(t)).count();
    (kept.len(), healthy_kept)
}
