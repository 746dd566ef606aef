//! What the UI's overview shows, computed from one state snapshot: a pure function, so the page
//! is tested without a server and costs one pass over each cluster's tasks.

use std::collections::BTreeMap;

use berth_model::entity::{InstanceStatus, TaskStatus};
use berth_model::service::{DeploymentStatus, RolloutState, Service, ServiceStatus};
use berth_state::{State, TaskFilter};

/// Instances listed per cluster; the rest are counted.
pub const INSTANCES_SHOWN: usize = 200;

/// The whole page's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// The state index the page shows: the live updates compare against it.
    pub index: u64,
    pub clusters: Vec<ClusterView>,
    /// Clusters the viewer may not describe (counted, not shown).
    pub hidden_clusters: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    pub name: String,
    pub status: &'static str,
    /// Tasks by last status, in lifecycle order; only statuses some task has.
    pub tasks: Vec<(&'static str, u32)>,
    pub instances: Vec<InstanceView>,
    /// Registered instances beyond [`INSTANCES_SHOWN`].
    pub more_instances: usize,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    pub id: String,
    pub status: &'static str,
    pub connected: bool,
    pub cpu_used: i64,
    pub cpu_total: i64,
    pub memory_used: i64,
    pub memory_total: i64,
    pub running: u32,
    pub pending: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub name: String,
    /// steady, deploying, failed or draining.
    pub health: &'static str,
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    pub deployments: Vec<DeploymentView>,
    /// The newest event's message, if any.
    pub last_event: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentView {
    pub id: String,
    pub status: &'static str,
    pub rollout: &'static str,
    /// Why the rollout is in its state (the circuit breaker's verdict, for one).
    pub rollout_reason: Option<String>,
    pub task_definition: String,
    pub desired: u32,
    pub running: u32,
    pub pending: u32,
    /// Tasks of the deployment that stopped on their own (what the circuit breaker counts).
    pub failed: u32,
}

/// The overview of every cluster `visible` admits.
pub fn overview(state: &State, visible: impl Fn(&str) -> bool) -> Overview {
    let mut clusters = Vec::new();
    let mut hidden_clusters = 0;
    for cluster in state.clusters_after(None) {
        if !visible(&cluster.name) {
            hidden_clusters += 1;
            continue;
        }
        clusters.push(cluster_view(state, &cluster.name, cluster.status.as_str()));
    }
    Overview {
        index: state.index(),
        clusters,
        hidden_clusters,
    }
}

/// Adds a task of `status` to (running, pending) counts.
pub(super) fn count_live(counts: &mut (u32, u32), status: TaskStatus) {
    match status {
        TaskStatus::Running => counts.0 += 1,
        s if s < TaskStatus::Running => counts.1 += 1,
        _ => {}
    }
}

fn cluster_view(state: &State, name: &str, status: &'static str) -> ClusterView {
    // One pass over the cluster's tasks: counts by status, and by who started them.
    let mut by_status: BTreeMap<TaskStatus, u32> = BTreeMap::new();
    let mut by_starter: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let filter = TaskFilter::default();
    for task in state.tasks_after(name, &filter, None) {
        *by_status.entry(task.last_status).or_default() += 1;
        if let Some(starter) = task.started_by.as_deref() {
            count_live(by_starter.entry(starter).or_default(), task.last_status);
        }
    }
    let tasks = TaskStatus::ALL
        .iter()
        .filter_map(|s| by_status.get(s).map(|n| (s.as_str(), *n)))
        .collect();

    let mut instances = Vec::new();
    let mut more_instances = 0;
    for i in state.instances_after(name, None) {
        if i.status == InstanceStatus::Inactive {
            continue;
        }
        if instances.len() == INSTANCES_SHOWN {
            more_instances += 1;
            continue;
        }
        let usage = state.usage(i.id);
        instances.push(InstanceView {
            id: i.id.to_string(),
            status: i.status.as_str(),
            connected: i.agent_connected,
            cpu_used: usage.map_or(0, |u| u.cpu),
            cpu_total: i.resources.cpu,
            memory_used: usage.map_or(0, |u| u.memory),
            memory_total: i.resources.memory,
            running: usage.map_or(0, |u| u.running),
            pending: usage.map_or(0, |u| u.pending),
        });
    }

    let services = state
        .services_after(name, None)
        .filter(|s| s.status != ServiceStatus::Inactive)
        .map(|s| service_view(s, &by_starter))
        .collect();
    ClusterView {
        name: name.to_owned(),
        status,
        tasks,
        instances,
        more_instances,
        services,
    }
}

/// A service with its deployments' progress; `by_starter` holds (running, pending) per
/// deployment id.
pub(super) fn service_view(s: &Service, by_starter: &BTreeMap<&str, (u32, u32)>) -> ServiceView {
    let deployments: Vec<DeploymentView> = s
        .deployments
        .iter()
        .map(|d| {
            let (running, pending) = by_starter.get(d.id.as_str()).copied().unwrap_or_default();
            DeploymentView {
                id: d.id.clone(),
                status: d.status.as_str(),
                rollout: d.rollout_state.as_str(),
                rollout_reason: d.rollout_state_reason.clone(),
                task_definition: format!("{}:{}", d.family, d.revision),
                desired: d.desired_count,
                running,
                pending,
                failed: d.failed_tasks,
            }
        })
        // An EXTERNAL service's task sets show as its deployments do: their scale stands
        // where a rollout's reason would.
        .chain(s.task_sets.iter().map(|t| {
            let (running, pending) = by_starter.get(t.id.as_str()).copied().unwrap_or_default();
            DeploymentView {
                id: t.id.clone(),
                status: t.status.as_str(),
                rollout: t.stability_status.as_str(),
                rollout_reason: Some(format!("task set at {} % of the service", t.scale)),
                task_definition: format!("{}:{}", t.family, t.revision),
                desired: t.computed_desired_count(s.desired_count),
                running,
                pending,
                failed: 0,
            }
        }))
        .collect();
    let health =
        if s.status == ServiceStatus::Draining {
            "draining"
        } else if s.deployments.iter().any(|d| {
            d.status == DeploymentStatus::Primary && d.rollout_state == RolloutState::Failed
        }) {
            "failed"
        } else if s.steady {
            "steady"
        } else {
            "deploying"
        };
    ServiceView {
        name: s.name.to_string(),
        health,
        desired: s.desired_count,
        running: deployments.iter().map(|d| d.running).sum(),
        pending: deployments.iter().map(|d| d.pending).sum(),
        deployments,
        last_event: s.events.first().map(|e| e.message.clone()),
    }
}
