//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.

use std::sync::Arc;

use berth_api::EcsError;
use berth_api::types::{self as api, enums};
use berth_model::arn::{ResourceArn, parse_task_definition};
use berth_model::command::{
    DeleteTaskDefinitions, DeregisterTaskDefinition, Partial, RegisterTaskDefinition,
};
use berth_model::entity::{Name, TaskDefinition, TaskDefinitionStatus};
use berth_model::validate::{self, list_len, max_results, one_of, required_str};
use berth_scheduler::parse_constraint;
use berth_state::State;

use super::Ctx;
use super::render;
use crate::App;
use crate::pagination;

/// Resolves `family`, `family:revision` or an ARN: a bare family means its newest ACTIVE
/// revision.
pub(crate) fn resolve<'a>(
    state: &'a State,
    reference: &str,
) -> Result<&'a Arc<TaskDefinition>, EcsError> {
    let (family, revision) =
        parse_task_definition(reference).map_err(|e| EcsError::invalid(e.to_string()))?;
    let found = match revision {
        Some(r) => state.task_definition(&family, r),
        None => state.latest_active(&family),
    };
    found.ok_or_else(|| {
        EcsError::client(format!(
            "Unable to find task definition '{}': it is not registered{}",
            validate::shorten(reference),
            if revision.is_none() {
                " or has no ACTIVE revision"
            } else {
                ""
            }
        ))
    })
}

pub async fn register(
    app: &App,
    ctx: &Ctx,
    req: api::RegisterTaskDefinitionRequest,
) -> Result<api::RegisterTaskDefinitionResponse, EcsError> {
    let valid = validate::task_definition::register(&req)?;
    member_of_expressions(&valid.spec)?;
    ctx.allow_privileges(&valid.spec, None, "Registering this task definition")?;
    let command = RegisterTaskDefinition {
        family: valid.family.as_str().into(),
        spec: Arc::new(valid.spec),
        requirements: valid.requirements,
        tags: valid.tags,
    };
    let t = app.write_by(&ctx.principal, command).await?;
    Ok(api::RegisterTaskDefinitionResponse {
        task_definition: Some(render::task_definition(&ctx.arn, &t)),
        tags: Some(render::tags(&t.tags)),
    })
}

/// The definition's memberOf expressions parse (within the query language's regex budget). A
/// mistake is refused here, at registration, rather than at every RunTask and reconcile that
/// uses the revision; and the compiled expressions are kept for them.
fn member_of_expressions(spec: &api::TaskDefinition) -> Result<(), EcsError> {
    for (i, c) in spec.placement_constraints.iter().flatten().enumerate() {
        let kind = c.r#type.as_deref().unwrap_or("memberOf");
        parse_constraint(kind, c.expression.as_deref())
            .map_err(|e| EcsError::client(format!("placementConstraints[{i}]: {e}")))?;
    }
    Ok(())
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeTaskDefinitionRequest,
) -> Result<api::DescribeTaskDefinitionResponse, EcsError> {
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    let mut include_tags = false;
    for v in req.include.as_deref().unwrap_or_default() {
        include_tags |= one_of(v, enums::TASK_DEFINITION_FIELD, "include value")? == "TAGS";
    }
    let state = app.node.state();
    let t = resolve(&state, reference)
        .map_err(|_| EcsError::client("Unable to describe task definition."))?;
    Ok(api::DescribeTaskDefinitionResponse {
        task_definition: Some(render::task_definition(&ctx.arn, t)),
        tags: include_tags.then(|| render::tags(&t.tags)),
    })
}

fn status_filter(
    value: Option<&str>,
    allowed: &[&str],
    default: &'static str,
) -> Result<String, EcsError> {
    Ok(match value {
        Some(v) => one_of(v, allowed, "status")?.to_owned(),
        None => default.to_owned(),
    })
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListTaskDefinitionsRequest,
) -> Result<api::ListTaskDefinitionsResponse, EcsError> {
    const OP: &str = "ListTaskDefinitions";
    let max = max_results(req.max_results, 100, 100)?;
    let status = status_filter(
        req.status.as_deref(),
        enums::TASK_DEFINITION_STATUS,
        "ACTIVE",
    )?;
    let descending = match req.sort.as_deref() {
        None => false,
        Some(s) => one_of(s, enums::SORT_ORDER, "sort")? == "DESC",
    };
    let after: Option<(String, u32)> = pagination::decode(OP, req.next_token.as_deref())?;
    let family = req.family_prefix.as_deref();
    let state = app.node.state();
    let items = state
        .task_definitions_after(after.map(|(f, r)| (Name::from(f), r)), descending)
        .filter(|t| t.status.as_str() == status)
        .filter(|t| family.is_none_or(|f| &*t.family == f));
    let (page, next) = pagination::page(OP, items, max, |t| (t.family.to_string(), t.revision));
    Ok(api::ListTaskDefinitionsResponse {
        task_definition_arns: Some(
            page.iter()
                .map(|t| ctx.arn.task_definition(&t.family, t.revision))
                .collect(),
        ),
        next_token: next,
    })
}

