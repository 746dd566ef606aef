//! The agent's life: register the host, serve its logs, long-poll assignments, and keep one
//! supervisor per task.
//!
//! The reconcile step compares three views: what the server assigns (the poll), what the
//! agent supervises (its map), and, once at start-up, what the runtimes hold (labelled
//! containers). A task the server assigns and nobody supervises gets a supervisor, which
//! adopts its containers if the runtime still has them; a supervised task whose desired status
//! turns STOPPED, or that the server no longer assigns, is told to stop; a labelled container
//! whose task is not assigned any more is stopped and removed.
//!
//! ```text
//!  first start:  join token ──POST /v1/agent/join (signed with the token)──► own credential,
//!                bound to one container instance; kept in <data-dir>/agent.json (0600)
//!  every start:  RegisterContainerInstance as that instance, signed with its own credential
//! ```
//! The agent's identity (its container instance ARN and credential) is kept in `--data-dir`,
//! so a restarted agent re-registers as the same instance without the token; a process that
//! runs thousands of agents keeps their identities together instead ([`IdentityStore`]). The log
//! endpoint speaks TLS with a certificate made at start and registered by its hash
//! ([`crate::listener`]), and answers only requests signed with that same credential, which
//! only this agent and the servers (which hold it sealed) have.
//!
//! Many agents can share one process (`berth-fleet`, which simulates thousands of hosts):
//! then they share one connection pool ([`AgentConfig::transport`], multiplexed over HTTP/2),
//! and serve no logs ([`AgentConfig::serve_logs`]), so ten thousand of them cost a few dozen
//! sockets rather than three each. Each still signs as its own instance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_api::agent::{
    AGENT_LOGS_PATH, AGENT_SIGNING_NAME, Assignment, CAPACITY_PROVIDER_ATTRIBUTE,
    CERTIFICATE_ATTRIBUTE, ENDPOINT_ATTRIBUTE, JoinRequest, host_of,
};
use berth_api::types as api;
use berth_auth::{JoinToken, SecretKey};
use berth_client::{Credentials, Transport, Trust};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{Client, ClientError};
use crate::dns::{DnsServer, SharedZones};
use crate::endpoints::{Endpoints, EndpointsError};
use crate::listener::LogTls;
use crate::metrics::AgentMetrics;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::hollow::HollowRuntime;
use crate::runtime::process::ProcessRuntime;
use crate::runtime::{Existing, LABEL_INSTANCE, Runtime, RuntimeKind};
use crate::task::{DockerUnavailable, Runtimes, Shared, supervise};

/// Ports ECS reserves on every instance: SSH, the Docker daemon, the ECS agent.
pub const DEFAULT_RESERVED_PORTS: &[u16] = &[22, 2375, 2376, 51678, 51679];

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The cluster's servers, `http://host:port` or `https://host:port` (at least one). The
    /// agent talks to one at a time and moves on to the next when it fails
    /// ([`crate::endpoints`]).
    pub servers: Vec<String>,
    pub cluster: String,
    /// Custom attributes to register.
    pub attributes: Vec<(String, String)>,
    /// The capacity provider the instance belongs to: registered as the
    /// `ecs.capacity-provider` attribute, which is how berth knows a provider's instances.
    pub capacity_provider: Option<String>,
    /// Where the agent keeps its identity and process sandboxes.
    pub data_dir: PathBuf,
    /// `None`: Docker when reachable, else host processes. `Some(Hollow)`: every task hollow.
    pub runtime: Option<RuntimeKind>,
    /// Where the agent serves container logs to the server.
    pub listen: SocketAddr,
    /// Whether the agent serves its containers' logs at all. Without, it binds no listener
    /// and registers no log endpoint, and the server answers a request for those logs with an
    /// error that says so: `berth-fleet`'s hollow agents, thousands to a process, each with
    /// nothing to show, would otherwise hold a listening socket apiece.
    pub serve_logs: bool,
    /// The address the server reaches `listen` at (default: derived from `listen`).
    pub advertise: Option<String>,
    pub availability_zone: Option<String>,
    /// CPU units to register (default: cores × 1024).
    pub cpu: Option<i64>,
    /// Memory in MiB to register (default: the host's, minus `reserved_memory_mib`).
    pub memory_mib: Option<i64>,
    pub reserved_memory_mib: i64,
    pub reserved_ports: Vec<u16>,
    /// How long one poll waits for a change; also the heartbeat period.
    pub poll_wait: Duration,
    /// How long a finished task's containers are kept for their logs.
    pub cleanup_wait: Duration,
    /// The program that is the process runtime's shim (the `berth` binary).
    pub shim: PathBuf,
    /// The join token, for an agent that has not joined yet.
    pub token: Option<JoinToken>,
    /// The CA certificate(s) to trust for an `https://` server (PEM), when no join token pins
    /// one.
    pub ca_pem: Option<Vec<u8>>,
    /// The connection pool to reach the servers through, when the agent shares one with
    /// others in the same process (it must trust what the join token pins, or `ca_pem`).
    /// `None`: the agent makes its own.
    pub transport: Option<Transport>,
    /// Where the agent keeps its identity. `None`: `<data-dir>/agent.json`.
    pub identities: Option<Arc<dyn IdentityStore>>,
    /// Where it answers DNS for service discovery (UDP and TCP). `None`: it does not.
    pub dns_listen: Option<SocketAddr>,
}

