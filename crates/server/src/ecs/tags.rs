//! TagResource, UntagResource, ListTagsForResource.

use berth_api::types as api;
use berth_api::{EcsError, ErrorCode};
use berth_model::arn::{ResourceArn, parse_resource_arn};
use berth_model::capacity::CapacityProviderStatus;
use berth_model::command::{TagResource, UntagResource};
use berth_model::validate::{self, required, required_str, tag_key};
use berth_state::State;

use super::render;
use super::{Ctx, cluster_not_found};
use crate::App;

fn resource(value: &Option<String>) -> Result<ResourceArn, EcsError> {
    parse_resource_arn(required_str(value, "resourceArn")?)
        .map_err(|e| EcsError::invalid(e.to_string()))
}

/// The current tags of a resource, or the error ECS answers ListTagsForResource with when it
/// is not there: ClusterNotFoundException when the cluster it names (or is) does not exist,
/// ServiceNotFoundException for a missing service, TaskSetNotFoundException for a missing
/// task set, InvalidParameterException otherwise.
fn current_tags(state: &State, r: &ResourceArn) -> Result<Vec<berth_model::entity::Tag>, EcsError> {
    let in_cluster = |cluster: &str| match state.cluster(cluster) {
        Some(_) => Ok(()),
        None => Err(cluster_not_found(cluster)),
    };
    let missing = |what: String| {
        EcsError::invalid(format!("The specified resource could not be found: {what}"))
    };
    match r {
        ResourceArn::Cluster(name) => state
            .cluster(name)
            .map(|c| c.tags.clone())
            .ok_or_else(|| cluster_not_found(name)),
        ResourceArn::TaskDefinition(f, rev) => state
            .task_definition(f, *rev)
            .map(|t| t.tags.clone())
            .ok_or_else(|| missing(format!("task definition {f}:{rev}"))),
        ResourceArn::ContainerInstance(c, id) => {
            in_cluster(c)?;
            state
                .instance(*id)
                .filter(|i| *i.cluster == **c)
                .map(|i| i.tags.clone())
                .ok_or_else(|| missing(format!("container instance {id} in cluster {c}")))
        }
        ResourceArn::Task(c, id) => {
            in_cluster(c)?;
            state
                .task(*id)
                .filter(|t| *t.cluster == **c)
                .map(|t| t.tags.clone())
                .ok_or_else(|| missing(format!("task {id} in cluster {c}")))
        }
        ResourceArn::Service(c, name) => {
            in_cluster(c)?;
            state
                .service(c, name)
                .map(|s| s.tags.clone())
                .ok_or_else(|| {
                    EcsError::new(
                        ErrorCode::ServiceNotFoundException,
                        format!("Service not found: {name} in cluster {c}."),
                    )
                })
        }
        ResourceArn::CapacityProvider(name) => state
            .capacity_provider(name)
            .filter(|p| p.status == CapacityProviderStatus::Active)
            .map(|p| p.tags.clone())
            .ok_or_else(|| missing(format!("capacity provider {name}"))),
        ResourceArn::TaskSet(c, service, id) => {
            in_cluster(c)?;
            let service = state.service(c, service).ok_or_else(|| {
                EcsError::new(
                    ErrorCode::ServiceNotFoundException,
                    format!("Service not found: {service} in cluster {c}."),
                )
            })?;
            service
                .task_sets
                .iter()
                .find(|t| t.id == *id)
                .map(|t| t.tags.clone())
                .ok_or_else(|| {
                    EcsError::new(
                        ErrorCode::TaskSetNotFoundException,
                        format!("The specified task set {id} was not found."),
                    )
                })
        }
    }
}

pub async fn tag(
    app: &App,
    ctx: &Ctx,
    req: api::TagResourceRequest,
) -> Result<api::TagResourceResponse, EcsError> {
    let resource = resource(&req.resource_arn)?;
    let tags = validate::tags(Some(required(&req.tags, "tags")?))?;
    app.write_by(&ctx.principal, TagResource { resource, tags })
        .await?;
    Ok(api::TagResourceResponse {})
}

pub async fn untag(
    app: &App,
    ctx: &Ctx,
    req: api::UntagResourceRequest,
) -> Result<api::UntagResourceResponse, EcsError> {
    let resource = resource(&req.resource_arn)?;
    let keys = required(&req.tag_keys, "tagKeys")?.clone();
    for k in &keys {
        tag_key(k)?;
    }
    app.write_by(&ctx.principal, UntagResource { resource, keys })
        .await?;
    Ok(api::UntagResourceResponse {})
}

pub async fn list(
    app: &App,
    _ctx: &Ctx,
    req: api::ListTagsForResourceRequest,
) -> Result<api::ListTagsForResourceResponse, EcsError> {
    let resource = resource(&req.resource_arn)?;
    let state = app.node.state();
    let tags = current_tags(&state, &resource)?;
    Ok(api::ListTagsForResourceResponse {
        tags: Some(render::tags(&tags)),
    })
}
