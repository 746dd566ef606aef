//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks.
//!
//! RunTask and StartTask are schedulers in the shared-state sense: each plans on a snapshot
//! (RunTask with the placement engine, StartTask on the instances its caller chose) and
//! commits the plan as one `PlaceTasks` command, which the state machine re-checks against the
//! newest state. Placements rejected at commit are re-planned on a fresher snapshot, a bounded
//! number of times, and what still cannot be placed is reported in `failures[]`.

use std::sync::Arc;

use berth_api::EcsError;
use berth_api::types::{self as api, enums};
use berth_model::arn::parse_task;
use berth_model::command::{ClientToken, FailureReason, Rejection};
use berth_model::entity::*;
use berth_model::requirements::requirements;
use berth_model::validate::{self, list_len, max_results, one_of, required, required_str};
use berth_model::{Command, Millis, Outcome, TaskId};
use berth_scheduler::{PlacementRequest, place};
use berth_state::{State, TaskFilter};

use super::render;
use super::task_definitions::{resolve, runnable};
use super::{Ctx, active_cluster, cluster_param, unexpected};
use crate::App;
use crate::pagination;

/// Plans re-made after commit-time rejections before giving up on a task.
const MAX_PLAN_ATTEMPTS: usize = 4;

/// Everything a new task of one RunTask/StartTask call shares.
struct Template {
    cluster: Name,
    definition: Arc<TaskDefinition>,
    overrides: api::TaskOverride,
    group: String,
    started_by: Option<String>,
    tags: Vec<Tag>,
    reservation: Reservation,
    enable_execute_command: bool,
    created_at: Millis,
}

impl Template {
    fn task(&self, instance: &ContainerInstance) -> Task {
        let spec = &self.definition.spec;
        let overrides = self
            .overrides
            .container_overrides
            .as_deref()
            .unwrap_or_default();
        let containers = spec
            .container_definitions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let o = overrides.iter().find(|o| o.name == c.name);
                Container {
                    name: c.name.clone().unwrap_or_default(),
                    image: c.image.clone().unwrap_or_default(),
                    essential: c.essential.unwrap_or(true),
                    runtime_id: None,
                    image_digest: None,
                    last_status: TaskStatus::Pending,
                    exit_code: None,
                    reason: None,
                    network_bindings: Vec::new(),
                    health_status: HealthStatus::Unknown,
                    cpu: o.and_then(|o| o.cpu).or(c.cpu),
                    memory: o.and_then(|o| o.memory).or(c.memory),
                    memory_reservation: o
                        .and_then(|o| o.memory_reservation)
                        .or(c.memory_reservation),
                }
            })
            .collect();
        Task {
            id: TaskId(rand::random()),
            cluster: self.cluster.clone(),
            instance: Some(instance.id),
            family: self.definition.family.clone(),
            revision: self.definition.revision,
            overrides: self.overrides.clone(),
            last_status: TaskStatus::Pending,
            desired_status: DesiredStatus::Running,
            containers,
            group: self.group.clone(),
            started_by: self.started_by.clone(),
            launch_type: "EC2".into(),
            cpu: self.overrides.cpu.clone().or_else(|| spec.cpu.clone()),
            memory: self
                .overrides
                .memory
                .clone()
                .or_else(|| spec.memory.clone()),
            reservation: self.reservation.clone(),
            availability_zone: instance
                .attribute("ecs.availability-zone")
                .map(str::to_owned),
            health_status: HealthStatus::Unknown,
            created_at: self.created_at,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            enable_execute_command: self.enable_execute_command,
            tags: self.tags.clone(),
            version: 0,
        }
    }
}

/// The parameters RunTask and StartTask share.
struct Common<'a> {
    overrides: Option<&'a api::TaskOverride>,
    group: Option<&'a str>,
    started_by: Option<&'a str>,
    tags: Option<&'a [api::Tag]>,
    enable_execute_command: Option<bool>,
}

