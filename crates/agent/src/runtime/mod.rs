//! Runtimes: one interface over the ways a host can run a container definition.
//!
//! - [`docker::DockerRuntime`]: a Docker Engine through bollard, the default.
//! - [`process::ProcessRuntime`]: host process groups, for hosts without Docker and for Mesos
//!   command tasks. A small shim process (`berth process-shim`) owns each process group, so the
//!   exit status survives an agent restart.
//! - [`hollow::HollowRuntime`]: runs nothing; containers "run" until stopped, for scale tests.
//!
//! The agent's supervisor drives every runtime through the same calls in the same order
//! (`prepare_image` → `create` → `start` → `wait`/`inspect` → `stop` → `remove`), and one
//! conformance suite (`crates/cli/tests/runtime_conformance.rs`) holds all three to the same
//! behaviour. Everything a runtime creates carries the [`LABEL_TASK`] and [`LABEL_CONTAINER`]
//! labels, which is how a restarted agent finds what it started before ([`Runtime::list`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub mod docker;
pub mod hollow;
pub mod process;

/// Label naming the task ARN a container belongs to.
pub const LABEL_TASK: &str = "com.berth.task-arn";
/// Label naming the container (its name in the task definition).
pub const LABEL_CONTAINER: &str = "com.berth.container-name";
/// Label naming the cluster of the task.
pub const LABEL_CLUSTER: &str = "com.berth.cluster";
/// Label naming the container instance whose agent started the container: agents sharing one
/// Docker engine (tests, several hollow or process agents on a host) leave each other alone.
pub const LABEL_INSTANCE: &str = "com.berth.instance-arn";

/// Which runtime a task runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuntimeKind {
    Docker,
    Process,
    Hollow,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
            RuntimeKind::Hollow => "hollow",
        }
    }

    pub fn parse(s: &str) -> Option<RuntimeKind> {
        match s {
            "docker" => Some(RuntimeKind::Docker),
            "process" => Some(RuntimeKind::Process),
            "hollow" => Some(RuntimeKind::Hollow),
            _ => None,
        }
    }
}

/// Everything a runtime needs to create one container, already resolved from the task
/// definition, the task's overrides and its placement (host ports, volume sources).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    /// The name the runtime gives the container (Docker container name, shim directory):
    /// unique per task and container, stable across agent restarts.
    pub runtime_name: String,
    pub task_arn: String,
    pub cluster: String,
    /// The container's name in the task definition.
    pub container_name: String,
    pub image: String,
    /// Replaces the image's entrypoint when not empty.
    pub entry_point: Vec<String>,
    /// Replaces the image's command when not empty.
    pub command: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// dockerLabels plus berth's own labels ([`LABEL_TASK`], [`LABEL_CONTAINER`], ...).
    pub labels: BTreeMap<String, String>,
    /// Relative CPU weight (ECS `cpu`, Docker CpuShares). `None`: the runtime's default.
    pub cpu_shares: Option<i64>,
    /// Hard memory limit in MiB.
    pub memory_mib: Option<i64>,
    /// Soft memory reservation in MiB.
    pub memory_reservation_mib: Option<i64>,
    pub network_mode: NetworkMode,
    /// Ports to publish, with the host port the placement chose (bridge mode) or equal to
    /// the container port (host mode).
    pub ports: Vec<PortBinding>,
    /// Links to other containers of the same task (bridge mode only).
    pub links: Vec<Link>,
    /// DNS servers the container resolves with (ECS `dnsServers`; Docker only). Service
    /// discovery: an agent answering on port 53 of the Docker bridge's address, then the
    /// host's resolver for other names.
    pub dns_servers: Vec<String>,
    /// DNS search domains (ECS `dnsSearchDomains`; Docker only).
    pub dns_search_domains: Vec<String>,
    pub mounts: Vec<Mount>,
    pub ulimits: Vec<Ulimit>,
    pub health_check: Option<HealthCheck>,
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    /// How long a stop waits after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// Where the process runtime keeps the container's sandbox (working directory default,
    /// logs, exit status). Other runtimes ignore it.
    pub sandbox_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    #[default]
    Bridge,
    Host,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// A link to another container of the task: its runtime name and the alias to see it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub runtime_name: String,
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub source: MountSource,
    /// Path inside the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MountSource {
    /// A host path (ECS `host.sourcePath`).
    Bind(PathBuf),
    /// A named Docker volume, created with this driver, options and labels if missing.
    Volume {
        name: String,
        driver: Option<String>,
        driver_opts: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// ECS `healthCheck`: `command` starts with `CMD` or `CMD-SHELL`, as in Docker.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// A container's health as its runtime sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Health {
    /// No health check is defined.
    #[default]
    None,
    /// Checks have not settled yet (Docker's "starting").
    Starting,
    Healthy,
    Unhealthy,
}

/// What [`Runtime::inspect`] sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerState {
    /// Started and not yet exited.
    pub running: bool,
    /// Has exited (after having been started). `exit_code` is set with it.
    pub exited: bool,
    pub exit_code: Option<i32>,
    /// Killed by the kernel's OOM killer.
    pub oom_killed: bool,
    /// Why it failed to start or exited abnormally, in the runtime's words.
    pub error: Option<String>,
    pub health: Health,
    /// The image's digest as the runtime knows it (`sha256:...`), when it has one.
    pub image_digest: Option<String>,
}

/// A container found by [`Runtime::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub id: String,
    pub runtime_name: String,
    pub task_arn: String,
    pub container_name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
}

/// A stream of log bytes (stdout and stderr interleaved as written).
pub type LogStream = BoxStream<'static, Result<Bytes, RuntimeError>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The image is neither present nor pullable. The message says which and why, in words
    /// fit for a task's stoppedReason.
    #[error("{0}")]
    ImageUnavailable(String),
    /// No container with that id (or name).
    #[error("no such container: {0}")]
    NotFound(String),
    /// The spec asks for something this runtime cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The runtime is not reachable (no Docker daemon, ...).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else the runtime reported.
    #[error("{0}")]
    Failed(String),
}

/// One way of running containers. All calls are idempotent where the words allow: stopping
/// a stopped container and removing a removed one succeed.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    fn kind(&self) -> RuntimeKind;

    /// A one-line description for registration attributes and logs ("Docker 20.10.24").
    async fn version(&self) -> Result<String, RuntimeError>;

    /// Makes `image` available: uses it when present locally, pulls it when it is not and
    /// a registry can be reached, else fails with [`RuntimeError::ImageUnavailable`].
    /// Returns the image digest when known.
    async fn prepare_image(&self, image: &str) -> Result<Option<String>, RuntimeError>;

    /// Creates the container without starting it and returns its runtime id. Creating a
    /// `runtime_name` that already exists fails.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    async fn start(&self, id: &str) -> Result<(), RuntimeError>;

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError>;

    /// Resolves with the exit code once the container has exited (at once if it already
    /// has). Cancel-safe: dropping the future leaves the container alone.
    async fn wait(&self, id: &str) -> Result<i32, RuntimeError>;

    /// SIGTERM (or the image's stop signal), then SIGKILL once `timeout` has passed.
    /// Returns when the container has exited.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;

    /// Removes a stopped container and what it alone used (anonymous volumes, sandbox).
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    /// Every container carrying [`LABEL_TASK`], running or not.
    async fn list(&self) -> Result<Vec<Existing>, RuntimeError>;

    /// The container's output so far; with `follow`, then everything it writes until it
    /// exits.
    async fn logs(&self, id: &str, follow: bool) -> Result<LogStream, RuntimeError>;
}
