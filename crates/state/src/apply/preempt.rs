//! Preemption's commit: stop lower-priority tasks and place the task that needs their room,
//! in one transaction that re-checks everything the scheduler saw on its snapshot.
//!
//! ```text
//!  PreemptAndPlace { task on instance I, victims }
//!     each victim: in the cluster, live on I, wanted RUNNING, priority < task's,
//!                  not protected at the command's stamp ──── else Conflict, nothing changes
//!     victims ─► STOPPED now (SpotInterruption, "Preempted by (task …)"), each service
//!                that owned one posts an event
//!     task (new, or still waiting in the queue) ─► the ordinary commit check on what is
//!                left ─► placed ──────────────────────────── else Conflict, nothing changes
//! ```
//! A victim is STOPPED at once rather than told to stop: the room it held is what the
//! preemptor is placed in, and an instance's usage counts live tasks, so the victim must stop
//! holding it in the same entry or the instance would be over-committed on paper. Its agent
//! no longer finds it among its assignments and stops its containers, as it does for any task
//! that is no longer assigned; the preemptor may start on the host while the victim's
//! containers are still stopping (as an ECS agent without task resource accounting does).
//!
//! Everything is checked and applied on a copy of the state (persistent maps, so the copy is
//! cheap), which replaces the state only when every check passed: the command is all or
//! nothing, and a refusal is a `Conflict` the scheduler answers by deciding again.

use std::sync::Arc;

use berth_model::command::preempt::{self, PreemptAndPlace, Preempted};
use berth_model::entity::*;
use berth_model::priority::Priority;
use berth_model::service::service_of_group;
use berth_model::{Error, Millis, TaskId};

use super::Apply;
use crate::State;

/// A service event's id for a victim: a UUID's shape, derived from the log index and the
/// task so that every node records the same one.
fn event_id(index: u64, victim: TaskId) -> String {
    let h = format!("{:016x}{:016x}", index, victim.0 as u64);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl State {
    /// Stops `victim` at once for `by`, and posts the event on its service if it has one.
    fn evict(
        &mut self,
        at: Millis,
        victim: &Arc<Task>,
        by: TaskId,
        priority: Priority,
    ) -> Arc<Task> {
        let mut new = Task {
            last_status: TaskStatus::Stopped,
            desired_status: DesiredStatus::Stopped,
            stopping_at: victim.stopping_at.or(Some(at)),
            stopped_at: Some(at),
            execution_stopped_at: Some(at),
            stop_code: Some(preempt::STOP_CODE.into()),
            stopped_reason: Some(
                preempt::stopped_reason(by, priority, victim.priority())
                    .chars()
                    .take(255)
                    .collect(),
            ),
            ..(**victim).clone()
        };
        for c in &mut new.containers {
            c.last_status = TaskStatus::Stopped;
        }
        let evicted = self.put_task(at, Some(victim), new);
        let owner = service_of_group(&victim.group)
            .and_then(|name| self.service(&victim.cluster, name))
            .cloned();
        if let Some(service) = owner {
            let mut service = (*service).clone();
            let message =
                preempt::service_event(&service.name, victim.id, by, priority, victim.priority());
            service.post(event_id(self.index, victim.id), at, message);
            service.steady = false;
            self.store_service(at, &service);
        }
        evicted
    }
}

impl Apply for PreemptAndPlace {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Preempted, Error> {
        let PreemptAndPlace {
            cluster,
            task,
            distinct_instance,
            victims,
        } = self;
        state.active_cluster(cluster)?;
        let conflict = |why: String| {
            Error::Conflict(format!(
                "The preemption for task {} no longer holds: {why}. It will be decided again.",
                task.id
            ))
        };
        if victims.is_empty() {
            return Err(Error::invalid("A preemption must name the tasks it stops."));
        }
        let instance = task
            .instance
            .ok_or_else(|| conflict("it names no container instance".into()))?;
        let priority = task.priority();
        let old = match state.tasks.get(&task.id) {
            None => None,
            Some(o)
                if o.cluster == *cluster
                    && o.is_queued()
                    && (&o.family, o.revision) == (&task.family, task.revision) =>
            {
                Some(o.clone())
            }
            Some(_) => {
                return Err(conflict(format!(
                    "task {} is already placed, stopped or another task",
                    task.id
                )));
            }
        };
        let mut scratch = state.clone();
        let mut evicted = Vec::with_capacity(victims.len());
        for id in victims {
            let victim = scratch
                .task_in(cluster, *id)
                .cloned()
                .ok_or_else(|| conflict(format!("task {id} is gone")))?;
            let why_not = if !victim.is_live() || victim.desired_status != DesiredStatus::Running {
                Some("is stopping or stopped".to_owned())
            } else if victim.instance != Some(instance) {
                Some(format!("is not on container instance {instance}"))
            } else if victim.priority() >= priority {
                Some(format!(
                    "has priority {}, not below {priority}",
                    victim.priority()
                ))
            } else if victim.protected_at(at) {
                Some("is protected".to_owned())
            } else {
                None
            };
            if let Some(why) = why_not {
                return Err(conflict(format!("task {id} {why}")));
            }
            evicted.push(scratch.evict(at, &victim, task.id, priority));
        }
        scratch
            .check_fit(cluster, task, *distinct_instance)
            .map_err(|(reason, detail)| conflict(format!("{reason}: {detail}")))?;
        let placed = scratch.put_task(at, old.as_ref(), (**task).clone());
        *state = scratch;
        Ok(Preempted {
            task: placed,
            evicted,
        })
    }
}
