//! Tagging any resource by its ARN.

use serde::{Deserialize, Serialize};

use crate::arn::ResourceArn;
use crate::entity::Tag;

/// Adds tags to a resource, replacing the values of keys it already has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagResource {
    pub resource: ResourceArn,
    pub tags: Vec<Tag>,
}

/// Removes the tags with these keys from a resource; absent keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UntagResource {
    pub resource: ResourceArn,
    pub keys: Vec<String>,
}
