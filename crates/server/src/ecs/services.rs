//! CreateService, UpdateService, DeleteService, DescribeServices, ListServices.
//!
//! These handlers only ever write a service's *configuration*: what it should run, how many,
//! where, and how fast to roll from one revision to the next. Everything that moves on its own
//! (starting and stopping tasks, completing or failing rollouts, dropping drained deployments,
//! events, turning a deleted service INACTIVE) is the service reconciler's, on the leader.
//!
//! Both write the same stored value, so every change here is decided on a snapshot and
//! committed as `PutService { expected_version }`: if the reconciler (or another caller) wrote
//! the service in between, the state machine refuses the stale value and the handler reads the
//! service again and decides again, instead of overwriting what happened meanwhile.
//!
//! What berth cannot offer (load balancers, service discovery, awsvpc networking, other
//! deployment controllers) is refused up front with a reason, never accepted and silently
//! ignored: a service that looks configured but is not is worse than an error.

use std::sync::Arc;

use berth_api::types::{self as api, enums};
use berth_api::{EcsError, ErrorCode};
use berth_model::Millis;
use berth_model::arn::parse_service;
use berth_model::command::{CreateService, PutService};
use berth_model::entity::TaskDefinition;
use berth_model::service::{
    CircuitBreaker, Deployment, DeploymentConfig, DeploymentControllerType, DeploymentStatus,
    RolloutState, SchedulingStrategy, Service, ServiceStatus,
};
use berth_model::validate::command::valid_service_name;
use berth_model::validate::{self, list_len, max_results, one_of, required, required_str};
use berth_scheduler::service::deployment_id;
use berth_scheduler::{parse_constraint, parse_strategy};
use berth_state::State;

use super::render;
use super::task_definitions::{resolve, runnable};
use super::tasks::{MAX_CONSTRAINTS, MAX_STRATEGIES, digest, launch_type};
use super::{Ctx, active_cluster, cluster_param, existing_cluster};
use crate::App;
use crate::pagination;

/// Services one DescribeServices call may name.
const MAX_DESCRIBE: usize = 10;

/// Times an UpdateService or DeleteService re-reads the service and decides again after the
/// service changed under it. The reconciler writes a service a few times per rollout at most,
/// so running out means something is badly wrong; the caller gets the ConflictException.
const MAX_PUT_ATTEMPTS: usize = 10;

/// Longest `clientToken` CreateService accepts.
const MAX_CLIENT_TOKEN: usize = 36;

// --- references ------------------------------------------------------------------------------

/// The cluster and name a `service` parameter refers to. A service ARN that names a cluster
/// supplies the cluster when the request names none, and must agree with it when it does.
pub(super) fn service_ref(
    reference: &str,
    cluster: &Option<String>,
) -> Result<(String, String), EcsError> {
    let (named, name) = parse_service(reference).map_err(|e| EcsError::invalid(e.to_string()))?;
    let given = cluster.as_deref().filter(|c| !c.is_empty());
    match (named, given) {
        (Some(named), None) => Ok((named, name)),
        (Some(named), Some(_)) => {
            let cluster = cluster_param(cluster)?;
            if named != cluster {
                return Err(EcsError::invalid(format!(
                    "Service {} belongs to cluster {named}, not {cluster}",
                    validate::shorten(reference)
                )));
            }
            Ok((cluster, name))
        }
        (None, _) => Ok((cluster_param(cluster)?, name)),
    }
}

/// The task definition a service is to run: it must be registered and ACTIVE.
pub(super) fn definition<'a>(
    state: &'a State,
    reference: &str,
) -> Result<&'a Arc<TaskDefinition>, EcsError> {
    // ECS answers an unknown task definition of a service with InvalidParameterException
    // (RunTask's answer is a ClientException); the message says which and why.
    let definition = resolve(state, reference)
        .map_err(|e| EcsError::invalid(format!("TaskDefinition not found. {}", e.message)))?;
    runnable(definition)?;
    Ok(definition)
}

// --- parameters -------------------------------------------------------------------------------

fn scheduling_strategy(value: Option<&str>) -> Result<SchedulingStrategy, EcsError> {
    match value {
        None => Ok(SchedulingStrategy::Replica),
        Some(s) => {
            one_of(s, enums::SCHEDULING_STRATEGY, "schedulingStrategy")?;
            SchedulingStrategy::parse(s)
                .ok_or_else(|| EcsError::invalid(format!("'{s}' is not a schedulingStrategy")))
        }
    }
}

