//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks, and placement dry-runs.
//!
//! RunTask and StartTask are schedulers in the shared-state sense: each plans on a snapshot
//! (RunTask with the placement engine's constraints and strategies, StartTask on the instances
//! its caller chose) and commits the plan as one `PlaceTasks` command, which the state machine
//! re-checks against the newest state. Placements rejected at commit are re-planned on a
//! fresher snapshot, a bounded number of times, and what still cannot be placed is reported in
//! `failures[]`, closest instance first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::IntoResponse;
use berth_api::EcsError;
use berth_api::types::{self as api, enums};
use berth_model::arn::parse_task;
use berth_model::capacity::{PROVIDER_ATTRIBUTE, StrategyItem};
use berth_model::command::{ClientToken, FailureReason, PlaceTasks, Placed, StopTask};
use berth_model::entity::*;
use berth_model::priority::{self, Kind};
use berth_model::queue::{self, QueuedPlacement};
use berth_model::requirements::requirements;
use berth_model::validate::{self, list_len, max_results, one_of, required, required_str};
use berth_model::{InstanceId, Millis, TaskId};
use berth_scheduler::capacity::split;
use berth_scheduler::preempt;
use berth_scheduler::{
    Constraint, InstanceRejection, Placement, Strategy, TaskTemplate, complete_overrides,
    parse_constraint, parse_strategy, place,
};
use berth_state::{State, TaskFilter};
use serde_json::{Value, json};

use super::render;
use super::task_definitions::{resolve, runnable};
use super::{Ctx, active_cluster, existing_cluster};
use crate::App;
use crate::pagination;

/// Plans re-made after commit-time rejections before giving up on a task.
const MAX_PLAN_ATTEMPTS: usize = 4;

/// Most constraints a task may carry (task definition's and request's together), and most
/// strategies a request may chain, as in ECS.
pub(crate) const MAX_CONSTRAINTS: usize = 10;
pub(crate) const MAX_STRATEGIES: usize = 5;

/// Most `failures[]` entries one answer lists.
const MAX_FAILURES: usize = 100;

/// The parameters RunTask, StartTask and dry-runs share.
struct Common<'a> {
    overrides: Option<&'a api::TaskOverride>,
    group: Option<&'a str>,
    started_by: Option<&'a str>,
    tags: Option<&'a [api::Tag]>,
    enable_execute_command: Option<bool>,
    constraints: Option<&'a [api::PlacementConstraint]>,
    strategies: Option<&'a [api::PlacementStrategy]>,
}

