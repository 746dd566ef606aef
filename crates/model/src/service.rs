//! Services: a task definition kept running at a desired count (REPLICA) or once per instance
//! (DAEMON), with the deployments that move it from one revision to the next.
//!
//! A service is one stored value. Its tasks are ordinary tasks in group `service:<name>` with
//! `startedBy` set to the id of the deployment that started them, so counts per deployment are
//! read from the state's indexes, never stored twice. What the service keeps for itself is
//! what cannot be derived: its configuration, its deployments (newest, PRIMARY, first) and its
//! events (newest first, at most [`MAX_EVENTS`]).

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::capacity::StrategyItem;
use crate::entity::{Name, Tag, wire_enum};
use crate::time::Millis;

/// Events a service keeps, as ECS does.
pub const MAX_EVENTS: usize = 100;

wire_enum!(
    /// A service's status: DRAINING after DeleteService until its tasks are gone, then
    /// INACTIVE.
    ServiceStatus { Active = "ACTIVE", Draining = "DRAINING", Inactive = "INACTIVE" }
);

wire_enum!(
    /// How a service decides how many tasks to run.
    SchedulingStrategy { Replica = "REPLICA", Daemon = "DAEMON" }
);

wire_enum!(
    /// A deployment's place in its service: the newest is PRIMARY, older ones still holding
    /// tasks are ACTIVE.
    DeploymentStatus { Primary = "PRIMARY", Active = "ACTIVE", Inactive = "INACTIVE" }
);

wire_enum!(
    /// How a deployment's rollout is going.
    RolloutState { InProgress = "IN_PROGRESS", Completed = "COMPLETED", Failed = "FAILED" }
);

/// The deployment circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

/// How far a deployment may go below and above the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentConfig {
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub circuit_breaker: CircuitBreaker,
}

impl DeploymentConfig {
    /// ECS's defaults: REPLICA 100/200, DAEMON 0/100; circuit breaker off.
    pub fn default_for(strategy: SchedulingStrategy) -> Self {
        let (minimum_healthy_percent, maximum_percent) = match strategy {
            SchedulingStrategy::Replica => (100, 200),
            SchedulingStrategy::Daemon => (0, 100),
        };
        Self {
            minimum_healthy_percent,
            maximum_percent,
            circuit_breaker: CircuitBreaker {
                enable: false,
                rollback: false,
            },
        }
    }

    /// Fewest healthy tasks a deployment of `desired` may leave running: rounded up, as ECS
    /// rounds `minimumHealthyPercent`.
    pub fn min_healthy(&self, desired: u32) -> u32 {
        (u64::from(desired) * u64::from(self.minimum_healthy_percent)).div_ceil(100) as u32
    }

    /// Most tasks (pending or running) a deployment of `desired` may run at once: rounded
    /// down, as ECS rounds `maximumPercent`, and never below `desired`.
    pub fn max_running(&self, desired: u32) -> u32 {
        ((u64::from(desired) * u64::from(self.maximum_percent)) / 100).max(u64::from(desired))
            as u32
    }
}

/// The circuit breaker's failure threshold for a deployment of `desired` tasks: half of it,
/// rounded up, but at least 3 and at most 200.
pub fn failure_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// One revision being rolled out (PRIMARY) or rolled away from (ACTIVE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `ecs-svc/` and 19 digits: the `startedBy` of every task it starts.
    pub id: String,
    pub status: DeploymentStatus,
    pub family: Name,
    pub revision: u32,
    pub desired_count: u32,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: Option<String>,
    /// Tasks of this deployment that stopped without being asked to (circuit breaker input).
    pub failed_tasks: u32,
    /// The deployment this one restores, when the circuit breaker made it as a rollback.
    #[serde(default)]
    pub rollback_of: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One line of a service's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    pub id: String,
    pub at: Millis,
    pub message: String,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub cluster: Name,
    pub name: Name,
    pub status: ServiceStatus,
    pub scheduling_strategy: SchedulingStrategy,
    /// REPLICA: the count to hold. DAEMON: the number of instances it should be on, as the
    /// reconciler last counted them.
    pub desired_count: u32,
    pub deployment_configuration: DeploymentConfig,
    pub placement_constraints: Vec<api::PlacementConstraint>,
    pub placement_strategy: Vec<api::PlacementStrategy>,
    pub health_check_grace_period_seconds: Option<u32>,
    /// Newest first: the PRIMARY, then ACTIVE ones that still have tasks.
    pub deployments: Vec<Deployment>,
    /// Newest first, at most [`MAX_EVENTS`].
    pub events: Vec<ServiceEvent>,
    /// The steady-state event has been posted and nothing has moved since.
    pub steady: bool,
    pub enable_ecs_managed_tags: bool,
    pub propagate_tags: Option<String>,
    pub enable_execute_command: bool,
    pub tags: Vec<Tag>,
    pub created_at: Millis,
    /// When DeleteService was called.
    pub deleted_at: Option<Millis>,
    /// A digest of the CreateService request, so that a retry with the same parameters is
    /// answered with the service instead of an error.
    pub request_digest: u64,
    pub version: u64,
    /// The actor that created it (ECS `createdBy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// How its tasks are split between capacity providers (its own, or the cluster's default
    /// when it was created); empty: anywhere in the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_provider_strategy: Vec<StrategyItem>,
}

impl Service {
    /// The newest deployment, the one new tasks come from.
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments.first()
    }

    /// The task group every task of this service is in.
    pub fn group(&self) -> String {
        group_of(&self.name)
    }

    /// Adds an event, newest first, keeping at most [`MAX_EVENTS`].
    pub fn post(&mut self, id: String, at: Millis, message: String) {
        self.events.insert(0, ServiceEvent { id, at, message });
        self.events.truncate(MAX_EVENTS);
    }
}

/// The task group of service `name`.
pub fn group_of(name: &str) -> String {
    format!("service:{name}")
}

/// The service name in a task group, when the group is a service's.
pub fn service_of_group(group: &str) -> Option<&str> {
    group.strip_prefix("service:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_ecs_rounds_them() {
        let c = |min, max| DeploymentConfig {
            minimum_healthy_percent: min,
            maximum_percent: max,
            circuit_breaker: CircuitBreaker {
                enable: false,
                rollback: false,
            },
        };
        // minimumHealthyPercent rounds up, maximumPercent rounds down.
        assert_eq!(c(50, 150).min_healthy(3), 2);
        assert_eq!(c(50, 150).max_running(3), 4);
        assert_eq!(c(100, 200).min_healthy(3), 3);
        assert_eq!(c(100, 200).max_running(3), 6);
        assert_eq!(c(0, 100).min_healthy(5), 0);
        assert_eq!(c(75, 125).min_healthy(10), 8);
        assert_eq!(c(75, 125).max_running(10), 12);
        assert_eq!(c(33, 133).min_healthy(1), 1);
        assert_eq!(c(33, 133).max_running(1), 1);
        assert_eq!(c(100, 100).max_running(0), 0);
    }

    #[test]
    fn failure_threshold_is_half_clamped_to_3_and_200() {
        assert_eq!(failure_threshold(1), 3);
        assert_eq!(failure_threshold(6), 3);
        assert_eq!(failure_threshold(7), 4);
        assert_eq!(failure_threshold(100), 50);
        assert_eq!(failure_threshold(1000), 200);
    }
}
