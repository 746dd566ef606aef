//! Container instance commands: registration, ACTIVE/DRAINING, attributes, and the heartbeat
//! monitor's verdicts on their agents.

use std::collections::BTreeMap;

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::entity::{InstanceStatus, Name, Resources, Tag};
use crate::id::InstanceId;

/// Registers a new instance, or re-registers `id` when `reregister` (an agent restarting
/// with its saved ARN): resources, attributes and version info are replaced, tasks kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterContainerInstance {
    pub cluster: Name,
    pub id: InstanceId,
    pub reregister: bool,
    pub ec2_instance_id: Option<String>,
    pub resources: Resources,
    pub attributes: BTreeMap<String, Option<String>>,
    pub version_info: Option<api::VersionInfo>,
    pub tags: Vec<Tag>,
    /// Where the instance's own agent serves container logs, when the agent itself
    /// registered (nobody else can set it: the server fetches logs from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_endpoint: Option<String>,
    /// SHA-256 (hex) of the certificate the agent serves `agent_endpoint` with; set together
    /// with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_certificate: Option<String>,
}

/// Marks an instance INACTIVE. Refused while it has live tasks, unless `force`, which
/// orphans them (STOPPED here; their containers may still run on the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeregisterContainerInstance {
    pub cluster: Name,
    pub id: InstanceId,
    pub force: bool,
}

/// Sets instances ACTIVE or DRAINING.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateContainerInstancesState {
    pub cluster: Name,
    pub ids: Vec<InstanceId>,
    pub status: InstanceStatus,
}

/// Sets attributes on instances, all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutAttributes {
    pub cluster: Name,
    pub attributes: Vec<AttributeChange>,
}

/// Removes attributes from instances (by name; values are ignored), all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteAttributes {
    pub cluster: Name,
    pub attributes: Vec<AttributeChange>,
}

/// An attribute on a container instance (the only target type ECS has).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub instance: InstanceId,
    pub name: String,
    pub value: Option<String>,
}

/// The heartbeat monitor's verdict: these instances' agents went silent
/// (`connected: false`) or were heard from again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConnectivity {
    pub cluster: Name,
    pub ids: Vec<InstanceId>,
    pub connected: bool,
}

/// An agent stayed disconnected for the grace period: its tasks are STOPPED with `reason`,
/// so that schedulers can replace them. A no-op if it reconnected meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentLost {
    pub cluster: Name,
    pub id: InstanceId,
    pub reason: String,
}
