//! Service discovery commands: namespaces and discovery services are created and deleted
//! whole (Cloud Map's API updates little else, and berth not at all yet).

use serde::{Deserialize, Serialize};

use crate::discovery::{DiscoveryService, Namespace};
use crate::entity::Name;

/// A new namespace; refused (Conflict) when its name is taken, unless by a namespace made
/// with the same `creator_request_id` (a retry), which is the answer then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateNamespace {
    pub namespace: Namespace,
}

/// Removes a namespace; refused (ResourceInUse) while it holds discovery services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteNamespace {
    pub id: Name,
}

/// A new discovery service in an existing namespace; refused (Conflict) when the namespace
/// has one of that name, unless made with the same `creator_request_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateDiscoveryService {
    pub service: DiscoveryService,
}

/// Removes a discovery service; refused (ResourceInUse) while an ECS service that is not
/// INACTIVE registers in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteDiscoveryService {
    pub id: Name,
}
