//! From an assignment (task definition, overrides, the ports the placement chose) to what a
//! runtime creates for each container, plus what the supervisor needs to sequence them.
//!
//! A pure function, so every rule of the translation (overrides win, host mode publishes the
//! container port, task-scoped volumes get the task's name...) is unit-tested without a
//! runtime.
//!
//! A task picks its runtime with the docker label `berth.runtime` (`docker`, `process` or
//! `hollow`) on its containers, which must agree; without it the agent's default applies. An
//! agent started with `--runtime hollow` runs every task hollow, whatever it asks for.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use berth_api::agent::Assignment;
use berth_api::types as api;

use crate::runtime::{
    ContainerSpec, HealthCheck, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_INSTANCE, LABEL_TASK, Link,
    Mount, MountSource, NetworkMode, PortBinding, Protocol, RuntimeKind, Ulimit,
};

/// The docker label that selects a task's runtime.
pub const RUNTIME_LABEL: &str = "berth.runtime";

/// How long a stop waits for SIGTERM to work when a container names no stopTimeout (the ECS
/// agent's default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A task, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    pub runtime: RuntimeKind,
    pub containers: Vec<ContainerPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    pub spec: ContainerSpec,
    pub essential: bool,
    pub depends_on: Vec<Dependency>,
    pub restart: Option<RestartPolicy>,
    /// The networkBindings to report once it runs.
    pub bindings: Vec<api::NetworkBinding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub container: String,
    pub condition: Condition,
}

/// ECS `dependsOn.condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The dependency has started.
    Start,
    /// The dependency has exited, with any code.
    Complete,
    /// The dependency has exited with code 0.
    Success,
    /// The dependency's health check passed.
    Healthy,
}

/// ECS `restartPolicy` of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    pub ignored_exit_codes: Vec<i32>,
    /// A container must have run this long before it is restarted again (ECS default 300s).
    pub attempt_period: Duration,
}

/// Where the agent runs and what it defaults to.
pub struct Host<'a> {
    pub instance_arn: &'a str,
    pub default_runtime: RuntimeKind,
    /// Every task runs on this runtime (a hollow agent).
    pub forced_runtime: Option<RuntimeKind>,
}

/// The name a runtime gives a task's container: stable, so a restarted agent finds it.
pub fn runtime_name(task_id: &str, container: &str) -> String {
    format!("berth-{task_id}-{container}")
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.map_or(default, |v| v.max(0) as u64))
}

/// Why a task cannot be planned: something in its task definition berth cannot run. The
/// message becomes the task's stoppedReason (after `CannotStartContainerError: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The task definition lists no container.
    #[error("the task definition has no containers")]
    NoContainers,
    /// A network mode other than bridge, host or none.
    #[error("networkMode {0} is not supported by berth")]
    NetworkMode(String),
    /// A mount point names a volume the task definition does not declare.
    #[error(
        "container {container} mounts volume '{volume}', which the task definition does not declare"
    )]
    UndeclaredVolume { container: String, volume: String },
    /// An EFS or FSx volume.
    #[error("volume {0}: EFS and FSx volumes are not supported by berth")]
    UnsupportedVolume(String),
    /// A `dependsOn` condition other than START, COMPLETE, SUCCESS and HEALTHY (or none).
    #[error("unknown dependsOn condition {0:?}")]
    UnknownCondition(Option<String>),
    /// The runtime label names no runtime.
    #[error(
        "docker label {label}={0} names no runtime; use docker, process or hollow",
        label = RUNTIME_LABEL
    )]
    UnknownRuntime(String),
    /// The containers' runtime labels disagree.
    #[error(
        "the containers of one task must use one runtime; {label} differs between them",
        label = RUNTIME_LABEL
    )]
    MixedRuntimes,
}

