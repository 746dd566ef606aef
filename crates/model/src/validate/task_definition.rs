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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Display;

use berth_api::types::{self as api, enums};

use crate::arn::valid_family;
use crate::entity::{NetworkMode, Requirements, Tag};
use crate::error::Error;
use crate::requirements::{parse_cpu, parse_memory, requirements};
use crate::validate::{list_len, one_of, required, required_str, shorten, tags};

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

/// Health check timings: (min, max, default) seconds or count.
const HC_INTERVAL: (i32, i32, i32) = (5, 300, 30);
const HC_TIMEOUT: (i32, i32, i32) = (2, 60, 5);
const HC_RETRIES: (i32, i32, i32) = (1, 10, 3);
const HC_START_PERIOD: (i32, i32, i32) = (0, 300, 0);

/// The Linux capabilities ECS accepts in `linuxParameters.capabilities`.
#[rustfmt::skip]
const CAPABILITIES: &[&str] = &[
    "ALL", "AUDIT_CONTROL", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE",
    "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT",
    "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
];

/// The tmpfs mount options ECS accepts (`mode`, `uid`, ... take `=value`).
#[rustfmt::skip]
const TMPFS_OPTIONS: &[&str] = &[
    "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
    "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "bind",
    "rbind", "unbindable", "runbindable", "private", "rprivate", "shared", "rshared", "slave",
    "rslave", "relatime", "norelatime", "strictatime", "nostrictatime", "mode", "uid", "gid",
    "nr_inodes", "nr_blocks", "mpol",
];

/// IPC-namespace sysctls (besides `fs.mqueue.*`).
#[rustfmt::skip]
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
];

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

/// A port mapping name: 1–64 lowercase letters, digits, `_` and `-`, not starting with `-`.
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `"start-end"` of a `containerPortRange`.
fn parse_port_range(s: &str) -> Option<(i32, i32)> {
    let (a, b) = s.split_once('-')?;
    let num = |t: &str| {
        let t = t.trim();
        (!t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<i32>().ok())
            .flatten()
    };
    Some((num(a)?, num(b)?))
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

fn volumes(vols: &[api::Volume]) -> Result<Vec<api::Volume>, Error> {
    let task = At::task();
    let mut out: Vec<api::Volume> = Vec::with_capacity(vols.len());
    let mut at_launch = 0;
    for (i, v) in vols.iter().enumerate() {
        let name = match v.name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => {
                return Err(task.err(format!(
                    "volumes[{i}].name is required so containers can mount the volume; {NAME_RULE}"
                )));
            }
        };
        if !is_name(name) {
            return Err(task.err(format!(
                "Volume name '{}' is invalid: {NAME_RULE}",
                shorten(name)
            )));
        }
        if out.iter().any(|o| o.name.as_deref() == Some(name)) {
            return Err(task.err(format!(
                "Volume name '{name}' is used by more than one volume; volume names must be unique"
            )));
        }
        let at = At(format!("Volume '{name}': "));
        let kinds = [
            v.host.is_some(),
            v.docker_volume_configuration.is_some(),
            v.efs_volume_configuration.is_some(),
            v.s3files_volume_configuration.is_some(),
            v.fsx_windows_file_server_volume_configuration.is_some(),
            v.configured_at_launch == Some(true),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(at.err(
                "give only one of host, dockerVolumeConfiguration, efsVolumeConfiguration, \
                 s3filesVolumeConfiguration, fsxWindowsFileServerVolumeConfiguration or configuredAtLaunch",
            ));
        }
        if v.configured_at_launch == Some(true) {
            at_launch += 1;
            if at_launch > 1 {
                return Err(
                    at.err("only one volume of a task definition can be configuredAtLaunch")
                );
            }
        }
        let mut nv = v.clone();
        if let Some(host) = &v.host
            && let Some(p) = host.source_path.as_deref().filter(|p| !p.is_empty())
        {
            at.absolute(p, "host.sourcePath")?;
        }
        if let Some(d) = &v.docker_volume_configuration {
            let scope = d.scope.as_deref().unwrap_or("task");
            at.one_of(scope, enums::SCOPE, "dockerVolumeConfiguration.scope")?;
            if d.autoprovision == Some(true) && scope != "shared" {
                return Err(at.err(
                    "dockerVolumeConfiguration.autoprovision can only be true when scope is 'shared'; \
                     task-scoped volumes are always created with the task",
                ));
            }
            if d.driver.as_deref() == Some("") {
                return Err(at.err("dockerVolumeConfiguration.driver must not be empty; omit it for the local driver"));
            }
            for (what, map) in [("driverOpts", &d.driver_opts), ("labels", &d.labels)] {
                if map.as_ref().is_some_and(|m| m.keys().any(String::is_empty)) {
                    return Err(at.err(format!(
                        "dockerVolumeConfiguration.{what} keys must not be empty"
                    )));
                }
            }
            if let Some(nd) = nv.docker_volume_configuration.as_mut() {
                nd.scope = Some(scope.to_owned());
            }
        }
        if let Some(e) = &v.efs_volume_configuration {
            at.required_str(&e.file_system_id, "efsVolumeConfiguration.fileSystemId")?;
            let transit = e.transit_encryption.as_deref().unwrap_or("DISABLED");
            at.one_of(
                transit,
                enums::EFS_TRANSIT_ENCRYPTION,
                "efsVolumeConfiguration.transitEncryption",
            )?;
            if let Some(p) = e.transit_encryption_port {
                at.range(
                    p,
                    (1, 65535),
                    "efsVolumeConfiguration.transitEncryptionPort",
                    "",
                )?;
            }
            if let Some(auth) = &e.authorization_config {
                let iam = auth.iam.as_deref().unwrap_or("DISABLED");
                at.one_of(
                    iam,
                    enums::EFS_AUTHORIZATION_CONFIG_IAM,
                    "efsVolumeConfiguration.authorizationConfig.iam",
                )?;
                let access_point = auth
                    .access_point_id
                    .as_deref()
                    .is_some_and(|a| !a.is_empty());
                if (iam == "ENABLED" || access_point) && transit != "ENABLED" {
                    return Err(at.err(
                        "efsVolumeConfiguration.transitEncryption must be ENABLED when IAM authorization or an access point is used",
                    ));
                }
                if access_point && !matches!(e.root_directory.as_deref(), None | Some("/")) {
                    return Err(at.err(
                        "efsVolumeConfiguration.rootDirectory must be omitted or '/' when an access point is used; the access point sets the path",
                    ));
                }
            }
        }
        if let Some(s) = &v.s3files_volume_configuration {
            at.required_str(
                &s.file_system_arn,
                "s3filesVolumeConfiguration.fileSystemArn",
            )?;
            if let Some(p) = s.transit_encryption_port {
                at.range(
                    p,
                    (1, 65535),
                    "s3filesVolumeConfiguration.transitEncryptionPort",
                    "",
                )?;
            }
            if s.access_point_arn.as_deref().is_some_and(|a| !a.is_empty())
                && !matches!(s.root_directory.as_deref(), None | Some("/"))
            {
                return Err(at.err(
                    "s3filesVolumeConfiguration.rootDirectory must be omitted or '/' when an access point is used",
                ));
            }
        }
        if let Some(f) = &v.fsx_windows_file_server_volume_configuration {
            at.required_str(
                &f.file_system_id,
                "fsxWindowsFileServerVolumeConfiguration.fileSystemId",
            )?;
            at.required_str(
                &f.root_directory,
                "fsxWindowsFileServerVolumeConfiguration.rootDirectory",
            )?;
            let auth = at.required(
                &f.authorization_config,
                "fsxWindowsFileServerVolumeConfiguration.authorizationConfig",
            )?;
            at.required_str(
                &auth.credentials_parameter,
                "fsxWindowsFileServerVolumeConfiguration.authorizationConfig.credentialsParameter",
            )?;
            at.required_str(
                &auth.domain,
                "fsxWindowsFileServerVolumeConfiguration.authorizationConfig.domain",
            )?;
        }
        out.push(nv);
    }
    Ok(out)
}

/// What a container's checks need to know about the task.
struct TaskCtx<'a> {
    mode: NetworkMode,
    ipc_mode: Option<&'a str>,
    names: &'a [&'a str],
    volumes: &'a [&'a str],
    accelerators: &'a [&'a str],
    task_memory: Option<i64>,
}