/// The deployment controller asked for, `None` when the request names none.
fn deployment_controller(
    value: Option<&api::DeploymentController>,
) -> Result<Option<DeploymentControllerType>, EcsError> {
    let Some(controller) = value else {
        return Ok(None);
    };
    let kind = required_str(&controller.r#type, "deploymentController.type")?;
    match one_of(
        kind,
        enums::DEPLOYMENT_CONTROLLER_TYPE,
        "deploymentController type",
    )? {
        "ECS" => Ok(Some(DeploymentControllerType::Ecs)),
        "EXTERNAL" => Ok(Some(DeploymentControllerType::External)),
        other => Err(EcsError::invalid(format!(
            "deploymentController type {other} is not supported: berth has no CodeDeploy; deploy with rolling updates (ECS) or your own controller through task sets (EXTERNAL)"
        ))),
    }
}

/// What an EXTERNAL service's task sets decide and the service itself may not name.
fn not_for_external(
    task_definition: Option<&str>,
    launch_type: Option<&str>,
    capacity_provider_strategy: Option<&[api::CapacityProviderStrategyItem]>,
) -> Result<(), EcsError> {
    let named = [
        ("taskDefinition", task_definition.is_some()),
        ("launchType", launch_type.is_some()),
        (
            "capacityProviderStrategy",
            capacity_provider_strategy.is_some_and(|c| !c.is_empty()),
        ),
    ];
    match named.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(EcsError::invalid(format!(
            "{name} cannot be set on a service with the EXTERNAL deployment controller: each task set names its own (CreateTaskSet)"
        ))),
        None => Ok(()),
    }
}

/// A DAEMON service runs on every instance: ECS takes no capacity provider strategy for one.
fn no_strategy_for_daemon(
    given: Option<&[api::CapacityProviderStrategyItem]>,
) -> Result<Vec<berth_model::capacity::StrategyItem>, EcsError> {
    if given.is_some_and(|g| !g.is_empty()) {
        return Err(EcsError::invalid(
            "A capacity provider strategy cannot be used with the DAEMON scheduling strategy: a daemon service runs one task on every container instance",
        ));
    }
    Ok(Vec::new())
}

/// The parameters CreateService and UpdateService share that name something berth does not
/// have. Each is refused with what berth offers instead.
#[derive(Default)]
pub(super) struct Unsupported<'a> {
    pub(super) load_balancers: Option<&'a [api::LoadBalancer]>,
    pub(super) service_registries: Option<&'a [api::ServiceRegistry]>,
    pub(super) network_configuration: Option<&'a api::NetworkConfiguration>,
    pub(super) platform_version: Option<&'a str>,
    pub(super) service_connect: Option<&'a api::ServiceConnectConfiguration>,
    pub(super) volume_configurations: Option<&'a [api::ServiceVolumeConfiguration]>,
    pub(super) vpc_lattice: Option<&'a [api::VpcLatticeConfiguration]>,
    pub(super) availability_zone_rebalancing: Option<&'a str>,
}

impl Unsupported<'_> {
    pub(super) fn check(&self) -> Result<(), EcsError> {
        fn given<T>(v: Option<&[T]>) -> bool {
            v.is_some_and(|v| !v.is_empty())
        }
        if given(self.load_balancers) {
            return Err(EcsError::invalid(
                "loadBalancers are not supported: berth does not manage load balancers; point yours at the tasks' host ports",
            ));
        }
        if given(self.service_registries) {
            return Err(EcsError::invalid(
                "serviceRegistries are not supported on task sets",
            ));
        }
        if self
            .network_configuration
            .is_some_and(|n| n.awsvpc_configuration.is_some())
        {
            return Err(EcsError::invalid(
                "networkConfiguration.awsvpcConfiguration is not supported: berth does not attach network interfaces; use the bridge or host network mode",
            ));
        }
        if self.platform_version.is_some_and(|p| !p.is_empty()) {
            return Err(EcsError::invalid(
                "platformVersion applies to Fargate only; berth runs services on registered container instances",
            ));
        }
        if self
            .service_connect
            .is_some_and(|s| s.enabled == Some(true))
        {
            return Err(EcsError::invalid(
                "serviceConnectConfiguration is not supported: berth has no Service Connect",
            ));
        }
        if given(self.volume_configurations) {
            return Err(EcsError::invalid(
                "volumeConfigurations are not supported: berth does not provision EBS volumes",
            ));
        }
        if given(self.vpc_lattice) {
            return Err(EcsError::invalid(
                "vpcLatticeConfigurations are not supported: berth has no VPC Lattice integration",
            ));
        }
        if let Some(z) = self.availability_zone_rebalancing {
            one_of(
                z,
                enums::AVAILABILITY_ZONE_REBALANCING,
                "availabilityZoneRebalancing",
            )?;
        }
        Ok(())
    }
}

