//! Mesos frameworks and their offers, as berth's state holds them.
//!
//! A framework is durable state (it survives server restarts and fails over within its
//! timeout). An offer is a *hold*: while outstanding it reserves its CPU, memory and ports on
//! its instance in the same accounting every scheduler's commit check reads, so RunTask,
//! services and other frameworks cannot take what a framework was promised. Accepting an
//! offer swaps the hold for the launched tasks in one command; declining, rescinding or
//! timing it out releases it. The Mesos wire shapes live in `berth-mesos`; this module holds
//! only what the state machine needs to decide.

use serde::{Deserialize, Serialize};

use crate::entity::{Name, Reservation};
use crate::id::{InstanceId, OfferId};
use crate::time::Millis;

/// A subscribed Mesos framework.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Framework {
    /// The framework id berth assigned at its first SUBSCRIBE.
    pub id: String,
    /// The berth cluster it schedules on.
    pub cluster: Name,
    pub name: String,
    pub user: String,
    pub roles: Vec<String>,
    pub hostname: Option<String>,
    pub principal: Option<String>,
    pub webui_url: Option<String>,
    pub capabilities: Vec<String>,
    pub checkpoint: bool,
    /// How long its tasks survive a disconnection, in seconds.
    pub failover_timeout: f64,
    pub connected: bool,
    pub disconnected_at: Option<Millis>,
    pub registered_at: Millis,
    pub version: u64,
    /// The authenticated principal (actor) that registered it: only it may subscribe as
    /// this framework again, or act for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Framework {
    /// The task group of this framework's tasks.
    pub fn group(&self) -> String {
        format!("mesos:{}", self.name)
    }
}

/// An outstanding offer: resources of one instance held for one framework.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: OfferId,
    pub framework: String,
    pub cluster: Name,
    pub instance: InstanceId,
    /// What the offer holds: CPU units, MiB, and TCP/UDP host ports (as static ports).
    pub hold: Reservation,
    pub created_at: Millis,
    pub version: u64,
}