/// One container on its own; returns it normalized.
fn container(
    c: &api::ContainerDefinition,
    name: &str,
    t: &TaskCtx<'_>,
) -> Result<api::ContainerDefinition, Error> {
    let at = At::container(name);
    let mut out = c.clone();

    image(&at, c.image.as_deref())?;
    if let Some(rc) = &c.repository_credentials {
        at.required_str(
            &rc.credentials_parameter,
            "repositoryCredentials.credentialsParameter",
        )?;
    }
    memory(&at, name, c, t.task_memory)?;
    if let Some(cpu) = c.cpu
        && cpu < 0
    {
        return Err(at.err(format!(
            "cpu ({cpu}) must be 0 or more CPU units (1024 units = 1 vCPU)"
        )));
    }
    out.cpu = Some(c.cpu.unwrap_or(0));
    out.essential = Some(c.essential.unwrap_or(true));
    out.port_mappings = Some(port_mappings(
        &at,
        c.port_mappings.as_deref().unwrap_or_default(),
        t.mode,
    )?);
    links(&at, name, c.links.as_deref().unwrap_or_default(), t)?;
    out.mount_points = Some(mount_points(
        &at,
        c.mount_points.as_deref().unwrap_or_default(),
        t.volumes,
    )?);
    out.volumes_from = Some(volumes_from(
        &at,
        name,
        c.volumes_from.as_deref().unwrap_or_default(),
        t.names,
    )?);
    out.environment = Some(environment(&at, c)?);
    secrets(&at, c.secrets.as_deref().unwrap_or_default(), "secrets")?;
    depends_on(
        &at,
        name,
        c.depends_on.as_deref().unwrap_or_default(),
        t.names,
    )?;
    for (what, v) in [
        ("startTimeout", c.start_timeout),
        ("stopTimeout", c.stop_timeout),
    ] {
        if let Some(v) = v
            && v < 0
        {
            return Err(at.err(format!("{what} ({v}) must be 0 or more seconds")));
        }
    }
    if let Some(v) = c.version_consistency.as_deref() {
        at.one_of(v, enums::VERSION_CONSISTENCY, "versionConsistency")?;
    }
    if t.mode == NetworkMode::Awsvpc && c.hostname.is_some() {
        return Err(at.err(
            "hostname is not supported when networkMode is awsvpc; the task's network interface sets the hostname",
        ));
    }
    extra_hosts(&at, c.extra_hosts.as_deref().unwrap_or_default(), t.mode)?;
    if c.docker_labels
        .as_ref()
        .is_some_and(|m| m.keys().any(String::is_empty))
    {
        return Err(at.err("dockerLabels keys must not be empty"));
    }
    ulimits(&at, c.ulimits.as_deref().unwrap_or_default())?;
    if let Some(l) = &c.log_configuration {
        let driver = at.required_str(&l.log_driver, "logConfiguration.logDriver")?;
        at.one_of(driver, enums::LOG_DRIVER, "logConfiguration.logDriver")?;
        if l.options
            .as_ref()
            .is_some_and(|m| m.keys().any(String::is_empty))
        {
            return Err(at.err("logConfiguration.options keys must not be empty"));
        }
        secrets(
            &at,
            l.secret_options.as_deref().unwrap_or_default(),
            "logConfiguration.secretOptions",
        )?;
    }
    if let Some(f) = &c.firelens_configuration {
        let ty = at.required_str(&f.r#type, "firelensConfiguration.type")?;
        at.one_of(
            ty,
            enums::FIRELENS_CONFIGURATION_TYPE,
            "firelensConfiguration.type",
        )?;
    }
    if let Some(hc) = &c.health_check {
        out.health_check = Some(health_check(&at, hc)?);
    }
    if let Some(rp) = &c.restart_policy {
        at.required(&rp.enabled, "restartPolicy.enabled")?;
        at.list_len(
            rp.ignored_exit_codes.as_deref().unwrap_or_default(),
            "restartPolicy.ignoredExitCodes",
            MAX_IGNORED_EXIT_CODES,
        )?;
        if let Some(p) = rp.restart_attempt_period {
            at.range(
                p,
                (60, 1800),
                "restartPolicy.restartAttemptPeriod",
                " seconds",
            )?;
        }
    }
    system_controls(&at, c.system_controls.as_deref().unwrap_or_default(), t)?;
    resource_requirements(
        &at,
        c.resource_requirements.as_deref().unwrap_or_default(),
        t.accelerators,
    )?;
    if let Some(lp) = &c.linux_parameters {
        linux_parameters(&at, lp)?;
    }
    let specs = c.credential_specs.as_deref().unwrap_or_default();
    at.list_len(specs, "credentialSpecs", 1)?;
    for s in specs {
        if !(s.starts_with("credentialspec:") || s.starts_with("credentialspecdomainless:")) {
            return Err(at.err(format!(
                "credentialSpecs entry '{}' must start with 'credentialspec:' or 'credentialspecdomainless:' followed by an ARN",
                shorten(s)
            )));
        }
    }
    Ok(out)
}

/// `repository-url/image:tag` or `repository-url/image@sha256:<64 hex>`.
fn image(at: &At, image: Option<&str>) -> Result<(), Error> {
    let image = match image {
        Some(i) if !i.is_empty() => i,
        _ => {
            return Err(at.err(
                "Container.image should not be null or empty; give an image such as 'nginx:1.27' or 'registry.example.com/team/app:v1'",
            ));
        }
    };
    let (repo, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if repo.is_empty() {
        return Err(at.err(format!(
            "image '{}' has no repository before '@'",
            shorten(image)
        )));
    }
    let n = repo.chars().count();
    if n > 255 {
        return Err(at.err(format!(
            "image is {n} characters; at most 255 are allowed (not counting an @digest)"
        )));
    }
    if !repo
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'/' | b'#'))
    {
        return Err(at.err(format!(
            "image '{}' is invalid: use letters, numbers, hyphens, underscores, colons, periods, forward slashes and number signs (#)",
            shorten(image)
        )));
    }
    if let Some(d) = digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(at.err(format!(
                "image digest '{}' is invalid: after '@' give 'sha256:' followed by exactly 64 hexadecimal characters",
                shorten(d)
            )));
        }
    }
    Ok(())
}

fn memory(
    at: &At,
    name: &str,
    c: &api::ContainerDefinition,
    task_memory: Option<i64>,
) -> Result<(), Error> {
    for (what, v) in [
        ("memory", c.memory),
        ("memoryReservation", c.memory_reservation),
    ] {
        if let Some(v) = v
            && v < MIN_CONTAINER_MEMORY
        {
            return Err(at.err(format!(
                "{what} ({v}) must be at least {MIN_CONTAINER_MEMORY} MiB, the least Docker gives a container"
            )));
        }
    }
    match (c.memory, c.memory_reservation) {
        (Some(m), Some(r)) if m < r => Err(at.err(format!(
            "memory ({m}) must be greater than or equal to memoryReservation ({r}): memory is the hard limit, memoryReservation the soft limit reserved for placement"
        ))),
        (None, None) if task_memory.is_none() => Err(Error::client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified (or set the task-level 'memory')."
        ))),
        _ => Ok(()),
    }
}

fn port_mappings(
    at: &At,
    pms: &[api::PortMapping],
    mode: NetworkMode,
) -> Result<Vec<api::PortMapping>, Error> {
    if mode == NetworkMode::None && !pms.is_empty() {
        return Err(at.err(
            "portMappings are not allowed when networkMode is 'none'; remove them or use bridge, host or awsvpc",
        ));
    }
    let mut out = Vec::with_capacity(pms.len());
    let mut ranges = 0usize;
    for (i, pm) in pms.iter().enumerate() {
        let w = format!("portMappings[{i}]");
        let protocol = pm.protocol.as_deref().unwrap_or("tcp");
        at.one_of(
            protocol,
            enums::TRANSPORT_PROTOCOL,
            &format!("{w}.protocol"),
        )?;
        if let Some(p) = pm.app_protocol.as_deref() {
            at.one_of(p, enums::APPLICATION_PROTOCOL, &format!("{w}.appProtocol"))?;
        }
        if let Some(n) = pm.name.as_deref()
            && !is_port_name(n)
        {
            return Err(at.err(format!(
                "{w}.name '{}' is invalid: use 1 to 64 lowercase letters, numbers, underscores and hyphens, not starting with a hyphen",
                shorten(n)
            )));
        }
        if let Some(h) = pm.host_port {
            at.range(
                h,
                (0, 65535),
                &format!("{w}.hostPort"),
                " (0 or absent for a dynamic host port)",
            )?;
        }
        let mut n = pm.clone();
        n.protocol = Some(protocol.to_owned());
        match (pm.container_port, pm.container_port_range.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(at.err(format!(
                    "{w}: give either containerPort or containerPortRange, not both"
                )));
            }
            (None, None) => {
                return Err(at.err(format!(
                    "{w}: containerPort is required (1 to 65535), or give a containerPortRange such as \"8000-8010\""
                )));
            }
            (Some(cp), None) => {
                if !(1..=65535).contains(&cp) {
                    return Err(at.err(format!(
                        "Invalid 'containerPort' setting: {w}.containerPort ({cp}) must be between 1 and 65535"
                    )));
                }
                match (mode, pm.host_port) {
                    (NetworkMode::Host, Some(h)) if h != 0 && h != cp => {
                        return Err(at.err(format!(
                            "{w}: with networkMode host, hostPort ({h}) must be omitted or equal to containerPort ({cp})"
                        )));
                    }
                    (NetworkMode::Awsvpc, Some(h)) if h != 0 && h != cp => {
                        return Err(at.err(format!(
                            "{w}: when networkMode=awsvpc, the host ports and container ports in port mappings must match; hostPort ({h}) must be omitted or equal to containerPort ({cp})"
                        )));
                    }
                    (NetworkMode::Host | NetworkMode::Awsvpc, _) => n.host_port = Some(cp),
                    _ => {}
                }
            }
            (None, Some(r)) => {
                let bad = || {
                    at.err(format!(
                        "{w}.containerPortRange '{}' is invalid: give \"start-end\" with 1 <= start < end <= 65535",
                        shorten(r)
                    ))
                };
                let (lo, hi) = parse_port_range(r).ok_or_else(bad)?;
                if !(1 <= lo && lo < hi && hi <= 65535) {
                    return Err(bad());
                }
                if !matches!(mode, NetworkMode::Bridge | NetworkMode::Awsvpc) {
                    return Err(at.err(format!(
                        "{w}: containerPortRange needs networkMode bridge or awsvpc; this task uses '{}'",
                        mode.as_str()
                    )));
                }
                if pm.host_port.is_some() {
                    return Err(at.err(format!(
                        "{w}: leave hostPort empty with a containerPortRange; the host ports are assigned for you"
                    )));
                }
                ranges += 1;
                if ranges > MAX_PORT_RANGES {
                    return Err(at.err(format!(
                        "at most {MAX_PORT_RANGES} containerPortRange mappings are allowed per container"
                    )));
                }
            }
        }
        out.push(n);
    }
    // A container port (or range) and protocol may appear in one mapping only.
    let mut spans: Vec<Span<'_>> = out.iter().filter_map(|pm| container_span(pm, "")).collect();
    if let Some((a, b)) = overlap(&mut spans) {
        return Err(at.err(format!(
            "container port {} is exposed by more than one port mapping (overlaps {}); each container port and protocol may appear in one mapping only",
            b.describe(),
            a.describe()
        )));
    }
    Ok(out)
}

/// A span of ports of one protocol, claimed by a container.
#[derive(Debug, Clone)]
struct Span<'a> {
    protocol: &'a str,
    lo: i32,
    hi: i32,
    container: &'a str,
}

impl Span<'_> {
    fn describe(&self) -> String {
        if self.lo == self.hi {
            format!("{}/{}", self.lo, self.protocol)
        } else {
            format!("{}-{}/{}", self.lo, self.hi, self.protocol)
        }
    }
}

