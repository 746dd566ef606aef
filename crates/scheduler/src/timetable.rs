//! What a schedule does now: the pure decision the leader's schedule runner commits.
//!
//! ```text
//!  (snapshot, schedule, its parsed timing, now)
//!     ├─ a run pending and its attempt due ──────────► Attempt { due, attempt }
//!     ├─ disabled, finished, or next start ahead ─────► Wait { until }
//!     └─ due time(s) reached ─► late? (older than MISSED_AFTER_MS)
//!            ├─ no: the first due time runs
//!            └─ yes: missed policy — SKIP runs the latest only if it is itself recent;
//!                    CATCH_UP_ONCE runs the latest; the others become one "missed" record
//!        ─► concurrency policy on the previous run's live tasks
//!            ALLOW: start · SKIP_IF_RUNNING: a "skipped" record · REPLACE: stop them, start
//!        ─► Take(TakeDueTimes { after: last_due, through: latest taken, records, start })
//! ```
//! Time is an input and the decision names every due time it takes, so the state machine's
//! compare-and-set on `last_due` makes each due time run at most once across leaders, and the
//! runner's client token per (due time, attempt) makes the RunTask of a run repeated by a new
//! leader return the tasks the old one started.

use berth_model::command::TakeDueTimes;
use berth_model::entity::TaskStatus;
use berth_model::schedule::{
    Concurrency, MISSED_AFTER_MS, MissedRuns, RetryPolicy, RunOutcome, Schedule, ScheduleRun,
    ScheduleState,
};
use berth_model::{Millis, TaskId};
use berth_schedule::flexible_start;
use berth_state::State;

/// Due times counted one by one when a schedule catches up; beyond, a missed record says
/// "at least this many".
const COUNT_LIMIT: u32 = 1_000;
/// The longest pause between two attempts of a run.
const MAX_BACKOFF_MS: i64 = 300_000;

/// What the runner does about one schedule now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing before `until` (`None`: nothing until the schedule changes).
    Wait { until: Option<Millis> },
    /// Take due times (commit this; when it starts a run, stop `stop` first: REPLACE).
    Take {
        take: TakeDueTimes,
        stop: Vec<TaskId>,
    },
    /// Make attempt `attempt` (from 1) of the pending run due at `due`.
    Attempt { due: Millis, attempt: u32 },
}

/// Decides what `schedule` (with its parsed `timing`) does at `now`.
pub fn decide(
    state: &State,
    schedule: &Schedule,
    timing: &berth_schedule::Schedule,
    now: Millis,
) -> Step {
    if let Some(pending) = &schedule.pending {
        return if pending.not_before <= now {
            Step::Attempt {
                due: pending.due,
                attempt: pending.attempts + 1,
            }
        } else {
            Step::Wait {
                until: Some(pending.not_before),
            }
        };
    }
    if schedule.spec.state == ScheduleState::Disabled {
        return Step::Wait { until: None };
    }
    let Some(first) = timing.next_due(schedule.due_after().0).map(Millis) else {
        return Step::Wait { until: None };
    };
    let window = schedule.spec.flexible_window_minutes.unwrap_or(0);
    let starts = if window == 0 {
        first
    } else {
        let key = format!("{}/{}", schedule.group, schedule.name);
        Millis(flexible_start(first.0, window, &key))
    };
    if starts > now {
        return Step::Wait {
            until: Some(starts),
        };
    }
    // Late is measured from when the run was to start (inside its window), so a flexible
    // start is not mistaken for a missed one.
    let late = now.0 - starts.0 > MISSED_AFTER_MS;
    let window_ms = i64::from(window) * 60_000;
    let (through, count) = if late {
        latest_due(timing, first, now)
    } else {
        (first, 1)
    };
    let run = if !late {
        Some(first)
    } else {
        match schedule.policy.missed {
            MissedRuns::CatchUpOnce => Some(through),
            MissedRuns::Skip => {
                (now.0 - through.0 <= MISSED_AFTER_MS + window_ms).then_some(through)
            }
        }
    };
    let missed = count - u32::from(run.is_some());
    let mut records = Vec::new();
    if missed > 0 {
        let last = if run.is_some() {
            timing_before(timing, first, through)
        } else {
            through
        };
        records.push(ScheduleRun {
            due: first,
            at: now,
            attempts: 0,
            tasks: Vec::new(),
            outcome: RunOutcome::Missed {
                count: missed,
                last,
            },
        });
    }
    let live = previous_live_tasks(state, schedule);
    let (start, stop) = match (run, schedule.policy.concurrency) {
        (None, _) => (None, Vec::new()),
        (Some(due), Concurrency::SkipIfRunning) if !live.is_empty() => {
            records.push(ScheduleRun {
                due,
                at: now,
                attempts: 0,
                tasks: Vec::new(),
                outcome: RunOutcome::Skipped {
                    reason: format!(
                        "the previous run's {} task(s) were still running (concurrency SKIP_IF_RUNNING)",
                        live.len()
                    ),
                },
            });
            (None, Vec::new())
        }
        (Some(due), Concurrency::Replace) => (Some(due), live),
        (Some(due), _) => (Some(due), Vec::new()),
    };
    Step::Take {
        take: TakeDueTimes {
            group: schedule.group.clone(),
            name: schedule.name.clone(),
            after: schedule.last_due,
            through,
            records,
            start,
        },
        stop,
    }
}