/// The task definition's constraints and the request's, parsed; at most ten in all.
fn constraints(
    definition: &TaskDefinition,
    given: Option<&[api::PlacementConstraint]>,
) -> Result<Vec<Constraint>, EcsError> {
    let from_definition = definition
        .spec
        .placement_constraints
        .as_deref()
        .unwrap_or_default();
    let given = given.unwrap_or_default();
    if from_definition.len() + given.len() > MAX_CONSTRAINTS {
        return Err(EcsError::invalid(format!(
            "A task can have at most {MAX_CONSTRAINTS} placement constraints, counting its task definition's; got {}",
            from_definition.len() + given.len()
        )));
    }
    let mut out = Vec::new();
    for c in from_definition {
        let kind = c.r#type.as_deref().unwrap_or("memberOf");
        out.push(
            parse_constraint(kind, c.expression.as_deref())
                .map_err(|e| EcsError::invalid(e.to_string()))?,
        );
    }
    for c in given {
        let kind = required_str(&c.r#type, "placementConstraints.type")?;
        out.push(
            parse_constraint(kind, c.expression.as_deref())
                .map_err(|e| EcsError::invalid(e.to_string()))?,
        );
    }
    Ok(out)
}

fn strategies(given: Option<&[api::PlacementStrategy]>) -> Result<Vec<Strategy>, EcsError> {
    let given = given.unwrap_or_default();
    if given.len() > MAX_STRATEGIES {
        return Err(EcsError::invalid(format!(
            "At most {MAX_STRATEGIES} placement strategies can be chained; got {}",
            given.len()
        )));
    }
    given
        .iter()
        .map(|s| {
            let kind = required_str(&s.r#type, "placementStrategy.type")?;
            parse_strategy(kind, s.field.as_deref()).map_err(|e| EcsError::invalid(e.to_string()))
        })
        .collect()
}

fn template(
    state: &State,
    cluster: &str,
    reference: &str,
    common: Common<'_>,
) -> Result<TaskTemplate, EcsError> {
    active_cluster(state, cluster)?;
    let definition = resolve(state, reference)?.clone();
    runnable(&definition)?;
    let constraints = constraints(&definition, common.constraints)?;
    let strategies = strategies(common.strategies)?;
    let overrides = complete_overrides(&definition, common.overrides);
    let needs = requirements(&definition.spec, &overrides)?;

    let group = match common.group {
        Some(g) if g.is_empty() || g.chars().count() > 255 => {
            return Err(EcsError::invalid("group must be 1 to 255 characters"));
        }
        Some(g) => g.to_owned(),
        None => format!("family:{}", definition.family),
    };
    if let Some(s) = common.started_by {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'));
        if !ok {
            return Err(EcsError::invalid(
                "startedBy must be 1 to 128 letters, numbers, hyphens, forward slashes and underscores",
            ));
        }
    }
    let tags = validate::tags(common.tags)?;
    // The request's own tag, else the definition's, else a standalone task's default.
    let priority = priority::effective(&tags, None, &definition.tags, Kind::Standalone);
    Ok(TaskTemplate {
        cluster: cluster.into(),
        definition,
        overrides,
        group,
        started_by: common.started_by.map(str::to_owned),
        tags,
        needs,
        constraints,
        strategies,
        enable_execute_command: common.enable_execute_command.unwrap_or(false),
        created_at: Millis::now(),
        capacity_provider: None,
        priority,
    })
}

pub(crate) fn launch_type(value: Option<&str>) -> Result<(), EcsError> {
    match value {
        None | Some("EC2") | Some("EXTERNAL") => Ok(()),
        Some(other) => {
            one_of(other, enums::LAUNCH_TYPE, "launchType")?;
            Err(EcsError::invalid(format!(
                "launchType {other} is not supported: berth runs tasks on registered container instances (EC2 or EXTERNAL)"
            )))
        }
    }
}

/// A 64-bit FNV-1a digest, stable across processes, of a request's JSON.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn failure(
    ctx: &Ctx,
    cluster: &str,
    reason: FailureReason,
    instance: Option<InstanceId>,
    detail: String,
) -> api::Failure {
    api::Failure {
        arn: instance.map(|i| ctx.arn.container_instance(cluster, i)),
        reason: Some(reason.as_str().into()),
        detail: Some(detail),
    }
}

fn plan_failures(ctx: &Ctx, cluster: &str, rejections: &[InstanceRejection]) -> Vec<api::Failure> {
    rejections
        .iter()
        .take(MAX_FAILURES)
        .map(|r| failure(ctx, cluster, r.reason, Some(r.instance), r.detail.clone()))
        .collect()
}

/// Tasks for a plan's placements, on the instances as `state` has them.
fn tasks_for(state: &State, template: &TaskTemplate, placements: &[Placement]) -> Vec<Task> {
    placements
        .iter()
        .filter_map(|p| {
            state
                .instance(p.instance)
                .map(|i| template.task(TaskId(rand::random()), i, p))
        })
        .collect()
}

/// One capacity provider's share of a RunTask (or the whole of it, without a strategy): the
/// template, its provider set, and how many tasks it still has to place.
struct Share {
    template: TaskTemplate,
    remaining: usize,
    /// How long its tasks may wait for capacity, when they may ([`berth_model::queue`]).
    queue_timeout: Option<u32>,
}

/// The launch split into shares: one per provider of `strategy` that gets tasks
/// ([`split`]), or one for the whole cluster without a strategy.
fn shares(template: TaskTemplate, strategy: &[StrategyItem], count: usize) -> Vec<Share> {
    if strategy.is_empty() {
        return vec![Share {
            template,
            remaining: count,
            queue_timeout: None,
        }];
    }
    strategy
        .iter()
        .zip(split(strategy, count as u32))
        .filter(|(_, n)| *n > 0)
        .map(|(item, n)| Share {
            template: TaskTemplate {
                capacity_provider: Some(item.provider.clone()),
                ..template.clone()
            },
            remaining: n as usize,
            queue_timeout: None,
        })
        .collect()
}

/// Sets each share's queue timeout: the request's `berth:queue-timeout` tag, else its
/// capacity provider's, else its cluster's.
fn queue_timeouts(state: &State, cluster: &str, shares: &mut [Share]) -> Result<(), EcsError> {
    let cluster_tags = state
        .cluster(cluster)
        .map(|c| c.tags.clone())
        .unwrap_or_default();
    for share in shares {
        let provider = share
            .template
            .capacity_provider
            .as_deref()
            .and_then(|p| state.capacity_provider(p));
        share.queue_timeout = queue::effective_timeout(
            &share.template.tags,
            provider.map(|p| &p.tags[..]),
            &cluster_tags,
        )?;
    }
    Ok(())
}

/// The placement a queued task keeps for later: every constraint its template carries, as
/// ECS shapes them (the task definition's, the request's, berth's own), and the strategies.
fn queued_placement(
    definition: &TaskDefinition,
    req: &api::RunTaskRequest,
    guarded: bool,
    until: Millis,
) -> QueuedPlacement {
    let mut constraints: Vec<api::PlacementConstraint> = definition
        .spec
        .placement_constraints
        .iter()
        .flatten()
        .map(|c| api::PlacementConstraint {
            r#type: Some(c.r#type.clone().unwrap_or_else(|| "memberOf".into())),
            expression: c.expression.clone(),
        })
        .collect();
    constraints.extend(req.placement_constraints.iter().flatten().cloned());
    if guarded {
        constraints.push(api::PlacementConstraint {
            r#type: Some("memberOf".into()),
            expression: Some(berth_model::privileges::NOT_ON_HOST_PROCESS_AGENTS.into()),
        });
    }
    QueuedPlacement {
        until,
        constraints,
        strategies: req.placement_strategy.clone().unwrap_or_default(),
    }
}

/// Why a share's plan placed fewer tasks than asked: its instances' rejections, or — when its
/// capacity provider has no instance in the cluster at all — that.
fn share_failures(
    ctx: &Ctx,
    cluster: &str,
    share: &Share,
    rejections: &[InstanceRejection],
) -> Vec<api::Failure> {
    match (&share.template.capacity_provider, rejections.is_empty()) {
        (Some(provider), true) => vec![api::Failure {
            arn: Some(ctx.arn.capacity_provider(provider)),
            reason: Some(FailureReason::Missing.as_str().into()),
            detail: Some(format!(
                "capacity provider {provider} has no container instance in cluster {cluster} that can take the task: register instances with the attribute {PROVIDER_ATTRIBUTE}={provider} (berth agent --capacity-provider {provider})"
            )),
        }],
        _ => plan_failures(ctx, cluster, rejections),
    }
}

fn check_run_request(req: &api::RunTaskRequest) -> Result<(), EcsError> {
    let count = req.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(EcsError::invalid(format!(
            "count must be between 1 and 10; got {count}"
        )));
    }
    launch_type(req.launch_type.as_deref())?;
    if let Some(t) = &req.client_token {
        let ok = !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| (33..=126).contains(&b));
        if !ok {
            return Err(EcsError::invalid(
                "clientToken must be 1 to 64 printable ASCII characters (33-126)",
            ));
        }
    }
    Ok(())
}

