//! Between Mesos and berth: a TaskInfo becomes a berth task definition and task, a berth task
//! becomes a Mesos TaskStatus, an instance's free capacity becomes an offer's resources.
//!
//! Mesos tasks are ordinary berth tasks: their definition is registered in family
//! `mesos-<framework name>` (an identical revision is reused), their group is
//! `mesos:<framework name>`, `startedBy` is the framework id, and the framework's own task id
//! is kept in the tag [`TASK_ID_TAG`]. A berth task id is derived from the framework id and
//! the Mesos task id, so the same Mesos task always maps to the same berth task.

use std::collections::BTreeMap;

use berth_api::types as api;
use berth_mesos::resources::{cpus_to_cpu_units, mem_to_mib};
use berth_mesos::v1::{
    self, AgentId, Attribute, ContainerType, DockerNetwork, Reason, Resource, StatusSource,
    TaskInfo, TaskState,
};
use berth_mesos::{RangeSet, Resources};
use berth_model::entity::{ContainerInstance, Task, TaskStatus as Status};
use berth_model::{InstanceId, TaskId};
use berth_state::Usage;

/// The tag holding a task's Mesos task id.
pub const TASK_ID_TAG: &str = "mesos-task-id";

/// The host ports berth offers to frameworks, as a Mesos agent does by default.
pub const OFFERED_PORTS: std::ops::RangeInclusive<u16> = 31000..=32000;

/// Most ports one offer holds (the lowest free ones): an offer's ports are held like a task's,
/// each in the instance's accounting, and a thousand per offer per tick is what made offers
/// expensive at 1,000 instances. A framework needing more on one agent gets them over several
/// offers.
pub const PORTS_PER_OFFER: usize = 100;

/// Seconds between the kill signal and SIGKILL when the task names no kill policy (a Mesos
/// agent's default grace period).
const DEFAULT_GRACE_SECS: i64 = 3;

/// The image name a plain command task is registered with (it runs as a host process).
const COMMAND_IMAGE: &str = "berth/mesos-command";

/// The berth task id of Mesos task `task` of `framework`: a stable 128-bit FNV-1a digest.
pub fn task_id(framework: &str, task: &str) -> TaskId {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in framework.bytes().chain([0]).chain(task.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    TaskId(h)
}

/// The Mesos task id of a berth task launched by a framework.
pub fn mesos_task_id(task: &Task) -> Option<&str> {
    task.tags
        .iter()
        .find(|t| t.key == TASK_ID_TAG)
        .map(|t| t.value.as_str())
}

/// A family name from a framework name: letters, digits, hyphens and underscores.
pub fn family(framework_name: &str) -> String {
    let clean: String = framework_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    format!("mesos-{clean}")
}

/// The task definition a TaskInfo runs as: one container `task`, the task's CPU and memory,
/// its command, environment, image and port mappings. A plain command runs on the process
/// runtime, host networking, its ports passed as PORT0..n; a docker container runs on Docker.
pub fn definition(
    family: &str,
    info: &TaskInfo,
    needs: &Resources,
) -> api::RegisterTaskDefinitionRequest {
    let command = info.command.clone().unwrap_or_default();
    let mut container = api::ContainerDefinition {
        name: Some("task".into()),
        cpu: Some(cpus_to_cpu_units(needs.cpus) as i32),
        memory: Some(mem_to_mib(needs.mem).max(4) as i32),
        essential: Some(true),
        // The kill policy's grace period, within what ECS allows (2 to 120 s).
        stop_timeout: Some(
            info.kill_policy
                .as_ref()
                .and_then(|k| k.grace_period.as_ref())
                .map_or(DEFAULT_GRACE_SECS, |g| g.nanoseconds / 1_000_000_000)
                .clamp(2, 120) as i32,
        ),
        ..Default::default()
    };
    let run: Vec<String> = match (command.shell(), command.value.clone()) {
        (true, Some(value)) => vec!["sh".into(), "-c".into(), value],
        (false, Some(value)) => std::iter::once(value)
            .chain(command.arguments.iter().cloned())
            .collect(),
        (_, None) => command.arguments.clone(),
    };
    if !run.is_empty() {
        container.command = Some(run);
    }
    let env: Vec<api::KeyValuePair> = command
        .environment
        .as_ref()
        .map(|e| {
            e.pairs()
                .map(|(k, v)| api::KeyValuePair {
                    name: Some(k.to_owned()),
                    value: Some(v.to_owned()),
                })
                .collect()
        })
        .unwrap_or_default();
    if !env.is_empty() {
        container.environment = Some(env);
    }
    let ports: Vec<u16> = needs.ports.ports().collect();
    let docker = info
        .container
        .as_ref()
        .filter(|c| c.r#type == ContainerType::Docker)
        .and_then(|c| c.docker.as_ref());
    let network_mode = match docker {
        Some(d) => {
            container.image = Some(d.image.clone());
            // Carried over, so the framework's principal needs the permission for it.
            container.privileged = d.privileged.filter(|p| *p);
            match d.network() {
                DockerNetwork::Bridge | DockerNetwork::User => {
                    container.port_mappings = Some(
                        d.port_mappings
                            .iter()
                            .map(|m| api::PortMapping {
                                container_port: Some(m.container_port as i32),
                                host_port: Some(m.host_port as i32),
                                protocol: Some(
                                    if m.protocol.as_deref() == Some("udp") {
                                        "udp"
                                    } else {
                                        "tcp"
                                    }
                                    .into(),
                                ),
                                ..Default::default()
                            })
                            .collect(),
                    );
                    "bridge"
                }
                DockerNetwork::None => "none",
                DockerNetwork::Host => {
                    container.port_mappings = host_ports(&ports);
                    "host"
                }
            }
        }
        None => {
            container.image = Some(COMMAND_IMAGE.into());
            container.docker_labels = Some(BTreeMap::from([(
                "berth.runtime".to_owned(),
                "process".to_owned(),
            )]));
            container.port_mappings = host_ports(&ports);
            "host"
        }
    };
    api::RegisterTaskDefinitionRequest {
        family: Some(family.to_owned()),
        network_mode: Some(network_mode.into()),
        container_definitions: Some(vec![container]),
        ..Default::default()
    }
}

/// Host-mode port mappings that hold `ports` (containerPort = hostPort).
fn host_ports(ports: &[u16]) -> Option<Vec<api::PortMapping>> {
    (!ports.is_empty()).then(|| {
        ports
            .iter()
            .map(|p| api::PortMapping {
                container_port: Some(i32::from(*p)),
                host_port: Some(i32::from(*p)),
                protocol: Some("tcp".into()),
                ..Default::default()
            })
            .collect()
    })
}

/// The agent id of an instance: its berth id.
pub fn agent_id(instance: InstanceId) -> AgentId {
    AgentId::new(instance.to_string())
}

/// What an instance has free, as an offer's resources: CPU, memory, and up to
/// [`PORTS_PER_OFFER`] free ports of [`OFFERED_PORTS`].
pub fn free(instance: &ContainerInstance, usage: Option<&Usage>) -> (i64, i64, Vec<u16>) {
    let empty = Usage::default();
    let usage = usage.unwrap_or(&empty);
    let ports = OFFERED_PORTS
        .filter(|p| !instance.resources.ports.contains(p))
        .filter(|p| !usage.holds(berth_model::entity::Protocol::Tcp, *p))
        .take(PORTS_PER_OFFER)
        .collect();
    (
        instance.resources.cpu - usage.cpu,
        instance.resources.memory - usage.memory,
        ports,
    )
}

/// An offer's resources on the wire.
pub fn offer_resources(cpu: i64, memory: i64, ports: &[u16]) -> Vec<Resource> {
    let mut set = RangeSet::new();
    for p in ports {
        set.insert(u64::from(*p), u64::from(*p));
    }
    let mut out = vec![
        Resource::scalar("cpus", cpu as f64 / 1024.0),
        Resource::scalar("mem", memory as f64),
    ];
    if !set.is_empty() {
        out.push(Resource::ranges("ports", set.ranges().iter().copied()));
    }
    out
}

/// An instance's attributes as Mesos TEXT attributes.
pub fn attributes(instance: &ContainerInstance) -> Vec<Attribute> {
    instance
        .attributes
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| Attribute::text(k.clone(), v.clone())))
        .collect()
}

