//! Tasks: placement commits (the plan applier's re-check), stops and agent state reports.
//!
//! ```text
//!  PlaceTasks ─► PENDING ──agent──► RUNNING ──agent──► STOPPED ─(Expire)─► forgotten
//!                   │                   │
//!                   └──── StopTask: desiredStatus = STOPPED, the agent stops it ───┘
//! ```
//! A task holds its reservation (CPU, memory, static ports) on its instance until its last
//! status is STOPPED. A queued task (PROVISIONING, no instance; see `queue.rs`) holds nothing:
//! StopTask stops it at once, as it does any task whose instance is gone.

use std::sync::Arc;

use berth_model::arn::ResourceArn;
use berth_model::capacity::PROVIDER_ATTRIBUTE;
use berth_model::command::{
    Failure, FailureReason, Partial, PlaceTasks, Placed, Rejection, StopTask, TASK_NOT_VALID,
    TaskStateChange, UpdateTaskProtection,
};
use berth_model::entity::*;
use berth_model::service::service_of_group;
use berth_model::{Error, Millis, TaskId};

use super::Apply;
use crate::fit::fits;
use crate::{Entity, EntityKey, State, TokenRecord};

fn not_found() -> Error {
    Error::invalid("The referenced task was not found.")
}

/// HEALTHY when every essential container is healthy, UNHEALTHY when any essential container
/// is unhealthy, UNKNOWN otherwise.
fn task_health(containers: &[Container]) -> HealthStatus {
    let essential = containers.iter().filter(|c| c.essential);
    let mut all_healthy = true;
    let mut any = false;
    for c in essential {
        any = true;
        match c.health_status {
            HealthStatus::Unhealthy => return HealthStatus::Unhealthy,
            HealthStatus::Healthy => {}
            HealthStatus::Unknown => all_healthy = false,
        }
    }
    if any && all_healthy {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unknown
    }
}

impl State {
    /// Stores `new` (replacing `old`), stamps its version and records it in its history.
    pub(crate) fn put_task(&mut self, at: Millis, old: Option<&Arc<Task>>, new: Task) -> Arc<Task> {
        let new = Arc::new(Task {
            version: self.index,
            ..new
        });
        self.task_changed(old, Some(&new));
        self.record(EntityKey::Task(new.id), at, Some(Entity::Task(new.clone())));
        new
    }

    pub(crate) fn task_in(&self, cluster: &str, id: TaskId) -> Option<&Arc<Task>> {
        self.tasks.get(&id).filter(|t| &*t.cluster == cluster)
    }

    /// The commit-time check of one planned task against the newest state.
    fn check_placement(
        &self,
        cluster: &Name,
        task: &Task,
        distinct_instance: bool,
    ) -> Result<(), (FailureReason, String)> {
        if task.cluster != *cluster || self.tasks.contains_key(&task.id) {
            return Err((
                FailureReason::Missing,
                format!(
                    "task {} is already known or belongs to another cluster",
                    task.id
                ),
            ));
        }
        self.check_fit(cluster, task, distinct_instance)
    }

    /// Whether `task` may start where it is planned: its task definition still exists and,
    /// unless it joins the queue, its instance is in the cluster (and its capacity provider)
    /// and has room for it — the one check every placement of any scheduler passes.
    pub(crate) fn check_fit(
        &self,
        cluster: &Name,
        task: &Task,
        distinct_instance: bool,
    ) -> Result<(), (FailureReason, String)> {
        match self
            .task_definitions
            .get(&(task.family.clone(), task.revision))
        {
            Some(d) if d.status != TaskDefinitionStatus::DeleteInProgress => {}
            _ => {
                return Err((
                    FailureReason::Missing,
                    format!(
                        "task definition {}:{} no longer exists",
                        task.family, task.revision
                    ),
                ));
            }
        }
        if task.instance.is_none() && task.is_queued() {
            // Joins the queue: it holds nothing anywhere until the queue controller places it.
            return Ok(());
        }
        let instance = task
            .instance
            .and_then(|i| self.instances.get(&i))
            .filter(|i| i.cluster == *cluster)
            .ok_or_else(|| {
                (
                    FailureReason::Missing,
                    "the chosen container instance is not registered in this cluster".to_owned(),
                )
            })?;
        if let Some(provider) = &task.capacity_provider
            && instance.attribute(PROVIDER_ATTRIBUTE) != Some(&**provider)
        {
            return Err((
                FailureReason::Attribute,
                format!(
                    "container instance {} no longer belongs to capacity provider {provider}",
                    instance.id
                ),
            ));
        }
        fits(
            instance,
            self.usage.get(&instance.id).map(|u| &**u),
            &task.reservation,
        )
        .map_err(|m| (m.reason, m.detail))?;
        if distinct_instance && self.live_in_group_on(cluster, &task.group, instance.id) > 0 {
            return Err((
                FailureReason::Attribute,
                format!(
                    "distinctInstance: container instance {} already runs a task of group {}",
                    instance.id, task.group
                ),
            ));
        }
        Ok(())
    }
}