/// A deployment configuration: the given members over `base` (ECS's defaults on create, the
/// service's current values on update), checked against the scheduling strategy.
fn deployment_config(
    given: Option<&api::DeploymentConfiguration>,
    base: DeploymentConfig,
    strategy: SchedulingStrategy,
) -> Result<DeploymentConfig, EcsError> {
    let mut out = base;
    let Some(given) = given else {
        return Ok(out);
    };
    if let Some(s) = given.strategy.as_deref()
        && one_of(
            s,
            enums::DEPLOYMENT_STRATEGY,
            "deploymentConfiguration.strategy",
        )? != "ROLLING"
    {
        return Err(EcsError::invalid(format!(
            "deploymentConfiguration.strategy {s} is not supported: berth deploys services with rolling updates (ROLLING)"
        )));
    }
    if given
        .alarms
        .as_ref()
        .is_some_and(|a| a.enable == Some(true))
    {
        return Err(EcsError::invalid(
            "deploymentConfiguration.alarms is not supported: berth has no CloudWatch alarms; use the deployment circuit breaker",
        ));
    }
    if given
        .lifecycle_hooks
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        return Err(EcsError::invalid(
            "deploymentConfiguration.lifecycleHooks are not supported: berth deploys services with rolling updates",
        ));
    }
    if let Some(min) = given.minimum_healthy_percent {
        if !(0..=100).contains(&min) {
            return Err(EcsError::invalid(format!(
                "deploymentConfiguration.minimumHealthyPercent must be between 0 and 100; got {min}"
            )));
        }
        out.minimum_healthy_percent = min as u32;
    }
    if let Some(max) = given.maximum_percent {
        if max < 100 {
            return Err(EcsError::invalid(format!(
                "deploymentConfiguration.maximumPercent must be at least 100; got {max}"
            )));
        }
        out.maximum_percent = max as u32;
    }
    if strategy == SchedulingStrategy::Daemon && out.maximum_percent != 100 {
        return Err(EcsError::invalid(format!(
            "deploymentConfiguration.maximumPercent must be 100 for a DAEMON service (it runs one task per instance); got {}",
            out.maximum_percent
        )));
    }
    if out.minimum_healthy_percent > out.maximum_percent {
        return Err(EcsError::invalid(format!(
            "deploymentConfiguration.minimumHealthyPercent ({}) cannot be greater than maximumPercent ({})",
            out.minimum_healthy_percent, out.maximum_percent
        )));
    }
    if let Some(cb) = &given.deployment_circuit_breaker {
        out.circuit_breaker = CircuitBreaker {
            enable: *required(&cb.enable, "deploymentCircuitBreaker.enable")?,
            rollback: *required(&cb.rollback, "deploymentCircuitBreaker.rollback")?,
        };
    }
    Ok(out)
}

/// Placement constraints as given, each parsed to prove it valid; together with the task
/// definition's (when there is one yet) at most ten, as every one of them binds each task.
pub(super) fn placement_constraints(
    definition: Option<&TaskDefinition>,
    given: &[api::PlacementConstraint],
) -> Result<Vec<api::PlacementConstraint>, EcsError> {
    let from_definition = definition
        .and_then(|d| d.spec.placement_constraints.as_deref())
        .map_or(0, <[_]>::len);
    if from_definition + given.len() > MAX_CONSTRAINTS {
        return Err(EcsError::invalid(format!(
            "A service's tasks can have at most {MAX_CONSTRAINTS} placement constraints, counting the {from_definition} of its task definition; got {}",
            from_definition + given.len()
        )));
    }
    for c in given {
        let kind = required_str(&c.r#type, "placementConstraints.type")?;
        parse_constraint(kind, c.expression.as_deref())
            .map_err(|e| EcsError::invalid(e.to_string()))?;
    }
    Ok(given.to_vec())
}

/// For a caller who may not run host processes, a service whose tasks name no runtime keeps
/// off agents that would run them as host processes: a constraint saying so is added to the
/// service (and shows in DescribeServices).
pub(super) fn guard_host_process_agents(
    ctx: &Ctx,
    spec: &api::TaskDefinition,
    cluster: &str,
    constraints: &mut Vec<api::PlacementConstraint>,
) {
    let guard = berth_model::privileges::NOT_ON_HOST_PROCESS_AGENTS;
    let present = constraints
        .iter()
        .any(|c| c.expression.as_deref() == Some(guard));
    if !present && ctx.kept_off_host_process_agents(spec, cluster) {
        constraints.push(api::PlacementConstraint {
            r#type: Some("memberOf".into()),
            expression: Some(guard.into()),
        });
    }
}

/// Placement strategies as given, each parsed to prove it valid. A DAEMON service has none:
/// it puts one task on every instance.
fn placement_strategy(
    given: &[api::PlacementStrategy],
    strategy: SchedulingStrategy,
) -> Result<Vec<api::PlacementStrategy>, EcsError> {
    if strategy == SchedulingStrategy::Daemon && !given.is_empty() {
        return Err(EcsError::invalid(
            "Placement strategies are not supported with the DAEMON scheduling strategy: it places one task on each instance that meets the constraints",
        ));
    }
    if given.len() > MAX_STRATEGIES {
        return Err(EcsError::invalid(format!(
            "At most {MAX_STRATEGIES} placement strategies can be chained; got {}",
            given.len()
        )));
    }
    for s in given {
        let kind = required_str(&s.r#type, "placementStrategy.type")?;
        parse_strategy(kind, s.field.as_deref()).map_err(|e| EcsError::invalid(e.to_string()))?;
    }
    Ok(given.to_vec())
}

fn grace_period(value: Option<i32>) -> Result<Option<u32>, EcsError> {
    match value {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u32)),
        Some(n) => Err(EcsError::invalid(format!(
            "healthCheckGracePeriodSeconds must be 0 or more; got {n}"
        ))),
    }
}

