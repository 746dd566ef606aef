//! The queue's decision: which of a cluster's queued tasks to place now, and whose wait is
//! over. A pure function of one snapshot and the time; the server's queue controller runs it
//! on the leader whenever the cluster changes or a wait runs out, and commits the result.
//!
//! ```text
//!  queued tasks of the cluster, in queue order ([`order`]: priority, highest first; within a
//!  priority the task groups take turns, FIFO within each group)
//!     └─► runs of consecutive tasks with the same needs ─► place(scratch, run) ─► placed:
//!           applied to a scratch copy of the state, so the next run sees what this one took
//!           ─► what did not fit may preempt: lower-priority, unprotected tasks stopped to
//!              make room (`preempt::choose`), one `PreemptAndPlace` per task, also applied
//!              to the scratch copy; the runs behind a preemption wait for the next pass
//!              (commits go placements first, so nothing may be placed in room that only
//!              a preemption frees)
//!           ─► what still did not fit blocks later tasks with the same needs (they cannot
//!              fit either) but not others: a smaller task behind a big one may go first
//!     └─► a task past its wait that does not fit ─► expired, with the closest instance's
//!           reason (`TaskFailedToStart: RESOURCE:MEMORY`)
//!  ─► Decision { PlaceQueuedTasks, PreemptAndPlace…, ExpireQueuedTasks,
//!                wake_at: the next wait to run out }
//! ```
//! A queued task is placed exactly as its RunTask would have placed it: its template is
//! rebuilt from its task definition, its overrides and the constraints and strategies it kept
//! ([`template_for`]), and the placements pass through the state machine's own commit check
//! on the scratch copy before they are proposed. The commit re-checks them against the
//! newest state all the same; what it refuses is decided again on the next pass.
//!
//! Within a cluster the queue is ordered by priority, then round-robin between task groups
//! (RunTask's `group`, `family:NAME` by default), FIFO within a group: one batch job of a
//! thousand tasks queued a minute before another of ten does not make the second wait for all
//! thousand. Turns are dealt from the state alone, so every pass and every replica agrees and
//! nothing is remembered between passes: a group's k-th waiting task goes in round
//! `running + k`, where `running` counts the group's placed live tasks; within a round, in
//! the order the tasks arrived ([`order`]). When room frees a task at a time, the group
//! running fewest goes next; when all start from nothing, it is plain round-robin.
//! Within that order, it is FIFO for tasks that compete for the same capacity. A task that cannot fit does not hold up tasks with other needs behind it
//! (they may fit where it cannot), so a large task can be overtaken by smaller ones, of its
//! priority or lower; its timeout bounds its wait. Since every task is tried on what the tasks
//! ahead of it left, a lower-priority task never takes room a higher-priority one that needs
//! no more (and has no narrower constraints) could have taken: that one would have fitted
//! there first.

use std::collections::HashMap;
use std::sync::Arc;

use berth_model::command::{
    ExpireQueuedTasks, FailureReason, PlaceQueuedTasks, Placed, PreemptAndPlace, QueueExpiry,
    QueuedTaskPlacement,
};
use berth_model::entity::{Name, PortClaim, Reservation, Task};
use berth_model::priority::Priority;
use berth_model::queue::{QueuedPlacement, expired_reason};
use berth_model::requirements::requirements;
use berth_model::{InstanceId, Millis, Stamped, TaskId};
use berth_state::State;

use crate::engine::{InstanceRejection, place};
use crate::preempt;
use crate::request::{RequestError, parse_constraint, parse_strategy};
use crate::template::TaskTemplate;

