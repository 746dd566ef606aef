//! `berth instance ls|describe`: container instances with their capacity used and free.

use anyhow::Result;
use aws_sdk_ecs::types::{ContainerInstance, Resource};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{Cell, Paint, Tone, emit, fields, or_dash, short, table, time};
use super::{ClusterArg, Common};

#[derive(Subcommand)]
pub enum InstanceCmd {
    /// List container instances with CPU and memory used and free.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  berth instance ls --cluster default\n  berth instance ls --status DRAINING -o json"
    )]
    Ls(InstanceLs),
    /// Show container instances in full: resources, attributes, agent.
    #[command(after_help = "Examples:\n  berth instance describe 6f1c2a --cluster default")]
    Describe(InstanceDescribe),
}

#[derive(Args)]
pub struct InstanceLs {
    #[command(flatten)]
    cluster: ClusterArg,
    /// Only instances in this status (ACTIVE, DRAINING, ...).
    #[arg(long)]
    status: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct InstanceDescribe {
    /// Container instance ids or ARNs.
    #[arg(required = true)]
    instances: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    common: Common,
}

/// A container instance as `berth` shows it. CPU is in units (1024 a core), memory in MiB.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub arn: String,
    pub id: String,
    pub ec2_instance_id: Option<String>,
    pub status: String,
    pub agent_connected: bool,
    pub cpu_total: i32,
    pub cpu_free: i32,
    pub memory_total: i32,
    pub memory_free: i32,
    pub running_tasks: i32,
    pub pending_tasks: i32,
    pub registered_at: Option<i64>,
    pub attributes: Vec<String>,
}

impl InstanceView {
    pub fn cpu_used(&self) -> i32 {
        self.cpu_total - self.cpu_free
    }

    pub fn memory_used(&self) -> i32 {
        self.memory_total - self.memory_free
    }
}

fn integer(resources: &[Resource], name: &str) -> i32 {
    resources
        .iter()
        .find(|r| r.name() == Some(name))
        .map_or(0, Resource::integer_value)
}

impl From<&ContainerInstance> for InstanceView {
    fn from(i: &ContainerInstance) -> InstanceView {
        let arn = i.container_instance_arn().unwrap_or_default().to_owned();
        InstanceView {
            id: short(&arn).to_owned(),
            arn,
            ec2_instance_id: i.ec2_instance_id().map(str::to_owned),
            status: i.status().unwrap_or_default().to_owned(),
            agent_connected: i.agent_connected(),
            cpu_total: integer(i.registered_resources(), "CPU"),
            cpu_free: integer(i.remaining_resources(), "CPU"),
            memory_total: integer(i.registered_resources(), "MEMORY"),
            memory_free: integer(i.remaining_resources(), "MEMORY"),
            running_tasks: i.running_tasks_count(),
            pending_tasks: i.pending_tasks_count(),
            registered_at: i.registered_at().map(|t| t.secs()),
            attributes: i
                .attributes()
                .iter()
                .map(|a| match a.value() {
                    Some(v) => format!("{}={v}", a.name()),
                    None => a.name().to_owned(),
                })
                .collect(),
        }
    }
}

/// `used/total` with a ten-step bar of the share used.
pub fn usage(used: i32, total: i32) -> String {
    let filled = if total > 0 {
        ((i64::from(used) * 10 + i64::from(total) / 2) / i64::from(total)).clamp(0, 10) as usize
    } else {
        0
    };
    format!(
        "[{}{}] {used}/{total}",
        "#".repeat(filled),
        ".".repeat(10 - filled)
    )
}

/// The rows of an instance table, shared with `berth status`.
pub fn rows(instances: &[InstanceView]) -> Vec<Vec<Cell>> {
    instances
        .iter()
        .map(|i| {
            vec![
                Cell::from(i.id.as_str()),
                Cell::status(i.status.as_str()),
                if i.agent_connected {
                    Cell {
                        text: "up".into(),
                        tone: Tone::Good,
                    }
                } else {
                    Cell::status("down")
                },
                Cell::from(usage(i.cpu_used(), i.cpu_total)),
                Cell::from(usage(i.memory_used(), i.memory_total)),
                Cell::from(i.running_tasks.to_string()),
                Cell::from(i.pending_tasks.to_string()),
            ]
        })
        .collect()
}

pub const HEADERS: [&str; 7] = [
    "INSTANCE",
    "STATUS",
    "AGENT",
    "CPU USED/TOTAL",
    "MEMORY (MiB) USED/TOTAL",
    "RUNNING",
    "PENDING",
];

