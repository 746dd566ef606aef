//! Task commands: placement plans (re-checked at commit), stops, and agents' reports.

use std::sync::Arc;

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::command::FailureReason;
use crate::entity::{HealthStatus, Name, Task, TaskStatus};
use crate::id::{InstanceId, TaskId};
use crate::time::Millis;

/// A placement plan: each task, fully formed, on the instance its scheduler chose. Apply
/// re-checks every task against the newest state and commits those that still fit; the
/// others come back as [`Rejection`]s for the scheduler to retry on a fresher snapshot.
/// A task with no instance that [is queued](Task::is_queued) joins its cluster's queue
/// instead: it holds nothing, so only its cluster, id and task definition are checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceTasks {
    pub cluster: Name,
    pub tasks: Vec<Task>,
    pub client_token: Option<ClientToken>,
    /// The tasks carry a `distinctInstance` constraint: none may share an instance with a
    /// live task of its group, which is re-checked here as resources are.
    #[serde(default)]
    pub distinct_instance: bool,
}

/// RunTask's idempotency token and a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientToken {
    pub token: String,
    pub request_digest: u64,
    /// A retry of rejected placements from the same call: its tasks join the token's record
    /// instead of being answered by it.
    pub continuation: bool,
}

/// What a placement plan (or an accepted Mesos offer) committed, and what it did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placed {
    pub tasks: Vec<Arc<Task>>,
    pub rejected: Vec<Rejection>,
}

/// A placement the commit check refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub task: TaskId,
    pub instance: Option<InstanceId>,
    pub reason: FailureReason,
    pub detail: String,
}

/// Asks a task to stop: desired STOPPED, and its agent stops it. A task whose instance is
/// gone has no agent left to report: it is STOPPED at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopTask {
    pub cluster: Name,
    pub id: TaskId,
    pub reason: Option<String>,
    pub stop_code: Option<String>,
}

/// Sets or clears the scale-in protection of service tasks: `until` is when it lapses (the
/// proposer's clock plus `expiresInMinutes`), `None` clears it. A task that does not exist in
/// the cluster fails MISSING; one that is not a live service task fails TASK_NOT_VALID, as ECS
/// answers for standalone tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateTaskProtection {
    pub cluster: Name,
    pub tasks: Vec<TaskId>,
    pub until: Option<Millis>,
}

/// The `failures[].reason` of a task that task protection does not apply to (ECS's spelling;
/// not a placement reason, so not a [`FailureReason`]).
pub const TASK_NOT_VALID: &str = "TASK_NOT_VALID";

/// A task's and its containers' progress as reported by the agent that runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStateChange {
    pub cluster: Name,
    pub id: TaskId,
    pub status: Option<TaskStatus>,
    pub reason: Option<String>,
    pub containers: Vec<ContainerChange>,
    pub pull_started_at: Option<Millis>,
    pub pull_stopped_at: Option<Millis>,
    pub execution_stopped_at: Option<Millis>,
}

/// An agent's report about one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerChange {
    pub name: String,
    pub status: Option<TaskStatus>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub runtime_id: Option<String>,
    pub image_digest: Option<String>,
    pub network_bindings: Option<Vec<api::NetworkBinding>>,
    pub health_status: Option<HealthStatus>,
}
