//! Domain values → ECS response shapes, with ARNs in the caller's region.

use berth_api::types as api;
use berth_model::arn::ArnContext;
use berth_model::capacity::StrategyItem;
use berth_model::command::Failure;
use berth_model::entity::*;
use berth_model::service::{Deployment, Service, TaskSet};
use berth_state::{Counts, State, TaskFilter, Usage};

pub fn tags(tags: &[Tag]) -> Vec<api::Tag> {
    tags.iter()
        .map(|t| api::Tag {
            key: Some(t.key.clone()),
            value: Some(t.value.clone()),
        })
        .collect()
}

fn seconds(m: berth_model::Millis) -> f64 {
    m.as_epoch_seconds()
}

/// What DescribeClusters' `include` asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterInclude {
    pub settings: bool,
    pub configurations: bool,
    pub statistics: bool,
    pub tags: bool,
}

impl ClusterInclude {
    pub const ALL: ClusterInclude = ClusterInclude {
        settings: true,
        configurations: true,
        statistics: true,
        tags: true,
    };
}

fn kv(name: &str, value: impl ToString) -> api::KeyValuePair {
    api::KeyValuePair {
        name: Some(name.to_owned()),
        value: Some(value.to_string()),
    }
}

pub fn cluster(
    ctx: &ArnContext,
    c: &Cluster,
    counts: Counts,
    include: ClusterInclude,
) -> api::Cluster {
    api::Cluster {
        cluster_arn: Some(ctx.cluster(&c.name)),
        cluster_name: Some(c.name.to_string()),
        status: Some(c.status.as_str().into()),
        registered_container_instances_count: Some(counts.registered_instances as i32),
        running_tasks_count: Some(counts.running_tasks as i32),
        pending_tasks_count: Some(counts.pending_tasks as i32),
        active_services_count: Some(counts.active_services as i32),
        statistics: Some(if include.statistics {
            vec![
                kv("runningEC2TasksCount", counts.running_tasks),
                kv("runningFargateTasksCount", 0),
                kv("pendingEC2TasksCount", counts.pending_tasks),
                kv("pendingFargateTasksCount", 0),
                kv("activeEC2ServiceCount", counts.active_services),
                kv("activeFargateServiceCount", 0),
                kv("drainingEC2ServiceCount", 0),
                kv("drainingFargateServiceCount", 0),
            ]
        } else {
            Vec::new()
        }),
        tags: Some(if include.tags {
            tags(&c.tags)
        } else {
            Vec::new()
        }),
        settings: include.settings.then(|| c.settings.clone()),
        configuration: if include.configurations {
            c.configuration.clone()
        } else {
            None
        },
        service_connect_defaults: c.service_connect_defaults.clone(),
        capacity_providers: Some(c.capacity_providers.iter().map(|p| p.to_string()).collect()),
        default_capacity_provider_strategy: Some(
            c.default_strategy.iter().map(|i| i.render()).collect(),
        ),
        ..Default::default()
    }
}

pub fn task_definition(ctx: &ArnContext, t: &TaskDefinition) -> api::TaskDefinition {
    let mut out = (*t.spec).clone();
    out.task_definition_arn = Some(ctx.task_definition(&t.family, t.revision));
    out.family = Some(t.family.to_string());
    out.revision = Some(t.revision as i32);
    out.status = Some(t.status.as_str().into());
    out.registered_at = Some(seconds(t.registered_at));
    out.deregistered_at = t.deregistered_at.map(seconds);
    out.delete_requested_at = t.delete_requested_at.map(seconds);
    out.registered_by = Some(actor_arn(ctx, t.registered_by.as_deref()));
    out
}

/// The ARN of the actor a change was recorded under (`Stamped::by`): a user, a container
/// instance's agent, or, for berth's own work and changes recorded before actors were, the
/// account's root.
pub(crate) fn actor_arn(ctx: &ArnContext, actor: Option<&str>) -> String {
    let root = || format!("arn:{}:iam::{}:root", ctx.partition, ctx.account);
    let Some((kind, rest)) = actor.and_then(|a| a.split_once('/')) else {
        return root();
    };
    match kind {
        "user" => format!("arn:{}:iam::{}:user/{rest}", ctx.partition, ctx.account),
        "container-instance" => match rest.split_once('/') {
            Some((cluster, id)) => id
                .parse()
                .map(|id| ctx.container_instance(cluster, id))
                .unwrap_or_else(|_| root()),
            None => root(),
        },
        _ => root(),
    }
}

fn int_resource(name: &str, value: i64) -> api::Resource {
    api::Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        double_value: Some(0.0),
        long_value: Some(0),
        integer_value: Some(value.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
        string_set_value: None,
    }
}

