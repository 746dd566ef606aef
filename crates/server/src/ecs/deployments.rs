//! ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions,
//! StopServiceDeployment: a service's deployment history as ECS reports it.
//!
//! ```text
//!  berth deployment (ecs-svc/<digits>) ──► ECS service deployment  service-deployment/c/s/<digits>
//!                                     └──► ECS service revision    service-revision/c/s/<digits>
//!  Service.deployments (live, PRIMARY first) + Service.past_deployments (drained, newest first)
//! ```
//! ECS separates a *revision* (what is deployed) from a *deployment* (moving to it); berth makes
//! one deployment per revision change, so the two share an id and the history is the
//! service's own deployments: the live ones and the most recent drained ones the reconciler
//! retires into `past_deployments`. A circuit-breaker rollback is a new berth deployment that
//! the failed one points to (`rolled_back_by`), which is how the failed one reports
//! ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED, as ECS does.
//!
//! `lifecycleStage`: ECS's stages are those of a blue/green deployment; a rolling deployment
//! has no test or production traffic to shift and berth no bake time, so only the stages
//! that describe moving tasks from the old revisions to the new one are reported
//! ([`lifecycle_stage`]), read from the deployment's task counts:
//!
//! ```text
//!  IN_PROGRESS, no task of the target yet ──► PRE_SCALE_UP
//!                     … and more than one source revision still runs tasks ──► RECONCILE_SERVICE
//!  IN_PROGRESS, the target runs fewer than it asks for ──► SCALE_UP
//!  IN_PROGRESS, the target runs all it asks for (old revisions scaling to 0) ──► CLEAN_UP
//!  SUCCESSFUL (every stage passed) ──► CLEAN_UP
//!  stopped, rolled back: no stage (which one it stopped in is not recorded)
//! ```

use std::cmp::Reverse;

use berth_api::types::{self as api, enums};
use berth_api::{EcsError, ErrorCode};
use berth_model::Millis;
use berth_model::arn::{ArnContext, parse_deployment_arn};
use berth_model::service::{Deployment, RolloutState, Service, ServiceStatus, failure_threshold};
use berth_model::validate::{list_len, max_results, one_of, required, required_str};
use berth_scheduler::service::deployment_id;
use berth_state::{State, TaskFilter};

use super::services::{change_service, service_ref};
use super::{Ctx, active_cluster, render};
use crate::App;
use crate::pagination;

/// ARNs one Describe call may name.
const MAX_DESCRIBE: usize = 20;

const DEPLOYMENT: &str = "service-deployment";
const REVISION: &str = "service-revision";

/// Its ECS status and the reason for it.
fn status(s: &Service, d: &Deployment) -> (&'static str, Option<String>) {
    let successor = d.rolled_back_by.as_deref().and_then(|id| s.deployment(id));
    let primary =
        s.status == ServiceStatus::Active && s.deployments.first().is_some_and(|p| p.id == d.id);
    let status = d.history_status(successor, primary);
    let reason = match (status, successor) {
        ("STOPPED", None) if d.rollout_state == RolloutState::InProgress => {
            Some("Superseded by a newer deployment of the service before it completed.".into())
        }
        (_, Some(r)) if status.starts_with("ROLLBACK") => Some(format!(
            "{} Rolling back to deployment {}.",
            d.rollout_state_reason
                .as_deref()
                .unwrap_or("The deployment was stopped."),
            r.rollback_of.as_deref().unwrap_or(&r.id)
        )),
        _ => d.rollout_state_reason.clone(),
    };
    (status, reason)
}

