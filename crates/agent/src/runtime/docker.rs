//! The Docker runtime: a Docker Engine driven through bollard.
//!
//! It maps a [`ContainerSpec`] onto the Engine API the way the ECS agent maps a container
//! definition onto `docker create`, so a task definition behaves here as it does on ECS:
//!
//! - Host-path volumes become `HostConfig.Binds` rather than `Mounts` of type bind: Docker then
//!   creates a missing host directory, as ECS documents for `host.sourcePath`, where a bind
//!   `Mount` would refuse it (its `CreateMountpoint` option needs API 1.42, Docker 23).
//! - Named volumes are created first, with the task definition's driver, options and labels,
//!   and only when missing: an existing volume (shared or left by an earlier task) is reused.
//! - Ports are published only in bridge mode; in host mode the container binds host ports
//!   itself. Every container logs through `json-file`, which is what [`Runtime::logs`] reads.
//! - Error messages start with the names ECS gives them (`CannotPullContainerError`,
//!   `CannotCreateContainerError`, ...) because they end up in a task's `stoppedReason`.
//! - The image digest is the registry digest when the image has one, else the image id, both
//!   from `prepare_image` and from `inspect`, so the two agree.
//!
//! The connection follows `DOCKER_HOST` (the local socket by default) and settles on the
//! engine's API version, so an older engine (20.10 speaks API 1.41) is fine: nothing here
//! needs more than 1.41. bollard's request timeout covers waiting for a response's headers,
//! so the calls that answer only at the end (`stop`) get their own, longer, timeout, while
//! `wait` and followed `logs` stream and are not bounded by it.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::path::Path;
use std::pin::pin;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HealthConfig,
    HealthStatusEnum, HostConfig, HostConfigLogConfig, ImageInspect, Mount as DockerMount,
    MountType, PortBinding as DockerPortBinding, PortMap, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptions,
};
use futures::StreamExt;

use super::{
    ContainerSpec, ContainerState, Existing, Health, LABEL_CONTAINER, LABEL_TASK, LogStream,
    MountSource, NetworkMode, Runtime, RuntimeError, RuntimeKind,
};

