//! The process runtime: a container definition's command run as a host process group.
//!
//! Hosts without Docker, and Mesos-style command tasks, run tasks through the same supervisor
//! as Docker hosts, so what the supervisor relies on must hold here too: a container's exit
//! status and health survive an agent restart, a restarted agent finds what it started, and a
//! stop escalates from SIGTERM to SIGKILL. That is why each container is owned by a small shim
//! process (`berth process-shim`, the `berth` binary itself) rather than by the agent: the shim
//! outlives the agent, waits for the command, runs its health checks and writes the outcome
//! down in files that any later agent reads.
//!
//! # Ids and sandboxes
//!
//! A container's id is its `runtime_name`. Its sandbox is `spec.sandbox_dir`, or
//! `<root>/<runtime_name>` when the spec names none; a sandbox elsewhere gets a symlink
//! `<root>/<runtime_name>` pointing to it. So `<root>` alone indexes every container
//! ([`Runtime::list`] scans it), and claiming the name (a mkdir or a symlink, both atomic) is
//! what makes a second `create` of the same name fail. A sandbox holds:
//!
//! | file | written by | holds |
//! | --- | --- | --- |
//! | `container.json` | `create` | argv, environment, cwd, user, labels, limits, health check |
//! | `started` | `start` | nothing: it claims the container's one start |
//! | `shim.pid` | shim | `<pid> <start time>` of the shim |
//! | `child.pid` | shim | `<pid> <start time>` of the command, which leads its process group |
//! | `output.log` | the command | its stdout and stderr, appended |
//! | `health` | shim | `starting`, `healthy` or `unhealthy` |
//! | `exit` | shim (the runtime when the shim died) | the exit code; 128+N for signal N |
//! | `error` | shim or runtime | why the command did not start, or why the shim is gone |
//! | `shim.log` | shim | the shim's own warnings |
//!
//! All but the two logs are written whole (a temporary file, then a rename). Pids are
//! recorded with the process's start time from `/proc`, so a recycled pid is never taken for
//! the shim nor signalled: this runtime is Linux-only.
//!
//! # The shim protocol
//!
//! `start` runs `<shim> process-shim <sandbox>`, which only re-executes itself as
//! `process-shim --run <sandbox>` and exits: the shim proper is re-parented to init, the agent
//! has no child to reap, and a SIGKILLed agent leaves shim and command running. The shim
//! starts a new session (no controlling terminal, out of the agent's process group), blocks
//! the signals it handles, records its pid, spawns the command as the leader of a new process
//! group, records the command's pid, and waits for signals:
//!
//! - SIGTERM, SIGINT: forwarded to the command's process group;
//! - SIGUSR1: SIGKILL the command's process group (the runtime's escalation once the stop
//!   timeout has passed: going through the shim, whose pid is verified, never signals a
//!   recycled process group);
//! - SIGCHLD: once the command has exited, whatever it left in its process group is SIGKILLed
//!   (as when a container's init exits), the command is reaped and `exit` written.
//!
//! `start` returns once `child.pid` (started) or `exit` (did not start; `error` says why)
//! appears. A shim that dies without writing `exit` is noticed by whoever looks next: the
//! runtime SIGKILLs the command's group if it still exists and records 137.
//!
//! Starting a started container does nothing (restarts are not a runtime's job), waiting for
//! one never started fails, and removing an unknown id succeeds (it is removed already).
//!
//! # What it does not do
//!
//! There is no image, filesystem or network isolation. The image is ignored; the command runs
//! on the host's filesystem; `bridge` and `host` network modes both mean the host's network,
//! where the process binds its ports itself: it finds them in `PORT0`..`PORTn` (the host
//! ports in the order of the port mappings, `PORT` = `PORT0`) and `PORT_<containerPort>`, as
//! on Mesos and Marathon. Mount points, links, privileged mode, a read-only root filesystem
//! and network mode `none` are refused with [`RuntimeError::Unsupported`]; `hostname` is
//! ignored. A `user` needs an agent running as root, and runs without supplementary groups.
//!
//! Resource limits use cgroup v2 when `/sys/fs/cgroup` is a writable cgroup v2 hierarchy:
//! `berth/<runtime_name>` gets `memory.max`, `memory.low` and `cpu.weight`, and the shim joins
//! it before it spawns the command (so health checks count too, as in Docker). Elsewhere
//! (cgroup v1, no permission) limits are skipped with a debug log. Ulimits use setrlimit.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use nix::errno::Errno;
use nix::sys::resource::{RLIM_INFINITY, Resource, rlim_t};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Gid, Group, Pid, Uid, User};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{
    ContainerSpec, ContainerState, Existing, Health, HealthCheck, LABEL_TASK, LogStream,
    NetworkMode, Runtime, RuntimeError, RuntimeKind,
};

const SPEC_FILE: &str = "container.json";
const STARTED_FILE: &str = "started";
const SHIM_PID_FILE: &str = "shim.pid";
const CHILD_PID_FILE: &str = "child.pid";
const LOG_FILE: &str = "output.log";
const HEALTH_FILE: &str = "health";
const EXIT_FILE: &str = "exit";
const ERROR_FILE: &str = "error";
const SHIM_LOG_FILE: &str = "shim.log";