/// The revision a deployment deploys, with its tasks counted.
fn summary(
    ctx: &ArnContext,
    state: &State,
    s: &Service,
    d: &Deployment,
) -> api::ServiceRevisionSummary {
    let (running, pending) = render::task_counts(
        state,
        s,
        TaskFilter {
            started_by: Some(d.id.clone()),
            group: Some(s.group()),
            desired_status: Some(berth_model::entity::DesiredStatus::Running),
            ..Default::default()
        },
    );
    api::ServiceRevisionSummary {
        arn: Some(ctx.service_revision(&s.cluster, &s.name, &d.id)),
        requested_task_count: Some(i32::try_from(d.desired_count).unwrap_or(i32::MAX)),
        running_task_count: Some(running),
        pending_task_count: Some(pending),
        ..Default::default()
    }
}

fn brief(ctx: &ArnContext, s: &Service, d: &Deployment) -> api::ServiceDeploymentBrief {
    let (status, reason) = status(s, d);
    api::ServiceDeploymentBrief {
        service_deployment_arn: Some(ctx.service_deployment(&s.cluster, &s.name, &d.id)),
        service_arn: Some(ctx.service(&s.cluster, &s.name)),
        cluster_arn: Some(ctx.cluster(&s.cluster)),
        started_at: Some(d.created_at.as_epoch_seconds()),
        created_at: Some(d.created_at.as_epoch_seconds()),
        finished_at: d.finished_at.map(Millis::as_epoch_seconds),
        target_service_revision_arn: Some(ctx.service_revision(&s.cluster, &s.name, &d.id)),
        status: Some(status.into()),
        status_reason: reason,
    }
}

/// The ECS lifecycle stage of a rolling deployment in history `status` whose target asks
/// for `requested` tasks and runs `target` (running, pending) of them, while `sources_live`
/// of the revisions it replaces still have tasks.
fn lifecycle_stage(
    status: &str,
    requested: u32,
    target: (i32, i32),
    sources_live: usize,
) -> Option<&'static str> {
    let (running, pending) = target;
    match status {
        "SUCCESSFUL" => Some("CLEAN_UP"),
        "IN_PROGRESS" if i64::from(running) >= i64::from(requested) => Some("CLEAN_UP"),
        "IN_PROGRESS" if running + pending > 0 => Some("SCALE_UP"),
        "IN_PROGRESS" if sources_live > 1 => Some("RECONCILE_SERVICE"),
        "IN_PROGRESS" => Some("PRE_SCALE_UP"),
        _ => None,
    }
}

