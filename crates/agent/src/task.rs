//! One task's supervisor: from an assignment to running containers and back to STOPPED,
//! reporting each step.
//!
//! ```text
//!  plan ─► prepare images ─► create+start in dependsOn order ─► report RUNNING
//!    │            │                     │                              │
//!    └── refused ─┴─ unavailable ───────┴─ cannot start ──┐            ▼
//!                                                         │    watch: exits, health,
//!                                                         │    desired STOPPED
//!                                                         ▼            │
//!                                   stop the rest (stopTimeout) ◄──────┘
//!                                   report STOPPED with exit codes
//! ```
//! Everything the supervisor learns comes from its runtime and arrives as an [`Event`] on one
//! channel, so the logic is a single loop over events with no shared mutable state. On an
//! agent restart the supervisor is handed the containers the runtime still holds for the task
//! and adopts them instead of starting new ones: a running one is watched again, one that
//! exited while the agent was away is reported as it exited.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_api::agent::{Assignment, ContainerHealth, HealthReport};
use berth_api::types as api;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::runtime::{Existing, Health, Runtime, RuntimeError, RuntimeKind};
use crate::spec::{self, Condition, ContainerPlan, Host};

/// What every supervisor of an agent shares.
pub(crate) struct Shared {
    pub client: Client,
    /// How this agent reaches its servers (for the poll endpoint they name).
    pub transport: berth_client::Transport,
    /// The instance's own credential (the log endpoint checks signatures against it).
    pub credentials: berth_client::Credentials,
    pub instance_arn: String,
    pub runtimes: Runtimes,
    pub default_runtime: RuntimeKind,
    pub forced_runtime: Option<RuntimeKind>,
    /// How long a finished task's containers are kept (for logs) before they are removed.
    pub cleanup_wait: Duration,
    /// (task id, container name) → where it runs, for the logs endpoint.
    pub containers: Mutex<HashMap<(String, String), (RuntimeKind, String)>>,
}

/// Why the agent has no Docker runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerUnavailable {
    /// A hollow agent runs every task on the hollow runtime.
    #[error("the agent is hollow")]
    Hollow,
    /// The Docker engine did not answer (or answered an error).
    #[error(transparent)]
    Engine(#[from] RuntimeError),
}

/// Why a task cannot start at all: it cannot be planned, or the runtime it needs is missing.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Plan(#[from] spec::PlanError),
    #[error(transparent)]
    Runtime(#[from] DockerUnavailable),
}

/// Why a container could not be launched; the message is its reason (ECS's error names).
#[derive(Debug, thiserror::Error)]
enum LaunchError {
    /// The runtime refused to create it.
    #[error("CannotCreateContainerError: {0}")]
    Create(RuntimeError),
    /// The runtime created it but could not start it.
    #[error("CannotStartContainerError: {0}")]
    Start(RuntimeError),
}

/// Why a container's `dependsOn` condition can never be met.
#[derive(Debug, thiserror::Error)]
enum DependencyError {
    /// It depends on a container the task does not have.
    #[error("{container} depends on {dependency}, which is not in the task")]
    Missing {
        container: String,
        dependency: String,
    },
    /// SUCCESS, but the dependency exited with another code (or none).
    #[error(
        "dependency condition SUCCESS of {container} on {dependency} failed: it exited with {}",
        code.map_or_else(|| "no exit code".to_owned(), |c| format!("code {c}"))
    )]
    Unsuccessful {
        container: String,
        dependency: String,
        code: Option<i32>,
    },
    /// HEALTHY, but the dependency exited or is unhealthy.
    #[error(
        "dependency condition HEALTHY of {container} on {dependency} failed: it is {}",
        if *exited { "exited" } else { "unhealthy" }
    )]
    Unhealthy {
        container: String,
        dependency: String,
        exited: bool,
    },
    /// HEALTHY, but the dependency has no health check to become healthy by.
    #[error(
        "dependency condition HEALTHY of {container} on {dependency} can never be met: it has no healthCheck"
    )]
    NoHealthCheck {
        container: String,
        dependency: String,
    },
}

/// The runtimes an agent has.
pub(crate) struct Runtimes {
    pub docker: Result<Arc<dyn Runtime>, DockerUnavailable>,
    pub process: Arc<dyn Runtime>,
    pub hollow: Arc<dyn Runtime>,
}