fn run_common(req: &api::RunTaskRequest) -> Common<'_> {
    Common {
        overrides: req.overrides.as_ref(),
        group: req.group.as_deref(),
        started_by: req.started_by.as_deref(),
        tags: req.tags.as_deref(),
        enable_execute_command: req.enable_execute_command,
        constraints: req.placement_constraints.as_deref(),
        strategies: req.placement_strategy.as_deref(),
    }
}

fn has_instances(state: &State, cluster: &str) -> Result<(), EcsError> {
    if state
        .instances_after(cluster, None)
        .any(|i| i.status != InstanceStatus::Inactive)
    {
        Ok(())
    } else {
        Err(EcsError::invalid(
            "No Container Instances were found in your cluster.",
        ))
    }
}

pub async fn run(
    app: &App,
    ctx: &Ctx,
    req: api::RunTaskRequest,
) -> Result<api::RunTaskResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    check_run_request(&req)?;
    let count = req.count.unwrap_or(1) as usize;
    let request_digest = digest(&serde_json::to_vec(&req).unwrap_or_default());

    let mut state = app.node.state();
    let mut template = template(&state, &cluster, reference, run_common(&req))?;
    ctx.allow_privileges(
        &template.definition.spec,
        Some(&cluster),
        "Running this task definition",
    )?;
    let guarded = ctx.kept_off_host_process_agents(&template.definition.spec, &cluster);
    if guarded {
        template.constraints.push(host_process_guard()?);
    }
    if let Some(token) = &req.client_token
        && let Some(record) = state.client_token(&cluster, token)
    {
        if record.request_digest != request_digest {
            return Err(berth_model::Error::Conflict(
                "The clientToken was already used with different parameters. Use a new clientToken for a different request.".into(),
            )
            .into());
        }
        let tasks = record
            .tasks
            .iter()
            .filter_map(|id| state.task(*id))
            .map(|t| render::task(&ctx.arn, t, true))
            .collect();
        return Ok(api::RunTaskResponse {
            tasks: Some(tasks),
            failures: Some(Vec::new()),
        });
    }
    let strategy = super::capacity::launch_strategy(
        &state,
        &cluster,
        req.capacity_provider_strategy.as_deref(),
        req.launch_type.as_deref(),
    )?;
    let cluster_name = template.cluster.clone();
    let distinct_instance = template.distinct_instance();
    let created_at = template.created_at;
    let mut shares = shares(template, &strategy, count);
    queue_timeouts(&state, &cluster, &mut shares)?;
    // Tasks that may wait for capacity need no instance yet.
    if shares.iter().any(|s| s.queue_timeout.is_none()) {
        has_instances(&state, &cluster)?;
    }

    // Each share plans on the same snapshot (their instances are disjoint: a provider's own),
    // and all of them commit together in one PlaceTasks.
    let mut done: Vec<Arc<Task>> = Vec::new();
    let mut why: Vec<Vec<api::Failure>> = vec![Vec::new(); shares.len()];
    for attempt in 0..MAX_PLAN_ATTEMPTS {
        let mut tasks = Vec::new();
        let mut share_of: HashMap<TaskId, usize> = HashMap::new();
        for (k, share) in shares.iter().enumerate().filter(|(_, s)| s.remaining > 0) {
            let plan = place(
                &state,
                &share.template.request(share.remaining, None, false),
                rand::random(),
            );
            let planned = tasks_for(&state, &share.template, &plan.placements);
            if planned.len() < share.remaining {
                why[k] = share_failures(ctx, &cluster, share, &plan.rejections);
            }
            share_of.extend(planned.iter().map(|t| (t.id, k)));
            tasks.extend(planned);
        }
        if tasks.is_empty() {
            break;
        }
        let command = PlaceTasks {
            cluster: cluster_name.clone(),
            tasks,
            client_token: req.client_token.clone().map(|token| ClientToken {
                token,
                request_digest,
                continuation: attempt > 0,
            }),
            distinct_instance,
        };
        let Placed {
            tasks: ok,
            rejected,
        } = app.write_by(&ctx.principal, command).await?;
        for t in &ok {
            if let Some(k) = share_of.get(&t.id) {
                shares[*k].remaining = shares[*k].remaining.saturating_sub(1);
            }
        }
        done.extend(ok);
        if shares.iter().all(|s| s.remaining == 0) || rejected.is_empty() {
            break;
        }
        if attempt + 1 == MAX_PLAN_ATTEMPTS {
            for w in &mut why {
                w.clear();
            }
            for r in rejected {
                if let Some(k) = share_of.get(&r.task) {
                    why[*k].push(failure(ctx, &cluster, r.reason, r.instance, r.detail));
                }
            }
            break;
        }
        state = app.node.state();
    }
    // What did not fit waits for capacity, where the caller, the provider or the cluster
    // asked for that: PROVISIONING tasks on no instance, in the same client token's record.
    let queued: Vec<Task> = shares
        .iter_mut()
        .filter_map(|s| Some((s.queue_timeout?, s)))
        .flat_map(|(timeout, s)| {
            let until = created_at.saturating_add_ms(i64::from(timeout) * 1000);
            let placement = queued_placement(&s.template.definition, &req, guarded, until);
            let tasks: Vec<Task> = (0..s.remaining)
                .map(|_| {
                    s.template
                        .queued_task(TaskId(rand::random()), placement.clone())
                })
                .collect();
            s.remaining = 0;
            tasks
        })
        .collect();
    if !queued.is_empty() {
        let command = PlaceTasks {
            cluster: cluster_name.clone(),
            tasks: queued,
            client_token: req.client_token.clone().map(|token| ClientToken {
                token,
                request_digest,
                continuation: !done.is_empty(),
            }),
            distinct_instance: false,
        };
        let Placed { tasks, .. } = app.write_by(&ctx.principal, command).await?;
        done.extend(tasks);
    }
    let failures = shares
        .iter()
        .zip(why)
        .filter(|(s, _)| s.remaining > 0)
        .flat_map(|(_, w)| w)
        .take(MAX_FAILURES)
        .collect();
    Ok(api::RunTaskResponse {
        tasks: Some(
            done.iter()
                .map(|t| render::task(&ctx.arn, t, true))
                .collect(),
        ),
        failures: Some(failures),
    })
}

