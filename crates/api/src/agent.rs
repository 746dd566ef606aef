//! berth's native agent protocol: the parts ECS has no operation for.
//!
//! An agent speaks ECS where ECS has an operation (RegisterContainerInstance,
//! DiscoverPollEndpoint, SubmitTaskStateChange, SubmitContainerStateChange). Two things have
//! none, because ECS's own agent uses a private websocket for them:
//! - `GET /v1/agent/poll?cluster=C&instance=ID&since=V&wait=S`: the tasks assigned to an
//!   instance, answered once any of them (or the instance) changed past version `since`, or
//!   after `wait` seconds. Every poll is also the agent's heartbeat.
//! - `POST /v1/agent/health`: container health as the runtime sees it ([`HealthReport`]).
//! - `POST /v1/agent/join`: a join token (the request is signed with it) exchanged for the
//!   container instance's own credential ([`JoinRequest`], [`JoinResponse`]).
//! - `GET /v1/discover?revision=R&wait=S`: every DNS namespace's healthy instances
//!   ([`DiscoveryFeed`]), answered once they differ from revision `R`, or after `wait`
//!   seconds: what the agent's DNS server answers from.
//!
//! The server reaches the agent for one thing, container logs, signing with the instance's
//! own credential for the signing name [`AGENT_SIGNING_NAME`]; nobody else can.

use serde::{Deserialize, Serialize};

use crate::types::{TaskDefinition, TaskOverride};

/// Path of the long-poll for assignments.
pub const POLL_PATH: &str = "/v1/agent/poll";
/// Path of health reports.
pub const HEALTH_PATH: &str = "/v1/agent/health";
/// Path of the discovery feed (and, below it, `/{namespace}/{service}`: one service's
/// instances).
pub const DISCOVER_PATH: &str = "/v1/discover";
/// Path of the join-token exchange.
pub const JOIN_PATH: &str = "/v1/agent/join";
/// The attribute an agent registers its own HTTP address (for logs) with. Only an agent's own
/// credential may set it; the server keeps it as the instance's agent endpoint, not as an
/// attribute, and no other caller can write `berth.` attributes.
pub const ENDPOINT_ATTRIBUTE: &str = "berth.agent-endpoint";
/// The attribute naming the capacity provider an instance belongs to (`berth agent
/// --capacity-provider NAME` registers it): how berth knows a provider's instances, since it
/// has no Auto Scaling groups.
pub const CAPACITY_PROVIDER_ATTRIBUTE: &str = "ecs.capacity-provider";
/// The attribute an agent registers its log endpoint's certificate with: the SHA-256 of the
/// certificate (DER), 64 lowercase hex digits. Servers accept that certificate and no other
/// when they fetch logs. Like the endpoint, only the agent's own credential may set it.
pub const CERTIFICATE_ATTRIBUTE: &str = "berth.agent-certificate";
/// The SigV4 signing name of the agent's own endpoint (the server signs log requests with it).
pub const AGENT_SIGNING_NAME: &str = "berth-agent";
/// The agent's log endpoint: `{endpoint}/v1/logs/{task id}/{container}?follow=BOOL`.
pub const AGENT_LOGS_PATH: &str = "/v1/logs";

/// The host of an agent's `host:port` address (`[v6]:port` gives `v6`): the name its
/// certificate carries and what Mesos frameworks see as the agent's hostname.
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// What an agent sends to join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The cluster to join (`default` is created if it does not exist, as ECS's agent does).
    pub cluster: String,
}

/// The instance's own credential, answered once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub cluster: String,
    /// The container instance the credential is bound to (register it with this ARN).
    pub container_instance_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// What a poll answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResponse {
    /// The state's log index when this answer was made.
    pub index: u64,
    /// The highest version among the instance and its tasks: pass it back as `since`.
    pub version: u64,
    /// The instance's status (ACTIVE, DRAINING, INACTIVE...).
    pub instance_status: String,
    /// Every task on the instance that is not yet STOPPED.
    pub tasks: Vec<Assignment>,
}

/// One task for an agent to run (or to stop, when `desired_status` is STOPPED).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub task_arn: String,
    pub task_id: String,
    pub cluster: String,
    pub desired_status: String,
    pub last_status: String,
    /// The task's version (log index of its last change).
    pub version: u64,
    /// The agent already reported the task RUNNING once.
    pub started: bool,
    pub task_definition: TaskDefinition,
    pub overrides: Option<TaskOverride>,
    /// Every port mapping that binds a host port, with the host port the placement chose.
    pub ports: Vec<AssignedPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPort {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// Health of some containers of one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub cluster: String,
    /// Task ARN or id.
    pub task: String,
    pub containers: Vec<ContainerHealth>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerHealth {
    pub container_name: String,
    /// HEALTHY, UNHEALTHY or UNKNOWN.
    pub health_status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_agent_address() {
        assert_eq!(host_of("10.0.0.5:51678"), "10.0.0.5");
        assert_eq!(host_of("[::1]:51678"), "::1");
        assert_eq!(host_of("agent.example:1"), "agent.example");
        assert_eq!(host_of("agent.example"), "agent.example");
    }
}

/// What the agents' DNS servers answer: the healthy instances of every discovery service in a
/// DNS namespace, and a revision that changes whenever they do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryFeed {
    /// A digest of the rest: equal revisions, equal answers.
    pub revision: u64,
    pub services: Vec<DiscoveredService>,
}

/// One discovery service as DNS answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredService {
    /// Its namespace's name (`prod.berth`).
    pub namespace: String,
    /// Its own name (`web`): the service answers at `web.prod.berth`.
    pub name: String,
    /// TTL of its A records, if it answers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_ttl: Option<u32>,
    /// TTL of its SRV records, if it answers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv_ttl: Option<u32>,
    /// Its healthy instances, by id.
    pub instances: Vec<DiscoveredInstance>,
}

/// One healthy instance: a task, at its host's address and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredInstance {
    /// The task id: SRV records point at `<id>.<service>.<namespace>`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}
