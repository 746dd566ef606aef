//! The DAEMON scheduling strategy's half of the reconciler: one PRIMARY task on every ACTIVE
//! instance that meets the service's constraints, each placed on its own instance (preempting
//! there if it must), and old tasks replaced instance by instance within
//! minimumHealthyPercent. REPLICA services are counted instead (`replica` in the parent).
//!
//! Daemons first ([`DaemonRoom`]): where a daemon should run a task and does not yet (a new or
//! re-activated instance, one whose daemon task stopped), the room its task needs is held
//! against every other placement of its priority or lower — queued RunTask tasks
//! (`queue::decide`) and REPLICA services' launches — so the daemon finds it free whichever
//! controller looks first. Held, not stored: it is computed from the state on every decision
//! (the daemon services, their PRIMARY's template, the instances that lack its task), by
//! planning the daemons' tasks onto a scratch copy of the state, which the others are then
//! planned on. Nothing is held on the real state, so the commit check is unchanged and
//! nothing can be over-committed by it; a placement decided without the hold (RunTask, a
//! controller that decided on an older snapshot) can still take the room, and then the
//! daemon preempts there, the fallback. A daemon that does not fit on an instance as it
//! stands holds nothing there (it preempts). ECS Managed Daemons promise the same order (the
//! daemon task starts first on a new instance); Borg and Nomad get it from priority and
//! preemption alone, which costs a stopped task each time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use berth_model::command::PlaceTasks;
use berth_model::entity::*;
use berth_model::priority::Priority;
use berth_model::service::*;
use berth_model::{InstanceId, Millis, TaskId};
use berth_state::State;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DRAINING_REASON, Round, Settings, Split, events, scaling_reason, template_of};
use crate::engine::place;
use crate::queue::commit_on;
use crate::request::Constraint;
use crate::template::TaskTemplate;

/// The ACTIVE instances of `cluster` that meet `constraints`: where a daemon runs a task.
fn eligible(state: &State, cluster: &str, constraints: &[Constraint]) -> Vec<InstanceId> {
    state
        .instances_after(cluster, None)
        .filter(|i| i.status == InstanceStatus::Active)
        .filter(|i| {
            constraints.iter().all(|c| match c {
                Constraint::MemberOf(expr) => crate::engine::instance_matches(state, i, expr),
                Constraint::DistinctInstance => true,
            })
        })
        .map(|i| i.id)
        .collect()
}

/// Of `eligible`, the instances with no live task of `group`: where a daemon launches.
fn without(state: &State, cluster: &str, group: &str, eligible: &[InstanceId]) -> Vec<InstanceId> {
    eligible
        .iter()
        .copied()
        .filter(|i| state.live_in_group_on(cluster, group, *i) == 0)
        .collect()
}

/// The room a cluster's DAEMON services need where they should run a task and do not yet,
/// held on a scratch copy of the state before anything of their priority or lower is planned
/// there. Computed from the state alone (see the module's docs).
#[derive(Debug, Clone, Default)]
pub struct DaemonRoom {
    /// Not held yet, highest priority first: each daemon's template and the instances that
    /// wait for its task.
    waiting: Vec<(TaskTemplate, Vec<InstanceId>)>,
}

impl DaemonRoom {
    /// The daemons of `cluster` that would launch now: ACTIVE, a PRIMARY that has not FAILED
    /// and whose revision exists, and eligible instances without their task. One held back by
    /// its launch throttle counts: it launches when the throttle lapses, into the room held.
    pub fn of(state: &State, cluster: &str, now: Millis) -> Self {
        let mut waiting = Vec::new();
        for svc in state.services_after(cluster, None) {
            if svc.status != ServiceStatus::Active
                || svc.scheduling_strategy != SchedulingStrategy::Daemon
                || svc.external()
            {
                continue;
            }
            let Some(primary) = svc.deployments.first() else {
                continue;
            };
            if primary.rollout_state == RolloutState::Failed {
                continue;
            }
            let Some(template) = template_of(
                state,
                svc,
                &primary.family,
                primary.revision,
                &primary.id,
                now,
            ) else {
                continue;
            };
            let on = eligible(state, cluster, &template.constraints);
            let on = without(state, cluster, &template.group, &on);
            if !on.is_empty() {
                waiting.push((template, on));
            }
        }
        // Stable: daemons of one priority keep the services' name order.
        waiting.sort_by_key(|(t, _)| std::cmp::Reverse(t.priority));
        Self { waiting }
    }

    /// Nothing to hold.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Holds on `scratch` the room of every daemon of priority `priority` or higher not held
    /// yet: its tasks planned on the instances that wait for them and committed there, as its
    /// launch would be, on what `scratch` holds already (where one no longer fits, nothing is
    /// held for it). A task of a higher priority than a daemon's is not held back by it: it
    /// could displace the daemon's task anyway. Returns whether anything was held.
    pub fn hold(
        &mut self,
        scratch: &mut State,
        priority: Priority,
        now: Millis,
        seed: u64,
    ) -> bool {
        let due = self
            .waiting
            .iter()
            .take_while(|(t, _)| t.priority >= priority)
            .count();
        let mut held = false;
        let mut rng = SmallRng::seed_from_u64(seed ^ HOLD_STREAM);
        for (template, on) in self.waiting.drain(..due) {
            let plan = place(
                scratch,
                &template.request(on.len(), Some(on), false),
                rng.random(),
            );
            let mut tasks = Vec::with_capacity(plan.placements.len());
            for p in &plan.placements {
                let Some(instance) = scratch.instance(p.instance) else {
                    continue;
                };
                // Ids no task of the snapshot (or of this hold) has: a hold never stands for a
                // real task.
                let id = loop {
                    let id = TaskId(rng.random());
                    if scratch.task(id).is_none() && tasks.iter().all(|t: &Task| t.id != id) {
                        break id;
                    }
                };
                tasks.push(template.task(id, instance, p));
            }
            if tasks.is_empty() {
                continue;
            }
            let command = PlaceTasks {
                cluster: template.cluster.clone(),
                tasks,
                client_token: None,
                distinct_instance: template.distinct_instance(),
            };
            held |= commit_on(scratch, now, command);
        }
        held
    }
}

/// Mixed into the seed the holds are planned with, so they draw apart from the decision's own.
const HOLD_STREAM: u64 = 0x4441_454d_4f4e_5321;

/// `state` as a placement of priority `priority` in `cluster` must see it: with the room of
/// the daemons of that priority or higher held ([`DaemonRoom`]). Borrowed when nothing is held.
pub fn held<'s>(
    state: &'s State,
    cluster: &str,
    priority: Priority,
    now: Millis,
    seed: u64,
) -> Cow<'s, State> {
    let mut room = DaemonRoom::of(state, cluster, now);
    if room.is_empty() {
        return Cow::Borrowed(state);
    }
    let mut scratch = state.clone();
    if room.hold(&mut scratch, priority, now, seed) {
        Cow::Owned(scratch)
    } else {
        Cow::Borrowed(state)
    }
}

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
    let eligible = eligible(state, &cluster, &constraints);
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
    let empty = without(state, &cluster, &round.svc.group(), &eligible);
    if primary.rollout_state != RolloutState::Failed && !throttled && !empty.is_empty() {
        round.launch(empty.len(), Some(empty), None, settings);
    }
    let healthy_kept = kept.iter().filter(|t| round.healthy(t)).count();
    (kept.len(), healthy_kept)
}