/// How long connecting waits for the engine to answer its ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// A Docker Engine reached through its local socket (or `DOCKER_HOST`).
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connects and pings the engine; [`RuntimeError::Unavailable`] when there is none.
    pub async fn connect() -> Result<DockerRuntime, RuntimeError> {
        let unavailable = |err: DockerError| {
            RuntimeError::Unavailable(format!("Docker is unavailable: {}", describe(&err)))
        };
        let docker = Docker::connect_with_defaults().map_err(unavailable)?;
        let timeout = docker.timeout();
        let docker = docker.with_timeout(PING_TIMEOUT);
        docker.ping().await.map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        Ok(DockerRuntime {
            docker: docker.with_timeout(timeout),
        })
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse, RuntimeError> {
        self.docker
            .inspect_container(id, None)
            .await
            .map_err(|err| container_error("CannotInspectContainerError", id, &err))
    }

    /// The state of an inspected container, with the digest of the image it runs.
    async fn state_of(&self, details: ContainerInspectResponse) -> ContainerState {
        let image_digest = match details.image {
            Some(image_id) => match self.docker.inspect_image(&image_id).await {
                Ok(image) => image_digest(&image),
                Err(_) => Some(image_id),
            },
            None => None,
        };
        let state = details.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let finished = state
            .finished_at
            .as_deref()
            .is_some_and(|at| !at.is_empty() && !at.starts_with("0001-01-01"));
        let exited = !running
            && match state.status {
                Some(ContainerStateStatusEnum::EXITED) => true,
                Some(ContainerStateStatusEnum::DEAD) => finished,
                _ => false,
            };
        let health = match state.health.and_then(|health| health.status) {
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
            _ => Health::None,
        };
        ContainerState {
            running,
            exited,
            exit_code: state.exit_code.filter(|_| exited).map(exit_code),
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|error| !error.is_empty()),
            health,
            image_digest,
        }
    }

    /// Creates the named volume unless it exists.
    async fn ensure_volume(
        &self,
        name: &str,
        driver: &Option<String>,
        driver_opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(err) if status_of(&err) == Some(404) => {}
            Err(err) => {
                return Err(RuntimeError::Failed(format!(
                    "CannotCreateContainerError: cannot inspect volume '{name}': {}",
                    describe(&err)
                )));
            }
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: driver.clone(),
            driver_opts: Some(to_hash_map(driver_opts)),
            labels: Some(to_hash_map(labels)),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|err| {
                RuntimeError::Failed(format!(
                    "CannotCreateContainerError: cannot create volume '{name}': {}",
                    describe(&err)
                ))
            })
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        let version = self.docker.version().await.map_err(|err| {
            RuntimeError::Failed(format!("cannot read Docker's version: {}", describe(&err)))
        })?;
        Ok(format!(
            "Docker {}",
            version.version.as_deref().unwrap_or("(unknown version)")
        ))
    }

    async fn prepare_image(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(found) => return Ok(image_digest(&found)),
            Err(err) if status_of(&err) == Some(404) => {}
            Err(err) => {
                return Err(RuntimeError::Failed(format!(
                    "CannotPullContainerError: cannot inspect image '{image}': {}",
                    describe(&err)
                )));
            }
        }
        // Without a tag Docker would pull every tag of the repository.
        let reference = with_default_tag(image);
        let options = CreateImageOptionsBuilder::new()
            .from_image(&reference)
            .build();
        let mut pull = pin!(self.docker.create_image(Some(options), None, None));
        while let Some(progress) = pull.next().await {
            if let Err(err) = progress {
                return Err(RuntimeError::ImageUnavailable(format!(
                    "CannotPullContainerError: image '{image}' is not present on this host and could not be pulled: {}",
                    describe(&err)
                )));
            }
        }
        let pulled = self.docker.inspect_image(&reference).await.map_err(|err| {
            RuntimeError::ImageUnavailable(format!(
                "CannotPullContainerError: image '{image}' was pulled but cannot be inspected: {}",
                describe(&err)
            ))
        })?;
        Ok(image_digest(&pulled))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut binds = Vec::new();
        let mut mounts = Vec::new();
        for mount in &spec.mounts {
            match &mount.source {
                MountSource::Bind(path) => binds.push(bind(path, &mount.target, mount.read_only)?),
                MountSource::Volume {
                    name,
                    driver,
                    driver_opts,
                    labels,
                } => {
                    self.ensure_volume(name, driver, driver_opts, labels)
                        .await?;
                    mounts.push(DockerMount {
                        target: Some(mount.target.clone()),
                        source: Some(name.clone()),
                        typ: Some(MountType::VOLUME),
                        read_only: Some(mount.read_only),
                        ..Default::default()
                    });
                }
            }
        }
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.runtime_name)
            .build();
        let config = container_config(spec, binds, mounts);
        match self.docker.create_container(Some(options), config).await {
            Ok(created) => Ok(created.id),
            Err(err) => Err(match status_of(&err) {
                Some(409) => RuntimeError::Failed(format!(
                    "CannotCreateContainerError: a container named '{}' already exists: {}",
                    spec.runtime_name,
                    describe(&err)
                )),
                Some(404) if describe(&err).contains("No such image") => {
                    RuntimeError::ImageUnavailable(format!(
                        "CannotPullContainerError: image '{}' is not present on this host: {}",
                        spec.image,
                        describe(&err)
                    ))
                }
                _ => {
                    RuntimeError::Failed(format!("CannotCreateContainerError: {}", describe(&err)))
                }
            }),
        }
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        // No ECS error name here: the supervisor reports a failed start as
        // `CannotStartContainerError: <why>` for every runtime.
        self.docker
            .start_container(id, None)
            .await
            .map_err(|err| docker_error(id, &err))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let details = self.inspect_container(id).await?;
        Ok(self.state_of(details).await)
    }

    async fn wait(&self, id: &str) -> Result<i32, RuntimeError> {
        let mut waiting = pin!(self.docker.wait_container(id, None::<WaitContainerOptions>));
        match waiting.next().await {
            Some(Ok(response)) => Ok(exit_code(response.status_code)),
            // bollard turns a non-zero exit code into this error.
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(exit_code(code)),
            Some(Err(err)) => Err(container_error("CannotInspectContainerError", id, &err)),
            None => self.inspect(id).await?.exit_code.ok_or_else(|| {
                RuntimeError::Failed(format!(
                    "Docker ended the wait for container {id} before it exited"
                ))
            }),
        }
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let options = StopContainerOptionsBuilder::new()
            .t(seconds_rounded_up(timeout))
            .build();
        // Docker answers once the container has exited, which may take the whole timeout.
        let docker = self
            .docker
            .clone()
            .with_timeout(self.docker.timeout() + timeout);
        docker
            .stop_container(id, Some(options))
            .await
            .map_err(|err| container_error("CannotStopContainerError", id, &err))
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(false)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if status_of(&err) == Some(404) => Ok(()),
            Err(err) => Err(RuntimeError::Failed(format!(
                "CannotRemoveContainerError: {}",
                describe(&err)
            ))),
        }
    }

    async fn list(&self) -> Result<Vec<Existing>, RuntimeError> {
        let filters = HashMap::from([("label", vec![LABEL_TASK])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|err| {
                RuntimeError::Failed(format!("cannot list Docker containers: {}", describe(&err)))
            })?;
        let mut found = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|summary| summary.id) {
            let details = match self.inspect_container(&id).await {
                Ok(details) => details,
                // Removed since it was listed.
                Err(RuntimeError::NotFound(_)) => continue,
                Err(err) => return Err(err),
            };
            let runtime_name = details
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let labels: BTreeMap<String, String> = details
                .config
                .as_ref()
                .and_then(|config| config.labels.clone())
                .unwrap_or_default()
                .into_iter()
                .collect();
            let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
            let (task_arn, container_name) = (label(LABEL_TASK), label(LABEL_CONTAINER));
            found.push(Existing {
                id,
                runtime_name,
                task_arn,
                container_name,
                labels,
                state: self.state_of(details).await,
            });
        }
        Ok(found)
    }

    async fn logs(&self, id: &str, follow: bool) -> Result<LogStream, RuntimeError> {
        // Docker reports a missing container inside the stream; report it here instead.
        self.inspect_container(id).await?;
        let options = LogsOptionsBuilder::new()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .timestamps(false)
            .build();
        let id = id.to_string();
        let stream = self.docker.logs(&id, Some(options)).map(move |output| {
            output
                .map(LogOutput::into_bytes)
                .map_err(|err| container_error("CannotReadLogsError", &id, &err))
        });
        Ok(stream.boxed())
    }
}

