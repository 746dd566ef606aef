//! Preemption, Borg's way: when a task cannot be placed anywhere, which lower-priority tasks
//! to stop so that it fits. A pure function of one snapshot, the time and a seed, like the
//! placement engine it asks.
//!
//! ```text
//!  choose(state, request for one task, its priority, now)
//!    per instance the request could use (ACTIVE, agent connected, its provider; or the one
//!    instance a daemon names):
//!      preemptible: live, wanted RUNNING, priority below the preemptor's, not protected now
//!      room even with all of them gone? (CPU and memory first, then the engine's full check
//!      on a copy of the state without them: ports, constraints) ── no ─► skip the instance
//!      greedy: add victims cheapest first until the engine says it fits, then drop every
//!      victim it still fits without (most expensive first) ─► an irreducible set
//!    the cheapest instance's set: lowest highest-victim-priority, then fewest victims, then
//!    an instance this pass already disturbed, then lowest priority sum, then instance id
//!  ─► Choice { instance, victims, placement (dynamic ports chosen without the victims) }
//! ```
//! The greedy order within an instance is: lowest priority first (Borg evicts the least
//! important work first); among equals, the task that covers the most of what is missing
//! (so fewer are stopped; a task holding a host port the preemptor needs covers it), then the
//! newest (it has done the least work), then task id. Exact minimum sets are a knapsack
//! problem; the greedy pass plus the pruning pass gives a set none of whose members can be
//! spared, which is what matters to the tasks in it. Each task lands on one instance, so its
//! victims are all there: preemption never disturbs more than one instance per task placed,
//! and a batch (a service placing several) prefers instances it has already disturbed.
//!
//! The choice is a proposal: `PreemptAndPlace` re-checks every victim (still there, still
//! lower, still unprotected) and the fit at commit, all or nothing, and a refusal sends the
//! scheduler back to a fresher snapshot.
//!
//! Who preempts: tasks waiting in the queue (RunTask, [`crate::queue::decide`]) and services'
//! placements ([`crate::service::reconcile`]), which includes a DAEMON's task on a new
//! instance — daemons have the highest default priority, so they displace whatever was placed
//! there first. RunTask itself never preempts: a RunTask that opts into the queue waits there
//! and preempts from there, so the answer to RunTask stays ECS's. The placement dry-run shows
//! what those waiting tasks would preempt ([`would_preempt`]).

use std::sync::Arc;

use berth_model::command::{PlaceTasks, PreemptAndPlace, TaskStateChange};
use berth_model::entity::{DesiredStatus, InstanceStatus, Task, TaskStatus};
use berth_model::priority::Priority;
use berth_model::{InstanceId, Millis, Stamped, TaskId};
use berth_state::State;

use crate::engine::{Placement, feasible_on};
use crate::request::PlacementRequest;
use crate::template::TaskTemplate;

/// Where a task goes by preemption, and whom it displaces there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub instance: InstanceId,
    /// The tasks to stop, cheapest first.
    pub victims: Vec<TaskId>,
    /// The task's placement on `instance` once they are gone.
    pub placement: Placement,
}

/// Whether `task` may be stopped to make room for a task of priority `above` at `now`: it is
/// placed, live, wanted RUNNING, of lower priority and not protected (ECS task protection).
/// The state machine's commit check asks the same, one rule in two places on purpose: it must
/// hold on the newest state, not only on the snapshot.
pub fn preemptible(task: &Task, above: Priority, now: Millis) -> bool {
    task.instance.is_some()
        && task.is_live()
        && task.desired_status == DesiredStatus::Running
        && task.priority() < above
        && !task.protected_at(now)
}

/// `state` with `victims` STOPPED, as their agents would report it: what the instance holds
/// once they are gone.
fn without(state: &State, victims: &[&Arc<Task>], now: Millis) -> State {
    let mut scratch = state.clone();
    let index = scratch.index();
    for v in victims {
        let report = TaskStateChange {
            cluster: v.cluster.clone(),
            id: v.id,
            status: Some(TaskStatus::Stopped),
            reason: None,
            containers: Vec::new(),
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
        };
        // A report the state refuses leaves the task holding its room: the fit check
        // below then fails, which is the safe answer.
        let _ = scratch.apply(
            index,
            &Stamped {
                at: now,
                command: report.into(),
                by: None,
            },
        );
    }
    scratch
}

/// What a victim set costs: compared in this order, lower is better.
type Cost = (Priority, usize, bool, u64, InstanceId);

/// Chooses where one task of `request` (count 1; `instances` narrows it to those, as for a
/// daemon) can go by stopping tasks of lower priority than `priority`, at `now`. `touched`:
/// instances this pass has already preempted on, preferred at equal cost. `None` when no
/// instance can take it even so.
pub fn choose(
    state: &State,
    request: &PlacementRequest,
    priority: Priority,
    now: Millis,
    seed: u64,
    touched: &[InstanceId],
) -> Option<Choice> {
    let candidates: Vec<InstanceId> = match &request.instances {
        Some(ids) => ids.clone(),
        None => state
            .instances_after(&request.cluster, None)
            .map(|i| i.id)
            .collect(),
    };
    let mut best: Option<(Cost, Choice)> = None;
    for id in candidates {
        let Some(choice) = on_instance(state, request, priority, now, seed, id) else {
            continue;
        };
        let victims: Vec<&Arc<Task>> = choice
            .victims
            .iter()
            .filter_map(|v| state.task(*v))
            .collect();
        let Some(highest) = victims.iter().map(|t| t.priority()).max() else {
            continue;
        };
        let cost = (
            highest,
            victims.len(),
            !touched.contains(&id),
            victims.iter().map(|t| u64::from(t.priority().get())).sum(),
            id,
        );
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, choice));
        }
    }
    best.map(|(_, choice)| choice)
}

