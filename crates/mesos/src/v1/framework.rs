//! Who a framework is (`FrameworkInfo`, sent in SUBSCRIBE) and who the master is
//! (`MasterInfo`, `VersionInfo`).

use super::*;

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
