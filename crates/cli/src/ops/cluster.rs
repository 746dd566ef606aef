//! `berth cluster ls|describe|create|delete`: clusters and their counts.

use anyhow::Result;
use aws_sdk_ecs::types::Cluster;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Common;
use super::output::{Cell, Paint, emit, fields, table};

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// List clusters with their instance, task and service counts.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  berth cluster ls\n  berth cluster ls -o json"
    )]
    Ls(ClusterLs),
    /// Show clusters in full.
    #[command(after_help = "Examples:\n  berth cluster describe default")]
    Describe(ClusterDescribe),
    /// Create a cluster (an existing ACTIVE one is left as it is).
    #[command(after_help = "Examples:\n  berth cluster create prod")]
    Create(ClusterName),
    /// Delete a cluster that has no instances, tasks or services left.
    #[command(after_help = "Examples:\n  berth cluster delete staging")]
    Delete(ClusterName),
}

#[derive(Args)]
pub struct ClusterName {
    /// The cluster's name.
    name: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ClusterLs {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ClusterDescribe {
    /// Cluster names or ARNs.
    #[arg(required = true)]
    clusters: Vec<String>,
    #[command(flatten)]
    common: Common,
}

/// A cluster as `berth` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub instances: i32,
    pub running_tasks: i32,
    pub pending_tasks: i32,
    pub services: i32,
}

impl From<&Cluster> for ClusterView {
    fn from(c: &Cluster) -> ClusterView {
        ClusterView {
            arn: c.cluster_arn().unwrap_or_default().to_owned(),
            name: c.cluster_name().unwrap_or_default().to_owned(),
            status: c.status().unwrap_or_default().to_owned(),
            instances: c.registered_container_instances_count(),
            running_tasks: c.running_tasks_count(),
            pending_tasks: c.pending_tasks_count(),
            services: c.active_services_count(),
        }
    }
}

pub fn render_list(clusters: &[ClusterView], paint: Paint) -> String {
    let rows: Vec<Vec<Cell>> = clusters
        .iter()
        .map(|c| {
            vec![
                Cell::from(c.name.as_str()),
                Cell::status(c.status.as_str()),
                Cell::from(c.instances.to_string()),
                Cell::from(c.running_tasks.to_string()),
                Cell::from(c.pending_tasks.to_string()),
                Cell::from(c.services.to_string()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "STATUS",
            "INSTANCES",
            "RUNNING",
            "PENDING",
            "SERVICES",
        ],
        &rows,
        paint,
        "",
    )
}

fn render_describe(clusters: &[ClusterView], paint: Paint) -> String {
    clusters
        .iter()
        .map(|c| {
            fields(
                &[
                    ("Name", c.name.clone()),
                    ("ARN", c.arn.clone()),
                    ("Status", c.status.clone()),
                    ("Instances", c.instances.to_string()),
                    ("Running tasks", c.running_tasks.to_string()),
                    ("Pending tasks", c.pending_tasks.to_string()),
                    ("Services", c.services.to_string()),
                ],
                paint,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every cluster (or the named ones), as DescribeClusters answers.
pub async fn fetch(
    ecs: &aws_sdk_ecs::Client,
    names: Option<Vec<String>>,
) -> Result<Vec<ClusterView>> {
    let names = match names {
        Some(names) => names,
        None => {
            let mut arns = Vec::new();
            let mut token = None;
            loop {
                let page = ecs.list_clusters().set_next_token(token).send().await?;
                arns.extend(page.cluster_arns().iter().cloned());
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            arns
        }
    };
    let mut clusters = Vec::new();
    for chunk in names.chunks(100) {
        let answer = ecs
            .describe_clusters()
            .set_clusters(Some(chunk.to_vec()))
            .send()
            .await?;
        if let Some(f) = answer.failures().first() {
            anyhow::bail!(
                "cluster {}: {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or_default()
            );
        }
        clusters.extend(answer.clusters().iter().map(ClusterView::from));
    }
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(clusters)
}

pub async fn run(cmd: ClusterCmd) -> Result<()> {
    let paint = Paint::detect();
    match cmd {
        ClusterCmd::Ls(a) => {
            let clusters = fetch(&a.common.clients()?.ecs, None).await?;
            emit(a.common.output, &clusters, || render_list(&clusters, paint))
        }
        ClusterCmd::Describe(a) => {
            let clusters = fetch(&a.common.clients()?.ecs, Some(a.clusters)).await?;
            emit(a.common.output, &clusters, || {
                render_describe(&clusters, paint)
            })
        }
        ClusterCmd::Create(a) => {
            let ecs = a.common.clients()?.ecs;
            let answer = ecs.create_cluster().cluster_name(&a.name).send().await?;
            let clusters: Vec<ClusterView> = answer
                .cluster()
                .map(ClusterView::from)
                .into_iter()
                .collect();
            emit(a.common.output, &clusters, || render_list(&clusters, paint))
        }
        ClusterCmd::Delete(a) => {
            let ecs = a.common.clients()?.ecs;
            let answer = ecs.delete_cluster().cluster(&a.name).send().await?;
            let clusters: Vec<ClusterView> = answer
                .cluster()
                .map(ClusterView::from)
                .into_iter()
                .collect();
            emit(a.common.output, &clusters, || render_list(&clusters, paint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_list_is_one_line_per_cluster() {
        let clusters = vec![
            ClusterView {
                arn: "arn:aws:ecs:us-east-1:000000000000:cluster/default".into(),
                name: "default".into(),
                status: "ACTIVE".into(),
                instances: 3,
                running_tasks: 12,
                pending_tasks: 1,
                services: 2,
            },
            ClusterView {
                arn: "arn:aws:ecs:us-east-1:000000000000:cluster/batch".into(),
                name: "batch".into(),
                status: "INACTIVE".into(),
                instances: 0,
                running_tasks: 0,
                pending_tasks: 0,
                services: 0,
            },
        ];
        insta::assert_snapshot!(render_list(&clusters, Paint(false)));
        insta::assert_snapshot!(render_describe(&clusters[..1], Paint(false)));
    }
}
