//! Capacity provider commands: create, update, delete, and attaching providers to a cluster.

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::capacity::StrategyItem;
use crate::entity::{Name, Tag};

/// A new capacity provider (validated by the proposer). Refused while an ACTIVE one has the
/// name; a deleted (INACTIVE) one's name may be taken again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateCapacityProvider {
    pub name: Name,
    pub auto_scaling_group: api::AutoScalingGroupProvider,
    pub tags: Vec<Tag>,
}

/// Replaces the given parts of an ACTIVE provider's Auto Scaling group settings; `None`
/// leaves a part as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateCapacityProvider {
    pub name: Name,
    pub managed_scaling: Option<api::ManagedScaling>,
    pub managed_termination_protection: Option<String>,
    pub managed_draining: Option<String>,
}

/// Marks a provider INACTIVE; refused while an ACTIVE cluster has it attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteCapacityProvider {
    pub name: Name,
}

/// Sets the providers attached to a cluster and its default strategy, both replaced whole.
/// Every provider must be ACTIVE, the strategy may only name attached ones, and a provider
/// may be detached only while no live task of the cluster and no service's strategy uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutClusterCapacityProviders {
    pub cluster: Name,
    pub providers: Vec<Name>,
    pub default_strategy: Vec<StrategyItem>,
}