/// What the queue controller should do for one cluster now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Queued tasks to place, each fully formed on the instance chosen for it.
    pub place: Option<PlaceQueuedTasks>,
    /// Queued tasks placed by stopping lower-priority tasks, one command each, to commit
    /// after `place` (they were decided on what it took).
    pub preempt: Vec<PreemptAndPlace>,
    /// Queued tasks whose wait is over.
    pub expire: Option<ExpireQueuedTasks>,
    /// Preemption searches this pass made that found no set of tasks to stop: queued tasks
    /// (one per distinct need) that fit nowhere, even by preemption. The found ones are
    /// `preempt`. For the queue controller's metrics.
    pub preemption_misses: usize,
    /// When the next wait runs out, if any task is left waiting: look again then even if
    /// nothing changes.
    pub wake_at: Option<Millis>,
}

impl Decision {
    /// Nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.place.is_none() && self.preempt.is_empty() && self.expire.is_none()
    }
}

/// Why a queued task's template cannot be rebuilt, so the task cannot be placed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The task is not waiting in the queue.
    #[error("task {0} was not queued")]
    NotQueued(TaskId),
    /// The task definition revision it was launched with was deleted since.
    #[error("task definition {family}:{revision} no longer exists")]
    DefinitionGone { family: Name, revision: u32 },
    /// Its definition and overrides do not make a valid set of requirements.
    #[error(transparent)]
    Requirements(#[from] berth_model::Error),
    /// A constraint or strategy it kept no longer parses.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// The template a queued task's RunTask launched it with: its task definition (by family and
/// revision), its overrides and tags, and the constraints and strategies it kept. `Err` says
/// why it cannot be placed (its definition is gone, a kept constraint no longer parses).
pub fn template_for(state: &State, task: &Task) -> Result<TaskTemplate, TemplateError> {
    let queued = task
        .queued
        .as_ref()
        .ok_or(TemplateError::NotQueued(task.id))?;
    let definition = state
        .task_definition(&task.family, task.revision)
        .ok_or_else(|| TemplateError::DefinitionGone {
            family: task.family.clone(),
            revision: task.revision,
        })?
        .clone();
    let needs = requirements(&definition.spec, &task.overrides)?;
    let constraints = queued
        .constraints
        .iter()
        .map(|c| {
            parse_constraint(
                c.r#type.as_deref().unwrap_or("memberOf"),
                c.expression.as_deref(),
            )
        })
        .collect::<Result<_, _>>()?;
    let strategies = queued
        .strategies
        .iter()
        .map(|s| parse_strategy(s.r#type.as_deref().unwrap_or_default(), s.field.as_deref()))
        .collect::<Result<_, _>>()?;
    Ok(TaskTemplate {
        cluster: task.cluster.clone(),
        definition,
        overrides: task.overrides.clone(),
        group: task.group.clone(),
        started_by: task.started_by.clone(),
        tags: task.tags.clone(),
        needs,
        constraints,
        strategies,
        enable_execute_command: task.enable_execute_command,
        created_at: task.created_at,
        capacity_provider: task.capacity_provider.clone(),
        priority: task.priority(),
    })
}

/// What decides where a queued task can go: two tasks with the same needs fit in the same
/// places, so once one does not fit in a pass, the other need not be tried.
#[derive(PartialEq)]
struct Needs<'a> {
    family: &'a Name,
    revision: u32,
    reservation: &'a Reservation,
    ports: &'a [PortClaim],
    group: &'a str,
    provider: Option<&'a Name>,
    placement: &'a QueuedPlacement,
}

fn needs(task: &Task) -> Option<Needs<'_>> {
    Some(Needs {
        family: &task.family,
        revision: task.revision,
        reservation: &task.reservation,
        ports: &task.ports,
        group: &task.group,
        provider: task.capacity_provider.as_ref(),
        placement: task.queued.as_ref()?,
    })
}

impl Needs<'_> {
    /// Same needs, ignoring when the wait ends.
    fn same(&self, other: &Needs<'_>) -> bool {
        self.family == other.family
            && self.revision == other.revision
            && self.reservation == other.reservation
            && self.ports == other.ports
            && self.group == other.group
            && self.provider == other.provider
            && self.placement.constraints == other.placement.constraints
            && self.placement.strategies == other.placement.strategies
    }
}

