//! CreateTaskSet, DescribeTaskSets, UpdateTaskSet, UpdateServicePrimaryTaskSet, DeleteTaskSet:
//! the API of the EXTERNAL deployment controller.
//!
//! A task set lives inside its service's stored value, so every change here is the same
//! optimistic read-decide-commit as UpdateService's (`change_service`): decided on a snapshot,
//! committed as `PutService { expected_version }`, decided again if the reconciler wrote the
//! service meanwhile. What the handlers write is only the outside controller's intent — a new
//! set, its scale, which one is PRIMARY, that one is to go; starting and stopping tasks,
//! stability, and dropping a drained set are the reconciler's (scheduler/service/task_sets.rs).
//!
//! Answers follow the API reference: a task set's `tags` only when asked for (DescribeTaskSets
//! `include` TAGS, CreateTaskSet), and DescribeTaskSets of a deleted (INACTIVE) service is a
//! ServiceNotActiveException.

use std::sync::Arc;

use berth_api::types::{self as api, enums};
use berth_api::{EcsError, ErrorCode};
use berth_model::Millis;
use berth_model::arn::parse_task_set;
use berth_model::service::{
    MAX_TASK_SETS, Service, ServiceStatus, StabilityStatus, TaskSet, TaskSetStatus,
};
use berth_model::validate::{self, list_len, one_of, required, required_str};
use berth_scheduler::service::deployment_id;
use berth_state::State;

use super::services::{
    Unsupported, change_service, definition, guard_host_process_agents, placement_constraints,
    service_ref,
};
use super::tasks::launch_type;
use super::{Ctx, active_cluster, render};
use crate::App;

/// Task sets one DescribeTaskSets call may name.
const MAX_DESCRIBE: usize = 100;

/// Longest `clientToken` and `externalId` accepted.
const MAX_CLIENT_TOKEN: usize = 36;
const MAX_EXTERNAL_ID: usize = 255;

/// The service a task set call names, which must use the EXTERNAL deployment controller.
fn external(state: &State, cluster: &str, name: &str) -> Result<Arc<Service>, EcsError> {
    active_cluster(state, cluster)?;
    let service = state
        .service(cluster, name)
        .ok_or(berth_model::Error::ServiceNotFound)?;
    if !service.external() {
        return Err(EcsError::invalid(format!(
            "Service {name} uses the {} deployment controller: task sets are managed only on services created with deploymentController type EXTERNAL",
            service.deployment_controller
        )));
    }
    Ok(service.clone())
}

/// An ACTIVE EXTERNAL service, for the calls that change it.
fn changeable(service: &Service) -> Result<(), EcsError> {
    if service.status != ServiceStatus::Active {
        return Err(berth_model::Error::ServiceNotActive.into());
    }
    if !service.external() {
        return Err(EcsError::invalid(format!(
            "Service {} does not use the EXTERNAL deployment controller",
            service.name
        )));
    }
    Ok(())
}

/// The id a task set reference names; an ARN must name this cluster and service.
fn task_set_id(reference: &str, cluster: &str, service: &str) -> Result<String, EcsError> {
    let (owner, id) = parse_task_set(reference).map_err(|e| EcsError::invalid(e.to_string()))?;
    if let Some((c, s)) = owner
        && (c != cluster || s != service)
    {
        return Err(EcsError::invalid(format!(
            "Task set {} belongs to service {s} in cluster {c}, not {service} in {cluster}",
            validate::shorten(reference)
        )));
    }
    Ok(id)
}

fn not_found(id: &str) -> EcsError {
    EcsError::new(
        ErrorCode::TaskSetNotFoundException,
        format!("The specified task set {id} does not exist."),
    )
}

/// The position of task set `id` in `service`, which must not be DRAINING.
fn live_position(service: &Service, id: &str) -> Result<usize, EcsError> {
    let k = service
        .task_sets
        .iter()
        .position(|t| t.id == id)
        .ok_or_else(|| not_found(id))?;
    if service.task_sets[k].status == TaskSetStatus::Draining {
        return Err(EcsError::invalid(format!(
            "Task set {id} is being deleted (DRAINING) and cannot be changed"
        )));
    }
    Ok(k)
}

