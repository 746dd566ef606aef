//! Service commands. A service is written whole, by whoever decided its new value on a
//! snapshot: the API edge or the service reconciler.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::service::Service;

/// A new service. Refused if an ACTIVE or DRAINING service of that name exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateService {
    pub service: Arc<Service>,
}

/// Replaces a service with a new value decided on a snapshot where its version was
/// `expected_version` (UpdateService, DeleteService and the service reconciler): refused
/// with a conflict if it changed since, so that no decision is made on a stale value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutService {
    pub service: Arc<Service>,
    pub expected_version: u64,
}