/// The tasks of the previous started run that have not stopped.
fn previous_live_tasks(state: &State, schedule: &Schedule) -> Vec<TaskId> {
    schedule
        .last_started()
        .map(|run| {
            run.tasks
                .iter()
                .copied()
                .filter(|id| {
                    state
                        .task(*id)
                        .is_some_and(|t| t.last_status != TaskStatus::Stopped)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The latest due time at or before `now`, from `first` (which is), and how many there are
/// (counted up to [`COUNT_LIMIT`]; beyond it the latest is found by looking back from `now`).
fn latest_due(timing: &berth_schedule::Schedule, first: Millis, now: Millis) -> (Millis, u32) {
    let mut latest = first;
    let mut count = 1;
    while count < COUNT_LIMIT {
        match timing.next_due(latest.0) {
            Some(next) if next <= now.0 => {
                latest = Millis(next);
                count += 1;
            }
            _ => return (latest, count),
        }
    }
    // Many more: look back from `now` over doubling spans for one due time, then walk
    // forwards from it to the last.
    let mut span = 60_000i64;
    while now.0 - span > latest.0 {
        if let Some(found) = timing.next_due(now.0 - span).filter(|d| *d <= now.0) {
            let mut last = found;
            while let Some(next) = timing.next_due(last).filter(|d| *d <= now.0) {
                last = next;
            }
            return (Millis(last), COUNT_LIMIT);
        }
        span = span.saturating_mul(2);
    }
    (latest, count)
}

/// The due time just before `due` (from `first`, which is at or before it): the last of the
/// missed ones when `due` itself runs.
fn timing_before(timing: &berth_schedule::Schedule, first: Millis, due: Millis) -> Millis {
    let mut before = first;
    let mut steps = 0;
    while let Some(next) = timing.next_due(before.0).filter(|d| *d < due.0) {
        before = Millis(next);
        steps += 1;
        if steps >= COUNT_LIMIT {
            break;
        }
    }
    before
}

/// When attempt `attempt + 1` of a run due at `due` may be made, after attempt `attempt`
/// started no task at `now`: an exponential backoff from 1 s, at most 5 minutes; `None` when
/// the retry policy allows no more (attempts or the event's age).
pub fn retry_at(retry: RetryPolicy, due: Millis, attempt: u32, now: Millis) -> Option<Millis> {
    if attempt > retry.maximum_retry_attempts {
        return None;
    }
    let backoff = 1_000i64
        .checked_shl(attempt.saturating_sub(1).min(20))
        .unwrap_or(MAX_BACKOFF_MS)
        .min(MAX_BACKOFF_MS);
    let at = now.saturating_add_ms(backoff);
    let oldest = due.saturating_add_ms(i64::from(retry.maximum_event_age_seconds) * 1000);
    (at <= oldest).then_some(at)
}

/// The RunTask client token of one attempt of one run: the same for a leader repeating it,
/// different for every other (run, attempt). At most 64 characters, as RunTask allows.
pub fn client_token(schedule: &Schedule, due: Millis, attempt: u32) -> String {
    // FNV-1a: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let identity = format!(
        "{}/{}/{}",
        schedule.group, schedule.name, schedule.created_at.0
    );
    for byte in identity.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("berth-schedule-{hash:016x}-{}-{attempt}", due.0)
}
