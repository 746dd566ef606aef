//! The service reconciler: a pure function of a snapshot, a service, the time and a seed to
//! the actions that move the service towards what it should be.
//!
//! ```text
//!  reconcile(state, service, now, seed)
//!    count failures per deployment ─► circuit breaker (FAILED, rollback deployment)
//!    classify live tasks: unhealthy past grace → stop · on a draining instance → old
//!                         (PENDING ones stop at once) · of the PRIMARY → keep · else → old
//!    REPLICA: scale-in (placement chain in reverse) · stop old within minimumHealthyPercent ·
//!             start within maximumPercent (unless FAILED or backing off); protected tasks
//!             are never chosen to stop until their protection lapses (look again then)
//!    DAEMON:  one PRIMARY task per ACTIVE instance meeting the constraints
//!    placing: what finds no room preempts lower-priority, unprotected tasks (`preempt`), one
//!             `PreemptAndPlace` per task — a daemon's task on its instance, displacing what
//!             got there first, so daemons end up first on every instance
//!    rollout: COMPLETED when only the PRIMARY's healthy tasks remain · drop drained deployments
//!             (while rolling out, keep the rollback target and FAILED ones in view)
//!    events:  ECS's wording; steady state once
//!  ─► Decision { tasks to place, tasks to stop, the service's new value, when to look again }
//! ```
//! Nothing here reads a clock or does I/O: time and randomness (task ids, event ids, the
//! placement seed) are inputs, so the same inputs give the same decision, and tests drive it
//! on virtual time. It is idempotent: run again on the state its decision produced, it decides
//! nothing new. The leader's controller runs it whenever a service, its tasks or the cluster's
//! instances change, and at the times decisions ask for (grace periods, backoff).
//!
//! A task counts healthy when it is RUNNING and, if its definition has a health check on an
//! essential container, its health is HEALTHY (no load balancers here, so RUNNING is enough
//! otherwise). A task "failed" when it stopped on its own (TaskFailedToStart,
//! EssentialContainerExited) or was stopped for failing its health checks: the circuit
//! breaker counts those. The launch throttle, as ECS's, counts only the PRIMARY's tasks that
//! never reached RUNNING.
//!
//! maximumPercent bounds the tasks that are PENDING or RUNNING, and a task told to stop is
//! RUNNING until its agent reports it STOPPED, so stopping tasks take room; the steady state
//! waits for them too.

mod daemon;
pub mod events;
mod task_sets;

use std::collections::HashMap;
use std::sync::Arc;

use berth_model::command::{PlaceTasks, PreemptAndPlace, PutService, StopTask};
use berth_model::entity::*;
use berth_model::priority::{self, Kind, Priority};
use berth_model::service::*;
use berth_model::{InstanceId, Millis, Stamped, TaskId};
use berth_state::{State, TaskFilter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::capacity::split;
use crate::engine::place;
use crate::preempt;
use crate::request::{Constraint, SpreadField, Strategy, parse_constraint, parse_strategy};
use crate::scale_in::choose_to_stop;
use crate::template::TaskTemplate;

/// The stop code of every task the service scheduler stops.
pub const STOP_CODE: &str = "ServiceSchedulerInitiated";
/// Why a task that failed its health checks was stopped (also how it is recognised as a
/// failure afterwards).
pub const UNHEALTHY_REASON: &str = "Task failed container health checks";

/// Why a task on an instance that is leaving (DRAINING, deregistered) was stopped.
const DRAINING_REASON: &str = "Container instance is draining";

/// Tunables: how hard to back off from failing launches, and how soon to retry placements.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Failed tasks in a row before launches are throttled.
    pub backoff_after: u32,
    /// The first throttle delay; it doubles with every further failure.
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// When tasks could not be placed, look again this much later even if nothing changed.
    pub retry_unplaced_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            backoff_after: 3,
            backoff_base_ms: 5_000,
            backoff_max_ms: 300_000,
            retry_unplaced_ms: 30_000,
        }
    }
}

/// A task to stop and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub task: TaskId,
    pub reason: String,
}

/// What to do for one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The service as read: its version is what the new value's write expects.
    pub current: Arc<Service>,
    /// The service's new value, when it changed.
    pub service: Option<Service>,
    /// Tasks to place, fully formed.
    pub launch: Vec<Task>,
    /// The launched tasks carry a distinctInstance constraint.
    pub distinct_instance: bool,
    /// Tasks placed by stopping lower-priority ones, one command each, to commit after
    /// `launch` (they were decided on what it takes).
    pub preempt: Vec<PreemptAndPlace>,
    /// Preemption searches that found no set of tasks to stop (one per template that still
    /// had tasks to place): for the controller's metrics, as the queue counts its own.
    pub preemption_misses: usize,
    pub stop: Vec<Stop>,
    /// Run again at this time even if nothing changes (grace periods, backoff, retries).
    pub wake_at: Option<Millis>,
}