pub async fn start(
    app: &App,
    ctx: &Ctx,
    req: api::StartTaskRequest,
) -> Result<api::StartTaskResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    let refs = required(&req.container_instances, "containerInstances")?;
    list_len(refs, "containerInstances", true, 10)?;
    let ids = refs
        .iter()
        .map(|r| super::instances::instance_ref(r, &cluster))
        .collect::<Result<Vec<_>, _>>()?;
    let state = app.node.state();
    // StartTask is a custom scheduler's call: it names the instances, so no constraints or
    // strategies apply — but resources and ports are still checked, here and at commit.
    let template = template(
        &state,
        &cluster,
        reference,
        Common {
            overrides: req.overrides.as_ref(),
            group: req.group.as_deref(),
            started_by: req.started_by.as_deref(),
            tags: req.tags.as_deref(),
            enable_execute_command: req.enable_execute_command,
            constraints: None,
            strategies: None,
        },
    )?;
    ctx.allow_privileges(
        &template.definition.spec,
        Some(&cluster),
        "Starting this task definition",
    )?;
    if ctx.kept_off_host_process_agents(&template.definition.spec, &cluster) {
        let guard =
            berth_scheduler::query::parse(berth_model::privileges::NOT_ON_HOST_PROCESS_AGENTS)
                .map_err(|e| EcsError::server(e.to_string()))?;
        for id in &ids {
            let on_process_agent = state
                .instance(*id)
                .is_some_and(|i| !berth_scheduler::instance_matches(&state, i, &guard));
            if on_process_agent {
                return Err(EcsError::new(
                    berth_api::ErrorCode::AccessDeniedException,
                    format!(
                        "Container instance {id} runs tasks that name no runtime as host \
                         processes (its agent has no Docker): starting one there needs the \
                         {} permission",
                        berth_auth::Privilege::HostProcess.action()
                    ),
                ));
            }
        }
    }
    let plan = place(
        &state,
        &template.request(ids.len(), Some(ids), false),
        rand::random(),
    );
    let mut failures: Vec<api::Failure> = plan
        .rejections
        .iter()
        .map(|r| match r.reason {
            FailureReason::Missing => {
                render::missing(ctx.arn.container_instance(&cluster, r.instance))
            }
            _ => failure(ctx, &cluster, r.reason, Some(r.instance), r.detail.clone()),
        })
        .collect();
    let tasks = tasks_for(&state, &template, &plan.placements);
    let mut done = Vec::new();
    if !tasks.is_empty() {
        let command = PlaceTasks {
            cluster: template.cluster.clone(),
            tasks,
            client_token: None,
            distinct_instance: false,
        };
        let Placed {
            tasks: ok,
            rejected,
        } = app.write_by(&ctx.principal, command).await?;
        done = ok;
        failures.extend(
            rejected
                .into_iter()
                .map(|r| failure(ctx, &cluster, r.reason, r.instance, r.detail)),
        );
    }
    Ok(api::StartTaskResponse {
        tasks: Some(
            done.iter()
                .map(|t| render::task(&ctx.arn, t, true))
                .collect(),
        ),
        failures: Some(failures),
    })
}

