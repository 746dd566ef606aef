//! TagResource, UntagResource, ListTagsForResource.

use berth_api::EcsError;
use berth_api::types as api;
use berth_model::arn::{ResourceArn, parse_resource_arn};
use berth_model::command::{TagResource, UntagResource};
use berth_model::validate::{self, required, required_str, tag_key};
use berth_state::State;

use super::Ctx;
use super::render;
use crate::App;

fn resource(value: &Option<String>) -> Result<ResourceArn, EcsError> {
    parse_resource_arn(required_str(value, "resourceArn")?)
        .map_err(|e| EcsError::invalid(e.to_string()))
}

fn current_tags(state: &State, r: &ResourceArn) -> Option<Vec<berth_model::entity::Tag>> {
    match r {
        ResourceArn::Cluster(name) => state.cluster(name).map(|c| c.tags.clone()),
        ResourceArn::TaskDefinition(f, rev) => {
            state.task_definition(f, *rev).map(|t| t.tags.clone())
        }
        ResourceArn::ContainerInstance(c, id) => state
            .instance(*id)
            .filter(|i| *i.cluster == **c)
            .map(|i| i.tags.clone()),
        ResourceArn::Task(c, id) => state
            .task(*id)
            .filter(|t| *t.cluster == **c)
            .map(|t| t.tags.clone()),
        ResourceArn::Service(c, name) => state.service(c, name).map(|s| s.tags.clone()),
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
    let tags = current_tags(&state, &resource)
        .ok_or_else(|| EcsError::invalid("The specified resource could not be found."))?;
    Ok(api::ListTagsForResourceResponse {
        tags: Some(render::tags(&tags)),
    })
}