impl AgentConfig {
    pub fn new(server: impl Into<String>, data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            servers: vec![server.into()],
            cluster: "default".into(),
            attributes: Vec::new(),
            capacity_provider: None,
            data_dir: data_dir.into(),
            runtime: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            serve_logs: true,
            advertise: None,
            availability_zone: None,
            cpu: None,
            memory_mib: None,
            reserved_memory_mib: 0,
            reserved_ports: DEFAULT_RESERVED_PORTS.to_vec(),
            poll_wait: Duration::from_secs(10),
            cleanup_wait: Duration::from_secs(600),
            shim: std::env::current_exe().unwrap_or_else(|_| "berth".into()),
            token: None,
            ca_pem: None,
            transport: None,
            identities: None,
            dns_listen: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Setup(String),
    /// The servers the agent was given: none, or one that is not a server URL.
    #[error(transparent)]
    Servers(#[from] EndpointsError),
    /// The server's refusal is the error's source: error reports print the chain, so the
    /// message does not repeat it.
    #[error("registering with {server}")]
    Register { server: String, source: ClientError },
    #[error("container instance {0} was deregistered; the agent stops")]
    Deregistered(String),
    #[error(
        "this agent has not joined {0} yet (or its credential was revoked): start it with \
         --token, from `berth join-token create` run by an admin"
    )]
    NotJoined(String),
    #[error("joining through {server}")]
    Join { server: String, source: ClientError },
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Where an agent keeps its [`Identity`] between starts.
///
/// An agent on its own host keeps it in `<data-dir>/agent.json`, written and fsynced when it
/// joins. `berth-fleet` runs ten thousand agents in one process, and one file and one fsync
/// each made registering them take a minute (issue 18): it keeps them all in one file,
/// written once.
pub trait IdentityStore: std::fmt::Debug + Send + Sync {
    /// The identity saved before, if any (the agent checks it is for its cluster).
    fn load(&self) -> Option<Identity>;
    /// Keeps the identity the agent has just joined with.
    fn save(&self, identity: &Identity) -> Result<(), IdentityError>;
}

/// An identity could not be kept.
#[derive(Debug, thiserror::Error)]
#[error("saving the agent's identity to {place}")]
pub struct IdentityError {
    /// Where it was to go.
    pub place: String,
    #[source]
    pub source: std::io::Error,
}

/// The default store: one file, only its user can read it.
#[derive(Debug)]
struct IdentityFile(PathBuf);

impl IdentityStore for IdentityFile {
    fn load(&self) -> Option<Identity> {
        std::fs::read(&self.0)
            .ok()
            .and_then(|b| serde_json::from_slice::<Identity>(&b).ok())
    }

