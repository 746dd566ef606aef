//! Preemption: a higher-priority task takes the room of lower-priority ones, in one command.
//!
//! ```text
//!  scheduler (queue controller, service reconciler), on a snapshot:
//!     the task does not fit anywhere ─► berth_scheduler::preempt::choose ─► PreemptAndPlace
//!  state machine, at commit, all or nothing:
//!     every victim still live on that instance, wanted RUNNING, lower priority, unprotected
//!     ─► victims STOPPED (stop code SpotInterruption, reason naming the preemptor), their
//!        services post an event ─► the preemptor placed through the ordinary commit check
//!     anything else ─► Conflict, nothing changes; the scheduler decides again
//! ```
//! The wording lives here because both the state machine (which records it) and the
//! scheduler (which shows it in a dry-run) use it.
//!
//! The stop code is ECS's `SpotInterruption`: of ECS's closed set of stop codes it is the one
//! that means "the capacity this task ran on was taken back for something else", which is
//! what preemption is. `ServiceSchedulerInitiated` would blame the victim's own service (and a
//! standalone victim has none), `TaskFailedToStart` and `EssentialContainerExited` would make
//! its service's circuit breaker count a failure the task never had, and `TerminationNotice`
//! is Fargate's maintenance. The stopped reason says what really happened.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::entity::{Name, Task};
use crate::id::TaskId;
use crate::priority::Priority;

/// The stop code of a task stopped to make room for a higher-priority one.
pub const STOP_CODE: &str = "SpotInterruption";

/// One task placed on an instance by stopping lower-priority tasks there, in one transaction.
/// `task` is either new (a service's placement) or a task waiting in the queue, now formed on
/// its instance. Apply refuses the whole command with a conflict unless every victim is still
/// live on `task`'s instance, wanted RUNNING, of lower priority than `task` and not protected
/// at the command's stamp, and `task` fits there once they are gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreemptAndPlace {
    pub cluster: Name,
    /// Boxed: a whole task is large, and every other command pays for the largest.
    pub task: Box<Task>,
    /// `task`'s constraints include distinctInstance (re-checked at commit).
    pub distinct_instance: bool,
    pub victims: Vec<TaskId>,
}

/// What a preemption committed: the preemptor as placed and the tasks it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preempted {
    pub task: Arc<Task>,
    pub evicted: Vec<Arc<Task>>,
}

/// The stopped reason of `victim`, preempted by `by` (at most 255 characters, ECS's limit).
pub fn stopped_reason(by: TaskId, by_priority: Priority, victim_priority: Priority) -> String {
    format!(
        "Preempted by (task {by}) of priority {by_priority}: this task's priority {victim_priority} is lower and its container instance had no room for both"
    )
}

/// The event a victim's service posts, in ECS's "has stopped" wording with the cause after it.
pub fn service_event(
    service: &str,
    victim: TaskId,
    by: TaskId,
    by_priority: Priority,
    victim_priority: Priority,
) -> String {
    format!(
        "(service {service}) has stopped 1 running tasks: (task {victim}). Reason: preempted by (task {by}) of priority {by_priority}, above the task's {victim_priority}; the service will place a replacement where there is room."
    )
}
