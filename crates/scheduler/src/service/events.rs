//! Service events in ECS's wording. Scripts written for ECS match on these sentences (and
//! `aws ecs wait services-stable` users read them), so the wording is ECS's, with berth's
//! detail added after it where ECS would leave a person guessing.

use berth_model::TaskId;
use berth_model::command::FailureReason;

use crate::engine::InstanceRejection;

fn ids(tasks: &[TaskId]) -> String {
    tasks
        .iter()
        .map(|t| format!("(task {t})"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn steady(service: &str) -> String {
    format!("(service {service}) has reached a steady state.")
}

pub fn started(service: &str, tasks: &[TaskId]) -> String {
    format!(
        "(service {service}) has started {} tasks: {}.",
        tasks.len(),
        ids(tasks)
    )
}

pub fn stopped(service: &str, tasks: &[TaskId]) -> String {
    format!(
        "(service {service}) has stopped {} running tasks: {}.",
        tasks.len(),
        ids(tasks)
    )
}

pub fn unhealthy(service: &str, task: TaskId) -> String {
    format!("(service {service}) (task {task}) failed container health checks.")
}

pub fn completed(service: &str, deployment: &str) -> String {
    format!("(service {service}) (deployment {deployment}) deployment completed.")
}

pub fn failed(service: &str, deployment: &str) -> String {
    format!(
        "(service {service}) (deployment {deployment}) deployment failed: tasks failed to start."
    )
}

pub fn rolling_back(service: &str, deployment: &str, to: &str) -> String {
    format!(
        "(service {service}) (deployment {deployment}) rolling back to deployment {to}: the deployment circuit breaker tripped."
    )
}

pub fn throttled(service: &str) -> String {
    format!(
        "(service {service}) is unable to consistently start tasks successfully. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
    )
}

/// A rollout the deployment configuration leaves no room for: `min_healthy` (rounded up) of
/// `desired` must stay healthy and at most `max_running` (rounded down) may run. Both at 100
/// is the usual case; one task under 50/150 is another.
pub fn stuck(
    service: &str,
    desired: u32,
    minimum_percent: u32,
    maximum_percent: u32,
    min_healthy: u32,
    max_running: u32,
) -> String {
    format!(
        "(service {service}) is unable to deploy: minimumHealthyPercent {minimum_percent} keeps {min_healthy} of {desired} tasks running and maximumPercent {maximum_percent} allows no more than {max_running}, so no task can be stopped before its replacement is started, nor started before one is stopped. Lower minimumHealthyPercent or raise maximumPercent."
    )
}

/// Why the closest instance could not take the task, as ECS says it.
fn lacked(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::ResourceCpu => "has insufficient CPU units available",
        FailureReason::ResourceMemory => "has insufficient memory available",
        FailureReason::ResourcePorts | FailureReason::ResourcePortsUdp => {
            "is already using a port required by your task"
        }
        FailureReason::ResourceGpu => "has insufficient GPU available",
        FailureReason::Attribute => "is missing an attribute required by your task",
        FailureReason::Agent => "encountered error \"AGENT\"",
        FailureReason::Missing | FailureReason::Inactive => "is not ACTIVE",
    }
}

/// Why a task of the service could not be placed: the closest instance and what it lacked.
pub fn unplaceable(service: &str, closest: Option<&InstanceRejection>) -> String {
    const PREFIX: &str =
        "was unable to place a task because no container instance met all of its requirements.";
    match closest {
        None => format!(
            "(service {service}) {PREFIX} Reason: No Container Instances were found in your cluster."
        ),
        Some(r) => format!(
            "(service {service}) {PREFIX} The closest matching (container-instance {}) {}: {}. For more information, see the Troubleshooting section.",
            r.instance,
            lacked(r.reason),
            r.detail.trim_end_matches('.')
        ),
    }
}

/// A capacity provider's share of the service has no instance to go to: the provider has none
/// in the cluster (an external autoscaler reading its reservation gauge adds them).
pub fn provider_empty(service: &str, provider: &str) -> String {
    format!(
        "(service {service}) was unable to place a task because capacity provider {provider} has no container instances in the cluster. Register instances with the attribute ecs.capacity-provider={provider}."
    )
}

/// Scale-in or a deployment left `tasks` running because they are protected (until their
/// protection lapses).
pub fn protected(service: &str, tasks: &[TaskId]) -> String {
    format!(
        "(service {service}) was unable to stop {} tasks because they are protected from scale-in: {}. They stop once their protection expires or is removed.",
        tasks.len(),
        ids(tasks)
    )
}