    fn save(&self, identity: &Identity) -> Result<(), IdentityError> {
        let bytes = serde_json::to_vec_pretty(identity).map_err(std::io::Error::from);
        bytes
            .and_then(|b| write_private(&self.0, &b))
            .map_err(|source| IdentityError {
                place: self.0.display().to_string(),
                source,
            })
    }
}

/// Writes `bytes` to `path` readable by its owner only, durably: a temporary file, fsynced,
/// renamed over it.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
}

/// What the agent keeps across restarts: its instance and the credential bound to it (kept
/// where only its user can read it: it holds the instance's secret).
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    cluster: String,
    container_instance_arn: String,
    access_key_id: String,
    secret_access_key: String,
    /// SHA-256 (hex) of the server CA the join token pinned, when the server speaks TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_sha256: Option<String>,
}

/// Everything but the secret.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cluster", &self.cluster)
            .field("container_instance_arn", &self.container_instance_arn)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            secret: SecretKey::new(self.secret_access_key.clone()),
        }
    }

    fn trust(&self, config: &AgentConfig) -> Result<Trust, AgentError> {
        match &self.ca_sha256 {
            Some(hex) => berth_auth::token::decode_hex(hex)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(Trust::Pinned)
                .ok_or_else(|| {
                    AgentError::Setup(format!("the saved CA hash '{hex}' is malformed"))
                }),
            None => trust_without_pin(config),
        }
    }
}

fn trust_without_pin(config: &AgentConfig) -> Result<Trust, AgentError> {
    match &config.ca_pem {
        Some(pem) => Trust::from_pem(pem).map_err(|e| AgentError::Setup(e.to_string())),
        None => Ok(Trust::PlainHttp),
    }
}

/// The agent's own credential: saved from an earlier join, or got now with the join token
/// from whichever of `endpoints` answers. A CA the token pins holds for all of them: the
/// servers of a cluster share its CA.
async fn identity(
    config: &AgentConfig,
    endpoints: &Endpoints,
) -> Result<(Identity, Transport), AgentError> {
    let file;
    let store: &dyn IdentityStore = match &config.identities {
        Some(store) => &**store,
        None => {
            file = IdentityFile(config.data_dir.join("agent.json"));
            &file
        }
    };
    let transport_for = |trust: Trust| match &config.transport {
        Some(shared) => Ok(shared.clone()),
        None => Transport::new(&trust).map_err(|e| AgentError::Setup(e.to_string())),
    };
    if let Some(saved) = store.load().filter(|i| i.cluster == config.cluster) {
        let transport = transport_for(saved.trust(config)?)?;
        return Ok((saved, transport));
    }
    let Some(token) = &config.token else {
        return Err(AgentError::NotJoined(config.cluster.clone()));
    };
    let trust = match token.ca_sha256 {
        Some(pin) => Trust::Pinned(pin),
        None => trust_without_pin(config)?,
    };
    let transport = transport_for(trust)?;
    let joiner = Client::new(
        transport.clone(),
        endpoints.clone(),
        &Credentials {
            access_key_id: token.id.clone(),
            secret: token.secret.clone(),
        },
    );
    let mut delay = Duration::from_millis(200);
    let joined = loop {
        match joiner
            .join(&JoinRequest {
                cluster: config.cluster.clone(),
            })
            .await
        {
            Ok(r) => break r,
            Err(e) if e.is_transient() && delay < Duration::from_secs(10) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(source) => {
                return Err(AgentError::Join {
                    server: joiner.base(),
                    source,
                });
            }
        }
    };
    let identity = Identity {
        cluster: joined.cluster,
        container_instance_arn: joined.container_instance_arn,
        access_key_id: joined.access_key_id,
        secret_access_key: joined.secret_access_key,
        ca_sha256: token.ca_sha256.map(|h| berth_auth::token::encode_hex(&h)),
    };
    store.save(&identity)?;
    Ok((identity, transport))
}

