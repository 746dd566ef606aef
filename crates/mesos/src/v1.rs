//! Messages of `include/mesos/v1/mesos.proto` that a master speaking the scheduler API needs.
//!
//! Each type mirrors its proto message: field names are the proto's, `required` fields are
//! plain values (a message without one does not parse, as it would not on a real master),
//! `optional` fields are `Option` and `repeated` ones `Vec`, both left out of the JSON when
//! unset or empty, which is how a master writes them. Fields berth has no use for
//! (reservations, disk infos, discovery, checks, limits, seccomp, rlimits...) are not modelled:
//! they are ignored on input, as unknown fields always are.
//!
//! Proto defaults are methods (`CommandInfo::shell()`, `Filters::refuse_seconds()`...), so
//! the wire form stays what the framework sent while callers get the effective value.

use serde::{Deserialize, Serialize};

use crate::wire::{Base64Bytes, integer, lenient_enum, opt_integer, proto_enum};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        pub struct $name {
            pub value: String,
        }

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self { value: value.into() }
            }

            pub fn as_str(&self) -> &str {
                &self.value
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.value)
            }
        }
    };
}

id_type!(
    /// `FrameworkID`: assigned by the master at a framework's first SUBSCRIBE.
    FrameworkId
);
id_type!(
    /// `OfferID`: fresh and unique for every offer.
    OfferId
);
id_type!(
    /// `AgentID`: one per agent (for berth, per container instance).
    AgentId
);
id_type!(
    /// `TaskID`: chosen by the framework, unique among its live tasks.
    TaskId
);
id_type!(
    /// `ExecutorID`: chosen by the framework.
    ExecutorId
);
id_type!(
    /// `OperationID`: set by a framework that wants operation status updates.
    OperationId
);
id_type!(
    /// `ResourceProviderID`.
    ResourceProviderId
);

/// `ContainerID`: a container, nested under `parent` when it is a nested container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerId {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

/// `DurationInfo`: a duration in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurationInfo {
    #[serde(deserialize_with = "integer")]
    pub nanoseconds: i64,
}

impl DurationInfo {
    pub fn from_secs_f64(secs: f64) -> Self {
        Self {
            nanoseconds: (secs * 1e9).round() as i64,
        }
    }

    pub fn as_secs_f64(self) -> f64 {
        self.nanoseconds as f64 / 1e9
    }
}

/// `TimeInfo`: nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeInfo {
    #[serde(deserialize_with = "integer")]
    pub nanoseconds: i64,
}

/// `Address`: where something listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "integer")]
    pub port: i32,
}

/// `URL`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    pub scheme: String,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<String>,
}

/// `Unavailability`: a maintenance window, from `start` for `duration` (forever if unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailability {
    pub start: TimeInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationInfo>,
}

/// `Parameter`: a key/value pair (docker parameters, URL queries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub key: String,
    pub value: String,
}

/// `Labels`: free-form key/value metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
}

/// `Label`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Frameworks and masters

/// `FrameworkInfo`: who a framework is, sent in SUBSCRIBE.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    /// The Unix user its tasks run as unless a `CommandInfo` names another. Required, but a
    /// framework may send it empty.
    pub user: String,
    pub name: String,
    /// Unset at the first SUBSCRIBE; the assigned id on every later one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FrameworkId>,
    /// Seconds its tasks survive its disconnection. Default 0; pymesos sends 100 unless told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// Deprecated single role (default `*`); `roles` is used instead with MULTI_ROLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<FrameworkCapability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

impl FrameworkInfo {
    /// `failover_timeout` with its proto default (0 seconds: tasks are killed at once).
    pub fn failover_timeout(&self) -> f64 {
        self.failover_timeout
            .filter(|t| t.is_finite() && *t >= 0.0)
            .unwrap_or(0.0)
    }

    pub fn has_capability(&self, capability: FrameworkCapabilityType) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.r#type == Some(capability))
    }

    /// The roles it subscribes as: `roles` with MULTI_ROLE, else `role` (default `*`).
    pub fn effective_roles(&self) -> Vec<&str> {
        if self.has_capability(FrameworkCapabilityType::MultiRole) {
            self.roles.iter().map(String::as_str).collect()
        } else {
            vec![self.role.as_deref().unwrap_or("*")]
        }
    }
}

/// `FrameworkInfo.Capability`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameworkCapability {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<FrameworkCapabilityType>,
}