fn full(ctx: &ArnContext, state: &State, s: &Service, d: &Deployment) -> api::ServiceDeployment {
    let (status, reason) = status(s, d);
    let target = summary(ctx, state, s, d);
    let sources: Vec<api::ServiceRevisionSummary> = d
        .sources
        .iter()
        .filter_map(|id| s.deployment(id))
        .map(|source| summary(ctx, state, s, source))
        .collect();
    let stage = lifecycle_stage(
        status,
        d.desired_count,
        (
            target.running_task_count.unwrap_or(0),
            target.pending_task_count.unwrap_or(0),
        ),
        sources
            .iter()
            .filter(|r| r.running_task_count.unwrap_or(0) + r.pending_task_count.unwrap_or(0) > 0)
            .count(),
    );
    let breaker = s.deployment_configuration.circuit_breaker;
    let monitor = if !breaker.enable {
        "DISABLED"
    } else if d.rollout_state == RolloutState::Failed
        && d.failed_tasks >= failure_threshold(d.desired_count)
    {
        "TRIGGERED"
    } else if d.rollout_state == RolloutState::InProgress {
        "MONITORING"
    } else {
        "MONITORING_COMPLETE"
    };
    let stopped = matches!(status, "STOPPED") || status.starts_with("ROLLBACK");
    let rollback = d
        .rolled_back_by
        .as_deref()
        .and_then(|id| s.deployment(id))
        .map(|r| api::Rollback {
            // Why it was rolled back: what stopped it (the circuit breaker, or a caller).
            reason: d.rollout_state_reason.clone(),
            started_at: Some(r.created_at.as_epoch_seconds()),
            service_revision_arn: Some(ctx.service_revision(&s.cluster, &s.name, &r.id)),
        });
    let config = &s.deployment_configuration;
    api::ServiceDeployment {
        service_deployment_arn: Some(ctx.service_deployment(&s.cluster, &s.name, &d.id)),
        service_arn: Some(ctx.service(&s.cluster, &s.name)),
        cluster_arn: Some(ctx.cluster(&s.cluster)),
        created_at: Some(d.created_at.as_epoch_seconds()),
        started_at: Some(d.created_at.as_epoch_seconds()),
        finished_at: d.finished_at.map(Millis::as_epoch_seconds),
        stopped_at: stopped.then(|| d.finished_at.unwrap_or(d.updated_at).as_epoch_seconds()),
        updated_at: Some(d.updated_at.as_epoch_seconds()),
        source_service_revisions: Some(sources),
        target_service_revision: Some(target),
        status: Some(status.into()),
        status_reason: reason,
        lifecycle_stage: stage.map(str::to_owned),
        deployment_configuration: Some(api::DeploymentConfiguration {
            maximum_percent: Some(i32::try_from(config.maximum_percent).unwrap_or(i32::MAX)),
            minimum_healthy_percent: Some(
                i32::try_from(config.minimum_healthy_percent).unwrap_or(i32::MAX),
            ),
            deployment_circuit_breaker: Some(api::DeploymentCircuitBreaker {
                enable: Some(breaker.enable),
                rollback: Some(breaker.rollback),
                ..Default::default()
            }),
            ..Default::default()
        }),
        rollback,
        deployment_circuit_breaker: Some(api::ServiceDeploymentCircuitBreaker {
            status: Some(monitor.into()),
            failure_count: Some(i32::try_from(d.failed_tasks).unwrap_or(i32::MAX)),
            threshold: Some(i32::try_from(failure_threshold(d.desired_count)).unwrap_or(i32::MAX)),
        }),
        ..Default::default()
    }
}

fn revision(ctx: &ArnContext, state: &State, s: &Service, d: &Deployment) -> api::ServiceRevision {
    let strategy = &d.capacity_provider_strategy;
    let images = state.task_definition(&d.family, d.revision).map(|t| {
        t.spec
            .container_definitions
            .iter()
            .flatten()
            .map(|c| api::ContainerImage {
                container_name: c.name.clone(),
                image: c.image.clone(),
                image_digest: None,
            })
            .collect()
    });
    api::ServiceRevision {
        service_revision_arn: Some(ctx.service_revision(&s.cluster, &s.name, &d.id)),
        service_arn: Some(ctx.service(&s.cluster, &s.name)),
        cluster_arn: Some(ctx.cluster(&s.cluster)),
        task_definition: Some(ctx.task_definition(&d.family, d.revision)),
        capacity_provider_strategy: (!strategy.is_empty())
            .then(|| strategy.iter().map(|i| i.render()).collect()),
        launch_type: strategy.is_empty().then(|| "EC2".into()),
        load_balancers: Some(Vec::new()),
        service_registries: Some(Vec::new()),
        container_images: images,
        guard_duty_enabled: Some(false),
        created_at: Some(d.created_at.as_epoch_seconds()),
        ..Default::default()
    }
}

