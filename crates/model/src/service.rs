//! Services: a task definition kept running at a desired count (REPLICA) or once per instance
//! (DAEMON), with the deployments that move it from one revision to the next.
//!
//! A service is one stored value. Its tasks are ordinary tasks in group `service:<name>` with
//! `startedBy` set to the id of the deployment that started them, so counts per deployment are
//! read from the state's indexes, never stored twice. What the service keeps for itself is
//! what cannot be derived: its configuration, its deployments (newest, PRIMARY, first) and its
//! events (newest first, at most [`MAX_EVENTS`]).
//!
//! A service with the EXTERNAL deployment controller has no deployments of its own: an outside
//! controller (a blue/green tool, a canary script) creates *task sets* — each a task definition
//! and a scale, a percentage of the service's desired count — shifts scale between them, names
//! the PRIMARY one and deletes the old. berth keeps each task set at its computed count; the
//! decisions of when to move are the controller's.

use berth_api::types as api;
use serde::{Deserialize, Serialize};

use crate::capacity::StrategyItem;
use crate::discovery::ServiceRegistry;
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

wire_enum!(
    /// Who deploys a service: berth's rolling deployments (ECS), or an outside controller
    /// through task sets (EXTERNAL).
    DeploymentControllerType { Ecs = "ECS", External = "EXTERNAL" }
);

wire_enum!(
    /// A task set's place in its service: PRIMARY serves production, ACTIVE does not yet (or
    /// any more), DRAINING is being stopped after DeleteTaskSet and disappears once empty.
    TaskSetStatus { Primary = "PRIMARY", Active = "ACTIVE", Draining = "DRAINING" }
);

wire_enum!(
    /// Whether a task set runs exactly its computed count of healthy tasks.
    StabilityStatus { SteadyState = "STEADY_STATE", Stabilizing = "STABILIZING" }
);

/// Task sets a service may hold at once (ECS: at most five per deployment).
pub const MAX_TASK_SETS: usize = 5;

/// A task set of an EXTERNAL service: tasks of one task definition, kept at `scale` percent of
/// the service's desired count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSet {
    /// `ecs-svc/` and 19 digits: the `startedBy` of every task it starts.
    pub id: String,
    pub status: TaskSetStatus,
    pub family: Name,
    pub revision: u32,
    /// The caller's own name for it (ECS `externalId`), not unique.
    pub external_id: Option<String>,
    /// Percent of the service's desired count, 0 to 100.
    pub scale: f64,
    /// How its tasks are split between capacity providers; empty: anywhere in the cluster.
    pub capacity_provider_strategy: Vec<StrategyItem>,
    pub stability_status: StabilityStatus,
    pub stability_status_at: Millis,
    pub tags: Vec<Tag>,
    /// CreateTaskSet's `clientToken`, so that a retry answers with this task set.
    pub client_token: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl TaskSet {
    /// Tasks it keeps for a service desiring `desired`: `scale` percent of it, rounded up as
    /// ECS rounds it (1.2 tasks is 2).
    pub fn computed_desired_count(&self, desired: u32) -> u32 {
        // Hundredths of a percent, so that 70 % of 10 is 7 and not 7.000000000000001 → 8.
        let basis_points = (self.scale.clamp(0.0, 100.0) * 100.0).round() as u64;
        (u64::from(desired) * basis_points).div_ceil(10_000) as u32
    }
}

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
    /// The rollback deployment that replaced this one when it failed or was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<String>,
    /// The deployments that were live when this one started (ECS's source revisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// How its tasks were split between capacity providers when it started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_provider_strategy: Vec<StrategyItem>,
    /// When its rollout reached COMPLETED or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
}

impl Deployment {
    /// Its status as ECS's deployment history reports it (`ServiceDeploymentStatus`), with the
    /// reason; `successor` is the rollback deployment that replaced it, if any, and `primary`
    /// whether it is still the one new tasks come from.
    pub fn history_status(&self, successor: Option<&Deployment>, primary: bool) -> &'static str {
        match (self.rollout_state, successor) {
            (RolloutState::Completed, _) => "SUCCESSFUL",
            (RolloutState::InProgress, _) if primary => "IN_PROGRESS",
            // Superseded by a newer deployment before it completed.
            (RolloutState::InProgress, _) => "STOPPED",
            (RolloutState::Failed, Some(r)) => match r.rollout_state {
                RolloutState::InProgress => "ROLLBACK_IN_PROGRESS",
                RolloutState::Completed => "ROLLBACK_SUCCESSFUL",
                RolloutState::Failed => "ROLLBACK_FAILED",
            },
            (RolloutState::Failed, None) => "STOPPED",
        }
    }
}

/// Finished deployments a service keeps for its history (ListServiceDeployments), newest
/// first; the rest of its past is in the entity history (`GET /v1/history`).
pub const MAX_PAST_DEPLOYMENTS: usize = 20;

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
    /// ECS: berth's rolling deployments (`deployments`). EXTERNAL: the caller's task sets.
    #[serde(default = "ecs", skip_serializing_if = "is_ecs")]
    pub deployment_controller: DeploymentControllerType,
    /// An EXTERNAL service's task sets, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_sets: Vec<TaskSet>,
    /// Deployments that have left `deployments` (drained), newest first, at most
    /// [`MAX_PAST_DEPLOYMENTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_deployments: Vec<Deployment>,
    /// Where its tasks are registered for discovery (ECS `serviceRegistries`; at most one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_registries: Vec<ServiceRegistry>,
}

fn ecs() -> DeploymentControllerType {
    DeploymentControllerType::Ecs
}