impl From<FrameworkCapabilityType> for FrameworkCapability {
    fn from(t: FrameworkCapabilityType) -> Self {
        Self { r#type: Some(t) }
    }
}

proto_enum! {
    /// `FrameworkInfo.Capability.Type`.
    pub enum FrameworkCapabilityType fallback Unknown {
        Unknown = "UNKNOWN",
        RevocableResources = "REVOCABLE_RESOURCES",
        /// The framework understands TASK_KILLING.
        TaskKillingState = "TASK_KILLING_STATE",
        GpuResources = "GPU_RESOURCES",
        SharedResources = "SHARED_RESOURCES",
        /// The framework understands TASK_UNREACHABLE, TASK_DROPPED, TASK_GONE,
        /// TASK_GONE_BY_OPERATOR and TASK_UNKNOWN; others get TASK_LOST instead.
        PartitionAware = "PARTITION_AWARE",
        MultiRole = "MULTI_ROLE",
        ReservationRefinement = "RESERVATION_REFINEMENT",
        RegionAware = "REGION_AWARE",
    }
}

/// `MasterInfo`: sent in SUBSCRIBED; pymesos reads only `version` from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: String,
    /// IPv4 address packed into a u32 in network order (deprecated; `address` supersedes it).
    #[serde(deserialize_with = "integer")]
    pub ip: u32,
    #[serde(deserialize_with = "integer")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// `VersionInfo`: the body of `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Must be purely numeric and dotted (see `crate::protocol::MESOS_VERSION`).
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_tag: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Values, resources, attributes

/// `Value` and its parts, shared by resources and attributes.
pub mod value {
    use serde::{Deserialize, Serialize};

    use crate::wire::{integer, proto_enum};

    proto_enum! {
        /// `Value.Type`: which of a resource's or attribute's value fields is set.
        pub enum Type {
            Scalar = "SCALAR",
            Ranges = "RANGES",
            Set = "SET",
            /// Attributes only.
            Text = "TEXT",
        }
    }

    /// `Value.Scalar`. Mesos keeps three decimal digits; see `crate::resources::Quantity`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
    pub struct Scalar {
        pub value: f64,
    }

    /// `Value.Range`: `begin..=end`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Range {
        #[serde(deserialize_with = "integer")]
        pub begin: u64,
        #[serde(deserialize_with = "integer")]
        pub end: u64,
    }

    /// `Value.Ranges`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Ranges {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub range: Vec<Range>,
    }

    /// `Value.Set`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Set {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub item: Vec<String>,
    }

    /// `Value.Text`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Text {
        pub value: String,
    }
}

/// `Resource`: one named amount (`cpus`, `mem` in MiB, `disk` in MiB, `ports`, `gpus`).
///
/// Reservations (`reservation`, `reservations`), `disk`, `revocable`, `shared` and
/// `provider_id` are not modelled: berth offers only unreserved resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub r#type: value::Type,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<value::Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<value::Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<value::Set>,
    /// Deprecated; default `*` (unreserved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

impl Resource {
    /// An unreserved (`role: "*"`) scalar resource.
    pub fn scalar(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            r#type: value::Type::Scalar,
            scalar: Some(value::Scalar { value }),
            ranges: None,
            set: None,
            role: Some("*".into()),
            allocation_info: None,
        }
    }

    /// An unreserved ranges resource, `begin..=end` each.
    pub fn ranges(name: impl Into<String>, ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        Self {
            name: name.into(),
            r#type: value::Type::Ranges,
            scalar: None,
            ranges: Some(value::Ranges {
                range: ranges
                    .into_iter()
                    .map(|(begin, end)| value::Range { begin, end })
                    .collect(),
            }),
            set: None,
            role: Some("*".into()),
            allocation_info: None,
        }
    }

    /// An unreserved set resource.
    pub fn set(name: impl Into<String>, items: impl IntoIterator<Item = String>) -> Self {
        Self {
            name: name.into(),
            r#type: value::Type::Set,
            scalar: None,
            ranges: None,
            set: Some(value::Set {
                item: items.into_iter().collect(),
            }),
            role: Some("*".into()),
            allocation_info: None,
        }
    }
}

/// `Resource.AllocationInfo`: the role an offered resource is allocated to (MULTI_ROLE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `Attribute`: a fact about an agent, offered alongside its resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub r#type: value::Type,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<value::Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<value::Ranges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<value::Set>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<value::Text>,
}