fn ports_resource(name: &str, ports: impl Iterator<Item = u16>) -> api::Resource {
    api::Resource {
        name: Some(name.into()),
        r#type: Some("STRINGSET".into()),
        double_value: Some(0.0),
        long_value: Some(0),
        integer_value: Some(0),
        string_set_value: Some(ports.map(|p| p.to_string()).collect()),
    }
}

pub fn instance(
    ctx: &ArnContext,
    i: &ContainerInstance,
    usage: Option<&Usage>,
    include_tags: bool,
) -> api::ContainerInstance {
    let empty = Usage::default();
    let u = usage.unwrap_or(&empty);
    let r = &i.resources;
    let mut registered = vec![
        int_resource("CPU", r.cpu),
        int_resource("MEMORY", r.memory),
        ports_resource("PORTS", r.ports.iter().copied()),
        ports_resource("PORTS_UDP", r.udp_ports.iter().copied()),
    ];
    registered.extend(r.other.iter().cloned());
    let mut tcp: Vec<u16> = r.ports.iter().chain(u.tcp.iter()).copied().collect();
    tcp.sort_unstable();
    tcp.dedup();
    let mut udp: Vec<u16> = r.udp_ports.iter().chain(u.udp.iter()).copied().collect();
    udp.sort_unstable();
    udp.dedup();
    let mut remaining = vec![
        int_resource("CPU", r.cpu - u.cpu),
        int_resource("MEMORY", r.memory - u.memory),
        ports_resource("PORTS", tcp.into_iter()),
        ports_resource("PORTS_UDP", udp.into_iter()),
    ];
    remaining.extend(r.other.iter().cloned());
    api::ContainerInstance {
        container_instance_arn: Some(ctx.container_instance(&i.cluster, i.id)),
        ec2_instance_id: i.ec2_instance_id.clone(),
        version: Some(i.version as i64),
        version_info: i.version_info.clone(),
        remaining_resources: Some(remaining),
        registered_resources: Some(registered),
        status: Some(i.status.as_str().into()),
        status_reason: i.status_reason.clone(),
        agent_connected: Some(i.agent_connected),
        running_tasks_count: Some(u.running as i32),
        pending_tasks_count: Some(u.pending as i32),
        attributes: Some(
            i.attributes
                .iter()
                .map(|(name, value)| api::Attribute {
                    name: Some(name.clone()),
                    value: value.clone(),
                    ..Default::default()
                })
                .collect(),
        ),
        registered_at: Some(seconds(i.registered_at)),
        attachments: Some(Vec::new()),
        tags: include_tags.then(|| tags(&i.tags)),
        capacity_provider_name: i
            .attribute(berth_model::capacity::PROVIDER_ATTRIBUTE)
            .map(str::to_owned),
        ..Default::default()
    }
}

