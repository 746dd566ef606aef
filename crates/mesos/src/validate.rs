//! What a master checks before acting on a call, as pure functions.
//!
//! Three layers, each with its own error type and the answer it leads to:
//!
//! ```text
//!  body ──Call::from_json──► Call ──validate_call──► well-formed call      (else HTTP 400/501)
//!  ACCEPT: offer_ids ──pool_offers──► (agent, offered Resources)        (else TASK_DROPPED/LOST,
//!                                                                        REASON_INVALID_OFFERS)
//!          operations ──validate_operation──► LAUNCH / LAUNCH_GROUP
//!          tasks ──check_launch / check_launch_group──► per task: Resources taken
//!                                                      or TaskError   (TASK_ERROR,
//!                                                                      REASON_TASK_INVALID)
//!                                         ──► unused Resources (released)
//! ```
//!
//! The checks and their order follow Mesos's master (`src/master/validation.cpp`); messages
//! are berth's own and say what to change. What needs state (is the offer outstanding, is the
//! framework subscribed, is a task id already used) stays with the caller: the offers are
//! passed in, and known task ids come as a predicate.

use std::collections::HashSet;

use crate::resources::{ResourceError, Resources, Shortfall};
use crate::scheduler::{Call, CallType};
use crate::v1::{
    AgentId, ContainerInfo, ContainerType, DockerNetwork, ExecutorInfo, ExecutorType, FrameworkId,
    HealthCheck, HealthCheckType, Offer, OfferId, Operation, OperationType, TaskGroupInfo, TaskId,
    TaskInfo, VariableType,
};

// ---------------------------------------------------------------------------------------------
// Calls

/// A call that is not well-formed for its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The body has no `type`.
    #[error("the call has no `type`")]
    MissingType,
    /// `type` is UNKNOWN or a name this master does not know. A master answers 501.
    #[error("call type UNKNOWN (or one this master does not know) is not implemented")]
    UnknownType,
    /// The payload its type calls for is absent (`{"type":"ACCEPT"}` without `accept`).
    #[error("{call_type} call without `{field}`")]
    MissingPayload {
        call_type: CallType,
        field: &'static str,
    },
    /// Every call but SUBSCRIBE names its framework.
    #[error("{call_type} call without `framework_id`")]
    MissingFrameworkId { call_type: CallType },
    /// A (re-)subscribing framework must name itself the same way in both places.
    #[error(
        "`framework_id` ({}) differs from `{field}.framework_info.id` ({})",
        display_id(.framework_id),
        display_id(.info_id)
    )]
    FrameworkIdMismatch {
        field: &'static str,
        framework_id: Option<String>,
        info_id: Option<String>,
    },
    /// ACKNOWLEDGE must echo the 16-byte uuid of the status it acknowledges.
    #[error("acknowledge.uuid is {len} bytes; a status uuid is 16")]
    InvalidUuid { len: usize },
}

fn display_id(id: &Option<String>) -> String {
    id.as_deref()
        .map_or_else(|| "unset".to_owned(), |v| format!("`{v}`"))
}

impl CallError {
    /// The HTTP status a master answers with: 501 for an unknown call type, else 400.
    pub fn http_status(&self) -> u16 {
        match self {
            CallError::UnknownType => 501,
            _ => 400,
        }
    }
}