fn is_ecs(c: &DeploymentControllerType) -> bool {
    *c == DeploymentControllerType::Ecs
}

impl Service {
    /// Whether an outside controller deploys it through task sets.
    pub fn external(&self) -> bool {
        self.deployment_controller == DeploymentControllerType::External
    }

    /// The task set serving production, if one was named.
    pub fn primary_task_set(&self) -> Option<&TaskSet> {
        self.task_sets
            .iter()
            .find(|t| t.status == TaskSetStatus::Primary)
    }

    /// The task definition new tasks are made from: the PRIMARY deployment's, or the PRIMARY
    /// task set's.
    pub fn task_definition(&self) -> Option<(&Name, u32)> {
        match self.deployment_controller {
            DeploymentControllerType::Ecs => self.primary().map(|d| (&d.family, d.revision)),
            DeploymentControllerType::External => {
                self.primary_task_set().map(|t| (&t.family, t.revision))
            }
        }
    }

    /// The newest deployment, the one new tasks come from.
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments.first()
    }

    /// The task group every task of this service is in.
    pub fn group(&self) -> String {
        group_of(&self.name)
    }

    /// The deployment `id`, live or past.
    pub fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.deployments
            .iter()
            .chain(&self.past_deployments)
            .find(|d| d.id == id)
    }

    /// Moves deployments leaving `deployments` (newest first, as they were there) to the
    /// front of the past, keeping the newest [`MAX_PAST_DEPLOYMENTS`].
    pub fn retire(&mut self, gone: Vec<Deployment>) {
        self.past_deployments.splice(0..0, gone);
        self.past_deployments.truncate(MAX_PAST_DEPLOYMENTS);
    }

    /// Replaces the PRIMARY deployment, which failed (or was stopped), with a rollback
    /// deployment `id` of the newest COMPLETED one other than `not` (a rollback does not roll
    /// back to what it was restoring); `reason` says why, given the restored deployment's id.
    /// Returns that id, or `None` (and changes nothing) when there is none to restore.
    pub fn roll_back(
        &mut self,
        id: String,
        reason: impl FnOnce(&str) -> String,
        not: Option<&str>,
        now: Millis,
    ) -> Option<String> {
        let target = self.deployments[1..]
            .iter()
            .find(|d| d.rollout_state == RolloutState::Completed && not != Some(d.id.as_str()))
            .cloned()?;
        let sources = self.deployments.iter().map(|d| d.id.clone()).collect();
        let failed = &mut self.deployments[0];
        failed.status = DeploymentStatus::Active;
        failed.rolled_back_by = Some(id.clone());
        self.deployments.insert(
            0,
            Deployment {
                id,
                status: DeploymentStatus::Primary,
                family: target.family.clone(),
                revision: target.revision,
                desired_count: self.desired_count,
                rollout_state: RolloutState::InProgress,
                rollout_state_reason: Some(reason(&target.id)),
                rollback_of: Some(target.id.clone()),
                failed_tasks: 0,
                created_at: now,
                updated_at: now,
                rolled_back_by: None,
                sources,
                capacity_provider_strategy: target.capacity_provider_strategy.clone(),
                finished_at: None,
            },
        );
        Some(target.id)
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
    fn a_task_sets_count_is_its_scale_of_the_service_rounded_up() {
        let set = |scale| TaskSet {
            id: "ecs-svc/1".into(),
            status: TaskSetStatus::Active,
            family: "web".into(),
            revision: 1,
            external_id: None,
            scale,
            capacity_provider_strategy: Vec::new(),
            stability_status: StabilityStatus::Stabilizing,
            stability_status_at: Millis(0),
            tags: Vec::new(),
            client_token: None,
            created_at: Millis(0),
            updated_at: Millis(0),
        };
        assert_eq!(set(100.0).computed_desired_count(10), 10);
        assert_eq!(set(0.0).computed_desired_count(10), 0);
        assert_eq!(set(70.0).computed_desired_count(10), 7);
        assert_eq!(set(12.0).computed_desired_count(10), 2, "1.2 rounds up");
        assert_eq!(set(33.3).computed_desired_count(3), 1);
        assert_eq!(set(50.0).computed_desired_count(3), 2);
        assert_eq!(set(0.01).computed_desired_count(1), 1);
        assert_eq!(set(100.0).computed_desired_count(0), 0);
    }

    #[test]
    fn deployments_report_ecs_history_statuses() {
        let d = |rollout| Deployment {
            id: "ecs-svc/1".into(),
            status: DeploymentStatus::Primary,
            family: "web".into(),
            revision: 1,
            desired_count: 1,
            rollout_state: rollout,
            rollout_state_reason: None,
            failed_tasks: 0,
            rollback_of: None,
            created_at: Millis(0),
            updated_at: Millis(0),
            rolled_back_by: None,
            sources: Vec::new(),
            capacity_provider_strategy: Vec::new(),
            finished_at: None,
        };
        use RolloutState::*;
        assert_eq!(d(Completed).history_status(None, false), "SUCCESSFUL");
        assert_eq!(d(InProgress).history_status(None, true), "IN_PROGRESS");
        assert_eq!(d(InProgress).history_status(None, false), "STOPPED");
        assert_eq!(d(Failed).history_status(None, true), "STOPPED");
        for (rollback, expected) in [
            (InProgress, "ROLLBACK_IN_PROGRESS"),
            (Completed, "ROLLBACK_SUCCESSFUL"),
            (Failed, "ROLLBACK_FAILED"),
        ] {
            assert_eq!(
                d(Failed).history_status(Some(&d(rollback)), false),
                expected
            );
        }
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