/// Looks up every ARN of `kind` in `state`: the found ones rendered, the rest MISSING.
fn describe_each<T>(
    state: &State,
    arns: &[String],
    kind: &str,
    render: impl Fn(&Service, &Deployment) -> T,
) -> Result<(Vec<T>, Vec<api::Failure>), EcsError> {
    list_len(arns, kind, true, MAX_DESCRIBE)?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in arns {
        let (cluster, name, id) =
            parse_deployment_arn(arn, kind).map_err(|e| EcsError::invalid(e.to_string()))?;
        match state
            .service(&cluster, &name)
            .and_then(|s| s.deployment(&id).map(|d| (s, d)))
        {
            Some((s, d)) => found.push(render(s, d)),
            None => failures.push(render::missing(arn.clone())),
        }
    }
    Ok((found, failures))
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListServiceDeploymentsRequest,
) -> Result<api::ListServiceDeploymentsResponse, EcsError> {
    const OP: &str = "ListServiceDeployments";
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    let max = max_results(req.max_results, 20, 100)?;
    let wanted: Vec<&str> = req
        .status
        .iter()
        .flatten()
        .map(|s| one_of(s, enums::SERVICE_DEPLOYMENT_STATUS, "status").map_err(EcsError::from))
        .collect::<Result<_, _>>()?;
    let bound = |v: Option<f64>, what: &str| {
        v.map(|s| {
            Millis::from_epoch_seconds(s)
                .ok_or_else(|| EcsError::invalid(format!("createdAt.{what} is not a time")))
        })
        .transpose()
    };
    let window = req.created_at.as_ref();
    let before = bound(window.and_then(|w| w.before), "before")?;
    let after = bound(window.and_then(|w| w.after), "after")?;
    let token = req.next_token.as_deref().filter(|t| !t.is_empty());
    let from: Option<(Reverse<i64>, String)> =
        pagination::decode(OP, token)?.map(|(created, id): (i64, String)| (Reverse(created), id));
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let service = state
        .service(&cluster, &name)
        .ok_or(berth_model::Error::ServiceNotFound)?;
    let mut all: Vec<&Deployment> = service
        .deployments
        .iter()
        .chain(&service.past_deployments)
        .collect();
    all.sort_by_key(|d| (Reverse(d.created_at.0), d.id.clone()));
    let matching = all
        .into_iter()
        .filter(|d| {
            from.as_ref()
                .is_none_or(|f| (Reverse(d.created_at.0), d.id.clone()) > *f)
        })
        .filter(|d| before.is_none_or(|b| d.created_at < b))
        .filter(|d| after.is_none_or(|a| d.created_at > a))
        .filter(|d| wanted.is_empty() || wanted.contains(&status(service, d).0));
    let (page, next) = pagination::page(OP, matching, max, |d| (d.created_at.0, d.id.clone()));
    Ok(api::ListServiceDeploymentsResponse {
        service_deployments: Some(page.iter().map(|d| brief(&ctx.arn, service, d)).collect()),
        next_token: next,
    })
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeServiceDeploymentsRequest,
) -> Result<api::DescribeServiceDeploymentsResponse, EcsError> {
    let arns = required(&req.service_deployment_arns, "serviceDeploymentArns")?;
    let state = app.node.state();
    let (found, failures) = describe_each(&state, arns, DEPLOYMENT, |s, d| {
        full(&ctx.arn, &state, s, d)
    })?;
    Ok(api::DescribeServiceDeploymentsResponse {
        service_deployments: Some(found),
        failures: Some(failures),
    })
}

pub async fn describe_revisions(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeServiceRevisionsRequest,
) -> Result<api::DescribeServiceRevisionsResponse, EcsError> {
    let arns = required(&req.service_revision_arns, "serviceRevisionArns")?;
    let state = app.node.state();
    let (found, failures) = describe_each(&state, arns, REVISION, |s, d| {
        revision(&ctx.arn, &state, s, d)
    })?;
    Ok(api::DescribeServiceRevisionsResponse {
        service_revisions: Some(found),
        failures: Some(failures),
    })
}

