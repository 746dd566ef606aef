//! `berth service ls|describe|create|update|scale|delete`: services through the ECS API,
//! with `--wait` following the rollout live (see [`super::rollout`]).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentConfiguration, Service};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{
    Cell, Exit, Paint, Progress, Tone, definition, emit, fields, or_dash, table, time,
};
use super::rollout::{Goal, Rollout, Verdict};
use super::{ClusterArg, Common, WaitArgs};

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// List services with their health and counts.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  berth service ls --cluster prod"
    )]
    Ls(ServiceLs),
    /// Show services in full: deployments and recent events.
    #[command(after_help = "Examples:\n  berth service describe web")]
    Describe(ServiceDescribe),
    /// Create a service.
    #[command(after_help = concat!("Examples:
  berth service create web --task-definition web:1 --desired-count 3 --wait
  berth service create web --task-definition web --desired-count 2 --no-rollback

", exit_codes!()))]
    Create(ServiceCreate),
    /// Change a service's task definition, count or deployment settings (a new deployment
    /// when the task definition changes or with --force-new-deployment).
    #[command(after_help = concat!("Examples:
  berth service update web --task-definition web:2 --wait
  berth service update web --force-new-deployment --wait --timeout 120

", exit_codes!()))]
    Update(ServiceUpdate),
    /// Set a service's desired count.
    #[command(after_help = concat!("Examples:\n  berth service scale web 5 --wait\n\n", exit_codes!()))]
    Scale(ServiceScale),
    /// Delete a service (with --force even when it still runs tasks).
    #[command(after_help = concat!("Examples:\n  berth service delete web --force --wait\n\n", exit_codes!()))]
    Delete(ServiceDelete),
}

#[derive(Args)]
pub struct ServiceLs {
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ServiceDescribe {
    /// Service names or ARNs.
    #[arg(required = true)]
    services: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    common: Common,
}

/// How a deployment proceeds: the knobs create and update share.
#[derive(Args)]
pub struct Rollouts {
    /// The most tasks to run during a deployment, in percent of the desired count.
    #[arg(long)]
    maximum_percent: Option<i32>,
    /// The fewest healthy tasks to keep during a deployment, in percent of the desired count.
    #[arg(long)]
    minimum_healthy_percent: Option<i32>,
    /// Turn the deployment circuit breaker off (it is on by default here).
    #[arg(long)]
    no_circuit_breaker: bool,
    /// Do not roll back to the last completed deployment when the circuit breaker trips.
    #[arg(long)]
    no_rollback: bool,
}

impl Rollouts {
    fn configuration(&self) -> DeploymentConfiguration {
        DeploymentConfiguration::builder()
            .set_maximum_percent(self.maximum_percent)
            .set_minimum_healthy_percent(self.minimum_healthy_percent)
            .deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(!self.no_circuit_breaker)
                    .rollback(!self.no_circuit_breaker && !self.no_rollback)
                    .build(),
            )
            .build()
    }

    fn given(&self) -> bool {
        self.maximum_percent.is_some()
            || self.minimum_healthy_percent.is_some()
            || self.no_circuit_breaker
            || self.no_rollback
    }
}