fn template(
    state: &State,
    cluster: &str,
    reference: &str,
    common: Common<'_>,
) -> Result<Template, EcsError> {
    active_cluster(state, cluster)?;
    let definition = resolve(state, reference)?.clone();
    runnable(&definition)?;
    if definition
        .spec
        .placement_constraints
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        return Err(EcsError::invalid(
            "This task definition has placementConstraints, which berth cannot evaluate yet",
        ));
    }
    // ECS echoes an override entry for every container.
    let mut overrides = common.overrides.cloned().unwrap_or_default();
    let mut container_overrides = overrides.container_overrides.take().unwrap_or_default();
    for c in definition
        .spec
        .container_definitions
        .as_deref()
        .unwrap_or_default()
    {
        if !container_overrides.iter().any(|o| o.name == c.name) {
            container_overrides.push(api::ContainerOverride {
                name: c.name.clone(),
                ..Default::default()
            });
        }
    }
    let needs = requirements(
        &definition.spec,
        &api::TaskOverride {
            container_overrides: Some(container_overrides.clone()),
            ..overrides.clone()
        },
    )?;
    overrides.container_overrides = Some(container_overrides);
    overrides
        .inference_accelerator_overrides
        .get_or_insert_with(Vec::new);

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
    let mut tcp: Vec<u16> = needs.static_ports(Protocol::Tcp).collect();
    let mut udp: Vec<u16> = needs.static_ports(Protocol::Udp).collect();
    tcp.sort_unstable();
    udp.sort_unstable();
    Ok(Template {
        cluster: cluster.into(),
        definition,
        overrides,
        group,
        started_by: common.started_by.map(str::to_owned),
        tags: validate::tags(common.tags)?,
        reservation: Reservation {
            cpu: needs.cpu,
            memory: needs.memory,
            tcp,
            udp,
        },
        enable_execute_command: common.enable_execute_command.unwrap_or(false),
        created_at: Millis::now(),
    })
}

