//! RegisterTaskDefinition validation: the request becomes a normalized task definition.
//!
//! [`register`] checks a request the way ECS does and returns the task definition as
//! DescribeTaskDefinition shows it: defaults filled in (`essential`, container `cpu`, port
//! `protocol` and, in `host`/`awsvpc` mode, `hostPort`, health-check timings, Docker volume
//! `scope`, proxy `type`), `[]` where ECS returns empty lists, task `cpu`/`memory` converted to
//! plain units ("1 vCPU" becomes "1024"), `compatibilities` and `requiresAttributes` set.
//! Identity fields (ARN, family, revision, status, timestamps) are left to the state machine.
//!
//! Error codes follow ECS: a malformed request envelope (missing `family` or
//! `containerDefinitions`, a bad family name, bad tags) is an InvalidParameterException, as in
//! every other operation; anything wrong inside the task definition is a ClientException, which
//! is what ECS answers for these (for example "Invalid setting for container 'web'. At least
//! one of 'memory' or 'memoryReservation' must be specified."); a launch type berth cannot
//! provide (FARGATE, MANAGED_INSTANCES) is an UnsupportedFeatureException. Every message names
//! the container or member at fault and says what is allowed.
//!
//! Where the ECS model leaves a limit open, berth picks the permissive reading:
//! - `memory` may equal `memoryReservation` (ECS accepts it; only a smaller hard limit is
//!   refused);
//! - container `cpu` has no upper bound (ECS passes large values through to Docker);
//! - `startTimeout`/`stopTimeout` only have to be non-negative (2–120 applies to Fargate only);
//! - task `memory` needs at least 6 MiB (the smallest container) and no other minimum;
//! - a health check's `timeout` may exceed its `interval` (Docker allows it);
//! - ulimits accept -1 for "unlimited", as Docker does.

use std::collections::BTreeSet;
use std::fmt::Display;

use berth_api::types::{self as api, enums};

use crate::arn::valid_family;
use crate::entity::{NetworkMode, Requirements, Tag};
use crate::error::Error;
use crate::requirements::{parse_cpu, parse_memory, requirements};
use crate::validate::{list_len, one_of, required, required_str, shorten, tags};

mod container;
mod health;
mod linux;
mod ports;
mod volumes;

use container::{TaskCtx, container, image};
use health::dependencies;
use ports::{ports, proxy_configuration};
use volumes::volumes;

/// A task definition that passed validation, ready to be registered.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTaskDefinition {
    pub family: String,
    /// The normalized content: defaults filled in, identity fields (ARN, revision, status,
    /// timestamps) left empty.
    pub spec: api::TaskDefinition,
    pub requirements: Requirements,
    pub tags: Vec<Tag>,
}

/// Containers in one task definition.
pub const MAX_CONTAINERS: usize = 10;
/// The least memory (MiB) Docker 20.10+ gives a container, hence the least `memory` or
/// `memoryReservation` a container may ask for.
pub const MIN_CONTAINER_MEMORY: i32 = 6;
/// Task-level CPU units allowed for EC2-style hosts: 0.125 to 192 vCPU.
pub const TASK_CPU_MIN: i64 = 128;
pub const TASK_CPU_MAX: i64 = 196_608;
/// The least task-level memory (MiB): room for one container.
pub const TASK_MEMORY_MIN: i64 = MIN_CONTAINER_MEMORY as i64;
/// The largest task definition ECS registers: 64 KiB of JSON, counted over what is stored
/// (containerDefinitions, volumes and the rest, defaults filled in). Without it every revision
/// could hold a request body's worth (2 MiB) of memory and disk for as long as it exists.
pub const MAX_TASK_DEFINITION_BYTES: usize = 64 * 1024;
/// Placement constraints in a task definition.
pub const MAX_PLACEMENT_CONSTRAINTS: usize = 10;
/// Length of a placement constraint expression.
pub const MAX_EXPRESSION_LEN: usize = 2000;
/// `containerPortRange` mappings per container.
pub const MAX_PORT_RANGES: usize = 100;
/// `environmentFiles` per container.
pub const MAX_ENVIRONMENT_FILES: usize = 10;
/// `restartPolicy.ignoredExitCodes` entries.
pub const MAX_IGNORED_EXIT_CODES: usize = 50;

/// Where an error is: prepended to its message so the caller can find the member at fault.
/// Everything reported through it is a ClientException.
struct At(String);

impl At {
    fn task() -> Self {
        At(String::new())
    }

    fn container(name: &str) -> Self {
        At(format!("Container '{}': ", shorten(name)))
    }

    fn err(&self, msg: impl Display) -> Error {
        Error::client(format!("{}{msg}", self.0))
    }

    /// A shared helper's error, placed here and made a ClientException.
    fn wrap(&self, e: Error) -> Error {
        match e {
            Error::InvalidParameter(m) | Error::Client(m) => self.err(m),
            other => other,
        }
    }

    fn one_of(&self, value: &str, allowed: &[&str], what: &str) -> Result<(), Error> {
        one_of(value, allowed, what)
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    fn required<'a, T>(&self, value: &'a Option<T>, what: &str) -> Result<&'a T, Error> {
        required(value, what).map_err(|e| self.wrap(e))
    }

    fn required_str<'a>(&self, value: &'a Option<String>, what: &str) -> Result<&'a str, Error> {
        required_str(value, what).map_err(|e| self.wrap(e))
    }

    fn list_len<T>(&self, items: &[T], what: &str, max: usize) -> Result<(), Error> {
        list_len(items, what, false, max).map_err(|e| self.wrap(e))
    }

    fn range(&self, value: i32, (lo, hi): (i32, i32), what: &str, unit: &str) -> Result<(), Error> {
        if (lo..=hi).contains(&value) {
            Ok(())
        } else {
            Err(self.err(format!(
                "{what} ({value}) must be between {lo} and {hi}{unit}"
            )))
        }
    }

    fn absolute(&self, path: &str, what: &str) -> Result<(), Error> {
        if is_absolute(path) {
            Ok(())
        } else {
            Err(self.err(format!(
                "{what} '{}' must be an absolute path (starting with '/', or a drive such as 'C:\\' on Windows)",
                shorten(path)
            )))
        }
    }
}

/// A name of 1–255 letters, digits, hyphens and underscores (containers, volumes, link
/// aliases: the same alphabet as a family).
fn is_name(s: &str) -> bool {
    valid_family(s)
}

const NAME_RULE: &str = "use 1 to 255 letters, numbers, hyphens and underscores";

fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

