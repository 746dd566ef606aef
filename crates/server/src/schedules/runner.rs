//! The schedule runner: the thin shell on the leader around `berth_scheduler::timetable`.
//!
//! ```text
//!  every second, at the earliest wake-up a decision asked for, and after a pass that wrote
//!    snapshot ─► decide(schedule, timing, now) for each schedule
//!      ├─ Take ─► (REPLACE: StopTask the previous run's tasks) ─► TakeDueTimes (CAS on
//!      │          last_due: refused if another leader took it first)
//!      └─ Attempt ─► RunTask as the schedule's creator (authorized now, as the API would),
//!                    clientToken per (due time, attempt) ─► EndScheduleAttempt (CAS on the
//!                    attempt): the run's record, or a retry time from the retry policy
//! ```
//! A leader that dies between RunTask and EndScheduleAttempt leaves the run pending; the next
//! leader repeats the same attempt with the same client token, and RunTask answers with the
//! tasks already started, so a run starts its tasks once. Parsed timings are cached per
//! schedule version. A pass decides every schedule (about 0.2 µs each when none is due:
//! BENCHMARKS.md), so passes follow the clock, not every change to the state: at the earliest
//! time a decision asked for, at least every second, and at once after a pass that committed
//! something.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_api::types as api;
use berth_api::{EcsError, ErrorCode};
use berth_model::Millis;
use berth_model::arn::ArnContext;
use berth_model::command::{EndScheduleAttempt, StopTask};
use berth_model::entity::Name;
use berth_model::schedule::{AfterCompletion, RunOutcome, Schedule};
use berth_scheduler::timetable::{Step, client_token, decide, retry_at};
use berth_state::State;

use crate::App;
use crate::auth::Principal;
use crate::ecs::Ctx;

/// The longest the runner sleeps without looking (a change to the state wakes it sooner).
const TICK: Duration = Duration::from_secs(1);
/// The region in the ARNs a run renders (runs have no request to take it from).
const RUN_REGION: &str = berth_api::protocol::DEFAULT_REGION;

/// Spawns the schedule runner; it acts only while this node is the leader.
pub struct ScheduleRunner;

impl ScheduleRunner {
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { run(app).await })
    }
}

/// A schedule's timing, parsed from its stored settings.
pub(crate) fn timing(s: &Schedule) -> Result<berth_schedule::Schedule, berth_schedule::Invalid> {
    berth_schedule::Schedule::new(berth_schedule::Spec {
        expression: &s.spec.expression,
        time_zone: s.spec.time_zone.as_deref(),
        start: s.spec.start.map(|m| m.0),
        end: s.spec.end.map(|m| m.0),
        created: s.created_at.0,
    })
}

type Key = (Name, Name);

async fn run(app: Arc<App>) {
    let mut timings: HashMap<Key, (u64, Arc<berth_schedule::Schedule>)> = HashMap::new();
    let mut wake: Option<Millis> = None;
    let mut busy = false;
    loop {
        if !app.node.is_leader() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = app.stopping() => return,
            }
            continue;
        }
        let now = Millis::now();
        let wait = if busy {
            Duration::ZERO
        } else {
            wake.map_or(TICK, |at| {
                Duration::from_millis(at.0.saturating_sub(now.0).max(0) as u64).min(TICK)
            })
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = app.stopping() => return,
        }
        let state = app.node.state();
        let now = Millis::now();
        wake = None;
        let mut steps = Vec::new();
        for s in state.schedules() {
            let key = (s.group.clone(), s.name.clone());
            let parsed = match timings.get(&key) {
                Some((version, t)) if *version == s.version => t.clone(),
                _ => match timing(s) {
                    Ok(t) => {
                        let t = Arc::new(t);
                        timings.insert(key, (s.version, t.clone()));
                        t
                    }
                    Err(e) => {
                        tracing::warn!(schedule = %s.name, error = %e, "a stored schedule no longer parses");
                        continue;
                    }
                },
            };
            match decide(&state, s, &parsed, now) {
                Step::Wait { until } => {
                    if let Some(at) = until {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                    }
                }
                step => steps.push((s.clone(), step)),
            }
        }
        timings.retain(|(g, n), _| state.schedule(g, n).is_some());
        busy = false;
        for (schedule, step) in steps {
            busy |= carry_out(&app, &state, &schedule, step).await;
        }
    }
}

