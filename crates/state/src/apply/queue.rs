//! The queue: placing tasks that waited for capacity, and ending waits that ran out.
//!
//! ```text
//!  PlaceTasks (no instance, queued) ─► PROVISIONING ─┬─ PlaceQueuedTasks (fits) ─► PENDING …
//!                                                    ├─ ExpireQueuedTasks (until ≤ at) ─► STOPPED
//!                                                    └─ StopTask ─► STOPPED
//! ```
//! A queued task holds no resources, so it leaves the queue without releasing any. Its
//! placement passes the same commit check as every other (`check_fit`), and only a task
//! still waiting can be placed or expired: whichever of a placement, an expiry and a stop
//! comes first in the log wins, and the others find it gone from the queue.

use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::command::{
    ExpireQueuedTasks, Failure, FailureReason, Partial, PlaceQueuedTasks, Placed,
    QueuedTaskPlacement, Rejection,
};
use berth_model::entity::*;
use berth_model::queue::STOP_CODE;
use berth_model::{Error, Millis};

use super::Apply;
use crate::State;

impl State {
    /// The task `planned` stands for, if it is still waiting in `cluster`'s queue and
    /// `planned` may replace it: same task definition, now on an instance with room.
    fn check_queued(
        &self,
        cluster: &Name,
        planned: &Task,
        distinct_instance: bool,
    ) -> Result<Arc<Task>, (FailureReason, String)> {
        let missing = |why: &str| (FailureReason::Missing, format!("task {} {why}", planned.id));
        let old = self
            .task_in(cluster, planned.id)
            .filter(|o| o.is_queued())
            .ok_or_else(|| missing("is no longer waiting for capacity"))?;
        if (&old.family, old.revision) != (&planned.family, planned.revision) {
            return Err(missing("was planned from another task definition"));
        }
        if planned.instance.is_none() {
            return Err(missing("was planned on no container instance"));
        }
        self.check_fit(cluster, planned, distinct_instance)?;
        Ok(old.clone())
    }
}

impl Apply for PlaceQueuedTasks {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Placed, Error> {
        let PlaceQueuedTasks {
            cluster,
            placements,
        } = self;
        state.active_cluster(cluster)?;
        let mut placed = Vec::with_capacity(placements.len());
        let mut rejected = Vec::new();
        for QueuedTaskPlacement {
            task,
            distinct_instance,
        } in placements
        {
            match state.check_queued(cluster, task, *distinct_instance) {
                Ok(old) => placed.push(state.put_task(at, Some(&old), task.clone())),
                Err((reason, detail)) => rejected.push(Rejection {
                    task: task.id,
                    instance: task.instance,
                    reason,
                    detail,
                }),
            }
        }
        Ok(Placed {
            tasks: placed,
            rejected,
        })
    }
}

impl Apply for ExpireQueuedTasks {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Partial<Task>, Error> {
        let ExpireQueuedTasks { cluster, tasks } = self;
        state.active_cluster(cluster)?;
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for expiry in tasks {
            let due = state
                .task_in(cluster, expiry.id)
                .filter(|t| t.is_queued())
                .filter(|t| t.queued.as_ref().is_some_and(|q| q.until <= at))
                .cloned();
            let Some(old) = due else {
                failures.push(Failure {
                    resource: Some(ResourceArn::Task(cluster.to_string(), expiry.id)),
                    reason: FailureReason::Missing.as_str().into(),
                    detail: Some("The task is not waiting for capacity past its timeout.".into()),
                });
                continue;
            };
            let mut new = Task {
                last_status: TaskStatus::Stopped,
                desired_status: DesiredStatus::Stopped,
                stopping_at: Some(at),
                stopped_at: Some(at),
                execution_stopped_at: Some(at),
                stop_code: Some(STOP_CODE.into()),
                stopped_reason: Some(expiry.reason.chars().take(255).collect()),
                ..(*old).clone()
            };
            for c in &mut new.containers {
                c.last_status = TaskStatus::Stopped;
            }
            done.push(state.put_task(at, Some(&old), new));
        }
        Ok(Partial { done, failures })
    }
}