impl Apply for PlaceTasks {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Placed, Error> {
        let PlaceTasks {
            cluster,
            tasks,
            client_token,
            distinct_instance,
        } = self;
        state.active_cluster(cluster)?;
        let token = client_token.as_ref();
        let token_key = token.map(|t| (cluster.clone(), t.token.clone()));
        if let (Some(token), Some(key)) = (token, &token_key)
            && let Some(record) = state.client_tokens.get(key)
        {
            if record.request_digest != token.request_digest {
                return Err(Error::Conflict(
                    "The clientToken was already used with different parameters. Use a new clientToken for a different request.".into(),
                ));
            }
            if !token.continuation {
                let tasks = record
                    .tasks
                    .iter()
                    .filter_map(|id| state.tasks.get(id).cloned())
                    .collect();
                return Ok(Placed {
                    tasks,
                    rejected: Vec::new(),
                });
            }
        }

        let mut placed = Vec::with_capacity(tasks.len());
        let mut rejected = Vec::new();
        for task in tasks {
            match state.check_placement(cluster, task, *distinct_instance) {
                Ok(()) => placed.push(state.put_task(at, None, task.clone())),
                Err((reason, detail)) => rejected.push(Rejection {
                    task: task.id,
                    instance: task.instance,
                    reason,
                    detail,
                }),
            }
        }

        if let (Some(token), Some(key)) = (token, token_key)
            && !placed.is_empty()
        {
            let mut ids: Vec<TaskId> = state
                .client_tokens
                .get(&key)
                .map(|r| r.tasks.clone())
                .unwrap_or_default();
            ids.extend(placed.iter().map(|t| t.id));
            state.client_tokens.insert(
                key,
                Arc::new(TokenRecord {
                    request_digest: token.request_digest,
                    tasks: ids,
                    at,
                }),
            );
        }
        Ok(Placed {
            tasks: placed,
            rejected,
        })
    }
}

impl Apply for StopTask {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Task>, Error> {
        let StopTask {
            cluster,
            id,
            reason,
            stop_code,
        } = self;
        state.active_cluster(cluster)?;
        let old = state.task_in(cluster, *id).cloned().ok_or_else(not_found)?;
        if old.desired_status == DesiredStatus::Stopped {
            return Ok(old);
        }
        let mut new = Task {
            desired_status: DesiredStatus::Stopped,
            stopping_at: old.stopping_at.or(Some(at)),
            stop_code: old
                .stop_code
                .clone()
                .or_else(|| stop_code.clone())
                .or_else(|| Some("UserInitiated".into())),
            stopped_reason: old
                .stopped_reason
                .clone()
                .or_else(|| reason.clone())
                .or_else(|| Some("Task stopped by user".into())),
            ..(*old).clone()
        };
        // Nobody is left to report the stop when the instance is gone: it is STOPPED now.
        let orphaned = new
            .instance
            .and_then(|i| state.instances.get(&i))
            .is_none_or(|i| i.status == InstanceStatus::Inactive);
        if orphaned {
            new.last_status = TaskStatus::Stopped;
            new.stopped_at = Some(at);
            new.execution_stopped_at = Some(at);
            for c in &mut new.containers {
                c.last_status = TaskStatus::Stopped;
            }
        }
        Ok(state.put_task(at, Some(&old), new))
    }
}

