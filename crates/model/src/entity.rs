//! The entities berth stores: clusters, task definitions, container instances and tasks.
//!
//! Values are immutable once stored (the state machine replaces an `Arc<T>` with a new one on
//! every change), carry the Raft log index of their last change in `version`, and hold names
//! and ids rather than ARNs (ARNs depend on the caller's region and are rendered per response).
//! Shapes that berth only stores and echoes (cluster settings, container definitions, version
//! info) are kept as the wire types of `berth-api`.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::capacity::StrategyItem;
use crate::id::{InstanceId, TaskId};
use crate::priority::Priority;
use crate::time::Millis;

/// A shared, cheaply cloned name (cluster, family): it is repeated in every index entry.
pub type Name = Arc<str>;

/// A queued task's place in its cluster's queue ([`Task::queue_key`]): ascending order is
/// queue order.
pub type QueueKey = (Reverse<Priority>, Millis, TaskId);

/// A resource tag. Keys are unique per resource; order is the caller's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as ECS spells it on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// A cluster's status. A deleted cluster stays visible as INACTIVE.
    ClusterStatus { Active = "ACTIVE", Inactive = "INACTIVE" }
);

wire_enum!(
    /// A task definition revision's status.
    TaskDefinitionStatus {
        Active = "ACTIVE",
        Inactive = "INACTIVE",
        DeleteInProgress = "DELETE_IN_PROGRESS",
    }
);

wire_enum!(
    /// A container instance's status.
    InstanceStatus {
        Registering = "REGISTERING",
        RegistrationFailed = "REGISTRATION_FAILED",
        Active = "ACTIVE",
        Draining = "DRAINING",
        Deregistering = "DEREGISTERING",
        Inactive = "INACTIVE",
    }
);

wire_enum!(
    /// A task's (and a container's) lifecycle, in order. Declaration order is lifecycle order,
    /// so `<` means "earlier in the lifecycle".
    TaskStatus {
        Provisioning = "PROVISIONING",
        Pending = "PENDING",
        Activating = "ACTIVATING",
        Running = "RUNNING",
        Deactivating = "DEACTIVATING",
        Stopping = "STOPPING",
        Deprovisioning = "DEPROVISIONING",
        Stopped = "STOPPED",
    }
);

wire_enum!(
    /// What a task is meant to become.
    DesiredStatus { Running = "RUNNING", Pending = "PENDING", Stopped = "STOPPED" }
);

wire_enum!(
    /// Health of a container or task.
    HealthStatus { Healthy = "HEALTHY", Unhealthy = "UNHEALTHY", Unknown = "UNKNOWN" }
);

wire_enum!(
    /// A task definition's network mode.
    NetworkMode { Bridge = "bridge", Host = "host", Awsvpc = "awsvpc", None = "none" }
);

wire_enum!(
    /// A port mapping's transport protocol.
    Protocol { Tcp = "tcp", Udp = "udp" }
);

/// A cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: Name,
    pub status: ClusterStatus,
    pub settings: Vec<api::ClusterSetting>,
    pub configuration: Option<api::ClusterConfiguration>,
    pub service_connect_defaults: Option<api::ClusterServiceConnectDefaults>,
    pub tags: Vec<Tag>,
    pub created_at: Millis,
    pub version: u64,
    /// The capacity providers attached (PutClusterCapacityProviders), in the caller's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_providers: Vec<Name>,
    /// The strategy RunTask and CreateService use when given neither a strategy nor a
    /// launch type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_strategy: Vec<StrategyItem>,
}

/// One revision of a task definition family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinition {
    pub family: Name,
    pub revision: u32,
    pub status: TaskDefinitionStatus,
    /// The registered content, normalized (defaults filled in). Its identity fields (ARN,
    /// family, revision, status, timestamps) are left empty and filled when rendered.
    pub spec: Arc<api::TaskDefinition>,
    /// What one task of this revision reserves on an instance, before overrides.
    pub requirements: Requirements,
    pub registered_at: Millis,
    pub deregistered_at: Option<Millis>,
    pub delete_requested_at: Option<Millis>,
    pub tags: Vec<Tag>,
    pub version: u64,
    /// The actor that registered it (ECS `registeredBy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
}

/// What a task reserves and needs from its container instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    /// CPU units (1024 = one vCPU).
    pub cpu: i64,
    /// Memory in MiB: the task-level memory when given, else the sum over containers of
    /// `memoryReservation`, else `memory`.
    pub memory: i64,
    pub network_mode: Option<NetworkMode>,
    /// Every port mapping that binds a host port.
    pub ports: Vec<PortClaim>,
}

/// One port mapping that binds a host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortClaim {
    pub container: String,
    pub container_port: u16,
    /// The host port; 0 for a dynamic port chosen at placement.
    pub host_port: u16,
    pub protocol: Protocol,
}

impl Requirements {
    /// The static host ports of `protocol` this task binds.
    pub fn static_ports(&self, protocol: Protocol) -> impl Iterator<Item = u16> + '_ {
        self.ports
            .iter()
            .filter(move |p| p.protocol == protocol && p.host_port != 0)
            .map(|p| p.host_port)
    }
}

/// The resources a container instance registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu: i64,
    pub memory: i64,
    /// TCP ports the host reserves for itself (never given to tasks), sorted.
    pub ports: Vec<u16>,
    /// UDP ports the host reserves, sorted.
    pub udp_ports: Vec<u16>,
    /// Other registered resources (GPU and the like), stored and echoed.
    pub other: Vec<api::Resource>,
}