/// The Mesos state of a berth task, with the reason and message a framework reads.
pub fn status_of(task: &Task) -> (TaskState, Option<Reason>, Option<String>) {
    match task.last_status {
        Status::Provisioning | Status::Pending | Status::Activating => {
            let state = if task.pull_started_at.is_some() {
                TaskState::Starting
            } else {
                TaskState::Staging
            };
            (state, None, None)
        }
        Status::Running | Status::Deactivating | Status::Stopping | Status::Deprovisioning => {
            (TaskState::Running, None, None)
        }
        Status::Stopped => {
            let exit = task
                .containers
                .iter()
                .find(|c| c.essential)
                .and_then(|c| c.exit_code);
            let message = task.stopped_reason.clone();
            match task.stop_code.as_deref() {
                Some("UserInitiated" | "ServiceSchedulerInitiated") => {
                    (TaskState::Killed, None, message)
                }
                Some("TerminationNotice") => (TaskState::Lost, Some(Reason::AgentRemoved), message),
                Some("TaskFailedToStart") => (
                    TaskState::Failed,
                    Some(Reason::ContainerLaunchFailed),
                    message,
                ),
                _ if exit == Some(0) => (TaskState::Finished, None, message),
                _ => (
                    TaskState::Failed,
                    Some(Reason::CommandExecutorFailed),
                    Some(match exit {
                        Some(code) => format!("Command exited with status {code}"),
                        None => message.unwrap_or_else(|| "The task failed".into()),
                    }),
                ),
            }
        }
    }
}

/// A TaskStatus for `task` (its Mesos id `mesos_id`), from the master.
pub fn status(
    mesos_id: &str,
    task: Option<&Task>,
    state: TaskState,
    reason: Option<Reason>,
    message: Option<String>,
) -> v1::TaskStatus {
    let mut s = v1::TaskStatus::new(v1::TaskId::new(mesos_id), state);
    s.reason = reason;
    s.message = message;
    s.source = Some(StatusSource::Master);
    s.agent_id = task.and_then(|t| t.instance).map(agent_id);
    s.timestamp = Some(berth_model::Millis::now().as_epoch_seconds());
    s
}