/// What one run of same-need tasks came to on the scratch state.
struct RunOutcome {
    placed: Vec<QueuedTaskPlacement>,
    preempted: Vec<PreemptAndPlace>,
    /// When some did not fit even by preemption: the closest instance's reason (`None`: no
    /// instance to try).
    short: Option<Option<FailureReason>>,
    /// Whether a preemption search was made and found nothing.
    missed: bool,
}

impl RunOutcome {
    fn took(&self, id: TaskId) -> bool {
        self.placed.iter().any(|p| p.task.id == id)
            || self.preempted.iter().any(|p| p.task.id == id)
    }
}

/// Applies `command` to `scratch` as the state machine would commit it; whether it passed.
fn commit_on(scratch: &mut State, now: Millis, command: impl Into<berth_model::Command>) -> bool {
    let index = scratch.index();
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

/// Plans `run` (queued tasks with the same needs, in queue order) on `scratch` and applies
/// what fits to it; what does not fit tries preemption, task by task, in queue order.
fn place_run(scratch: &mut State, run: &[&Arc<Task>], now: Millis, seed: u64) -> RunOutcome {
    let Ok(first) = template_for(scratch, run[0]) else {
        return RunOutcome {
            placed: Vec::new(),
            preempted: Vec::new(),
            short: Some(Some(FailureReason::Missing)),
            missed: false,
        };
    };
    let plan = place(scratch, &first.request(run.len(), None, false), seed);
    let mut placements = Vec::with_capacity(plan.placements.len());
    for (task, placement) in run.iter().zip(&plan.placements) {
        let (Ok(template), Some(instance)) = (
            template_for(scratch, task),
            scratch.instance(placement.instance),
        ) else {
            continue;
        };
        let placed = Task {
            queued: task.queued.clone(),
            ..template.task(task.id, instance, placement)
        };
        placements.push(QueuedTaskPlacement {
            task: placed,
            distinct_instance: template.distinct_instance(),
        });
    }
    // The state machine's own commit check, on the scratch copy: what passes is what the
    // next run must see as taken, and only that is proposed.
    let index = scratch.index();
    let command = PlaceQueuedTasks {
        cluster: first.cluster.clone(),
        placements,
    };
    let committed = scratch.apply(
        index,
        &Stamped {
            at: now,
            command: command.clone().into(),
            by: None,
        },
    );
    let placed: Vec<TaskId> = match committed.map(Placed::try_from) {
        Ok(Ok(p)) => p.tasks.iter().map(|t| t.id).collect(),
        _ => Vec::new(),
    };
    let placements: Vec<QueuedTaskPlacement> = command
        .placements
        .into_iter()
        .filter(|p| placed.contains(&p.task.id))
        .collect();
    let mut outcome = RunOutcome {
        placed: placements,
        preempted: Vec::new(),
        short: None,
        missed: false,
    };
    // The rest, in queue order, by preemption; the first that cannot stops the run (the
    // others have the same needs and priority or less).
    let mut touched: Vec<InstanceId> = Vec::new();
    for task in run.iter().filter(|t| !placed.contains(&t.id)) {
        match preempt_one(scratch, task, now, seed, &touched) {
            Some(command) => {
                touched.extend(command.task.instance);
                outcome.preempted.push(command);
            }
            None => {
                outcome.short = Some(plan.rejections.first().map(|r| r.reason));
                outcome.missed = true;
                break;
            }
        }
    }
    outcome
}

/// Queued `task` placed by preemption on `scratch` (and applied to it), if it can be.
fn preempt_one(
    scratch: &mut State,
    task: &Task,
    now: Millis,
    seed: u64,
    touched: &[InstanceId],
) -> Option<PreemptAndPlace> {
    let template = template_for(scratch, task).ok()?;
    let request = template.request(1, None, false);
    let choice = preempt::choose(scratch, &request, task.priority(), now, seed, touched)?;
    let instance = scratch.instance(choice.instance)?;
    let command = PreemptAndPlace {
        cluster: task.cluster.clone(),
        task: Box::new(Task {
            queued: task.queued.clone(),
            ..template.task(task.id, instance, &choice.placement)
        }),
        distinct_instance: template.distinct_instance(),
        victims: choice.victims,
    };
    commit_on(scratch, now, command.clone()).then_some(command)
}

/// Decides, for `cluster`'s queue at `now`, which tasks to place and whose wait is over.
/// `seed` makes the placement choices reproducible.
pub fn decide(state: &State, cluster: &str, now: Millis, seed: u64) -> Decision {
    let queue = order(state, cluster);
    let mut scratch = state.clone();
    let mut placements = Vec::new();
    let mut preempted = Vec::new();
    let mut expired = Vec::new();
    // Needs that did not fit this pass, with the closest instance's reason.
    let mut blocked: Vec<(Needs<'_>, Option<FailureReason>)> = Vec::new();
    let mut wake_at: Option<Millis> = None;
    let mut misses = 0;
    let mut i = 0;
    let mut runs = 0u64;
    while i < queue.len() {
        let Some(need) = needs(queue[i]) else {
            i += 1;
            continue;
        };
        // The run: this task and the next ones with the same needs.
        let mut end = i + 1;
        while end < queue.len() && needs(queue[end]).is_some_and(|n| n.same(&need)) {
            end += 1;
        }
        let run = &queue[i..end];
        i = end;
        let known = blocked.iter().find(|(b, _)| b.same(&need)).map(|(_, r)| *r);
        let outcome = match known {
            Some(reason) => RunOutcome {
                placed: Vec::new(),
                preempted: Vec::new(),
                short: Some(reason),
                missed: false,
            },
            None => {
                runs += 1;
                place_run(&mut scratch, run, now, seed.wrapping_add(runs))
            }
        };
        let reason = match outcome.short {
            Some(reason) => {
                if known.is_none() {
                    blocked.push((need, reason));
                }
                reason
            }
            None => None,
        };
        for task in run {
            if outcome.took(task.id) {
                continue;
            }
            let until = task.queued.as_ref().map_or(now, |q| q.until);
            if until <= now {
                expired.push(QueueExpiry {
                    id: task.id,
                    reason: expired_reason(reason.map(|r| r.as_str())),
                });
            } else {
                wake_at = Some(wake_at.map_or(until, |w| w.min(until)));
            }
        }
        misses += usize::from(outcome.missed);
        placements.extend(outcome.placed);
        let preempting = !outcome.preempted.is_empty();
        preempted.extend(outcome.preempted);
        if preempting && i < queue.len() {
            // The room a preemption frees is only free once it commits, after `place`: the
            // runs behind it are decided on the next pass, which its commit triggers.
            wake_at = Some(now);
            break;
        }
    }
    Decision {
        place: (!placements.is_empty()).then(|| PlaceQueuedTasks {
            cluster: cluster.into(),
            placements,
        }),
        preempt: preempted,
        expire: (!expired.is_empty()).then(|| ExpireQueuedTasks {
            cluster: cluster.into(),
            tasks: expired,
        }),
        preemption_misses: misses,
        wake_at,
    }
}

/// `cluster`'s queued tasks in the order [`decide`] tries them: priority, highest first;
/// within a priority, groups take turns — a group's k-th waiting task goes in round
/// `running + k` (`running`: the group's placed live tasks), rounds in order, each round in
/// arrival order — and each group is FIFO. The state keeps the queue in (priority, created,
/// id) order; this reorders each priority's band by round, a stable sort, so ties within a
/// round keep arrival order.
pub fn order<'s>(state: &'s State, cluster: &str) -> Vec<&'s Arc<Task>> {
    let mut queue: Vec<&Arc<Task>> = state.queued(cluster).collect();
    let mut start = 0;
    while start < queue.len() {
        let priority = queue[start].priority();
        let end = start
            + queue[start..]
                .iter()
                .take_while(|t| t.priority() == priority)
                .count();
        let mut turns: HashMap<&str, usize> = HashMap::new();
        let mut band: Vec<(usize, &Arc<Task>)> = queue[start..end]
            .iter()
            .map(|t| {
                let turn = turns
                    .entry(&t.group)
                    .or_insert_with(|| running(state, cluster, &t.group));
                *turn += 1;
                (*turn, *t)
            })
            .collect();
        band.sort_by_key(|(round, _)| *round);
        for (slot, (_, t)) in queue[start..end].iter_mut().zip(band) {
            *slot = t;
        }
        start = end;
    }
    queue
}