pub fn render_list(instances: &[InstanceView], paint: Paint) -> String {
    table(&HEADERS, &rows(instances), paint, "")
}

fn render_describe(instances: &[InstanceView], paint: Paint) -> String {
    instances
        .iter()
        .map(|i| {
            fields(
                &[
                    ("Id", i.id.clone()),
                    ("ARN", i.arn.clone()),
                    ("EC2 instance", or_dash(i.ec2_instance_id.as_deref())),
                    ("Status", i.status.clone()),
                    (
                        "Agent",
                        if i.agent_connected {
                            "connected"
                        } else {
                            "disconnected"
                        }
                        .into(),
                    ),
                    (
                        "CPU",
                        format!(
                            "{} used, {} free of {}",
                            i.cpu_used(),
                            i.cpu_free,
                            i.cpu_total
                        ),
                    ),
                    (
                        "Memory",
                        format!(
                            "{} used, {} free of {} MiB",
                            i.memory_used(),
                            i.memory_free,
                            i.memory_total
                        ),
                    ),
                    (
                        "Tasks",
                        format!("{} running, {} pending", i.running_tasks, i.pending_tasks),
                    ),
                    ("Registered", time(i.registered_at)),
                    ("Attributes", i.attributes.join(", ")),
                ],
                paint,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cluster's instances (only those in `status`, when given), as
/// DescribeContainerInstances answers.
pub async fn fetch(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    status: Option<&str>,
) -> Result<Vec<InstanceView>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_container_instances()
            .cluster(cluster)
            .set_status(status.map(Into::into))
            .set_next_token(token)
            .send()
            .await?;
        arns.extend(page.container_instance_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    describe(ecs, cluster, arns).await
}

async fn describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    arns: Vec<String>,
) -> Result<Vec<InstanceView>> {
    let mut instances = Vec::new();
    for chunk in arns.chunks(100) {
        let answer = ecs
            .describe_container_instances()
            .cluster(cluster)
            .set_container_instances(Some(chunk.to_vec()))
            .send()
            .await?;
        if let Some(f) = answer.failures().first() {
            anyhow::bail!(
                "container instance {}: {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or_default()
            );
        }
        instances.extend(answer.container_instances().iter().map(InstanceView::from));
    }
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(instances)
}

pub async fn run(cmd: InstanceCmd) -> Result<()> {
    let paint = Paint::detect();
    match cmd {
        InstanceCmd::Ls(a) => {
            let ecs = a.common.clients()?.ecs;
            let instances = fetch(&ecs, &a.cluster.cluster, a.status.as_deref()).await?;
            emit(a.common.output, &instances, || {
                render_list(&instances, paint)
            })
        }
        InstanceCmd::Describe(a) => {
            let ecs = a.common.clients()?.ecs;
            let instances = describe(&ecs, &a.cluster.cluster, a.instances).await?;
            emit(a.common.output, &instances, || {
                render_describe(&instances, paint)
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Vec<InstanceView> {
        let instance = |id: &str, cpu_free, memory_free, connected, running| InstanceView {
            arn: format!("arn:aws:ecs:us-east-1:000000000000:container-instance/default/{id}"),
            id: id.into(),
            ec2_instance_id: None,
            status: "ACTIVE".into(),
            agent_connected: connected,
            cpu_total: 4096,
            cpu_free,
            memory_total: 8192,
            memory_free,
            running_tasks: running,
            pending_tasks: 0,
            registered_at: Some(1_700_000_000),
            attributes: vec!["ecs.os-type=linux".into(), "berth.runtime.hollow".into()],
        };
        vec![
            instance("0a1b2c3d", 1024, 2048, true, 3),
            instance("9f8e7d6c", 4096, 8192, false, 0),
        ]
    }

    #[test]
    fn instances_show_capacity_used_and_free() {
        insta::assert_snapshot!(render_list(&sample(), Paint(false)));
        insta::assert_snapshot!(render_describe(&sample()[..1], Paint(false)));
    }

    #[test]
    fn the_usage_bar_rounds_to_tenths_and_survives_zero_capacity() {
        assert_eq!(usage(0, 0), "[..........] 0/0");
        assert_eq!(usage(3072, 4096), "[########..] 3072/4096");
        assert_eq!(usage(4096, 4096), "[##########] 4096/4096");
    }
}
