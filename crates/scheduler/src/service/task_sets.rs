//! The EXTERNAL deployment controller's half of the reconciler: keep each task set at its
//! computed count, empty and drop the ones being deleted.
//!
//! ```text
//!  for each task set (tasks found by startedBy = its id)
//!    DRAINING: stop every task; dropped from the service once none is live
//!    else:     unhealthy past grace → stop · PENDING on a leaving instance → stop
//!              kept > computed → scale in (placement chain in reverse, protected spared)
//!              kept < computed → launch (its own definition and capacity provider split)
//!              RUNNING on a leaving instance → stop once the kept ones are all healthy
//!              stabilityStatus: STEADY_STATE when exactly computed healthy tasks run
//!  tasks of no task set → stop · steady state once every task set is
//! ```
//! Unlike berth's own deployments there is no minimum/maximum percent to honour between task
//! sets and no circuit breaker: *when* to move traffic and scale is the outside controller's
//! decision (it changes `scale`, names the PRIMARY, deletes the old set). What berth owes it is
//! that every task set converges on its count, and says when it has (`STEADY_STATE`).

use std::sync::Arc;

use berth_model::entity::{DesiredStatus, Task, TaskStatus};
use berth_model::service::{StabilityStatus, TaskSet, TaskSetStatus};

use super::{DRAINING_REASON, Round, Settings, Shares, Stop, events, scaling_reason};

/// An ACTIVE EXTERNAL service's round.
pub(super) fn run(round: &mut Round<'_>, tasks: &[Arc<Task>], settings: &Settings) {
    let name = round.svc.name.to_string();
    let mut all_steady = true;
    let mut stopped = Vec::new();
    for k in 0..round.svc.task_sets.len() {
        let set = round.svc.task_sets[k].clone();
        let live: Vec<Arc<Task>> = tasks
            .iter()
            .filter(|t| t.is_live() && t.started_by.as_deref() == Some(set.id.as_str()))
            .cloned()
            .collect();
        let steady = if set.status == TaskSetStatus::Draining {
            for t in live
                .iter()
                .filter(|t| t.desired_status == DesiredStatus::Running)
            {
                round.stop(t, scaling_reason(&set.id));
                stopped.push(t.id);
            }
            // Empty, it leaves the service below and holds nothing up.
            live.is_empty()
        } else {
            keep_at_count(round, &set, &live, tasks, settings, &mut stopped)
        };
        let status = if steady {
            StabilityStatus::SteadyState
        } else {
            StabilityStatus::Stabilizing
        };
        all_steady &= steady;
        let s = &mut round.svc.task_sets[k];
        if s.stability_status != status {
            s.stability_status = status;
            s.stability_status_at = round.now;
        }
    }
    // Tasks no task set claims (their set was deleted with force and dropped): they go.
    let claimed = |t: &Task, sets: &[TaskSet]| {
        sets.iter()
            .any(|s| t.started_by.as_deref() == Some(s.id.as_str()))
    };
    let orphans: Vec<Arc<Task>> = tasks
        .iter()
        .filter(|t| t.is_live() && !claimed(t, &round.svc.task_sets))
        .cloned()
        .collect();
    all_steady &= orphans.is_empty();
    for t in orphans
        .iter()
        .filter(|t| t.desired_status == DesiredStatus::Running)
    {
        round.stop(
            t,
            scaling_reason(t.started_by.as_deref().unwrap_or_default()),
        );
        stopped.push(t.id);
    }
    if !stopped.is_empty() {
        round.post(events::stopped(&name, &stopped));
    }
    // A deleted task set leaves the service once nothing of it is live.
    round.svc.task_sets.retain(|s| {
        s.status != TaskSetStatus::Draining
            || tasks
                .iter()
                .any(|t| t.is_live() && t.started_by.as_deref() == Some(s.id.as_str()))
    });
    let steady = all_steady && round.launched() == 0 && round.stop.is_empty();
    if steady && !round.svc.steady {
        round.svc.steady = true;
        round.post(events::steady(&name));
    } else if !steady {
        round.svc.steady = false;
    }
}

/// One PRIMARY or ACTIVE task set: starts and stops what it takes to run its computed count.
/// `live` are its live tasks, `all` every task of the service (the launch throttle counts
/// stopped ones). Returns whether it is there already (nothing to start or stop, every kept
/// task healthy).
fn keep_at_count(
    round: &mut Round<'_>,
    set: &TaskSet,
    live: &[Arc<Task>],
    all: &[Arc<Task>],
    settings: &Settings,
    stopped: &mut Vec<berth_model::TaskId>,
) -> bool {
    let target = set.computed_desired_count(round.svc.desired_count) as usize;
    let label = format!("{}, taskSet {}", round.svc.name, set.id);
    let before = round.stop.len();
    let (mut keep, mut leaving) = (Vec::new(), Vec::new());
    let mut stopping = 0;
    for t in live {
        if t.desired_status != DesiredStatus::Running {
            stopping += 1;
            continue;
        }
        if round.stop_if_unhealthy(t, &label) {
            continue;
        }
        if round.on_leaving_instance(t) {
            if t.last_status < TaskStatus::Running {
                round.stop(t, DRAINING_REASON.into());
            } else {
                leaving.push(t.clone());
            }
            continue;
        }
        keep.push(t.clone());
    }

    // Scale-in: not-yet-healthy tasks first, then the placement chain in reverse; protected
    // tasks are spared until their protection lapses.
    if keep.len() > target {
        let (protected, candidates): (Vec<_>, Vec<_>) =
            keep.iter().cloned().partition(|t| round.protected(t));
        let excess = (keep.len() - target).min(candidates.len());
        if keep.len() - target > candidates.len() {
            let spared: Vec<_> = protected.iter().map(|t| t.id).collect();
            round.post_unless_recent(events::protected(&label, &spared));
        }
        let chosen = round.choose_scale_in(candidates, excess);
        for id in &chosen {
            round.stop.push(Stop {
                task: *id,
                reason: scaling_reason(&set.id),
            });
        }
        keep.retain(|t| !chosen.contains(&t.id));
    }

    // Starts: the missing ones, each capacity provider topped up to its share.
    let want = target.saturating_sub(keep.len());
    let launched_before = round.launched();
    if want > 0 && !round.backing_off(&set.id, all, settings) {
        let template = round.template_for(&set.family, set.revision, &set.id);
        let shares = Shares {
            strategy: &set.capacity_provider_strategy,
            target: target as u32,
            kept: &keep,
        };
        round.launch_shares(template, want, shares, settings);
    }

    // Tasks on instances that are leaving go once their replacements are healthy.
    let healthy_kept = keep.iter().filter(|t| round.healthy(t)).count();
    if healthy_kept >= target {
        for t in &leaving {
            if round.protected(t) {
                continue;
            }
            round.stop(t, DRAINING_REASON.into());
        }
        leaving.clear();
    }
    stopped.extend(round.stop[before..].iter().map(|s| s.task));
    round.stop.len() == before
        && round.launched() == launched_before
        && stopping == 0
        && leaving.is_empty()
        && keep.len() == target
        && healthy_kept == target
}