impl Decision {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.service.is_none()
            && self.launch.is_empty()
            && self.preempt.is_empty()
            && self.stop.is_empty()
    }

    /// The StopTask commands, one per task.
    pub fn stop_commands(&self) -> Vec<StopTask> {
        self.stop
            .iter()
            .map(|s| StopTask {
                cluster: self.current.cluster.clone(),
                id: s.task,
                reason: Some(s.reason.clone()),
                stop_code: Some(STOP_CODE.into()),
            })
            .collect()
    }

    /// The PlaceTasks command for the launches, if any.
    pub fn place_command(&self) -> Option<PlaceTasks> {
        (!self.launch.is_empty()).then(|| PlaceTasks {
            cluster: self.current.cluster.clone(),
            tasks: self.launch.clone(),
            client_token: None,
            distinct_instance: self.distinct_instance,
        })
    }

    /// The service write once the launches were committed: the new value with the "has
    /// started" event for the tasks that were `placed`. `None` when the service is unchanged.
    /// `seed` is the one the decision was made with; the event's id comes from a stream of it
    /// that `reconcile` does not draw from, so it cannot repeat an id the decision posted.
    pub fn service_command(&self, placed: &[TaskId], now: Millis, seed: u64) -> Option<PutService> {
        let mut service = self.service.clone();
        if !placed.is_empty() {
            let s = service.get_or_insert_with(|| (*self.current).clone());
            let mut rng = SmallRng::seed_from_u64(seed ^ STARTED_EVENT_STREAM);
            s.post(event_id(&mut rng), now, events::started(&s.name, placed));
            s.steady = false;
        }
        service.map(|s| PutService {
            service: Arc::new(s),
            expected_version: self.current.version,
        })
    }
}

/// Mixed into the seed for the "has started" event's id (see [`Decision::service_command`]).
const STARTED_EVENT_STREAM: u64 = 0x5354_4152_5445_4421;

/// The priority of `service`'s new tasks: that of its task definition (the PRIMARY
/// deployment's, or the PRIMARY task set's) with its tags, or the kind's default when it has
/// none.
pub fn priority_of(state: &State, service: &Service) -> Priority {
    match service
        .task_definition()
        .and_then(|(family, revision)| state.task_definition(family, revision))
    {
        Some(definition) => priority::of_service(service, definition),
        None => {
            let kind = match service.scheduling_strategy {
                SchedulingStrategy::Daemon => Kind::Daemon,
                SchedulingStrategy::Replica => Kind::Replica,
            };
            priority::effective(&[], Some(&service.tags), &[], kind)
        }
    }
}

/// Decisions made on one snapshot, in the order to commit them: one band per priority,
/// highest first. The decisions of a band commit together; a band commits only once the one
/// before it has, so when two services planned the same room, the higher-priority one takes it
/// and the other's placement is refused at commit and planned again on a fresher snapshot.
/// Within a band the order is the services' (cluster, name), so it does not depend on how the
/// decisions were computed.
pub fn commit_bands(state: &State, decisions: Vec<Decision>) -> Vec<Vec<Decision>> {
    let mut ranked: Vec<(Priority, Decision)> = decisions
        .into_iter()
        .map(|d| (priority_of(state, &d.current), d))
        .collect();
    ranked.sort_by(|(pa, a), (pb, b)| {
        pb.cmp(pa).then_with(|| {
            (&a.current.cluster, &a.current.name).cmp(&(&b.current.cluster, &b.current.name))
        })
    });
    let mut bands: Vec<(Priority, Vec<Decision>)> = Vec::new();
    for (p, d) in ranked {
        match bands.last_mut() {
            Some((q, band)) if *q == p => band.push(d),
            _ => bands.push((p, vec![d])),
        }
    }
    bands.into_iter().map(|(_, band)| band).collect()
}

/// An event id, formatted as ECS's (a UUID).
fn event_id(rng: &mut SmallRng) -> String {
    let v: u128 = rng.random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A deployment id: `ecs-svc/` and 19 digits.
pub fn deployment_id(rng: &mut impl Rng) -> String {
    format!(
        "ecs-svc/{}",
        rng.random_range(1_000_000_000_000_000_000u64..10_000_000_000_000_000_000u64)
    )
}

fn scaling_reason(deployment: &str) -> String {
    format!("Scaling activity initiated by (deployment {deployment})")
}

/// The task stopped on its own, or for failing its health checks.
fn failed(t: &Task) -> bool {
    t.last_status == TaskStatus::Stopped
        && (matches!(
            t.stop_code.as_deref(),
            Some("TaskFailedToStart" | "EssentialContainerExited")
        ) || t.stopped_reason.as_deref() == Some(UNHEALTHY_REASON))
}

/// The task stopped without ever running (what ECS's launch throttle counts).
fn failed_to_start(t: &Task) -> bool {
    t.last_status == TaskStatus::Stopped && t.stop_code.as_deref() == Some("TaskFailedToStart")
}

/// Essential containers with a health check: the task is healthy only when they are.
fn has_health_check(definition: &TaskDefinition) -> bool {
    definition
        .spec
        .container_definitions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|c| c.essential.unwrap_or(true) && c.health_check.is_some())
}