/// The container-side ports of a normalized mapping.
fn container_span<'a>(pm: &'a api::PortMapping, container: &'a str) -> Option<Span<'a>> {
    let protocol = pm.protocol.as_deref().unwrap_or("tcp");
    let (lo, hi) = match (pm.container_port, pm.container_port_range.as_deref()) {
        (Some(p), _) => (p, p),
        (None, Some(r)) => parse_port_range(r)?,
        (None, None) => return None,
    };
    Some(Span {
        protocol,
        lo,
        hi,
        container,
    })
}

/// The first two overlapping spans of the same protocol, if any.
fn overlap<'s, 'a>(spans: &'s mut [Span<'a>]) -> Option<(&'s Span<'a>, &'s Span<'a>)> {
    spans.sort_by(|a, b| (a.protocol, a.lo, a.hi).cmp(&(b.protocol, b.lo, b.hi)));
    let mut widest: Option<usize> = None;
    let mut hit = None;
    for i in 0..spans.len() {
        if let Some(w) = widest
            && spans[w].protocol == spans[i].protocol
        {
            if spans[i].lo <= spans[w].hi {
                hit = Some((w, i));
                break;
            }
            if spans[i].hi > spans[w].hi {
                widest = Some(i);
            }
        } else {
            widest = Some(i);
        }
    }
    hit.map(|(a, b)| (&spans[a], &spans[b]))
}

fn links(at: &At, me: &str, links: &[String], t: &TaskCtx<'_>) -> Result<(), Error> {
    if links.is_empty() {
        return Ok(());
    }
    if t.mode != NetworkMode::Bridge {
        return Err(at.err(format!(
            "links are only supported with the bridge network mode; this task uses '{}', where containers reach each other without links",
            t.mode.as_str()
        )));
    }
    for l in links {
        let (target, alias) = match l.split_once(':') {
            Some((t, a)) => (t, Some(a)),
            None => (l.as_str(), None),
        };
        if target == me {
            return Err(at.err(format!(
                "link '{}' points at the container itself; link to another container",
                shorten(l)
            )));
        }
        if !t.names.contains(&target) {
            return Err(at.err(format!(
                "link '{}' names container '{}', which is not in this task definition; use 'name' or 'name:alias' with one of {}",
                shorten(l),
                shorten(target),
                list_names(t.names)
            )));
        }
        if let Some(a) = alias
            && !is_name(a)
        {
            return Err(at.err(format!(
                "link alias '{}' is invalid: {NAME_RULE}",
                shorten(a)
            )));
        }
    }
    Ok(())
}

fn mount_points(
    at: &At,
    mps: &[api::MountPoint],
    volumes: &[&str],
) -> Result<Vec<api::MountPoint>, Error> {
    let mut paths: HashSet<&str> = HashSet::new();
    for (i, mp) in mps.iter().enumerate() {
        let src = at.required_str(&mp.source_volume, &format!("mountPoints[{i}].sourceVolume"))?;
        if !volumes.contains(&src) {
            return Err(at.err(format!(
                "mountPoints[{i}].sourceVolume '{}' is not a volume of this task definition; define it under volumes or use one of {}",
                shorten(src),
                list_names(volumes)
            )));
        }
        let path = at.required_str(
            &mp.container_path,
            &format!("mountPoints[{i}].containerPath"),
        )?;
        at.absolute(path, &format!("mountPoints[{i}].containerPath"))?;
        if !paths.insert(path) {
            return Err(at.err(format!(
                "containerPath '{}' is used by more than one mount point; mount each path once",
                shorten(path)
            )));
        }
    }
    Ok(mps.to_vec())
}

fn volumes_from(
    at: &At,
    me: &str,
    vfs: &[api::VolumeFrom],
    names: &[&str],
) -> Result<Vec<api::VolumeFrom>, Error> {
    for (i, vf) in vfs.iter().enumerate() {
        let src = at.required_str(
            &vf.source_container,
            &format!("volumesFrom[{i}].sourceContainer"),
        )?;
        if src == me {
            return Err(at.err(
                "volumesFrom names the container itself; name another container of the task",
            ));
        }
        if !names.contains(&src) {
            return Err(at.err(format!(
                "volumesFrom[{i}].sourceContainer '{}' is not a container of this task definition; use one of {}",
                shorten(src),
                list_names(names)
            )));
        }
    }
    Ok(vfs.to_vec())
}

fn environment(at: &At, c: &api::ContainerDefinition) -> Result<Vec<api::KeyValuePair>, Error> {
    let env = c.environment.as_deref().unwrap_or_default();
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, kv) in env.iter().enumerate() {
        let name = at.required_str(&kv.name, &format!("environment[{i}].name"))?;
        if !seen.insert(name) {
            return Err(at.err(format!(
                "environment variable '{}' is set more than once; names must be unique",
                shorten(name)
            )));
        }
    }
    let files = c.environment_files.as_deref().unwrap_or_default();
    at.list_len(files, "environmentFiles", MAX_ENVIRONMENT_FILES)?;
    for (i, f) in files.iter().enumerate() {
        let ty = at.required_str(&f.r#type, &format!("environmentFiles[{i}].type"))?;
        at.one_of(
            ty,
            enums::ENVIRONMENT_FILE_TYPE,
            &format!("environmentFiles[{i}].type"),
        )?;
        at.required_str(&f.value, &format!("environmentFiles[{i}].value"))?;
    }
    Ok(env.to_vec())
}

fn secrets(at: &At, secrets: &[api::Secret], what: &str) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, s) in secrets.iter().enumerate() {
        let name = at.required_str(&s.name, &format!("{what}[{i}].name"))?;
        at.required_str(&s.value_from, &format!("{what}[{i}].valueFrom"))?;
        if !seen.insert(name) {
            return Err(at.err(format!(
                "{what} name '{}' is used more than once; names must be unique",
                shorten(name)
            )));
        }
    }
    Ok(())
}

fn depends_on(
    at: &At,
    me: &str,
    deps: &[api::ContainerDependency],
    names: &[&str],
) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, d) in deps.iter().enumerate() {
        let target =
            at.required_str(&d.container_name, &format!("dependsOn[{i}].containerName"))?;
        if target == me {
            return Err(
                at.err("dependsOn names the container itself; a container cannot wait for itself")
            );
        }
        if !names.contains(&target) {
            return Err(at.err(format!(
                "dependsOn[{i}].containerName '{}' is not a container of this task definition; use one of {}",
                shorten(target),
                list_names(names)
            )));
        }
        let cond = at.required_str(&d.condition, &format!("dependsOn[{i}].condition"))?;
        at.one_of(
            cond,
            enums::CONTAINER_CONDITION,
            &format!("dependsOn[{i}].condition"),
        )?;
        if !seen.insert(target) {
            return Err(at.err(format!(
                "dependsOn lists container '{target}' more than once; give one condition per container"
            )));
        }
    }
    Ok(())
}

fn extra_hosts(at: &At, hosts: &[api::HostEntry], mode: NetworkMode) -> Result<(), Error> {
    if hosts.is_empty() {
        return Ok(());
    }
    if mode == NetworkMode::Awsvpc {
        return Err(at.err("extraHosts is not supported when networkMode is awsvpc"));
    }
    for (i, h) in hosts.iter().enumerate() {
        at.required_str(&h.hostname, &format!("extraHosts[{i}].hostname"))?;
        at.required_str(&h.ip_address, &format!("extraHosts[{i}].ipAddress"))?;
    }
    Ok(())
}

fn ulimits(at: &At, ulimits: &[api::Ulimit]) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, u) in ulimits.iter().enumerate() {
        let name = at.required_str(&u.name, &format!("ulimits[{i}].name"))?;
        at.one_of(name, enums::ULIMIT_NAME, &format!("ulimits[{i}].name"))?;
        let soft = *at.required(&u.soft_limit, &format!("ulimits[{i}].softLimit"))?;
        let hard = *at.required(&u.hard_limit, &format!("ulimits[{i}].hardLimit"))?;
        for (what, v) in [("softLimit", soft), ("hardLimit", hard)] {
            if v < -1 {
                return Err(at.err(format!(
                    "ulimit '{name}' {what} ({v}) must be 0 or more, or -1 for unlimited"
                )));
            }
        }
        // -1 is unlimited.
        let as_u64 = |v: i32| if v == -1 { u64::MAX } else { v as u64 };
        if as_u64(soft) > as_u64(hard) {
            return Err(at.err(format!(
                "ulimit '{name}' softLimit ({soft}) must not exceed hardLimit ({hard})"
            )));
        }
        if !seen.insert(name) {
            return Err(at.err(format!(
                "ulimit '{name}' is given more than once; set each ulimit once"
            )));
        }
    }
    Ok(())
}

fn health_check(at: &At, hc: &api::HealthCheck) -> Result<api::HealthCheck, Error> {
    let cmd = at.required(&hc.command, "healthCheck.command")?;
    const EXAMPLE: &str = "for example [\"CMD-SHELL\", \"curl -f http://localhost/ || exit 1\"]";
    match cmd.first().map(String::as_str) {
        Some("CMD" | "CMD-SHELL") => {
            if cmd.iter().skip(1).all(|s| s.trim().is_empty()) {
                return Err(at.err(format!(
                    "healthCheck.command needs the command to run after '{}', {EXAMPLE}",
                    cmd[0]
                )));
            }
        }
        Some("NONE") => {}
        Some(other) => {
            return Err(at.err(format!(
                "healthCheck.command must start with CMD, CMD-SHELL or NONE; got '{}'. Use {EXAMPLE}",
                shorten(other)
            )));
        }
        None => {
            return Err(at.err(format!(
                "healthCheck.command must not be empty; use {EXAMPLE}"
            )));
        }
    }
    let timing = |v: Option<i32>, (lo, hi, default): (i32, i32, i32), what: &str, unit: &str| {
        let v = v.unwrap_or(default);
        at.range(v, (lo, hi), what, unit).map(|()| v)
    };
    Ok(api::HealthCheck {
        command: Some(cmd.clone()),
        interval: Some(timing(
            hc.interval,
            HC_INTERVAL,
            "healthCheck.interval",
            " seconds",
        )?),
        timeout: Some(timing(
            hc.timeout,
            HC_TIMEOUT,
            "healthCheck.timeout",
            " seconds",
        )?),
        retries: Some(timing(hc.retries, HC_RETRIES, "healthCheck.retries", "")?),
        start_period: Some(timing(
            hc.start_period,
            HC_START_PERIOD,
            "healthCheck.startPeriod",
            " seconds",
        )?),
    })
}