/// Checks that `call` is well-formed for its type and returns the type: SUBSCRIBE has
/// `subscribe` and, on re-subscription, the same id in `framework_id` and
/// `framework_info.id`; every other call has `framework_id` and the payload its type needs
/// (REVIVE, SUPPRESS and TEARDOWN need none); ACKNOWLEDGE's uuid is 16 bytes.
pub fn validate_call(call: &Call) -> Result<CallType, CallError> {
    let call_type = call.r#type.ok_or(CallError::MissingType)?;
    let need = |present: bool, field: &'static str| {
        if present {
            Ok(call_type)
        } else {
            Err(CallError::MissingPayload { call_type, field })
        }
    };
    let framework_id = call.framework_id.as_ref().map(|id| id.value.clone());
    let same_id = |field: &'static str, info_id: Option<&FrameworkId>| {
        let info_id = info_id.map(|id| id.value.clone());
        if info_id == framework_id {
            Ok(call_type)
        } else {
            Err(CallError::FrameworkIdMismatch {
                field,
                framework_id: framework_id.clone(),
                info_id,
            })
        }
    };

    match call_type {
        CallType::Unknown => return Err(CallError::UnknownType),
        CallType::Subscribe => {
            let subscribe = call.subscribe.as_ref().ok_or(CallError::MissingPayload {
                call_type,
                field: "subscribe",
            })?;
            return same_id("subscribe", subscribe.framework_info.id.as_ref());
        }
        _ => {}
    }

    if call.framework_id.is_none() {
        return Err(CallError::MissingFrameworkId { call_type });
    }

    match call_type {
        CallType::Unknown | CallType::Subscribe => unreachable!("handled above"),
        CallType::Teardown | CallType::Revive | CallType::Suppress => Ok(call_type),
        CallType::Accept => need(call.accept.is_some(), "accept"),
        CallType::Decline => need(call.decline.is_some(), "decline"),
        CallType::AcceptInverseOffers => need(
            call.accept_inverse_offers.is_some(),
            "accept_inverse_offers",
        ),
        CallType::DeclineInverseOffers => need(
            call.decline_inverse_offers.is_some(),
            "decline_inverse_offers",
        ),
        CallType::Kill => need(call.kill.is_some(), "kill"),
        CallType::Shutdown => need(call.shutdown.is_some(), "shutdown"),
        CallType::Acknowledge => {
            let ack = call.acknowledge.as_ref().ok_or(CallError::MissingPayload {
                call_type,
                field: "acknowledge",
            })?;
            match ack.uuid.len() {
                16 => Ok(call_type),
                len => Err(CallError::InvalidUuid { len }),
            }
        }
        CallType::AcknowledgeOperationStatus => need(
            call.acknowledge_operation_status.is_some(),
            "acknowledge_operation_status",
        ),
        CallType::Reconcile => need(call.reconcile.is_some(), "reconcile"),
        CallType::ReconcileOperations => {
            need(call.reconcile_operations.is_some(), "reconcile_operations")
        }
        CallType::Message => need(call.message.is_some(), "message"),
        CallType::Request => need(call.request.is_some(), "request"),
        CallType::UpdateFramework => {
            let update = call
                .update_framework
                .as_ref()
                .ok_or(CallError::MissingPayload {
                    call_type,
                    field: "update_framework",
                })?;
            same_id("update_framework", update.framework_info.id.as_ref())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ids

/// An id Mesos would refuse (task, executor, framework and agent ids share the rules: they
/// name directories on agents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id must not be empty")]
    Empty,
    #[error("id {id:?} contains a control character, `/` or `\\`")]
    InvalidCharacter { id: String },
}

/// Mesos's id rules: non-empty, no control characters, no `/` or `\`.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(IdError::InvalidCharacter { id: id.to_owned() });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Offers

/// Offers an ACCEPT cannot use together. Tasks launched on them are answered TASK_DROPPED
/// (TASK_LOST without PARTITION_AWARE) with REASON_INVALID_OFFERS.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OfferError {
    #[error("no offer_ids given")]
    NoOffers,
    #[error("offer {offer_id} is listed more than once")]
    DuplicateOffer { offer_id: String },
    /// Offers are pooled per agent; a launch cannot span agents.
    #[error(
        "offers must all be on one agent: offer {first_offer} is on agent {first_agent}, offer {offer_id} on agent {agent_id}"
    )]
    DifferentAgents {
        first_offer: String,
        first_agent: String,
        offer_id: String,
        agent_id: String,
    },
    #[error("offer {offer_id} was made to framework {owner}, not this one")]
    WrongFramework { offer_id: String, owner: String },
    #[error("offer {offer_id} has unusable resources: {source}")]
    InvalidResources {
        offer_id: String,
        #[source]
        source: ResourceError,
    },
}

/// Checks an ACCEPT's or DECLINE's `offer_ids` before looking them up: at least one, none
/// twice.
pub fn validate_offer_ids(offer_ids: &[OfferId]) -> Result<(), OfferError> {
    if offer_ids.is_empty() {
        return Err(OfferError::NoOffers);
    }
    let mut seen = HashSet::new();
    for id in offer_ids {
        if !seen.insert(id.as_str()) {
            return Err(OfferError::DuplicateOffer {
                offer_id: id.value.clone(),
            });
        }
    }
    Ok(())
}