/// StopServiceDeployment with ROLLBACK (the only stop type ECS documents): the PRIMARY
/// deployment, while in progress, is replaced by a rollback to the newest completed one, as
/// the circuit breaker would have done.
pub async fn stop(
    app: &App,
    ctx: &Ctx,
    req: api::StopServiceDeploymentRequest,
) -> Result<api::StopServiceDeploymentResponse, EcsError> {
    let arn = required_str(&req.service_deployment_arn, "serviceDeploymentArn")?;
    let (cluster, name, id) =
        parse_deployment_arn(arn, DEPLOYMENT).map_err(|e| EcsError::invalid(e.to_string()))?;
    if let Some(t) = req.stop_type.as_deref()
        && one_of(t, enums::STOP_SERVICE_DEPLOYMENT_STOP_TYPE, "stopType")? != "ROLLBACK"
    {
        return Err(EcsError::invalid(format!(
            "stopType {t} is not supported: berth stops a deployment by rolling it back (ROLLBACK)"
        )));
    }
    let not_found = || {
        EcsError::new(
            ErrorCode::ServiceDeploymentNotFoundException,
            format!("The service deployment {arn} does not exist."),
        )
    };
    if app
        .node
        .state()
        .service(&cluster, &name)
        .and_then(|s| s.deployment(&id))
        .is_none()
    {
        return Err(not_found());
    }
    let conflict = |why: String| EcsError::new(ErrorCode::ConflictException, why);
    change_service(app, ctx, &cluster, &name, |_, current| {
        let d = current.deployment(&id).ok_or_else(not_found)?;
        let ongoing = current.status == ServiceStatus::Active
            && current.deployments.first().is_some_and(|p| p.id == d.id)
            && d.rollout_state == RolloutState::InProgress;
        if !ongoing {
            return Err(conflict(format!(
                "The service deployment {arn} is not in progress ({}), so it cannot be stopped",
                status(current, d).0
            )));
        }
        let now = Millis::now();
        let mut next = current.clone();
        let restoring = d.rollback_of.clone();
        let reason = |to: &str| {
            format!("StopServiceDeployment: rolling back to deploymentId {to}.")
        };
        let new = deployment_id(&mut rand::rng());
        next.roll_back(new, reason, restoring.as_deref(), now)
            .ok_or_else(|| {
                conflict(format!(
                    "The service deployment {arn} cannot be rolled back: the service has no completed deployment to return to"
                ))
            })?;
        let stopped = &mut next.deployments[1];
        stopped.rollout_state = RolloutState::Failed;
        stopped.rollout_state_reason = Some("The deployment was stopped by StopServiceDeployment.".into());
        stopped.updated_at = now;
        stopped.finished_at = Some(now);
        Ok(Some(next))
    })
    .await?;
    Ok(api::StopServiceDeploymentResponse {
        service_deployment_arn: Some(arn.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_deployments_report_the_stages_that_mean_something_for_them() {
        let values = |stages: &[Option<&str>]| {
            stages
                .iter()
                .flatten()
                .all(|s| enums::SERVICE_DEPLOYMENT_LIFECYCLE_STAGE.contains(s))
        };
        let stages = [
            lifecycle_stage("IN_PROGRESS", 3, (0, 0), 1),
            lifecycle_stage("IN_PROGRESS", 3, (0, 0), 2),
            lifecycle_stage("IN_PROGRESS", 3, (0, 1), 2),
            lifecycle_stage("IN_PROGRESS", 3, (2, 1), 1),
            lifecycle_stage("IN_PROGRESS", 3, (3, 0), 1),
            lifecycle_stage("IN_PROGRESS", 0, (0, 0), 1),
            lifecycle_stage("SUCCESSFUL", 3, (3, 0), 0),
        ];
        assert_eq!(
            stages,
            [
                Some("PRE_SCALE_UP"),
                Some("RECONCILE_SERVICE"),
                Some("SCALE_UP"),
                Some("SCALE_UP"),
                Some("CLEAN_UP"),
                Some("CLEAN_UP"),
                Some("CLEAN_UP"),
            ]
        );
        assert!(values(&stages), "every stage is one of ECS's");
        for stopped in [
            "STOPPED",
            "ROLLBACK_IN_PROGRESS",
            "ROLLBACK_SUCCESSFUL",
            "ROLLBACK_FAILED",
        ] {
            assert_eq!(lifecycle_stage(stopped, 3, (1, 0), 1), None, "{stopped}");
        }
    }
}