pub async fn list_families(
    app: &App,
    _ctx: &Ctx,
    req: api::ListTaskDefinitionFamiliesRequest,
) -> Result<api::ListTaskDefinitionFamiliesResponse, EcsError> {
    const OP: &str = "ListTaskDefinitionFamilies";
    let max = max_results(req.max_results, 100, 100)?;
    let status = status_filter(
        req.status.as_deref(),
        enums::TASK_DEFINITION_FAMILY_STATUS,
        "ALL",
    )?;
    let after: Option<String> = pagination::decode(OP, req.next_token.as_deref())?;
    let prefix = req.family_prefix.as_deref().unwrap_or_default();
    let state = app.node.state();
    let items = state
        .families_after(after.as_deref())
        .filter(|(name, _)| name.starts_with(prefix))
        .filter(|(_, f)| match status.as_str() {
            "ACTIVE" => f.active_revisions > 0,
            "INACTIVE" => f.active_revisions == 0,
            _ => true,
        });
    let (page, next) = pagination::page(OP, items, max, |(name, _)| name.to_string());
    Ok(api::ListTaskDefinitionFamiliesResponse {
        families: Some(page.iter().map(|(n, _)| n.to_string()).collect()),
        next_token: next,
    })
}

/// A reference that must name a revision (`family:revision` or a full ARN).
fn revision_ref(reference: &str) -> Result<(String, u32), EcsError> {
    match parse_task_definition(reference) {
        Ok((family, Some(revision))) => Ok((family, revision)),
        Ok((_, None)) => Err(EcsError::invalid(format!(
            "Revision is missing: '{}' names a family only; give family:revision or the full ARN",
            validate::shorten(reference)
        ))),
        Err(e) => Err(EcsError::invalid(e.to_string())),
    }
}

pub async fn deregister(
    app: &App,
    ctx: &Ctx,
    req: api::DeregisterTaskDefinitionRequest,
) -> Result<api::DeregisterTaskDefinitionResponse, EcsError> {
    let (family, revision) = revision_ref(required_str(&req.task_definition, "taskDefinition")?)?;
    let command = DeregisterTaskDefinition {
        family: family.into(),
        revision,
    };
    let t = app.write_by(&ctx.principal, command).await?;
    Ok(api::DeregisterTaskDefinitionResponse {
        task_definition: Some(render::task_definition(&ctx.arn, &t)),
    })
}

/// The failure reason of a DeleteTaskDefinitions item that is not a revision's identifier.
const INVALID_IDENTIFIER: &str = "The specified task definition identifier is invalid. Specify a valid name or ARN and try again.";

pub async fn delete(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteTaskDefinitionsRequest,
) -> Result<api::DeleteTaskDefinitionsResponse, EcsError> {
    let refs = validate::required(&req.task_definitions, "taskDefinitions")?;
    list_len(refs, "taskDefinitions", true, 10)?;
    // Each item fails on its own, as ECS answers: one that is not a revision's identifier
    // here, one that is not registered or still ACTIVE in the state machine.
    let parsed: Vec<Option<(Name, u32)>> = refs
        .iter()
        .map(|r| revision_ref(r).ok().map(|(f, rev)| (Name::from(f), rev)))
        .collect();
    let revisions: Vec<(Name, u32)> = parsed.iter().flatten().cloned().collect();
    let Partial { done, failures } = if revisions.is_empty() {
        Partial {
            done: Vec::new(),
            failures: Vec::new(),
        }
    } else {
        app.write_by(&ctx.principal, DeleteTaskDefinitions { revisions })
            .await?
    };
    // Failures in the order the items were given: the state machine reports at most one per
    // revision, in the order it was sent them.
    let mut from_state = failures.iter().peekable();
    let mut rendered = Vec::new();
    for (given, parsed) in refs.iter().zip(&parsed) {
        match parsed {
            None => rendered.push(api::Failure {
                arn: Some(given.clone()),
                reason: Some(INVALID_IDENTIFIER.into()),
                detail: None,
            }),
            Some((family, revision)) => {
                if let Some(f) = from_state.next_if(|f| {
                    matches!(&f.resource, Some(ResourceArn::TaskDefinition(fam, rev))
                        if fam.as_str() == &**family && rev == revision)
                }) {
                    rendered.push(render::failure(&ctx.arn, f));
                }
            }
        }
    }
    rendered.extend(from_state.map(|f| render::failure(&ctx.arn, f)));
    Ok(api::DeleteTaskDefinitionsResponse {
        task_definitions: Some(
            done.iter()
                .map(|t| render::task_definition(&ctx.arn, t))
                .collect(),
        ),
        failures: Some(rendered),
    })
}

/// The status a revision must have for RunTask/StartTask.
pub(crate) fn runnable(t: &TaskDefinition) -> Result<(), EcsError> {
    match t.status {
        TaskDefinitionStatus::Active => Ok(()),
        other => Err(EcsError::client(format!(
            "Task definition {}:{} is {other}; register a new revision or run an ACTIVE one",
            t.family, t.revision
        ))),
    }
}