/// How often waits look at a sandbox.
const POLL: Duration = Duration::from_millis(50);
/// How long `start` waits for the shim to report, and how long a started sandbox may go
/// without a `shim.pid` before its shim counts as dead.
const SHIM_REPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` waits, after asking for SIGKILL, for the shim to record the exit.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// `PATH` for commands when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Exit code for a command that could not be started for another reason than a missing or
/// non-executable program (Docker's 125).
const EXIT_START_FAILED: i32 = 125;
/// Exit code recorded when the command is SIGKILLed (128 + 9).
const EXIT_KILLED: i32 = 137;

/// Runs containers as host process groups, each owned by a `berth process-shim`.
pub struct ProcessRuntime {
    shim: PathBuf,
    store: Arc<Store>,
}

impl ProcessRuntime {
    /// `shim`: the program to run as `<shim> process-shim ...` (the `berth` binary);
    /// `root`: where sandboxes live when a spec names none, and the index of all containers.
    pub fn new(shim: PathBuf, root: PathBuf) -> ProcessRuntime {
        ProcessRuntime {
            shim,
            store: Arc::new(Store { root }),
        }
    }

    /// Runs `f` on the store off the async threads: every call touches the filesystem.
    async fn with_store<T, F>(&self, f: F) -> Result<T, RuntimeError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, RuntimeError> + Send + 'static,
    {
        let store = self.store.clone();
        blocking(move || f(&store)).await
    }
}

async fn blocking<T, F>(f: F) -> Result<T, RuntimeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RuntimeError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Failed(format!("process runtime task failed: {e}")))?
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        Ok(format!("process (shim {})", self.shim.display()))
    }

    async fn prepare_image(&self, _image: &str) -> Result<Option<String>, RuntimeError> {
        Ok(None)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let spec = spec.clone();
        self.with_store(move |store| store.create(&spec)).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_owned();
        let Some(dir) = self.with_store(move |store| store.claim_start(&id)).await? else {
            return Ok(());
        };
        let launched = tokio::process::Command::new(&self.shim)
            .arg("process-shim")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        let failure = match launched {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!(
                "the process shim {} exited with {status}",
                self.shim.display()
            )),
            Err(e) => Some(format!(
                "cannot run the process shim {}: {e}",
                self.shim.display()
            )),
        };
        if let Some(message) = failure {
            return blocking(move || {
                record_failure(&dir, &message, EXIT_START_FAILED).map_err(io_failed(&dir))?;
                Err(RuntimeError::Failed(message))
            })
            .await;
        }
        let deadline = Instant::now() + SHIM_REPORT_TIMEOUT;
        loop {
            let probe_dir = dir.clone();
            match blocking(move || start_report(&probe_dir)).await? {
                StartReport::Started => return Ok(()),
                StartReport::Failed(message) => return Err(RuntimeError::Failed(message)),
                StartReport::Pending if Instant::now() >= deadline => {
                    let message = format!(
                        "the process shim did not report within {}s",
                        SHIM_REPORT_TIMEOUT.as_secs()
                    );
                    return blocking(move || {
                        record_failure(&dir, &message, EXIT_START_FAILED)
                            .map_err(io_failed(&dir))?;
                        Err(RuntimeError::Failed(message))
                    })
                    .await;
                }
                StartReport::Pending => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let id = id.to_owned();
        self.with_store(move |store| {
            let sandbox = store.locate(&id)?;
            inspect(&sandbox.dir)
        })
        .await
    }

    async fn wait(&self, id: &str) -> Result<i32, RuntimeError> {
        let dir = self.locate(id).await?;
        loop {
            match settle_existing(&dir).await? {
                Phase::Exited(code) => return Ok(code),
                Phase::Created => {
                    return Err(RuntimeError::Failed(format!(
                        "container {id} has not been started"
                    )));
                }
                Phase::Running(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let dir = self.locate(id).await?;
        // A start may be under way: wait for its shim to be there to be signalled.
        let shim = loop {
            match settle_existing(&dir).await? {
                Phase::Created | Phase::Exited(_) => return Ok(()),
                Phase::Running(Some(shim)) => break shim,
                Phase::Running(None) => tokio::time::sleep(POLL).await,
            }
        };
        shim.signal(Signal::SIGTERM);
        if exits_within(&dir, timeout).await? {
            return Ok(());
        }
        shim.signal(Signal::SIGUSR1);
        if exits_within(&dir, KILL_GRACE).await? {
            return Ok(());
        }
        blocking(move || {
            record_failure(
                &dir,
                "the process shim did not record the exit after SIGKILL; it was killed",
                EXIT_KILLED,
            )
            .map_err(io_failed(&dir))
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_owned();
        self.with_store(move |store| store.remove(&id)).await
    }

    async fn list(&self) -> Result<Vec<Existing>, RuntimeError> {
        self.with_store(Store::list).await
    }

    async fn logs(&self, id: &str, follow: bool) -> Result<LogStream, RuntimeError> {
        let dir = self.locate(id).await?;
        let tail = Tail {
            dir,
            follow,
            file: None,
            buf: vec![0; 64 * 1024],
            draining: false,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            tail,
            |mut tail| async move { tail.next().await.map(|item| (item, tail)) },
        )))
    }
}

impl ProcessRuntime {
    async fn locate(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        let id = id.to_owned();
        self.with_store(move |store| Ok(store.locate(&id)?.dir))
            .await
    }
}

/// Polls until the container has exited (true) or `timeout` has passed (false).
async fn exits_within(dir: &Path, timeout: Duration) -> Result<bool, RuntimeError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Phase::Exited(_) = settle_existing(dir).await? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// [`settle`] for a container that may have been removed meanwhile ([`RuntimeError::NotFound`]).
async fn settle_existing(dir: &Path) -> Result<Phase, RuntimeError> {
    let dir = dir.to_owned();
    blocking(move || {
        if !dir.join(SPEC_FILE).is_file() {
            return Err(RuntimeError::NotFound(dir.display().to_string()));
        }
        settle(&dir).map_err(io_failed(&dir))
    })
    .await
}

fn io_failed(dir: &Path) -> impl FnOnce(io::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Failed(format!("sandbox {}: {e}", dir.display()))
}

/// The sandboxes under one root; every method blocks.
struct Store {
    root: PathBuf,
}

/// Where a container lives.
struct Sandbox {
    /// `<root>/<runtime_name>`: the sandbox itself, or a symlink to it.
    entry: PathBuf,
    dir: PathBuf,
}

impl Store {
    fn locate(&self, id: &str) -> Result<Sandbox, RuntimeError> {
        if !valid_name(id) {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        let entry = self.root.join(id);
        let dir = fs::read_link(&entry).unwrap_or_else(|_| entry.clone());
        if !dir.join(SPEC_FILE).is_file() {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        Ok(Sandbox { entry, dir })
    }

    fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let name = &spec.runtime_name;
        if !valid_name(name) {
            return Err(RuntimeError::Failed(format!(
                "invalid container name {name:?}: use letters, digits, '_', '.' and '-', \
                 starting with a letter or digit"
            )));
        }
        let entry = self.root.join(name);
        let dir = match &spec.sandbox_dir {
            Some(dir) => std::path::absolute(dir).map_err(io_failed(dir))?,
            None => entry.clone(),
        };
        let mut stored = plan(spec, &dir)?;
        fs::create_dir_all(&self.root).map_err(io_failed(&self.root))?;
        let claimed = if dir == entry {
            fs::create_dir(&entry)
        } else {
            std::os::unix::fs::symlink(&dir, &entry)
        };
        match claimed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Failed(format!(
                    "a container named {name} already exists"
                )));
            }
            Err(e) => return Err(io_failed(&entry)(e)),
        }
        let written = (|| {
            fs::create_dir_all(&dir).map_err(io_failed(&dir))?;
            if dir.join(SPEC_FILE).exists() {
                return Err(RuntimeError::Failed(format!(
                    "sandbox {} already holds a container",
                    dir.display()
                )));
            }
            stored.cgroup = cgroup::prepare(name, spec);
            let json = serde_json::to_string_pretty(&stored)
                .map_err(|e| RuntimeError::Failed(format!("encoding the container: {e}")))?;
            write_atomic(&dir.join(SPEC_FILE), &json).map_err(io_failed(&dir))
        })();
        if let Err(e) = written {
            if let Some(cgroup) = &stored.cgroup {
                cgroup::remove(cgroup);
            }
            let _ = if dir == entry {
                fs::remove_dir_all(&entry)
            } else {
                fs::remove_file(&entry)
            };
            return Err(e);
        }
        Ok(name.clone())
    }

    /// Claims the one start of a container: its sandbox, or `None` when it was started
    /// before (starting again does nothing, like restarting is not this runtime's job).
    fn claim_start(&self, id: &str) -> Result<Option<PathBuf>, RuntimeError> {
        let sandbox = self.locate(id)?;
        let marker = sandbox.dir.join(STARTED_FILE);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => Ok(Some(sandbox.dir)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(io_failed(&sandbox.dir)(e)),
        }
    }

    fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let sandbox = match self.locate(id) {
            Ok(sandbox) => sandbox,
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let dir = &sandbox.dir;
        if let Phase::Running(_) = settle(dir).map_err(io_failed(dir))? {
            return Err(RuntimeError::Failed("container is running".into()));
        }
        if let Some(cgroup) = read_spec(dir)?.cgroup {
            cgroup::remove(&cgroup);
        }
        if sandbox.entry != sandbox.dir {
            ignore_not_found(fs::remove_file(&sandbox.entry)).map_err(io_failed(dir))?;
        }
        ignore_not_found(fs::remove_dir_all(dir)).map_err(io_failed(dir))
    }

    fn list(&self) -> Result<Vec<Existing>, RuntimeError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_failed(&self.root)(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_failed(&self.root))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let sandbox = match self.locate(&name) {
                Ok(sandbox) => sandbox,
                // Not a container, half created, or removed meanwhile.
                Err(RuntimeError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let stored = match read_spec(&sandbox.dir) {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(sandbox = %sandbox.dir.display(), "skipping a sandbox: {e}");
                    continue;
                }
            };
            if !stored.labels.contains_key(LABEL_TASK) {
                continue;
            }
            let state = match inspect(&sandbox.dir) {
                Ok(state) => state,
                // Removed while we looked.
                Err(RuntimeError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            found.push(Existing {
                id: name,
                runtime_name: stored.runtime_name,
                task_arn: stored.task_arn,
                container_name: stored.container_name,
                labels: stored.labels,
                state,
            });
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}

/// Names that are safe as one path component and valid Docker container names.
fn valid_name(name: &str) -> bool {
    name.len() <= 255
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn ignore_not_found(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// What `create` records: everything the shim needs, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    runtime_name: String,
    task_arn: String,
    container_name: String,
    labels: BTreeMap<String, String>,
    argv: Vec<String>,
    /// The whole environment of the command (nothing else is inherited).
    env: Vec<(String, String)>,
    cwd: PathBuf,
    user: Option<String>,
    /// The ids `user` resolved to; `None` when there is nothing to switch to.
    uid: Option<u32>,
    gid: Option<u32>,
    stop_timeout_ms: u64,
    health_check: Option<StoredHealthCheck>,
    ulimits: Vec<StoredUlimit>,
    /// The cgroup v2 directory the shim joins, when one could be made.
    cgroup: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredHealthCheck {
    argv: Vec<String>,
    interval_ms: u64,
    timeout_ms: u64,
    retries: u32,
    start_period_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredUlimit {
    name: String,
    soft: i64,
    hard: i64,
}

fn unsupported(what: &str) -> RuntimeError {
    RuntimeError::Unsupported(format!("the process runtime does not support {what}"))
}

/// Checks the spec against what this runtime can do and resolves it for the shim.
fn plan(spec: &ContainerSpec, sandbox: &Path) -> Result<Stored, RuntimeError> {
    if !spec.mounts.is_empty() {
        return Err(unsupported("mountPoints (volumes)"));
    }
    if !spec.links.is_empty() {
        return Err(unsupported("links"));
    }
    if spec.privileged {
        return Err(unsupported("privileged"));
    }
    if spec.read_only_root_filesystem {
        return Err(unsupported("readonlyRootFilesystem"));
    }
    if spec.network_mode == NetworkMode::None {
        return Err(unsupported(
            "networkMode none (commands run in the host's network)",
        ));
    }
    let argv: Vec<String> = spec
        .entry_point
        .iter()
        .chain(&spec.command)
        .cloned()
        .collect();
    if argv.is_empty() {
        return Err(RuntimeError::Unsupported(
            "the process runtime needs a command or entryPoint".into(),
        ));
    }
    let ulimits = spec
        .ulimits
        .iter()
        .map(|u| {
            if rlimit_resource(&u.name).is_none() {
                return Err(unsupported(&format!("the ulimit {:?}", u.name)));
            }
            let valid = |v: i64| v >= -1;
            let unlimited = |v: i64| v == -1;
            if !valid(u.soft)
                || !valid(u.hard)
                || (!unlimited(u.hard) && (unlimited(u.soft) || u.soft > u.hard))
            {
                return Err(RuntimeError::Failed(format!(
                    "ulimit {}: soft limit {} and hard limit {} are not valid",
                    u.name, u.soft, u.hard
                )));
            }
            Ok(StoredUlimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let identity = match &spec.user {
        Some(user) => resolve_user(user)?,
        None => Identity::default(),
    };
    let cwd = match &spec.working_directory {
        Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => {
            return Err(RuntimeError::Failed(format!(
                "workingDirectory {dir:?} is not an absolute path"
            )));
        }
        None => sandbox.to_owned(),
    };
    let health_check = match &spec.health_check {
        Some(hc) => plan_health_check(hc)?,
        None => None,
    };
    let env = environment(spec, &identity);
    let texts = argv
        .iter()
        .chain(env.iter().flat_map(|(k, v)| [k, v]))
        .chain(health_check.iter().flat_map(|hc| &hc.argv));
    for text in texts {
        if text.contains('\0') {
            return Err(RuntimeError::Failed(format!(
                "{text:?} contains a NUL byte"
            )));
        }
    }
    if let Some((name, _)) = env.iter().find(|(k, _)| k.is_empty() || k.contains('=')) {
        return Err(RuntimeError::Failed(format!(
            "{name:?} is not a valid environment variable name"
        )));
    }
    Ok(Stored {
        runtime_name: spec.runtime_name.clone(),
        task_arn: spec.task_arn.clone(),
        container_name: spec.container_name.clone(),
        labels: spec.labels.clone(),
        argv,
        env,
        cwd,
        user: spec.user.clone(),
        uid: identity.switch.map(|(uid, _)| uid),
        gid: identity.switch.map(|(_, gid)| gid),
        stop_timeout_ms: duration_ms(spec.stop_timeout),
        health_check,
        ulimits,
        cgroup: None,
    })
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Who the command runs as.
#[derive(Debug, Default, PartialEq)]
struct Identity {
    /// The uid and gid to switch to; `None`: the shim's own.
    switch: Option<(u32, u32)>,
    /// The user's home directory, when the user database knows it.
    home: Option<PathBuf>,
}

/// Resolves `user`, `uid`, `user:group` or `uid:gid` as Docker does: a numeric uid needs no
/// user database entry, and its group is then the entry's group or 0.
fn resolve_user(user: &str) -> Result<Identity, RuntimeError> {
    let lookup = |e: Errno| RuntimeError::Failed(format!("looking up user {user:?}: {e}"));
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let (uid, entry) = match name.parse::<u32>() {
        Ok(uid) => (uid, User::from_uid(Uid::from_raw(uid)).map_err(lookup)?),
        Err(_) => {
            let entry = User::from_name(name)
                .map_err(lookup)?
                .ok_or_else(|| RuntimeError::Failed(format!("no such user: {name:?}")))?;
            (entry.uid.as_raw(), Some(entry))
        }
    };
    let gid = match group {
        None => entry.as_ref().map_or(0, |e| e.gid.as_raw()),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(group)
                .map_err(lookup)?
                .ok_or_else(|| RuntimeError::Failed(format!("no such group: {group:?}")))?
                .gid
                .as_raw(),
        },
    };
    let home = entry.map(|e| e.dir);
    if Uid::effective().is_root() {
        Ok(Identity {
            switch: Some((uid, gid)),
            home,
        })
    } else if uid == Uid::effective().as_raw() && gid == Gid::effective().as_raw() {
        Ok(Identity { switch: None, home })
    } else {
        Err(RuntimeError::Unsupported(format!(
            "user {user:?}: the agent does not run as root, so it cannot run commands as \
             another user"
        )))
    }
}

/// The command's whole environment: `PATH` and `HOME`, the port variables, then the spec's
/// (which win).
fn environment(spec: &ContainerSpec, identity: &Identity) -> Vec<(String, String)> {
    let mut env = BTreeMap::new();
    let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    env.insert("PATH".to_owned(), path);
    let home = match (&identity.home, identity.switch) {
        (Some(home), _) => home.display().to_string(),
        // Another user without a home of its own: not the agent's.
        (None, Some(_)) => "/".to_owned(),
        (None, None) => std::env::var("HOME").unwrap_or_else(|_| "/".to_owned()),
    };
    env.insert("HOME".to_owned(), home);
    for (i, port) in spec.ports.iter().enumerate() {
        let host = port.host_port.to_string();
        if i == 0 {
            env.insert("PORT".to_owned(), host.clone());
        }
        env.insert(format!("PORT{i}"), host.clone());
        env.insert(format!("PORT_{}", port.container_port), host);
    }
    for (name, value) in &spec.environment {
        env.insert(name.clone(), value.clone());
    }
    env.into_iter().collect()
}

/// Docker's reading of a health check: `CMD-SHELL s` runs `/bin/sh -c s`, `CMD args...` runs
/// the args, `NONE` is no check; zero durations and retries take Docker's defaults.
fn plan_health_check(hc: &HealthCheck) -> Result<Option<StoredHealthCheck>, RuntimeError> {
    let argv = match hc.command.split_first() {
        Some((kind, [])) if kind == "NONE" => return Ok(None),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")]
        }
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
        _ => {
            return Err(RuntimeError::Failed(format!(
                "healthCheck command {:?} must be [\"CMD-SHELL\", command], \
                 [\"CMD\", program, args...] or [\"NONE\"]",
                hc.command
            )));
        }
    };
    let or_default = |d: Duration| {
        if d.is_zero() {
            Duration::from_secs(30)
        } else {
            d
        }
    };
    Ok(Some(StoredHealthCheck {
        argv,
        interval_ms: duration_ms(or_default(hc.interval)),
        timeout_ms: duration_ms(or_default(hc.timeout)),
        retries: if hc.retries == 0 { 3 } else { hc.retries },
        start_period_ms: duration_ms(hc.start_period),
    }))
}

fn rlimit_resource(name: &str) -> Option<Resource> {
    Some(match name {
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        _ => return None,
    })
}

fn rlimit_value(v: i64) -> rlim_t {
    rlim_t::try_from(v).unwrap_or(RLIM_INFINITY)
}

fn read_spec(dir: &Path) -> Result<Stored, RuntimeError> {
    let path = dir.join(SPEC_FILE);
    let text = fs::read_to_string(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            RuntimeError::NotFound(dir.display().to_string())
        } else {
            io_failed(dir)(e)
        }
    })?;
    serde_json::from_str(&text)
        .map_err(|e| RuntimeError::Failed(format!("{}: {e}", path.display())))
}

/// Writes a file whole: readers see the old contents or the new, never a part.
fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_exit(dir: &Path) -> io::Result<Option<i32>> {
    let Some(text) = read_optional(&dir.join(EXIT_FILE))? else {
        return Ok(None);
    };
    text.trim().parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("exit file holds {text:?}"),
        )
    })
}

fn read_proc_id(path: &Path) -> io::Result<Option<ProcId>> {
    Ok(read_optional(path)?.and_then(|text| ProcId::parse(&text)))
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcId {
    pid: i32,
    /// Clock ticks after boot (`/proc/<pid>/stat`, field 22).
    start: u64,
}

/// The fields of `/proc/<pid>/stat` this runtime reads.
struct ProcStat {
    state: char,
    pgrp: i32,
    start: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything, ')' included.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

impl ProcId {
    fn of(pid: u32) -> Option<ProcId> {
        let pid = i32::try_from(pid).ok()?;
        Some(ProcId {
            pid,
            start: proc_stat(pid)?.start,
        })
    }

    fn parse(text: &str) -> Option<ProcId> {
        let (pid, start) = text.trim().split_once(' ')?;
        Some(ProcId {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }

    fn render(self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    fn stat(self) -> Option<ProcStat> {
        proc_stat(self.pid).filter(|s| s.start == self.start && !matches!(s.state, 'Z' | 'X'))
    }

    fn alive(self) -> bool {
        self.stat().is_some()
    }

    /// Sends `signal` if the process is still this one; a vanished process is no error.
    fn signal(self, signal: Signal) {
        if self.alive() {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }

    /// SIGKILLs the process group this process leads, if it still leads it.
    fn kill_group(self) {
        if self.stat().is_some_and(|s| s.pgrp == self.pid) {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// A container's life as its sandbox tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    /// Started and not exited; the shim, once it has recorded itself.
    Running(Option<ProcId>),
    Exited(i32),
}

/// Reads the phase, and records the end of a container whose shim died without recording
/// it, so that every later reader agrees.
fn settle(dir: &Path) -> io::Result<Phase> {
    if let Some(code) = read_exit(dir)? {
        return Ok(Phase::Exited(code));
    }
    let started = match fs::metadata(dir.join(STARTED_FILE)) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Phase::Created),
        Err(e) => return Err(e),
    };
    match read_proc_id(&dir.join(SHIM_PID_FILE))? {
        Some(shim) if shim.alive() => return Ok(Phase::Running(Some(shim))),
        Some(_) => {}
        None => {
            let age = started
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            if age < SHIM_REPORT_TIMEOUT {
                return Ok(Phase::Running(None));
            }
        }
    }
    // The shim is gone; it may have recorded the exit just before it went.
    if let Some(code) = read_exit(dir)? {
        return Ok(Phase::Exited(code));
    }
    record_failure(
        dir,
        "the process shim died without recording an exit status; the command was killed",
        EXIT_KILLED,
    )?;
    Ok(Phase::Exited(read_exit(dir)?.unwrap_or(EXIT_KILLED)))
}

/// Ends a container the shim no longer owns: SIGKILLs shim and command (each only if still
/// the recorded process) and records `message` and `code`, unless the shim recorded an exit.
fn record_failure(dir: &Path, message: &str, code: i32) -> io::Result<()> {
    if let Some(shim) = read_proc_id(&dir.join(SHIM_PID_FILE))? {
        shim.signal(Signal::SIGKILL);
    }
    if let Some(child) = read_proc_id(&dir.join(CHILD_PID_FILE))? {
        child.kill_group();
    }
    if read_exit(dir)?.is_some() {
        return Ok(());
    }
    if read_optional(&dir.join(ERROR_FILE))?.is_none() {
        write_atomic(&dir.join(ERROR_FILE), message)?;
    }
    write_atomic(&dir.join(EXIT_FILE), &code.to_string())
}

enum StartReport {
    Pending,
    Started,
    Failed(String),
}

fn start_report(dir: &Path) -> Result<StartReport, RuntimeError> {
    if dir.join(CHILD_PID_FILE).exists() {
        return Ok(StartReport::Started);
    }
    match read_exit(dir).map_err(io_failed(dir))? {
        None => Ok(StartReport::Pending),
        Some(code) => {
            let error = read_optional(&dir.join(ERROR_FILE)).map_err(io_failed(dir))?;
            Ok(StartReport::Failed(error.unwrap_or_else(|| {
                format!("the command did not start (exit code {code})")
            })))
        }
    }
}

fn inspect(dir: &Path) -> Result<ContainerState, RuntimeError> {
    let stored = read_spec(dir)?;
    let phase = settle(dir).map_err(io_failed(dir))?;
    let health = match stored.health_check {
        None => Health::None,
        Some(_) => match read_optional(&dir.join(HEALTH_FILE))
            .map_err(io_failed(dir))?
            .as_deref()
            .map(str::trim)
        {
            Some("healthy") => Health::Healthy,
            Some("unhealthy") => Health::Unhealthy,
            _ => Health::Starting,
        },
    };
    let error = read_optional(&dir.join(ERROR_FILE)).map_err(io_failed(dir))?;
    let exit_code = match phase {
        Phase::Exited(code) => Some(code),
        _ => None,
    };
    Ok(ContainerState {
        running: matches!(phase, Phase::Running(_)),
        exited: exit_code.is_some(),
        exit_code,
        oom_killed: stored.cgroup.as_deref().is_some_and(cgroup::oom_killed),
        error,
        health,
        image_digest: None,
    })
}

/// Reads `output.log` as it grows.
struct Tail {
    dir: PathBuf,
    follow: bool,
    file: Option<tokio::fs::File>,
    buf: Vec<u8>,
    /// The container has exited: what is left in the file is all there will be.
    draining: bool,
    done: bool,
}

impl Tail {
    async fn next(&mut self) -> Option<Result<Bytes, RuntimeError>> {
        while !self.done {
            let Some(file) = self.file.as_mut() else {
                match tokio::fs::File::open(self.dir.join(LOG_FILE)).await {
                    Ok(file) => self.file = Some(file),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if !self.follow || self.exited().await {
                            return None;
                        }
                        tokio::time::sleep(POLL).await;
                    }
                    Err(e) => return self.fail(e),
                }
                continue;
            };
            match file.read(&mut self.buf).await {
                Ok(0) if !self.follow || self.draining => return None,
                Ok(0) => {
                    if self.exited().await {
                        self.draining = true;
                    } else {
                        tokio::time::sleep(POLL).await;
                    }
                }
                Ok(n) => return Some(Ok(Bytes::copy_from_slice(&self.buf[..n]))),
                Err(e) => return self.fail(e),
            }
        }
        None
    }

    fn fail(&mut self, e: io::Error) -> Option<Result<Bytes, RuntimeError>> {
        self.done = true;
        Some(Err(io_failed(&self.dir)(e)))
    }

    /// Exited, or gone: either way nothing more will be written.
    async fn exited(&self) -> bool {
        !matches!(
            settle_existing(&self.dir).await,
            Ok(Phase::Created | Phase::Running(_))
        )
    }
}

mod cgroup;

/// The shim's main: `berth process-shim <sandbox>` launches the shim and returns at once;
/// `berth process-shim --run <sandbox>` is the shim. Returns the exit code for the process.
///
/// Plain std and blocking calls: it runs before the `berth` binary starts any runtime.
pub fn shim_main(args: Vec<OsString>) -> i32 {
    match args.as_slice() {
        [sandbox] => launch(Path::new(sandbox)),
        [flag, sandbox] if flag == "--run" => shim::run(Path::new(sandbox)),
        _ => {
            eprintln!("usage: berth process-shim [--run] <sandbox-dir>");
            2
        }
    }
}

/// Starts the shim proper and exits without waiting for it, so that it is re-parented to
/// init and owes the agent nothing (not even being reaped).
fn launch(sandbox: &Path) -> i32 {
    let spawned = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg("process-shim")
            .arg("--run")
            .arg(sandbox)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    });
    match spawned {
        // Not waited for: this process exits now and init adopts the shim.
        Ok(_shim) => 0,
        Err(e) => {
            eprintln!("berth process-shim: cannot start the shim: {e}");
            1
        }
    }
}

mod shim;

/// Docker's exit code: the process's, or 128 + the signal that killed it.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::runtime::{Mount, MountSource, PortBinding, Protocol};

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            runtime_name: name.to_owned(),
            task_arn: "arn:aws:ecs:us-east-1:000000000000:task/c/t".to_owned(),
            container_name: "web".to_owned(),
            command: vec!["sleep".to_owned(), "1".to_owned()],
            labels: BTreeMap::from([(LABEL_TASK.to_owned(), "t".to_owned())]),
            ..ContainerSpec::default()
        }
    }

    fn unsupported_message(spec: &ContainerSpec) -> String {
        match plan(spec, Path::new("/sandbox")) {
            Err(RuntimeError::Unsupported(message)) => message,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[test]
    fn names_are_single_safe_path_components() {
        for good in ["a", "berth-conf-1-2", "A.b_c-9", &"x".repeat(255)] {
            assert!(valid_name(good), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(256),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn argv_is_the_entry_point_then_the_command() {
        let mut s = spec("a");
        s.entry_point = vec!["sh".into(), "-c".into()];
        s.command = vec!["echo hi".into()];
        let stored = plan(&s, Path::new("/sandbox")).unwrap();
        assert_eq!(stored.argv, ["sh", "-c", "echo hi"]);
        assert_eq!(stored.cwd, Path::new("/sandbox"));
        s.working_directory = Some("/tmp".into());
        assert_eq!(plan(&s, Path::new("/x")).unwrap().cwd, Path::new("/tmp"));
        s.working_directory = Some("tmp".into());
        assert!(matches!(
            plan(&s, Path::new("/x")),
            Err(RuntimeError::Failed(m)) if m.contains("absolute")
        ));
    }

    #[test]
    fn what_the_host_cannot_give_is_unsupported_by_name() {
        let mut s = spec("a");
        s.command.clear();
        assert_eq!(
            unsupported_message(&s),
            "the process runtime needs a command or entryPoint"
        );
        let mut s = spec("a");
        s.mounts.push(Mount {
            source: MountSource::Bind("/data".into()),
            target: "/data".into(),
            read_only: false,
        });
        assert!(unsupported_message(&s).contains("mountPoints"));
        let mut s = spec("a");
        s.links.push(crate::runtime::Link {
            runtime_name: "db".into(),
            alias: "db".into(),
        });
        assert!(unsupported_message(&s).contains("links"));
        let mut s = spec("a");
        s.privileged = true;
        assert!(unsupported_message(&s).contains("privileged"));
        let mut s = spec("a");
        s.read_only_root_filesystem = true;
        assert!(unsupported_message(&s).contains("readonlyRootFilesystem"));
        let mut s = spec("a");
        s.network_mode = NetworkMode::None;
        assert!(unsupported_message(&s).contains("networkMode none"));
        let mut s = spec("a");
        s.ulimits.push(crate::runtime::Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        });
        assert!(unsupported_message(&s).contains("bogus"));
        // Host and bridge both mean the host's network.
        for mode in [NetworkMode::Host, NetworkMode::Bridge] {
            let mut s = spec("a");
            s.network_mode = mode;
            assert!(plan(&s, Path::new("/x")).is_ok());
        }
    }

    #[test]
    fn bad_values_are_refused_not_panicked_on() {
        let mut s = spec("a");
        s.ulimits.push(crate::runtime::Ulimit {
            name: "nofile".into(),
            soft: 10,
            hard: 5,
        });
        assert!(matches!(
            plan(&s, Path::new("/x")),
            Err(RuntimeError::Failed(_))
        ));
        let mut s = spec("a");
        s.environment.push(("A=B".into(), "c".into()));
        assert!(matches!(
            plan(&s, Path::new("/x")),
            Err(RuntimeError::Failed(_))
        ));
        let mut s = spec("a");
        s.command.push("nul\0byte".into());
        assert!(matches!(
            plan(&s, Path::new("/x")),
            Err(RuntimeError::Failed(_))
        ));
        let mut s = spec("a");
        s.health_check = Some(HealthCheck {
            command: vec!["curl".into(), "localhost".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 1,
            start_period: Duration::ZERO,
        });
        assert!(
            matches!(plan(&s, Path::new("/x")), Err(RuntimeError::Failed(m)) if m.contains("CMD-SHELL"))
        );
    }

    #[test]
    fn ports_are_exported_as_marathon_does_and_the_spec_environment_wins() {
        let mut s = spec("a");
        s.ports = vec![
            PortBinding {
                container_port: 80,
                host_port: 31000,
                protocol: Protocol::Tcp,
            },
            PortBinding {
                container_port: 53,
                host_port: 31001,
                protocol: Protocol::Udp,
            },
        ];
        s.environment = vec![
            ("HOME".into(), "/home/app".into()),
            ("X".into(), "1".into()),
        ];
        let env: BTreeMap<String, String> =
            plan(&s, Path::new("/x")).unwrap().env.into_iter().collect();
        assert_eq!(env["PORT"], "31000");
        assert_eq!(env["PORT0"], "31000");
        assert_eq!(env["PORT1"], "31001");
        assert_eq!(env["PORT_80"], "31000");
        assert_eq!(env["PORT_53"], "31001");
        assert_eq!(env["HOME"], "/home/app");
        assert_eq!(env["X"], "1");
        assert!(env.contains_key("PATH"));
        assert!(!env.contains_key("PORT2"));
    }

    #[test]
    fn health_checks_read_as_docker_reads_them() {
        let hc = |command: &[&str]| HealthCheck {
            command: command.iter().map(|s| s.to_string()).collect(),
            interval: Duration::ZERO,
            timeout: Duration::from_secs(2),
            retries: 0,
            start_period: Duration::from_secs(5),
        };
        let shell = plan_health_check(&hc(&["CMD-SHELL", "test -f /ready"]))
            .unwrap()
            .unwrap();
        assert_eq!(shell.argv, ["/bin/sh", "-c", "test -f /ready"]);
        assert_eq!(shell.interval_ms, 30_000);
        assert_eq!(shell.timeout_ms, 2_000);
        assert_eq!(shell.retries, 3);
        assert_eq!(shell.start_period_ms, 5_000);
        let exec = plan_health_check(&hc(&["CMD", "true", "x"]))
            .unwrap()
            .unwrap();
        assert_eq!(exec.argv, ["true", "x"]);
        assert_eq!(plan_health_check(&hc(&["NONE"])).unwrap(), None);
        for bad in [&[][..], &["CMD"], &["CMD-SHELL"], &["true"]] {
            assert!(plan_health_check(&hc(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users_resolve_by_name_or_number() {
        if !Uid::effective().is_root() {
            assert!(matches!(
                resolve_user("0"),
                Err(RuntimeError::Unsupported(_))
            ));
            return;
        }
        let root = resolve_user("root").unwrap();
        assert_eq!(root.switch, Some((0, 0)));
        assert_eq!(root.home.as_deref(), Some(Path::new("/root")));
        assert_eq!(resolve_user("0").unwrap().switch, Some((0, 0)));
        assert_eq!(
            resolve_user("4242:4343").unwrap().switch,
            Some((4242, 4343))
        );
        // A uid unknown to the user database: Docker's group 0, and no home.
        let unknown = resolve_user("4242").unwrap();
        assert_eq!(unknown.switch, Some((4242, 0)));
        assert_eq!(unknown.home, None);
        assert!(
            matches!(resolve_user("no-such-user-berth"), Err(RuntimeError::Failed(m)) if m.contains("no such user"))
        );
        assert!(
            matches!(resolve_user("0:no-such-group-berth"), Err(RuntimeError::Failed(m)) if m.contains("no such group"))
        );
        assert!(resolve_user("").is_err());
    }

    #[test]
    fn a_process_is_told_from_a_later_one_with_its_pid() {
        let me = ProcId::of(std::process::id()).unwrap();
        assert!(me.alive());
        assert_eq!(ProcId::parse(&me.render()), Some(me));
        let recycled = ProcId {
            start: me.start + 1,
            ..me
        };
        assert!(!recycled.alive());
        assert_eq!(ProcId::parse("12"), None);
        assert_eq!(ProcId::parse("x 1"), None);
    }

    #[test]
    fn a_reaped_process_is_dead_and_a_zombie_too() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let id = ProcId::of(child.id()).unwrap();
        assert!(id.alive());
        child.kill().unwrap();
        // Killed but not reaped: a zombie, which is not alive.
        let deadline = Instant::now() + Duration::from_secs(5);
        while id.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!id.alive());
        child.wait().unwrap();
        assert!(!id.alive());
    }

    #[test]
    fn create_claims_the_name_once_and_remove_frees_it() {
        let root = tempfile::tempdir().unwrap();
        let store = Store {
            root: root.path().join("containers"),
        };
        assert_eq!(store.create(&spec("one")).unwrap(), "one");
        assert!(matches!(
            store.create(&spec("one")),
            Err(RuntimeError::Failed(m)) if m.contains("already exists")
        ));
        let sandbox = store.locate("one").unwrap();
        assert_eq!(sandbox.dir, root.path().join("containers/one"));
        assert_eq!(settle(&sandbox.dir).unwrap(), Phase::Created);
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "one");
        assert_eq!(listed[0].container_name, "web");
        assert!(!listed[0].state.running && !listed[0].state.exited);
        store.remove("one").unwrap();
        assert!(!sandbox.dir.exists());
        assert!(matches!(
            store.locate("one"),
            Err(RuntimeError::NotFound(_))
        ));
        store.remove("one").unwrap();
        store.create(&spec("one")).unwrap();
        assert!(matches!(
            store.locate("../etc"),
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            store.create(&spec("../x")),
            Err(RuntimeError::Failed(_))
        ));
    }

    #[test]
    fn a_sandbox_elsewhere_is_indexed_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let store = Store {
            root: root.path().to_owned(),
        };
        let mut s = spec("away");
        s.sandbox_dir = Some(elsewhere.path().join("task/away"));
        store.create(&s).unwrap();
        let stored = read_spec(&elsewhere.path().join("task/away")).unwrap();
        assert_eq!(stored.cwd, elsewhere.path().join("task/away"));
        assert_eq!(
            fs::read_link(root.path().join("away")).unwrap(),
            elsewhere.path().join("task/away")
        );
        // A new store over the same root (a restarted agent) finds it.
        let again = Store {
            root: root.path().to_owned(),
        };
        assert_eq!(again.list().unwrap()[0].runtime_name, "away");
        // Another name cannot take the same sandbox.
        let mut other = spec("other");
        other.sandbox_dir = s.sandbox_dir.clone();
        assert!(again.create(&other).is_err());
        assert!(!root.path().join("other").exists());
        again.remove("away").unwrap();
        assert!(!root.path().join("away").exists());
        assert!(!elsewhere.path().join("task/away").exists());
    }

    #[test]
    fn list_skips_containers_without_a_task_label() {
        let root = tempfile::tempdir().unwrap();
        let store = Store {
            root: root.path().to_owned(),
        };
        let mut s = spec("unlabelled");
        s.labels.clear();
        store.create(&s).unwrap();
        fs::create_dir(root.path().join("not-a-container")).unwrap();
        assert_eq!(store.list().unwrap(), Vec::new());
    }

    #[test]
    fn a_dead_shim_is_recorded_as_killed() {
        let root = tempfile::tempdir().unwrap();
        let store = Store {
            root: root.path().to_owned(),
        };
        store.create(&spec("orphan")).unwrap();
        let dir = store.claim_start("orphan").unwrap().unwrap();
        assert_eq!(store.claim_start("orphan").unwrap(), None);
        // Started, and the shim has not recorded itself yet: running, for a while.
        assert_eq!(settle(&dir).unwrap(), Phase::Running(None));
        // A shim that was: a process that has exited since.
        let mut gone = Command::new("true").spawn().unwrap();
        let id = ProcId::of(gone.id()).unwrap();
        gone.wait().unwrap();
        write_atomic(&dir.join(SHIM_PID_FILE), &id.render()).unwrap();
        assert_eq!(settle(&dir).unwrap(), Phase::Exited(137));
        let state = inspect(&dir).unwrap();
        assert_eq!(
            (state.running, state.exited, state.exit_code),
            (false, true, Some(137))
        );
        assert!(state.error.unwrap().contains("died"));
        // A running container is not removed; an exited one is.
        store.remove("orphan").unwrap();
    }

    #[test]
    fn remove_refuses_a_running_container() {
        let root = tempfile::tempdir().unwrap();
        let store = Store {
            root: root.path().to_owned(),
        };
        store.create(&spec("busy")).unwrap();
        let dir = store.claim_start("busy").unwrap().unwrap();
        let me = ProcId::of(std::process::id()).unwrap();
        write_atomic(&dir.join(SHIM_PID_FILE), &me.render()).unwrap();
        assert!(matches!(
            store.remove("busy"),
            Err(RuntimeError::Failed(m)) if m == "container is running"
        ));
        write_atomic(&dir.join(EXIT_FILE), "0").unwrap();
        store.remove("busy").unwrap();
    }

    fn health_fixture(
        script: &str,
        retries: u32,
        start_period_ms: u64,
    ) -> (tempfile::TempDir, Stored, StoredHealthCheck) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("h");
        s.health_check = Some(HealthCheck {
            command: vec!["CMD-SHELL".into(), script.into()],
            interval: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
            retries,
            start_period: Duration::from_millis(start_period_ms),
        });
        let stored = plan(&s, dir.path()).unwrap();
        let hc = stored.health_check.clone().unwrap();
        (dir, stored, hc)
    }

    /// Runs the shim's health monitor until the health file reads `want` or `patience` has
    /// passed; what the file then reads.
    fn health_becomes(
        script: &str,
        retries: u32,
        start_period_ms: u64,
        want: &str,
        patience: Duration,
    ) -> String {
        let (dir, stored, hc) = health_fixture(script, retries, start_period_ms);
        let (stop, stopped) = mpsc::channel();
        let monitor = {
            let (dir, stored, hc) = (dir.path().to_owned(), stored.clone(), hc.clone());
            std::thread::spawn(move || shim::check_health(&dir, &stored, &hc, &stopped))
        };
        let deadline = Instant::now() + patience;
        let mut health = String::new();
        while health != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            health = fs::read_to_string(dir.path().join(HEALTH_FILE)).unwrap_or_default();
        }
        drop(stop);
        monitor.join().unwrap();
        health
    }

    #[test]
    fn a_passing_probe_makes_a_container_healthy() {
        let patience = Duration::from_secs(10);
        assert_eq!(
            health_becomes("exit 0", 3, 0, "healthy", patience),
            "healthy"
        );
    }

    #[test]
    fn failing_probes_make_it_unhealthy_after_the_retries() {
        // The probe counts its runs in a file: unhealthy is reported after the third failure.
        let (dir, stored, hc) = health_fixture("echo x >> runs; exit 1", 3, 0);
        let (stop, stopped) = mpsc::channel();
        let monitor = {
            let (d, stored, hc) = (dir.path().to_owned(), stored.clone(), hc.clone());
            std::thread::spawn(move || shim::check_health(&d, &stored, &hc, &stopped))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.path().join(HEALTH_FILE).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(stop);
        monitor.join().unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(HEALTH_FILE)).unwrap(),
            "unhealthy"
        );
        let runs = fs::read_to_string(dir.path().join("runs"))
            .unwrap()
            .lines()
            .count();
        assert!((3..=4).contains(&runs), "{runs} probes ran");
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        // With a long start period and one retry, failing probes (some 25 in half a second)
        // never make it unhealthy; without the start period, the first one does.
        let half_a_second = Duration::from_millis(500);
        assert_eq!(
            health_becomes("exit 1", 1, 60_000, "unhealthy", half_a_second),
            ""
        );
        let patience = Duration::from_secs(10);
        assert_eq!(
            health_becomes("exit 1", 1, 0, "unhealthy", patience),
            "unhealthy"
        );
    }
}