/// Pools the (outstanding, looked-up) offers of one ACCEPT: all made to `framework_id`, all
/// on one agent, none twice. Returns that agent and the sum of what they offer.
pub fn pool_offers(
    framework_id: &FrameworkId,
    offers: &[&Offer],
) -> Result<(AgentId, Resources), OfferError> {
    let first = offers.first().ok_or(OfferError::NoOffers)?;
    let mut seen = HashSet::new();
    let mut total = Resources::default();
    for offer in offers {
        if !seen.insert(offer.id.as_str()) {
            return Err(OfferError::DuplicateOffer {
                offer_id: offer.id.value.clone(),
            });
        }
        if offer.framework_id != *framework_id {
            return Err(OfferError::WrongFramework {
                offer_id: offer.id.value.clone(),
                owner: offer.framework_id.value.clone(),
            });
        }
        if offer.agent_id != first.agent_id {
            return Err(OfferError::DifferentAgents {
                first_offer: first.id.value.clone(),
                first_agent: first.agent_id.value.clone(),
                offer_id: offer.id.value.clone(),
                agent_id: offer.agent_id.value.clone(),
            });
        }
        let offered =
            Resources::parse(&offer.resources).map_err(|source| OfferError::InvalidResources {
                offer_id: offer.id.value.clone(),
                source,
            })?;
        total = total.plus(&offered);
    }
    Ok((first.agent_id.clone(), total))
}

// ---------------------------------------------------------------------------------------------
// Operations

/// An ACCEPT operation berth will not carry out. Its tasks (if any) are answered TASK_ERROR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error("operation without `type`")]
    MissingType,
    #[error("operation of unknown type")]
    UnknownType,
    #[error("{op_type} operation without `{field}`")]
    MissingPayload {
        op_type: OperationType,
        field: &'static str,
    },
    /// Reservations and volumes: berth offers only unreserved resources and has no
    /// persistent volumes.
    #[error("{op_type} operations are not supported (berth supports LAUNCH and LAUNCH_GROUP)")]
    Unsupported { op_type: OperationType },
    /// An operation `id` asks for UPDATE_OPERATION_STATUS feedback, which berth does not
    /// send; a framework would wait for it forever.
    #[error("operation feedback (`id`) is not supported for {op_type} operations")]
    FeedbackUnsupported { op_type: OperationType },
}

/// A launch operation, checked for shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LaunchOperation<'a> {
    Launch(&'a [TaskInfo]),
    LaunchGroup {
        executor: &'a ExecutorInfo,
        task_group: &'a TaskGroupInfo,
    },
}

/// Checks one ACCEPT operation: a LAUNCH with `launch` or a LAUNCH_GROUP with `launch_group`,
/// without an operation `id`.
pub fn validate_operation(op: &Operation) -> Result<LaunchOperation<'_>, OperationError> {
    let op_type = op.r#type.ok_or(OperationError::MissingType)?;
    let launch = match op_type {
        OperationType::Unknown => return Err(OperationError::UnknownType),
        OperationType::Launch => {
            let launch = op.launch.as_ref().ok_or(OperationError::MissingPayload {
                op_type,
                field: "launch",
            })?;
            LaunchOperation::Launch(&launch.task_infos)
        }
        OperationType::LaunchGroup => {
            let group = op
                .launch_group
                .as_ref()
                .ok_or(OperationError::MissingPayload {
                    op_type,
                    field: "launch_group",
                })?;
            LaunchOperation::LaunchGroup {
                executor: &group.executor,
                task_group: &group.task_group,
            }
        }
        _ => return Err(OperationError::Unsupported { op_type }),
    };
    if op.id.is_some() {
        return Err(OperationError::FeedbackUnsupported { op_type });
    }
    Ok(launch)
}

// ---------------------------------------------------------------------------------------------
// Tasks

