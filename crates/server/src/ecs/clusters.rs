//! CreateCluster, DeleteCluster, DescribeClusters, ListClusters, UpdateCluster,
//! UpdateClusterSettings.

use berth_api::EcsError;
use berth_api::types::{self as api, enums};
use berth_model::account::SettingName;
use berth_model::arn::{parse_cluster, valid_cluster_name};
use berth_model::command::{CreateCluster, DeleteCluster, UpdateCluster};
use berth_model::entity::{Cluster, ClusterStatus};
use berth_model::validate::{self, list_len, max_results, one_of, required_str};

use super::render::{self, ClusterInclude};
use super::{Ctx, DEFAULT_CLUSTER, cluster_param};
use crate::App;
use crate::pagination;

fn settings(
    settings: Option<&[api::ClusterSetting]>,
) -> Result<Vec<api::ClusterSetting>, EcsError> {
    let settings = settings.unwrap_or_default();
    for s in settings {
        let name = required_str(&s.name, "settings.name")?;
        one_of(name, enums::CLUSTER_SETTING_NAME, "cluster setting name")?;
        let value = required_str(&s.value, "settings.value")?;
        one_of(
            value,
            &["enabled", "disabled", "enhanced"],
            "containerInsights value",
        )?;
    }
    Ok(settings.to_vec())
}

/// A cluster a write answered with, as ECS shows it, with the counts of the newest state.
pub(crate) fn rendered(app: &App, ctx: &Ctx, c: &Cluster) -> api::Cluster {
    let counts = app.node.state().counts(&c.name);
    render::cluster(&ctx.arn, c, counts, ClusterInclude::ALL)
}

pub async fn create(
    app: &App,
    ctx: &Ctx,
    req: api::CreateClusterRequest,
) -> Result<api::CreateClusterResponse, EcsError> {
    let name = req.cluster_name.as_deref().unwrap_or(DEFAULT_CLUSTER);
    if !valid_cluster_name(name) {
        return Err(EcsError::invalid(
            "Cluster name must be 1 to 255 letters, numbers, hyphens and underscores",
        ));
    }
    let capacity_providers =
        super::capacity::provider_names(req.capacity_providers.as_deref().unwrap_or_default())?;
    let default_strategy =
        super::capacity::default_strategy(req.default_capacity_provider_strategy.as_deref())?;
    let mut settings = settings(req.settings.as_deref())?;
    // As in ECS, a cluster that names no containerInsights setting takes the creator's account
    // setting (its own, else the account default) when one was made.
    let insights = SettingName::ContainerInsights;
    if !settings
        .iter()
        .any(|s| s.name.as_deref() == Some(insights.as_str()))
        && let Some(value) = super::account::chosen_for_caller(app, ctx, insights)
    {
        settings.push(api::ClusterSetting {
            name: Some(insights.as_str().into()),
            value: Some(value),
        });
    }
    let command = CreateCluster {
        name: name.into(),
        settings,
        configuration: req.configuration,
        service_connect_defaults: req.service_connect_defaults.map(|d| {
            api::ClusterServiceConnectDefaults {
                namespace: d.namespace,
            }
        }),
        tags: validate::tags(req.tags.as_deref())?,
        capacity_providers,
        default_strategy,
    };
    let cluster = app.write_by(&ctx.principal, command).await?;
    Ok(api::CreateClusterResponse {
        cluster: Some(rendered(app, ctx, &cluster)),
    })
}

pub async fn delete(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteClusterRequest,
) -> Result<api::DeleteClusterResponse, EcsError> {
    let name = parse_cluster(required_str(&req.cluster, "cluster")?)
        .map_err(|e| EcsError::invalid(e.to_string()))?;
    let cluster = app
        .write_by(
            &ctx.principal,
            DeleteCluster {
                name: name.as_str().into(),
            },
        )
        .await?;
    Ok(api::DeleteClusterResponse {
        cluster: Some(rendered(app, ctx, &cluster)),
    })
}

fn include(values: Option<&[String]>) -> Result<ClusterInclude, EcsError> {
    let mut inc = ClusterInclude::default();
    for v in values.unwrap_or_default() {
        match one_of(v, enums::CLUSTER_FIELD, "include value")? {
            "SETTINGS" => inc.settings = true,
            "CONFIGURATIONS" => inc.configurations = true,
            "STATISTICS" => inc.statistics = true,
            "TAGS" => inc.tags = true,
            _ => {}
        }
    }
    Ok(inc)
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeClustersRequest,
) -> Result<api::DescribeClustersResponse, EcsError> {
    let refs = req
        .clusters
        .unwrap_or_else(|| vec![DEFAULT_CLUSTER.to_owned()]);
    list_len(&refs, "clusters", false, 100)?;
    let inc = include(req.include.as_deref())?;
    let state = app.node.state();
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        match parse_cluster(&r).ok().and_then(|name| state.cluster(&name)) {
            Some(c) => clusters.push(render::cluster(&ctx.arn, c, state.counts(&c.name), inc)),
            None => failures.push(render::missing(if r.starts_with("arn:") {
                r
            } else {
                ctx.arn.cluster(&r)
            })),
        }
    }
    Ok(api::DescribeClustersResponse {
        clusters: Some(clusters),
        failures: Some(failures),
    })
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListClustersRequest,
) -> Result<api::ListClustersResponse, EcsError> {
    const OP: &str = "ListClusters";
    let max = max_results(req.max_results, 100, 100)?;
    let after: Option<String> = pagination::decode(OP, req.next_token.as_deref())?;
    let state = app.node.state();
    let active = state
        .clusters_after(after.as_deref())
        .filter(|c| c.status == ClusterStatus::Active);
    let (page, next) = pagination::page(OP, active, max, |c| c.name.to_string());
    Ok(api::ListClustersResponse {
        cluster_arns: Some(page.iter().map(|c| ctx.arn.cluster(&c.name)).collect()),
        next_token: next,
    })
}

pub async fn update(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateClusterRequest,
) -> Result<api::UpdateClusterResponse, EcsError> {
    let name = parse_cluster(required_str(&req.cluster, "cluster")?)
        .map_err(|e| EcsError::invalid(e.to_string()))?;
    let command = UpdateCluster {
        name: name.as_str().into(),
        settings: req
            .settings
            .as_deref()
            .map(|s| settings(Some(s)))
            .transpose()?,
        configuration: req.configuration,
        service_connect_defaults: req.service_connect_defaults.map(|d| {
            api::ClusterServiceConnectDefaults {
                namespace: d.namespace,
            }
        }),
    };
    let cluster = app.write_by(&ctx.principal, command).await?;
    Ok(api::UpdateClusterResponse {
        cluster: Some(rendered(app, ctx, &cluster)),
    })
}

pub async fn update_settings(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateClusterSettingsRequest,
) -> Result<api::UpdateClusterSettingsResponse, EcsError> {
    let name = cluster_param(&Some(required_str(&req.cluster, "cluster")?.to_owned()))?;
    let given = validate::required(&req.settings, "settings")?;
    let command = UpdateCluster {
        name: name.as_str().into(),
        settings: Some(settings(Some(given))?),
        configuration: None,
        service_connect_defaults: None,
    };
    let cluster = app.write_by(&ctx.principal, command).await?;
    Ok(api::UpdateClusterSettingsResponse {
        cluster: Some(rendered(app, ctx, &cluster)),
    })
}