/// Carries out one step; whether it committed something (then the next pass comes at once).
async fn carry_out(app: &App, state: &State, schedule: &Schedule, step: Step) -> bool {
    let name = format!("{}/{}", schedule.group, schedule.name);
    match step {
        Step::Wait { .. } => false,
        Step::Take { take, stop } => {
            for id in stop {
                let command = StopTask {
                    cluster: schedule.spec.target.cluster.clone(),
                    id,
                    reason: Some(format!(
                        "Replaced by the next run of schedule {name} (concurrency REPLACE)"
                    )),
                    stop_code: Some("UserInitiated".into()),
                };
                if let Err(e) = write(app, &schedule.spec.creator.actor, command).await {
                    tracing::debug!(schedule = %name, error = %e, "stopping the previous run's task failed");
                }
            }
            match write(app, &schedule.spec.creator.actor, take).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!(schedule = %name, error = %e, "taking due times refused (another leader took them?)");
                    false
                }
            }
        }
        Step::Attempt { due, attempt } => {
            let (tasks, failures, error) = attempt_run(app, state, schedule, due, attempt).await;
            let now = Millis::now();
            let outcome = if !tasks.is_empty() {
                Some(RunOutcome::Started { failures })
            } else {
                let reason = error.unwrap_or_else(|| {
                    if failures.is_empty() {
                        "RunTask started no task".to_owned()
                    } else {
                        failures.join("; ")
                    }
                });
                match retry_at(schedule.spec.target.retry, due, attempt, now) {
                    Some(at) => {
                        tracing::info!(schedule = %name, attempt, %reason, retry_in_ms = at.0 - now.0, "a scheduled run started no task; retrying");
                        let end = end_attempt(schedule, due, attempt, tasks, None, at, false);
                        return match write(app, &schedule.spec.creator.actor, end).await {
                            Ok(_) => true,
                            Err(e) => {
                                tracing::debug!(schedule = %name, error = %e, "ending the attempt refused");
                                false
                            }
                        };
                    }
                    None => Some(RunOutcome::Failed { reason }),
                }
            };
            let delete = schedule.spec.after_completion == AfterCompletion::Delete
                && timing(schedule).is_ok_and(|t| t.is_one_time());
            let end = end_attempt(schedule, due, attempt, tasks, outcome, now, delete);
            match write(app, &schedule.spec.creator.actor, end).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!(schedule = %name, error = %e, "ending the run refused");
                    false
                }
            }
        }
    }
}

fn end_attempt(
    schedule: &Schedule,
    due: Millis,
    attempt: u32,
    tasks: Vec<berth_model::TaskId>,
    outcome: Option<RunOutcome>,
    retry_at: Millis,
    delete: bool,
) -> EndScheduleAttempt {
    EndScheduleAttempt {
        group: schedule.group.clone(),
        name: schedule.name.clone(),
        due,
        attempt,
        tasks,
        outcome,
        retry_at,
        delete,
    }
}

/// Writes `command` on behalf of the schedule's creator (the audit trail names them).
async fn write<C: berth_model::TypedCommand>(
    app: &App,
    actor: &str,
    command: C,
) -> Result<C::Output, EcsError> {
    let written = app
        .node
        .write_by(actor, command)
        .await
        .map_err(crate::ecs::unavailable)?;
    written.result.map_err(Into::into)
}

/// One RunTask for the run due at `due`, as the schedule's creator: the tasks it started, the
/// placement failures, and the error that stopped it, if one did.
async fn attempt_run(
    app: &App,
    state: &State,
    schedule: &Schedule,
    due: Millis,
    attempt: u32,
) -> (Vec<berth_model::TaskId>, Vec<String>, Option<String>) {
    let creator = &schedule.spec.creator;
    let Some(credential) = state.credential(&creator.access_key_id) else {
        return (
            Vec::new(),
            Vec::new(),
            Some(format!(
                "the schedule's creator ({}) no longer has a credential to run as; update the schedule with another",
                creator.actor
            )),
        );
    };
    let ctx = Ctx {
        arn: ArnContext::new(RUN_REGION, app.config.account_id.clone()),
        host: None,
        principal: Principal::Credential(credential.clone()),
    };
    let request = api::RunTaskRequest {
        client_token: Some(client_token(schedule, due, attempt)),
        ..schedule.spec.target.run_task.clone()
    };
    match crate::ecs::run_task(app, &ctx, request).await {
        Ok(response) => {
            let tasks = response
                .tasks
                .unwrap_or_default()
                .iter()
                .filter_map(|t| t.task_arn.as_deref())
                .filter_map(|arn| berth_model::arn::parse_task(arn).ok())
                .map(|(_, id)| id)
                .collect();
            let failures = response
                .failures
                .unwrap_or_default()
                .iter()
                .map(|f| {
                    format!(
                        "{}{}",
                        f.reason.as_deref().unwrap_or("failure"),
                        f.detail
                            .as_deref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            (tasks, failures, None)
        }
        Err(e) => (Vec::new(), Vec::new(), Some(describe(&e))),
    }
}

fn describe(e: &EcsError) -> String {
    match e.code {
        ErrorCode::AccessDeniedException => format!(
            "the schedule's creator may not run this task now: {}",
            e.message
        ),
        _ => format!("{}: {}", e.code, e.message),
    }
}
