//! Cluster commands: create, update and delete (which leaves it INACTIVE).

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::capacity::StrategyItem;
use crate::entity::{Name, Tag};

/// A new cluster; answered with the existing one, unchanged, if it is ACTIVE (as ECS does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateCluster {
    pub name: Name,
    pub settings: Vec<api::ClusterSetting>,
    pub configuration: Option<api::ClusterConfiguration>,
    pub service_connect_defaults: Option<api::ClusterServiceConnectDefaults>,
    pub tags: Vec<Tag>,
    /// Capacity providers to attach, and the default strategy, checked as
    /// PutClusterCapacityProviders checks them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_providers: Vec<Name>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_strategy: Vec<StrategyItem>,
}

/// Marks an empty cluster INACTIVE; refused while it has services, tasks or instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteCluster {
    pub name: Name,
}

/// Replaces the given parts; `None` leaves a part as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateCluster {
    pub name: Name,
    pub settings: Option<Vec<api::ClusterSetting>>,
    pub configuration: Option<api::ClusterConfiguration>,
    pub service_connect_defaults: Option<api::ClusterServiceConnectDefaults>,
}
