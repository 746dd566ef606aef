//! The agent-facing operations: DiscoverPollEndpoint, SubmitTaskStateChange,
//! SubmitContainerStateChange.

use berth_api::EcsError;
use berth_api::types as api;
use berth_model::Millis;
use berth_model::command::{ContainerChange, TaskStateChange};
use berth_model::entity::TaskStatus;
use berth_model::validate::{self, required_str};

use super::instances::instance_ref;
use super::tasks::task_ref;
use super::{Ctx, cluster_param};
use crate::App;
use crate::agents::agent_owns_task;

fn status(value: Option<&str>, name: &str) -> Result<Option<TaskStatus>, EcsError> {
    value
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                EcsError::invalid(format!(
                    "'{}' is not a valid {name}; expected one of: PENDING, RUNNING, STOPPED, ...",
                    validate::shorten(s)
                ))
            })
        })
        .transpose()
}

fn when(value: Option<f64>) -> Option<Millis> {
    value.and_then(Millis::from_epoch_seconds)
}

pub async fn discover_poll_endpoint(
    app: &App,
    ctx: &Ctx,
    req: api::DiscoverPollEndpointRequest,
) -> Result<api::DiscoverPollEndpointResponse, EcsError> {
    let cluster = cluster_param(&req.cluster)?;
    // The instance asked about, when named, must be one of the cluster's (as in every other
    // operation naming one): a reference that does not parse, names another cluster or is not
    // registered there is not answered with an endpoint.
    if let Some(reference) = req.container_instance.as_deref().filter(|r| !r.is_empty()) {
        let id = instance_ref(reference, &cluster)?;
        if app
            .node
            .state()
            .instance(id)
            .is_none_or(|i| *i.cluster != *cluster)
        {
            return Err(EcsError::invalid(format!(
                "Container instance {id} not found in cluster {cluster}"
            )));
        }
    }
    let host = ctx.host.as_deref().unwrap_or("127.0.0.1:8642");
    let scheme = if app.tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{host}/");
    Ok(api::DiscoverPollEndpointResponse {
        endpoint: Some(endpoint.clone()),
        telemetry_endpoint: Some(endpoint.clone()),
        service_connect_endpoint: Some(endpoint),
    })
}

/// What ECS answers an agent's accepted report with.
const ACK: &str = "ACK";

pub async fn submit_task_state_change(
    app: &App,
    ctx: &Ctx,
    req: api::SubmitTaskStateChangeRequest,
) -> Result<api::SubmitTaskStateChangeResponse, EcsError> {
    let cluster = cluster_param(&req.cluster)?;
    let id = task_ref(required_str(&req.task, "task")?, &cluster)?;
    agent_owns_task(app, ctx, &cluster, id)?;
    let mut containers = Vec::new();
    for c in req.containers.as_deref().unwrap_or_default() {
        containers.push(ContainerChange {
            name: required_str(&c.container_name, "containers.containerName")?.to_owned(),
            status: status(c.status.as_deref(), "container status")?,
            exit_code: c.exit_code,
            reason: c.reason.clone(),
            runtime_id: c.runtime_id.clone(),
            image_digest: c.image_digest.clone(),
            network_bindings: c.network_bindings.clone(),
            health_status: None,
        });
    }
    let command = TaskStateChange {
        cluster: cluster.as_str().into(),
        id,
        status: status(req.status.as_deref(), "status")?,
        reason: req.reason.clone(),
        containers,
        pull_started_at: when(req.pull_started_at),
        pull_stopped_at: when(req.pull_stopped_at),
        execution_stopped_at: when(req.execution_stopped_at),
    };
    app.write_by(&ctx.principal, command).await?;
    Ok(api::SubmitTaskStateChangeResponse {
        acknowledgment: Some(ACK.into()),
    })
}

pub async fn submit_container_state_change(
    app: &App,
    ctx: &Ctx,
    req: api::SubmitContainerStateChangeRequest,
) -> Result<api::SubmitContainerStateChangeResponse, EcsError> {
    let cluster = cluster_param(&req.cluster)?;
    let id = task_ref(required_str(&req.task, "task")?, &cluster)?;
    agent_owns_task(app, ctx, &cluster, id)?;
    let change = ContainerChange {
        name: required_str(&req.container_name, "containerName")?.to_owned(),
        status: status(req.status.as_deref(), "status")?,
        exit_code: req.exit_code,
        reason: req.reason.clone(),
        runtime_id: req.runtime_id.clone(),
        image_digest: None,
        network_bindings: req.network_bindings.clone(),
        health_status: None,
    };
    let command = TaskStateChange {
        cluster: cluster.as_str().into(),
        id,
        status: None,
        reason: None,
        containers: vec![change],
        pull_started_at: None,
        pull_stopped_at: None,
        execution_stopped_at: None,
    };
    app.write_by(&ctx.principal, command).await?;
    Ok(api::SubmitContainerStateChangeResponse {
        acknowledgment: Some(ACK.into()),
    })
}