fn launch_type(value: Option<&str>) -> Result<(), EcsError> {
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
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn rejection_failure(
    ctx: &Ctx,
    cluster: &str,
    reason: FailureReason,
    instance: Option<berth_model::InstanceId>,
    detail: String,
) -> api::Failure {
    api::Failure {
        arn: instance.map(|i| ctx.arn.container_instance(cluster, i)),
        reason: Some(reason.as_str().into()),
        detail: Some(detail),
    }
}

fn placed(outcome: Outcome) -> Result<(Vec<Arc<Task>>, Vec<Rejection>), EcsError> {
    match outcome {
        Outcome::Placed { tasks, rejected } => Ok((tasks, rejected)),
        other => Err(unexpected(other)),
    }
}

pub async fn run(
    app: &App,
    ctx: &Ctx,
    req: api::RunTaskRequest,
) -> Result<api::RunTaskResponse, EcsError> {
    let cluster = cluster_param(&req.cluster)?;
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    let count = req.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(EcsError::invalid(format!(
            "count must be between 1 and 10; got {count}"
        )));
    }
    launch_type(req.launch_type.as_deref())?;
    if req
        .capacity_provider_strategy
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(EcsError::invalid(
            "capacityProviderStrategy is not supported: berth has no capacity providers",
        ));
    }
    if req
        .placement_constraints
        .as_ref()
        .is_some_and(|c| !c.is_empty())
        || req
            .placement_strategy
            .as_ref()
            .is_some_and(|s| !s.is_empty())
    {
        return Err(EcsError::invalid(
            "placementConstraints and placementStrategy cannot be evaluated yet; omit them to place by resource fit",
        ));
    }
    if let Some(t) = &req.client_token {
        let ok = !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| (33..=126).contains(&b));
        if !ok {
            return Err(EcsError::invalid(
                "clientToken must be 1 to 64 printable ASCII characters (33-126)",
            ));
        }
    }
    let request_digest = digest(&serde_json::to_vec(&req).unwrap_or_default());

    let mut state = app.node.state();
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
        },
    )?;
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
    if !state
        .instances_after(&cluster, None)
        .any(|i| i.status != InstanceStatus::Inactive)
    {
        return Err(EcsError::invalid(
            "No Container Instances were found in your cluster.",
        ));
    }

    let mut remaining = count as usize;
    let mut done: Vec<Arc<Task>> = Vec::new();
    let mut failures: Vec<api::Failure> = Vec::new();
    for attempt in 0..MAX_PLAN_ATTEMPTS {
        let plan = place(
            &state,
            &PlacementRequest {
                cluster: cluster.clone(),
                reservation: template.reservation.clone(),
                count: remaining,
            },
            rand::random(),
        );
        let tasks: Vec<Task> = plan
            .assignments
            .iter()
            .filter_map(|id| state.instance(*id))
            .map(|i| template.task(i))
            .collect();
        if tasks.len() < remaining {
            failures = plan
                .rejections
                .iter()
                .map(|r| {
                    rejection_failure(ctx, &cluster, r.reason, Some(r.instance), r.detail.clone())
                })
                .collect();
        }
        if tasks.is_empty() {
            break;
        }
        let command = Command::PlaceTasks {
            cluster: template.cluster.clone(),
            tasks,
            client_token: req.client_token.clone().map(|token| ClientToken {
                token,
                request_digest,
                continuation: attempt > 0,
            }),
        };
        let (ok, rejected) = placed(app.write(command).await?)?;
        remaining -= ok.len().min(remaining);
        done.extend(ok);
        if remaining == 0 || rejected.is_empty() {
            break;
        }
        if attempt + 1 == MAX_PLAN_ATTEMPTS {
            failures = rejected
                .into_iter()
                .map(|r| rejection_failure(ctx, &cluster, r.reason, r.instance, r.detail))
                .collect();
            break;
        }
        state = app.node.state();
    }
    if remaining == 0 {
        failures.clear();
    }
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
    let cluster = cluster_param(&req.cluster)?;
    let reference = required_str(&req.task_definition, "taskDefinition")?;
    let refs = required(&req.container_instances, "containerInstances")?;
    list_len(refs, "containerInstances", true, 10)?;
    let ids = refs
        .iter()
        .map(|r| super::instances::instance_ref(r, &cluster))
        .collect::<Result<Vec<_>, _>>()?;
    let state = app.node.state();
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
        },
    )?;
    let mut failures = Vec::new();
    let mut tasks = Vec::new();
    for id in ids {
        match state.instance(id).filter(|i| *i.cluster == *cluster) {
            Some(i) => tasks.push(template.task(i)),
            None => failures.push(render::missing(ctx.arn.container_instance(&cluster, id))),
        }
    }
    let mut done = Vec::new();
    if !tasks.is_empty() {
        let command = Command::PlaceTasks {
            cluster: template.cluster.clone(),
            tasks,
            client_token: None,
        };
        let (ok, rejected) = placed(app.write(command).await?)?;
        done = ok;
        failures.extend(
            rejected
                .into_iter()
                .map(|r| rejection_failure(ctx, &cluster, r.reason, r.instance, r.detail)),
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
    let cluster = cluster_param(&req.cluster)?;
    let id = task_ref(required_str(&req.task, "task")?, &cluster)?;
    let reason = req.reason.map(|r| r.chars().take(255).collect::<String>());
    let command = Command::StopTask {
        cluster: cluster.as_str().into(),
        id,
        reason,
        stop_code: Some("UserInitiated".into()),
    };
    match app.write(command).await? {
        Outcome::Task(t) => Ok(api::StopTaskResponse {
            task: Some(render::task(&ctx.arn, &t, true)),
        }),
        other => Err(unexpected(other)),
    }
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeTasksRequest,
) -> Result<api::DescribeTasksResponse, EcsError> {
    let cluster = cluster_param(&req.cluster)?;
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
    let cluster = cluster_param(&req.cluster)?;
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