/// Parsed placement settings: the definition's constraints and the service's, and the
/// service's strategies (by default spread over zones, then over instances). Settings were
/// validated when the service was written; one that no longer parses is skipped.
fn placement(service: &Service, definition: &TaskDefinition) -> (Vec<Constraint>, Vec<Strategy>) {
    let constraints = definition
        .spec
        .placement_constraints
        .iter()
        .flatten()
        .map(|c| {
            (
                c.r#type.as_deref().unwrap_or("memberOf"),
                c.expression.as_deref(),
            )
        })
        .chain(service.placement_constraints.iter().map(|c| {
            (
                c.r#type.as_deref().unwrap_or_default(),
                c.expression.as_deref(),
            )
        }))
        .filter_map(|(kind, expr)| parse_constraint(kind, expr).ok())
        .collect();
    (constraints, placement_strategies(service))
}

/// The service's placement strategies, parsed: by default spread over zones, then over
/// instances.
fn placement_strategies(service: &Service) -> Vec<Strategy> {
    if service.placement_strategy.is_empty() {
        match service.scheduling_strategy {
            SchedulingStrategy::Replica => vec![
                Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
                Strategy::Spread(SpreadField::Instance),
            ],
            SchedulingStrategy::Daemon => Vec::new(),
        }
    } else {
        service
            .placement_strategy
            .iter()
            .filter_map(|s| {
                parse_strategy(s.r#type.as_deref().unwrap_or_default(), s.field.as_deref()).ok()
            })
            .collect()
    }
}

/// How launches are split between capacity providers: `strategy` over `target` tasks, of
/// which `kept` are there already.
struct Shares<'a> {
    strategy: &'a [berth_model::capacity::StrategyItem],
    target: u32,
    kept: &'a [Arc<Task>],
}

/// A service's live tasks: the PRIMARY's kept ones and the old ones.
type Split = (Vec<Arc<Task>>, Vec<Arc<Task>>);

/// Working state of one reconcile.
struct Round<'a> {
    state: &'a State,
    now: Millis,
    rng: SmallRng,
    svc: Service,
    stop: Vec<Stop>,
    launch: Vec<Task>,
    distinct_instance: bool,
    preempt: Vec<PreemptAndPlace>,
    preemption_misses: usize,
    wake_at: Option<Millis>,
    health_checked: HashMap<(Name, u32), bool>,
}

