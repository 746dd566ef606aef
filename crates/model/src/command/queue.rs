//! Queue commands: placing tasks that waited for capacity, and ending the waits that ran out.
//! Tasks join the queue through `PlaceTasks` (a task with no instance, PROVISIONING, carrying
//! its [`QueuedPlacement`](crate::queue::QueuedPlacement)), so that a RunTask's placed and
//! queued tasks share its client token; StopTask takes one out at once.

use serde::{Deserialize, Serialize};

use crate::entity::{Name, Task};
use crate::id::TaskId;

/// The queue controller's plan: queued tasks, each now fully formed on the instance it chose.
/// Apply re-checks every one exactly as `PlaceTasks` does (resources, ports, provider,
/// distinctInstance) and also that it is still waiting; what no longer fits or waits comes
/// back rejected, to be planned again on a fresher snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceQueuedTasks {
    pub cluster: Name,
    pub placements: Vec<QueuedTaskPlacement>,
}

/// One queued task placed: its new value and whether its constraints include
/// distinctInstance (re-checked at commit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedTaskPlacement {
    pub task: Task,
    pub distinct_instance: bool,
}

/// Ends the wait of queued tasks whose time ran out: each still waiting, and whose
/// `until` is not after the command's stamp, is STOPPED with stop code `TaskFailedToStart`
/// and the reason given (decided by the proposer, who knows the closest instance's reason).
/// Others are reported as failures and left alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpireQueuedTasks {
    pub cluster: Name,
    pub tasks: Vec<QueueExpiry>,
}

/// One wait that ran out, and the stopped reason to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueExpiry {
    pub id: TaskId,
    pub reason: String,
}