/// A scale: 0 to 100 PERCENT; CreateTaskSet's default is all of the service.
fn scale(given: Option<&api::Scale>) -> Result<f64, EcsError> {
    let Some(given) = given else {
        return Ok(100.0);
    };
    if let Some(unit) = given.unit.as_deref() {
        one_of(unit, enums::SCALE_UNIT, "scale.unit")?;
    }
    let value = *required(&given.value, "scale.value")?;
    if !(0.0..=100.0).contains(&value) {
        return Err(EcsError::invalid(format!(
            "scale.value is a percentage of the service's desiredCount, from 0 to 100; got {value}"
        )));
    }
    Ok(value)
}

/// An optional string of at most `max` printable characters; empty is none, as ECS takes an
/// empty `clientToken` (automation tools send one by default).
fn bounded(value: Option<&str>, name: &str, max: usize) -> Result<Option<String>, EcsError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if v.len() > max || v.chars().any(char::is_control) => Err(EcsError::invalid(
            format!("{name} must be 1 to {max} printable characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// A task set as ECS shows it: `tags` only when asked for (DescribeTaskSets `include`
/// TAGS, and CreateTaskSet's answer), as the API reference says.
fn rendered(
    ctx: &Ctx,
    state: &State,
    service: &Service,
    t: &TaskSet,
    with_tags: bool,
) -> api::TaskSet {
    api::TaskSet {
        tags: with_tags.then(|| render::tags(&t.tags)),
        ..render::task_set(&ctx.arn, state, service, t)
    }
}

/// A task set as an answer, counts from the newest state.
fn answer(app: &App, ctx: &Ctx, service: &Service, id: &str, with_tags: bool) -> api::TaskSet {
    let state = app.node.state();
    let set = service.task_sets.iter().find(|t| t.id == id);
    match set {
        Some(t) => rendered(ctx, &state, service, t, with_tags),
        // Dropped already (a DeleteTaskSet of an empty set, raced by the reconciler).
        None => api::TaskSet {
            id: Some(id.to_owned()),
            task_set_arn: Some(ctx.arn.task_set(&service.cluster, &service.name, id)),
            status: Some(TaskSetStatus::Draining.as_str().into()),
            ..Default::default()
        },
    }
}

pub async fn create(
    app: &App,
    ctx: &Ctx,
    req: api::CreateTaskSetRequest,
) -> Result<api::CreateTaskSetResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    Unsupported {
        load_balancers: req.load_balancers.as_deref(),
        service_registries: req.service_registries.as_deref(),
        network_configuration: req.network_configuration.as_ref(),
        platform_version: req.platform_version.as_deref(),
        ..Unsupported::default()
    }
    .check()?;
    launch_type(req.launch_type.as_deref())?;
    let scale = scale(req.scale.as_ref())?;
    let external_id = bounded(req.external_id.as_deref(), "externalId", MAX_EXTERNAL_ID)?;
    let token = bounded(req.client_token.as_deref(), "clientToken", MAX_CLIENT_TOKEN)?;
    let tags = validate::tags(req.tags.as_deref())?;
    external(&app.node.state(), &cluster, &name)?;

    let mut created = None;
    let service = change_service(app, ctx, &cluster, &name, |state, current| {
        changeable(current)?;
        // A retry of a create that went through answers with what it made.
        if let Some(t) = token.as_deref()
            && let Some(existing) = current
                .task_sets
                .iter()
                .find(|s| s.client_token.as_deref() == Some(t))
        {
            created = Some(existing.id.clone());
            return Ok(None);
        }
        let live = current
            .task_sets
            .iter()
            .filter(|t| t.status != TaskSetStatus::Draining)
            .count();
        if live >= MAX_TASK_SETS {
            return Err(EcsError::client(format!(
                "Service {name} already has {MAX_TASK_SETS} task sets (not counting ones being deleted), the most it can hold; delete one first"
            )));
        }
        let definition = definition(state, reference)?;
        ctx.allow_privileges(
            &definition.spec,
            Some(&cluster),
            "Running this task definition in a task set",
        )?;
        let mut constraints = placement_constraints(Some(definition), &current.placement_constraints)?;
        guard_host_process_agents(ctx, &definition.spec, &cluster, &mut constraints);
        let strategy = super::capacity::launch_strategy(
            state,
            &cluster,
            req.capacity_provider_strategy.as_deref(),
            req.launch_type.as_deref(),
        )?;
        let now = Millis::now();
        let id = deployment_id(&mut rand::rng());
        let mut next = current.clone();
        next.placement_constraints = constraints;
        next.task_sets.push(TaskSet {
            id: id.clone(),
            status: TaskSetStatus::Active,
            family: definition.family.clone(),
            revision: definition.revision,
            external_id: external_id.clone(),
            scale,
            capacity_provider_strategy: strategy,
            stability_status: StabilityStatus::Stabilizing,
            stability_status_at: now,
            tags: tags.clone(),
            client_token: token.clone(),
            created_at: now,
            updated_at: now,
        });
        created = Some(id);
        Ok(Some(next))
    })
    .await?;
    let id = created.ok_or_else(|| EcsError::server("the task set was not created"))?;
    Ok(api::CreateTaskSetResponse {
        task_set: Some(answer(app, ctx, &service, &id, true)),
    })
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeTaskSetsRequest,
) -> Result<api::DescribeTaskSetsResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    let mut include_tags = false;
    for v in req.include.as_deref().unwrap_or_default() {
        include_tags |= one_of(v, enums::TASK_SET_FIELD, "include value")? == "TAGS";
    }
    if let Some(refs) = &req.task_sets {
        list_len(refs, "taskSets", false, MAX_DESCRIBE)?;
    }
    let state = app.node.state();
    let service = external(&state, &cluster, &name)?;
    // A deleted service has no task sets to describe: ECS's ServiceNotActiveException.
    if service.status == ServiceStatus::Inactive {
        return Err(berth_model::Error::ServiceNotActive.into());
    }
    let render = |t: &TaskSet| rendered(ctx, &state, &service, t, include_tags);
    let (task_sets, failures) = match req.task_sets.as_deref() {
        None | Some([]) => (service.task_sets.iter().map(render).collect(), Vec::new()),
        Some(refs) => {
            let mut found = Vec::new();
            let mut failures = Vec::new();
            for r in refs {
                let id = task_set_id(r, &cluster, &name)?;
                match service.task_sets.iter().find(|t| t.id == id) {
                    Some(t) => found.push(render(t)),
                    None => failures.push(render::missing(ctx.arn.task_set(&cluster, &name, &id))),
                }
            }
            (found, failures)
        }
    };
    Ok(api::DescribeTaskSetsResponse {
        task_sets: Some(task_sets),
        failures: Some(failures),
    })
}

pub async fn update(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateTaskSetRequest,
) -> Result<api::UpdateTaskSetResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    let id = task_set_id(required_str(&req.task_set, "taskSet")?, &cluster, &name)?;
    let scale = scale(Some(required(&req.scale, "scale")?))?;
    external(&app.node.state(), &cluster, &name)?;
    let service = change_service(app, ctx, &cluster, &name, |_, current| {
        changeable(current)?;
        let k = live_position(current, &id)?;
        if current.task_sets[k].scale == scale {
            return Ok(None);
        }
        let mut next = current.clone();
        next.task_sets[k].scale = scale;
        next.task_sets[k].updated_at = Millis::now();
        Ok(Some(next))
    })
    .await?;
    Ok(api::UpdateTaskSetResponse {
        task_set: Some(answer(app, ctx, &service, &id, false)),
    })
}

