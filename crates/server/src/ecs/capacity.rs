//! CreateCapacityProvider, DescribeCapacityProviders, UpdateCapacityProvider,
//! DeleteCapacityProvider, PutClusterCapacityProviders, and the strategy a launch uses.
//!
//! A capacity provider is a named pool of container instances: those registered with the
//! attribute `ecs.capacity-provider` = its name (`berth agent --capacity-provider NAME`). ECS
//! requires an Auto Scaling group for one; berth records the `autoScalingGroupProvider` it is
//! given (the ARN may name any group an external autoscaler manages) and publishes the
//! provider's CapacityProviderReservation as a metric for that autoscaler, since it launches
//! no machines itself (`berth_capacity_provider_reservation_percent`).
//!
//! RunTask and CreateService take a strategy ([`launch_strategy`]): the request's, else —
//! when it names no launch type either — the cluster's default. Each provider's share of the
//! tasks ([`berth_scheduler::capacity::split`]) is placed on its own instances only.
//!
//! As in ECS: UpdateCapacityProvider changes only the settings it is given (within
//! `managedScaling`, member by member); DeleteCapacityProvider of a provider a cluster still
//! has answers with the provider, ACTIVE and DELETE_FAILED with the reason, rather than an
//! error; updating or deleting a provider that does not exist (or is deleted) is a
//! ClientException; deleted providers stay describable (INACTIVE) for the server's inactive
//! retention, at most [`berth_model::capacity::MAX_INACTIVE_PROVIDERS`] of them.

use berth_api::types::{self as api, enums};
use berth_api::{EcsError, ErrorCode};
use berth_model::capacity::{
    self as model, CapacityProvider, CapacityProviderStatus, StrategyItem, provider_name,
    provider_ref,
};
use berth_model::command::{
    CreateCapacityProvider, DeleteCapacityProvider, PutClusterCapacityProviders,
};
use berth_model::entity::Name;
use berth_model::validate::{self, list_len, one_of, required, required_str};
use berth_state::State;

use super::clusters::rendered as rendered_cluster;
use super::{Ctx, active_cluster, cluster_param, existing_cluster};
use crate::App;
use crate::pagination;

/// Providers per DescribeCapacityProviders page, and the most a caller may ask for.
const MAX_RESULTS: usize = 10;

/// Fargate's providers exist in every ECS account; berth has none, so naming one (in `what`)
/// is answered as naming any provider the cluster does not have.
fn no_fargate(name: &str, what: &str) -> Result<(), EcsError> {
    if name == "FARGATE" || name == "FARGATE_SPOT" {
        return Err(EcsError::invalid(format!(
            "{what} names {name}, AWS Fargate's capacity provider; berth runs tasks on registered container instances only"
        )));
    }
    Ok(())
}

fn no_managed_instances<T>(given: &Option<T>) -> Result<(), EcsError> {
    if given.is_some() {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "managedInstancesProvider is not supported: ECS Managed Instances are machines AWS launches; on berth, give autoScalingGroupProvider and register instances with the ecs.capacity-provider attribute",
        ));
    }
    Ok(())
}

/// A provider as ECS shows it; tags only when asked for.
fn render(ctx: &Ctx, p: &CapacityProvider, with_tags: bool) -> api::CapacityProvider {
    api::CapacityProvider {
        capacity_provider_arn: Some(ctx.arn.capacity_provider(&p.name)),
        name: Some(p.name.to_string()),
        status: Some(p.status.as_str().into()),
        auto_scaling_group_provider: Some(p.auto_scaling_group.clone()),
        update_status: p.update_status.map(|s| s.as_str().into()),
        update_status_reason: p.update_status_reason.clone(),
        tags: with_tags.then(|| super::render::tags(&p.tags)),
        r#type: Some("EC2_AUTOSCALING".into()),
        ..Default::default()
    }
}