impl Attribute {
    /// A TEXT attribute.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            r#type: value::Type::Text,
            scalar: None,
            ranges: None,
            set: None,
            text: Some(value::Text {
                value: value.into(),
            }),
        }
    }

    /// A SCALAR attribute.
    pub fn scalar(name: impl Into<String>, value: f64) -> Self {
        Self {
            name: name.into(),
            r#type: value::Type::Scalar,
            scalar: Some(value::Scalar { value }),
            ranges: None,
            set: None,
            text: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Offers and operations

/// `Offer`: resources of one agent, held for one framework until accepted, declined or
/// rescinded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: OfferId,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_ids: Vec<ExecutorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailability: Option<Unavailability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

/// `Offer.Operation`: one step of an ACCEPT.
///
/// Only LAUNCH and LAUNCH_GROUP have their payloads modelled; the payloads of the reservation
/// and volume operations are ignored (berth refuses those operations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<OperationType>,
    /// Set by frameworks that want UPDATE_OPERATION_STATUS feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<OperationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
}

impl Operation {
    /// A LAUNCH of `task_infos`.
    pub fn launch(task_infos: Vec<TaskInfo>) -> Self {
        Self {
            r#type: Some(OperationType::Launch),
            launch: Some(Launch { task_infos }),
            ..Self::default()
        }
    }
}

proto_enum! {
    /// `Offer.Operation.Type`.
    pub enum OperationType fallback Unknown {
        Unknown = "UNKNOWN",
        Launch = "LAUNCH",
        LaunchGroup = "LAUNCH_GROUP",
        Reserve = "RESERVE",
        Unreserve = "UNRESERVE",
        Create = "CREATE",
        Destroy = "DESTROY",
        GrowVolume = "GROW_VOLUME",
        ShrinkVolume = "SHRINK_VOLUME",
        CreateDisk = "CREATE_DISK",
        DestroyDisk = "DESTROY_DISK",
    }
}

/// `Offer.Operation.Launch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_infos: Vec<TaskInfo>,
}

/// `Offer.Operation.LaunchGroup`: tasks delivered together to one executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    pub executor: ExecutorInfo,
    pub task_group: TaskGroupInfo,
}

/// `InverseOffer`: a request to give resources back (berth never sends one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InverseOffer {
    pub id: OfferId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    pub framework_id: FrameworkId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    pub unavailability: Unavailability,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
}

/// `Filters`: how long declined (or unused) resources stay away from the framework.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_seconds: Option<f64>,
}

impl Filters {
    /// The proto default when unset (and what a negative value means).
    pub const DEFAULT_REFUSE_SECONDS: f64 = 5.0;
    /// The longest refusal a master honours: 365 days.
    pub const MAX_REFUSE_SECONDS: f64 = 31_536_000.0;

    /// The effective refusal: unset, negative or NaN mean 5 s; more than 365 days means 365
    /// days (frameworks decline with huge values and rely on REVIVE).
    pub fn refuse_seconds(&self) -> f64 {
        match self.refuse_seconds {
            Some(s) if s >= 0.0 => s.min(Self::MAX_REFUSE_SECONDS),
            _ => Self::DEFAULT_REFUSE_SECONDS,
        }
    }

    /// [`Filters::refuse_seconds`] for an optional `Filters`, as calls carry it.
    pub fn effective_refuse_seconds(filters: Option<&Filters>) -> f64 {
        filters.copied().unwrap_or_default().refuse_seconds()
    }
}

/// `Request`: resources a framework asks the allocator for (REQUEST; berth ignores it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
}

// ---------------------------------------------------------------------------------------------
// Tasks

/// `TaskInfo`: a task a framework launches. Exactly one of `command` and `executor` is set.
///
/// Not modelled: `check`, `discovery`, `limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub task_id: TaskId,
    pub agent_id: AgentId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_time: Option<DurationInfo>,
}

/// `TaskGroupInfo`: tasks launched atomically on one executor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskGroupInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
}

/// `CommandInfo`: what to run. With `shell` (the default) `value` runs under `/bin/sh -c`;
/// without it `value` is the executable (or, in a docker container, absent: the image's
/// entrypoint) and `arguments` its argv.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<CommandUri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CommandInfo {
    /// `shell` with its proto default, `true`.
    pub fn shell(&self) -> bool {
        self.shell.unwrap_or(true)
    }

    /// A shell command.
    pub fn shell_command(value: impl Into<String>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }
}

/// `CommandInfo.URI`: something to fetch into the sandbox before the command runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandUri {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<bool>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

/// `Environment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<EnvironmentVariable>,
}

impl Environment {
    /// VALUE variables as `(name, value)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.variables
            .iter()
            .filter_map(|v| Some((v.name.as_str(), v.value.as_deref()?)))
    }
}

/// `Environment.Variable`. Only `VALUE` variables carry a `value`; `SECRET` ones (a secret
/// reference berth does not model) do not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    pub name: String,
    /// Default VALUE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<VariableType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl EnvironmentVariable {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            r#type: None,
            value: Some(value.into()),
        }
    }
}

