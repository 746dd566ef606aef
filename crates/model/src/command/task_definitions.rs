//! Task definition commands: register a revision, deregister it, delete revisions.

use std::sync::Arc;

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::entity::{Name, Requirements, Tag};

/// The next revision of `family`, validated and normalized by the API edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterTaskDefinition {
    pub family: Name,
    pub spec: Arc<api::TaskDefinition>,
    pub requirements: Requirements,
    pub tags: Vec<Tag>,
}

/// Marks an ACTIVE revision INACTIVE; an INACTIVE one is answered unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeregisterTaskDefinition {
    pub family: Name,
    pub revision: u32,
}

/// Marks INACTIVE revisions DELETE_IN_PROGRESS (an ACTIVE one fails: deregister it first);
/// `Expire` forgets them once no live task uses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteTaskDefinitions {
    pub revisions: Vec<(Name, u32)>,
}