pub async fn update_primary(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateServicePrimaryTaskSetRequest,
) -> Result<api::UpdateServicePrimaryTaskSetResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    let id = task_set_id(
        required_str(&req.primary_task_set, "primaryTaskSet")?,
        &cluster,
        &name,
    )?;
    external(&app.node.state(), &cluster, &name)?;
    let service = change_service(app, ctx, &cluster, &name, |_, current| {
        changeable(current)?;
        let k = live_position(current, &id)?;
        if current.task_sets[k].status == TaskSetStatus::Primary {
            return Ok(None);
        }
        let now = Millis::now();
        let mut next = current.clone();
        for (i, t) in next.task_sets.iter_mut().enumerate() {
            let status = if i == k {
                TaskSetStatus::Primary
            } else if t.status == TaskSetStatus::Primary {
                TaskSetStatus::Active
            } else {
                continue;
            };
            t.status = status;
            t.updated_at = now;
        }
        Ok(Some(next))
    })
    .await?;
    Ok(api::UpdateServicePrimaryTaskSetResponse {
        task_set: Some(answer(app, ctx, &service, &id, false)),
    })
}

pub async fn delete(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteTaskSetRequest,
) -> Result<api::DeleteTaskSetResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    let id = task_set_id(required_str(&req.task_set, "taskSet")?, &cluster, &name)?;
    let force = req.force.unwrap_or(false);
    external(&app.node.state(), &cluster, &name)?;
    let service = change_service(app, ctx, &cluster, &name, |_, current| {
        changeable(current)?;
        let set = current
            .task_sets
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| not_found(&id))?;
        if set.status == TaskSetStatus::Draining {
            return Ok(None);
        }
        if !force && set.status == TaskSetStatus::Primary {
            return Err(EcsError::invalid(format!(
                "Task set {id} is the service's PRIMARY task set: make another one PRIMARY first (UpdateServicePrimaryTaskSet), or delete it with force"
            )));
        }
        if !force && set.computed_desired_count(current.desired_count) > 0 {
            return Err(EcsError::invalid(format!(
                "Task set {id} is scaled above 0 ({} %): scale it to 0 first (UpdateTaskSet), or delete it with force",
                set.scale
            )));
        }
        let mut next = current.clone();
        for t in next.task_sets.iter_mut().filter(|t| t.id == id) {
            t.status = TaskSetStatus::Draining;
            t.updated_at = Millis::now();
        }
        Ok(Some(next))
    })
    .await?;
    Ok(api::DeleteTaskSetResponse {
        task_set: Some(answer(app, ctx, &service, &id, false)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_percentages_of_the_service() {
        let s = |value: Option<f64>, unit: Option<&str>| api::Scale {
            value,
            unit: unit.map(str::to_owned),
        };
        assert_eq!(scale(None).unwrap(), 100.0);
        assert_eq!(scale(Some(&s(Some(0.0), Some("PERCENT")))).unwrap(), 0.0);
        assert_eq!(scale(Some(&s(Some(33.3), None))).unwrap(), 33.3);
        for bad in [
            s(Some(100.5), None),
            s(Some(-1.0), None),
            s(Some(f64::NAN), None),
            s(None, Some("PERCENT")),
            s(Some(50.0), Some("TASKS")),
        ] {
            let e = scale(Some(&bad)).expect_err("refused");
            assert_eq!(e.code, ErrorCode::InvalidParameterException, "{bad:?}");
        }
    }

    #[test]
    fn an_empty_optional_string_is_none() {
        assert_eq!(bounded(Some(""), "clientToken", 36).unwrap(), None);
        assert_eq!(bounded(None, "clientToken", 36).unwrap(), None);
        assert_eq!(
            bounded(Some("tok-1"), "clientToken", 36)
                .unwrap()
                .as_deref(),
            Some("tok-1")
        );
        for bad in ["x".repeat(37), "a\nb".to_owned()] {
            let e = bounded(Some(&bad), "clientToken", 36).expect_err("refused");
            assert_eq!(e.code, ErrorCode::InvalidParameterException);
        }
    }

    #[test]
    fn a_task_set_arn_must_name_its_own_service() {
        let arn =
            "arn:aws:ecs:us-east-1:000000000000:task-set/prod/web/ecs-svc/1234567890123456789";
        assert_eq!(
            task_set_id(arn, "prod", "web").unwrap(),
            "ecs-svc/1234567890123456789"
        );
        assert!(task_set_id(arn, "prod", "api").is_err());
        assert!(task_set_id(arn, "dev", "web").is_err());
        assert!(task_set_id("ecs-svc/12", "dev", "web").is_ok());
        assert!(task_set_id("web", "dev", "web").is_err());
    }
}