proto_enum! {
    /// `Environment.Variable.Type`.
    pub enum VariableType fallback Unknown {
        Unknown = "UNKNOWN",
        Value = "VALUE",
        Secret = "SECRET",
    }
}

/// `ExecutorInfo`: a custom executor (LAUNCH) or the default executor (LAUNCH_GROUP).
///
/// berth does not run Mesos executors; it models enough to recognise one and say so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ExecutorType>,
    pub executor_id: ExecutorId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Base64Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_period: Option<DurationInfo>,
}

proto_enum! {
    /// `ExecutorInfo.Type`.
    pub enum ExecutorType fallback Unknown {
        Unknown = "UNKNOWN",
        Default = "DEFAULT",
        Custom = "CUSTOM",
    }
}

/// `KillPolicy`: how long to wait between the graceful and the forcible kill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

/// `HealthCheck`: one of `command`, `http` or `tcp`, chosen by `type`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<HealthCheckType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// Default 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Default 3.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_integer"
    )]
    pub consecutive_failures: Option<u32>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<f64>,
}

proto_enum! {
    /// `HealthCheck.Type`.
    pub enum HealthCheckType fallback Unknown {
        Unknown = "UNKNOWN",
        Command = "COMMAND",
        Http = "HTTP",
        Tcp = "TCP",
    }
}

/// `HealthCheck.HTTPCheckInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheck {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub protocol: Option<IpProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(deserialize_with = "integer")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u32>,
}

/// `HealthCheck.TCPCheckInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCheck {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub protocol: Option<IpProtocol>,
    #[serde(deserialize_with = "integer")]
    pub port: u32,
}

// ---------------------------------------------------------------------------------------------
// Containers

/// `ContainerInfo`: the container a task runs in. `type` says which of `docker` and `mesos`
/// applies.
///
/// Not modelled: `linux_info`, `rlimit_info`, `tty_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub r#type: ContainerType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesos: Option<MesosInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
}

proto_enum! {
    /// `ContainerInfo.Type`.
    pub enum ContainerType {
        Docker = "DOCKER",
        Mesos = "MESOS",
    }
}

/// `ContainerInfo.DockerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerInfo {
    pub image: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub network: Option<DockerNetwork>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull_image: Option<bool>,
}

impl DockerInfo {
    /// `network` with its proto default, HOST.
    pub fn network(&self) -> DockerNetwork {
        self.network.unwrap_or(DockerNetwork::Host)
    }
}

proto_enum! {
    /// `ContainerInfo.DockerInfo.Network`.
    pub enum DockerNetwork {
        Host = "HOST",
        Bridge = "BRIDGE",
        None = "NONE",
        User = "USER",
    }
}

/// `DockerInfo.PortMapping` and `NetworkInfo.PortMapping` (the same shape): a host port the
/// task must hold in its resources, mapped to a container port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(deserialize_with = "integer")]
    pub host_port: u32,
    #[serde(deserialize_with = "integer")]
    pub container_port: u32,
    /// `tcp` (the default) or `udp`; some frameworks send `tcp,udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// `ContainerInfo.MesosInfo`: the Mesos containerizer, optionally with an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MesosInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

/// `Image`: a container image for the Mesos containerizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub r#type: ImageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appc: Option<AppcImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerImage>,
    /// Default true: use a cached copy when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

proto_enum! {
    /// `Image.Type`.
    pub enum ImageType {
        Appc = "APPC",
        Docker = "DOCKER",
    }
}

/// `Image.Appc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppcImage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `Image.Docker`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerImage {
    pub name: String,
}

/// `Volume`: a host path (or sandbox path) mounted into the container.
///
/// Not modelled: `image` and `source` (docker volumes, secrets, CSI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub mode: VolumeMode,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
}

proto_enum! {
    /// `Volume.Mode`.
    pub enum VolumeMode {
        /// Read-write.
        Rw = "RW",
        /// Read-only.
        Ro = "RO",
    }
}

/// `NetworkInfo`: a network a container joins (in a task) or the addresses it got (in a
/// status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
}

/// `NetworkInfo.IPAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAddress {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub protocol: Option<IpProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

proto_enum! {
    /// `NetworkInfo.Protocol`.
    pub enum IpProtocol {
        Ipv4 = "IPv4",
        Ipv6 = "IPv6",
    }
}

/// `ContainerStatus`: what the container got, reported in a status (its IP, mostly).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<ContainerId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_integer"
    )]
    pub executor_pid: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Task status

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