pub fn task(ctx: &ArnContext, t: &Task, include_tags: bool) -> api::Task {
    let task_arn = ctx.task(&t.cluster, t.id);
    api::Task {
        attachments: Some(Vec::new()),
        attributes: Some(Vec::new()),
        capacity_provider_name: t.capacity_provider.as_ref().map(|p| p.to_string()),
        availability_zone: t.availability_zone.clone(),
        cluster_arn: Some(ctx.cluster(&t.cluster)),
        container_instance_arn: t.instance.map(|i| ctx.container_instance(&t.cluster, i)),
        containers: Some(
            t.containers
                .iter()
                .map(|c| api::Container {
                    container_arn: Some(ctx.container(&t.cluster, t.id, &c.name)),
                    task_arn: Some(task_arn.clone()),
                    name: Some(c.name.clone()),
                    image: Some(c.image.clone()),
                    image_digest: c.image_digest.clone(),
                    runtime_id: c.runtime_id.clone(),
                    last_status: Some(c.last_status.as_str().into()),
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    network_bindings: Some(c.network_bindings.clone()),
                    network_interfaces: Some(Vec::new()),
                    health_status: Some(c.health_status.as_str().into()),
                    cpu: Some(c.cpu.unwrap_or(0).to_string()),
                    memory: c.memory.map(|m| m.to_string()),
                    memory_reservation: c.memory_reservation.map(|m| m.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
        cpu: t.cpu.clone(),
        created_at: Some(seconds(t.created_at)),
        desired_status: Some(t.desired_status.as_str().into()),
        enable_execute_command: Some(t.enable_execute_command),
        execution_stopped_at: t.execution_stopped_at.map(seconds),
        group: Some(t.group.clone()),
        health_status: Some(t.health_status.as_str().into()),
        last_status: Some(t.last_status.as_str().into()),
        launch_type: Some(t.launch_type.clone()),
        memory: t.memory.clone(),
        overrides: Some(t.overrides.clone()),
        pull_started_at: t.pull_started_at.map(seconds),
        pull_stopped_at: t.pull_stopped_at.map(seconds),
        started_at: t.started_at.map(seconds),
        started_by: t.started_by.clone(),
        stop_code: t.stop_code.clone(),
        stopped_at: t.stopped_at.map(seconds),
        stopped_reason: t.stopped_reason.clone(),
        stopping_at: t.stopping_at.map(seconds),
        tags: Some(if include_tags {
            tags(&t.tags)
        } else {
            Vec::new()
        }),
        task_arn: Some(task_arn),
        task_definition_arn: Some(ctx.task_definition(&t.family, t.revision)),
        version: Some(t.version as i64),
        ..Default::default()
    }
}

pub fn failure(ctx: &ArnContext, f: &Failure) -> api::Failure {
    api::Failure {
        arn: f.resource.as_ref().map(|r| r.render(ctx)),
        reason: Some(f.reason.clone()),
        detail: f.detail.clone(),
    }
}

/// A service as ECS shows it, with its task counts read from `state`: `runningCount` counts
/// tasks meant to run that are RUNNING, `pendingCount` those meant to run that are not there
/// yet; each deployment counts its own tasks, found by `startedBy` = its id. Tags are left
/// empty: the caller adds them when asked for.
pub(crate) fn service(ctx: &ArnContext, state: &State, s: &Service) -> api::Service {
    let mut out = service_value(ctx, s);
    let group = s.group();
    let (running, pending) = task_counts(
        state,
        s,
        TaskFilter {
            group: Some(group.clone()),
            desired_status: Some(DesiredStatus::Running),
            ..Default::default()
        },
    );
    out.running_count = Some(running);
    out.pending_count = Some(pending);
    if let Some(deployments) = out.deployments.as_mut() {
        for (rendered, d) in deployments.iter_mut().zip(&s.deployments) {
            let (running, pending) = task_counts(
                state,
                s,
                TaskFilter {
                    started_by: Some(d.id.clone()),
                    group: Some(group.clone()),
                    desired_status: Some(DesiredStatus::Running),
                    ..Default::default()
                },
            );
            rendered.running_count = Some(running);
            rendered.pending_count = Some(pending);
        }
    }
    if s.external() {
        out.task_sets = Some(
            s.task_sets
                .iter()
                .map(|t| task_set(ctx, state, s, t))
                .collect(),
        );
    }
    out
}

/// A task set of an EXTERNAL service as ECS shows it, with its counts read from `state`.
/// Tags are left empty: the caller adds them when asked for.
pub(crate) fn task_set(ctx: &ArnContext, state: &State, s: &Service, t: &TaskSet) -> api::TaskSet {
    let (running, pending) = task_counts(
        state,
        s,
        TaskFilter {
            started_by: Some(t.id.clone()),
            group: Some(s.group()),
            desired_status: Some(DesiredStatus::Running),
            ..Default::default()
        },
    );
    let strategy = &t.capacity_provider_strategy;
    api::TaskSet {
        id: Some(t.id.clone()),
        task_set_arn: Some(ctx.task_set(&s.cluster, &s.name, &t.id)),
        service_arn: Some(ctx.service(&s.cluster, &s.name)),
        cluster_arn: Some(ctx.cluster(&s.cluster)),
        external_id: t.external_id.clone(),
        status: Some(t.status.as_str().into()),
        task_definition: Some(ctx.task_definition(&t.family, t.revision)),
        computed_desired_count: Some(clamp(t.computed_desired_count(s.desired_count))),
        pending_count: Some(pending),
        running_count: Some(running),
        created_at: Some(seconds(t.created_at)),
        updated_at: Some(seconds(t.updated_at)),
        launch_type: strategy.is_empty().then(|| "EC2".into()),
        capacity_provider_strategy: (!strategy.is_empty())
            .then(|| strategy.iter().map(|i| i.render()).collect()),
        load_balancers: Some(Vec::new()),
        service_registries: Some(Vec::new()),
        scale: Some(api::Scale {
            value: Some(t.scale),
            unit: Some("PERCENT".into()),
        }),
        stability_status: Some(t.stability_status.as_str().into()),
        stability_status_at: Some(seconds(t.stability_status_at)),
        tags: Some(Vec::new()),
        ..Default::default()
    }
}

/// (running, pending) among the tasks of `s`'s cluster that match `filter`.
pub(crate) fn task_counts(state: &State, s: &Service, filter: TaskFilter) -> (i32, i32) {
    let (mut running, mut pending) = (0, 0);
    for t in state.tasks_after(&s.cluster, &filter, None) {
        match t.last_status {
            TaskStatus::Running => running += 1,
            status if status < TaskStatus::Running => pending += 1,
            _ => {}
        }
    }
    (running, pending)
}

/// A service's stored value as ECS shows it, without anything derived from its tasks (the
/// counts are left out): what a version of it in the history is.
pub(crate) fn service_value(ctx: &ArnContext, s: &Service) -> api::Service {
    let config = &s.deployment_configuration;
    api::Service {
        service_arn: Some(ctx.service(&s.cluster, &s.name)),
        service_name: Some(s.name.to_string()),
        cluster_arn: Some(ctx.cluster(&s.cluster)),
        load_balancers: Some(Vec::new()),
        service_registries: Some(crate::discovery::render_registries(
            ctx,
            &s.service_registries,
        )),
        status: Some(s.status.as_str().into()),
        desired_count: Some(clamp(s.desired_count)),
        // ECS shows one or the other: a launch type, or the strategy the service uses.
        launch_type: s
            .capacity_provider_strategy
            .is_empty()
            .then(|| "EC2".into()),
        capacity_provider_strategy: (!s.capacity_provider_strategy.is_empty()).then(|| {
            s.capacity_provider_strategy
                .iter()
                .map(|i| i.render())
                .collect()
        }),
        task_definition: s
            .task_definition()
            .map(|(family, revision)| ctx.task_definition(family, revision)),
        deployment_configuration: Some(api::DeploymentConfiguration {
            deployment_circuit_breaker: Some(api::DeploymentCircuitBreaker {
                enable: Some(config.circuit_breaker.enable),
                rollback: Some(config.circuit_breaker.rollback),
                ..Default::default()
            }),
            maximum_percent: Some(clamp(config.maximum_percent)),
            minimum_healthy_percent: Some(clamp(config.minimum_healthy_percent)),
            ..Default::default()
        }),
        deployments: Some(
            s.deployments
                .iter()
                .map(|d| deployment(ctx, d, &s.capacity_provider_strategy))
                .collect(),
        ),
        events: Some(
            s.events
                .iter()
                .map(|e| api::ServiceEvent {
                    id: Some(e.id.clone()),
                    created_at: Some(seconds(e.at)),
                    message: Some(e.message.clone()),
                })
                .collect(),
        ),
        created_at: Some(seconds(s.created_at)),
        placement_constraints: Some(s.placement_constraints.clone()),
        placement_strategy: Some(s.placement_strategy.clone()),
        health_check_grace_period_seconds: Some(clamp(
            s.health_check_grace_period_seconds.unwrap_or(0),
        )),
        scheduling_strategy: Some(s.scheduling_strategy.as_str().into()),
        deployment_controller: Some(api::DeploymentController {
            r#type: Some(s.deployment_controller.as_str().into()),
        }),
        tags: Some(Vec::new()),
        created_by: Some(actor_arn(ctx, s.created_by.as_deref())),
        enable_ecs_managed_tags: Some(s.enable_ecs_managed_tags),
        propagate_tags: Some(s.propagate_tags.clone().unwrap_or_else(|| "NONE".into())),
        enable_execute_command: Some(s.enable_execute_command),
        ..Default::default()
    }
}

fn deployment(ctx: &ArnContext, d: &Deployment, strategy: &[StrategyItem]) -> api::Deployment {
    api::Deployment {
        id: Some(d.id.clone()),
        status: Some(d.status.as_str().into()),
        task_definition: Some(ctx.task_definition(&d.family, d.revision)),
        desired_count: Some(clamp(d.desired_count)),
        failed_tasks: Some(clamp(d.failed_tasks)),
        created_at: Some(seconds(d.created_at)),
        updated_at: Some(seconds(d.updated_at)),
        launch_type: strategy.is_empty().then(|| "EC2".into()),
        capacity_provider_strategy: (!strategy.is_empty())
            .then(|| strategy.iter().map(|i| i.render()).collect()),
        rollout_state: Some(d.rollout_state.as_str().into()),
        rollout_state_reason: d.rollout_state_reason.clone(),
        ..Default::default()
    }
}

/// A count as the wire's 32-bit integer.
fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A MISSING failure for an item a Describe call could not find, echoing what the caller sent.
pub fn missing(arn: String) -> api::Failure {
    api::Failure {
        arn: Some(arn),
        reason: Some("MISSING".into()),
        detail: None,
    }
}