/// Why one task cannot launch: the message of its TASK_ERROR (REASON_TASK_INVALID, or
/// REASON_TASK_GROUP_INVALID for a task group).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("invalid task_id: {0}")]
    InvalidTaskId(#[source] IdError),
    /// The framework already has a live task with this id, or an earlier task of the same
    /// ACCEPT took it.
    #[error("task_id `{task_id}` is already used by another task of this framework")]
    DuplicateTaskId { task_id: String },
    #[error("task is for agent {task_agent} but the offers are on agent {offer_agent}")]
    WrongAgent {
        task_agent: String,
        offer_agent: String,
    },
    #[error("kill_policy.grace_period must not be negative")]
    NegativeGracePeriod,
    #[error("invalid health_check: {0}")]
    InvalidHealthCheck(HealthCheckError),
    #[error("task uses no resources")]
    NoResources,
    #[error("invalid resources: {0}")]
    InvalidResources(#[source] ResourceError),
    #[error("task has both `command` and `executor`; set exactly one")]
    CommandAndExecutor,
    #[error("task has neither `command` nor `executor`; set exactly one")]
    NoCommandOrExecutor,
    /// VALUE variables need a value; berth has no secret store for SECRET ones.
    #[error("environment variable `{name}` has no value (secrets are not supported)")]
    VariableWithoutValue { name: String },
    #[error("invalid container: {0}")]
    InvalidContainer(String),
    /// A bridged docker port mapping binds a host port, which the task must hold.
    #[error(
        "docker port mapping uses host port {host_port}, which is not in the task's ports resources"
    )]
    UnreservedHostPort { host_port: u32 },
    #[error("invalid executor: {0}")]
    InvalidExecutor(String),
    /// The task (with its executor) needs more than the offers have left.
    #[error("task needs more than the offers have left: {0}")]
    Insufficient(Shortfall),
    /// A task group was refused as a whole; this is the reason, shared by all its tasks.
    #[error("task group is invalid: {0}")]
    Group(String),
}

/// Checks one task on its own (no offer, no other tasks): a valid id, a non-negative kill
/// grace period, a sound health check, resources that parse, exactly one of `command` and
/// `executor`, environment variables with values, a consistent container. Returns what the
/// task takes: its resources plus its executor's.
pub fn validate_task(task: &TaskInfo) -> Result<Resources, TaskError> {
    validate_id(&task.task_id.value).map_err(TaskError::InvalidTaskId)?;
    if task
        .kill_policy
        .and_then(|k| k.grace_period)
        .is_some_and(|g| g.nanoseconds < 0)
    {
        return Err(TaskError::NegativeGracePeriod);
    }
    if let Some(check) = &task.health_check {
        validate_health_check(check).map_err(TaskError::InvalidHealthCheck)?;
    }
    if task.resources.is_empty() {
        return Err(TaskError::NoResources);
    }
    let own = Resources::parse(&task.resources).map_err(TaskError::InvalidResources)?;

    let command = match (&task.command, &task.executor) {
        (Some(_), Some(_)) => return Err(TaskError::CommandAndExecutor),
        (None, None) => return Err(TaskError::NoCommandOrExecutor),
        (Some(command), None) => command,
        (None, Some(executor)) => {
            let command = validate_custom_executor(executor)?;
            let with_executor = Resources::parse(&executor.resources)
                .map_err(|e| TaskError::InvalidExecutor(format!("resources: {e}")))?;
            if let Some(container) = &task.container {
                validate_container(container, &own)?;
            }
            check_variables(command)?;
            return Ok(own.plus(&with_executor));
        }
    };
    check_variables(command)?;
    if let Some(container) = &task.container {
        validate_container(container, &own)?;
    }
    Ok(own)
}

fn check_variables(command: &crate::v1::CommandInfo) -> Result<(), TaskError> {
    let Some(env) = &command.environment else {
        return Ok(());
    };
    for var in &env.variables {
        let is_value = matches!(var.r#type, None | Some(VariableType::Value));
        if !is_value || var.value.is_none() {
            return Err(TaskError::VariableWithoutValue {
                name: var.name.clone(),
            });
        }
    }
    Ok(())
}

fn validate_container(container: &ContainerInfo, resources: &Resources) -> Result<(), TaskError> {
    match container.r#type {
        ContainerType::Docker => {
            let docker = container.docker.as_ref().ok_or_else(|| {
                TaskError::InvalidContainer("type is DOCKER but `docker` is missing".into())
            })?;
            if docker.image.trim().is_empty() {
                return Err(TaskError::InvalidContainer("docker.image is empty".into()));
            }
            if matches!(
                docker.network(),
                DockerNetwork::Bridge | DockerNetwork::User
            ) {
                for mapping in &docker.port_mappings {
                    if !resources.ports.contains(u64::from(mapping.host_port)) {
                        return Err(TaskError::UnreservedHostPort {
                            host_port: mapping.host_port,
                        });
                    }
                }
            }
        }
        ContainerType::Mesos => {
            if container.docker.is_some() {
                return Err(TaskError::InvalidContainer(
                    "type is MESOS but `docker` is set; use type DOCKER".into(),
                ));
            }
        }
    }
    for volume in &container.volumes {
        if volume.container_path.is_empty() {
            return Err(TaskError::InvalidContainer(
                "a volume has an empty container_path".into(),
            ));
        }
    }
    Ok(())
}

