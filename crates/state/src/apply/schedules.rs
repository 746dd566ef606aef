//! Schedules: their settings, and the compare-and-set steps that take a due time and end a
//! run, so that each due time is run at most once whoever leads.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use berth_model::command::{
    CreateSchedule, DeleteSchedule, EndScheduleAttempt, SetSchedulePolicy, TakeDueTimes,
    UpdateSchedule,
};
use berth_model::entity::Name;
use berth_model::schedule::{MAX_RUNS, PendingRun, RunPolicy, Schedule, ScheduleRun};
use berth_model::{Error, Millis};

use super::Apply;
use crate::State;

fn not_found(group: &str, name: &str) -> Error {
    Error::ResourceNotFound(format!(
        "Schedule {name} does not exist in schedule group {group}."
    ))
}

impl State {
    /// The schedule `name` of `group`.
    pub fn schedule(&self, group: &str, name: &str) -> Option<&Arc<Schedule>> {
        self.schedules.get(&(Name::from(group), Name::from(name)))
    }

    /// Every schedule, by group and name.
    pub fn schedules(&self) -> impl Iterator<Item = &Arc<Schedule>> {
        self.schedules.values()
    }

    /// Schedules after `(group, name)` (exclusive) in group and name order: pagination.
    pub fn schedules_after(
        &self,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &Arc<Schedule>> + '_ {
        let lower = match after {
            Some((g, n)) => Excluded((Name::from(g), Name::from(n))),
            None => Unbounded,
        };
        self.schedules.range((lower, Unbounded)).map(|(_, v)| v)
    }

    fn existing_schedule(&self, group: &Name, name: &Name) -> Result<&Arc<Schedule>, Error> {
        self.schedules
            .get(&(group.clone(), name.clone()))
            .ok_or_else(|| not_found(group, name))
    }

    fn put_schedule(&mut self, schedule: Schedule) -> Arc<Schedule> {
        let schedule = Arc::new(Schedule {
            version: self.index,
            ..schedule
        });
        self.schedules.insert(
            (schedule.group.clone(), schedule.name.clone()),
            schedule.clone(),
        );
        schedule
    }
}

/// Appends `runs`, keeping the newest [`MAX_RUNS`].
fn record(kept: &mut Vec<ScheduleRun>, runs: impl IntoIterator<Item = ScheduleRun>) {
    kept.extend(runs);
    let excess = kept.len().saturating_sub(MAX_RUNS);
    kept.drain(..excess);
}

impl Apply for CreateSchedule {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Schedule>, Error> {
        if state.schedule(&self.group, &self.name).is_some() {
            return Err(Error::Conflict(format!(
                "Schedule {} already exists in schedule group {}.",
                self.name, self.group
            )));
        }
        Ok(state.put_schedule(Schedule {
            group: self.group.clone(),
            name: self.name.clone(),
            spec: self.spec.clone(),
            policy: RunPolicy::default(),
            created_at: at,
            modified_at: at,
            last_due: None,
            pending: None,
            runs: Vec::new(),
            version: 0,
        }))
    }
}

impl Apply for UpdateSchedule {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Schedule>, Error> {
        let old = state.existing_schedule(&self.group, &self.name)?;
        let updated = Schedule {
            spec: self.spec.clone(),
            modified_at: at,
            last_due: Some(old.last_due.map_or(at, |d| d.max(at))),
            ..Schedule::clone(old)
        };
        Ok(state.put_schedule(updated))
    }
}

impl Apply for SetSchedulePolicy {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Schedule>, Error> {
        let old = state.existing_schedule(&self.group, &self.name)?;
        let updated = Schedule {
            policy: self.policy,
            modified_at: at,
            ..Schedule::clone(old)
        };
        Ok(state.put_schedule(updated))
    }
}

impl Apply for DeleteSchedule {
    fn apply(&self, state: &mut State, _: Millis) -> Result<Arc<Schedule>, Error> {
        state.existing_schedule(&self.group, &self.name)?;
        state
            .schedules
            .remove(&(self.group.clone(), self.name.clone()))
            .ok_or_else(|| not_found(&self.group, &self.name))
    }
}

impl Apply for TakeDueTimes {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Schedule>, Error> {
        let old = state.existing_schedule(&self.group, &self.name)?;
        if old.last_due != self.after {
            return Err(Error::Conflict(format!(
                "the due times of schedule {}/{} after {:?} were already taken (its last due time is {:?})",
                self.group, self.name, self.after, old.last_due
            )));
        }
        if self.after.is_some_and(|a| self.through <= a) {
            return Err(Error::invalid(
                "a schedule's due times are taken forwards only",
            ));
        }
        if self.start.is_some() && old.pending.is_some() {
            return Err(Error::Conflict(format!(
                "schedule {}/{} still has a run in progress",
                self.group, self.name
            )));
        }
        let mut updated = Schedule::clone(old);
        updated.last_due = Some(self.through);
        record(&mut updated.runs, self.records.iter().cloned());
        if let Some(due) = self.start {
            updated.pending = Some(PendingRun {
                due,
                attempts: 0,
                not_before: at,
                taken_at: at,
            });
        }
        Ok(state.put_schedule(updated))
    }
}

impl Apply for EndScheduleAttempt {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Schedule>, Error> {
        let old = state.existing_schedule(&self.group, &self.name)?;
        let current = old
            .pending
            .as_ref()
            .filter(|p| p.due == self.due && p.attempts + 1 == self.attempt);
        let Some(pending) = current else {
            return Err(Error::Conflict(format!(
                "attempt {} of the run of {}/{} due at {} was already ended",
                self.attempt, self.group, self.name, self.due.0
            )));
        };
        let mut updated = Schedule::clone(old);
        match &self.outcome {
            None => {
                updated.pending = Some(PendingRun {
                    attempts: self.attempt,
                    not_before: self.retry_at,
                    ..pending.clone()
                });
            }
            Some(outcome) => {
                updated.pending = None;
                record(
                    &mut updated.runs,
                    [ScheduleRun {
                        due: self.due,
                        at,
                        attempts: self.attempt,
                        tasks: self.tasks.clone(),
                        outcome: outcome.clone(),
                    }],
                );
                if self.delete {
                    state
                        .schedules
                        .remove(&(self.group.clone(), self.name.clone()));
                    return Ok(Arc::new(updated));
                }
            }
        }
        Ok(state.put_schedule(updated))
    }
}