impl Apply for TaskStateChange {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Arc<Task>, Error> {
        let TaskStateChange {
            cluster,
            id,
            status,
            reason,
            containers,
            pull_started_at,
            pull_stopped_at,
            execution_stopped_at,
        } = self;
        state.active_cluster(cluster)?;
        let old = state.task_in(cluster, *id).cloned().ok_or_else(not_found)?;
        if old.instance.is_none() {
            return Err(Error::invalid(format!(
                "Task {id} is waiting for capacity and runs on no container instance: there is nothing to report for it"
            )));
        }
        let mut new = (*old).clone();
        for change in containers {
            let c = new
                .containers
                .iter_mut()
                .find(|c| c.name == change.name)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Task {id} has no container named '{}'",
                        change.name
                    ))
                })?;
            if let Some(s) = change.status.filter(|s| *s > c.last_status) {
                c.last_status = s;
            }
            if change.exit_code.is_some() {
                c.exit_code = change.exit_code;
            }
            if change.reason.is_some() {
                c.reason = change.reason.clone();
            }
            if change.runtime_id.is_some() {
                c.runtime_id = change.runtime_id.clone();
            }
            if change.image_digest.is_some() {
                c.image_digest = change.image_digest.clone();
            }
            if let Some(b) = &change.network_bindings {
                c.network_bindings = b.clone();
            }
            if let Some(h) = change.health_status {
                c.health_status = h;
            }
        }
        new.health_status = task_health(&new.containers);
        new.pull_started_at = new.pull_started_at.or(*pull_started_at);
        new.pull_stopped_at = new.pull_stopped_at.or(*pull_stopped_at);

        if let Some(status) = status.filter(|s| *s > old.last_status) {
            new.last_status = status;
            if status >= TaskStatus::Running && status != TaskStatus::Stopped {
                new.started_at = new.started_at.or(Some(at));
            }
            if status >= TaskStatus::Deactivating {
                new.stopping_at = new.stopping_at.or(Some(at));
            }
            if status == TaskStatus::Stopped {
                new.stopped_at = Some(at);
                new.execution_stopped_at = execution_stopped_at.or(Some(at));
                if new.desired_status != DesiredStatus::Stopped {
                    // It stopped on its own: say why, as ECS does.
                    new.desired_status = DesiredStatus::Stopped;
                    // It never ran: it failed to start (an image that cannot be pulled,
                    // a container that cannot be created), whatever its containers did.
                    let (code, default_reason) = if old.started_at.is_none() {
                        ("TaskFailedToStart", "Task failed to start")
                    } else {
                        (
                            "EssentialContainerExited",
                            "Essential container in task exited",
                        )
                    };
                    new.stop_code = Some(code.into());
                    new.stopped_reason = reason.clone().or_else(|| Some(default_reason.into()));
                }
                for c in &mut new.containers {
                    c.last_status = TaskStatus::Stopped;
                }
            }
        }
        if new == *old {
            return Ok(old);
        }
        Ok(state.put_task(at, Some(&old), new))
    }
}

impl Apply for UpdateTaskProtection {
    fn apply(&self, state: &mut State, at: Millis) -> Result<Partial<Task>, Error> {
        let UpdateTaskProtection {
            cluster,
            tasks,
            until,
        } = self;
        state.active_cluster(cluster)?;
        let mut done = Vec::new();
        let mut failures = Vec::new();
        let mut seen = Vec::new();
        for &id in tasks {
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let resource = Some(ResourceArn::Task(cluster.to_string(), id));
            let Some(old) = state.task_in(cluster, id).cloned() else {
                failures.push(Failure {
                    resource,
                    reason: FailureReason::Missing.as_str().into(),
                    detail: None,
                });
                continue;
            };
            let why_not = if service_of_group(&old.group).is_none() {
                Some("The task is not part of a service: only service tasks can be protected.")
            } else if !old.is_live() || old.desired_status == DesiredStatus::Stopped {
                Some("The task is stopped or stopping.")
            } else {
                None
            };
            if let Some(detail) = why_not {
                failures.push(Failure {
                    resource,
                    reason: TASK_NOT_VALID.into(),
                    detail: Some(detail.into()),
                });
                continue;
            }
            if old.protected_until == *until {
                done.push(old);
                continue;
            }
            let new = Task {
                protected_until: *until,
                ..(*old).clone()
            };
            done.push(state.put_task(at, Some(&old), new));
        }
        Ok(Partial { done, failures })
    }
}