/// A request's capacity provider strategy checked against `cluster`: its own, or (given
/// neither a strategy nor a launch type) the cluster's default; empty for no strategy. Every
/// provider must be attached to the cluster.
pub(crate) fn launch_strategy(
    state: &State,
    cluster: &str,
    given: Option<&[api::CapacityProviderStrategyItem]>,
    launch_type: Option<&str>,
) -> Result<Vec<StrategyItem>, EcsError> {
    let strategy = model::strategy(given)?;
    let c = active_cluster(state, cluster)?;
    if strategy.is_empty() {
        return Ok(if launch_type.is_none() {
            c.default_strategy.clone()
        } else {
            Vec::new()
        });
    }
    if launch_type.is_some() {
        return Err(EcsError::invalid(
            "Specifying both a launchType and a capacityProviderStrategy is not supported: give one of them",
        ));
    }
    for item in &strategy {
        no_fargate(&item.provider, "The capacityProviderStrategy")?;
        if !c.capacity_providers.contains(&item.provider) {
            return Err(EcsError::invalid(format!(
                "The capacityProviderStrategy names {}, which is not associated with cluster {cluster}. Associate it with PutClusterCapacityProviders first.",
                item.provider
            )));
        }
    }
    Ok(strategy)
}

/// Provider names of CreateCluster or PutClusterCapacityProviders: valid, and not Fargate's.
pub(crate) fn provider_names(given: &[String]) -> Result<Vec<Name>, EcsError> {
    given
        .iter()
        .map(|r| {
            let name = provider_ref(r);
            no_fargate(name, "capacityProviders")?;
            Ok(provider_name(Some(name))?.into())
        })
        .collect()
}

/// A cluster's default strategy as given (names checked against the attached providers when
/// the command is applied).
pub(crate) fn default_strategy(
    given: Option<&[api::CapacityProviderStrategyItem]>,
) -> Result<Vec<StrategyItem>, EcsError> {
    let strategy = model::strategy(given)?;
    for item in &strategy {
        no_fargate(&item.provider, "The defaultCapacityProviderStrategy")?;
    }
    Ok(strategy)
}

pub async fn create(
    app: &App,
    ctx: &Ctx,
    req: api::CreateCapacityProviderRequest,
) -> Result<api::CreateCapacityProviderResponse, EcsError> {
    let name = provider_name(req.name.as_deref())?;
    no_managed_instances(&req.managed_instances_provider)?;
    if req.cluster.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(EcsError::invalid(
            "cluster applies to ECS Managed Instances capacity providers only; attach this one to clusters with PutClusterCapacityProviders",
        ));
    }
    let command = CreateCapacityProvider {
        name: name.into(),
        auto_scaling_group: model::auto_scaling_group(req.auto_scaling_group_provider.as_ref())?,
        tags: validate::tags(req.tags.as_deref())?,
    };
    let provider = app.write_by(&ctx.principal, command).await?;
    Ok(api::CreateCapacityProviderResponse {
        capacity_provider: Some(render(ctx, &provider, true)),
    })
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeCapacityProvidersRequest,
) -> Result<api::DescribeCapacityProvidersResponse, EcsError> {
    const OP: &str = "DescribeCapacityProviders";
    let refs = req.capacity_providers.unwrap_or_default();
    list_len(&refs, "capacityProviders", false, 100)?;
    let mut with_tags = false;
    for v in req.include.as_deref().unwrap_or_default() {
        with_tags |= one_of(v, enums::CAPACITY_PROVIDER_FIELD, "include value")? == "TAGS";
    }
    let max = match req.max_results {
        None => MAX_RESULTS,
        Some(n @ 1..=10) => n as usize,
        Some(n) => {
            return Err(EcsError::invalid(format!(
                "maxResults must be between 1 and {MAX_RESULTS}; got {n}"
            )));
        }
    };
    let token = req.next_token.as_deref().filter(|t| !t.is_empty());
    let after: Option<String> = pagination::decode(OP, token)?;
    let cluster = match req.cluster.as_deref() {
        None | Some("") => None,
        Some(_) => Some(existing_cluster(app, &req.cluster)?),
    };
    let state = app.node.state();
    let attached: Option<Vec<Name>> = cluster
        .as_deref()
        .and_then(|c| state.cluster(c))
        .map(|c| c.capacity_providers.clone());
    let wanted = |p: &CapacityProvider| attached.as_ref().is_none_or(|a| a.contains(&p.name));
    let mut failures = Vec::new();
    let found: Vec<&std::sync::Arc<CapacityProvider>> = if refs.is_empty() {
        state
            .capacity_providers_after(after.as_deref())
            .filter(|p| p.status == CapacityProviderStatus::Active && wanted(p))
            .collect()
    } else {
        let mut names: Vec<&str> = Vec::new();
        for r in &refs {
            let name = provider_ref(r);
            match state.capacity_provider(name).filter(|p| wanted(p)) {
                Some(_) if names.contains(&name) => {}
                Some(_) => names.push(name),
                // Failures are reported once, with the first page.
                None if after.is_none() => {
                    failures.push(super::render::missing(if r.starts_with("arn:") {
                        r.clone()
                    } else {
                        ctx.arn.capacity_provider(r)
                    }))
                }
                None => {}
            }
        }
        names.sort_unstable();
        names
            .into_iter()
            .filter(|n| after.as_deref().is_none_or(|a| *n > a))
            .filter_map(|n| state.capacity_provider(n))
            .collect()
    };
    let (page, next_token) = pagination::page(OP, found.into_iter(), max, |p| p.name.to_string());
    Ok(api::DescribeCapacityProvidersResponse {
        capacity_providers: Some(page.iter().map(|p| render(ctx, p, with_tags)).collect()),
        failures: Some(failures),
        next_token,
    })
}