pub fn plan(a: &Assignment, host: &Host) -> Result<TaskPlan, PlanError> {
    let def = &a.task_definition;
    let definitions = def.container_definitions.as_deref().unwrap_or_default();
    if definitions.is_empty() {
        return Err(PlanError::NoContainers);
    }
    let runtime = match host.forced_runtime {
        Some(kind) => kind,
        None => runtime_of(definitions)?.unwrap_or(host.default_runtime),
    };
    let network_mode = match def.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => NetworkMode::Bridge,
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some(other) => return Err(PlanError::NetworkMode(other.to_owned())),
    };
    let volumes: HashMap<&str, &api::Volume> = def
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v.name.as_deref()?, v)))
        .collect();
    let overrides: HashMap<&str, &api::ContainerOverride> = a
        .overrides
        .iter()
        .flat_map(|o| o.container_overrides.iter().flatten())
        .filter_map(|o| Some((o.name.as_deref()?, o)))
        .collect();

    let mut containers = Vec::with_capacity(definitions.len());
    for d in definitions {
        let name = d.name.clone().unwrap_or_default();
        let o = overrides.get(name.as_str()).copied();
        let mut labels = d.docker_labels.clone().unwrap_or_default();
        labels.insert(LABEL_TASK.into(), a.task_arn.clone());
        labels.insert(LABEL_CONTAINER.into(), name.clone());
        labels.insert(LABEL_CLUSTER.into(), a.cluster.clone());
        labels.insert(LABEL_INSTANCE.into(), host.instance_arn.to_owned());
        // What ECS's agent labels containers with, for tools written against it.
        labels.insert("com.amazonaws.ecs.task-arn".into(), a.task_arn.clone());
        labels.insert("com.amazonaws.ecs.container-name".into(), name.clone());
        labels.insert("com.amazonaws.ecs.cluster".into(), a.cluster.clone());
        if let Some(family) = &def.family {
            labels.insert(
                "com.amazonaws.ecs.task-definition-family".into(),
                family.clone(),
            );
        }
        if let Some(revision) = def.revision {
            labels.insert(
                "com.amazonaws.ecs.task-definition-version".into(),
                revision.to_string(),
            );
        }

        let mut ports = Vec::new();
        let mut bindings = Vec::new();
        for p in a.ports.iter().filter(|p| p.container_name == name) {
            let protocol = if p.protocol == "udp" {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            let host_port = if network_mode == NetworkMode::Host {
                p.container_port
            } else {
                p.host_port
            };
            ports.push(PortBinding {
                container_port: p.container_port,
                host_port,
                protocol,
            });
            bindings.push(api::NetworkBinding {
                bind_ip: Some("0.0.0.0".into()),
                container_port: Some(p.container_port.into()),
                host_port: Some(host_port.into()),
                protocol: Some(protocol.as_str().into()),
                ..Default::default()
            });
        }

        let mut mounts = Vec::new();
        for m in d.mount_points.iter().flatten() {
            let source = m.source_volume.as_deref().unwrap_or_default();
            let volume = volumes
                .get(source)
                .ok_or_else(|| PlanError::UndeclaredVolume {
                    container: name.clone(),
                    volume: source.to_owned(),
                })?;
            mounts.push(Mount {
                source: mount_source(volume, &a.task_id, &a.task_arn)?,
                target: m.container_path.clone().unwrap_or_default(),
                read_only: m.read_only.unwrap_or(false),
            });
        }

        let links = d
            .links
            .iter()
            .flatten()
            .map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                Link {
                    runtime_name: runtime_name(&a.task_id, target),
                    alias: alias.to_owned(),
                }
            })
            .collect();

        let mut environment: Vec<(String, String)> = d
            .environment
            .iter()
            .flatten()
            .filter_map(|kv| Some((kv.name.clone()?, kv.value.clone().unwrap_or_default())))
            .collect();
        for kv in o.and_then(|o| o.environment.as_ref()).into_iter().flatten() {
            let Some(key) = &kv.name else { continue };
            let value = kv.value.clone().unwrap_or_default();
            match environment.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => environment.push((key.clone(), value)),
            }
        }

        let health_check = d.health_check.as_ref().map(|h| HealthCheck {
            command: h.command.clone().unwrap_or_default(),
            interval: seconds(h.interval, 30),
            timeout: seconds(h.timeout, 5),
            retries: h.retries.map_or(3, |r| r.max(0) as u32),
            start_period: seconds(h.start_period, 0),
        });

        let spec = ContainerSpec {
            runtime_name: runtime_name(&a.task_id, &name),
            task_arn: a.task_arn.clone(),
            cluster: a.cluster.clone(),
            container_name: name.clone(),
            image: d.image.clone().unwrap_or_default(),
            entry_point: d.entry_point.clone().unwrap_or_default(),
            command: o
                .and_then(|o| o.command.clone())
                .or_else(|| d.command.clone())
                .unwrap_or_default(),
            environment,
            working_directory: d.working_directory.clone(),
            user: d.user.clone(),
            hostname: d.hostname.clone(),
            labels,
            cpu_shares: o
                .and_then(|o| o.cpu)
                .or(d.cpu)
                .filter(|c| *c > 0)
                .map(i64::from),
            memory_mib: o.and_then(|o| o.memory).or(d.memory).map(i64::from),
            memory_reservation_mib: o
                .and_then(|o| o.memory_reservation)
                .or(d.memory_reservation)
                .map(i64::from),
            network_mode,
            ports,
            links,
            dns_servers: d.dns_servers.clone().unwrap_or_default(),
            dns_search_domains: d.dns_search_domains.clone().unwrap_or_default(),
            mounts,
            ulimits: d
                .ulimits
                .iter()
                .flatten()
                .map(|u| Ulimit {
                    name: u.name.clone().unwrap_or_default(),
                    soft: u.soft_limit.unwrap_or(0).into(),
                    hard: u.hard_limit.unwrap_or(0).into(),
                })
                .collect(),
            health_check,
            privileged: d.privileged.unwrap_or(false),
            read_only_root_filesystem: d.readonly_root_filesystem.unwrap_or(false),
            stop_timeout: d.stop_timeout.map_or(DEFAULT_STOP_TIMEOUT, |s| {
                Duration::from_secs(s.max(0) as u64)
            }),
            sandbox_dir: None,
        };

        let mut depends_on = Vec::new();
        for dep in d.depends_on.iter().flatten() {
            let condition = match dep.condition.as_deref() {
                Some("START") => Condition::Start,
                Some("COMPLETE") => Condition::Complete,
                Some("SUCCESS") => Condition::Success,
                Some("HEALTHY") => Condition::Healthy,
                other => return Err(PlanError::UnknownCondition(other.map(str::to_owned))),
            };
            depends_on.push(Dependency {
                container: dep.container_name.clone().unwrap_or_default(),
                condition,
            });
        }

        let restart = d
            .restart_policy
            .as_ref()
            .filter(|r| r.enabled == Some(true))
            .map(|r| RestartPolicy {
                ignored_exit_codes: r.ignored_exit_codes.clone().unwrap_or_default(),
                attempt_period: seconds(r.restart_attempt_period, 300),
            });

        containers.push(ContainerPlan {
            spec,
            essential: d.essential.unwrap_or(true),
            depends_on,
            restart,
            bindings,
        });
    }
    Ok(TaskPlan {
        runtime,
        containers,
    })
}