impl Runtimes {
    pub fn get(&self, kind: RuntimeKind) -> Result<&Arc<dyn Runtime>, DockerUnavailable> {
        match kind {
            RuntimeKind::Docker => self.docker.as_ref().map_err(Clone::clone),
            RuntimeKind::Process => Ok(&self.process),
            RuntimeKind::Hollow => Ok(&self.hollow),
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the runtime tells the supervisor.
enum Event {
    Exited {
        index: usize,
        id: String,
        code: Option<i32>,
        reason: Option<String>,
    },
    Health {
        index: usize,
        id: String,
        health: Health,
    },
}

/// One container of the task, as the supervisor knows it.
struct Slot {
    plan: ContainerPlan,
    id: Option<String>,
    exited: Option<Option<i32>>,
    health: Health,
    started_at: Instant,
    reason: Option<String>,
    monitors: Vec<JoinHandle<()>>,
}

impl Slot {
    fn running(&self) -> bool {
        self.id.is_some() && self.exited.is_none()
    }
}

/// Why a task ends.
enum Ending {
    Stopped,
    EssentialExited(String),
    Failed(String),
}

pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    assignment: Assignment,
    stop: watch::Receiver<bool>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    slots: Vec<Slot>,
    pull: (Option<f64>, Option<f64>),
}

/// Runs a task to its end. `existing` are its containers found in the runtime (after an agent
/// restart); `stop` turns true when the task's desired status becomes STOPPED.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    assignment: Assignment,
    existing: Vec<Existing>,
    stop: watch::Receiver<bool>,
) {
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut s = Supervisor {
        shared,
        assignment,
        stop,
        events_tx,
        events,
        slots: Vec::new(),
        pull: (None, None),
    };
    let host = Host {
        instance_arn: &s.shared.instance_arn,
        default_runtime: s.shared.default_runtime,
        forced_runtime: s.shared.forced_runtime,
    };
    let planned = spec::plan(&s.assignment, &host)
        .map_err(StartError::from)
        .and_then(|p| {
            let rt = s.shared.runtimes.get(p.runtime)?.clone();
            Ok((rt, p))
        });
    let (runtime, plan) = match planned {
        Ok(ok) => ok,
        Err(why) => {
            s.report_stopped(Some(format!("CannotStartContainerError: {why}")))
                .await;
            return;
        }
    };
    let kind = runtime.kind();
    let mut adopted: HashMap<String, Existing> = existing
        .into_iter()
        .map(|e| (e.container_name.clone(), e))
        .collect();
    for plan in plan.containers {
        let found = adopted.remove(&plan.spec.container_name);
        s.slots.push(Slot {
            plan,
            id: found.as_ref().map(|e| e.id.clone()),
            exited: None,
            health: found.as_ref().map_or(Health::None, |e| e.state.health),
            started_at: Instant::now(),
            reason: None,
            monitors: Vec::new(),
        });
    }
    for i in 0..s.slots.len() {
        if let Some(id) = s.slots[i].id.clone() {
            s.register(kind, i, &id);
            s.watch(&runtime, i, &id);
        }
    }

    let ending = s.run(&runtime).await;
    s.finish(&runtime, ending).await;
    for slot in &mut s.slots {
        for m in slot.monitors.drain(..) {
            m.abort();
        }
    }
    // Keep the containers a while for their logs, then remove them.
    let ids: Vec<(String, String)> = s
        .slots
        .iter()
        .filter_map(|slot| Some((slot.plan.spec.container_name.clone(), slot.id.clone()?)))
        .collect();
    tokio::time::sleep(s.shared.cleanup_wait).await;
    for (name, id) in ids {
        if let Err(e) = runtime.remove(&id).await {
            tracing::debug!(container = %id, error = %e, "removing a finished container failed");
        }
        s.shared
            .containers
            .lock()
            .expect("containers lock")
            .remove(&(s.assignment.task_id.clone(), name));
    }
}

impl Supervisor {
    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    fn register(&self, kind: RuntimeKind, index: usize, id: &str) {
        let key = (
            self.assignment.task_id.clone(),
            self.slots[index].plan.spec.container_name.clone(),
        );
        self.shared
            .containers
            .lock()
            .expect("containers lock")
            .insert(key, (kind, id.to_owned()));
    }