fn list_names(names: &[&str]) -> String {
    if names.is_empty() {
        "(none defined)".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Validates a RegisterTaskDefinition request.
pub fn register(req: &api::RegisterTaskDefinitionRequest) -> Result<ValidTaskDefinition, Error> {
    let family = required_str(&req.family, "family")?;
    if !valid_family(family) {
        return Err(Error::invalid(format!(
            "Family '{}' is invalid: {NAME_RULE}",
            shorten(family)
        )));
    }
    let tags = tags(req.tags.as_deref())?;
    let defs = required(&req.container_definitions, "containerDefinitions")?;
    if defs.is_empty() || defs.len() > MAX_CONTAINERS {
        return Err(Error::client(format!(
            "A task definition must have 1 to {MAX_CONTAINERS} containerDefinitions; got {}",
            defs.len()
        )));
    }
    let names = container_names(defs)?;
    // A container without an image is a mistake in the definition whatever else it asks for,
    // so it is a ClientException before anything berth cannot provide is refused.
    for (c, name) in defs.iter().zip(&names) {
        if c.image.as_deref().is_none_or(str::is_empty) {
            image(&At::container(name), None)?;
        }
    }
    let task = At::task();

    // Task-level members.
    let mode = match req.network_mode.as_deref() {
        None => NetworkMode::Bridge,
        Some(m) => {
            task.one_of(m, enums::NETWORK_MODE, "networkMode")?;
            NetworkMode::parse(m).ok_or_else(|| task.err(format!("Unknown networkMode '{m}'")))?
        }
    };
    if let Some(m) = req.pid_mode.as_deref() {
        task.one_of(m, enums::PID_MODE, "pidMode")?;
    }
    if let Some(m) = req.ipc_mode.as_deref() {
        task.one_of(m, enums::IPC_MODE, "ipcMode")?;
    }
    for c in req.requires_compatibilities.as_deref().unwrap_or_default() {
        task.one_of(c, enums::COMPATIBILITY, "requiresCompatibilities value")?;
        if c != "EC2" && c != "EXTERNAL" {
            return Err(Error::Unsupported(format!(
                "requiresCompatibilities includes {c}, which berth cannot provide: berth runs tasks on \
                 its own registered hosts, like the EC2 and EXTERNAL launch types. Use EC2 or \
                 EXTERNAL, or leave requiresCompatibilities out."
            )));
        }
    }
    let task_cpu = task_cpu(req.cpu.as_deref())?;
    let task_memory = task_memory(req.memory.as_deref())?;
    if let Some(rp) = &req.runtime_platform {
        if let Some(a) = rp.cpu_architecture.as_deref() {
            task.one_of(
                a,
                enums::CPU_ARCHITECTURE,
                "runtimePlatform.cpuArchitecture",
            )?;
        }
        if let Some(os) = rp.operating_system_family.as_deref() {
            task.one_of(
                os,
                enums::OS_FAMILY,
                "runtimePlatform.operatingSystemFamily",
            )?;
        }
    }
    if let Some(es) = &req.ephemeral_storage {
        let size = *task.required(&es.size_in_gi_b, "ephemeralStorage.sizeInGiB")?;
        task.range(size, (21, 200), "ephemeralStorage.sizeInGiB", " GiB")?;
    }
    let placement_constraints = placement_constraints(req.placement_constraints.as_deref())?;
    let accelerators = inference_accelerators(req.inference_accelerators.as_deref())?;
    let volumes = volumes(req.volumes.as_deref().unwrap_or_default())?;
    let volume_names: Vec<&str> = volumes.iter().filter_map(|v| v.name.as_deref()).collect();

    // Containers, each on its own.
    let ctx = TaskCtx {
        mode,
        ipc_mode: req.ipc_mode.as_deref(),
        names: &names,
        volumes: &volume_names,
        accelerators: &accelerators,
        task_memory,
    };
    let containers = defs
        .iter()
        .zip(&names)
        .map(|(c, name)| container(c, name, &ctx))
        .collect::<Result<Vec<_>, _>>()?;

    // Containers against each other and the task.
    if !containers.iter().any(|c| c.essential == Some(true)) {
        return Err(Error::client(format!(
            "At least one container must be essential; {} all set essential=false. Mark the main container essential (the default when omitted).",
            list_names(&names)
        )));
    }
    dependencies(&containers, &names)?;
    ports(&containers, &names, mode)?;
    task_size(&containers, &names, task_cpu, task_memory)?;
    let firelens_users: Vec<&str> = containers
        .iter()
        .zip(&names)
        .filter(|(c, _)| {
            c.log_configuration
                .as_ref()
                .and_then(|l| l.log_driver.as_deref())
                == Some("awsfirelens")
        })
        .map(|(_, n)| *n)
        .collect();
    if !firelens_users.is_empty()
        && !containers
            .iter()
            .any(|c| c.firelens_configuration.is_some())
    {
        return Err(Error::client(format!(
            "Container {} uses the awsfirelens log driver, but no container in the task has a \
             firelensConfiguration. Add a log router container (firelensConfiguration type \
             fluentbit or fluentd) or use another logDriver.",
            list_names(&firelens_users)
        )));
    }
    let neuron: Vec<&str> = containers
        .iter()
        .zip(&names)
        .filter(|(c, _)| {
            c.resource_requirements
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|r| r.r#type.as_deref() == Some("NeuronDevice"))
        })
        .map(|(_, n)| *n)
        .collect();
    if neuron.len() > 1 {
        return Err(Error::client(format!(
            "Only one container in a task can have NeuronDevice resourceRequirements; {} do",
            list_names(&neuron)
        )));
    }
    let proxy_configuration = req
        .proxy_configuration
        .as_ref()
        .map(|p| proxy_configuration(p, &names))
        .transpose()?;

    let mut spec = api::TaskDefinition {
        container_definitions: Some(containers),
        task_role_arn: req.task_role_arn.clone().filter(|s| !s.is_empty()),
        execution_role_arn: req.execution_role_arn.clone().filter(|s| !s.is_empty()),
        network_mode: req.network_mode.clone(),
        volumes: Some(volumes),
        placement_constraints: Some(placement_constraints),
        compatibilities: Some(vec!["EC2".into(), "EXTERNAL".into()]),
        runtime_platform: req.runtime_platform.clone(),
        requires_compatibilities: req.requires_compatibilities.clone(),
        cpu: task_cpu.map(|v| v.to_string()),
        memory: task_memory.map(|v| v.to_string()),
        inference_accelerators: req.inference_accelerators.clone(),
        pid_mode: req.pid_mode.clone(),
        ipc_mode: req.ipc_mode.clone(),
        proxy_configuration,
        ephemeral_storage: req.ephemeral_storage.clone(),
        enable_fault_injection: req.enable_fault_injection,
        ..Default::default()
    };
    spec.requires_attributes = Some(required_attributes(&spec));
    let size = json_len(&spec);
    if size > MAX_TASK_DEFINITION_BYTES {
        return Err(Error::client(format!(
            "The task definition is {size} bytes of JSON; the limit is {MAX_TASK_DEFINITION_BYTES} bytes (64 KiB). \
             Keep large content, such as long environment values or commands, out of the task definition."
        )));
    }
    let requirements = requirements(&spec, &Default::default())?;
    Ok(ValidTaskDefinition {
        family: family.to_owned(),
        spec,
        requirements,
        tags,
    })
}

/// The length of `value`'s JSON, counted without building it.
fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Wire types with string keys, written to a sink that cannot fail: this cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Every container's name: present, well-formed and unique.
fn container_names(defs: &[api::ContainerDefinition]) -> Result<Vec<&str>, Error> {
    let mut names: Vec<&str> = Vec::with_capacity(defs.len());
    for (i, c) in defs.iter().enumerate() {
        let name = match c.name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => {
                return Err(Error::client(format!(
                    "containerDefinitions[{i}]: Container.name should not be null or empty; {NAME_RULE}"
                )));
            }
        };
        if !is_name(name) {
            return Err(Error::client(format!(
                "Container name '{}' is invalid: {NAME_RULE}",
                shorten(name)
            )));
        }
        if names.contains(&name) {
            return Err(Error::client(format!(
                "Container name '{name}' is used by more than one container; container names must be unique within a task definition"
            )));
        }
        names.push(name);
    }
    Ok(names)
}

fn task_cpu(cpu: Option<&str>) -> Result<Option<i64>, Error> {
    let Some(s) = cpu else { return Ok(None) };
    let v = parse_cpu(s).ok_or_else(|| {
        Error::client(format!(
            "Invalid 'cpu' setting for task: '{}' is neither CPU units (\"1024\") nor vCPUs (\"1 vCPU\")",
            shorten(s)
        ))
    })?;
    if !(TASK_CPU_MIN..=TASK_CPU_MAX).contains(&v) {
        return Err(Error::client(format!(
            "Invalid 'cpu' setting for task: {v} CPU units is outside the supported range of {TASK_CPU_MIN} (0.125 vCPU) to {TASK_CPU_MAX} (192 vCPU)"
        )));
    }
    Ok(Some(v))
}

fn task_memory(memory: Option<&str>) -> Result<Option<i64>, Error> {
    let Some(s) = memory else { return Ok(None) };
    let v = parse_memory(s).ok_or_else(|| {
        Error::client(format!(
            "Invalid 'memory' setting for task: '{}' is neither MiB (\"512\") nor GB (\"0.5 GB\")",
            shorten(s)
        ))
    })?;
    if v < TASK_MEMORY_MIN {
        return Err(Error::client(format!(
            "Invalid 'memory' setting for task: {v} MiB is less than the minimum of {TASK_MEMORY_MIN} MiB"
        )));
    }
    Ok(Some(v))
}

fn placement_constraints(
    pcs: Option<&[api::TaskDefinitionPlacementConstraint]>,
) -> Result<Vec<api::TaskDefinitionPlacementConstraint>, Error> {
    let pcs = pcs.unwrap_or_default();
    let task = At::task();
    task.list_len(pcs, "placementConstraints", MAX_PLACEMENT_CONSTRAINTS)?;
    for (i, pc) in pcs.iter().enumerate() {
        match pc.r#type.as_deref() {
            Some("memberOf") => {}
            Some("distinctInstance") => {
                return Err(task.err(format!(
                    "placementConstraints[{i}]: distinctInstance is not allowed in a task definition; \
                     give it to RunTask or CreateService instead. Task definitions accept memberOf only."
                )));
            }
            Some(t) => task.one_of(
                t,
                enums::TASK_DEFINITION_PLACEMENT_CONSTRAINT_TYPE,
                &format!("placementConstraints[{i}].type"),
            )?,
            None => {
                return Err(task.err(format!(
                    "placementConstraints[{i}].type is required; the only type allowed in a task definition is memberOf"
                )));
            }
        }
        let expr = task.required_str(
            &pc.expression,
            &format!("placementConstraints[{i}].expression"),
        )?;
        let n = expr.chars().count();
        if n > MAX_EXPRESSION_LEN {
            return Err(task.err(format!(
                "placementConstraints[{i}].expression is {n} characters; at most {MAX_EXPRESSION_LEN} are allowed"
            )));
        }
    }
    Ok(pcs.to_vec())
}