/// A started agent.
pub struct Agent {
    pub instance_arn: String,
    /// The Docker engine's version, or why Docker is unavailable.
    pub docker: Result<String, DockerUnavailable>,
    /// The runtime tasks get when they ask for none.
    pub default_runtime: RuntimeKind,
    /// Where the agent serves logs (`https://host:port`), unless it serves none.
    pub endpoint: Option<String>,
    /// Container starts and runtime latency, for `/metrics`.
    pub metrics: AgentMetrics,
    /// Where it answers DNS, if it does.
    pub dns: Option<SocketAddr>,
    task: JoinHandle<Result<(), AgentError>>,
    logs: Option<JoinHandle<()>>,
    /// The DNS server and the loop that keeps its answers current.
    dns_tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Connects the runtimes, registers the host and starts polling.
    pub async fn start(mut config: AgentConfig) -> Result<Agent, AgentError> {
        let endpoints = Endpoints::new(&config.servers)?;
        // Sandboxes and shims outlive the working directory they were started from (the
        // process shim changes to `/`): every path below the data directory is absolute.
        config.data_dir = std::path::absolute(&config.data_dir).map_err(|e| {
            AgentError::Setup(format!("resolving {}: {e}", config.data_dir.display()))
        })?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            AgentError::Setup(format!("creating {}: {e}", config.data_dir.display()))
        })?;
        let docker: Result<Arc<dyn Runtime>, DockerUnavailable> =
            if config.runtime == Some(RuntimeKind::Hollow) {
                Err(DockerUnavailable::Hollow)
            } else {
                DockerRuntime::connect()
                    .await
                    .map(|d| Arc::new(d) as Arc<dyn Runtime>)
                    .map_err(DockerUnavailable::from)
            };
        let docker_version = match &docker {
            Ok(d) => d.version().await.map_err(DockerUnavailable::from),
            Err(why) => Err(why.clone()),
        };
        let default_runtime = match config.runtime {
            Some(RuntimeKind::Docker) if docker.is_err() => {
                return Err(AgentError::Setup(format!(
                    "--runtime docker, but {}",
                    docker_version
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                )));
            }
            Some(kind) => kind,
            None if docker.is_ok() => RuntimeKind::Docker,
            None => RuntimeKind::Process,
        };
        let metrics = AgentMetrics::default();
        let runtimes = Runtimes {
            docker: docker.map(|d| metrics.measure(d)),
            process: metrics.measure(Arc::new(ProcessRuntime::new(
                config.shim.clone(),
                config.data_dir.join("sandboxes"),
            ))),
            hollow: metrics.measure(Arc::new(HollowRuntime::new())),
        };

        let log_endpoint = if config.serve_logs {
            Some(LogEndpoint::bind(&config).await?)
        } else {
            None
        };

        // Service discovery is a convenience beside the agent's job: a port that is taken is
        // a warning, not a reason to leave the host's tasks unmanaged.
        let zones = SharedZones::default();
        let dns_server = match config.dns_listen {
            Some(listen) => match DnsServer::bind(listen, zones.clone()).await {
                Ok(server) => Some(server),
                Err(e) => {
                    tracing::warn!(%listen, error = %e, "not answering DNS: binding failed");
                    None
                }
            },
            None => None,
        };

        let (identity, transport) = identity(&config, &endpoints).await?;
        let client = Client::new(transport.clone(), endpoints, &identity.credentials());
        let instance_arn = register(
            &client,
            &config,
            &identity,
            log_endpoint.as_ref(),
            &docker_version,
            &runtimes,
            default_runtime,
        )
        .await?;
        let shared = Arc::new(Shared {
            client,
            transport,
            credentials: identity.credentials(),
            instance_arn: instance_arn.clone(),
            runtimes,
            default_runtime,
            forced_runtime: (config.runtime == Some(RuntimeKind::Hollow))
                .then_some(RuntimeKind::Hollow),
            cleanup_wait: config.cleanup_wait,
            containers: Mutex::new(HashMap::new()),
        });
        let endpoint = log_endpoint.as_ref().map(|e| e.url.clone());
        let logs = log_endpoint.map(|e| {
            let app = logs_router(shared.clone());
            tokio::spawn(e.tls.serve(e.listener, app))
        });
        let dns = dns_server.as_ref().map(|d| d.local);
        let dns_tasks = match dns_server {
            Some(server) => vec![
                tokio::spawn(server.run()),
                tokio::spawn(crate::dns::follow(shared.client.clone(), zones)),
            ],
            None => Vec::new(),
        };
        // The loop keeps what it uses, not the whole configuration: a fleet runs ten thousand
        // of these loops, and every byte of one is paid ten thousand times (issue 18).
        let task = tokio::spawn(poll_loop(shared, config.cluster, config.poll_wait));
        Ok(Agent {
            instance_arn,
            docker: docker_version,
            default_runtime,
            endpoint,
            metrics,
            dns,
            task,
            logs,
            dns_tasks,
        })
    }

    /// Runs until the agent fails (it was deregistered). Containers keep running when the agent
    /// stops, as with ECS's agent; a restarted agent re-attaches to them.
    pub async fn wait(self) -> Result<(), AgentError> {
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(AgentError::Setup(format!("the agent's loop ended: {e}"))),
        };
        for task in self.logs.iter().chain(&self.dns_tasks) {
            task.abort();
        }
        result
    }

    /// Stops polling and serving logs; running containers are left alone.
    pub fn shutdown(&self) {
        self.task.abort();
        for task in self.logs.iter().chain(&self.dns_tasks) {
            task.abort();
        }
    }
}