/// A container instance: one host running an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInstance {
    pub id: InstanceId,
    pub cluster: Name,
    pub ec2_instance_id: Option<String>,
    pub status: InstanceStatus,
    pub status_reason: Option<String>,
    pub agent_connected: bool,
    /// When the agent was last seen going silent (set with `agent_connected = false`).
    #[serde(default)]
    pub disconnected_at: Option<Millis>,
    pub version_info: Option<api::VersionInfo>,
    pub resources: Resources,
    /// Attribute name to optional value: the built-in `ecs.*` ones and custom ones.
    pub attributes: BTreeMap<String, Option<String>>,
    pub registered_at: Millis,
    pub deregistered_at: Option<Millis>,
    pub tags: Vec<Tag>,
    pub version: u64,
    /// Where its agent serves container logs, as the agent itself registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_endpoint: Option<String>,
    /// SHA-256 (hex) of the certificate its agent serves logs with: the only one servers
    /// accept there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_certificate: Option<String>,
}

impl ContainerInstance {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(|v| v.as_deref())
    }
}

/// What a placed task holds on its instance until it is STOPPED.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub cpu: i64,
    pub memory: i64,
    /// Static TCP host ports, sorted.
    pub tcp: Vec<u16>,
    /// Static UDP host ports, sorted.
    pub udp: Vec<u16>,
    /// TCP host ports chosen at placement for mappings with no host port (bridge mode), sorted.
    /// Held like static ports, but not listed in an instance's remaining PORTS (as in ECS).
    #[serde(default)]
    pub dynamic_tcp: Vec<u16>,
    /// UDP host ports chosen at placement, sorted.
    #[serde(default)]
    pub dynamic_udp: Vec<u16>,
}

impl Reservation {
    /// Every host port of `protocol` this reservation holds, static and dynamic.
    pub fn ports(&self, protocol: Protocol) -> impl Iterator<Item = u16> + '_ {
        let (fixed, dynamic) = match protocol {
            Protocol::Tcp => (&self.tcp, &self.dynamic_tcp),
            Protocol::Udp => (&self.udp, &self.dynamic_udp),
        };
        fixed.iter().chain(dynamic.iter()).copied()
    }
}

/// The range dynamic host ports are chosen from at placement: the top of the range ECS and
/// Docker use (49153–65535), above Linux's default ephemeral range (32768–60999). The server
/// chooses these ports without seeing the host, so they must not be ones the host's own
/// outgoing connections may be holding: a chosen port that the kernel gave to a client socket
/// fails the container's start ("address already in use").
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u16> = 61000..=65535;

/// A task: one instantiation of a task definition on a container instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub cluster: Name,
    pub instance: Option<InstanceId>,
    pub family: Name,
    pub revision: u32,
    pub overrides: api::TaskOverride,
    pub last_status: TaskStatus,
    pub desired_status: DesiredStatus,
    pub containers: Vec<Container>,
    pub group: String,
    pub started_by: Option<String>,
    pub launch_type: String,
    /// Task-level cpu and memory as registered (or overridden), echoed as strings.
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub reservation: Reservation,
    /// Every port mapping that binds a host port, with the host port the placement chose.
    #[serde(default)]
    pub ports: Vec<PortClaim>,
    pub availability_zone: Option<String>,
    pub health_status: HealthStatus,
    pub created_at: Millis,
    pub pull_started_at: Option<Millis>,
    pub pull_stopped_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub stopping_at: Option<Millis>,
    pub stopped_at: Option<Millis>,
    pub execution_stopped_at: Option<Millis>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub enable_execute_command: bool,
    pub tags: Vec<Tag>,
    /// Scale-in protection (UpdateTaskProtection) lapses at this time: until then neither
    /// scale-in nor a deployment stops the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_until: Option<Millis>,
    pub version: u64,
    /// The capacity provider whose instances the task was placed on, when it was launched
    /// with a capacity provider strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider: Option<Name>,
    /// Set on a task RunTask queued for capacity (see [`crate::queue`]): what its placement
    /// needs and when its wait ends. Kept after it leaves the queue, as a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<crate::queue::QueuedPlacement>,
    /// Its priority, resolved when it was launched (see [`crate::priority`]). `None` only for
    /// tasks launched before priorities existed: [`Task::priority`] reads their kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
}

impl Task {
    /// True until the task is STOPPED: it holds its reservation while this is true.
    pub fn is_live(&self) -> bool {
        self.last_status != TaskStatus::Stopped
    }

    /// Waiting for capacity: queued, still PROVISIONING, on no instance, wanted RUNNING.
    pub fn is_queued(&self) -> bool {
        self.queued.is_some()
            && self.instance.is_none()
            && self.last_status == TaskStatus::Provisioning
            && self.desired_status == DesiredStatus::Running
    }

    /// The task's priority: as launched, or (launched before priorities existed) its kind's
    /// default — a service's task counts as a REPLICA's, anything else as standalone.
    pub fn priority(&self) -> Priority {
        self.priority.unwrap_or_else(|| {
            if crate::service::service_of_group(&self.group).is_some() {
                Priority::SERVICE
            } else {
                Priority::STANDALONE
            }
        })
    }

    /// The task's place in its cluster's queue: higher priority first, then FIFO by creation
    /// and id.
    pub fn queue_key(&self) -> QueueKey {
        (Reverse(self.priority()), self.created_at, self.id)
    }

    /// Whether scale-in protection holds at `now`.
    pub fn protected_at(&self, now: Millis) -> bool {
        self.protected_until.is_some_and(|until| until > now)
    }
}

/// One container of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub runtime_id: Option<String>,
    pub image_digest: Option<String>,
    pub last_status: TaskStatus,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub network_bindings: Vec<api::NetworkBinding>,
    pub health_status: HealthStatus,
    pub cpu: Option<i32>,
    pub memory: Option<i32>,
    pub memory_reservation: Option<i32>,
}