/// Checks the executor of a LAUNCHed task (CUSTOM, or untyped, with a command); returns its
/// command.
fn validate_custom_executor(executor: &ExecutorInfo) -> Result<&crate::v1::CommandInfo, TaskError> {
    let invalid = |m: String| Err(TaskError::InvalidExecutor(m));
    if let Err(e) = validate_id(&executor.executor_id.value) {
        return invalid(format!("executor_id: {e}"));
    }
    if executor
        .shutdown_grace_period
        .is_some_and(|g| g.nanoseconds < 0)
    {
        return invalid("shutdown_grace_period must not be negative".into());
    }
    match executor.r#type {
        None | Some(ExecutorType::Custom) => {}
        Some(t) => return invalid(format!("type must be CUSTOM for a LAUNCH, not {t}")),
    }
    match &executor.command {
        Some(command) => Ok(command),
        None => invalid("`command` must be set for a CUSTOM executor".into()),
    }
}

/// What is wrong with a task's `health_check` (after "invalid health_check: ").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HealthCheckError {
    /// No `type`.
    #[error("`type` must be set")]
    MissingType,
    /// A `type` this Mesos version does not know.
    #[error("unknown type")]
    UnknownType,
    /// A COMMAND check with nothing to run.
    #[error("COMMAND check without `command.value`")]
    MissingCommand,
    /// An HTTP check without its `http` settings.
    #[error("HTTP check without `http`")]
    MissingHttp,
    /// A TCP check without its `tcp` settings.
    #[error("TCP check without `tcp`")]
    MissingTcp,
    /// A negative (or NaN) duration; the field's name.
    #[error("{0} must not be negative")]
    NegativeSeconds(&'static str),
}

fn validate_health_check(check: &HealthCheck) -> Result<(), HealthCheckError> {
    match check.r#type {
        None => return Err(HealthCheckError::MissingType),
        Some(HealthCheckType::Unknown) => return Err(HealthCheckError::UnknownType),
        Some(HealthCheckType::Command) => {
            let has_value = check
                .command
                .as_ref()
                .is_some_and(|c| c.value.is_some() || !c.shell());
            if !has_value {
                return Err(HealthCheckError::MissingCommand);
            }
        }
        Some(HealthCheckType::Http) => {
            if check.http.is_none() {
                return Err(HealthCheckError::MissingHttp);
            }
        }
        Some(HealthCheckType::Tcp) => {
            if check.tcp.is_none() {
                return Err(HealthCheckError::MissingTcp);
            }
        }
    }
    for (name, v) in [
        ("delay_seconds", check.delay_seconds),
        ("interval_seconds", check.interval_seconds),
        ("timeout_seconds", check.timeout_seconds),
        ("grace_period_seconds", check.grace_period_seconds),
    ] {
        if v.is_some_and(|v| v.is_nan() || v < 0.0) {
            return Err(HealthCheckError::NegativeSeconds(name));
        }
    }
    Ok(())
}

/// The outcome of validating a LAUNCH against the offers it uses.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchCheck {
    /// Per task, in order: the resources it takes, or why it cannot launch.
    pub tasks: Vec<Result<Resources, TaskError>>,
    /// What the launched tasks leave of the offers: released (and filtered for the
    /// framework by the ACCEPT's `filters`).
    pub unused: Resources,
}

/// Validates a LAUNCH's tasks against `offered` (from [`pool_offers`]) the way a master does:
/// in order, each task checked on its own ([`validate_task`]), then against the agent, then
/// against the task ids already taken (`is_known`, plus earlier tasks of this launch), then
/// against what earlier tasks left of the offers. A task that passes takes its resources; a
/// task that fails takes nothing, and the rest still launch.
pub fn check_launch(
    agent_id: &AgentId,
    offered: &Resources,
    tasks: &[TaskInfo],
    is_known: impl Fn(&TaskId) -> bool,
) -> LaunchCheck {
    let mut remaining = offered.clone();
    let mut taken: HashSet<&str> = HashSet::new();
    let results = tasks
        .iter()
        .map(|task| {
            let needs = validate_task(task)?;
            if task.agent_id != *agent_id {
                return Err(TaskError::WrongAgent {
                    task_agent: task.agent_id.value.clone(),
                    offer_agent: agent_id.value.clone(),
                });
            }
            if is_known(&task.task_id) || taken.contains(task.task_id.as_str()) {
                return Err(TaskError::DuplicateTaskId {
                    task_id: task.task_id.value.clone(),
                });
            }
            needs.fit(&remaining).map_err(TaskError::Insufficient)?;
            remaining = remaining.minus(&needs);
            taken.insert(task.task_id.as_str());
            Ok(needs)
        })
        .collect();
    LaunchCheck {
        tasks: results,
        unused: remaining,
    }
}