/// The placed live tasks of `group` in `cluster`, from the state's per-group index.
fn running(state: &State, cluster: &str, group: &str) -> usize {
    state
        .live_in_group(cluster, group)
        .map(|(_, n)| n as usize)
        .sum()
}

/// How many queued tasks a new task of `group` at `priority` would wait behind in `cluster`:
/// every waiting task of higher priority, and of its own priority those whose turn comes
/// first ([`order`]): its round is one past its group's running and waiting tasks, and it
/// arrives last, so it goes last in that round.
pub fn ahead_of_new(state: &State, cluster: &str, priority: Priority, group: &str) -> usize {
    let mut higher = 0;
    let mut waiting: HashMap<&str, usize> = HashMap::new();
    for t in state.queued(cluster) {
        match t.priority().cmp(&priority) {
            std::cmp::Ordering::Greater => higher += 1,
            std::cmp::Ordering::Equal => *waiting.entry(&t.group).or_default() += 1,
            std::cmp::Ordering::Less => break,
        }
    }
    let round = running(state, cluster, group) + waiting.get(group).copied().unwrap_or(0) + 1;
    higher
        + waiting
            .iter()
            .map(|(g, n)| (*n).min(round.saturating_sub(running(state, cluster, g))))
            .sum::<usize>()
}

