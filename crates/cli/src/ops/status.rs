//! `berth status`: the whole installation on one screen — each cluster with its instances
//! (capacity used and free), its tasks by state and its services by health.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_ecs::types::DesiredStatus;
use clap::Args;
use serde::Serialize;

use super::Common;
use super::cluster::{self, ClusterView};
use super::instance::{self, InstanceView};
use super::output::{Paint, Tone, emit, status_tone, table};
use super::service::{self, ServiceView};
use super::task;

#[derive(Args)]
#[command(after_help = "Examples:\n  berth status\n  berth status --cluster prod -o json")]
pub struct StatusArgs {
    /// Only this cluster (default: every cluster).
    #[arg(long)]
    cluster: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// One cluster's part of the screen.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster: ClusterView,
    pub instances: Vec<InstanceView>,
    /// Tasks (desired RUNNING, and STOPPED ones still retained) by their last status.
    pub tasks: BTreeMap<String, usize>,
    pub services: Vec<ServiceView>,
}

pub fn render(clusters: &[ClusterStatus], paint: Paint) -> String {
    if clusters.is_empty() {
        return "No clusters. Create one with `berth cluster create NAME`, or start `berth dev`.\n"
            .into();
    }
    let mut out = String::new();
    for (n, c) in clusters.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let (cpu_used, cpu_total, memory_used, memory_total) =
            c.instances.iter().fold((0, 0, 0, 0), |(a, b, m, n), i| {
                (
                    a + i.cpu_used(),
                    b + i.cpu_total,
                    m + i.memory_used(),
                    n + i.memory_total,
                )
            });
        out.push_str(&format!(
            "{} {}  {} instances  CPU {cpu_used}/{cpu_total}  memory {memory_used}/{memory_total} MiB\n",
            paint.tone(&format!("Cluster {}", c.cluster.name), Tone::Bold),
            paint.tone(&c.cluster.status, status_tone(&c.cluster.status)),
            c.instances.len(),
        ));
        if !c.instances.is_empty() {
            out.push_str(&table(
                &instance::HEADERS,
                &instance::rows(&c.instances),
                paint,
                "  ",
            ));
        }
        let tasks: Vec<String> = if c.tasks.is_empty() {
            vec!["none".into()]
        } else {
            c.tasks
                .iter()
                .map(|(state, n)| format!("{n} {}", paint.tone(state, status_tone(state))))
                .collect()
        };
        out.push_str(&format!("  Tasks: {}\n", tasks.join(", ")));
        if c.services.is_empty() {
            out.push_str("  Services: none\n");
        } else {
            let mut by_health: BTreeMap<&str, usize> = BTreeMap::new();
            for s in &c.services {
                *by_health.entry(s.health.as_str()).or_default() += 1;
            }
            let summary: Vec<String> = by_health.iter().map(|(h, n)| format!("{n} {h}")).collect();
            out.push_str(&format!("  Services: {}\n", summary.join(", ")));
            out.push_str(&table(
                &service::HEADERS,
                &service::rows(&c.services),
                paint,
                "  ",
            ));
        }
    }
    out
}

async fn gather(ecs: &aws_sdk_ecs::Client, cluster: ClusterView) -> Result<ClusterStatus> {
    let name = cluster.name.clone();
    let instances = instance::fetch(ecs, &name, None).await?;
    let mut arns = task::list(ecs, &name, None, None, DesiredStatus::Running).await?;
    arns.extend(task::list(ecs, &name, None, None, DesiredStatus::Stopped).await?);
    let mut tasks = BTreeMap::new();
    for t in task::describe(ecs, &name, &arns).await? {
        *tasks.entry(t.last_status).or_default() += 1;
    }
    let services = service::fetch(ecs, &name).await?;
    Ok(ClusterStatus {
        cluster,
        instances,
        tasks,
        services,
    })
}

pub async fn run(a: StatusArgs) -> Result<()> {
    let ecs = a.common.clients()?.ecs;
    let mut clusters = Vec::new();
    for c in cluster::fetch(&ecs, a.cluster.map(|c| vec![c])).await? {
        // A deleted cluster has nothing left to list (and ECS refuses to list it).
        clusters.push(if c.status == "ACTIVE" {
            gather(&ecs, c).await?
        } else {
            ClusterStatus {
                cluster: c,
                instances: Vec::new(),
                tasks: BTreeMap::new(),
                services: Vec::new(),
            }
        });
    }
    let paint = Paint::detect();
    emit(a.common.output, &clusters, || render(&clusters, paint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::service::tests::{deployment, service};

    #[test]
    fn the_status_screen_sums_up_each_cluster() {
        let cluster = ClusterView {
            arn: "arn:aws:ecs:us-east-1:000000000000:cluster/default".into(),
            name: "default".into(),
            status: "ACTIVE".into(),
            instances: 2,
            running_tasks: 3,
            pending_tasks: 0,
            services: 1,
        };
        let status = ClusterStatus {
            cluster,
            instances: crate::ops::instance::tests::sample(),
            tasks: [("RUNNING".to_owned(), 3), ("STOPPED".to_owned(), 1)].into(),
            services: vec![service(vec![deployment(
                "ecs-svc/1",
                "PRIMARY",
                "COMPLETED",
                2,
                0,
            )])],
        };
        insta::assert_snapshot!(render(&[status], Paint(false)));
        assert!(render(&[], Paint(false)).starts_with("No clusters"));
    }
}
