//! Schedules: RunTask on a timetable, as EventBridge Scheduler runs ECS tasks, kept in the
//! cluster's own state so that runs survive leader changes.
//!
//! ```text
//!  CreateSchedule ─► Schedule { expression, target: RunTask request, policy, last_due }
//!                                   │
//!  leader: due time D reached ─► BeginScheduleRun { due: D, after: last_due }  (compare-and-set:
//!                                   │               a due time is taken once, by one leader)
//!                                   ├─ skipped / missed ─► a run record, nothing started
//!                                   └─ pending run D ─► RunTask (clientToken from D and the
//!                                        attempt: a new leader repeating it gets the same
//!                                        tasks) ─► EndScheduleRun { due: D, tasks } ─► record
//! ```
//! The due time is part of every command, so a new leader asks "what is due after
//! `last_due`?" and never runs D twice. The target is stored as the RunTask request it
//! becomes (EcsParameters and the overrides in `Target.Input`, translated once, at creation),
//! and runs act with the permissions of the principal that created or last updated the
//! schedule, checked at each run.

use berth_api::types::RunTaskRequest;
use serde::{Deserialize, Serialize};

use crate::TaskId;
use crate::entity::{Name, wire_enum};
use crate::error::Error;
use crate::time::Millis;

/// The schedule group every schedule belongs to unless it names another.
pub const DEFAULT_GROUP: &str = "default";
/// Run records a schedule keeps (the newest).
pub const MAX_RUNS: usize = 20;
/// Longest schedule or group name, as the Scheduler API allows.
pub const MAX_NAME_LEN: usize = 64;

wire_enum!(
    /// Whether a schedule runs.
    ScheduleState { Enabled = "ENABLED", Disabled = "DISABLED" }
);

wire_enum!(
    /// What happens to a one-time (`at`) schedule once it has run.
    AfterCompletion { None = "NONE", Delete = "DELETE" }
);

wire_enum!(
    /// What a run does when the previous run's tasks are still running. Not a field of the
    /// Scheduler API: set through berth's native API and CLI.
    Concurrency {
        /// Start the new run anyway.
        Allow = "ALLOW",
        /// Record the run as skipped (the default, as Kubernetes CronJob's `Forbid`).
        SkipIfRunning = "SKIP_IF_RUNNING",
        /// Stop the previous run's tasks, then start the new run.
        Replace = "REPLACE",
    }
);

wire_enum!(
    /// What happens to due times that passed while no leader could run them (an outage, or
    /// a leader change longer than [`MISSED_AFTER_MS`]).
    MissedRuns {
        /// Record them as missed and wait for the next due time (the default).
        Skip = "SKIP",
        /// Run the latest of them once, and record the others as missed.
        CatchUpOnce = "CATCH_UP_ONCE",
    }
);

/// A due time this much in the past is missed, not late: a leader change that takes less
/// (elections take well under a second) still runs it.
pub const MISSED_AFTER_MS: i64 = 60_000;

/// The policies the Scheduler API has no field for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPolicy {
    pub concurrency: Concurrency,
    pub missed: MissedRuns,
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            concurrency: Concurrency::SkipIfRunning,
            missed: MissedRuns::Skip,
        }
    }
}

/// `Target.RetryPolicy`: how long and how often a run that could start no task is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub maximum_event_age_seconds: u32,
    pub maximum_retry_attempts: u32,
}

impl Default for RetryPolicy {
    /// EventBridge Scheduler's defaults: 24 hours, 185 attempts.
    fn default() -> Self {
        Self {
            maximum_event_age_seconds: 86_400,
            maximum_retry_attempts: 185,
        }
    }
}

/// What a schedule runs, as CreateSchedule's `Target` gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleTarget {
    /// `Target.Arn`: the cluster's ARN, as given.
    pub arn: String,
    /// The cluster it names.
    pub cluster: Name,
    /// `Target.RoleArn`: required by the API; recorded and echoed (berth assumes no roles:
    /// runs act as the schedule's creator).
    pub role_arn: String,
    /// `Target.Input`, as given: RunTask overrides as JSON.
    pub input: Option<String>,
    pub retry: RetryPolicy,
    pub dead_letter_arn: Option<String>,
    /// The RunTask request each run makes (cluster, task definition, count, overrides,
    /// placement, strategy, tags); its clientToken is set per run.
    pub run_task: RunTaskRequest,
}