impl Round<'_> {
    fn post(&mut self, message: String) {
        let id = event_id(&mut self.rng);
        self.svc.post(id, self.now, message);
    }

    /// Posts `message` unless it is already the newest event (repeated conditions, such as a
    /// task that cannot be placed, are said once until something else happens).
    fn post_once(&mut self, message: String) {
        if self.svc.events.first().map(|e| &e.message) != Some(&message) {
            self.post(message);
        }
    }

    /// Posts `message` unless it is among the few newest events: for a condition that lasts
    /// while other events are posted around it (protected tasks during a deployment whose
    /// launches each say "has started").
    fn post_unless_recent(&mut self, message: String) {
        const RECENT: usize = 5;
        if !self
            .svc
            .events
            .iter()
            .take(RECENT)
            .any(|e| e.message == message)
        {
            self.post(message);
        }
    }

    fn wake(&mut self, at: Millis) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Whether the task is protected from scale-in and deployments now (UpdateTaskProtection);
    /// if so, the service is looked at again when the protection lapses.
    fn protected(&mut self, t: &Task) -> bool {
        if !t.protected_at(self.now) {
            return false;
        }
        if let Some(until) = t.protected_until {
            self.wake(until);
        }
        true
    }

    fn stop(&mut self, task: &Task, reason: String) {
        self.stop.push(Stop {
            task: task.id,
            reason,
        });
    }

    fn health_checked(&mut self, t: &Task) -> bool {
        let state = self.state;
        *self
            .health_checked
            .entry((t.family.clone(), t.revision))
            .or_insert_with(|| {
                state
                    .task_definition(&t.family, t.revision)
                    .is_some_and(|d| has_health_check(d))
            })
    }

    fn healthy(&mut self, t: &Task) -> bool {
        t.last_status == TaskStatus::Running
            && (t.health_status == HealthStatus::Healthy || !self.health_checked(t))
    }

    /// Stops the task if it failed its health checks and its grace period is over (saying so
    /// in an event about `label`); while the grace period runs, asks to look again at its end.
    /// Returns whether it was stopped.
    fn stop_if_unhealthy(&mut self, t: &Task, label: &str) -> bool {
        if t.last_status != TaskStatus::Running
            || t.health_status != HealthStatus::Unhealthy
            || !self.health_checked(t)
        {
            return false;
        }
        let grace_ms = i64::from(self.svc.health_check_grace_period_seconds.unwrap_or(0)) * 1000;
        let grace_ends = t
            .started_at
            .unwrap_or(t.created_at)
            .saturating_add_ms(grace_ms);
        if grace_ends > self.now {
            self.wake(grace_ends);
            return false;
        }
        self.stop(t, UNHEALTHY_REASON.into());
        self.post(events::unhealthy(label, t.id));
        true
    }

    /// The task's instance is not ACTIVE (draining, deregistered or gone).
    fn on_leaving_instance(&self, t: &Task) -> bool {
        t.instance
            .and_then(|i| self.state.instance(i))
            .is_none_or(|i| i.status != InstanceStatus::Active)
    }

    fn primary(&self) -> &Deployment {
        &self.svc.deployments[0]
    }

    /// Counts failures, and trips the circuit breaker when the PRIMARY has too many.
    fn circuit_breaker(&mut self, tasks: &[Arc<Task>]) {
        let now = self.now;
        for d in &mut self.svc.deployments {
            let n = tasks
                .iter()
                .filter(|t| t.started_by.as_deref() == Some(d.id.as_str()) && failed(t))
                .count() as u32;
            if n > d.failed_tasks {
                d.failed_tasks = n;
                d.updated_at = now;
            }
        }
        let breaker = self.svc.deployment_configuration.circuit_breaker;
        let p = self.primary();
        if !breaker.enable
            || p.rollout_state != RolloutState::InProgress
            || p.failed_tasks < failure_threshold(p.desired_count)
        {
            return;
        }
        let failed_id = p.id.clone();
        // A rollback that fails does not roll back again to what it was restoring (ECS: the
        // restored deployment is not eligible for another rollback until it completes); the
        // service stalls on its FAILED PRIMARY instead of looping.
        let restoring = p.rollback_of.clone();
        let name = self.svc.name.to_string();
        {
            let p = &mut self.svc.deployments[0];
            p.rollout_state = RolloutState::Failed;
            p.rollout_state_reason =
                Some("ECS deployment circuit breaker: tasks failed to start.".into());
            p.updated_at = now;
            p.finished_at = Some(now);
        }
        self.post(events::failed(&name, &failed_id));
        if !breaker.rollback {
            return;
        }
        let id = deployment_id(&mut self.rng);
        let reason = |to: &str| {
            format!("ECS deployment circuit breaker: rolling back to deploymentId {to}.")
        };
        let Some(target) = self.svc.roll_back(id, reason, restoring.as_deref(), now) else {
            return;
        };
        self.post(events::rolling_back(&name, &failed_id, &target));
    }

    /// Whether launches are being throttled after repeated failures; schedules the end of it.
    ///
    /// As ECS's throttle: only tasks that never reached RUNNING count (a task that ran and
    /// then exited, or failed its health checks, is replaced at once), and only the PRIMARY
    /// deployment's, so that a new deployment (a fix, or a rollback) starts unthrottled.
    ///
    /// `starter` is the deployment (or task set) whose launches are throttled.
    fn backing_off(&mut self, starter: &str, tasks: &[Arc<Task>], settings: &Settings) -> bool {
        let of_primary = |t: &&Arc<Task>| t.started_by.as_deref() == Some(starter);
        // Failures before a task of the PRIMARY last became healthy are forgiven.
        let anchor = tasks
            .iter()
            .filter(of_primary)
            .filter(|t| t.is_live() && t.desired_status == DesiredStatus::Running)
            .filter(|t| self.healthy(t))
            .filter_map(|t| t.started_at)
            .max();
        let failures: Vec<Millis> = tasks
            .iter()
            .filter(of_primary)
            .filter(|t| failed_to_start(t))
            .filter_map(|t| t.stopped_at)
            .filter(|s| anchor.is_none_or(|a| *s > a))
            .collect();
        let k = failures.len() as u32;
        if k < settings.backoff_after.max(1) {
            return false;
        }
        let exponent = (k - settings.backoff_after.max(1)).min(20);
        let delay = settings
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(settings.backoff_max_ms);
        let last = failures.into_iter().max().unwrap_or(self.now);
        let until = last.saturating_add_ms(delay);
        if self.now >= until {
            return false;
        }
        self.wake(until);
        let message = events::throttled(&self.svc.name);
        self.post_once(message);
        true
    }

    /// The template new tasks of the PRIMARY are made from, if its revision still exists.
    fn template(&self) -> Option<TaskTemplate> {
        let p = self.primary();
        self.template_for(&p.family, p.revision, &p.id)
    }

    /// The template of tasks of `family:revision` started by `starter` (a deployment or a
    /// task set), if the revision still exists.
    fn template_for(&self, family: &Name, revision: u32, starter: &str) -> Option<TaskTemplate> {
        let definition = self.state.task_definition(family, revision)?.clone();
        let (constraints, strategies) = placement(&self.svc, &definition);
        Some(TaskTemplate {
            priority: priority::of_service(&self.svc, &definition),
            ..TaskTemplate::plain(
                self.svc.cluster.clone(),
                definition,
                self.svc.group(),
                Some(starter.to_owned()),
                constraints,
                strategies,
                self.now,
            )
        })
    }

    /// Plans `count` tasks of the PRIMARY (anywhere, or one on each of `on`) and posts why
    /// when some could not be placed.
    fn launch(
        &mut self,
        count: usize,
        on: Option<Vec<InstanceId>>,
        provider: Option<Name>,
        settings: &Settings,
    ) {
        let template = self.template();
        self.launch_from(template, count, on, provider, settings);
    }

    /// Plans `count` tasks made from `template`; see [`Round::launch`].
    fn launch_from(
        &mut self,
        template: Option<TaskTemplate>,
        count: usize,
        on: Option<Vec<InstanceId>>,
        provider: Option<Name>,
        settings: &Settings,
    ) {
        if count == 0 {
            return;
        }
        let Some(mut template) = template else {
            return;
        };
        template.capacity_provider = provider;
        let seed = self.rng.random();
        let plan = place(
            self.state,
            &template.request(count, on.clone(), false),
            seed,
        );
        for p in &plan.placements {
            if let Some(instance) = self.state.instance(p.instance) {
                let id = TaskId(self.rng.random());
                self.launch.push(template.task(id, instance, p));
            }
        }
        self.distinct_instance = template.distinct_instance();
        let mut placed = plan.placements.len();
        if placed < count {
            // What found no room may displace lower-priority work: a daemon's task on each
            // instance it was refused, anything else wherever the cheapest victims are.
            let wanted: Vec<Option<Vec<InstanceId>>> = match on {
                Some(ids) => ids
                    .into_iter()
                    .filter(|i| !plan.placements.iter().any(|p| p.instance == *i))
                    .map(|i| Some(vec![i]))
                    .collect(),
                None => vec![None; count - placed],
            };
            placed += self.preempt_for(&template, wanted, seed);
        }
        if placed < count {
            let message = match (&template.capacity_provider, plan.rejections.first()) {
                (Some(provider), None) => events::provider_empty(&self.svc.name, provider),
                (_, closest) => events::unplaceable(&self.svc.name, closest),
            };
            // Not only "unless newest": the tasks that did fit post "has started" after it.
            self.post_unless_recent(message);
            let at = self.now.saturating_add_ms(settings.retry_unplaced_ms);
            self.wake(at);
        }
    }

    /// Tasks launched this round, placed outright or by preemption.
    fn launched(&self) -> usize {
        self.launch.len() + self.preempt.len()
    }

    /// Places one task of `template` per entry of `wanted` (its instance, for a daemon; else
    /// anywhere) by preemption, on a copy of the state that holds this round's launches and
    /// earlier preemptions, so each sees what the others took. Returns how many it placed;
    /// stops at the first that cannot be (the rest have the same needs).
    fn preempt_for(
        &mut self,
        template: &TaskTemplate,
        wanted: Vec<Option<Vec<InstanceId>>>,
        seed: u64,
    ) -> usize {
        let mut scratch = self.state.clone();
        let at = self.now;
        let apply = |scratch: &mut State, command: berth_model::Command| {
            let index = scratch.index();
            scratch
                .apply(
                    index,
                    &Stamped {
                        at,
                        command,
                        by: None,
                    },
                )
                .is_ok()
        };
        if !self.launch.is_empty() {
            let launched = PlaceTasks {
                cluster: self.svc.cluster.clone(),
                tasks: self.launch.clone(),
                client_token: None,
                distinct_instance: self.distinct_instance,
            };
            apply(&mut scratch, launched.into());
        }
        for earlier in &self.preempt {
            apply(&mut scratch, earlier.clone().into());
        }
        let mut placed = 0;
        for on in wanted {
            let touched: Vec<InstanceId> = self
                .preempt
                .iter()
                .filter_map(|p| p.task.instance)
                .collect();
            let request = template.request(1, on, false);
            let Some(choice) =
                preempt::choose(&scratch, &request, template.priority, at, seed, &touched)
            else {
                self.preemption_misses += 1;
                break;
            };
            let Some(instance) = scratch.instance(choice.instance) else {
                break;
            };
            let command = PreemptAndPlace {
                cluster: self.svc.cluster.clone(),
                task: Box::new(template.task(
                    TaskId(self.rng.random()),
                    instance,
                    &choice.placement,
                )),
                distinct_instance: template.distinct_instance(),
                victims: choice.victims,
            };
            if !apply(&mut scratch, command.clone().into()) {
                break;
            }
            self.preempt.push(command);
            placed += 1;
        }
        placed
    }

    /// Plans up to `budget` tasks made from `template`: anywhere without a strategy, else each
    /// capacity provider topped up to its share of the target.
    fn launch_shares(
        &mut self,
        template: Option<TaskTemplate>,
        budget: usize,
        shares: Shares<'_>,
        settings: &Settings,
    ) {
        if shares.strategy.is_empty() {
            self.launch_from(template, budget, None, None, settings);
            return;
        }
        let mut budget = budget;
        let targets = split(shares.strategy, shares.target);
        for (item, target) in shares.strategy.iter().zip(targets) {
            let there = shares
                .kept
                .iter()
                .filter(|t| t.capacity_provider.as_ref() == Some(&item.provider))
                .count();
            let count = (target as usize).saturating_sub(there).min(budget);
            budget -= count;
            let provider = Some(item.provider.clone());
            self.launch_from(template.clone(), count, None, provider, settings);
        }
    }

    /// `excess` of `candidates` to stop for scale-in: tasks that are not healthy yet first
    /// (newest first), then the placement chain in reverse.
    fn choose_scale_in(&mut self, candidates: Vec<Arc<Task>>, excess: usize) -> Vec<TaskId> {
        let (mut unready, ready): (Vec<_>, Vec<_>) =
            candidates.into_iter().partition(|t| !self.healthy(t));
        unready.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        let mut chosen: Vec<TaskId> = unready.iter().take(excess).map(|t| t.id).collect();
        let left = excess - chosen.len();
        if left > 0 {
            let strategies = placement_strategies(&self.svc);
            let ids: Vec<TaskId> = ready.iter().map(|t| t.id).collect();
            let seed = self.rng.random();
            chosen.extend(choose_to_stop(self.state, &ids, &strategies, left, seed));
        }
        chosen
    }

    /// Old tasks, least valuable first: not healthy, then on leaving instances, then of the
    /// oldest deployments.
    fn order_old(&mut self, old: &mut [Arc<Task>]) {
        let position: HashMap<String, usize> = self
            .svc
            .deployments
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        let mut keyed: Vec<_> = old
            .iter()
            .map(|t| {
                let deployment = t
                    .started_by
                    .as_deref()
                    .and_then(|s| position.get(s))
                    .copied()
                    .unwrap_or(usize::MAX);
                (
                    self.healthy(t),
                    !self.on_leaving_instance(t),
                    std::cmp::Reverse(deployment),
                    t.id,
                    t.clone(),
                )
            })
            .collect();
        keyed.sort_by_key(|k| (k.0, k.1, k.2, k.3));
        for (slot, k) in old.iter_mut().zip(keyed) {
            *slot = k.4;
        }
    }
}

