//! Commands: every write to berth's state, as a typed value in the Raft log.
//!
//! ```text
//!  API edge ──validate──► Command ──Raft (batched, durable)──► State::apply(index) ──► Outcome
//! ```
//! A command is decided before it is logged: ids, timestamps and placements are chosen by the
//! proposer and travel inside it, so applying the log is deterministic on every node and after
//! every restart. What can only be checked against the newest state (does this placement still
//! fit? does the cluster still exist?) is checked at apply time, and the command's [`Outcome`]
//! or [`Error`](crate::Error) is the answer the caller gets.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::arn::ResourceArn;
use crate::entity::*;
use crate::id::{InstanceId, OfferId, TaskId};
use crate::mesos::{Framework, Offer};
use crate::service::Service;
use crate::time::Millis;

/// A command and the moment its proposer decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub at: Millis,
    pub command: Command,
}

/// Every kind of write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateCluster {
        name: Name,
        settings: Vec<api::ClusterSetting>,
        configuration: Option<api::ClusterConfiguration>,
        service_connect_defaults: Option<api::ClusterServiceConnectDefaults>,
        tags: Vec<Tag>,
    },
    DeleteCluster {
        name: Name,
    },
    /// Replaces the given parts; `None` leaves a part as it is.
    UpdateCluster {
        name: Name,
        settings: Option<Vec<api::ClusterSetting>>,
        configuration: Option<api::ClusterConfiguration>,
        service_connect_defaults: Option<api::ClusterServiceConnectDefaults>,
    },
    RegisterTaskDefinition {
        family: Name,
        spec: Arc<api::TaskDefinition>,
        requirements: Requirements,
        tags: Vec<Tag>,
    },
    DeregisterTaskDefinition {
        family: Name,
        revision: u32,
    },
    DeleteTaskDefinitions {
        revisions: Vec<(Name, u32)>,
    },
    /// Registers a new instance, or re-registers `id` when `reregister` (an agent restarting
    /// with its saved ARN): resources, attributes and version info are replaced, tasks kept.
    RegisterContainerInstance {
        cluster: Name,
        id: InstanceId,
        reregister: bool,
        ec2_instance_id: Option<String>,
        resources: Resources,
        attributes: BTreeMap<String, Option<String>>,
        version_info: Option<api::VersionInfo>,
        tags: Vec<Tag>,
    },
    DeregisterContainerInstance {
        cluster: Name,
        id: InstanceId,
        force: bool,
    },
    UpdateContainerInstancesState {
        cluster: Name,
        ids: Vec<InstanceId>,
        status: InstanceStatus,
    },
    PutAttributes {
        cluster: Name,
        attributes: Vec<AttributeChange>,
    },
    DeleteAttributes {
        cluster: Name,
        attributes: Vec<AttributeChange>,
    },
    /// A placement plan: each task, fully formed, on the instance its scheduler chose. Apply
    /// re-checks every task against the newest state and commits those that still fit; the
    /// others come back as [`Rejection`]s for the scheduler to retry on a fresher snapshot.
    PlaceTasks {
        cluster: Name,
        tasks: Vec<Task>,
        client_token: Option<ClientToken>,
        /// The tasks carry a `distinctInstance` constraint: none may share an instance with a
        /// live task of its group, which is re-checked here as resources are.
        #[serde(default)]
        distinct_instance: bool,
    },
    StopTask {
        cluster: Name,
        id: TaskId,
        reason: Option<String>,
        stop_code: Option<String>,
    },
    /// A task's and its containers' progress as reported by the agent that runs it.
    TaskStateChange {
        cluster: Name,
        id: TaskId,
        status: Option<TaskStatus>,
        reason: Option<String>,
        containers: Vec<ContainerChange>,
        pull_started_at: Option<Millis>,
        pull_stopped_at: Option<Millis>,
        execution_stopped_at: Option<Millis>,
    },
    /// The heartbeat monitor's verdict: these instances' agents went silent
    /// (`connected: false`) or were heard from again.
    AgentConnectivity {
        cluster: Name,
        ids: Vec<InstanceId>,
        connected: bool,
    },
    /// An agent stayed disconnected for the grace period: its tasks are STOPPED with `reason`,
    /// so that schedulers can replace them. A no-op if it reconnected meanwhile.
    AgentLost {
        cluster: Name,
        id: InstanceId,
        reason: String,
    },
    /// A new service. Refused if an ACTIVE or DRAINING service of that name exists.
    CreateService {
        service: Arc<Service>,
    },
    /// Replaces a service with a new value decided on a snapshot where its version was
    /// `expected_version` (UpdateService, DeleteService and the service reconciler): refused
    /// with a conflict if it changed since, so that no decision is made on a stale value.
    PutService {
        service: Arc<Service>,
        expected_version: u64,
    },
    /// A Mesos framework subscribed: new, or re-subscribing with its id (its info replaced).
    /// Either way it is connected.
    SubscribeFramework {
        framework: Arc<Framework>,
    },
    /// A framework's event stream closed: it and its tasks stay for its failover timeout.
    FrameworkDisconnected {
        id: String,
    },
    /// TEARDOWN, or a failover timeout that ran out: the framework's offers are released, its
    /// live tasks are told to stop with `reason`, and it is forgotten.
    RemoveFramework {
        id: String,
        reason: String,
    },
    /// Offers, each holding its resources on its instance. Each is re-checked against the
    /// newest state like a placement; those that no longer fit are not made.
    MakeOffers {
        offers: Vec<Offer>,
    },
    /// DECLINE, RESCIND or an offer timeout: the offers' holds are released. Unknown ids are
    /// skipped (an offer may already have been accepted or released).
    RemoveOffers {
        ids: Vec<OfferId>,
    },
    /// ACCEPT with LAUNCH: `offers` (outstanding, of `framework`, all on one instance) are
    /// consumed and `tasks` placed on that instance, all or nothing. The tasks together must
    /// fit within what the offers held; what they leave unused is released.
    AcceptOffers {
        framework: String,
        offers: Vec<OfferId>,
        tasks: Vec<Task>,
    },
    TagResource {
        resource: ResourceArn,
        tags: Vec<Tag>,
    },
    UntagResource {
        resource: ResourceArn,
        keys: Vec<String>,
    },
    /// Forgets what has been finished long enough: STOPPED tasks, INACTIVE instances and
    /// deleted task definitions older than the cut-offs, and expired client tokens.
    Expire {
        stopped_before: Millis,
        inactive_before: Millis,
    },
}