/// Validates a LAUNCH_GROUP: all its tasks launch or none do. The executor must be of type
/// DEFAULT without a command and not a docker container; each task must pass
/// [`validate_task`]'s checks (with `executor` as its executor), be for the offers' agent,
/// have a fresh id, and not ask for a docker container; and the executor's resources plus
/// all the tasks' must fit `offered`. On failure every task gets the same error. On success
/// each task's entry is its own resources; the executor's are taken too (they are missing
/// from `unused`) but belong to no task.
pub fn check_launch_group(
    agent_id: &AgentId,
    offered: &Resources,
    executor: &ExecutorInfo,
    group: &TaskGroupInfo,
    is_known: impl Fn(&TaskId) -> bool,
) -> LaunchCheck {
    let refuse = |e: TaskError| LaunchCheck {
        tasks: group.tasks.iter().map(|_| Err(e.clone())).collect(),
        unused: offered.clone(),
    };
    let group_error = |m: String| refuse(TaskError::Group(m));

    if group.tasks.is_empty() {
        return group_error("task_group has no tasks".into());
    }
    if let Err(e) = validate_id(&executor.executor_id.value) {
        return group_error(format!("executor.executor_id: {e}"));
    }
    match executor.r#type {
        Some(ExecutorType::Default) => {}
        None => return group_error("executor.type must be set (to DEFAULT)".into()),
        Some(t) => return group_error(format!("executor.type must be DEFAULT, not {t}")),
    }
    if executor.command.is_some() {
        return group_error("executor.command must not be set for the DEFAULT executor".into());
    }
    if executor
        .container
        .as_ref()
        .is_some_and(|c| c.r#type == ContainerType::Docker)
    {
        return group_error("a DOCKER container is not supported on the executor".into());
    }
    let mut total = match Resources::parse(&executor.resources) {
        Ok(r) => r,
        Err(e) => return group_error(format!("executor resources: {e}")),
    };

    let mut taken: HashSet<&str> = HashSet::new();
    let mut per_task = Vec::with_capacity(group.tasks.len());
    for task in &group.tasks {
        let id = &task.task_id.value;
        let fail = |e: TaskError| group_error(format!("task {id}: {e}"));
        if task.executor.as_ref().is_some_and(|e| e != executor) {
            return fail(TaskError::InvalidExecutor(
                "differs from the group's executor".into(),
            ));
        }
        // Tasks of a group run under the group's executor: check them as command tasks.
        let mut alone = task.clone();
        alone.executor = None;
        if alone.command.is_none() {
            alone.command = Some(Default::default());
        }
        let needs = match validate_task(&alone) {
            Ok(needs) => needs,
            Err(e) => return fail(e),
        };
        if let Some(container) = &task.container {
            if container.r#type == ContainerType::Docker {
                return fail(TaskError::InvalidContainer(
                    "a DOCKER container is not supported in a task group".into(),
                ));
            }
            if !container.network_infos.is_empty() {
                return fail(TaskError::InvalidContainer(
                    "network_infos must be set on the executor, not the task".into(),
                ));
            }
        }
        if task.agent_id != *agent_id {
            return fail(TaskError::WrongAgent {
                task_agent: task.agent_id.value.clone(),
                offer_agent: agent_id.value.clone(),
            });
        }
        if is_known(&task.task_id) || !taken.insert(id.as_str()) {
            return fail(TaskError::DuplicateTaskId {
                task_id: id.clone(),
            });
        }
        total = total.plus(&needs);
        per_task.push(Ok(needs));
    }
    if let Err(short) = total.fit(offered) {
        return refuse(TaskError::Insufficient(short));
    }
    LaunchCheck {
        tasks: per_task,
        unused: offered.minus(&total),
    }
}