/// Decides what to do for `service` on `state` at `now`.
pub fn reconcile(
    state: &State,
    service: &Arc<Service>,
    now: Millis,
    seed: u64,
    settings: &Settings,
) -> Decision {
    let mut round = Round {
        state,
        now,
        rng: SmallRng::seed_from_u64(seed),
        svc: (**service).clone(),
        stop: Vec::new(),
        launch: Vec::new(),
        distinct_instance: false,
        preempt: Vec::new(),
        preemption_misses: 0,
        wake_at: None,
        health_checked: HashMap::new(),
    };
    let filter = TaskFilter {
        group: Some(service.group()),
        ..TaskFilter::default()
    };
    let tasks: Vec<Arc<Task>> = state
        .tasks_after(&service.cluster, &filter, None)
        .cloned()
        .collect();
    if service.status == ServiceStatus::Draining {
        drain_deleted(&mut round, &tasks);
    } else if service.status == ServiceStatus::Active {
        if service.external() {
            task_sets::run(&mut round, &tasks, settings);
        } else if !service.deployments.is_empty() {
            round.circuit_breaker(&tasks);
            for (i, d) in round.svc.deployments.iter_mut().enumerate() {
                d.status = if i == 0 {
                    DeploymentStatus::Primary
                } else {
                    DeploymentStatus::Active
                };
            }
            run(&mut round, &tasks, settings);
        }
    }
    let changed = {
        let mut a = round.svc.clone();
        a.version = service.version;
        a != **service
    };
    Decision {
        current: service.clone(),
        service: changed.then_some(round.svc),
        launch: round.launch,
        distinct_instance: round.distinct_instance,
        preempt: round.preempt,
        preemption_misses: round.preemption_misses,
        stop: round.stop,
        wake_at: round.wake_at,
    }
}