    /// Starts the monitors of a container: its exit, and its health if it has a check.
    fn watch(&mut self, runtime: &Arc<dyn Runtime>, index: usize, id: &str) {
        let tx = self.events_tx.clone();
        let rt = runtime.clone();
        let owned = id.to_owned();
        self.slots[index].monitors.push(tokio::spawn(async move {
            let (code, reason) = match rt.wait(&owned).await {
                Ok(code) => (Some(code), None),
                Err(RuntimeError::NotFound(_)) => (
                    None,
                    Some("the container disappeared from its runtime".to_owned()),
                ),
                Err(e) => (None, Some(e.to_string())),
            };
            let _ = tx.send(Event::Exited {
                index,
                id: owned,
                code,
                reason,
            });
        }));
        if let Some(check) = &self.slots[index].plan.spec.health_check {
            let every = check
                .interval
                .clamp(Duration::from_millis(250), Duration::from_secs(1));
            let tx = self.events_tx.clone();
            let rt = runtime.clone();
            let owned = id.to_owned();
            self.slots[index].monitors.push(tokio::spawn(async move {
                let mut last = Health::None;
                loop {
                    match rt.inspect(&owned).await {
                        Ok(state) if !state.exited => {
                            if state.health != last {
                                last = state.health;
                                let event = Event::Health {
                                    index,
                                    id: owned.clone(),
                                    health: last,
                                };
                                if tx.send(event).is_err() {
                                    return;
                                }
                            }
                        }
                        _ => return,
                    }
                    tokio::time::sleep(every).await;
                }
            }));
        }
    }

    /// Creates and starts one container.
    async fn launch(
        &mut self,
        runtime: &Arc<dyn Runtime>,
        index: usize,
    ) -> Result<(), LaunchError> {
        let spec = self.slots[index].plan.spec.clone();
        let id = runtime.create(&spec).await.map_err(LaunchError::Create)?;
        self.slots[index].id = Some(id.clone());
        self.register(runtime.kind(), index, &id);
        runtime.start(&id).await.map_err(LaunchError::Start)?;
        self.slots[index].started_at = Instant::now();
        self.watch(runtime, index, &id);
        Ok(())
    }