/// `POST /v1/placement/dry-run`: plans a RunTask-shaped request on the current state without
/// committing it, and says for every instance whether it was chosen, passed over (and by which
/// strategy) or rejected (and why).
pub async fn dry_run(app: &App, ctx: &Ctx, req: api::RunTaskRequest) -> Result<Value, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    check_run_request(&req)?;
    let count = req.count.unwrap_or(1) as usize;
    let state = app.node.state();
    let template = template(&state, &cluster, reference, run_common(&req))?;
    let strategy = super::capacity::launch_strategy(
        &state,
        &cluster,
        req.capacity_provider_strategy.as_deref(),
        req.launch_type.as_deref(),
    )?;
    let (family, revision) = (
        template.definition.family.clone(),
        template.definition.revision,
    );
    let group = template.group.clone();
    let priority = template.priority;
    let mut shares = shares(template, &strategy, count);
    queue_timeouts(&state, &cluster, &mut shares)?;
    // One plan per capacity provider's share (its own instances), or one for the cluster.
    let mut plan = berth_scheduler::Plan::default();
    let mut failures = Vec::new();
    let mut queued = 0;
    let mut queue_timeout = None;
    let mut preemptions = Vec::new();
    for share in shares {
        let p = place(
            &state,
            &share.template.request(share.remaining, None, true),
            rand::random(),
        );
        let short = share.remaining - p.placements.len();
        match share.queue_timeout {
            Some(t) if short > 0 => {
                queued += short;
                queue_timeout = queue_timeout.max(Some(t));
                // What the queue controller would stop to place them: lower-priority,
                // unprotected tasks (`berth_scheduler::preempt`).
                let planned = tasks_for(&state, &share.template, &p.placements);
                let now = Millis::now();
                for choice in preempt::would_preempt(
                    &state,
                    &share.template,
                    planned,
                    short,
                    now,
                    rand::random(),
                ) {
                    let victims: Vec<Value> = choice
                        .victims
                        .iter()
                        .filter_map(|v| state.task(*v))
                        .map(|v| {
                            json!({
                                "taskArn": ctx.arn.task(&cluster, v.id),
                                "group": v.group,
                                "priority": v.priority().get(),
                            })
                        })
                        .collect();
                    preemptions.push(json!({
                        "containerInstanceArn": ctx.arn.container_instance(&cluster, choice.instance),
                        "stops": victims,
                    }));
                }
            }
            _ if short > 0 => {
                failures.extend(share_failures(ctx, &cluster, &share, &p.rejections));
            }
            _ => {}
        }
        plan.placements.extend(p.placements);
        plan.verdicts.extend(p.verdicts);
    }
    let arn = |i: InstanceId| ctx.arn.container_instance(&cluster, i);
    let placements: Vec<Value> = plan
        .placements
        .iter()
        .map(|p| {
            json!({
                "containerInstanceArn": arn(p.instance),
                "dynamicTcpPorts": p.dynamic_tcp,
                "dynamicUdpPorts": p.dynamic_udp,
            })
        })
        .collect();
    let instances: Vec<Value> = plan
        .verdicts
        .iter()
        .map(|v| {
            let (verdict, reason, detail) = match (&v.rejection, v.placed) {
                (Some((reason, detail)), _) => {
                    ("rejected", Some(reason.as_str()), Some(detail.clone()))
                }
                (None, 0) => ("passed-over", None, v.passed_over.clone()),
                (None, _) => ("chosen", None, None),
            };
            json!({
                "containerInstanceArn": arn(v.instance),
                "verdict": verdict,
                "tasks": v.placed,
                "reason": reason,
                "detail": detail,
            })
        })
        .collect();
    Ok(json!({
        "cluster": ctx.arn.cluster(&cluster),
        "taskDefinitionArn": ctx.arn.task_definition(&family, revision),
        "group": group,
        "priority": priority.get(),
        "requested": count,
        "placed": plan.placements.len(),
        "index": state.index(),
        "placements": placements,
        "instances": instances,
        "failures": failures,
        // What would wait for capacity, and behind how many tasks already waiting (those of
        // higher priority, and of its own those whose turn comes first: groups take turns).
        "queued": queued,
        "queueTimeoutSeconds": queue_timeout,
        // Per queued task the queue controller would place at once by preemption: the
        // instance and the lower-priority tasks it would stop there.
        "preemptions": preemptions,
        "queuedAhead": (queued > 0)
            .then(|| berth_scheduler::queue::ahead_of_new(&state, &cluster, priority, &group)),
    }))
}

