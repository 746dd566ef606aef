//! Housekeeping: what is finished is forgotten after a while, by a logged command like any
//! other, so every replica forgets the same things at the same index.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Forgets what has been finished long enough: STOPPED tasks, INACTIVE instances, services
/// and capacity providers, and deleted task definitions older than the cut-offs, and expired
/// client tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expire {
    pub stopped_before: Millis,
    pub inactive_before: Millis,
}