fn propagate_tags(value: Option<&str>) -> Result<Option<String>, EcsError> {
    value
        .map(|v| one_of(v, enums::PROPAGATE_TAGS, "propagateTags").map(str::to_owned))
        .transpose()
        .map_err(EcsError::from)
}

fn desired_count(value: i32) -> Result<u32, EcsError> {
    u32::try_from(value)
        .map_err(|_| EcsError::invalid(format!("desiredCount must be 0 or more; got {value}")))
}

// --- deployments ------------------------------------------------------------------------------

/// A new PRIMARY deployment of `definition`, just started, replacing `sources` (the
/// deployments live now), its tasks split by `strategy`.
fn new_deployment(
    definition: &TaskDefinition,
    desired: u32,
    sources: Vec<String>,
    strategy: &[berth_model::capacity::StrategyItem],
    now: Millis,
) -> Deployment {
    let id = deployment_id(&mut rand::rng());
    Deployment {
        rolled_back_by: None,
        sources,
        capacity_provider_strategy: strategy.to_vec(),
        finished_at: None,
        rollout_state_reason: Some(format!("ECS deployment {id} in progress.")),
        id,
        status: DeploymentStatus::Primary,
        family: definition.family.clone(),
        revision: definition.revision,
        desired_count: desired,
        rollout_state: RolloutState::InProgress,
        failed_tasks: 0,
        rollback_of: None,
        created_at: now,
        updated_at: now,
    }
}

/// A digest of a request's JSON (RunTask's stable FNV-1a), so a retried CreateService is
/// recognised after a restart too.
fn request_digest<T: serde::Serialize>(request: &T) -> u64 {
    digest(&serde_json::to_vec(request).unwrap_or_default())
}

// --- writes -----------------------------------------------------------------------------------

