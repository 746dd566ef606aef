//! What a master reports about tasks and operations: states, reasons, and `TaskStatus`,
//! the payload of UPDATE events.

use super::*;

proto_enum! {
    /// `TaskState`.
    pub enum TaskState {
        /// Accepted by the master, not yet started. Frameworks never send it.
        Staging = "TASK_STAGING",
        Starting = "TASK_STARTING",
        Running = "TASK_RUNNING",
        /// Being killed; only for frameworks with TASK_KILLING_STATE.
        Killing = "TASK_KILLING",
        Finished = "TASK_FINISHED",
        Failed = "TASK_FAILED",
        Killed = "TASK_KILLED",
        /// The task description was invalid.
        Error = "TASK_ERROR",
        Lost = "TASK_LOST",
        /// Failed to launch for a transient reason (PARTITION_AWARE only).
        Dropped = "TASK_DROPPED",
        /// On an agent the master lost contact with (PARTITION_AWARE only).
        Unreachable = "TASK_UNREACHABLE",
        /// Gone with its agent (PARTITION_AWARE only).
        Gone = "TASK_GONE",
        GoneByOperator = "TASK_GONE_BY_OPERATOR",
        /// The master does not know the task (PARTITION_AWARE only).
        Unknown = "TASK_UNKNOWN",
    }
}

impl TaskState {
    /// Whether the task is over and its resources free, as Mesos decides it. TASK_LOST counts
    /// although a partitioned task can come back from it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
        )
    }

    /// The state to report to a framework: one without PARTITION_AWARE gets TASK_LOST for the
    /// states it does not know (DROPPED, UNREACHABLE, GONE, GONE_BY_OPERATOR, UNKNOWN), as a
    /// master does.
    pub fn for_framework(self, partition_aware: bool) -> TaskState {
        match self {
            TaskState::Dropped
            | TaskState::Unreachable
            | TaskState::Gone
            | TaskState::GoneByOperator
            | TaskState::Unknown
                if !partition_aware =>
            {
                TaskState::Lost
            }
            other => other,
        }
    }
}

proto_enum! {
    /// `TaskStatus.Source`: who produced a status.
    pub enum StatusSource {
        Master = "SOURCE_MASTER",
        Agent = "SOURCE_AGENT",
        Executor = "SOURCE_EXECUTOR",
    }
}

proto_enum! {
    /// `TaskStatus.Reason` (see Mesos's docs/task-state-reasons.md). A name this build does
    /// not know reads as "no reason" where a status is parsed.
    pub enum Reason {
        CommandExecutorFailed = "REASON_COMMAND_EXECUTOR_FAILED",
        ContainerLaunchFailed = "REASON_CONTAINER_LAUNCH_FAILED",
        ContainerLimitation = "REASON_CONTAINER_LIMITATION",
        ContainerLimitationDisk = "REASON_CONTAINER_LIMITATION_DISK",
        ContainerLimitationMemory = "REASON_CONTAINER_LIMITATION_MEMORY",
        ContainerPreempted = "REASON_CONTAINER_PREEMPTED",
        ContainerUpdateFailed = "REASON_CONTAINER_UPDATE_FAILED",
        MaxCompletionTimeReached = "REASON_MAX_COMPLETION_TIME_REACHED",
        ExecutorRegistrationTimeout = "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        ExecutorReregistrationTimeout = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
        ExecutorTerminated = "REASON_EXECUTOR_TERMINATED",
        ExecutorUnregistered = "REASON_EXECUTOR_UNREGISTERED",
        FrameworkRemoved = "REASON_FRAMEWORK_REMOVED",
        GcError = "REASON_GC_ERROR",
        InvalidFrameworkId = "REASON_INVALID_FRAMEWORKID",
        InvalidOffers = "REASON_INVALID_OFFERS",
        IoSwitchboardExited = "REASON_IO_SWITCHBOARD_EXITED",
        MasterDisconnected = "REASON_MASTER_DISCONNECTED",
        Reconciliation = "REASON_RECONCILIATION",
        ResourcesUnknown = "REASON_RESOURCES_UNKNOWN",
        AgentDisconnected = "REASON_AGENT_DISCONNECTED",
        AgentDraining = "REASON_AGENT_DRAINING",
        AgentRemoved = "REASON_AGENT_REMOVED",
        AgentRemovedByOperator = "REASON_AGENT_REMOVED_BY_OPERATOR",
        AgentReregistered = "REASON_AGENT_REREGISTERED",
        AgentRestarted = "REASON_AGENT_RESTARTED",
        AgentUnknown = "REASON_AGENT_UNKNOWN",
        TaskKilledDuringLaunch = "REASON_TASK_KILLED_DURING_LAUNCH",
        TaskCheckStatusUpdated = "REASON_TASK_CHECK_STATUS_UPDATED",
        TaskHealthCheckStatusUpdated = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        TaskGroupInvalid = "REASON_TASK_GROUP_INVALID",
        TaskGroupUnauthorized = "REASON_TASK_GROUP_UNAUTHORIZED",
        TaskInvalid = "REASON_TASK_INVALID",
        TaskUnauthorized = "REASON_TASK_UNAUTHORIZED",
        TaskUnknown = "REASON_TASK_UNKNOWN",
    }
}

/// `TaskStatus`: the state of one task, sent in UPDATE events.
///
/// A status with `uuid` is delivered reliably: resent until the framework ACKNOWLEDGEs that
/// uuid, and it must then carry `agent_id` (pymesos reads both to acknowledge; see
/// `crate::scheduler::Event::update`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: TaskId,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub source: Option<StatusSource>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<ExecutorId>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// 16 bytes (an RFC 4122 UUID) when the status must be acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_time: Option<TimeInfo>,
}

impl TaskStatus {
    /// A status with only the required fields set.
    pub fn new(task_id: TaskId, state: TaskState) -> Self {
        Self {
            task_id,
            state,
            message: None,
            source: None,
            reason: None,
            data: None,
            agent_id: None,
            executor_id: None,
            timestamp: None,
            uuid: None,
            healthy: None,
            labels: None,
            container_status: None,
            unreachable_time: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operation status (only so UPDATE_OPERATION_STATUS can be represented; berth sends none)

/// `UUID`: 16 bytes wrapped in a message, as operation statuses carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Uuid {
    pub value: Base64Bytes,
}

proto_enum! {
    /// `OperationState`.
    pub enum OperationState {
        Unsupported = "OPERATION_UNSUPPORTED",
        Pending = "OPERATION_PENDING",
        Finished = "OPERATION_FINISHED",
        Failed = "OPERATION_FAILED",
        Error = "OPERATION_ERROR",
        Dropped = "OPERATION_DROPPED",
        Unreachable = "OPERATION_UNREACHABLE",
        GoneByOperator = "OPERATION_GONE_BY_OPERATOR",
        Recovering = "OPERATION_RECOVERING",
        Unknown = "OPERATION_UNKNOWN",
    }
}

/// `OperationStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<OperationId>,
    pub state: OperationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub converted_resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_provider_id: Option<ResourceProviderId>,
}
