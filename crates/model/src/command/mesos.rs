//! Mesos framework and offer commands. An offer is a hold on its instance's resources, so
//! making, accepting and releasing offers are writes like placements.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::entity::Task;
use crate::id::OfferId;
use crate::mesos::{Framework, Offer};

/// A Mesos framework subscribed: new, or re-subscribing with its id (its info replaced).
/// Either way it is connected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeFramework {
    pub framework: Arc<Framework>,
}

/// A framework's event stream closed: it and its tasks stay for its failover timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkDisconnected {
    pub id: String,
}

/// TEARDOWN, or a failover timeout that ran out: the framework's offers are released, its
/// live tasks are told to stop with `reason`, and it is forgotten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveFramework {
    pub id: String,
    pub reason: String,
}

/// Offers, each holding its resources on its instance. Each is re-checked against the
/// newest state like a placement; those that no longer fit are not made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MakeOffers {
    pub offers: Vec<Offer>,
}

/// Offers made, and the ids of those that no longer fit, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffersMade {
    pub made: Vec<Arc<Offer>>,
    pub rejected: Vec<(OfferId, String)>,
}

/// DECLINE, RESCIND or an offer timeout: the offers' holds are released. Unknown ids are
/// skipped (an offer may already have been accepted or released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveOffers {
    pub ids: Vec<OfferId>,
}

/// ACCEPT with LAUNCH: `offers` (outstanding, of `framework`, all on one instance) are
/// consumed and `tasks` placed on that instance, all or nothing. The tasks together must
/// fit within what the offers held; what they leave unused is released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptOffers {
    pub framework: String,
    pub offers: Vec<OfferId>,
    pub tasks: Vec<Task>,
}