fn is_ipc_sysctl(ns: &str) -> bool {
    IPC_SYSCTLS.contains(&ns) || ns.starts_with("fs.mqueue.")
}

fn system_controls(at: &At, scs: &[api::SystemControl], t: &TaskCtx<'_>) -> Result<(), Error> {
    for (i, sc) in scs.iter().enumerate() {
        let ns = at.required_str(&sc.namespace, &format!("systemControls[{i}].namespace"))?;
        at.required_str(&sc.value, &format!("systemControls[{i}].value"))?;
        let net = ns.starts_with("net.");
        if !net && !is_ipc_sysctl(ns) {
            return Err(at.err(format!(
                "systemControls namespace '{}' is not a namespaced sysctl; use net.*, fs.mqueue.* or one of {}",
                shorten(ns),
                IPC_SYSCTLS.join(", ")
            )));
        }
        if net && t.mode == NetworkMode::Host {
            return Err(at.err(format!(
                "systemControls '{ns}': network sysctls (net.*) are not supported with networkMode host, which shares the host's network namespace"
            )));
        }
        if !net && t.ipc_mode == Some("host") {
            return Err(at.err(format!(
                "systemControls '{ns}': IPC sysctls are not supported with ipcMode host, which shares the host's IPC namespace"
            )));
        }
    }
    Ok(())
}

fn resource_requirements(
    at: &At,
    rrs: &[api::ResourceRequirement],
    accelerators: &[&str],
) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, r) in rrs.iter().enumerate() {
        let ty = at.required_str(&r.r#type, &format!("resourceRequirements[{i}].type"))?;
        at.one_of(
            ty,
            enums::RESOURCE_TYPE,
            &format!("resourceRequirements[{i}].type"),
        )?;
        let value = at.required_str(&r.value, &format!("resourceRequirements[{i}].value"))?;
        match ty {
            "GPU" => {
                let count_ok = value.bytes().all(|b| b.is_ascii_digit())
                    && value.parse::<u32>().is_ok_and(|n| n > 0);
                if value != "ALL" && !count_ok {
                    return Err(at.err(format!(
                        "resourceRequirements GPU value '{}' is invalid: give a whole number of GPUs of 1 or more, or ALL",
                        shorten(value)
                    )));
                }
            }
            "NeuronDevice" if value != "ALL" => {
                return Err(at.err(format!(
                    "resourceRequirements NeuronDevice value '{}' is invalid: the only allowed value is ALL",
                    shorten(value)
                )));
            }
            "InferenceAccelerator" if !accelerators.contains(&value) => {
                return Err(at.err(format!(
                    "resourceRequirements InferenceAccelerator value '{}' does not match the deviceName of any of the task's inferenceAccelerators ({})",
                    shorten(value),
                    list_names(accelerators)
                )));
            }
            _ => {}
        }
        if ty != "InferenceAccelerator" && !seen.insert(ty) {
            return Err(at.err(format!(
                "resourceRequirements lists {ty} more than once; give it once"
            )));
        }
    }
    Ok(())
}

fn linux_parameters(at: &At, lp: &api::LinuxParameters) -> Result<(), Error> {
    if let Some(caps) = &lp.capabilities {
        for (what, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for cap in list.as_deref().unwrap_or_default() {
                at.one_of(
                    cap,
                    CAPABILITIES,
                    &format!("linuxParameters.capabilities.{what} capability"),
                )?;
            }
        }
    }
    for (i, d) in lp.devices.as_deref().unwrap_or_default().iter().enumerate() {
        let w = format!("linuxParameters.devices[{i}]");
        let host = at.required_str(&d.host_path, &format!("{w}.hostPath"))?;
        at.absolute(host, &format!("{w}.hostPath"))?;
        if let Some(p) = d.container_path.as_deref() {
            at.absolute(p, &format!("{w}.containerPath"))?;
        }
        for p in d.permissions.as_deref().unwrap_or_default() {
            at.one_of(
                p,
                enums::DEVICE_CGROUP_PERMISSION,
                &format!("{w}.permissions value"),
            )?;
        }
    }
    for (i, t) in lp.tmpfs.as_deref().unwrap_or_default().iter().enumerate() {
        let w = format!("linuxParameters.tmpfs[{i}]");
        let path = at.required_str(&t.container_path, &format!("{w}.containerPath"))?;
        at.absolute(path, &format!("{w}.containerPath"))?;
        let size = *at.required(&t.size, &format!("{w}.size"))?;
        if size <= 0 {
            return Err(at.err(format!("{w}.size ({size}) must be 1 MiB or more")));
        }
        for o in t.mount_options.as_deref().unwrap_or_default() {
            let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
            at.one_of(key, TMPFS_OPTIONS, &format!("{w}.mountOptions option"))?;
        }
    }
    if let Some(s) = lp.shared_memory_size
        && s <= 0
    {
        return Err(at.err(format!(
            "linuxParameters.sharedMemorySize ({s}) must be 1 MiB or more"
        )));
    }
    if let Some(s) = lp.max_swap
        && s < 0
    {
        return Err(at.err(format!(
            "linuxParameters.maxSwap ({s}) must be 0 (no swap) or more MiB"
        )));
    }
    if let Some(s) = lp.swappiness {
        at.range(s, (0, 100), "linuxParameters.swappiness", "")?;
    }
    Ok(())
}

fn proxy_configuration(
    p: &api::ProxyConfiguration,
    names: &[&str],
) -> Result<api::ProxyConfiguration, Error> {
    let at = At::task();
    let ty = p.r#type.as_deref().unwrap_or("APPMESH");
    at.one_of(
        ty,
        enums::PROXY_CONFIGURATION_TYPE,
        "proxyConfiguration.type",
    )?;
    let container = at.required_str(&p.container_name, "proxyConfiguration.containerName")?;
    if !names.contains(&container) {
        return Err(at.err(format!(
            "proxyConfiguration.containerName '{}' is not a container of this task definition; use one of {}",
            shorten(container),
            list_names(names)
        )));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, kv) in p
        .properties
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = at.required_str(
            &kv.name,
            &format!("proxyConfiguration.properties[{i}].name"),
        )?;
        if !seen.insert(name) {
            return Err(at.err(format!(
                "proxyConfiguration property '{}' is given more than once",
                shorten(name)
            )));
        }
    }
    let mut out = p.clone();
    out.r#type = Some(ty.to_owned());
    Ok(out)
}

