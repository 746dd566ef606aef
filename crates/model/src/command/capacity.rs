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

/// Changes the given parts of an ACTIVE provider's Auto Scaling group settings, as ECS does:
/// `None` leaves a part as it is, and within `managed_scaling` every member left out keeps
/// its value ([`crate::capacity::merge_scaling`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateCapacityProvider {
    pub name: Name,
    pub managed_scaling: Option<api::ManagedScaling>,
    pub managed_termination_protection: Option<String>,
    pub managed_draining: Option<String>,
}

/// Marks a provider INACTIVE. While an ACTIVE cluster has it attached, it stays ACTIVE and
/// the deletion is recorded as DELETE_FAILED with the reason, which is how ECS answers.
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