/// Where the agent serves logs: its listener, the URL servers reach it at, and its TLS
/// identity, registered with the instance.
struct LogEndpoint {
    listener: tokio::net::TcpListener,
    url: String,
    port: u16,
    tls: LogTls,
}

impl LogEndpoint {
    async fn bind(config: &AgentConfig) -> Result<LogEndpoint, AgentError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| AgentError::Setup(format!("binding {}: {e}", config.listen)))?;
        let local = listener
            .local_addr()
            .map_err(|e| AgentError::Setup(e.to_string()))?;
        let advertised = config
            .advertise
            .clone()
            .unwrap_or_else(|| local.to_string());
        let tls = LogTls::generate(host_of(&advertised))?;
        Ok(LogEndpoint {
            listener,
            url: format!("https://{advertised}"),
            port: local.port(),
            tls,
        })
    }
}

fn host_memory_mib() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn int_resource(name: &str, value: i64) -> api::Resource {
    api::Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: Some(value.clamp(0, i32::MAX as i64) as i32),
        ..Default::default()
    }
}

fn ports_resource(name: &str, ports: &[u16]) -> api::Resource {
    api::Resource {
        name: Some(name.into()),
        r#type: Some("STRINGSET".into()),
        string_set_value: Some(ports.iter().map(u16::to_string).collect()),
        ..Default::default()
    }
}