/// dependsOn conditions against their targets, and no cycles through links, volumesFrom and
/// dependsOn (each makes one container start after another).
fn dependencies(containers: &[api::ContainerDefinition], names: &[&str]) -> Result<(), Error> {
    let index = |n: &str| names.iter().position(|m| *m == n);
    let mut edges: Vec<Vec<(usize, &'static str)>> = vec![Vec::new(); containers.len()];
    for (i, c) in containers.iter().enumerate() {
        let at = At::container(names[i]);
        for d in c.depends_on.as_deref().unwrap_or_default() {
            let (Some(target), Some(cond)) = (d.container_name.as_deref(), d.condition.as_deref())
            else {
                continue;
            };
            let Some(j) = index(target) else { continue };
            let t = &containers[j];
            match cond {
                "HEALTHY" => {
                    let has_check = t
                        .health_check
                        .as_ref()
                        .and_then(|h| h.command.as_deref())
                        .and_then(|c| c.first())
                        .is_some_and(|first| first != "NONE");
                    if !has_check {
                        return Err(at.err(format!(
                            "dependsOn condition HEALTHY on '{target}' needs a healthCheck on container '{target}'; add one or use START"
                        )));
                    }
                }
                "COMPLETE" | "SUCCESS" if t.essential != Some(false) => {
                    return Err(at.err(format!(
                        "dependsOn condition {cond} on '{target}' needs '{target}' to be non-essential (essential=false): when an essential container exits, the whole task stops"
                    )));
                }
                _ => {}
            }
            edges[i].push((j, "dependsOn"));
        }
        for l in c.links.as_deref().unwrap_or_default() {
            let target = l.split_once(':').map_or(l.as_str(), |(t, _)| t);
            if let Some(j) = index(target) {
                edges[i].push((j, "links"));
            }
        }
        for vf in c.volumes_from.as_deref().unwrap_or_default() {
            if let Some(j) = vf.source_container.as_deref().and_then(index) {
                edges[i].push((j, "volumesFrom"));
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let mut desc = String::new();
        for (k, (node, kind)) in cycle.iter().enumerate() {
            if k == 0 {
                desc.push_str(&format!("'{}'", names[*node]));
            }
            let next = cycle.get(k + 1).map_or(cycle[0].0, |(n, _)| *n);
            desc.push_str(&format!(" -({kind})-> '{}'", names[next]));
        }
        return Err(Error::client(format!(
            "Container dependencies form a cycle: {desc}. Remove one of these links, volumesFrom or dependsOn references."
        )));
    }
    Ok(())
}

/// A cycle in `edges` as (node, kind of its edge to the next node); the last node's edge
/// leads back to the first.
fn find_cycle(edges: &[Vec<(usize, &'static str)>]) -> Option<Vec<(usize, &'static str)>> {
    fn visit(
        u: usize,
        edges: &[Vec<(usize, &'static str)>],
        state: &mut [u8],
        path: &mut Vec<(usize, &'static str)>,
    ) -> Option<Vec<(usize, &'static str)>> {
        state[u] = 1;
        for &(v, kind) in &edges[u] {
            path.push((u, kind));
            match state[v] {
                1 => {
                    let start = path.iter().position(|(n, _)| *n == v).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                0 => {
                    if let Some(c) = visit(v, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
            path.pop();
        }
        state[u] = 2;
        None
    }
    let mut state = vec![0u8; edges.len()];
    for u in 0..edges.len() {
        if state[u] == 0
            && let Some(c) = visit(u, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Port names are unique in the task; a static host port and protocol is bound once.
fn ports(
    containers: &[api::ContainerDefinition],
    names: &[&str],
    mode: NetworkMode,
) -> Result<(), Error> {
    let mut port_names: HashMap<&str, &str> = HashMap::new();
    let mut claims: Vec<Span<'_>> = Vec::new();
    for (c, name) in containers.iter().zip(names) {
        for pm in c.port_mappings.as_deref().unwrap_or_default() {
            if let Some(n) = pm.name.as_deref()
                && let Some(other) = port_names.insert(n, name)
            {
                return Err(Error::client(format!(
                    "Port mapping name '{n}' is used by container '{other}' and container '{name}'; port names must be unique within a task definition"
                )));
            }
            let protocol = pm.protocol.as_deref().unwrap_or("tcp");
            // Normalized: in host and awsvpc mode hostPort is the container port; a range is
            // static only in awsvpc mode (hostPort unset and no range mean dynamic in bridge).
            match (pm.host_port, pm.container_port_range.as_deref()) {
                (Some(h), _) if h > 0 => claims.push(Span {
                    protocol,
                    lo: h,
                    hi: h,
                    container: name,
                }),
                (None, Some(_)) if mode == NetworkMode::Awsvpc => {
                    if let Some(s) = container_span(pm, name) {
                        claims.push(s);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some((a, b)) = overlap(&mut claims) {
        let who = if a.container == b.container {
            format!("twice by container '{}'", a.container)
        } else {
            format!(
                "by container '{}' and container '{}'",
                a.container, b.container
            )
        };
        return Err(Error::client(format!(
            "Host port {} (overlapping {}) is claimed {who}; a static host port and protocol can be bound only once per task. Use another hostPort, or 0 for a dynamic port in bridge mode.",
            b.describe(),
            a.describe()
        )));
    }
    Ok(())
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

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Sets (or, with null, removes) the members of `extra` on `base`.
    fn merge(base: &mut Value, extra: Value) {
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

    fn ctr(name: &str, extra: Value) -> Value {
        let mut c = json!({"name": name, "image": "nginx:1.27", "memory": 256});
        merge(&mut c, extra);
        c
    }

    fn task(containers: Vec<Value>, extra: Value) -> Value {
        let mut t = json!({"family": "app", "containerDefinitions": containers});
        merge(&mut t, extra);
        t
    }

    /// One container 'web' with `extra` set on it.
    fn one(extra: Value) -> Value {
        task(vec![ctr("web", extra)], json!({}))
    }

    fn check(v: Value) -> Result<ValidTaskDefinition, Error> {
        let req: api::RegisterTaskDefinitionRequest =
            serde_json::from_value(v).expect("test request deserializes");
        register(&req)
    }

    #[track_caller]
    fn ok(v: Value) -> ValidTaskDefinition {
        match check(v) {
            Ok(t) => t,
            Err(e) => panic!("expected success, got {e:?}"),
        }
    }

    /// A ClientException whose message contains every needle.
    #[track_caller]
    fn client(v: Value, needles: &[&str]) {
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
    fn invalid(v: Value, needles: &[&str]) {
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

    fn containers(t: &ValidTaskDefinition) -> &[api::ContainerDefinition] {
        t.spec.container_definitions.as_deref().unwrap()
    }

    fn attribute_names(t: &ValidTaskDefinition) -> Vec<&str> {
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
    fn image_rules() {
        client(
            one(json!({"image": null})),
            &[
                "Container 'web'",
                "Container.image should not be null or empty",
            ],
        );
        client(one(json!({"image": ""})), &["Container 'web'", "image"]);
        // Before anything berth cannot provide is refused.
        client(
            task(
                vec![ctr("web", json!({"image": null}))],
                json!({"requiresCompatibilities": ["FARGATE"]}),
            ),
            &[
                "Container 'web'",
                "Container.image should not be null or empty",
            ],
        );
        client(
            one(json!({"image": "a".repeat(256)})),
            &["Container 'web'", "256 characters", "255"],
        );
        ok(one(json!({"image": "a".repeat(255)})));
        client(
            one(json!({"image": "nginx latest"})),
            &["Container 'web'", "image 'nginx latest'"],
        );
        client(
            one(json!({"image": "nginx@md5:abc"})),
            &["Container 'web'", "sha256"],
        );
        client(
            one(json!({"image": format!("nginx@sha256:{}", &DIGEST[1..])})),
            &["64 hexadecimal"],
        );
        client(one(json!({"image": "@sha256:0"})), &["no repository"]);
        ok(one(
            json!({"image": format!("{}@sha256:{DIGEST}", "r".repeat(255))}),
        ));
        ok(one(json!({"image": "localhost:5000/team/app_x:v1.2-rc#3"})));
    }

    #[test]
    fn container_cpu_must_not_be_negative() {
        client(
            one(json!({"cpu": -1})),
            &["Container 'web'", "cpu (-1)", "0 or more"],
        );
        ok(one(json!({"cpu": 0})));
        ok(one(json!({"cpu": 1_000_000})));
    }

    #[test]
    fn memory_limits() {
        client(
            one(json!({"memory": 5})),
            &["Container 'web'", "memory (5)", "at least 6 MiB"],
        );
        client(
            one(json!({"memory": null, "memoryReservation": 4})),
            &["Container 'web'", "memoryReservation (4)", "6 MiB"],
        );
        client(one(json!({"memory": 0})), &["memory (0)"]);
        client(
            one(json!({"memory": 64, "memoryReservation": 128})),
            &[
                "Container 'web'",
                "memory (64) must be greater than or equal to memoryReservation (128)",
            ],
        );
        ok(one(json!({"memory": 128, "memoryReservation": 128})));
        ok(one(json!({"memory": 6})));
        ok(one(json!({"memory": null, "memoryReservation": 6})));
    }

    #[test]
    fn memory_or_reservation_is_required_without_task_memory() {
        client(
            task(
                vec![ctr("web", json!({})), ctr("x", json!({"memory": null}))],
                json!({}),
            ),
            &[
                "Invalid setting for container 'x'. At least one of 'memory' or 'memoryReservation' must be specified",
            ],
        );
        let t = ok(task(
            vec![ctr("web", json!({"memory": null}))],
            json!({"memory": "512"}),
        ));
        assert_eq!(t.requirements.memory, 512);
    }

    #[test]
    fn essential_defaults_to_true_and_one_is_required() {
        client(
            task(
                vec![
                    ctr("a", json!({"essential": false})),
                    ctr("b", json!({"essential": false})),
                ],
                json!({}),
            ),
            &["At least one container must be essential", "'a', 'b'"],
        );
        let t = ok(task(
            vec![ctr("a", json!({"essential": false})), ctr("b", json!({}))],
            json!({}),
        ));
        assert_eq!(containers(&t)[1].essential, Some(true));
    }

    fn pm(v: Value) -> Value {
        json!({"portMappings": [v]})
    }

    #[test]
    fn port_mapping_values() {
        client(
            one(pm(json!({"containerPort": 0}))),
            &[
                "Container 'web'",
                "portMappings[0].containerPort (0)",
                "1 and 65535",
            ],
        );
        client(
            one(pm(json!({"containerPort": 65536}))),
            &["Invalid 'containerPort'", "65536"],
        );
        client(
            one(pm(json!({"containerPort": 80, "hostPort": -1}))),
            &["portMappings[0].hostPort (-1)", "0 and 65535"],
        );
        client(
            one(pm(json!({"containerPort": 80, "hostPort": 65536}))),
            &["hostPort (65536)"],
        );
        client(
            one(pm(json!({"containerPort": 80, "protocol": "sctp"}))),
            &["Container 'web'", "'sctp'", "protocol", "tcp, udp"],
        );
        client(
            one(pm(json!({"containerPort": 80, "appProtocol": "ftp"}))),
            &["appProtocol", "http, http2, grpc"],
        );
        client(
            one(pm(json!({"containerPort": 80, "name": "Web"}))),
            &["portMappings[0].name 'Web'", "lowercase"],
        );
        client(
            one(pm(json!({"containerPort": 80, "name": "-web"}))),
            &["not starting with a hyphen"],
        );
        client(
            one(pm(
                json!({"containerPort": 80, "containerPortRange": "81-82"}),
            )),
            &["not both"],
        );
        client(
            one(pm(json!({"hostPort": 80}))),
            &["Container 'web'", "containerPort is required"],
        );
        let t = ok(one(pm(
            json!({"containerPort": 80, "hostPort": 0, "name": "web_1", "appProtocol": "grpc"}),
        )));
        let p = &containers(&t)[0].port_mappings.as_deref().unwrap()[0];
        assert_eq!((p.protocol.as_deref(), p.host_port), (Some("tcp"), Some(0)));
    }

    #[test]
    fn host_mode_ports() {
        let host = |c: Value| task(vec![c], json!({"networkMode": "host"}));
        client(
            host(ctr(
                "web",
                pm(json!({"containerPort": 80, "hostPort": 8080})),
            )),
            &[
                "Container 'web'",
                "networkMode host",
                "hostPort (8080)",
                "containerPort (80)",
            ],
        );
        let t = ok(host(ctr("web", pm(json!({"containerPort": 80})))));
        assert_eq!(
            containers(&t)[0].port_mappings.as_deref().unwrap()[0].host_port,
            Some(80),
            "hostPort filled in"
        );
        ok(host(ctr(
            "web",
            pm(json!({"containerPort": 80, "hostPort": 80})),
        )));
        client(
            host(ctr("web", pm(json!({"containerPortRange": "80-90"})))),
            &["containerPortRange", "bridge or awsvpc", "'host'"],
        );
        client(
            task(
                vec![
                    ctr("a", pm(json!({"containerPort": 80}))),
                    ctr("b", pm(json!({"containerPort": 80}))),
                ],
                json!({"networkMode": "host"}),
            ),
            &["Host port 80/tcp", "container 'a' and container 'b'"],
        );
    }

    #[test]
    fn awsvpc_mode_ports() {
        let awsvpc = |cs: Vec<Value>| task(cs, json!({"networkMode": "awsvpc"}));
        client(
            awsvpc(vec![ctr(
                "web",
                pm(json!({"containerPort": 80, "hostPort": 8080})),
            )]),
            &["Container 'web'", "awsvpc", "must match", "hostPort (8080)"],
        );
        let t = ok(awsvpc(vec![ctr(
            "web",
            json!({"portMappings": [{"containerPort": 80}, {"containerPortRange": "9000-9010"}]}),
        )]));
        let pms = containers(&t)[0].port_mappings.clone().unwrap();
        assert_eq!(pms[0].host_port, Some(80));
        assert_eq!(pms[1].host_port, None);
        assert!(
            t.requirements.ports.is_empty(),
            "awsvpc binds no instance ports"
        );
        assert!(attribute_names(&t).contains(&"ecs.capability.task-eni"));
        client(
            awsvpc(vec![
                ctr("a", pm(json!({"containerPortRange": "9000-9010"}))),
                ctr("b", pm(json!({"containerPort": 9005}))),
            ]),
            &[
                "9005/tcp",
                "9000-9010/tcp",
                "container 'a' and container 'b'",
            ],
        );
    }

    #[test]
    fn none_mode_has_no_ports() {
        client(
            task(
                vec![ctr("web", pm(json!({"containerPort": 80})))],
                json!({"networkMode": "none"}),
            ),
            &["Container 'web'", "portMappings are not allowed", "'none'"],
        );
        ok(task(
            vec![ctr("web", json!({}))],
            json!({"networkMode": "none"}),
        ));
    }

    #[test]
    fn container_port_ranges() {
        let t = ok(one(pm(
            json!({"containerPortRange": "8000-8010", "protocol": "udp"}),
        )));
        assert!(
            t.requirements.ports.is_empty(),
            "bridge ranges get dynamic host ports"
        );
        assert!(attribute_names(&t).contains(&"ecs.capability.network.container-port-range"));
        for bad in [
            "8010-8000",
            "80-80",
            "0-10",
            "1-65536",
            "80",
            "a-b",
            "-80",
            "80-",
            " - ",
            "99999999999-1",
        ] {
            client(
                one(pm(json!({"containerPortRange": bad}))),
                &["Container 'web'", "containerPortRange", "start-end"],
            );
        }
        client(
            one(pm(
                json!({"containerPortRange": "8000-8010", "hostPort": 8000}),
            )),
            &["Container 'web'", "leave hostPort empty"],
        );
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"containerPortRange": format!("{}-{}", 10000 + i * 2, 10001 + i * 2)}))
            .collect();
        client(
            one(json!({"portMappings": many})),
            &["at most 100 containerPortRange"],
        );
    }

    #[test]
    fn container_ports_are_exposed_once_per_protocol() {
        client(
            one(
                json!({"portMappings": [{"containerPort": 80}, {"containerPort": 80, "hostPort": 8080}]}),
            ),
            &[
                "Container 'web'",
                "container port 80/tcp",
                "more than one port mapping",
            ],
        );
        client(
            one(
                json!({"portMappings": [{"containerPortRange": "8000-8010"}, {"containerPort": 8005}]}),
            ),
            &["Container 'web'", "8005/tcp", "8000-8010/tcp"],
        );
        client(
            one(
                json!({"portMappings": [{"containerPortRange": "8000-8010"}, {"containerPortRange": "8010-8020"}]}),
            ),
            &["8010-8020/tcp"],
        );
        ok(one(
            json!({"portMappings": [{"containerPort": 53}, {"containerPort": 53, "protocol": "udp"}]}),
        ));
    }

    #[test]
    fn static_host_ports_are_bound_once_per_task() {
        client(
            task(
                vec![
                    ctr("a", pm(json!({"containerPort": 80, "hostPort": 8080}))),
                    ctr("b", pm(json!({"containerPort": 81, "hostPort": 8080}))),
                ],
                json!({}),
            ),
            &["Host port 8080/tcp", "container 'a' and container 'b'"],
        );
        client(
            one(
                json!({"portMappings": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080}]}),
            ),
            &["Host port 8080/tcp", "twice by container 'web'"],
        );
        ok(task(
            vec![
                ctr("a", pm(json!({"containerPort": 80, "hostPort": 8080}))),
                ctr(
                    "b",
                    pm(json!({"containerPort": 80, "hostPort": 8080, "protocol": "udp"})),
                ),
                ctr("c", pm(json!({"containerPort": 80}))),
                ctr("d", pm(json!({"containerPort": 80, "hostPort": 0}))),
            ],
            json!({}),
        ));
    }

    #[test]
    fn port_names_are_unique_in_the_task() {
        client(
            task(
                vec![
                    ctr("a", pm(json!({"containerPort": 80, "name": "http"}))),
                    ctr("b", pm(json!({"containerPort": 81, "name": "http"}))),
                ],
                json!({}),
            ),
            &[
                "Port mapping name 'http'",
                "container 'a' and container 'b'",
            ],
        );
    }

    #[test]
    fn links_rules() {
        let two = |links: Value, extra: Value| {
            task(
                vec![ctr("web", json!({"links": links})), ctr("db", json!({}))],
                extra,
            )
        };
        ok(two(json!(["db", "db:database"]), json!({})));
        ok(two(json!(["db"]), json!({"networkMode": "bridge"})));
        client(
            two(json!(["db"]), json!({"networkMode": "awsvpc"})),
            &["Container 'web'", "links", "bridge", "'awsvpc'"],
        );
        client(
            two(json!(["db"]), json!({"networkMode": "host"})),
            &["'host'"],
        );
        client(
            two(json!(["cache"]), json!({})),
            &["Container 'web'", "link 'cache'", "'db'"],
        );
        client(
            two(json!(["web"]), json!({})),
            &["Container 'web'", "itself"],
        );
        client(
            two(json!(["db:bad alias"]), json!({})),
            &["Container 'web'", "alias 'bad alias'"],
        );
        client(two(json!(["db:"]), json!({})), &["alias ''"]);
        client(two(json!([":x"]), json!({})), &["link ':x'"]);
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
    fn depends_on_rules() {
        let dep = |target: &str, cond: &str, other: Value| {
            task(
                vec![
                    ctr(
                        "web",
                        json!({"dependsOn": [{"containerName": target, "condition": cond}]}),
                    ),
                    ctr("init", other),
                ],
                json!({}),
            )
        };
        ok(dep("init", "START", json!({})));
        ok(dep("init", "COMPLETE", json!({"essential": false})));
        ok(dep("init", "SUCCESS", json!({"essential": false})));
        ok(dep(
            "init",
            "HEALTHY",
            json!({"healthCheck": {"command": ["CMD", "true"]}}),
        ));
        client(
            dep("nope", "START", json!({})),
            &[
                "Container 'web'",
                "dependsOn[0].containerName 'nope'",
                "'init'",
            ],
        );
        client(
            dep("web", "START", json!({})),
            &["Container 'web'", "itself"],
        );
        client(
            dep("init", "READY", json!({})),
            &[
                "Container 'web'",
                "'READY'",
                "START, COMPLETE, SUCCESS, HEALTHY",
            ],
        );
        client(
            dep("init", "HEALTHY", json!({})),
            &[
                "Container 'web'",
                "HEALTHY",
                "healthCheck on container 'init'",
            ],
        );
        client(
            dep(
                "init",
                "HEALTHY",
                json!({"healthCheck": {"command": ["NONE"]}}),
            ),
            &["healthCheck on container 'init'"],
        );
        client(
            dep("init", "COMPLETE", json!({})),
            &["Container 'web'", "COMPLETE", "'init' to be non-essential"],
        );
        client(
            dep("init", "SUCCESS", json!({"essential": true})),
            &["SUCCESS", "non-essential"],
        );
        client(
            task(
                vec![
                    ctr("web", json!({"dependsOn": [{"containerName": "init"}]})),
                    ctr("init", json!({})),
                ],
                json!({}),
            ),
            &["Container 'web'", "dependsOn[0].condition"],
        );
        client(
            task(
                vec![
                    ctr(
                        "web",
                        json!({"dependsOn": [{"containerName": "init", "condition": "START"}, {"containerName": "init", "condition": "START"}]}),
                    ),
                    ctr("init", json!({})),
                ],
                json!({}),
            ),
            &["more than once"],
        );
    }

    #[test]
    fn dependency_cycles_are_reported() {
        let start = |t: &str| json!({"dependsOn": [{"containerName": t, "condition": "START"}]});
        client(
            task(
                vec![
                    ctr("a", start("b")),
                    ctr("b", start("c")),
                    ctr("c", start("a")),
                ],
                json!({}),
            ),
            &[
                "cycle",
                "'a' -(dependsOn)-> 'b' -(dependsOn)-> 'c' -(dependsOn)-> 'a'",
            ],
        );
        client(
            task(
                vec![
                    ctr("a", json!({"links": ["b"]})),
                    ctr("b", json!({"volumesFrom": [{"sourceContainer": "a"}]})),
                ],
                json!({}),
            ),
            &["cycle", "'a' -(links)-> 'b' -(volumesFrom)-> 'a'"],
        );
        ok(task(
            vec![
                ctr("a", start("b")),
                ctr("b", start("c")),
                ctr("c", json!({"links": []})),
            ],
            json!({}),
        ));
    }

    #[test]
    fn health_check_rules() {
        let hc = |h: Value| one(json!({"healthCheck": h}));
        client(hc(json!({})), &["Container 'web'", "healthCheck.command"]);
        client(
            hc(json!({"command": []})),
            &["Container 'web'", "healthCheck.command must not be empty"],
        );
        client(
            hc(json!({"command": ["curl", "-f", "localhost"]})),
            &["must start with CMD, CMD-SHELL or NONE", "'curl'"],
        );
        client(
            hc(json!({"command": ["CMD-SHELL"]})),
            &["needs the command to run after 'CMD-SHELL'"],
        );
        client(hc(json!({"command": ["CMD", " "]})), &["after 'CMD'"]);
        let cmd = json!(["CMD", "true"]);
        client(
            hc(json!({"command": cmd, "interval": 4})),
            &["Container 'web'", "healthCheck.interval (4)", "5 and 300"],
        );
        client(
            hc(json!({"command": cmd, "interval": 301})),
            &["healthCheck.interval (301)"],
        );
        client(
            hc(json!({"command": cmd, "timeout": 1})),
            &["healthCheck.timeout (1)", "2 and 60"],
        );
        client(
            hc(json!({"command": cmd, "timeout": 61})),
            &["healthCheck.timeout (61)"],
        );
        client(
            hc(json!({"command": cmd, "retries": 0})),
            &["healthCheck.retries (0)", "1 and 10"],
        );
        client(
            hc(json!({"command": cmd, "retries": 11})),
            &["healthCheck.retries (11)"],
        );
        client(
            hc(json!({"command": cmd, "startPeriod": -1})),
            &["healthCheck.startPeriod (-1)", "0 and 300"],
        );
        client(
            hc(json!({"command": cmd, "startPeriod": 301})),
            &["healthCheck.startPeriod (301)"],
        );
        let t = ok(hc(json!({"command": ["NONE"]})));
        let h = containers(&t)[0].health_check.clone().unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.retries, h.start_period),
            (Some(30), Some(5), Some(3), Some(0))
        );
        let t = ok(hc(
            json!({"command": cmd, "interval": 5, "timeout": 60, "retries": 10, "startPeriod": 300}),
        ));
        let h = containers(&t)[0].health_check.clone().unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.retries, h.start_period),
            (Some(5), Some(60), Some(10), Some(300))
        );
    }

    fn vols(vs: Value) -> Value {
        task(vec![ctr("web", json!({}))], json!({"volumes": vs}))
    }

    #[test]
    fn volume_names_and_kinds() {
        client(
            vols(json!([{"host": {}}])),
            &["volumes[0].name is required"],
        );
        client(
            vols(json!([{"name": "my data"}])),
            &["Volume name 'my data'", "letters, numbers"],
        );
        client(
            vols(json!([{"name": "d"}, {"name": "d"}])),
            &["Volume name 'd'", "unique"],
        );
        client(
            vols(json!([{"name": "d", "host": {"sourcePath": "srv/data"}}])),
            &["Volume 'd'", "host.sourcePath 'srv/data'", "absolute"],
        );
        ok(vols(
            json!([{"name": "d", "host": {"sourcePath": "/srv/data"}}, {"name": "e", "host": {}}, {"name": "f"}]),
        ));
        ok(vols(
            json!([{"name": "w", "host": {"sourcePath": "C:\\data"}}]),
        ));
        client(
            vols(json!([{"name": "d", "host": {}, "dockerVolumeConfiguration": {}}])),
            &["Volume 'd'", "only one of host, dockerVolumeConfiguration"],
        );
        client(
            vols(
                json!([{"name": "a", "configuredAtLaunch": true}, {"name": "b", "configuredAtLaunch": true}]),
            ),
            &["Volume 'b'", "only one volume", "configuredAtLaunch"],
        );
    }

    #[test]
    fn docker_efs_s3files_and_fsx_volumes() {
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"scope": "global"}}])),
            &["Volume 'd'", "'global'", "task, shared"],
        );
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"autoprovision": true}}])),
            &["Volume 'd'", "autoprovision", "'shared'"],
        );
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"driver": ""}}])),
            &["driver must not be empty"],
        );
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"labels": {"": "x"}}}])),
            &["dockerVolumeConfiguration.labels keys"],
        );
        let t = ok(vols(
            json!([{"name": "d", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "rexray/ebs"}}]),
        ));
        assert!(attribute_names(&t).contains(&"ecs.capability.docker-plugin.rexray/ebs"));

        client(
            vols(json!([{"name": "e", "efsVolumeConfiguration": {}}])),
            &["Volume 'e'", "efsVolumeConfiguration.fileSystemId"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ON"}}]),
            ),
            &["transitEncryption", "ENABLED, DISABLED"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "authorizationConfig": {"iam": "ENABLED"}}}]),
            ),
            &["Volume 'e'", "transitEncryption must be ENABLED"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "rootDirectory": "/x", "authorizationConfig": {"accessPointId": "fsap-1"}}}]),
            ),
            &["rootDirectory must be omitted or '/'"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryptionPort": 0}}]),
            ),
            &["transitEncryptionPort (0)"],
        );
        let t = ok(vols(
            json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "authorizationConfig": {"iam": "ENABLED", "accessPointId": "fsap-1"}}}]),
        ));
        assert!(attribute_names(&t).contains(&"ecs.capability.efsAuth"));

        client(
            vols(json!([{"name": "s", "s3filesVolumeConfiguration": {}}])),
            &["Volume 's'", "fileSystemArn"],
        );
        client(
            vols(
                json!([{"name": "f", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "share"}}]),
            ),
            &["Volume 'f'", "authorizationConfig"],
        );
        ok(vols(
            json!([{"name": "f", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "share", "authorizationConfig": {"credentialsParameter": "arn:x", "domain": "corp.example.com"}}}]),
        ));
    }

    #[test]
    fn mount_points_and_volumes_from() {
        let with = |c: Value| {
            task(
                vec![c, ctr("side", json!({}))],
                json!({"volumes": [{"name": "data"}]}),
            )
        };
        ok(with(ctr(
            "web",
            json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}]}),
        )));
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "logs", "containerPath": "/logs"}]}),
            )),
            &["Container 'web'", "sourceVolume 'logs'", "'data'"],
        );
        client(
            task(
                vec![ctr(
                    "web",
                    json!({"mountPoints": [{"sourceVolume": "logs", "containerPath": "/logs"}]}),
                )],
                json!({}),
            ),
            &["(none defined)"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"containerPath": "/x"}]}),
            )),
            &["Container 'web'", "mountPoints[0].sourceVolume"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "data"}]}),
            )),
            &["Container 'web'", "mountPoints[0].containerPath"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "data"}]}),
            )),
            &["Container 'web'", "containerPath 'data'", "absolute"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/d"}, {"sourceVolume": "data", "containerPath": "/d"}]}),
            )),
            &["containerPath '/d'", "more than one mount point"],
        );
        ok(with(ctr(
            "web",
            json!({"volumesFrom": [{"sourceContainer": "side"}]}),
        )));
        client(
            with(ctr(
                "web",
                json!({"volumesFrom": [{"sourceContainer": "nope"}]}),
            )),
            &["Container 'web'", "sourceContainer 'nope'", "'side'"],
        );
        client(
            with(ctr(
                "web",
                json!({"volumesFrom": [{"sourceContainer": "web"}]}),
            )),
            &["Container 'web'", "itself"],
        );
        client(
            with(ctr("web", json!({"volumesFrom": [{}]}))),
            &["volumesFrom[0].sourceContainer"],
        );
    }

    #[test]
    fn environment_and_environment_files() {
        client(
            one(json!({"environment": [{"value": "x"}]})),
            &["Container 'web'", "environment[0].name"],
        );
        client(
            one(json!({"environment": [{"name": "", "value": "x"}]})),
            &["environment[0].name"],
        );
        client(
            one(json!({"environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]})),
            &["Container 'web'", "environment variable 'A'", "unique"],
        );
        ok(one(json!({"environment": [{"name": "A"}]})));
        client(
            one(json!({"environmentFiles": [{"type": "s3"}]})),
            &["Container 'web'", "environmentFiles[0].value"],
        );
        client(
            one(json!({"environmentFiles": [{"value": "arn:aws:s3:::b/x.env"}]})),
            &["environmentFiles[0].type"],
        );
        client(
            one(json!({"environmentFiles": [{"type": "http", "value": "x"}]})),
            &["'http'", "s3"],
        );
        let files: Vec<Value> = (0..11)
            .map(|i| json!({"type": "s3", "value": format!("arn:aws:s3:::b/{i}.env")}))
            .collect();
        client(
            one(json!({"environmentFiles": files})),
            &["environmentFiles", "at most 10"],
        );
    }

    #[test]
    fn secrets_rules() {
        client(
            one(json!({"secrets": [{"name": "S"}]})),
            &["Container 'web'", "secrets[0].valueFrom"],
        );
        client(
            one(json!({"secrets": [{"valueFrom": "arn:x"}]})),
            &["secrets[0].name"],
        );
        client(
            one(
                json!({"secrets": [{"name": "S", "valueFrom": "a"}, {"name": "S", "valueFrom": "b"}]}),
            ),
            &["secrets name 'S'", "unique"],
        );
        let t = ok(one(
            json!({"secrets": [{"name": "S", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/s"}]}),
        ));
        assert!(attribute_names(&t).contains(&"ecs.capability.secrets.ssm.environment-variables"));
    }

    #[test]
    fn ulimit_rules() {
        let u = |v: Value| one(json!({"ulimits": v}));
        ok(u(
            json!([{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}, {"name": "memlock", "softLimit": -1, "hardLimit": -1}]),
        ));
        ok(u(
            json!([{"name": "core", "softLimit": 0, "hardLimit": -1}]),
        ));
        client(
            u(json!([{"name": "files", "softLimit": 1, "hardLimit": 1}])),
            &["Container 'web'", "'files'", "nofile"],
        );
        client(
            u(json!([{"name": "nofile", "softLimit": 10, "hardLimit": 5}])),
            &["Container 'web'", "softLimit (10)", "hardLimit (5)"],
        );
        client(
            u(json!([{"name": "nofile", "softLimit": -1, "hardLimit": 5}])),
            &["softLimit (-1)"],
        );
        client(
            u(json!([{"name": "nofile", "softLimit": -2, "hardLimit": 5}])),
            &["softLimit (-2)", "-1 for unlimited"],
        );
        client(
            u(json!([{"name": "nofile", "hardLimit": 5}])),
            &["ulimits[0].softLimit"],
        );
        client(
            u(json!([{"softLimit": 1, "hardLimit": 5}])),
            &["ulimits[0].name"],
        );
        client(
            u(
                json!([{"name": "nproc", "softLimit": 1, "hardLimit": 1}, {"name": "nproc", "softLimit": 2, "hardLimit": 2}]),
            ),
            &["ulimit 'nproc'", "more than once"],
        );
    }

    #[test]
    fn log_configuration_rules() {
        client(
            one(json!({"logConfiguration": {}})),
            &["Container 'web'", "logConfiguration.logDriver"],
        );
        client(
            one(json!({"logConfiguration": {"logDriver": "loki"}})),
            &["'loki'", "awslogs"],
        );
        client(
            one(json!({"logConfiguration": {"logDriver": "json-file", "options": {"": "x"}}})),
            &["options keys"],
        );
        client(
            one(
                json!({"logConfiguration": {"logDriver": "splunk", "secretOptions": [{"name": "token"}]}}),
            ),
            &["logConfiguration.secretOptions[0].valueFrom"],
        );
        client(
            one(json!({"logConfiguration": {"logDriver": "awsfirelens"}})),
            &["Container 'web'", "awsfirelens", "firelensConfiguration"],
        );
        client(
            one(json!({"firelensConfiguration": {"type": "vector"}})),
            &["Container 'web'", "'vector'", "fluentd, fluentbit"],
        );
        client(
            one(json!({"firelensConfiguration": {}})),
            &["firelensConfiguration.type"],
        );
        ok(task(
            vec![
                ctr(
                    "web",
                    json!({"logConfiguration": {"logDriver": "awsfirelens", "options": {"Name": "stdout"}}}),
                ),
                ctr(
                    "router",
                    json!({"firelensConfiguration": {"type": "fluentbit"}}),
                ),
            ],
            json!({}),
        ));
    }

    #[test]
    fn timeouts_are_not_negative() {
        client(
            one(json!({"stopTimeout": -1})),
            &["Container 'web'", "stopTimeout (-1)"],
        );
        client(
            one(json!({"startTimeout": -5})),
            &["Container 'web'", "startTimeout (-5)"],
        );
        ok(one(json!({"startTimeout": 0, "stopTimeout": 3600})));
    }

    #[test]
    fn restart_policy_rules() {
        let rp = |v: Value| one(json!({"restartPolicy": v}));
        ok(rp(
            json!({"enabled": true, "ignoredExitCodes": [0, 137], "restartAttemptPeriod": 60}),
        ));
        ok(rp(json!({"enabled": false, "restartAttemptPeriod": 1800})));
        client(
            rp(json!({"ignoredExitCodes": [1]})),
            &["Container 'web'", "restartPolicy.enabled"],
        );
        client(
            rp(json!({"enabled": true, "restartAttemptPeriod": 59})),
            &["restartAttemptPeriod (59)", "60 and 1800"],
        );
        client(
            rp(json!({"enabled": true, "restartAttemptPeriod": 1801})),
            &["restartAttemptPeriod (1801)"],
        );
        let codes: Vec<i32> = (0..51).collect();
        client(
            rp(json!({"enabled": true, "ignoredExitCodes": codes})),
            &["ignoredExitCodes", "at most 50"],
        );
    }

    #[test]
    fn system_controls_rules() {
        let sc =
            |v: Value, extra: Value| task(vec![ctr("web", json!({"systemControls": v}))], extra);
        ok(sc(
            json!([{"namespace": "net.core.somaxconn", "value": "1024"}, {"namespace": "kernel.shmmax", "value": "1"}, {"namespace": "fs.mqueue.msg_max", "value": "10"}]),
            json!({}),
        ));
        client(
            sc(json!([{"value": "1"}]), json!({})),
            &["Container 'web'", "systemControls[0].namespace"],
        );
        client(
            sc(
                json!([{"namespace": "net.ipv4.ip_forward", "value": ""}]),
                json!({}),
            ),
            &["systemControls[0].value"],
        );
        client(
            sc(
                json!([{"namespace": "vm.swappiness", "value": "1"}]),
                json!({}),
            ),
            &["'vm.swappiness'", "namespaced"],
        );
        client(
            sc(
                json!([{"namespace": "net.core.somaxconn", "value": "1"}]),
                json!({"networkMode": "host"}),
            ),
            &["Container 'web'", "net.core.somaxconn", "networkMode host"],
        );
        client(
            sc(
                json!([{"namespace": "kernel.sem", "value": "1"}]),
                json!({"ipcMode": "host"}),
            ),
            &["kernel.sem", "ipcMode host"],
        );
    }

    #[test]
    fn resource_requirements_rules() {
        let rr = |v: Value, extra: Value| {
            task(vec![ctr("web", json!({"resourceRequirements": v}))], extra)
        };
        ok(rr(json!([{"type": "GPU", "value": "2"}]), json!({})));
        ok(rr(json!([{"type": "GPU", "value": "ALL"}]), json!({})));
        client(
            rr(json!([{"type": "TPU", "value": "1"}]), json!({})),
            &["Container 'web'", "'TPU'", "GPU, InferenceAccelerator"],
        );
        client(
            rr(json!([{"value": "1"}]), json!({})),
            &["resourceRequirements[0].type"],
        );
        client(
            rr(json!([{"type": "GPU"}]), json!({})),
            &["resourceRequirements[0].value"],
        );
        for bad in ["0", "-1", "1.5", "two", "+1"] {
            client(
                rr(json!([{"type": "GPU", "value": bad}]), json!({})),
                &["Container 'web'", "GPU value", "whole number"],
            );
        }
        client(
            rr(
                json!([{"type": "GPU", "value": "1"}, {"type": "GPU", "value": "1"}]),
                json!({}),
            ),
            &["GPU more than once"],
        );
        client(
            rr(json!([{"type": "NeuronDevice", "value": "2"}]), json!({})),
            &["NeuronDevice", "ALL"],
        );
        client(
            rr(
                json!([{"type": "InferenceAccelerator", "value": "acc2"}]),
                json!({"inferenceAccelerators": [{"deviceName": "acc1", "deviceType": "eia2.medium"}]}),
            ),
            &["Container 'web'", "'acc2'", "'acc1'"],
        );
        ok(rr(
            json!([{"type": "InferenceAccelerator", "value": "acc1"}]),
            json!({"inferenceAccelerators": [{"deviceName": "acc1", "deviceType": "eia2.medium"}]}),
        ));
        let neuron = json!({"resourceRequirements": [{"type": "NeuronDevice", "value": "ALL"}]});
        client(
            task(vec![ctr("a", neuron.clone()), ctr("b", neuron)], json!({})),
            &["Only one container", "NeuronDevice", "'a', 'b'"],
        );
    }

    #[test]
    fn labels_extra_hosts_and_hostname() {
        client(
            one(json!({"dockerLabels": {"": "x"}})),
            &["Container 'web'", "dockerLabels keys"],
        );
        ok(one(
            json!({"dockerLabels": {"team": "web"}, "hostname": "web", "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}]}),
        ));
        client(
            one(json!({"extraHosts": [{"hostname": "db"}]})),
            &["Container 'web'", "extraHosts[0].ipAddress"],
        );
        client(
            one(json!({"extraHosts": [{"ipAddress": "10.0.0.5"}]})),
            &["extraHosts[0].hostname"],
        );
        let awsvpc = |extra: Value| task(vec![ctr("web", extra)], json!({"networkMode": "awsvpc"}));
        client(
            awsvpc(json!({"extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}]})),
            &["Container 'web'", "extraHosts", "awsvpc"],
        );
        client(
            awsvpc(json!({"hostname": "web"})),
            &["Container 'web'", "hostname", "awsvpc"],
        );
    }

    #[test]
    fn linux_parameters_rules() {
        let lp = |v: Value| one(json!({"linuxParameters": v}));
        ok(lp(json!({
            "capabilities": {"add": ["SYS_PTRACE", "NET_ADMIN"], "drop": ["ALL"]},
            "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["read", "write", "mknod"]}],
            "initProcessEnabled": true, "sharedMemorySize": 64,
            "tmpfs": [{"containerPath": "/run", "size": 64, "mountOptions": ["rw", "noexec", "mode=1777"]}],
            "maxSwap": 0, "swappiness": 0,
        })));
        client(
            lp(json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}})),
            &["Container 'web'", "'CAP_SYS_ADMIN'", "SYS_ADMIN"],
        );
        client(
            lp(json!({"capabilities": {"drop": ["sys_admin"]}})),
            &["capabilities.drop"],
        );
        client(
            lp(json!({"devices": [{"containerPath": "/dev/x"}]})),
            &["Container 'web'", "linuxParameters.devices[0].hostPath"],
        );
        client(
            lp(json!({"devices": [{"hostPath": "dev/x"}]})),
            &["hostPath 'dev/x'", "absolute"],
        );
        client(
            lp(json!({"devices": [{"hostPath": "/dev/x", "permissions": ["execute"]}]})),
            &["'execute'", "read, write, mknod"],
        );
        client(
            lp(json!({"tmpfs": [{"containerPath": "/run", "size": 0}]})),
            &["Container 'web'", "tmpfs[0].size (0)"],
        );
        client(
            lp(json!({"tmpfs": [{"containerPath": "/run"}]})),
            &["tmpfs[0].size"],
        );
        client(
            lp(json!({"tmpfs": [{"size": 1}]})),
            &["tmpfs[0].containerPath"],
        );
        client(
            lp(json!({"tmpfs": [{"containerPath": "/run", "size": 1, "mountOptions": ["fast"]}]})),
            &["'fast'", "mountOptions"],
        );
        client(
            lp(json!({"sharedMemorySize": 0})),
            &["sharedMemorySize (0)"],
        );
        client(lp(json!({"maxSwap": -1})), &["maxSwap (-1)"]);
        client(
            lp(json!({"swappiness": 101})),
            &["swappiness (101)", "0 and 100"],
        );
        client(lp(json!({"swappiness": -1})), &["swappiness (-1)"]);
    }

    #[test]
    fn other_container_members() {
        client(
            one(json!({"credentialSpecs": ["credentialspec:a", "credentialspec:b"]})),
            &["Container 'web'", "credentialSpecs", "at most 1"],
        );
        client(
            one(json!({"credentialSpecs": ["arn:aws:s3:::b/spec.json"]})),
            &["credentialspec:"],
        );
        ok(one(
            json!({"credentialSpecs": ["credentialspecdomainless:arn:aws:s3:::b/spec.json"]}),
        ));
        client(
            one(json!({"versionConsistency": "always"})),
            &["Container 'web'", "'always'", "enabled, disabled"],
        );
        client(
            one(json!({"repositoryCredentials": {}})),
            &[
                "Container 'web'",
                "repositoryCredentials.credentialsParameter",
            ],
        );
        let t = ok(one(
            json!({"repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:eu-west-1:1:secret:r"}}),
        ));
        assert!(
            attribute_names(&t)
                .contains(&"ecs.capability.private-registry-authentication.secretsmanager")
        );
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