/// Where a queued task stands: its place in the queue and what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// Its priority: the tasks ahead of it have this or a higher one.
    pub priority: Priority,
    /// 1 for the task at the head of the queue.
    pub position: usize,
    /// Tasks waiting in the cluster, this one included.
    pub length: usize,
    /// When its wait ends.
    pub until: Millis,
    /// Why each instance cannot take it now, closest first; empty when it would fit now (the
    /// queue controller places it at its next pass, after the tasks ahead of it) or when the
    /// cluster (or its capacity provider) has no instance at all.
    pub waits_for: Vec<InstanceRejection>,
    /// It would fit on the current state, were it alone.
    pub fits_now: bool,
    /// Why it cannot be placed at all, when its template cannot be rebuilt.
    pub unplaceable: Option<String>,
}

/// Where queued task `id` stands, or `None` when it is not waiting for capacity.
pub fn standing(state: &State, id: TaskId) -> Option<Standing> {
    let task = state.task(id).filter(|t| t.is_queued())?;
    let until = task.queued.as_ref()?.until;
    let mut position = 0;
    let mut length = 0;
    for (k, t) in order(state, &task.cluster).into_iter().enumerate() {
        length += 1;
        if t.id == id {
            position = k + 1;
        }
    }
    let (waits_for, fits_now, unplaceable) = match template_for(state, task) {
        Ok(template) => {
            let plan = place(
                state,
                &template.request(1, None, false),
                u64::from(id.0 as u32),
            );
            (plan.rejections, !plan.placements.is_empty(), None)
        }
        Err(e) => (Vec::new(), false, Some(e.to_string())),
    };
    Some(Standing {
        priority: task.priority(),
        position,
        length,
        until,
        waits_for,
        fits_now,
        unplaceable,
    })
}