fn inference_accelerators(accs: Option<&[api::InferenceAccelerator]>) -> Result<Vec<&str>, Error> {
    let task = At::task();
    let mut names = Vec::new();
    for (i, a) in accs.unwrap_or_default().iter().enumerate() {
        let name = task.required_str(
            &a.device_name,
            &format!("inferenceAccelerators[{i}].deviceName"),
        )?;
        task.required_str(
            &a.device_type,
            &format!("inferenceAccelerators[{i}].deviceType"),
        )?;
        if names.contains(&name) {
            return Err(task.err(format!(
                "inferenceAccelerators deviceName '{}' is used more than once; device names must be unique",
                shorten(name)
            )));
        }
        names.push(name);
    }
    Ok(names)
}

/// Container CPU and memory against the task-level size, when one is given.
fn task_size(
    containers: &[api::ContainerDefinition],
    names: &[&str],
    task_cpu: Option<i64>,
    task_memory: Option<i64>,
) -> Result<(), Error> {
    let breakdown = |f: &dyn Fn(&api::ContainerDefinition) -> i64| {
        containers
            .iter()
            .zip(names)
            .map(|(c, n)| format!("{n}: {}", f(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(task_cpu) = task_cpu {
        let cpu = |c: &api::ContainerDefinition| i64::from(c.cpu.unwrap_or(0));
        let sum: i64 = containers.iter().map(cpu).sum();
        if sum > task_cpu {
            return Err(Error::client(format!(
                "The containers reserve {sum} CPU units ({}), more than the task cpu of {task_cpu}; lower the container cpu values or raise the task cpu",
                breakdown(&cpu)
            )));
        }
    }
    if let Some(task_memory) = task_memory {
        for (c, n) in containers.iter().zip(names) {
            if let Some(m) = c.memory
                && i64::from(m) > task_memory
            {
                return Err(Error::client(format!(
                    "Container '{n}': memory ({m}) exceeds the task memory ({task_memory} MiB); a container's hard limit must fit in the task"
                )));
            }
        }
        let reserved = |c: &api::ContainerDefinition| {
            i64::from(c.memory_reservation.or(c.memory).unwrap_or(0))
        };
        let sum: i64 = containers.iter().map(reserved).sum();
        if sum > task_memory {
            return Err(Error::client(format!(
                "The containers reserve {sum} MiB of memory ({}; memoryReservation, else memory), more than the task memory of {task_memory} MiB; lower them or raise the task memory",
                breakdown(&reserved)
            )));
        }
    }
    Ok(())
}

/// The instance attributes a task of `spec` needs, named as the ECS agent registers them.
fn required_attributes(spec: &api::TaskDefinition) -> Vec<api::Attribute> {
    const OLD: &str = "com.amazonaws.ecs.capability.";
    const NEW: &str = "ecs.capability.";
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut add = |prefix: &str, name: &str| {
        names.insert(format!("{prefix}{name}"));
    };
    let exec_role = spec.execution_role_arn.is_some();
    let mode = spec.network_mode.as_deref();
    if spec.task_role_arn.is_some() {
        add(OLD, "task-iam-role");
        if mode == Some("host") {
            add(OLD, "task-iam-role-network-host");
        }
    }
    if mode == Some("awsvpc") {
        add(NEW, "task-eni");
    }
    if spec.pid_mode.is_some() || spec.ipc_mode.is_some() {
        add(NEW, "pid-ipc-namespace-sharing");
    }
    if spec.proxy_configuration.is_some() {
        add(NEW, "aws-appmesh");
    }
    if spec
        .inference_accelerators
        .as_deref()
        .is_some_and(|a| !a.is_empty())
    {
        add(NEW, "task-eia");
    }
    for v in spec.volumes.as_deref().unwrap_or_default() {
        if let Some(e) = &v.efs_volume_configuration {
            add(NEW, "efs");
            if e.authorization_config.is_some() {
                add(NEW, "efsAuth");
            }
        }
        if v.fsx_windows_file_server_volume_configuration.is_some() {
            add(NEW, "fsxWindowsFileServer");
        }
        if let Some(driver) = v
            .docker_volume_configuration
            .as_ref()
            .and_then(|d| d.driver.as_deref())
            .filter(|d| *d != "local")
        {
            add(NEW, &format!("docker-plugin.{driver}"));
        }
    }
    for c in spec.container_definitions.as_deref().unwrap_or_default() {
        if c.log_configuration.is_some() || c.docker_labels.is_some() || c.ulimits.is_some() {
            add(OLD, "docker-remote-api.1.18");
        }
        if c.memory_reservation.is_some() {
            add(OLD, "docker-remote-api.1.21");
        }
        if c.linux_parameters
            .as_ref()
            .is_some_and(|l| l.init_process_enabled == Some(true))
        {
            add(OLD, "docker-remote-api.1.25");
        }
        if c.privileged == Some(true) {
            add(OLD, "privileged-container");
        }
        if let Some(l) = &c.log_configuration {
            if let Some(driver) = l.log_driver.as_deref() {
                add(OLD, &format!("logging-driver.{driver}"));
                if driver == "awslogs" {
                    add(OLD, "docker-remote-api.1.19");
                    if exec_role {
                        add(NEW, "execution-role-awslogs");
                    }
                }
            }
            for s in l.secret_options.as_deref().unwrap_or_default() {
                add(
                    NEW,
                    &format!("secrets.{}.bootstrap.log-driver", secret_store(s)),
                );
            }
        }
        if let Some(f) = c
            .firelens_configuration
            .as_ref()
            .and_then(|f| f.r#type.as_deref())
        {
            add(NEW, &format!("firelens.{f}"));
        }
        if c.health_check.is_some() {
            add(NEW, "container-health-check");
        }
        if c.depends_on.as_deref().is_some_and(|d| !d.is_empty())
            || c.start_timeout.is_some()
            || c.stop_timeout.is_some()
        {
            add(NEW, "container-ordering");
        }
        for s in c.secrets.as_deref().unwrap_or_default() {
            add(
                NEW,
                &format!("secrets.{}.environment-variables", secret_store(s)),
            );
        }
        if c.environment_files
            .as_deref()
            .is_some_and(|f| !f.is_empty())
        {
            add(NEW, "env-files.s3");
        }
        if c.repository_credentials.is_some() {
            add(NEW, "private-registry-authentication.secretsmanager");
        }
        if c.image.as_deref().is_some_and(|i| i.contains(".dkr.ecr.")) {
            add(OLD, "ecr-auth");
            if exec_role {
                add(NEW, "execution-role-ecr-pull");
            }
        }
        if c.port_mappings
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|p| p.container_port_range.is_some())
        {
            add(NEW, "network.container-port-range");
        }
    }
    names
        .into_iter()
        .map(|name| api::Attribute {
            name: Some(name),
            ..Default::default()
        })
        .collect()
}

/// Where a secret lives: Secrets Manager (`asm`) or SSM Parameter Store (`ssm`).
fn secret_store(s: &api::Secret) -> &'static str {
    if s.value_from
        .as_deref()
        .is_some_and(|v| v.contains(":secretsmanager:"))
    {
        "asm"
    } else {
        "ssm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Protocol;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    pub(super) const DIGEST: &str =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Sets (or, with null, removes) the members of `extra` on `base`.
    pub(super) fn merge(base: &mut Value, extra: Value) {
        if let (Value::Object(b), Value::Object(e)) = (base, extra) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    b.insert(k, v);
                }
            }
        }
    }

    pub(super) fn ctr(name: &str, extra: Value) -> Value {
        let mut c = json!({"name": name, "image": "nginx:1.27", "memory": 256});
        merge(&mut c, extra);
        c
    }

    pub(super) fn task(containers: Vec<Value>, extra: Value) -> Value {
        let mut t = json!({"family": "app", "containerDefinitions": containers});
        merge(&mut t, extra);
        t
    }

    /// One container 'web' with `extra` set on it.
    pub(super) fn one(extra: Value) -> Value {
        task(vec![ctr("web", extra)], json!({}))
    }

    pub(super) fn check(v: Value) -> Result<ValidTaskDefinition, Error> {
        let req: api::RegisterTaskDefinitionRequest =
            serde_json::from_value(v).expect("test request deserializes");
        register(&req)
    }

    #[track_caller]
    pub(super) fn ok(v: Value) -> ValidTaskDefinition {
        match check(v) {
            Ok(t) => t,
            Err(e) => panic!("expected success, got {e:?}"),
        }
    }

    /// A ClientException whose message contains every needle.
    #[track_caller]
    pub(super) fn client(v: Value, needles: &[&str]) {
        match check(v) {
            Err(Error::Client(m)) => {
                for n in needles {
                    assert!(m.contains(n), "message {m:?} lacks {n:?}");
                }
            }
            other => panic!("expected a ClientException mentioning {needles:?}, got {other:?}"),
        }
    }

    #[track_caller]
    pub(super) fn invalid(v: Value, needles: &[&str]) {
        match check(v) {
            Err(Error::InvalidParameter(m)) => {
                for n in needles {
                    assert!(m.contains(n), "message {m:?} lacks {n:?}");
                }
            }
            other => panic!(
                "expected an InvalidParameterException mentioning {needles:?}, got {other:?}"
            ),
        }
    }

    pub(super) fn containers(t: &ValidTaskDefinition) -> &[api::ContainerDefinition] {
        t.spec.container_definitions.as_deref().unwrap()
    }

    pub(super) fn attribute_names(t: &ValidTaskDefinition) -> Vec<&str> {
        t.spec
            .requires_attributes
            .as_deref()
            .unwrap()
            .iter()
            .map(|a| a.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn realistic_definition_is_normalized() {
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:v42";
        let t = ok(json!({
            "family": "shop-web",
            "taskRoleArn": "arn:aws:iam::123456789012:role/shop",
            "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
            "cpu": "1 vCPU",
            "memory": "2 GB",
            "containerDefinitions": [
                {
                    "name": "web", "image": ecr, "cpu": 512, "memory": 1024, "memoryReservation": 512,
                    "portMappings": [
                        {"containerPort": 8080, "hostPort": 80, "name": "http", "appProtocol": "http"},
                        {"containerPort": 8125, "protocol": "udp"},
                    ],
                    "links": ["cache:redis"],
                    "environment": [{"name": "RUST_LOG", "value": "info"}],
                    "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"}],
                    "mountPoints": [{"sourceVolume": "data", "containerPath": "/var/lib/shop"}],
                    "dependsOn": [
                        {"containerName": "cache", "condition": "HEALTHY"},
                        {"containerName": "migrate", "condition": "SUCCESS"},
                    ],
                    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/shop", "awslogs-region": "eu-west-1"}},
                    "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"]},
                    "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
                },
                {
                    "name": "cache", "image": "redis:7", "memoryReservation": 256,
                    "healthCheck": {"command": ["CMD", "redis-cli", "ping"], "interval": 10, "retries": 5},
                },
                {"name": "migrate", "image": ecr, "essential": false, "memory": 128, "command": ["migrate"]},
            ],
            "volumes": [
                {"name": "data", "host": {"sourcePath": "/srv/shop"}},
                {"name": "scratch", "dockerVolumeConfiguration": {"driver": "local"}},
            ],
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ m5.*"}],
            "tags": [{"key": "team", "value": "shop"}],
        }));
        assert_eq!(t.family, "shop-web");
        assert_eq!(
            t.tags,
            vec![Tag {
                key: "team".into(),
                value: "shop".into()
            }]
        );
        let s = &t.spec;
        assert_eq!(s.cpu.as_deref(), Some("1024"), "vCPUs become CPU units");
        assert_eq!(s.memory.as_deref(), Some("2048"), "GB become MiB");
        assert_eq!(
            s.compatibilities,
            Some(vec!["EC2".to_owned(), "EXTERNAL".to_owned()])
        );
        assert_eq!(s.network_mode, None, "bridge is implied, not written");
        assert_eq!(s.requires_compatibilities, None);
        assert!(s.task_definition_arn.is_none() && s.family.is_none() && s.revision.is_none());
        assert!(s.status.is_none() && s.registered_at.is_none());
        assert_eq!(
            s.task_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/shop")
        );
        let vols = s.volumes.as_deref().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(
            vols[1]
                .docker_volume_configuration
                .as_ref()
                .unwrap()
                .scope
                .as_deref(),
            Some("task"),
            "docker volume scope defaults to task"
        );
        assert_eq!(s.placement_constraints.as_deref().unwrap().len(), 1);

        let cs = containers(&t);
        let (web, cache, migrate) = (&cs[0], &cs[1], &cs[2]);
        assert_eq!(web.essential, Some(true));
        assert_eq!(migrate.essential, Some(false));
        let pms = web.port_mappings.as_deref().unwrap();
        assert_eq!(
            pms[0].protocol.as_deref(),
            Some("tcp"),
            "protocol defaults to tcp"
        );
        assert_eq!(pms[0].host_port, Some(80));
        assert_eq!(pms[1].protocol.as_deref(), Some("udp"));
        assert_eq!(pms[1].host_port, None, "bridge: no hostPort stays dynamic");
        let hc = web.health_check.as_ref().unwrap();
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries, hc.start_period),
            (Some(30), Some(5), Some(3), Some(0))
        );
        let hc = cache.health_check.as_ref().unwrap();
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries, hc.start_period),
            (Some(10), Some(5), Some(5), Some(0))
        );
        assert_eq!(cache.cpu, Some(0));
        assert_eq!(cache.essential, Some(true), "essential defaults to true");
        assert_eq!(cache.port_mappings, Some(vec![]));
        assert_eq!(cache.environment, Some(vec![]));
        assert_eq!(cache.mount_points, Some(vec![]));
        assert_eq!(cache.volumes_from, Some(vec![]));
        assert_eq!(
            web.links,
            Some(vec!["cache:redis".to_owned()]),
            "other members are kept as given"
        );

        let attrs = attribute_names(&t);
        for a in [
            "com.amazonaws.ecs.capability.task-iam-role",
            "com.amazonaws.ecs.capability.logging-driver.awslogs",
            "com.amazonaws.ecs.capability.docker-remote-api.1.19",
            "com.amazonaws.ecs.capability.docker-remote-api.1.21",
            "com.amazonaws.ecs.capability.ecr-auth",
            "ecs.capability.execution-role-awslogs",
            "ecs.capability.execution-role-ecr-pull",
            "ecs.capability.container-health-check",
            "ecs.capability.container-ordering",
            "ecs.capability.secrets.asm.environment-variables",
        ] {
            assert!(
                attrs.contains(&a),
                "requiresAttributes lacks {a}: {attrs:?}"
            );
        }
        assert!(!attrs.contains(&"ecs.capability.task-eni"));

        assert_eq!((t.requirements.cpu, t.requirements.memory), (1024, 2048));
        assert_eq!(
            t.requirements
                .static_ports(Protocol::Tcp)
                .collect::<Vec<_>>(),
            vec![80]
        );
        assert_eq!(t.requirements.static_ports(Protocol::Udp).count(), 0);
    }

    #[test]
    fn minimal_definition_gets_defaults_and_empty_lists() {
        let t = ok(one(json!({})));
        let s = &t.spec;
        assert_eq!(s.volumes, Some(vec![]));
        assert_eq!(s.placement_constraints, Some(vec![]));
        assert_eq!(s.requires_attributes, Some(vec![]));
        assert_eq!((s.cpu.as_ref(), s.memory.as_ref()), (None, None));
        let c = &containers(&t)[0];
        assert_eq!(c.essential, Some(true));
        assert_eq!(c.cpu, Some(0));
        assert_eq!(c.port_mappings, Some(vec![]));
        assert_eq!(c.environment, Some(vec![]));
        assert_eq!(c.mount_points, Some(vec![]));
        assert_eq!(c.volumes_from, Some(vec![]));
        assert_eq!(c.health_check, None);
        assert_eq!((t.requirements.cpu, t.requirements.memory), (0, 256));
    }

    #[test]
    fn family_is_required_and_well_formed() {
        let mut v = one(json!({}));
        merge(&mut v, json!({"family": null}));
        invalid(v, &["family"]);
        invalid(
            task(vec![ctr("web", json!({}))], json!({"family": ""})),
            &["family"],
        );
        invalid(
            task(vec![ctr("web", json!({}))], json!({"family": "my app"})),
            &["Family 'my app'", "letters, numbers"],
        );
        invalid(
            task(
                vec![ctr("web", json!({}))],
                json!({"family": "f".repeat(256)}),
            ),
            &["Family"],
        );
        ok(task(
            vec![ctr("web", json!({}))],
            json!({"family": "F".repeat(255)}),
        ));
    }

    #[test]
    fn tags_are_checked() {
        invalid(
            task(
                vec![ctr("web", json!({}))],
                json!({"tags": [{"key": "aws:x", "value": "1"}]}),
            ),
            &["aws:"],
        );
        invalid(
            task(
                vec![ctr("web", json!({}))],
                json!({"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}),
            ),
            &["'a'"],
        );
    }

    #[test]
    fn container_count_is_1_to_10() {
        invalid(json!({"family": "app"}), &["containerDefinitions"]);
        client(
            task(vec![], json!({})),
            &["1 to 10 containerDefinitions", "got 0"],
        );
        let eleven = (0..11).map(|i| ctr(&format!("c{i}"), json!({}))).collect();
        client(task(eleven, json!({})), &["1 to 10", "got 11"]);
        let ten = (0..10).map(|i| ctr(&format!("c{i}"), json!({}))).collect();
        ok(task(ten, json!({})));
    }

    #[test]
    fn container_names_are_required_valid_and_unique() {
        client(
            task(vec![ctr("web", json!({"name": null}))], json!({})),
            &["containerDefinitions[0]", "Container.name"],
        );
        client(
            task(vec![ctr("", json!({}))], json!({})),
            &["containerDefinitions[0]", "name"],
        );
        client(
            task(vec![ctr("web app", json!({}))], json!({})),
            &["'web app'", "letters, numbers"],
        );
        client(
            task(vec![ctr(&"n".repeat(256), json!({}))], json!({})),
            &["is invalid"],
        );
        client(
            task(
                vec![ctr("web", json!({})), ctr("web", json!({}))],
                json!({}),
            ),
            &["'web'", "unique"],
        );
    }

    #[test]
    fn task_level_enums() {
        let with = |extra: Value| task(vec![ctr("web", json!({}))], extra);
        client(
            with(json!({"networkMode": "nat"})),
            &["'nat'", "networkMode", "bridge, host, awsvpc, none"],
        );
        client(
            with(json!({"pidMode": "container"})),
            &["'container'", "pidMode", "host, task"],
        );
        client(
            with(json!({"ipcMode": "shareable"})),
            &["ipcMode", "host, task, none"],
        );
        client(
            with(json!({"requiresCompatibilities": ["EC3"]})),
            &["'EC3'", "requiresCompatibilities"],
        );
        client(
            with(json!({"runtimePlatform": {"cpuArchitecture": "RISCV"}})),
            &["cpuArchitecture", "X86_64, ARM64"],
        );
        client(
            with(json!({"runtimePlatform": {"operatingSystemFamily": "BSD"}})),
            &["operatingSystemFamily"],
        );
        let t = ok(with(json!({
            "networkMode": "bridge", "pidMode": "task", "ipcMode": "none",
            "requiresCompatibilities": ["EC2", "EXTERNAL"],
            "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
            "enableFaultInjection": true,
        })));
        assert_eq!(t.spec.network_mode.as_deref(), Some("bridge"));
        assert_eq!(t.spec.pid_mode.as_deref(), Some("task"));
        assert_eq!(t.spec.requires_compatibilities.as_deref().unwrap().len(), 2);
        assert_eq!(t.spec.enable_fault_injection, Some(true));
        assert!(attribute_names(&t).contains(&"ecs.capability.pid-ipc-namespace-sharing"));
    }

    #[test]
    fn fargate_and_managed_instances_are_unsupported() {
        for lt in ["FARGATE", "MANAGED_INSTANCES"] {
            match check(task(
                vec![ctr("web", json!({}))],
                json!({"requiresCompatibilities": ["EC2", lt]}),
            )) {
                Err(e @ Error::Unsupported(_)) => {
                    let m = e.to_string();
                    assert!(
                        m.contains(lt) && m.contains("EC2") && m.contains("EXTERNAL"),
                        "{m}"
                    );
                }
                other => panic!("expected Unsupported for {lt}, got {other:?}"),
            }
        }
    }

    #[test]
    fn task_cpu_and_memory() {
        let with = |extra: Value| task(vec![ctr("web", json!({"memory": 64}))], extra);
        client(
            with(json!({"cpu": "lots"})),
            &["Invalid 'cpu' setting for task", "'lots'", "1 vCPU"],
        );
        client(
            with(json!({"cpu": ""})),
            &["Invalid 'cpu' setting for task"],
        );
        client(
            with(json!({"cpu": "64"})),
            &["64 CPU units", "128", "196608"],
        );
        client(with(json!({"cpu": "193 vCPU"})), &["197632 CPU units"]);
        client(with(json!({"cpu": "1e300 vcpu"})), &["Invalid 'cpu'"]);
        client(
            with(json!({"memory": "1 TB"})),
            &["Invalid 'memory' setting for task", "'1 TB'"],
        );
        client(
            with(json!({"memory": "5"})),
            &["Invalid 'memory'", "5 MiB", "minimum of 6"],
        );
        let t = ok(with(json!({"cpu": "0.25 vcpu", "memory": "0.5gb"})));
        assert_eq!(
            (t.spec.cpu.as_deref(), t.spec.memory.as_deref()),
            (Some("256"), Some("512"))
        );
        let t = ok(with(json!({"cpu": "196608", "memory": "128"})));
        assert_eq!(t.requirements.cpu, 196_608);
    }

    #[test]
    fn containers_fit_the_task_size() {
        client(
            task(
                vec![ctr("web", json!({"memory": 1024}))],
                json!({"memory": "512"}),
            ),
            &["Container 'web'", "memory (1024)", "task memory (512 MiB)"],
        );
        client(
            task(
                vec![
                    ctr("a", json!({"memory": 300})),
                    ctr("b", json!({"memory": 400, "memoryReservation": 300})),
                ],
                json!({"memory": "512"}),
            ),
            &["reserve 600 MiB", "a: 300, b: 300", "512 MiB"],
        );
        client(
            task(
                vec![ctr("a", json!({"cpu": 512})), ctr("b", json!({"cpu": 768}))],
                json!({"cpu": "1024"}),
            ),
            &[
                "reserve 1280 CPU units",
                "a: 512, b: 768",
                "task cpu of 1024",
            ],
        );
        ok(task(
            vec![ctr("a", json!({"cpu": 512, "memory": 512}))],
            json!({"cpu": "512", "memory": "512"}),
        ));
    }

    #[test]
    fn placement_constraint_rules() {
        let pc = |v: Value| {
            task(
                vec![ctr("web", json!({}))],
                json!({"placementConstraints": v}),
            )
        };
        let member = json!({"type": "memberOf", "expression": "attribute:stack == prod"});
        ok(pc(json!([member.clone()])));
        client(
            pc(Value::Array(vec![member.clone(); 11])),
            &["placementConstraints", "at most 10"],
        );
        ok(pc(Value::Array(vec![member; 10])));
        client(
            pc(json!([{"type": "distinctInstance"}])),
            &[
                "placementConstraints[0]",
                "distinctInstance is not allowed",
                "memberOf",
            ],
        );
        client(
            pc(json!([{"type": "spread", "expression": "x"}])),
            &["'spread'", "memberOf"],
        );
        client(
            pc(json!([{"expression": "x"}])),
            &["placementConstraints[0].type is required"],
        );
        client(
            pc(json!([{"type": "memberOf"}])),
            &["placementConstraints[0].expression"],
        );
        client(
            pc(json!([{"type": "memberOf", "expression": ""}])),
            &["placementConstraints[0].expression"],
        );
        client(
            pc(json!([{"type": "memberOf", "expression": "x".repeat(2001)}])),
            &["2001 characters", "at most 2000"],
        );
    }

    /// A definition padded with an environment value of `n` characters.
    fn padded(n: usize) -> Value {
        one(json!({"environment": [{"name": "PAD", "value": "x".repeat(n)}]}))
    }

    #[test]
    fn a_task_definition_is_at_most_64_kib_of_json_as_stored() {
        let base = json_len(&ok(padded(0)).spec);
        let at_limit = MAX_TASK_DEFINITION_BYTES - base;
        let t = ok(padded(at_limit));
        assert_eq!(json_len(&t.spec), MAX_TASK_DEFINITION_BYTES);
        assert_eq!(
            json_len(&t.spec),
            serde_json::to_vec(&t.spec).unwrap().len()
        );
        client(
            padded(at_limit + 1),
            &["65537 bytes", "limit is 65536 bytes (64 KiB)"],
        );
        // The 1.8 MiB definitions seen in the wild.
        client(padded(1_800_000), &["1800", "limit is 65536 bytes"]);
    }

    #[test]
    fn accelerators_proxy_and_ephemeral_storage() {
        let with = |extra: Value| task(vec![ctr("web", json!({})), ctr("envoy", json!({}))], extra);
        client(
            with(json!({"inferenceAccelerators": [{"deviceType": "eia2.medium"}]})),
            &["inferenceAccelerators[0].deviceName"],
        );
        client(
            with(json!({"inferenceAccelerators": [{"deviceName": "a"}]})),
            &["inferenceAccelerators[0].deviceType"],
        );
        client(
            with(
                json!({"inferenceAccelerators": [{"deviceName": "a", "deviceType": "t"}, {"deviceName": "a", "deviceType": "t"}]}),
            ),
            &["deviceName 'a'", "unique"],
        );
        client(
            with(json!({"proxyConfiguration": {}})),
            &["proxyConfiguration.containerName"],
        );
        client(
            with(json!({"proxyConfiguration": {"containerName": "istio"}})),
            &["'istio'", "'web', 'envoy'"],
        );
        client(
            with(json!({"proxyConfiguration": {"containerName": "envoy", "type": "ISTIO"}})),
            &["'ISTIO'", "APPMESH"],
        );
        client(
            with(
                json!({"proxyConfiguration": {"containerName": "envoy", "properties": [{"name": "AppPorts", "value": "1"}, {"name": "AppPorts", "value": "2"}]}}),
            ),
            &["property 'AppPorts'"],
        );
        let t = ok(with(
            json!({"proxyConfiguration": {"containerName": "envoy", "properties": [{"name": "AppPorts", "value": "8080"}]}}),
        ));
        assert_eq!(
            t.spec
                .proxy_configuration
                .as_ref()
                .unwrap()
                .r#type
                .as_deref(),
            Some("APPMESH")
        );
        client(
            with(json!({"ephemeralStorage": {}})),
            &["ephemeralStorage.sizeInGiB"],
        );
        client(
            with(json!({"ephemeralStorage": {"sizeInGiB": 20}})),
            &["ephemeralStorage.sizeInGiB (20)", "21 and 200"],
        );
        client(
            with(json!({"ephemeralStorage": {"sizeInGiB": 201}})),
            &["sizeInGiB (201)"],
        );
        let t = ok(with(json!({"ephemeralStorage": {"sizeInGiB": 21}})));
        assert_eq!(
            t.spec.ephemeral_storage.as_ref().unwrap().size_in_gi_b,
            Some(21)
        );
    }

    #[test]
    fn role_arns_are_copied_and_empty_ones_dropped() {
        let t = ok(task(
            vec![ctr("web", json!({}))],
            json!({"taskRoleArn": "", "executionRoleArn": "arn:aws:iam::1:role/e"}),
        ));
        assert_eq!(t.spec.task_role_arn, None);
        assert_eq!(
            t.spec.execution_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/e")
        );
    }

    // ---- property tests ----

    /// A valid request that uses nearly every member, for mutation.
    fn rich() -> Value {
        let web = json!({
            "name": "web", "image": "nginx:1.27", "cpu": 512, "memory": 1024, "memoryReservation": 512, "essential": true,
            "portMappings": [
                {"containerPort": 80, "hostPort": 8080, "protocol": "tcp", "name": "http", "appProtocol": "http"},
                {"containerPort": 53, "protocol": "udp"},
                {"containerPortRange": "9000-9010"},
            ],
            "links": ["envoy:proxy"],
            "environment": [{"name": "A", "value": "1"}],
            "environmentFiles": [{"type": "s3", "value": "arn:aws:s3:::bucket/web.env"}],
            "secrets": [{"name": "S", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/s"}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": false}, {"sourceVolume": "shared", "containerPath": "/shared"}],
            "volumesFrom": [{"sourceContainer": "init", "readOnly": true}],
            "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}, {"containerName": "init", "condition": "SUCCESS"}],
            "healthCheck": {"command": ["CMD-SHELL", "curl -f localhost"], "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 5},
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}, {"name": "memlock", "softLimit": -1, "hardLimit": -1}],
        });
        let web_more = json!({
            "logConfiguration": {"logDriver": "awsfirelens", "options": {"Name": "cloudwatch"}, "secretOptions": [{"name": "k", "valueFrom": "arn:aws:secretsmanager:eu-west-1:1:secret:k"}]},
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "resourceRequirements": [{"type": "GPU", "value": "1"}, {"type": "InferenceAccelerator", "value": "acc1"}],
            "dockerLabels": {"team": "web"},
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}],
            "hostname": "web",
            "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
            "startTimeout": 30, "stopTimeout": 30,
            "credentialSpecs": ["credentialspec:arn:aws:s3:::b/spec.json"],
            "versionConsistency": "enabled",
            "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:eu-west-1:1:secret:reg"},
        });
        let linux = json!({
            "capabilities": {"add": ["SYS_PTRACE"], "drop": ["NET_RAW"]},
            "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["read", "write"]}],
            "initProcessEnabled": true, "sharedMemorySize": 64,
            "tmpfs": [{"containerPath": "/tmp", "size": 64, "mountOptions": ["rw", "mode=1777"]}],
            "maxSwap": 0, "swappiness": 10,
        });
        let mut web = web;
        merge(&mut web, web_more);
        merge(&mut web, json!({"linuxParameters": linux}));
        let envoy = json!({
            "name": "envoy", "image": "envoyproxy/envoy:v1.30", "memoryReservation": 128, "user": "1337",
            "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}},
            "healthCheck": {"command": ["CMD", "/bin/true"]},
        });
        let init = json!({
            "name": "init", "image": format!("busybox@sha256:{DIGEST}"), "memory": 64, "essential": false,
            "command": ["sh", "-c", "true"],
        });
        let volumes = json!([
            {"name": "data", "host": {"sourcePath": "/srv/data"}},
            {"name": "shared", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "local", "driverOpts": {"type": "tmpfs"}, "labels": {"a": "b"}}},
            {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "transitEncryptionPort": 2049, "authorizationConfig": {"iam": "ENABLED", "accessPointId": "fsap-1"}}},
        ]);
        let mut t = json!({
            "family": "rich",
            "taskRoleArn": "arn:aws:iam::1:role/t",
            "executionRoleArn": "arn:aws:iam::1:role/e",
            "networkMode": "bridge",
            "cpu": "2 vCPU",
            "memory": "4GB",
            "pidMode": "task",
            "ipcMode": "task",
            "requiresCompatibilities": ["EC2", "EXTERNAL"],
            "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
            "ephemeralStorage": {"sizeInGiB": 30},
            "enableFaultInjection": false,
            "tags": [{"key": "team", "value": "web"}],
        });
        merge(
            &mut t,
            json!({
                "inferenceAccelerators": [{"deviceName": "acc1", "deviceType": "eia2.medium"}],
                "proxyConfiguration": {"type": "APPMESH", "containerName": "envoy", "properties": [{"name": "AppPorts", "value": "8080"}]},
                "placementConstraints": [{"type": "memberOf", "expression": "attribute:stack == prod"}],
                "volumes": volumes,
                "containerDefinitions": [web, envoy, init],
            }),
        );
        t
    }

    /// The request that registers `t` again.
    fn as_request(t: &ValidTaskDefinition) -> api::RegisterTaskDefinitionRequest {
        let s = &t.spec;
        api::RegisterTaskDefinitionRequest {
            family: Some(t.family.clone()),
            task_role_arn: s.task_role_arn.clone(),
            execution_role_arn: s.execution_role_arn.clone(),
            network_mode: s.network_mode.clone(),
            container_definitions: s.container_definitions.clone(),
            volumes: s.volumes.clone(),
            placement_constraints: s.placement_constraints.clone(),
            requires_compatibilities: s.requires_compatibilities.clone(),
            cpu: s.cpu.clone(),
            memory: s.memory.clone(),
            tags: Some(
                t.tags
                    .iter()
                    .map(|t| api::Tag {
                        key: Some(t.key.clone()),
                        value: Some(t.value.clone()),
                    })
                    .collect(),
            ),
            pid_mode: s.pid_mode.clone(),
            ipc_mode: s.ipc_mode.clone(),
            proxy_configuration: s.proxy_configuration.clone(),
            inference_accelerators: s.inference_accelerators.clone(),
            ephemeral_storage: s.ephemeral_storage.clone(),
            runtime_platform: s.runtime_platform.clone(),
            enable_fault_injection: s.enable_fault_injection,
            trusted_execution_configuration: s.trusted_execution_configuration.clone(),
        }
    }

    #[test]
    fn rich_request_is_valid_and_normalization_is_idempotent() {
        let t = ok(rich());
        assert_eq!(register(&as_request(&t)).unwrap(), t);
        let attrs = attribute_names(&t);
        for a in [
            "ecs.capability.firelens.fluentbit",
            "com.amazonaws.ecs.capability.logging-driver.awsfirelens",
            "ecs.capability.secrets.asm.bootstrap.log-driver",
            "ecs.capability.env-files.s3",
            "ecs.capability.aws-appmesh",
            "ecs.capability.task-eia",
            "ecs.capability.efs",
            "com.amazonaws.ecs.capability.docker-remote-api.1.25",
        ] {
            assert!(
                attrs.contains(&a),
                "requiresAttributes lacks {a}: {attrs:?}"
            );
        }
    }

    /// Every JSON pointer in `v`.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    pointers(
                        c,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    pointers(c, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    const INT_KEYS: &[&str] = &[
        "hostPort",
        "containerPort",
        "cpu",
        "memory",
        "memoryReservation",
        "interval",
        "timeout",
        "retries",
        "startPeriod",
        "stopTimeout",
        "startTimeout",
        "softLimit",
        "hardLimit",
        "size",
        "sizeInGiB",
        "swappiness",
        "maxSwap",
        "sharedMemorySize",
        "restartAttemptPeriod",
        "transitEncryptionPort",
    ];
    const TEXT_KEYS: &[&str] = &[
        "containerPortRange",
        "protocol",
        "networkMode",
        "pidMode",
        "ipcMode",
        "cpu",
        "memory",
        "condition",
        "containerName",
        "sourceVolume",
        "containerPath",
        "name",
        "image",
        "hostname",
        "type",
        "scope",
        "driver",
        "expression",
        "logDriver",
        "value",
        "valueFrom",
        "sourcePath",
        "appProtocol",
    ];

    #[derive(Debug, Clone)]
    struct Mutation {
        at: usize,
        pick: usize,
        op: u8,
        int: i64,
        text: String,
    }

    fn int_value() -> impl Strategy<Value = i64> {
        prop_oneof![
            prop::sample::select(vec![
                i64::from(i32::MIN),
                -2,
                -1,
                0,
                1,
                2,
                4,
                5,
                6,
                10,
                60,
                100,
                101,
                128,
                300,
                301,
                1800,
                2049,
                65535,
                65536,
                196_608,
                i64::from(i32::MAX),
            ]),
            any::<i32>().prop_map(i64::from),
        ]
    }

    fn text_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                "web",
                "envoy",
                "init",
                "data",
                "shared",
                "CMD",
                "CMD-SHELL",
                "NONE",
                "tcp",
                "udp",
                "host",
                "awsvpc",
                "bridge",
                "none",
                "task",
                "FARGATE",
                "EXTERNAL",
                "EC2",
                "1 vCPU",
                "0.5GB",
                "1e300 gb",
                "NaN vcpu",
                "-1",
                "memberOf",
                "distinctInstance",
                "START",
                "COMPLETE",
                "SUCCESS",
                "HEALTHY",
                "8000-8010",
                "10-5",
                "80-80",
                "web:alias",
                ":",
                "/data",
                "relative",
                "GPU",
                "ALL",
                "NeuronDevice",
                "InferenceAccelerator",
                "acc1",
                "nofile",
                "awslogs",
                "awsfirelens",
                "net.core.x",
                "kernel.sem",
                "é∂漢字",
                "@sha256:",
            ])
            .prop_map(String::from),
            "\\PC{0,16}",
            Just("x".repeat(300)),
        ]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        (
            any::<usize>(),
            any::<usize>(),
            any::<u8>(),
            int_value(),
            text_value(),
        )
            .prop_map(|(at, pick, op, int, text)| Mutation {
                at,
                pick,
                op,
                int,
                text,
            })
    }

    fn apply(v: &mut Value, m: &Mutation) {
        let mut ps = Vec::new();
        pointers(v, String::new(), &mut ps);
        let p = ps[m.at % ps.len()].clone();
        let Some(node) = v.pointer_mut(&p) else {
            return;
        };
        match node {
            Value::String(s) => *s = m.text.clone(),
            Value::Number(_) => *node = Value::from(m.int),
            Value::Bool(b) => *b = !*b,
            Value::Array(a) => match m.op % 4 {
                0 if !a.is_empty() => {
                    a.remove(m.pick % a.len());
                }
                1 if !a.is_empty() => {
                    let e = a[m.pick % a.len()].clone();
                    a.push(e);
                }
                2 => a.clear(),
                _ => a.push(Value::String(m.text.clone())),
            },
            Value::Object(o) => match m.op % 3 {
                0 if !o.is_empty() => {
                    if let Some(k) = o.keys().nth(m.pick % o.len()).cloned() {
                        o.remove(&k);
                    }
                }
                1 => {
                    o.insert(
                        INT_KEYS[m.pick % INT_KEYS.len()].to_owned(),
                        Value::from(m.int),
                    );
                }
                _ => {
                    o.insert(
                        TEXT_KEYS[m.pick % TEXT_KEYS.len()].to_owned(),
                        Value::String(m.text.clone()),
                    );
                }
            },
            Value::Null => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Random mutations of a valid request never panic; whatever passes registers again
        /// unchanged (normalization is idempotent) and has computable requirements.
        #[test]
        fn mutated_requests_never_panic(muts in prop::collection::vec(mutation(), 1..8)) {
            let mut v = rich();
            for m in &muts {
                apply(&mut v, m);
            }
            let Ok(req) = serde_json::from_value::<api::RegisterTaskDefinitionRequest>(v) else {
                return Ok(());
            };
            match register(&req) {
                Ok(t) => {
                    let again = register(&as_request(&t));
                    prop_assert_eq!(again.as_ref().ok(), Some(&t), "re-registering changed it: {:?}", again);
                    for c in t.spec.container_definitions.as_deref().unwrap_or_default() {
                        prop_assert!(c.essential.is_some() && c.port_mappings.is_some() && c.cpu.is_some());
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        /// The same for a small request with arbitrary values in its scalar members.
        #[test]
        fn arbitrary_scalars_never_panic(
            name in "\\PC{0,8}",
            image in "\\PC{0,12}",
            cpu in proptest::option::of(any::<i32>()),
            memory in proptest::option::of(any::<i32>()),
            reservation in proptest::option::of(any::<i32>()),
            container_port in proptest::option::of(any::<i32>()),
            host_port in proptest::option::of(any::<i32>()),
            range in proptest::option::of("[0-9-]{0,12}"),
            mode in proptest::option::of(prop::sample::select(vec!["bridge", "host", "awsvpc", "none", "x"])),
            task_cpu in proptest::option::of("\\PC{0,10}"),
            task_memory in proptest::option::of("\\PC{0,10}"),
        ) {
            let req = api::RegisterTaskDefinitionRequest {
                family: Some("f".into()),
                network_mode: mode.map(String::from),
                cpu: task_cpu,
                memory: task_memory,
                container_definitions: Some(vec![api::ContainerDefinition {
                    name: Some(name),
                    image: Some(image),
                    cpu,
                    memory,
                    memory_reservation: reservation,
                    port_mappings: Some(vec![api::PortMapping {
                        container_port,
                        host_port,
                        container_port_range: range,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            if let Ok(t) = register(&req) {
                prop_assert_eq!(register(&as_request(&t)).ok(), Some(t));
            }
        }
    }
}