pub async fn update(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateCapacityProviderRequest,
) -> Result<api::UpdateCapacityProviderResponse, EcsError> {
    let name = provider_ref(required_str(&req.name, "name")?);
    no_managed_instances(&req.managed_instances_provider)?;
    let command = model::update(
        provider_name(Some(name))?.into(),
        req.auto_scaling_group_provider.as_ref(),
    )?;
    let provider = app.write_by(&ctx.principal, command).await?;
    Ok(api::UpdateCapacityProviderResponse {
        capacity_provider: Some(render(ctx, &provider, false)),
    })
}

pub async fn delete(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteCapacityProviderRequest,
) -> Result<api::DeleteCapacityProviderResponse, EcsError> {
    let name = provider_ref(required_str(&req.capacity_provider, "capacityProvider")?);
    no_fargate(name, "DeleteCapacityProvider")?;
    if req.cluster.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(EcsError::invalid(
            "cluster applies to ECS Managed Instances capacity providers only; name the provider alone",
        ));
    }
    let command = DeleteCapacityProvider {
        name: provider_name(Some(name))?.into(),
    };
    let provider = app.write_by(&ctx.principal, command).await?;
    Ok(api::DeleteCapacityProviderResponse {
        capacity_provider: Some(render(ctx, &provider, false)),
    })
}

pub async fn put_cluster(
    app: &App,
    ctx: &Ctx,
    req: api::PutClusterCapacityProvidersRequest,
) -> Result<api::PutClusterCapacityProvidersResponse, EcsError> {
    let cluster = cluster_param(&Some(required_str(&req.cluster, "cluster")?.to_owned()))?;
    let providers = required(&req.capacity_providers, "capacityProviders")?;
    let strategy = required(
        &req.default_capacity_provider_strategy,
        "defaultCapacityProviderStrategy",
    )?;
    let command = PutClusterCapacityProviders {
        cluster: cluster.as_str().into(),
        providers: provider_names(providers)?,
        default_strategy: default_strategy(Some(strategy))?,
    };
    let stored = app.write_by(&ctx.principal, command).await?;
    Ok(api::PutClusterCapacityProvidersResponse {
        cluster: Some(rendered_cluster(app, ctx, &stored)),
    })
}