/// The cheapest irreducible set of victims on instance `id` that makes room for the task, if
/// stopping every preemptible task there would.
fn on_instance(
    state: &State,
    request: &PlacementRequest,
    priority: Priority,
    now: Millis,
    seed: u64,
    id: InstanceId,
) -> Option<Choice> {
    let instance = state
        .instance(id)
        .filter(|i| i.status == InstanceStatus::Active && i.agent_connected)?;
    let mut victims: Vec<&Arc<Task>> = state
        .tasks_on(id)
        .filter(|t| preemptible(t, priority, now))
        .collect();
    if victims.is_empty() || feasible_on(state, request, id, seed).is_ok() {
        // Nothing to stop, or it fits as it is: no preemption here.
        return None;
    }
    // CPU and memory first: cheap arithmetic rules out most instances.
    let usage = state.usage(id);
    let (used_cpu, used_memory) = usage.map_or((0, 0), |u| (u.cpu, u.memory));
    let need = &request.reservation;
    let short_cpu = need.cpu - (instance.resources.cpu - used_cpu);
    let short_memory = need.memory - (instance.resources.memory - used_memory);
    let freed_cpu: i64 = victims.iter().map(|t| t.reservation.cpu).sum();
    let freed_memory: i64 = victims.iter().map(|t| t.reservation.memory).sum();
    if freed_cpu < short_cpu || freed_memory < short_memory {
        return None;
    }
    feasible_on(&without(state, &victims, now), request, id, seed).ok()?;
    // Greedy order: lowest priority, covers most of the shortfall, newest, id.
    let covers = |t: &Task| -> u64 {
        let share = |have: i64, short: i64| {
            if short > 0 {
                (have.min(short) * 1000 / short) as u64
            } else {
                0
            }
        };
        let port =
            need.tcp
                .iter()
                .any(|p| t.reservation.tcp.contains(p) || t.reservation.dynamic_tcp.contains(p))
                || need.udp.iter().any(|p| {
                    t.reservation.udp.contains(p) || t.reservation.dynamic_udp.contains(p)
                });
        share(t.reservation.cpu, short_cpu)
            + share(t.reservation.memory, short_memory)
            + if port { 1000 } else { 0 }
    };
    victims.sort_by_key(|t| {
        (
            t.priority(),
            std::cmp::Reverse(covers(t)),
            std::cmp::Reverse(t.created_at),
            t.id,
        )
    });
    let mut chosen: Vec<&Arc<Task>> = Vec::new();
    for v in &victims {
        chosen.push(v);
        if feasible_on(&without(state, &chosen, now), request, id, seed).is_ok() {
            break;
        }
    }
    // Prune: drop, most expensive first, every victim the task still fits without.
    let mut k = chosen.len();
    while k > 0 {
        k -= 1;
        let mut fewer = chosen.clone();
        fewer.remove(k);
        if !fewer.is_empty() && feasible_on(&without(state, &fewer, now), request, id, seed).is_ok()
        {
            chosen = fewer;
        }
    }
    let placement = feasible_on(&without(state, &chosen, now), request, id, seed).ok()?;
    Some(Choice {
        instance: id,
        victims: chosen.iter().map(|t| t.id).collect(),
        placement,
    })
}

/// What preemption would do for `short` more tasks of `template` once `planned` (tasks of the
/// same launch placed outright) are in place: one choice per task that would find room,
/// in order, each on what the ones before it took. The dry-run's answer; nothing is committed.
pub fn would_preempt(
    state: &State,
    template: &TaskTemplate,
    planned: Vec<Task>,
    short: usize,
    now: Millis,
    seed: u64,
) -> Vec<Choice> {
    let mut scratch = state.clone();
    let apply = |scratch: &mut State, command: berth_model::Command| {
        let index = scratch.index();
        scratch
            .apply(
                index,
                &Stamped {
                    at: now,
                    command,
                    by: None,
                },
            )
            .is_ok()
    };
    if !planned.is_empty() {
        let place = PlaceTasks {
            cluster: template.cluster.clone(),
            tasks: planned,
            client_token: None,
            distinct_instance: template.distinct_instance(),
        };
        apply(&mut scratch, place.into());
    }
    let request = template.request(1, None, false);
    let mut choices: Vec<Choice> = Vec::new();
    for k in 0..short {
        let touched: Vec<InstanceId> = choices.iter().map(|c| c.instance).collect();
        let Some(choice) = choose(&scratch, &request, template.priority, now, seed, &touched)
        else {
            break;
        };
        let Some(instance) = scratch.instance(choice.instance) else {
            break;
        };
        // A stand-in id: the task does not exist yet.
        let id = TaskId(u128::MAX - k as u128);
        let command = PreemptAndPlace {
            cluster: template.cluster.clone(),
            task: Box::new(template.task(id, instance, &choice.placement)),
            distinct_instance: template.distinct_instance(),
            victims: choice.victims.clone(),
        };
        if !apply(&mut scratch, command.into()) {
            break;
        }
        choices.push(choice);
    }
    choices
}
