//! What a master offers and a framework does with it: values, resources and attributes,
//! offers, the operations of an ACCEPT, and the filters of a DECLINE.

use super::*;

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