/// A deleted service: stop everything; INACTIVE once nothing is left running.
fn drain_deleted(round: &mut Round<'_>, tasks: &[Arc<Task>]) {
    for t in tasks
        .iter()
        .filter(|t| t.is_live() && t.desired_status != DesiredStatus::Stopped)
    {
        let reason = scaling_reason(t.started_by.as_deref().unwrap_or_default());
        round.stop(t, reason);
    }
    if round.stop.is_empty() && tasks.iter().all(|t| !t.is_live()) {
        round.svc.status = ServiceStatus::Inactive;
        round.svc.steady = false;
        for d in &mut round.svc.deployments {
            d.status = DeploymentStatus::Inactive;
        }
    }
}

/// The live tasks of an ACTIVE service, sorted into those to keep (the PRIMARY's on ACTIVE
/// instances) and old ones; unhealthy ones past their grace period and PENDING ones on
/// leaving instances are stopped here.
fn classify(round: &mut Round<'_>, tasks: &[Arc<Task>]) -> Split {
    let primary = round.primary().id.clone();
    let name = round.svc.name.to_string();
    let (mut keep, mut old) = (Vec::new(), Vec::new());
    for t in tasks
        .iter()
        .filter(|t| t.is_live() && t.desired_status == DesiredStatus::Running)
    {
        if round.stop_if_unhealthy(t, &name) {
            continue;
        }
        let leaving = round.on_leaving_instance(t);
        if leaving && t.last_status < TaskStatus::Running {
            round.stop(t, DRAINING_REASON.into());
            continue;
        }
        if t.started_by.as_deref() == Some(primary.as_str()) && !leaving {
            keep.push(t.clone());
        } else {
            old.push(t.clone());
        }
    }
    (keep, old)
}