    /// Whether container `index` may start: `Ok(true)` now, `Ok(false)` not yet, `Err` never.
    fn ready(&self, index: usize) -> Result<bool, DependencyError> {
        let name = &self.slots[index].plan.spec.container_name;
        for dep in &self.slots[index].plan.depends_on {
            let d = self
                .slots
                .iter()
                .find(|s| s.plan.spec.container_name == dep.container)
                .ok_or_else(|| DependencyError::Missing {
                    container: name.clone(),
                    dependency: dep.container.clone(),
                })?;
            let met = match dep.condition {
                Condition::Start => d.id.is_some(),
                Condition::Complete => d.exited.is_some(),
                Condition::Success => match d.exited {
                    Some(Some(0)) => true,
                    Some(code) => {
                        return Err(DependencyError::Unsuccessful {
                            container: name.clone(),
                            dependency: dep.container.clone(),
                            code,
                        });
                    }
                    None => false,
                },
                Condition::Healthy => match (d.health, d.exited) {
                    (Health::Healthy, _) => true,
                    (_, Some(_)) | (Health::Unhealthy, _) => {
                        return Err(DependencyError::Unhealthy {
                            container: name.clone(),
                            dependency: dep.container.clone(),
                            exited: d.exited.is_some(),
                        });
                    }
                    (Health::None, None) if d.plan.spec.health_check.is_none() => {
                        return Err(DependencyError::NoHealthCheck {
                            container: name.clone(),
                            dependency: dep.container.clone(),
                        });
                    }
                    _ => false,
                },
            };
            if !met {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits for the next event or a stop request; `None` on a stop request.
    async fn next(&mut self) -> Option<Event> {
        if self.stop_requested() {
            return None;
        }
        tokio::select! {
            event = self.events.recv() => event,
            changed = self.stop.changed() => {
                // A dropped sender means the agent is gone: treat as a stop only if asked.
                if changed.is_err() { std::future::pending::<()>().await; }
                None
            }
        }
    }

    /// Applies an event; `Some` when it ends the task.
    async fn apply(&mut self, runtime: &Arc<dyn Runtime>, event: Event) -> Option<Ending> {
        match event {
            Event::Health { index, id, health } => {
                if self.slots[index].id.as_deref() != Some(id.as_str()) {
                    return None;
                }
                self.slots[index].health = health;
                let status = match health {
                    Health::Healthy => "HEALTHY",
                    Health::Unhealthy => "UNHEALTHY",
                    Health::None | Health::Starting => "UNKNOWN",
                };
                let report = HealthReport {
                    cluster: self.assignment.cluster.clone(),
                    task: self.assignment.task_arn.clone(),
                    containers: vec![ContainerHealth {
                        container_name: self.slots[index].plan.spec.container_name.clone(),
                        health_status: status.into(),
                    }],
                };
                let client = self.shared.client.clone();
                retry("health report", || client.report_health(&report)).await;
                None
            }
            Event::Exited {
                index,
                id,
                code,
                reason,
            } => {
                if self.slots[index].id.as_deref() != Some(id.as_str())
                    || self.slots[index].exited.is_some()
                {
                    return None;
                }
                let stopping = self.stop_requested();
                let slot = &mut self.slots[index];
                slot.exited = Some(code);
                slot.reason = reason.clone();
                let name = slot.plan.spec.container_name.clone();
                if let Some(policy) = &slot.plan.restart
                    && !slot.plan.essential
                    && !stopping
                    && code.is_some_and(|c| !policy.ignored_exit_codes.contains(&c))
                    && slot.started_at.elapsed() >= policy.attempt_period
                {
                    tracing::info!(task = %self.assignment.task_id, container = %name, ?code, "restarting per restartPolicy");
                    let _ = runtime.remove(&id).await;
                    self.slots[index].exited = None;
                    match self.launch(runtime, index).await {
                        Ok(()) => {
                            self.report_container(index, "RUNNING").await;
                            return None;
                        }
                        Err(why) => {
                            self.slots[index].exited = Some(code);
                            self.slots[index].reason = Some(why.to_string());
                        }
                    }
                }
                self.report_container(index, "STOPPED").await;
                if self.slots[index].plan.essential {
                    let detail = match code {
                        Some(c) => format!(
                            "Essential container in task exited: {name} exited with code {c}"
                        ),
                        None => format!(
                            "Essential container in task exited: {name} ({})",
                            reason.unwrap_or_else(|| "exit code unknown".into())
                        ),
                    };
                    return Some(Ending::EssentialExited(detail));
                }
                None
            }
        }
    }

    async fn run(&mut self, runtime: &Arc<dyn Runtime>) -> Ending {
        if self.stop_requested() && self.slots.iter().all(|s| s.id.is_none()) {
            return Ending::Stopped;
        }
        // Images of the containers still to create.
        let images: BTreeSet<String> = self
            .slots
            .iter()
            .filter(|s| s.id.is_none())
            .map(|s| s.plan.spec.image.clone())
            .collect();
        if !images.is_empty() {
            self.pull.0 = Some(now_secs());
            for image in &images {
                if let Err(e) = runtime.prepare_image(image).await {
                    self.pull.1 = Some(now_secs());
                    let why = match e {
                        RuntimeError::ImageUnavailable(m) => m,
                        other => format!("CannotPullContainerError: {other}"),
                    };
                    for slot in &mut self.slots {
                        if slot.plan.spec.image == *image {
                            slot.reason = Some(why.clone());
                        }
                    }
                    return Ending::Failed(why);
                }
            }
            self.pull.1 = Some(now_secs());
        }

        // Start in dependsOn order.
        loop {
            let mut progressed = false;
            for i in 0..self.slots.len() {
                if self.slots[i].id.is_some() || self.stop_requested() {
                    continue;
                }
                match self.ready(i) {
                    Ok(true) => {
                        if let Err(why) = self.launch(runtime, i).await {
                            let why = why.to_string();
                            self.slots[i].reason = Some(why.clone());
                            return Ending::Failed(why);
                        }
                        progressed = true;
                    }
                    Ok(false) => {}
                    Err(why) => {
                        self.slots[i].reason = Some(why.to_string());
                        return Ending::Failed(format!("DependencyConditionFailed: {why}"));
                    }
                }
            }
            if self.slots.iter().all(|s| s.id.is_some()) {
                break;
            }
            if !progressed {
                match self.next().await {
                    Some(event) => {
                        if let Some(ending) = self.apply(runtime, event).await {
                            return ending;
                        }
                    }
                    None => return Ending::Stopped,
                }
            }
        }

        self.report_running().await;
        loop {
            match self.next().await {
                Some(event) => {
                    if let Some(ending) = self.apply(runtime, event).await {
                        return ending;
                    }
                }
                None => return Ending::Stopped,
            }
        }
    }

    /// Stops what still runs and reports the task STOPPED.
    async fn finish(&mut self, runtime: &Arc<dyn Runtime>, ending: Ending) {
        let stops = self.slots.iter().filter(|s| s.running()).map(|s| {
            let rt = runtime.clone();
            let id = s.id.clone().unwrap_or_default();
            let timeout = s.plan.spec.stop_timeout;
            async move {
                if let Err(e) = rt.stop(&id, timeout).await {
                    tracing::warn!(container = %id, error = %e, "stopping a container failed");
                }
                let code = rt.inspect(&id).await.ok().and_then(|s| s.exit_code);
                (id, code)
            }
        });
        let codes: HashMap<String, Option<i32>> =
            futures::future::join_all(stops).await.into_iter().collect();
        for slot in &mut self.slots {
            if let Some(id) = &slot.id
                && let Some(code) = codes.get(id)
            {
                slot.exited = Some(*code);
            }
        }
        let reason = match ending {
            Ending::Stopped => None,
            Ending::EssentialExited(why) | Ending::Failed(why) => Some(why),
        };
        self.report_stopped(reason).await;
    }

    fn container_change(&self, slot: &Slot, status: &str) -> api::ContainerStateChange {
        let stopped = status == "STOPPED";
        api::ContainerStateChange {
            container_name: Some(slot.plan.spec.container_name.clone()),
            runtime_id: slot.id.clone(),
            status: Some(status.into()),
            exit_code: if stopped { slot.exited.flatten() } else { None },
            reason: if stopped { slot.reason.clone() } else { None },
            network_bindings: (!stopped && !slot.plan.bindings.is_empty())
                .then(|| slot.plan.bindings.clone()),
            ..Default::default()
        }
    }

    async fn report_running(&self) {
        let containers = self
            .slots
            .iter()
            .map(|s| {
                let status = if s.exited.is_some() {
                    "STOPPED"
                } else {
                    "RUNNING"
                };
                self.container_change(s, status)
            })
            .collect();
        self.submit_task("RUNNING", None, containers, None).await;
    }

    async fn report_stopped(&self, reason: Option<String>) {
        let containers = self
            .slots
            .iter()
            .map(|s| self.container_change(s, "STOPPED"))
            .collect();
        self.submit_task("STOPPED", reason, containers, Some(now_secs()))
            .await;
    }

    async fn report_container(&self, index: usize, status: &str) {
        let change = self.container_change(&self.slots[index], status);
        let request = api::SubmitContainerStateChangeRequest {
            cluster: Some(self.assignment.cluster.clone()),
            task: Some(self.assignment.task_arn.clone()),
            container_name: change.container_name,
            runtime_id: change.runtime_id,
            status: change.status,
            exit_code: change.exit_code,
            reason: change.reason,
            network_bindings: change.network_bindings,
        };
        let client = self.shared.client.clone();
        retry("SubmitContainerStateChange", || {
            client.ecs::<_, api::SubmitContainerStateChangeResponse>(
                "SubmitContainerStateChange",
                &request,
            )
        })
        .await;
    }

    async fn submit_task(
        &self,
        status: &str,
        reason: Option<String>,
        containers: Vec<api::ContainerStateChange>,
        execution_stopped_at: Option<f64>,
    ) {
        let request = api::SubmitTaskStateChangeRequest {
            cluster: Some(self.assignment.cluster.clone()),
            task: Some(self.assignment.task_arn.clone()),
            status: Some(status.into()),
            reason,
            containers: Some(containers),
            pull_started_at: self.pull.0,
            pull_stopped_at: self.pull.1,
            execution_stopped_at,
            ..Default::default()
        };
        let client = self.shared.client.clone();
        retry("SubmitTaskStateChange", || {
            client.ecs::<_, api::SubmitTaskStateChangeResponse>("SubmitTaskStateChange", &request)
        })
        .await;
    }
}

/// Calls `f` until it succeeds or fails for a reason retrying cannot fix. Each failed call has
/// tried every server once already (the client fails over at once), so the backoff here
/// applies only once all of them failed; repeating a report, on the same server or another,
/// is safe (see `Client::send`).
async fn retry<T, F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::client::ClientError>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(_) => return,
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "{what} failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what} was refused");
                return;
            }
        }
    }
}