/// The create request for `spec`, its bind mounts and volume mounts already resolved.
fn container_config(
    spec: &ContainerSpec,
    binds: Vec<String>,
    mounts: Vec<DockerMount>,
) -> ContainerCreateBody {
    let mut exposed_ports = Vec::new();
    let mut port_bindings = PortMap::new();
    if spec.network_mode == NetworkMode::Bridge {
        for port in &spec.ports {
            let key = format!("{}/{}", port.container_port, port.protocol.as_str());
            if !exposed_ports.contains(&key) {
                exposed_ports.push(key.clone());
            }
            port_bindings
                .entry(key)
                .or_insert(None)
                .get_or_insert_with(Vec::new)
                .push(DockerPortBinding {
                    host_ip: Some("0.0.0.0".to_string()),
                    host_port: Some(port.host_port.to_string()),
                });
        }
    }
    let network_mode = match spec.network_mode {
        NetworkMode::Bridge => "bridge",
        NetworkMode::Host => "host",
        NetworkMode::None => "none",
    };
    let links = spec
        .links
        .iter()
        .map(|link| format!("{}:{}", link.runtime_name, link.alias))
        .collect();
    let ulimits = spec
        .ulimits
        .iter()
        .map(|ulimit| ResourcesUlimits {
            name: Some(ulimit.name.clone()),
            soft: Some(ulimit.soft),
            hard: Some(ulimit.hard),
        })
        .collect();
    let host_config = HostConfig {
        // The kernel's minimum weight is 2; ECS passes 0 and 1 as 2 as well.
        cpu_shares: spec.cpu_shares.map(|shares| shares.max(2)),
        memory: spec.memory_mib.map(mib_to_bytes),
        memory_reservation: spec.memory_reservation_mib.map(mib_to_bytes),
        network_mode: Some(network_mode.to_string()),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        links: non_empty(links),
        dns: non_empty(spec.dns_servers.clone()),
        dns_search: non_empty(spec.dns_search_domains.clone()),
        binds: non_empty(binds),
        mounts: non_empty(mounts),
        ulimits: non_empty(ulimits),
        privileged: Some(spec.privileged),
        readonly_rootfs: Some(spec.read_only_root_filesystem),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_string()),
            config: None,
        }),
        ..Default::default()
    };
    let healthcheck = spec.health_check.as_ref().map(|check| HealthConfig {
        test: Some(check.command.clone()),
        interval: Some(nanoseconds(check.interval)),
        timeout: Some(nanoseconds(check.timeout)),
        retries: Some(i64::from(check.retries)),
        start_period: Some(nanoseconds(check.start_period)),
        start_interval: None,
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(spec.entry_point.clone()),
        cmd: non_empty(spec.command.clone()),
        env: non_empty(
            spec.environment
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
        ),
        working_dir: spec.working_directory.clone(),
        user: spec.user.clone(),
        hostname: spec.hostname.clone(),
        labels: Some(to_hash_map(&spec.labels)),
        exposed_ports: non_empty(exposed_ports),
        healthcheck,
        stop_timeout: Some(i64::from(seconds_rounded_up(spec.stop_timeout))),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// A `Binds` entry, `source:target[:ro]`, for a host path.
fn bind(source: &Path, target: &str, read_only: bool) -> Result<String, RuntimeError> {
    let Some(source_text) = source.to_str() else {
        return Err(RuntimeError::Unsupported(format!(
            "bind mount source {} is not valid UTF-8",
            source.display()
        )));
    };
    if !source.is_absolute() {
        return Err(RuntimeError::Unsupported(format!(
            "bind mount source '{source_text}' is not an absolute path"
        )));
    }
    if source_text.contains(':') || target.contains(':') {
        return Err(RuntimeError::Unsupported(format!(
            "bind mount '{source_text}' -> '{target}' contains ':', which Docker's bind syntax cannot express"
        )));
    }
    let mode = if read_only { ":ro" } else { "" };
    Ok(format!("{source_text}:{target}{mode}"))
}

/// `image` with `:latest` added when it names neither a tag nor a digest.
fn with_default_tag(image: &str) -> String {
    let last_component = image.rsplit_once('/').map_or(image, |(_, name)| name);
    if image.contains('@') || last_component.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The registry digest of an image (`sha256:...`) when it came from a registry, else its id.
fn image_digest(image: &ImageInspect) -> Option<String> {
    image
        .repo_digests
        .as_ref()
        .and_then(|digests| digests.first())
        .and_then(|digest| digest.split_once('@'))
        .map(|(_, digest)| digest.to_string())
        .or_else(|| image.id.clone())
}

/// A container call's error: Docker's 404 is [`RuntimeError::NotFound`], the rest `Failed`
/// under the ECS error name `what`.
fn container_error(what: &str, id: &str, err: &DockerError) -> RuntimeError {
    match docker_error(id, err) {
        RuntimeError::Failed(why) => RuntimeError::Failed(format!("{what}: {why}")),
        other => other,
    }
}

/// Docker's answer about container `id`, without an ECS error name.
fn docker_error(id: &str, err: &DockerError) -> RuntimeError {
    if status_of(err) == Some(404) {
        RuntimeError::NotFound(id.to_string())
    } else {
        RuntimeError::Failed(describe(err))
    }
}

fn status_of(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker's own message for an error it reported, else the error with its causes.
fn describe(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => {
            let mut text = other.to_string();
            let mut source = other.source();
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(i32::MAX)
}

fn seconds_rounded_up(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

fn nanoseconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn mib_to_bytes(mib: i64) -> i64 {
    mib.saturating_mul(1024 * 1024)
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}