async fn register(
    client: &Client,
    config: &AgentConfig,
    identity: &Identity,
    log_endpoint: Option<&LogEndpoint>,
    docker_version: &Result<String, DockerUnavailable>,
    runtimes: &Runtimes,
    default_runtime: RuntimeKind,
) -> Result<String, AgentError> {
    // Only when not given: it reads the cgroup's CPU quota, which ten thousand agents of one
    // fleet, all given `cpu`, would otherwise read ten thousand times.
    let cpu = config.cpu.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get()) as i64 * 1024
    });
    let memory = config
        .memory_mib
        .unwrap_or_else(|| host_memory_mib().unwrap_or(1024) - config.reserved_memory_mib);
    let mut reserved = config.reserved_ports.clone();
    if let Some(port) = log_endpoint.map(|e| e.port)
        && !reserved.contains(&port)
        && config.listen.port() != 0
    {
        reserved.push(port);
    }
    reserved.sort_unstable();

    let mut attributes: BTreeMap<String, String> = BTreeMap::new();
    attributes.insert("ecs.os-type".into(), "linux".into());
    attributes.insert(
        "ecs.cpu-architecture".into(),
        match std::env::consts::ARCH {
            "aarch64" => "arm64".into(),
            other => other.into(),
        },
    );
    // No log endpoint, no attributes: the server then knows the instance serves no logs.
    if let Some(e) = log_endpoint {
        attributes.insert(ENDPOINT_ATTRIBUTE.into(), e.url.clone());
        attributes.insert(
            CERTIFICATE_ATTRIBUTE.into(),
            berth_auth::token::encode_hex(&e.tls.certificate_sha256),
        );
    }
    // One attribute per runtime the agent can run, for memberOf constraints
    // (`attribute:berth.runtime.process exists`), and the default's name.
    for kind in [
        RuntimeKind::Docker,
        RuntimeKind::Process,
        RuntimeKind::Hollow,
    ] {
        if runtimes.get(kind).is_ok() {
            attributes.insert(format!("berth.runtime.{}", kind.as_str()), String::new());
        }
    }
    attributes.insert(
        "berth.default-runtime".into(),
        default_runtime.as_str().into(),
    );
    attributes.insert(
        "ecs.capability.container-health-check".into(),
        String::new(),
    );
    attributes.insert("ecs.capability.container-ordering".into(), String::new());
    if docker_version.is_ok() {
        for api_version in ["1.17", "1.18", "1.19", "1.21", "1.25"] {
            attributes.insert(
                format!("com.amazonaws.ecs.capability.docker-remote-api.{api_version}"),
                String::new(),
            );
        }
        attributes.insert(
            "com.amazonaws.ecs.capability.logging-driver.json-file".into(),
            String::new(),
        );
    }
    for (k, v) in &config.attributes {
        attributes.insert(k.clone(), v.clone());
    }
    if let Some(provider) = &config.capacity_provider {
        attributes.insert(CAPACITY_PROVIDER_ATTRIBUTE.into(), provider.clone());
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let mut document = serde_json::json!({ "instanceId": hostname });
    if let Some(az) = &config.availability_zone {
        document["availabilityZone"] = az.clone().into();
    }

    let request = api::RegisterContainerInstanceRequest {
        cluster: Some(config.cluster.clone()),
        instance_identity_document: Some(document.to_string()),
        total_resources: Some(vec![
            int_resource("CPU", cpu),
            int_resource("MEMORY", memory),
            ports_resource("PORTS", &reserved),
            ports_resource("PORTS_UDP", &[]),
        ]),
        version_info: Some(api::VersionInfo {
            agent_version: Some(env!("CARGO_PKG_VERSION").into()),
            agent_hash: None,
            docker_version: docker_version.as_ref().ok().cloned(),
        }),
        container_instance_arn: Some(identity.container_instance_arn.clone()),
        attributes: Some(
            attributes
                .into_iter()
                .map(|(name, value)| api::Attribute {
                    name: Some(name),
                    value: (!value.is_empty()).then_some(value),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let mut delay = Duration::from_millis(200);
    let response: api::RegisterContainerInstanceResponse = loop {
        match client.ecs("RegisterContainerInstance", &request).await {
            Ok(r) => break r,
            Err(e) if e.is_unrecognized() => {
                return Err(AgentError::NotJoined(config.cluster.clone()));
            }
            Err(e) if e.is_transient() && delay < Duration::from_secs(10) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(source) => {
                return Err(AgentError::Register {
                    server: client.base(),
                    source,
                });
            }
        }
    };
    let arn = response
        .container_instance
        .and_then(|i| i.container_instance_arn)
        .ok_or_else(|| AgentError::Setup("RegisterContainerInstance returned no ARN".into()))?;
    Ok(arn)
}

/// A supervised task: how to tell it to stop, and whether it has ended.
struct Supervised {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// What the runtimes hold for this instance, by task ARN.
async fn holdings(shared: &Shared) -> HashMap<String, Vec<(RuntimeKind, Existing)>> {
    let mut out: HashMap<String, Vec<(RuntimeKind, Existing)>> = HashMap::new();
    for kind in [
        RuntimeKind::Docker,
        RuntimeKind::Process,
        RuntimeKind::Hollow,
    ] {
        let Ok(runtime) = shared.runtimes.get(kind) else {
            continue;
        };
        match runtime.list().await {
            Ok(list) => {
                for e in list {
                    if e.labels.get(LABEL_INSTANCE) == Some(&shared.instance_arn) {
                        out.entry(e.task_arn.clone()).or_default().push((kind, e));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(runtime = kind.as_str(), error = %e, "listing containers failed")
            }
        }
    }
    out
}

/// Where to poll, as DiscoverPollEndpoint says (as ECS's agent asks); the server the agent
/// was given when the answer is unusable. A berth server names itself, so an agent given
/// several servers polls through all of them, failing over as every other call does, rather
/// than stay with the one that happened to answer.
async fn discover(shared: &Shared, cluster: &str) -> Client {
    let request = api::DiscoverPollEndpointRequest {
        cluster: Some(cluster.to_owned()),
        container_instance: Some(shared.instance_arn.clone()),
    };
    let answer = shared
        .client
        .ecs::<_, api::DiscoverPollEndpointResponse>("DiscoverPollEndpoint", &request)
        .await;
    if shared.client.server_count() > 1 {
        return shared.client.clone();
    }
    let named = match &answer {
        Ok(api::DiscoverPollEndpointResponse {
            endpoint: Some(endpoint),
            ..
        }) => Endpoints::new(&[endpoint]).ok(),
        _ => None,
    };
    match named {
        // The server the agent was given names itself: the same client will do, rather than
        // a second copy of it per agent (a fleet holds ten thousand).
        Some(endpoints) if shared.client.calls(&endpoints) => shared.client.clone(),
        Some(endpoints) => shared.client.at(shared.transport.clone(), endpoints),
        None => {
            tracing::warn!(
                ?answer,
                "DiscoverPollEndpoint gave no usable endpoint; polling the server"
            );
            shared.client.clone()
        }
    }
}

/// The containers of a task no longer assigned, found at start-up (it ended, or was stopped or
/// forgotten, while the agent was away): stopped if still running, their logs served for
/// `--cleanup-wait` as a supervised task's are, then removed.
fn retire(shared: &Arc<Shared>, task_arn: &str, containers: Vec<(RuntimeKind, Existing)>) {
    tracing::info!(task = %task_arn, "retiring the containers of a task that is no longer assigned");
    let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn).to_owned();
    for (kind, e) in containers {
        let Ok(runtime) = shared.runtimes.get(kind) else {
            continue;
        };
        let runtime = runtime.clone();
        let key = (task_id.clone(), e.container_name.clone());
        shared
            .containers
            .lock()
            .expect("containers lock")
            .insert(key.clone(), (kind, e.id.clone()));
        let shared = shared.clone();
        tokio::spawn(async move {
            if e.state.running
                && let Err(err) = runtime.stop(&e.id, Duration::from_secs(30)).await
            {
                tracing::warn!(container = %e.id, error = %err, "stopping failed");
            }
            tokio::time::sleep(shared.cleanup_wait).await;
            if let Err(err) = runtime.remove(&e.id).await {
                tracing::debug!(container = %e.id, error = %err, "removing a finished container failed");
            }
            shared
                .containers
                .lock()
                .expect("containers lock")
                .remove(&key);
        });
    }
}

async fn poll_loop(
    shared: Arc<Shared>,
    cluster: String,
    poll_wait: Duration,
) -> Result<(), AgentError> {
    let mut supervised: HashMap<String, Supervised> = HashMap::new();
    // Found in the runtimes at start-up, not yet claimed by a supervisor.
    let mut found = holdings(&shared).await;
    let mut first = true;
    let mut since = 0;
    let mut delay = Duration::from_millis(200);
    let poller = discover(&shared, &cluster).await;
    loop {
        let response = match poller
            .poll(&cluster, &shared.instance_arn, since, poll_wait)
            .await
        {
            Ok(r) => {
                delay = Duration::from_millis(200);
                r
            }
            Err(ClientError::Rejected { status: 404, .. }) => {
                return Err(AgentError::Deregistered(shared.instance_arn.clone()));
            }
            Err(e) => {
                // A transient error has been met on every server already (the client fails
                // over); anything else, one server said.
                let what = if e.is_transient() {
                    "polling failed on every server"
                } else {
                    "polling was refused"
                };
                tracing::warn!(error = %e, "{what}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        since = response.version;
        if response.instance_status == "INACTIVE" {
            return Err(AgentError::Deregistered(shared.instance_arn.clone()));
        }
        let assigned: HashSet<&str> = response.tasks.iter().map(|t| t.task_arn.as_str()).collect();

        // Tasks nobody assigns any more: stop them.
        for (arn, s) in &supervised {
            if !assigned.contains(arn.as_str()) {
                let _ = s.stop.send(true);
            }
        }
        supervised.retain(|arn, s| assigned.contains(arn.as_str()) || !s.handle.is_finished());

        for a in &response.tasks {
            let stop = a.desired_status == "STOPPED";
            match supervised.get(&a.task_arn) {
                Some(s) => {
                    if stop {
                        let _ = s.stop.send(true);
                    }
                }
                None => {
                    let existing = found
                        .remove(&a.task_arn)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(_, e)| e)
                        .collect();
                    supervised.insert(a.task_arn.clone(), spawn(&shared, a, existing, stop));
                }
            }
        }

        if first {
            first = false;
            for (arn, containers) in found.drain() {
                retire(&shared, &arn, containers);
            }
        }
    }
}

fn spawn(shared: &Arc<Shared>, a: &Assignment, existing: Vec<Existing>, stop: bool) -> Supervised {
    let (tx, rx) = watch::channel(stop);
    let handle = tokio::spawn(supervise(shared.clone(), a.clone(), existing, rx));
    Supervised { stop: tx, handle }
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
}

fn logs_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            &format!("{AGENT_LOGS_PATH}/{{task}}/{{container}}"),
            get(logs),
        )
        .with_state(shared)
}

/// Why a logs request is refused (403, with the message): it is not signed by a server.
#[derive(Debug, thiserror::Error)]
enum NotSignedByServer {
    /// No `Authorization` header (or not text).
    #[error("Missing Authentication Token")]
    Unsigned,
    /// Signed with another credential than this instance's own.
    #[error("The security token included in the request is invalid.")]
    OtherCredential,
    /// A malformed `Authorization` header, or a signature that does not verify.
    #[error(transparent)]
    Signature(#[from] berth_auth::sigv4::SigV4Error),
}

/// Only requests signed with this instance's own credential (the servers hold it) pass.
fn signed_by_server(
    shared: &Shared,
    request: &axum::http::request::Parts,
) -> Result<(), NotSignedByServer> {
    use berth_auth::sigv4;
    let authorization = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(NotSignedByServer::Unsigned)?;
    let auth = sigv4::parse_authorization(authorization)?;
    if auth.access_key_id != shared.credentials.access_key_id {
        return Err(NotSignedByServer::OtherCredential);
    }
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signed = sigv4::Request {
        method: request.method.as_str(),
        path_and_query: request.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &headers,
        payload: sigv4::Payload::Bytes(b""),
    };
    sigv4::verify(
        &auth,
        &signed,
        AGENT_SIGNING_NAME,
        &sigv4::VerifyingKey::new(shared.credentials.secret.clone()),
        std::time::SystemTime::now(),
    )?;
    Ok(())
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    Path((task, container)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
    request: axum::http::request::Parts,
) -> Response {
    if let Err(why) = signed_by_server(&shared, &request) {
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    let found = shared
        .containers
        .lock()
        .expect("containers lock")
        .get(&(task.clone(), container.clone()))
        .cloned();
    let Some((kind, id)) = found else {
        return (
            StatusCode::NOT_FOUND,
            format!("no container {container} of task {task} on this instance\n"),
        )
            .into_response();
    };
    let Ok(runtime) = shared.runtimes.get(kind) else {
        return (StatusCode::NOT_FOUND, "runtime unavailable\n").into_response();
    };
    match runtime.logs(&id, q.follow).await {
        Ok(stream) => (
            [("content-type", "text/plain; charset=utf-8")],
            Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other))),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    }
}