/// Reads the service, lets `decide` compute its new value from the snapshot (`None`: nothing
/// to change), and commits it; if the service moved in between, reads it and decides again.
/// Returns the service as stored.
pub(super) async fn change_service<F>(
    app: &App,
    ctx: &Ctx,
    cluster: &str,
    name: &str,
    mut decide: F,
) -> Result<Arc<Service>, EcsError>
where
    F: FnMut(&State, &Service) -> Result<Option<Service>, EcsError>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let state = app.node.state();
        active_cluster(&state, cluster)?;
        let current = state
            .service(cluster, name)
            .ok_or(berth_model::Error::ServiceNotFound)?;
        let Some(mut next) = decide(&state, current)? else {
            return Ok(current.clone());
        };
        next.steady = false;
        let command = PutService {
            service: Arc::new(next),
            expected_version: current.version,
        };
        match app.write_by(&ctx.principal, command).await {
            Ok(stored) => return Ok(stored),
            Err(e) if e.code == ErrorCode::ConflictException && attempt < MAX_PUT_ATTEMPTS => {
                tokio::task::yield_now().await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A service as an answer: counts from the newest state, tags when `with_tags`.
pub(super) fn answer(app: &App, ctx: &Ctx, service: &Service, with_tags: bool) -> api::Service {
    let state = app.node.state();
    let mut out = render::service(&ctx.arn, &state, service);
    if with_tags {
        out.tags = Some(render::tags(&service.tags));
    }
    out
}

// --- handlers ---------------------------------------------------------------------------------

pub async fn create(
    app: &App,
    ctx: &Ctx,
    req: api::CreateServiceRequest,
) -> Result<api::CreateServiceResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let name = required_str(&req.service_name, "serviceName")?;
    if !valid_service_name(name) {
        return Err(EcsError::invalid(format!(
            "serviceName '{}' is invalid: use 1 to 255 letters, numbers, hyphens and underscores",
            validate::shorten(name)
        )));
    }
    let controller = deployment_controller(req.deployment_controller.as_ref())?
        .unwrap_or(DeploymentControllerType::Ecs);
    let external = controller == DeploymentControllerType::External;
    let strategy = scheduling_strategy(req.scheduling_strategy.as_deref())?;
    let reference = if external {
        not_for_external(
            req.task_definition.as_deref(),
            req.launch_type.as_deref(),
            req.capacity_provider_strategy.as_deref(),
        )?;
        if strategy == SchedulingStrategy::Daemon {
            return Err(EcsError::invalid(
                "The DAEMON scheduling strategy cannot be used with the EXTERNAL deployment controller: task sets hold a share of a desired count",
            ));
        }
        None
    } else {
        Some(required_str(&req.task_definition, "taskDefinition")?)
    };
    let desired = match strategy {
        // An EXTERNAL service needs only its name: its count may come later.
        SchedulingStrategy::Replica if external => desired_count(req.desired_count.unwrap_or(0))?,
        SchedulingStrategy::Replica => {
            desired_count(req.desired_count.ok_or_else(|| {
                EcsError::invalid("desiredCount is required for a REPLICA service")
            })?)?
        }
        // The reconciler counts the instances a DAEMON service belongs on; anything given is
        // not a count the service could hold.
        SchedulingStrategy::Daemon => 0,
    };
    launch_type(req.launch_type.as_deref())?;
    Unsupported {
        load_balancers: req.load_balancers.as_deref(),
        // Checked below, against the task definition.
        service_registries: None,
        network_configuration: req.network_configuration.as_ref(),
        platform_version: req.platform_version.as_deref(),
        service_connect: req.service_connect_configuration.as_ref(),
        volume_configurations: req.volume_configurations.as_deref(),
        vpc_lattice: req.vpc_lattice_configurations.as_deref(),
        availability_zone_rebalancing: req.availability_zone_rebalancing.as_deref(),
    }
    .check()?;
    let config = deployment_config(
        req.deployment_configuration.as_ref(),
        DeploymentConfig::default_for(strategy),
        strategy,
    )?;
    let strategies = placement_strategy(
        req.placement_strategy.as_deref().unwrap_or_default(),
        strategy,
    )?;
    let grace = grace_period(req.health_check_grace_period_seconds)?;
    let propagate = propagate_tags(req.propagate_tags.as_deref())?;
    let tags = validate::tags(req.tags.as_deref())?;
    if let Some(t) = &req.client_token {
        let ok = !t.is_empty()
            && t.len() <= MAX_CLIENT_TOKEN
            && t.bytes().all(|b| (33..=126).contains(&b));
        if !ok {
            return Err(EcsError::invalid(format!(
                "clientToken must be 1 to {MAX_CLIENT_TOKEN} printable ASCII characters (33-126)"
            )));
        }
    }
    let digest = request_digest(&req);

    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let existing = |state: &State| {
        state
            .service(&cluster, name)
            .filter(|s| s.status != ServiceStatus::Inactive)
            .cloned()
    };
    if let Some(s) = existing(&state) {
        return idempotent(app, ctx, &s, digest);
    }
    let capacity_provider_strategy = match strategy {
        SchedulingStrategy::Replica if external => Vec::new(),
        SchedulingStrategy::Replica => super::capacity::launch_strategy(
            &state,
            &cluster,
            req.capacity_provider_strategy.as_deref(),
            req.launch_type.as_deref(),
        )?,
        SchedulingStrategy::Daemon => {
            no_strategy_for_daemon(req.capacity_provider_strategy.as_deref())?
        }
    };
    let given_constraints = req.placement_constraints.as_deref().unwrap_or_default();
    let now = Millis::now();
    let (constraints, deployments, service_registries) = match reference {
        Some(reference) => {
            let definition = definition(&state, reference)?;
            let registries = crate::discovery::service_registries(
                &state,
                req.service_registries.as_deref(),
                Some(definition),
            )?;
            ctx.allow_privileges(
                &definition.spec,
                Some(&cluster),
                "Running this task definition in a service",
            )?;
            let mut constraints = placement_constraints(Some(definition), given_constraints)?;
            guard_host_process_agents(ctx, &definition.spec, &cluster, &mut constraints);
            let first = new_deployment(
                definition,
                desired,
                Vec::new(),
                &capacity_provider_strategy,
                now,
            );
            (constraints, vec![first], registries)
        }
        // The task sets bring the definitions (and are checked against the constraints then).
        None => (
            placement_constraints(None, given_constraints)?,
            Vec::new(),
            crate::discovery::service_registries(&state, req.service_registries.as_deref(), None)?,
        ),
    };
    let service = Service {
        cluster: cluster.as_str().into(),
        name: name.into(),
        status: ServiceStatus::Active,
        scheduling_strategy: strategy,
        desired_count: desired,
        deployment_configuration: config,
        placement_constraints: constraints,
        placement_strategy: strategies,
        health_check_grace_period_seconds: grace,
        deployments,
        events: Vec::new(),
        steady: false,
        enable_ecs_managed_tags: req.enable_ecs_managed_tags.unwrap_or(false),
        propagate_tags: propagate,
        enable_execute_command: req.enable_execute_command.unwrap_or(false),
        tags,
        created_at: now,
        deleted_at: None,
        request_digest: digest,
        version: 0,
        created_by: None,
        capacity_provider_strategy,
        deployment_controller: controller,
        task_sets: Vec::new(),
        past_deployments: Vec::new(),
        service_registries,
    };
    let service = match app
        .write_by(
            &ctx.principal,
            CreateService {
                service: Arc::new(service),
            },
        )
        .await
    {
        Ok(stored) => stored,
        // Two identical requests raced: the loser answers with the winner's service.
        Err(e) if e.code == ErrorCode::InvalidParameterException => {
            match existing(&app.node.state()) {
                Some(s) => return idempotent(app, ctx, &s, digest),
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    Ok(api::CreateServiceResponse {
        service: Some(answer(app, ctx, &service, true)),
    })
}

/// The answer to a CreateService for a name already taken: the service itself when the request
/// is the one that created it (a retry), an error otherwise.
fn idempotent(
    app: &App,
    ctx: &Ctx,
    existing: &Service,
    digest: u64,
) -> Result<api::CreateServiceResponse, EcsError> {
    if existing.request_digest != digest {
        return Err(EcsError::invalid("Creation of service was not idempotent."));
    }
    Ok(api::CreateServiceResponse {
        service: Some(answer(app, ctx, existing, true)),
    })
}

pub async fn update(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateServiceRequest,
) -> Result<api::UpdateServiceResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    active_cluster(&app.node.state(), &cluster)?;
    Unsupported {
        load_balancers: req.load_balancers.as_deref(),
        // Checked below, against the task definition.
        service_registries: None,
        network_configuration: req.network_configuration.as_ref(),
        platform_version: req.platform_version.as_deref(),
        service_connect: req.service_connect_configuration.as_ref(),
        volume_configurations: req.volume_configurations.as_deref(),
        vpc_lattice: req.vpc_lattice_configurations.as_deref(),
        availability_zone_rebalancing: req.availability_zone_rebalancing.as_deref(),
    }
    .check()?;
    let controller = deployment_controller(req.deployment_controller.as_ref())?;
    let desired = req.desired_count.map(desired_count).transpose()?;
    let grace = grace_period(req.health_check_grace_period_seconds)?;
    let propagate = propagate_tags(req.propagate_tags.as_deref())?;
    let reference = match req.task_definition.as_deref() {
        Some("") => return Err(EcsError::invalid("'taskDefinition' must not be empty")),
        other => other,
    };

    let service = change_service(app, ctx, &cluster, &name, |state, current| {
        if current.status != ServiceStatus::Active {
            return Err(berth_model::Error::ServiceNotActive.into());
        }
        if controller.is_some_and(|c| c != current.deployment_controller) {
            return Err(EcsError::invalid(format!(
                "The deployment controller of service {name} is {} and cannot be changed",
                current.deployment_controller
            )));
        }
        if current.external() {
            crate::discovery::service_registries(state, req.service_registries.as_deref(), None)?;
            return update_external(ctx, state, &req, desired, grace, &propagate, current)
                .map(|next| (next != *current).then_some(next));
        }
        let strategy = current.scheduling_strategy;
        if desired.is_some() && strategy == SchedulingStrategy::Daemon {
            return Err(EcsError::invalid(
                "desiredCount cannot be set on a DAEMON service: it runs one task on each container instance that meets its placement constraints",
            ));
        }
        let primary = current.primary().ok_or_else(|| {
            EcsError::server(format!("service {name} has no deployment"))
        })?;
        let definition = match reference {
            Some(r) => {
                let d = definition(state, r)?;
                ctx.allow_privileges(
                    &d.spec,
                    Some(&cluster),
                    "Running this task definition in a service",
                )?;
                d
            }
            None => state
                .task_definition(&primary.family, primary.revision)
                .ok_or_else(|| {
                    EcsError::client(format!(
                        "The service's task definition {}:{} no longer exists; name one with taskDefinition",
                        primary.family, primary.revision
                    ))
                })?,
        };
        // Given: the new registries (an empty list removes them). Not given: the current
        // ones, which the (maybe new) task definition must still serve.
        let registries = match req.service_registries.as_deref() {
            Some(given) => crate::discovery::service_registries(state, Some(given), Some(definition))?,
            None => crate::discovery::service_registries(
                state,
                Some(&crate::discovery::render_registries(
                    &ctx.arn,
                    &current.service_registries,
                )),
                Some(definition),
            )?,
        };
        let mut constraints = placement_constraints(
            Some(definition),
            req.placement_constraints
                .as_deref()
                .unwrap_or(&current.placement_constraints),
        )?;
        guard_host_process_agents(ctx, &definition.spec, &cluster, &mut constraints);
        let strategies = placement_strategy(
            req.placement_strategy
                .as_deref()
                .unwrap_or(&current.placement_strategy),
            strategy,
        )?;
        let config = deployment_config(
            req.deployment_configuration.as_ref(),
            current.deployment_configuration,
            strategy,
        )?;
        let capacity_provider_strategy = match req.capacity_provider_strategy.as_deref() {
            None => current.capacity_provider_strategy.clone(),
            Some(_) if strategy == SchedulingStrategy::Daemon => {
                no_strategy_for_daemon(req.capacity_provider_strategy.as_deref())?
            }
            Some([]) => Vec::new(),
            given => super::capacity::launch_strategy(state, &cluster, given, None)?,
        };

        let now = Millis::now();
        let mut next = current.clone();
        let redeploy = req.force_new_deployment == Some(true)
            || definition.family != primary.family
            || definition.revision != primary.revision
            || constraints != current.placement_constraints
            || strategies != current.placement_strategy
            || capacity_provider_strategy != current.capacity_provider_strategy
            || registries != current.service_registries;
        if let Some(d) = desired {
            next.desired_count = d;
        }
        if redeploy {
            let sources = next.deployments.iter().map(|d| d.id.clone()).collect();
            for d in &mut next.deployments {
                if d.status == DeploymentStatus::Primary {
                    d.status = DeploymentStatus::Active;
                    d.updated_at = now;
                }
            }
            let deployment = new_deployment(
                definition,
                next.desired_count,
                sources,
                &capacity_provider_strategy,
                now,
            );
            next.deployments.insert(0, deployment);
        } else if let Some(p) = next.deployments.first_mut()
            && p.desired_count != next.desired_count
        {
            p.desired_count = next.desired_count;
            p.updated_at = now;
        }
        next.placement_constraints = constraints;
        next.placement_strategy = strategies;
        next.capacity_provider_strategy = capacity_provider_strategy;
        next.service_registries = registries;
        next.deployment_configuration = config;
        if let Some(g) = grace {
            next.health_check_grace_period_seconds = Some(g);
        }
        if let Some(p) = &propagate {
            next.propagate_tags = Some(p.clone());
        }
        if let Some(e) = req.enable_execute_command {
            next.enable_execute_command = e;
        }
        if let Some(e) = req.enable_ecs_managed_tags {
            next.enable_ecs_managed_tags = e;
        }
        Ok((next != *current).then_some(next))
    })
    .await?;
    Ok(api::UpdateServiceResponse {
        service: Some(answer(app, ctx, &service, false)),
    })
}

/// UpdateService on an EXTERNAL service: only what is not a task set's to decide (the
/// desired count, placement, the grace period, tag options); the rest is refused with the way
/// to do it.
fn update_external(
    ctx: &Ctx,
    state: &State,
    req: &api::UpdateServiceRequest,
    desired: Option<u32>,
    grace: Option<u32>,
    propagate: &Option<String>,
    current: &Service,
) -> Result<Service, EcsError> {
    not_for_external(
        req.task_definition.as_deref(),
        None,
        req.capacity_provider_strategy.as_deref(),
    )?;
    if req.force_new_deployment == Some(true) {
        return Err(EcsError::invalid(
            "forceNewDeployment cannot be used on a service with the EXTERNAL deployment controller: create a new task set instead",
        ));
    }
    if req.deployment_configuration.is_some() {
        return Err(EcsError::invalid(
            "deploymentConfiguration cannot be updated on a service with the EXTERNAL deployment controller: the controller paces its task sets itself",
        ));
    }
    let constraints = match req.placement_constraints.as_deref() {
        Some(given) => {
            let mut constraints = placement_constraints(None, given)?;
            // A caller who may not run host processes cannot drop the guard its task sets'
            // definitions need.
            for set in &current.task_sets {
                if let Some(d) = state.task_definition(&set.family, set.revision) {
                    guard_host_process_agents(ctx, &d.spec, &current.cluster, &mut constraints);
                }
            }
            constraints
        }
        None => current.placement_constraints.clone(),
    };
    let strategies = placement_strategy(
        req.placement_strategy
            .as_deref()
            .unwrap_or(&current.placement_strategy),
        current.scheduling_strategy,
    )?;
    let mut next = current.clone();
    if let Some(d) = desired {
        next.desired_count = d;
    }
    next.placement_constraints = constraints;
    next.placement_strategy = strategies;
    if let Some(g) = grace {
        next.health_check_grace_period_seconds = Some(g);
    }
    if let Some(p) = propagate {
        next.propagate_tags = Some(p.clone());
    }
    if let Some(e) = req.enable_execute_command {
        next.enable_execute_command = e;
    }
    if let Some(e) = req.enable_ecs_managed_tags {
        next.enable_ecs_managed_tags = e;
    }
    Ok(next)
}

pub async fn delete(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteServiceRequest,
) -> Result<api::DeleteServiceResponse, EcsError> {
    let (cluster, name) = service_ref(required_str(&req.service, "service")?, &req.cluster)?;
    active_cluster(&app.node.state(), &cluster)?;
    let force = req.force.unwrap_or(false);
    let service = change_service(app, ctx, &cluster, &name, |_, current| {
        if current.status != ServiceStatus::Active {
            return Err(berth_model::Error::ServiceNotActive.into());
        }
        if current.scheduling_strategy == SchedulingStrategy::Replica
            && current.desired_count > 0
            && !force
        {
            return Err(EcsError::invalid(
                "The service cannot be stopped while it is scaled above 0.",
            ));
        }
        let now = Millis::now();
        let mut next = current.clone();
        next.status = ServiceStatus::Draining;
        next.desired_count = 0;
        for d in &mut next.deployments {
            if d.desired_count != 0 {
                d.desired_count = 0;
                d.updated_at = now;
            }
        }
        next.deleted_at = Some(now);
        Ok(Some(next))
    })
    .await?;
    Ok(api::DeleteServiceResponse {
        service: Some(answer(app, ctx, &service, false)),
    })
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeServicesRequest,
) -> Result<api::DescribeServicesResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let refs = required(&req.services, "services")?;
    list_len(refs, "services", true, MAX_DESCRIBE)?;
    let mut include_tags = false;
    for v in req.include.as_deref().unwrap_or_default() {
        include_tags |= one_of(v, enums::SERVICE_FIELD, "include value")? == "TAGS";
    }
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let mut services = Vec::with_capacity(refs.len());
    let mut failures = Vec::new();
    for r in refs {
        let parsed = parse_service(r).ok();
        let found = parsed
            .as_ref()
            .filter(|(named, _)| named.as_deref().is_none_or(|n| n == cluster))
            .and_then(|(_, name)| state.service(&cluster, name));
        match found {
            Some(s) => {
                let mut out = render::service(&ctx.arn, &state, s);
                if include_tags {
                    out.tags = Some(render::tags(&s.tags));
                }
                services.push(out);
            }
            None => failures.push(render::missing(match parsed {
                Some((named, name)) => ctx.arn.service(named.as_deref().unwrap_or(&cluster), &name),
                None => r.clone(),
            })),
        }
    }
    Ok(api::DescribeServicesResponse {
        services: Some(services),
        failures: Some(failures),
    })
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListServicesRequest,
) -> Result<api::ListServicesResponse, EcsError> {
    const OP: &str = "ListServices";
    let cluster = existing_cluster(app, &req.cluster)?;
    let max = max_results(req.max_results, 10, 100)?;
    // Every service berth runs is on registered instances, which it reports as EC2.
    let launch_type_matches = match req.launch_type.as_deref() {
        None => true,
        Some(l) => one_of(l, enums::LAUNCH_TYPE, "launchType")? == "EC2",
    };
    let strategy = req
        .scheduling_strategy
        .as_deref()
        .map(|s| scheduling_strategy(Some(s)))
        .transpose()?;
    if let Some(r) = &req.resource_management_type {
        one_of(r, enums::RESOURCE_MANAGEMENT_TYPE, "resourceManagementType")?;
    }
    let after: Option<String> = pagination::decode(OP, req.next_token.as_deref())?;
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let matching = state
        .services_after(&cluster, after.as_deref())
        .filter(|s| launch_type_matches && s.status != ServiceStatus::Inactive)
        .filter(|s| strategy.is_none_or(|st| s.scheduling_strategy == st));
    let (page, next) = pagination::page(OP, matching, max, |s| s.name.to_string());
    Ok(api::ListServicesResponse {
        service_arns: Some(
            page.iter()
                .map(|s| ctx.arn.service(&s.cluster, &s.name))
                .collect(),
        ),
        next_token: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_look_like_ecs_ones() {
        for _ in 0..100 {
            let id = deployment_id(&mut rand::rng());
            let digits = id.strip_prefix("ecs-svc/").expect("prefix");
            assert_eq!(digits.len(), 19, "{id}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{id}");
        }
    }

    #[test]
    fn service_names_follow_ecs_rules() {
        assert!(valid_service_name("web_1-a"));
        assert!(valid_service_name(&"s".repeat(255)));
        assert!(!valid_service_name(""));
        assert!(!valid_service_name(&"s".repeat(256)));
        assert!(!valid_service_name("web.1"));
        assert!(!valid_service_name("web/1"));
    }

    #[test]
    fn service_references_take_the_cluster_from_the_arn() {
        let arn = "arn:aws:ecs:us-east-1:000000000000:service/prod/web";
        assert_eq!(
            service_ref(arn, &None).unwrap(),
            ("prod".to_owned(), "web".to_owned())
        );
        assert_eq!(
            service_ref(arn, &Some("prod".into())).unwrap(),
            ("prod".to_owned(), "web".to_owned())
        );
        assert!(service_ref(arn, &Some("dev".into())).is_err());
        assert_eq!(
            service_ref("web", &None).unwrap(),
            ("default".to_owned(), "web".to_owned())
        );
    }

    #[test]
    fn deployment_configuration_merges_and_checks() {
        let replica = DeploymentConfig::default_for(SchedulingStrategy::Replica);
        let given = |min: Option<i32>, max: Option<i32>| api::DeploymentConfiguration {
            minimum_healthy_percent: min,
            maximum_percent: max,
            ..Default::default()
        };
        let c = deployment_config(
            Some(&given(Some(50), None)),
            replica,
            SchedulingStrategy::Replica,
        )
        .unwrap();
        assert_eq!((c.minimum_healthy_percent, c.maximum_percent), (50, 200));
        for (min, max) in [(Some(101), None), (Some(-1), None), (None, Some(99))] {
            assert!(
                deployment_config(Some(&given(min, max)), replica, SchedulingStrategy::Replica)
                    .is_err()
            );
        }
        let daemon = DeploymentConfig::default_for(SchedulingStrategy::Daemon);
        assert!(
            deployment_config(
                Some(&given(None, Some(200))),
                daemon,
                SchedulingStrategy::Daemon
            )
            .is_err()
        );
        assert!(deployment_config(None, daemon, SchedulingStrategy::Daemon).is_ok());
    }

    #[test]
    fn request_digests_tell_requests_apart() {
        let a = api::CreateServiceRequest {
            service_name: Some("web".into()),
            desired_count: Some(1),
            ..Default::default()
        };
        let b = api::CreateServiceRequest {
            desired_count: Some(2),
            ..a.clone()
        };
        assert_eq!(request_digest(&a), request_digest(&a.clone()));
        assert_ne!(request_digest(&a), request_digest(&b));
    }
}