/// Most instances a queued task's standing lists (closest first).
const MAX_STANDING_REASONS: usize = 10;

/// `GET /v1/placement/queue/{cluster}/{task}`: where a task waiting for capacity stands — its
/// place in its cluster's queue, when its wait ends — and what it waits for: why each instance
/// cannot take it now, closest first. Needs `berth:DryRunPlacement` on the task.
pub(crate) async fn standing(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    headers: axum::http::HeaderMap,
    axum::extract::Path((cluster, task)): axum::extract::Path<(String, String)>,
) -> axum::response::Response {
    let ctx = super::context(&app, &headers, principal);
    match standing_of(&app, &ctx, &cluster, &task) {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => super::error_response(e),
    }
}

fn standing_of(app: &App, ctx: &Ctx, cluster: &str, task: &str) -> Result<Value, EcsError> {
    let cluster = existing_cluster(app, &Some(cluster.to_owned()))?;
    let id = task_ref(task, &cluster)?;
    ctx.authorize(
        berth_auth::action::DRY_RUN_PLACEMENT,
        &[ctx.arn.task(&cluster, id)],
        Some(&cluster),
    )?;
    let state = app.node.state();
    let standing = berth_scheduler::queue::standing(&state, id)
        .filter(|_| state.task(id).is_some_and(|t| *t.cluster == *cluster))
        .ok_or_else(|| {
            EcsError::invalid(format!(
                "Task {id} is not waiting for capacity in cluster {cluster}: only a PROVISIONING task queued by RunTask (tag {}) has a place in the queue",
                queue::QUEUE_TIMEOUT_TAG
            ))
        })?;
    let waits_for: Vec<Value> = standing
        .waits_for
        .iter()
        .take(MAX_STANDING_REASONS)
        .map(|r| {
            json!({
                "containerInstanceArn": ctx.arn.container_instance(&cluster, r.instance),
                "reason": r.reason.as_str(),
                "detail": r.detail,
            })
        })
        .collect();
    Ok(json!({
        "taskArn": ctx.arn.task(&cluster, id),
        "cluster": ctx.arn.cluster(&cluster),
        "priority": standing.priority.get(),
        "position": standing.position,
        "queued": standing.length,
        "waitEndsAt": standing.until.as_epoch_seconds(),
        "fitsNow": standing.fits_now,
        "unplaceable": standing.unplaceable,
        "waitsFor": waits_for,
        "index": state.index(),
    }))
}

