//! Schedule commands: the settings (create, update, policy, delete) and the two steps of a
//! run, each carrying the due time it is about, so that no due time is run twice.

use serde::{Deserialize, Serialize};

use crate::TaskId;
use crate::entity::Name;
use crate::schedule::{RunOutcome, RunPolicy, ScheduleRun, ScheduleSpec};
use crate::time::Millis;

/// A new schedule; refused (ConflictException) while the group has one of that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSchedule {
    pub group: Name,
    pub name: Name,
    pub spec: ScheduleSpec,
}

/// Replaces a schedule's settings whole, as UpdateSchedule does. Its run policy, run records
/// and a run in progress stay; its timetable starts afresh from the update (due times before
/// it are not run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSchedule {
    pub group: Name,
    pub name: Name,
    pub spec: ScheduleSpec,
}

/// Sets the policies the Scheduler API has no field for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetSchedulePolicy {
    pub group: Name,
    pub name: Name,
    pub policy: RunPolicy,
}

/// Removes a schedule; a run in progress is not finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteSchedule {
    pub group: Name,
    pub name: Name,
}

/// Takes the due times after `after` through `through`, compare-and-set: applied only while
/// the schedule's `last_due` is still `after` (and no run is pending when one is started), so
/// of two leaders deciding the same due time, one wins. `records` are the runs decided
/// without starting anything (skipped, missed); `start` is the due time whose run begins
/// (it becomes the pending run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeDueTimes {
    pub group: Name,
    pub name: Name,
    pub after: Option<Millis>,
    pub through: Millis,
    pub records: Vec<ScheduleRun>,
    pub start: Option<Millis>,
}

/// The end of one attempt of the pending run due at `due`, compare-and-set on the attempts
/// made before it (`attempt` counts from 1). With an `outcome` the run is over and recorded
/// (and the schedule removed when `delete`); without one it is tried again from `retry_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndScheduleAttempt {
    pub group: Name,
    pub name: Name,
    pub due: Millis,
    pub attempt: u32,
    pub tasks: Vec<TaskId>,
    pub outcome: Option<RunOutcome>,
    pub retry_at: Millis,
    pub delete: bool,
}