/// The runtime the containers ask for with [`RUNTIME_LABEL`], if any.
fn runtime_of(definitions: &[api::ContainerDefinition]) -> Result<Option<RuntimeKind>, PlanError> {
    let mut chosen: Option<RuntimeKind> = None;
    for d in definitions {
        let Some(value) = d.docker_labels.as_ref().and_then(|l| l.get(RUNTIME_LABEL)) else {
            continue;
        };
        let kind =
            RuntimeKind::parse(value).ok_or_else(|| PlanError::UnknownRuntime(value.clone()))?;
        if chosen.is_some_and(|c| c != kind) {
            return Err(PlanError::MixedRuntimes);
        }
        chosen = Some(kind);
    }
    Ok(chosen)
}

fn mount_source(
    volume: &api::Volume,
    task_id: &str,
    task_arn: &str,
) -> Result<MountSource, PlanError> {
    let name = volume.name.clone().unwrap_or_default();
    if let Some(path) = volume.host.as_ref().and_then(|h| h.source_path.as_ref()) {
        return Ok(MountSource::Bind(path.into()));
    }
    let task_scoped = |labels: BTreeMap<String, String>| {
        let mut labels = labels;
        labels.insert(LABEL_TASK.into(), task_arn.to_owned());
        labels
    };
    match &volume.docker_volume_configuration {
        Some(c) if c.scope.as_deref() == Some("shared") => Ok(MountSource::Volume {
            name,
            driver: c.driver.clone(),
            driver_opts: c.driver_opts.clone().unwrap_or_default(),
            labels: c.labels.clone().unwrap_or_default(),
        }),
        Some(c) => Ok(MountSource::Volume {
            name: format!("berth-{task_id}-{name}"),
            driver: c.driver.clone(),
            driver_opts: c.driver_opts.clone().unwrap_or_default(),
            labels: task_scoped(c.labels.clone().unwrap_or_default()),
        }),
        None if volume.efs_volume_configuration.is_some()
            || volume
                .fsx_windows_file_server_volume_configuration
                .is_some() =>
        {
            Err(PlanError::UnsupportedVolume(name))
        }
        // A volume with no source: an empty Docker volume that lives as long as the task.
        None => Ok(MountSource::Volume {
            name: format!("berth-{task_id}-{name}"),
            driver: None,
            driver_opts: BTreeMap::new(),
            labels: task_scoped(BTreeMap::new()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use berth_api::agent::AssignedPort;
    use serde_json::json;

    use super::*;

    fn assignment(definition: serde_json::Value, overrides: serde_json::Value) -> Assignment {
        Assignment {
            task_arn: "arn:aws:ecs:us-east-1:000000000000:task/c1/0123".into(),
            task_id: "0123".into(),
            cluster: "c1".into(),
            desired_status: "RUNNING".into(),
            last_status: "PENDING".into(),
            version: 7,
            started: false,
            task_definition: serde_json::from_value(definition).unwrap(),
            overrides: serde_json::from_value(overrides).unwrap(),
            ports: vec![AssignedPort {
                container_name: "web".into(),
                container_port: 80,
                host_port: 49160,
                protocol: "tcp".into(),
            }],
        }
    }

    fn host() -> Host<'static> {
        Host {
            instance_arn: "arn:aws:ecs:us-east-1:000000000000:container-instance/c1/ab",
            default_runtime: RuntimeKind::Docker,
            forced_runtime: None,
        }
    }

    fn web() -> serde_json::Value {
        json!({
            "family": "site", "revision": 3,
            "volumes": [
                {"name": "data", "host": {"sourcePath": "/srv/data"}},
                {"name": "scratch"},
                {"name": "cache", "dockerVolumeConfiguration": {"scope": "shared", "driver": "local"}}
            ],
            "containerDefinitions": [
                {"name": "web", "image": "busybox", "memory": 128, "memoryReservation": 64, "cpu": 256,
                 "command": ["httpd", "-f"], "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "portMappings": [{"containerPort": 80}],
                 "links": ["db:database"], "stopTimeout": 5,
                 "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true},
                                 {"sourceVolume": "scratch", "containerPath": "/scratch"},
                                 {"sourceVolume": "cache", "containerPath": "/cache"}],
                 "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
                 "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5},
                 "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}],
                 "dockerLabels": {"team": "web"}},
                {"name": "db", "image": "busybox", "memory": 64, "essential": false,
                 "restartPolicy": {"enabled": true, "ignoredExitCodes": [0]}}
            ]
        })
    }

    #[test]
    fn translates_a_container_definition() {
        let a = assignment(web(), json!(null));
        let plan = plan(&a, &host()).unwrap();
        assert_eq!(plan.runtime, RuntimeKind::Docker);
        let web = &plan.containers[0];
        let s = &web.spec;
        assert_eq!(s.runtime_name, "berth-0123-web");
        assert_eq!(s.command, ["httpd", "-f"]);
        assert_eq!(
            (s.memory_mib, s.memory_reservation_mib, s.cpu_shares),
            (Some(128), Some(64), Some(256))
        );
        assert_eq!(
            s.ports,
            [PortBinding {
                container_port: 80,
                host_port: 49160,
                protocol: Protocol::Tcp
            }]
        );
        assert_eq!(web.bindings[0].host_port, Some(49160));
        assert_eq!(
            s.links,
            [Link {
                runtime_name: "berth-0123-db".into(),
                alias: "database".into()
            }]
        );
        assert_eq!(s.stop_timeout, Duration::from_secs(5));
        assert_eq!(s.labels[LABEL_TASK], a.task_arn);
        assert_eq!(s.labels[LABEL_CONTAINER], "web");
        assert_eq!(s.labels["team"], "web");
        assert_eq!(s.labels["com.amazonaws.ecs.task-definition-version"], "3");
        assert_eq!(
            s.ulimits,
            [Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }]
        );
        let h = s.health_check.as_ref().unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.retries),
            (Duration::from_secs(5), Duration::from_secs(5), 3)
        );
        assert_eq!(s.mounts[0].source, MountSource::Bind("/srv/data".into()));
        assert!(s.mounts[0].read_only);
        assert!(
            matches!(&s.mounts[1].source, MountSource::Volume { name, .. } if name == "berth-0123-scratch")
        );
        assert!(
            matches!(&s.mounts[2].source, MountSource::Volume { name, driver, .. } if name == "cache" && driver.as_deref() == Some("local"))
        );
        assert!(web.essential);
        assert_eq!(
            web.depends_on,
            [Dependency {
                container: "db".into(),
                condition: Condition::Healthy
            }]
        );
        let db = &plan.containers[1];
        assert!(!db.essential);
        assert_eq!(db.spec.stop_timeout, DEFAULT_STOP_TIMEOUT);
        assert_eq!(
            db.restart,
            Some(RestartPolicy {
                ignored_exit_codes: vec![0],
                attempt_period: Duration::from_secs(300)
            })
        );
    }

    #[test]
    fn overrides_win() {
        let a = assignment(
            web(),
            json!({"containerOverrides": [{"name": "web", "command": ["sh"], "memory": 256, "cpu": 512,
                    "environment": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]}]}),
        );
        let s = &plan(&a, &host()).unwrap().containers[0].spec;
        assert_eq!(s.command, ["sh"]);
        assert_eq!((s.memory_mib, s.cpu_shares), (Some(256), Some(512)));
        assert_eq!(
            s.environment,
            [
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "3".into())
            ]
        );
    }

    #[test]
    fn host_mode_publishes_the_container_port() {
        let mut def = web();
        def["networkMode"] = json!("host");
        let s = &plan(&assignment(def, json!(null)), &host())
            .unwrap()
            .containers[0]
            .spec;
        assert_eq!(s.network_mode, NetworkMode::Host);
        assert_eq!(s.ports[0].host_port, 80);
    }

    #[test]
    fn the_runtime_label_selects_the_runtime() {
        let mut def = web();
        def["containerDefinitions"][0]["dockerLabels"][RUNTIME_LABEL] = json!("process");
        def["containerDefinitions"][1]["dockerLabels"] = json!({RUNTIME_LABEL: "process"});
        assert_eq!(
            plan(&assignment(def.clone(), json!(null)), &host())
                .unwrap()
                .runtime,
            RuntimeKind::Process
        );
        let hollow = Host {
            forced_runtime: Some(RuntimeKind::Hollow),
            ..host()
        };
        assert_eq!(
            plan(&assignment(def.clone(), json!(null)), &hollow)
                .unwrap()
                .runtime,
            RuntimeKind::Hollow
        );
        def["containerDefinitions"][1]["dockerLabels"][RUNTIME_LABEL] = json!("docker");
        let err = plan(&assignment(def.clone(), json!(null)), &host()).unwrap_err();
        assert!(err.to_string().contains("one runtime"), "{err}");
        def["containerDefinitions"][1]["dockerLabels"][RUNTIME_LABEL] = json!("vm");
        let err = plan(&assignment(def, json!(null)), &host()).unwrap_err();
        assert!(err.to_string().contains("names no runtime"), "{err}");
    }

    #[test]
    fn unsupported_settings_are_refused_with_a_reason() {
        let mut def = web();
        def["networkMode"] = json!("awsvpc");
        let err = plan(&assignment(def, json!(null)), &host()).unwrap_err();
        assert!(err.to_string().contains("awsvpc"), "{err}");
        let mut def = web();
        def["containerDefinitions"][0]["mountPoints"] =
            json!([{"sourceVolume": "nope", "containerPath": "/x"}]);
        let err = plan(&assignment(def, json!(null)), &host()).unwrap_err();
        assert!(err.to_string().contains("'nope'"), "{err}");
    }
}