#[derive(Args)]
pub struct ServiceCreate {
    /// The service's name.
    name: String,
    /// The task definition: family, family:revision or ARN.
    #[arg(long)]
    task_definition: String,
    #[arg(long, default_value_t = 1)]
    desired_count: i32,
    #[command(flatten)]
    rollouts: Rollouts,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ServiceUpdate {
    /// The service's name or ARN.
    name: String,
    #[arg(long)]
    task_definition: Option<String>,
    #[arg(long)]
    desired_count: Option<i32>,
    /// Start a new deployment even if nothing else changes (new tasks replace the old).
    #[arg(long)]
    force_new_deployment: bool,
    #[command(flatten)]
    rollouts: Rollouts,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ServiceScale {
    /// The service's name or ARN.
    name: String,
    /// The new desired count.
    count: i32,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct ServiceDelete {
    /// The service's name or ARN.
    name: String,
    /// Delete it even though its desired count is not zero (its tasks are stopped).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    common: Common,
}

/// A deployment of a service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed: i32,
    pub rollout_state: String,
    pub rollout_reason: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// An event of a service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    pub at: Option<i64>,
    pub message: String,
}

/// A service as `berth` shows it; `health` sums it up: steady, deploying, failed or the
/// service's status when it is not ACTIVE.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub health: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub circuit_breaker: bool,
    pub rollback: bool,
    pub created_at: Option<i64>,
    pub deployments: Vec<DeploymentView>,
    /// Newest first, as ECS lists them.
    pub events: Vec<EventView>,
}

/// steady: one deployment, completed, all desired tasks running; failed: the PRIMARY's
/// rollout failed; deploying: anything in between.
pub fn health(status: &str, desired: i32, running: i32, deployments: &[DeploymentView]) -> String {
    if status != "ACTIVE" {
        return status.to_owned();
    }
    match deployments.first() {
        Some(p) if p.rollout_state == "FAILED" => "failed".into(),
        Some(p)
            if deployments.len() == 1 && p.rollout_state == "COMPLETED" && running == desired =>
        {
            "steady".into()
        }
        _ => "deploying".into(),
    }
}

impl From<&Service> for ServiceView {
    fn from(s: &Service) -> ServiceView {
        let deployments: Vec<DeploymentView> = s
            .deployments()
            .iter()
            .map(|d| DeploymentView {
                id: d.id().unwrap_or_default().to_owned(),
                status: d.status().unwrap_or_default().to_owned(),
                task_definition: definition(d.task_definition().unwrap_or_default()).to_owned(),
                desired: d.desired_count(),
                running: d.running_count(),
                pending: d.pending_count(),
                failed: d.failed_tasks(),
                rollout_state: d.rollout_state().map_or("", |r| r.as_str()).to_owned(),
                rollout_reason: d.rollout_state_reason().map(str::to_owned),
                created_at: d.created_at().map(|t| t.secs()),
                updated_at: d.updated_at().map(|t| t.secs()),
            })
            .collect();
        let breaker = s
            .deployment_configuration()
            .and_then(|c| c.deployment_circuit_breaker());
        let status = s.status().unwrap_or_default().to_owned();
        ServiceView {
            arn: s.service_arn().unwrap_or_default().to_owned(),
            name: s.service_name().unwrap_or_default().to_owned(),
            health: health(&status, s.desired_count(), s.running_count(), &deployments),
            status,
            task_definition: definition(s.task_definition().unwrap_or_default()).to_owned(),
            desired: s.desired_count(),
            running: s.running_count(),
            pending: s.pending_count(),
            circuit_breaker: breaker.is_some_and(|b| b.enable()),
            rollback: breaker.is_some_and(|b| b.rollback()),
            created_at: s.created_at().map(|t| t.secs()),
            deployments,
            events: s
                .events()
                .iter()
                .map(|e| EventView {
                    id: e.id().unwrap_or_default().to_owned(),
                    at: e.created_at().map(|t| t.secs()),
                    message: e.message().unwrap_or_default().to_owned(),
                })
                .collect(),
        }
    }
}

fn health_cell(health: &str) -> Cell {
    let tone = match health {
        "steady" => Tone::Good,
        "failed" => Tone::Bad,
        _ => Tone::Warn,
    };
    Cell {
        text: health.to_owned(),
        tone,
    }
}

/// The rows of a service table, shared with `berth status`.
pub fn rows(services: &[ServiceView]) -> Vec<Vec<Cell>> {
    services
        .iter()
        .map(|s| {
            vec![
                Cell::from(s.name.as_str()),
                health_cell(&s.health),
                Cell::from(s.task_definition.as_str()),
                Cell::from(s.desired.to_string()),
                Cell::from(s.running.to_string()),
                Cell::from(s.pending.to_string()),
                Cell::from(s.deployments.len().to_string()),
            ]
        })
        .collect()
}

pub const HEADERS: [&str; 7] = [
    "SERVICE",
    "HEALTH",
    "DEFINITION",
    "DESIRED",
    "RUNNING",
    "PENDING",
    "DEPLOYMENTS",
];

pub fn render_list(services: &[ServiceView], paint: Paint) -> String {
    table(&HEADERS, &rows(services), paint, "")
}

fn render_describe(services: &[ServiceView], paint: Paint) -> String {
    services
        .iter()
        .map(|s| {
            let mut out = fields(
                &[
                    ("Name", s.name.clone()),
                    ("ARN", s.arn.clone()),
                    ("Status", s.status.clone()),
                    ("Health", s.health.clone()),
                    ("Definition", s.task_definition.clone()),
                    (
                        "Tasks",
                        format!(
                            "{} desired, {} running, {} pending",
                            s.desired, s.running, s.pending
                        ),
                    ),
                    (
                        "Circuit breaker",
                        match (s.circuit_breaker, s.rollback) {
                            (true, true) => "on, with rollback",
                            (true, false) => "on, no rollback",
                            _ => "off",
                        }
                        .into(),
                    ),
                    ("Created", time(s.created_at)),
                ],
                paint,
            );
            out.push_str("Deployments:\n");
            let rows: Vec<Vec<Cell>> = s
                .deployments
                .iter()
                .map(|d| {
                    vec![
                        Cell::from(d.id.as_str()),
                        Cell::status(d.status.as_str()),
                        Cell::from(d.task_definition.as_str()),
                        Cell::from(format!("{}/{}", d.running, d.desired)),
                        Cell::from(d.pending.to_string()),
                        Cell::from(d.failed.to_string()),
                        Cell::status(d.rollout_state.as_str()),
                        Cell::from(or_dash(d.rollout_reason.as_deref())),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "ID",
                    "STATUS",
                    "DEFINITION",
                    "RUNNING",
                    "PENDING",
                    "FAILED",
                    "ROLLOUT",
                    "REASON",
                ],
                &rows,
                paint,
                "  ",
            ));
            out.push_str("Events:\n");
            for e in s.events.iter().take(10) {
                out.push_str(&format!("  {}  {}\n", time(e.at), e.message));
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// DescribeServices, ten at a time (ECS's limit); a service the server does not know is an
/// error.
pub async fn describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    names: &[String],
) -> Result<Vec<ServiceView>> {
    let mut services = Vec::new();
    for chunk in names.chunks(10) {
        let answer = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await?;
        if let Some(f) = answer.failures().first() {
            bail!(
                "service {}: {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or_default()
            );
        }
        services.extend(answer.services().iter().map(ServiceView::from));
    }
    Ok(services)
}

/// Every service of the cluster.
pub async fn fetch(ecs: &aws_sdk_ecs::Client, cluster: &str) -> Result<Vec<ServiceView>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .list_services()
            .cluster(cluster)
            .set_next_token(token)
            .send()
            .await?;
        arns.extend(page.service_arns().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut services = describe(ecs, cluster, &arns).await?;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(services)
}

/// Follows the service until `rollout` decides, printing events as they come above the
/// deployments' counts.
async fn follow(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
    mut rollout: Rollout,
    wait: &WaitArgs,
) -> Result<ServiceView> {
    let mut progress = Progress::start();
    let deadline = Instant::now() + Duration::from_secs(wait.timeout);
    loop {
        let service = describe(ecs, cluster, &[name.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("service {name} is gone"))?;
        let step = rollout.observe(&service);
        step.events.iter().for_each(|e| progress.println(e));
        progress.update(step.progress.clone(), step.done);
        match step.verdict {
            Verdict::Done => {
                progress.finish();
                return Ok(service);
            }
            Verdict::Failed(why) => {
                progress.finish();
                return Err(Exit::Failed(why).into());
            }
            Verdict::Waiting if Instant::now() >= deadline => {
                progress.finish();
                return Err(
                    Exit::TimedOut(format!("after {}s: {}", wait.timeout, step.progress)).into(),
                );
            }
            Verdict::Waiting => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// After a write that answered `service`: follows it with `--wait`, then prints it.
async fn finish(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: Option<&Service>,
    goal: Goal,
    wait: &WaitArgs,
    common: &Common,
) -> Result<()> {
    let Some(service) = service.map(ServiceView::from) else {
        bail!("the server answered without the service");
    };
    let service = if wait.wait {
        let deployment = service
            .deployments
            .first()
            .map(|d| d.id.clone())
            .unwrap_or_default();
        let rollout = Rollout::new(deployment, goal, &service);
        follow(ecs, cluster, &service.name, rollout, wait).await?
    } else {
        service
    };
    let paint = Paint::detect();
    emit(common.output, &service, || {
        render_list(std::slice::from_ref(&service), paint)
    })
}

pub async fn run(cmd: ServiceCmd) -> Result<()> {
    let paint = Paint::detect();
    match cmd {
        ServiceCmd::Ls(a) => {
            let services = fetch(&a.common.clients()?.ecs, &a.cluster.cluster).await?;
            emit(a.common.output, &services, || render_list(&services, paint))
        }
        ServiceCmd::Describe(a) => {
            let ecs = a.common.clients()?.ecs;
            let services = describe(&ecs, &a.cluster.cluster, &a.services).await?;
            emit(a.common.output, &services, || {
                render_describe(&services, paint)
            })
        }
        ServiceCmd::Create(a) => {
            let ecs = a.common.clients()?.ecs;
            let answer = ecs
                .create_service()
                .cluster(&a.cluster.cluster)
                .service_name(&a.name)
                .task_definition(&a.task_definition)
                .desired_count(a.desired_count)
                .deployment_configuration(a.rollouts.configuration())
                .send()
                .await?;
            finish(
                &ecs,
                &a.cluster.cluster,
                answer.service(),
                Goal::Deployment,
                &a.wait,
                &a.common,
            )
            .await
        }
        ServiceCmd::Update(a) => {
            let ecs = a.common.clients()?.ecs;
            let answer = ecs
                .update_service()
                .cluster(&a.cluster.cluster)
                .service(&a.name)
                .set_task_definition(a.task_definition)
                .set_desired_count(a.desired_count)
                .force_new_deployment(a.force_new_deployment)
                .set_deployment_configuration(
                    a.rollouts.given().then(|| a.rollouts.configuration()),
                )
                .send()
                .await?;
            finish(
                &ecs,
                &a.cluster.cluster,
                answer.service(),
                Goal::Deployment,
                &a.wait,
                &a.common,
            )
            .await
        }
        ServiceCmd::Scale(a) => {
            let ecs = a.common.clients()?.ecs;
            let answer = ecs
                .update_service()
                .cluster(&a.cluster.cluster)
                .service(&a.name)
                .desired_count(a.count)
                .send()
                .await?;
            finish(
                &ecs,
                &a.cluster.cluster,
                answer.service(),
                Goal::Deployment,
                &a.wait,
                &a.common,
            )
            .await
        }
        ServiceCmd::Delete(a) => {
            let ecs = a.common.clients()?.ecs;
            let answer = ecs
                .delete_service()
                .cluster(&a.cluster.cluster)
                .service(&a.name)
                .force(a.force)
                .send()
                .await?;
            finish(
                &ecs,
                &a.cluster.cluster,
                answer.service(),
                Goal::Deleted,
                &a.wait,
                &a.common,
            )
            .await
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn deployment(
        id: &str,
        status: &str,
        rollout: &str,
        running: i32,
        pending: i32,
    ) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: "web:2".into(),
            desired: 2,
            running,
            pending,
            failed: if rollout == "FAILED" { 3 } else { 0 },
            rollout_state: rollout.into(),
            rollout_reason: (rollout == "FAILED")
                .then(|| "ECS deployment circuit breaker: tasks failed to start.".into()),
            created_at: Some(1_700_000_000),
            updated_at: Some(1_700_000_100),
        }
    }

    pub fn service(deployments: Vec<DeploymentView>) -> ServiceView {
        let running = deployments.iter().map(|d| d.running).sum();
        let pending = deployments.iter().map(|d| d.pending).sum();
        ServiceView {
            arn: "arn:aws:ecs:us-east-1:000000000000:service/default/web".into(),
            name: "web".into(),
            status: "ACTIVE".into(),
            health: health("ACTIVE", 2, running, &deployments),
            task_definition: "web:2".into(),
            desired: 2,
            running,
            pending,
            circuit_breaker: true,
            rollback: true,
            created_at: Some(1_700_000_000),
            deployments,
            events: vec![EventView {
                id: "e1".into(),
                at: Some(1_700_000_000),
                message: "(service web) has started 2 tasks.".into(),
            }],
        }
    }

    #[test]
    fn services_render_with_their_health_and_deployments() {
        let steady = service(vec![deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 2, 0)]);
        let mut rolling = service(vec![
            deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 1, 1),
            deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 1, 0),
        ]);
        rolling.name = "api".into();
        let mut failed = service(vec![deployment("ecs-svc/3", "PRIMARY", "FAILED", 0, 0)]);
        failed.name = "worker".into();
        assert_eq!(
            (
                steady.health.as_str(),
                rolling.health.as_str(),
                failed.health.as_str()
            ),
            ("steady", "deploying", "failed")
        );
        insta::assert_snapshot!(render_list(
            &[steady, rolling.clone(), failed],
            Paint(false)
        ));
        insta::assert_snapshot!(render_describe(&[rolling], Paint(false)));
    }
}