/// An attribute on a container instance (the only target type ECS has).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub instance: InstanceId,
    pub name: String,
    pub value: Option<String>,
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

wire_enum!(
    /// Why a task could not be placed, or why an item of a batch call failed (ECS
    /// `failures[].reason`).
    FailureReason {
        Missing = "MISSING",
        Inactive = "INACTIVE",
        ResourceCpu = "RESOURCE:CPU",
        ResourceMemory = "RESOURCE:MEMORY",
        ResourcePorts = "RESOURCE:PORTS",
        ResourcePortsUdp = "RESOURCE:PORTS_UDP",
        ResourceGpu = "RESOURCE:GPU",
        Agent = "AGENT",
        Attribute = "ATTRIBUTE",
    }
);

/// One item of a batch call that failed, as ECS `failures[]` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub resource: Option<ResourceArn>,
    /// A [`FailureReason`] spelling where one applies, else a sentence.
    pub reason: String,
    pub detail: Option<String>,
}

/// A placement the commit check refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub task: TaskId,
    pub instance: Option<InstanceId>,
    pub reason: FailureReason,
    pub detail: String,
}

/// What an applied command produced: the new values the caller's response is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Cluster(Arc<Cluster>),
    TaskDefinition(Arc<TaskDefinition>),
    TaskDefinitions {
        done: Vec<Arc<TaskDefinition>>,
        failures: Vec<Failure>,
    },
    Instance(Arc<ContainerInstance>),
    Instances {
        done: Vec<Arc<ContainerInstance>>,
        failures: Vec<Failure>,
    },
    Attributes(Vec<AttributeChange>),
    Placed {
        tasks: Vec<Arc<Task>>,
        rejected: Vec<Rejection>,
    },
    Task(Arc<Task>),
    Service(Arc<Service>),
    Framework(Arc<Framework>),
    /// Offers made, and the ids of those that no longer fit, with why.
    Offers {
        made: Vec<Arc<Offer>>,
        rejected: Vec<(OfferId, String)>,
    },
    Done,
}

/// The result of applying one command.
pub type CommandResult = Result<Outcome, crate::Error>;