fn run(round: &mut Round<'_>, tasks: &[Arc<Task>], settings: &Settings) {
    let (keep, old) = classify(round, tasks);
    // A FAILED PRIMARY starts nothing, so there is nothing to throttle (or to say about it).
    let primary = round.primary().clone();
    let throttled = primary.rollout_state != RolloutState::Failed
        && round.backing_off(&primary.id, tasks, settings);
    // Told to stop but not stopped yet: still RUNNING as far as maximumPercent goes.
    let stopping = tasks
        .iter()
        .filter(|t| t.is_live() && t.desired_status == DesiredStatus::Stopped)
        .count();
    let (keep_after, healthy_kept) = match round.svc.scheduling_strategy {
        SchedulingStrategy::Replica => replica(round, keep, old, stopping, throttled, settings),
        SchedulingStrategy::Daemon => daemon::run(round, keep, old, throttled, settings),
    };
    let moved = !round.stop.is_empty() || round.launched() > 0;
    finish_rollout(round, tasks, keep_after, healthy_kept, moved);
}

/// REPLICA: scale-in, stop old tasks within minimumHealthyPercent, start within
/// maximumPercent. `stopping` tasks were told to stop in an earlier round and have not
/// stopped yet. Returns how many PRIMARY tasks are kept and how many of them are healthy.
fn replica(
    round: &mut Round<'_>,
    mut keep: Vec<Arc<Task>>,
    mut old: Vec<Arc<Task>>,
    stopping: usize,
    throttled: bool,
    settings: &Settings,
) -> (usize, usize) {
    let n = round.svc.desired_count as usize;
    let config = round.svc.deployment_configuration;
    let primary = round.primary().clone();
    let name = round.svc.name.to_string();
    let mut stopped = Vec::new();
    let mut spared = Vec::new();

    // Scale-in: tasks that are not healthy yet go first, then the placement chain in reverse;
    // protected tasks are never chosen.
    if keep.len() > n {
        let (protected, candidates): (Vec<_>, Vec<_>) =
            keep.iter().cloned().partition(|t| round.protected(t));
        let mut excess = (keep.len() - n).min(candidates.len());
        if keep.len() - n > candidates.len() {
            spared.extend(protected.iter().map(|t| t.id));
        }
        let mut chosen = Vec::new();
        for (bucket, over) in provider_excess(&round.svc, &keep, candidates) {
            let take = over.min(excess).min(bucket.len());
            excess -= take;
            chosen.extend(round.choose_scale_in(bucket, take));
        }
        for id in &chosen {
            round.stop.push(Stop {
                task: *id,
                reason: scaling_reason(&primary.id),
            });
        }
        keep.retain(|t| !chosen.contains(&t.id));
        stopped.extend(chosen);
    }

    // Old tasks: the ones that are not healthy go freely, healthy ones only as far as
    // minimumHealthyPercent allows. A FAILED PRIMARY replaces nothing.
    let mut healthy_now = keep
        .iter()
        .chain(old.iter())
        .filter(|t| round.healthy(t))
        .count();
    let min_healthy = config.min_healthy(n as u32) as usize;
    let mut remaining_old = old.len();
    if primary.rollout_state != RolloutState::Failed {
        round.order_old(&mut old);
        for t in &old {
            if round.protected(t) {
                spared.push(t.id);
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
            remaining_old -= 1;
        }
    }
    if !stopped.is_empty() {
        round.post(events::stopped(&name, &stopped));
    }
    if !spared.is_empty() {
        round.post_unless_recent(events::protected(&name, &spared));
    }

    // Starts: up to the desired count, within maximumPercent. ECS bounds the tasks in the
    // RUNNING or PENDING state, and a task told to stop is RUNNING until its agent has
    // stopped it, so those (this round's stops included) take room too.
    let max_running = config.max_running(n as u32) as usize;
    let want = n.saturating_sub(keep.len());
    let live = keep.len() + remaining_old + stopping + round.stop.len();
    let room = max_running.saturating_sub(live);
    // Stuck: the arithmetic itself leaves no room (not only both at 100: one task under
    // 50/150 rounds to the same), and nothing is moving that could make some.
    if want > 0
        && room == 0
        && round.stop.is_empty()
        && stopping == 0
        && min_healthy >= n
        && max_running <= n
    {
        round.post_once(events::stuck(
            &name,
            n as u32,
            config.minimum_healthy_percent,
            config.maximum_percent,
            min_healthy as u32,
            max_running as u32,
        ));
    }
    if primary.rollout_state != RolloutState::Failed && !throttled {
        let strategy = round.svc.capacity_provider_strategy.clone();
        let template = round.template();
        let shares = Shares {
            strategy: &strategy,
            target: n as u32,
            kept: &keep,
        };
        round.launch_shares(template, want.min(room), shares, settings);
    }
    let healthy_kept = keep.iter().filter(|t| round.healthy(t)).count();
    (keep.len(), healthy_kept)
}

/// Scale-in candidates grouped by where they run, with how many each group has above its
/// share of the desired count: tasks on no provider of the strategy (or every task, without
/// a strategy) first, then each provider's beyond its [`split`] share, so that scaling in
/// keeps the split.
fn provider_excess(
    service: &Service,
    kept: &[Arc<Task>],
    candidates: Vec<Arc<Task>>,
) -> Vec<(Vec<Arc<Task>>, usize)> {
    let strategy = &service.capacity_provider_strategy;
    let targets = split(strategy, service.desired_count);
    let slot = |t: &Task| {
        strategy
            .iter()
            .position(|i| t.capacity_provider.as_ref() == Some(&i.provider))
    };
    let mut unassigned = Vec::new();
    let mut by_provider: Vec<Vec<Arc<Task>>> = vec![Vec::new(); strategy.len()];
    for t in candidates {
        match slot(&t) {
            Some(k) => by_provider[k].push(t),
            None => unassigned.push(t),
        }
    }
    let mut out = Vec::with_capacity(strategy.len() + 1);
    let everything = unassigned.len();
    out.push((unassigned, everything));
    for (k, tasks) in by_provider.into_iter().enumerate() {
        let there = kept.iter().filter(|t| slot(t) == Some(k)).count();
        let over = there.saturating_sub(targets[k] as usize);
        out.push((tasks, over));
    }
    out
}

/// Marks the rollout COMPLETED once only the PRIMARY's healthy tasks are left, drops
/// deployments with nothing left running, and posts the steady state once.
fn finish_rollout(
    round: &mut Round<'_>,
    tasks: &[Arc<Task>],
    kept: usize,
    healthy_kept: usize,
    moved: bool,
) {
    let n = round.svc.desired_count as usize;
    let primary = round.primary().id.clone();
    let live_of = |id: &str| {
        tasks
            .iter()
            .any(|t| t.is_live() && t.started_by.as_deref() == Some(id))
    };
    // Anything live but the PRIMARY's kept tasks (older deployments' tasks, and tasks told to
    // stop that have not stopped yet: they are still RUNNING) means it is not over.
    let others_live = tasks.iter().any(|t| {
        t.is_live()
            && (t.started_by.as_deref() != Some(primary.as_str())
                || t.desired_status == DesiredStatus::Stopped)
    });
    let done = !moved && !others_live && kept == n && healthy_kept == n;
    let name = round.svc.name.to_string();
    if done && round.primary().rollout_state == RolloutState::InProgress {
        let now = round.now;
        let p = &mut round.svc.deployments[0];
        p.rollout_state = RolloutState::Completed;
        p.rollout_state_reason = Some(format!("ECS deployment {} completed.", p.id));
        p.updated_at = now;
        p.finished_at = Some(now);
        round.post(events::completed(&name, &primary));
    }
    // Older deployments go once none of their tasks is left, except, while the PRIMARY is
    // still rolling out, the newest COMPLETED one (what a circuit breaker rolls back to) and
    // FAILED ones (a rollback's reason: its tasks failed to start, so none is left, but the
    // deployment and its rolloutState stay visible until the rollback completes).
    let in_progress = round.primary().rollout_state == RolloutState::InProgress;
    let keep_target = round.svc.deployments[1..]
        .iter()
        .find(|d| d.rollout_state == RolloutState::Completed)
        .map(|d| d.id.clone())
        .filter(|_| in_progress);
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for (i, d) in std::mem::take(&mut round.svc.deployments)
        .into_iter()
        .enumerate()
    {
        let keep = i == 0
            || live_of(&d.id)
            || keep_target.as_deref() == Some(d.id.as_str())
            || (in_progress && d.rollout_state == RolloutState::Failed);
        if keep { kept.push(d) } else { gone.push(d) }
    }
    round.svc.deployments = kept;
    round.svc.retire(gone);
    let steady = done
        && round.svc.deployments.len() == 1
        && round.primary().rollout_state == RolloutState::Completed;
    if steady && !round.svc.steady {
        round.svc.steady = true;
        round.post(events::steady(&name));
    } else if !steady {
        round.svc.steady = false;
    }
}
