//! UpdateTaskProtection and GetTaskProtection: task scale-in protection.
//!
//! Protection is stored on the task as the time it lapses (`Task::protected_until`); the
//! service reconciler never chooses a protected task for scale-in or for replacement by a
//! deployment, and looks at the service again when the protection lapses. Only tasks of a
//! service can be protected (others fail TASK_NOT_VALID, as in ECS).

use berth_api::EcsError;
use berth_api::types as api;
use berth_model::Millis;
use berth_model::TaskId;
use berth_model::arn::parse_task;
use berth_model::command::{Partial, TASK_NOT_VALID, UpdateTaskProtection};
use berth_model::entity::Task;
use berth_model::service::service_of_group;
use berth_model::validate::{list_len, required};
use berth_state::TaskFilter;

use super::{Ctx, existing_cluster, render, task_ref};
use crate::App;

/// Protection lasts this long unless the request says otherwise (ECS's default, 2 hours).
const DEFAULT_MINUTES: i32 = 120;
/// The longest protection ECS grants (48 hours).
const MAX_MINUTES: i32 = 2880;

fn protected_task(ctx: &Ctx, t: &Task, now: Millis) -> api::ProtectedTask {
    let enabled = t.is_live() && t.protected_at(now);
    api::ProtectedTask {
        task_arn: Some(ctx.arn.task(&t.cluster, t.id)),
        protection_enabled: Some(enabled),
        expiration_date: t
            .protected_until
            .filter(|_| enabled)
            .map(Millis::as_epoch_seconds),
    }
}

/// The task ids of `refs` in `cluster`; the ones that name no task of it are MISSING failures
/// (with the ARN ECS would give them).
fn task_ids(
    ctx: &Ctx,
    cluster: &str,
    refs: &[String],
    failures: &mut Vec<api::Failure>,
) -> Vec<TaskId> {
    let mut ids = Vec::new();
    for r in refs {
        match task_ref(r, cluster) {
            Ok(id) => ids.push(id),
            Err(_) => failures.push(render::missing(match parse_task(r) {
                Ok((named, id)) => ctx.arn.task(named.as_deref().unwrap_or(cluster), id),
                Err(_) => r.clone(),
            })),
        }
    }
    ids
}

pub async fn update(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateTaskProtectionRequest,
) -> Result<api::UpdateTaskProtectionResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let refs = required(&req.tasks, "tasks")?;
    list_len(refs, "tasks", true, 10)?;
    let enabled = *required(&req.protection_enabled, "protectionEnabled")?;
    let minutes = req.expires_in_minutes.unwrap_or(DEFAULT_MINUTES);
    if enabled && !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(EcsError::invalid(format!(
            "expiresInMinutes must be between 1 and {MAX_MINUTES} (48 hours); got {minutes}"
        )));
    }
    let mut failures = Vec::new();
    let tasks = task_ids(ctx, &cluster, refs, &mut failures);
    let now = Millis::now();
    let until = enabled.then(|| now.saturating_add_ms(i64::from(minutes) * 60_000));
    let done = if tasks.is_empty() {
        Partial {
            done: Vec::new(),
            failures: Vec::new(),
        }
    } else {
        app.write_by(
            &ctx.principal,
            UpdateTaskProtection {
                cluster: cluster.as_str().into(),
                tasks,
                until,
            },
        )
        .await?
    };
    failures.extend(done.failures.iter().map(|f| render::failure(&ctx.arn, f)));
    Ok(api::UpdateTaskProtectionResponse {
        protected_tasks: Some(
            done.done
                .iter()
                .map(|t| protected_task(ctx, t, now))
                .collect(),
        ),
        failures: Some(failures),
    })
}

/// The protection of the tasks named, or of every protected task in the cluster when none is.
pub async fn get(
    app: &App,
    ctx: &Ctx,
    req: api::GetTaskProtectionRequest,
) -> Result<api::GetTaskProtectionResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let refs = req.tasks.as_deref().unwrap_or_default();
    list_len(refs, "tasks", false, 100)?;
    let state = app.node.state();
    let now = Millis::now();
    let mut failures = Vec::new();
    let mut protected = Vec::new();
    if refs.is_empty() {
        let all = TaskFilter::default();
        protected.extend(
            state
                .tasks_after(&cluster, &all, None)
                .filter(|t| t.is_live() && t.protected_at(now))
                .map(|t| protected_task(ctx, t, now)),
        );
    }
    for id in task_ids(ctx, &cluster, refs, &mut failures) {
        let arn = ctx.arn.task(&cluster, id);
        match state.task(id).filter(|t| *t.cluster == *cluster) {
            None => failures.push(render::missing(arn)),
            Some(t) if service_of_group(&t.group).is_none() => failures.push(api::Failure {
                arn: Some(arn),
                reason: Some(TASK_NOT_VALID.into()),
                detail: Some(
                    "The task is not part of a service: only service tasks can be protected."
                        .into(),
                ),
            }),
            Some(t) => protected.push(protected_task(ctx, t, now)),
        }
    }
    Ok(api::GetTaskProtectionResponse {
        protected_tasks: Some(protected),
        failures: Some(failures),
    })
}