/// The constraint that keeps a task off agents that would run it as a host process.
fn host_process_guard() -> Result<Constraint, EcsError> {
    parse_constraint(
        "memberOf",
        Some(berth_model::privileges::NOT_ON_HOST_PROCESS_AGENTS),
    )
    .map_err(|e| EcsError::server(e.to_string()))
}

/// A task reference that must belong to `cluster` when its ARN names one.
pub(crate) fn task_ref(reference: &str, cluster: &str) -> Result<TaskId, EcsError> {
    let (named, id) = parse_task(reference).map_err(|e| EcsError::invalid(e.to_string()))?;
    if let Some(named) = named
        && named != cluster
    {
        return Err(EcsError::invalid(format!(
            "Task {reference} belongs to cluster {named}, not {cluster}"
        )));
    }
    Ok(id)
}

pub async fn stop(
    app: &App,
    ctx: &Ctx,
    req: api::StopTaskRequest,
) -> Result<api::StopTaskResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let id = task_ref(required_str(&req.task, "task")?, &cluster)?;
    let reason = req.reason.map(|r| r.chars().take(255).collect::<String>());
    let command = StopTask {
        cluster: cluster.as_str().into(),
        id,
        reason,
        stop_code: Some("UserInitiated".into()),
    };
    let t = app.write_by(&ctx.principal, command).await?;
    Ok(api::StopTaskResponse {
        task: Some(render::task(&ctx.arn, &t, true)),
    })
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeTasksRequest,
) -> Result<api::DescribeTasksResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let refs = required(&req.tasks, "tasks")?;
    list_len(refs, "tasks", true, 100)?;
    let mut include_tags = false;
    for v in req.include.as_deref().unwrap_or_default() {
        include_tags |= one_of(v, enums::TASK_FIELD, "include value")? == "TAGS";
    }
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let mut tasks = Vec::with_capacity(refs.len());
    let mut failures = Vec::new();
    for r in refs {
        let task = task_ref(r, &cluster)
            .ok()
            .and_then(|id| state.task(id))
            .filter(|t| *t.cluster == *cluster);
        match task {
            Some(t) => tasks.push(render::task(&ctx.arn, t, include_tags)),
            None => failures.push(render::missing(match parse_task(r) {
                Ok((_, id)) => ctx.arn.task(&cluster, id),
                Err(_) => r.clone(),
            })),
        }
    }
    Ok(api::DescribeTasksResponse {
        tasks: Some(tasks),
        failures: Some(failures),
    })
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListTasksRequest,
) -> Result<api::ListTasksResponse, EcsError> {
    const OP: &str = "ListTasks";
    let cluster = existing_cluster(app, &req.cluster)?;
    let max = max_results(req.max_results, 100, 100)?;
    let desired = one_of(
        req.desired_status.as_deref().unwrap_or("RUNNING"),
        enums::DESIRED_STATUS,
        "desiredStatus",
    )?;
    if let Some(l) = &req.launch_type {
        one_of(l, enums::LAUNCH_TYPE, "launchType")?;
    }
    let instance = req
        .container_instance
        .as_deref()
        .map(|r| super::instances::instance_ref(r, &cluster))
        .transpose()?;
    let filter = TaskFilter {
        instance,
        family: req.family.clone(),
        started_by: req.started_by.clone(),
        group: req.service_name.as_deref().map(|s| {
            let name = berth_model::arn::parse_service(s)
                .map(|(_, n)| n)
                .unwrap_or_else(|_| s.to_owned());
            format!("service:{name}")
        }),
        desired_status: DesiredStatus::parse(desired),
        launch_type: req.launch_type.clone(),
    };
    let after: Option<TaskId> = pagination::decode(OP, req.next_token.as_deref())?;
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let (page, next) =
        pagination::page(OP, state.tasks_after(&cluster, &filter, after), max, |t| {
            t.id
        });
    Ok(api::ListTasksResponse {
        task_arns: Some(
            page.iter()
                .map(|t| ctx.arn.task(&t.cluster, t.id))
                .collect(),
        ),
        next_token: next,
    })
}