/// Who a schedule's runs act as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    /// The credential whose policy each run is checked against.
    pub access_key_id: String,
    /// The audit name (`user/alice`).
    pub actor: String,
}

/// How a run ended (or why it did not start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunOutcome {
    /// Tasks were started (some may have failed to place: `failures` says why).
    Started { failures: Vec<String> },
    /// Not started: the concurrency policy said so.
    Skipped { reason: String },
    /// `count` due times (the first of them is the record's `due`) passed while no leader ran
    /// them.
    Missed { count: u32, last: Millis },
    /// No task could be started, after every attempt the retry policy allowed.
    Failed { reason: String },
}

/// One due time's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// The due time (whole minutes for cron, the start date plus multiples for rate).
    pub due: Millis,
    /// When it was decided (started, skipped or recorded missed).
    pub at: Millis,
    /// Attempts made (RunTask calls).
    pub attempts: u32,
    /// The tasks it created.
    pub tasks: Vec<TaskId>,
    pub outcome: RunOutcome,
}

/// A run taken but not yet finished: its RunTask is (being) called. A new leader finds it
/// here and repeats the call with the same client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRun {
    pub due: Millis,
    /// Attempts made so far.
    pub attempts: u32,
    /// The next attempt is not before this.
    pub not_before: Millis,
    pub taken_at: Millis,
}

/// A schedule's settings, as CreateSchedule and UpdateSchedule give them (validated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// `at(...)`, `rate(...)` or `cron(...)`, validated by `berth-schedule`.
    pub expression: String,
    pub time_zone: Option<String>,
    pub start: Option<Millis>,
    pub end: Option<Millis>,
    pub description: Option<String>,
    pub state: ScheduleState,
    /// `FlexibleTimeWindow`: `None` for mode OFF, else the window in minutes.
    pub flexible_window_minutes: Option<u32>,
    pub after_completion: AfterCompletion,
    /// Recorded and echoed; berth seals nothing with it.
    pub kms_key_arn: Option<String>,
    pub target: ScheduleTarget,
    /// Who created or last updated it: runs act as this principal.
    pub creator: Creator,
}

/// A schedule, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub group: Name,
    pub name: Name,
    pub spec: ScheduleSpec,
    pub policy: RunPolicy,
    pub created_at: Millis,
    pub modified_at: Millis,
    /// The latest due time taken (run, skipped or missed); the next run is due after it.
    /// `None` before the first: the first due time is at or after `created_at`.
    pub last_due: Option<Millis>,
    pub pending: Option<PendingRun>,
    /// The newest [`MAX_RUNS`] runs, oldest first.
    pub runs: Vec<ScheduleRun>,
    pub version: u64,
}

impl Schedule {
    /// `arn:aws:scheduler:<region>:<account>:schedule/<group>/<name>`.
    pub fn arn(&self, partition: &str, region: &str, account: &str) -> String {
        schedule_arn(partition, region, account, &self.group, &self.name)
    }

    /// The moment after which the next due time is looked for: the last one taken, else just
    /// before creation (a rate without a start date runs first when it is created, as
    /// `berth schedule preview` shows).
    pub fn due_after(&self) -> Millis {
        self.last_due
            .unwrap_or_else(|| self.created_at.saturating_sub_ms(1))
    }

    /// The previous started run's tasks, newest run first.
    pub fn last_started(&self) -> Option<&ScheduleRun> {
        self.runs
            .iter()
            .rev()
            .find(|r| matches!(r.outcome, RunOutcome::Started { .. }))
    }
}

/// `arn:<partition>:scheduler:<region>:<account>:schedule/<group>/<name>`.
pub fn schedule_arn(
    partition: &str,
    region: &str,
    account: &str,
    group: &str,
    name: &str,
) -> String {
    format!("arn:{partition}:scheduler:{region}:{account}:schedule/{group}/{name}")
}

/// A schedule or group name: 1 to 64 of `[0-9a-zA-Z-_.]`, as the Scheduler API allows.
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(80).collect();
        Err(Error::invalid(format!(
            "{what} '{shown}' must be 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_scheduler_pattern() {
        assert!(check_name("Name", "nightly-report_v1.2").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(65), "é"] {
            let e = check_name("Name", bad).unwrap_err();
            assert!(e.to_string().contains("must be 1 to 64"), "{e}");
        }
    }
}
