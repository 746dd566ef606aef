//! The hollow runtime: runs nothing, so one process can stand in for thousands of hosts.
//!
//! Scale tests need agents whose containers cost nothing: a hollow container is an entry in a
//! map, "running" from `start` until `stop`, with no task, timer or thread of its own (timed
//! exits are computed when someone looks). It still behaves like a runtime where the
//! supervisor can tell, so the conformance suite holds it to the same checks as the others;
//! three labels script what a real container would do:
//!
//! - [`LABEL_EXIT_CODE`] and [`LABEL_RUN_MS`]: exit with that code after that many
//!   milliseconds of running (either alone: code 0, or at once);
//! - [`LABEL_HEALTH`]: `healthy` or `unhealthy`, reported once started when the spec has a
//!   health check (default `healthy`); without one, health is [`Health::None`].
//!
//! A stop ends a running container at once with 143 (128 + SIGTERM), whatever the timeout.
//! Images are all present except names starting with `hollow-missing`, which are
//! [`RuntimeError::ImageUnavailable`]. Logs are one line. Everything lives in memory: a
//! restarted hollow agent has forgotten its containers, and [`Runtime::list`] sees only those
//! of this instance.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    ContainerSpec, ContainerState, Existing, Health, LABEL_TASK, LogStream, Runtime, RuntimeError,
    RuntimeKind,
};

/// Label: the exit code a hollow container exits with after [`LABEL_RUN_MS`].
pub const LABEL_EXIT_CODE: &str = "com.berth.hollow.exit-code";
/// Label: how many milliseconds a hollow container runs before it exits with
/// [`LABEL_EXIT_CODE`].
pub const LABEL_RUN_MS: &str = "com.berth.hollow.run-ms";
/// Label: the health a hollow container with a health check reports, `healthy` or
/// `unhealthy`.
pub const LABEL_HEALTH: &str = "com.berth.hollow.health";
/// Image names that are never available.
pub const MISSING_IMAGE_PREFIX: &str = "hollow-missing";

/// The exit code of a stopped hollow container: killed by SIGTERM.
const EXIT_STOPPED: i32 = 143;

/// Runs nothing: a container runs from `start` until `stop` (or its scripted exit).
#[derive(Default)]
pub struct HollowRuntime {
    containers: Mutex<HashMap<String, Arc<Container>>>,
}

struct Container {
    runtime_name: String,
    task_arn: String,
    container_name: String,
    labels: BTreeMap<String, String>,
    /// How long it runs and what it exits with, when scripted.
    exit: Option<(Duration, i32)>,
    /// What it reports once started.
    health: Health,
    phase: watch::Sender<Phase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running { exit_at: Option<(Instant, i32)> },
    Exited(i32),
}

impl Phase {
    /// The phase now: a running container whose scripted exit is due has exited.
    fn now(self) -> Phase {
        match self {
            Phase::Running {
                exit_at: Some((at, code)),
            } if Instant::now() >= at => Phase::Exited(code),
            phase => phase,
        }
    }
}

impl Container {
    /// The phase now, recorded so that waiters see a scripted exit too.
    fn phase(&self) -> Phase {
        self.phase.send_if_modified(|phase| {
            let now = phase.now();
            let changed = now != *phase;
            *phase = now;
            changed
        });
        *self.phase.borrow()
    }

    fn state(&self) -> ContainerState {
        let phase = self.phase();
        let exit_code = match phase {
            Phase::Exited(code) => Some(code),
            _ => None,
        };
        let health = match (self.health, phase) {
            (Health::None, _) => Health::None,
            (_, Phase::Created) => Health::Starting,
            (health, _) => health,
        };
        ContainerState {
            running: matches!(phase, Phase::Running { .. }),
            exited: exit_code.is_some(),
            exit_code,
            health,
            ..ContainerState::default()
        }
    }
}

impl HollowRuntime {
    pub fn new() -> HollowRuntime {
        HollowRuntime::default()
    }

    fn containers(&self) -> MutexGuard<'_, HashMap<String, Arc<Container>>> {
        // The map is consistent after every statement, so a panic elsewhere cannot leave it
        // half-updated: a poisoned lock is still good.
        self.containers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<Container>, RuntimeError> {
        self.containers()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }
}

fn label<T: std::str::FromStr>(
    labels: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, RuntimeError> {
    labels
        .get(name)
        .map(|value| {
            value.trim().parse().map_err(|_| {
                RuntimeError::Failed(format!("label {name}: {value:?} is not a valid value"))
            })
        })
        .transpose()
}

#[async_trait]
impl Runtime for HollowRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Hollow
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        Ok("hollow".to_owned())
    }

    async fn prepare_image(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        if image.starts_with(MISSING_IMAGE_PREFIX) {
            return Err(RuntimeError::ImageUnavailable(format!(
                "image {image} is not available (hollow images named {MISSING_IMAGE_PREFIX}... \
                 never are)"
            )));
        }
        Ok(None)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let code = label::<i32>(&spec.labels, LABEL_EXIT_CODE)?;
        let run_ms = label::<u64>(&spec.labels, LABEL_RUN_MS)?;
        let exit = match (code, run_ms) {
            (None, None) => None,
            (code, run_ms) => Some((
                Duration::from_millis(run_ms.unwrap_or(0)),
                code.unwrap_or(0),
            )),
        };
        let health = match spec.labels.get(LABEL_HEALTH).map(String::as_str) {
            None | Some("healthy") => Health::Healthy,
            Some("unhealthy") => Health::Unhealthy,
            Some(other) => {
                return Err(RuntimeError::Failed(format!(
                    "label {LABEL_HEALTH}: {other:?} is neither healthy nor unhealthy"
                )));
            }
        };
        let container = Container {
            runtime_name: spec.runtime_name.clone(),
            task_arn: spec.task_arn.clone(),
            container_name: spec.container_name.clone(),
            labels: spec.labels.clone(),
            exit,
            health: if spec.health_check.is_some() {
                health
            } else {
                Health::None
            },
            phase: watch::Sender::new(Phase::Created),
        };
        let mut containers = self.containers();
        if containers.contains_key(&spec.runtime_name) {
            return Err(RuntimeError::Failed(format!(
                "a container named {} already exists",
                spec.runtime_name
            )));
        }
        containers.insert(spec.runtime_name.clone(), Arc::new(container));
        Ok(spec.runtime_name.clone())
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let container = self.get(id)?;
        let exit_at = container
            .exit
            .map(|(run, code)| (Instant::now() + run, code));
        container.phase.send_if_modified(|phase| {
            let created = *phase == Phase::Created;
            if created {
                *phase = Phase::Running { exit_at };
            }
            created
        });
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        Ok(self.get(id)?.state())
    }

    async fn wait(&self, id: &str) -> Result<i32, RuntimeError> {
        let container = self.get(id)?;
        let mut changes = container.phase.subscribe();
        loop {
            match container.phase() {
                Phase::Exited(code) => return Ok(code),
                Phase::Created => {
                    return Err(RuntimeError::Failed(format!(
                        "container {id} has not been started"
                    )));
                }
                Phase::Running { exit_at: None } => {
                    // The sender lives as long as `container`: this cannot fail.
                    let _ = changes.changed().await;
                }
                Phase::Running {
                    exit_at: Some((at, _)),
                } => {
                    tokio::select! {
                        _ = changes.changed() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }

    async fn stop(&self, id: &str, _timeout: Duration) -> Result<(), RuntimeError> {
        let container = self.get(id)?;
        // Look first, so that a scripted exit that is due wins over the stop.
        if let Phase::Running { .. } = container.phase() {
            container.phase.send_if_modified(|phase| {
                let running = matches!(phase, Phase::Running { .. });
                if running {
                    *phase = Phase::Exited(EXIT_STOPPED);
                }
                running
            });
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut containers = self.containers();
        if let Some(container) = containers.get(id) {
            if let Phase::Running { .. } = container.phase() {
                return Err(RuntimeError::Failed("container is running".into()));
            }
            containers.remove(id);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Existing>, RuntimeError> {
        let containers: Vec<Arc<Container>> = self
            .containers()
            .values()
            .filter(|c| c.labels.contains_key(LABEL_TASK))
            .cloned()
            .collect();
        Ok(containers
            .into_iter()
            .map(|c| Existing {
                id: c.runtime_name.clone(),
                runtime_name: c.runtime_name.clone(),
                task_arn: c.task_arn.clone(),
                container_name: c.container_name.clone(),
                labels: c.labels.clone(),
                state: c.state(),
            })
            .collect())
    }

    async fn logs(&self, id: &str, follow: bool) -> Result<LogStream, RuntimeError> {
        let container = self.get(id)?;
        let line = Bytes::from(format!(
            "hollow container {} started\n",
            container.runtime_name
        ));
        let tail = Tail {
            changes: container.phase.subscribe(),
            line: Some(line),
            follow,
        };
        Ok(Box::pin(futures::stream::unfold(
            tail,
            |mut tail| async move { tail.next().await.map(|line| (Ok(line), tail)) },
        )))
    }
}

/// A hollow container's log: its one line once started; when following, then nothing until
/// it exits or is removed (its phase's sender, held by the map alone, is then dropped).
struct Tail {
    changes: watch::Receiver<Phase>,
    /// The line, until it has been sent.
    line: Option<Bytes>,
    follow: bool,
}

impl Tail {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            let phase = self.changes.borrow_and_update().now();
            if phase != Phase::Created
                && let Some(line) = self.line.take()
            {
                return Some(line);
            }
            if !self.follow || matches!(phase, Phase::Exited(_)) {
                return None;
            }
            let exit_at = match phase {
                Phase::Running {
                    exit_at: Some((at, _)),
                } => Some(at),
                _ => None,
            };
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = sleep_until(exit_at) => {}
            }
        }
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::runtime::HealthCheck;

    fn spec(name: &str, labels: &[(&str, &str)]) -> ContainerSpec {
        let mut labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert(LABEL_TASK.to_owned(), format!("task-{name}"));
        ContainerSpec {
            runtime_name: name.to_owned(),
            task_arn: format!("task-{name}"),
            container_name: "app".to_owned(),
            image: "anything".to_owned(),
            labels,
            ..ContainerSpec::default()
        }
    }

    fn health_check() -> HealthCheck {
        HealthCheck {
            command: vec!["CMD-SHELL".into(), "exit 0".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 1,
            start_period: Duration::ZERO,
        }
    }

    async fn logs(rt: &HollowRuntime, id: &str, follow: bool) -> String {
        let chunks: Vec<Bytes> = rt
            .logs(id, follow)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        String::from_utf8(chunks.concat()).unwrap()
    }

    #[tokio::test]
    async fn a_container_runs_until_stopped() {
        let rt = Arc::new(HollowRuntime::new());
        let id = rt.create(&spec("a", &[])).await.unwrap();
        let created = rt.inspect(&id).await.unwrap();
        assert!(!created.running && !created.exited);
        assert_eq!(logs(&rt, &id, false).await, "");
        rt.start(&id).await.unwrap();
        let running = rt.inspect(&id).await.unwrap();
        assert!(running.running && !running.exited);
        assert_eq!(running.exit_code, None);
        assert_eq!(running.health, Health::None);
        assert_eq!(logs(&rt, &id, false).await, "hollow container a started\n");
        let waiting = tokio::spawn({
            let (rt, id) = (rt.clone(), id.clone());
            async move { rt.wait(&id).await }
        });
        let following = tokio::spawn({
            let (rt, id) = (rt.clone(), id.clone());
            async move { logs(&rt, &id, true).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished() && !following.is_finished());
        rt.stop(&id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(143));
        assert_eq!(following.await.unwrap(), "hollow container a started\n");
        let stopped = rt.inspect(&id).await.unwrap();
        assert!(!stopped.running && stopped.exited);
        assert_eq!(stopped.exit_code, Some(143));
        // Stopping again, and starting again, change nothing.
        rt.stop(&id, Duration::ZERO).await.unwrap();
        rt.start(&id).await.unwrap();
        assert_eq!(rt.inspect(&id).await.unwrap(), stopped);
        rt.remove(&id).await.unwrap();
        rt.remove(&id).await.unwrap();
        assert_eq!(
            rt.inspect(&id).await,
            Err(RuntimeError::NotFound(id.clone()))
        );
        assert_eq!(
            rt.stop(&id, Duration::ZERO).await,
            Err(RuntimeError::NotFound(id.clone()))
        );
        assert!(matches!(
            rt.logs(&id, false).await,
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn following_a_container_ends_when_it_is_removed() {
        let rt = Arc::new(HollowRuntime::new());
        let id = rt.create(&spec("r", &[])).await.unwrap();
        let following = tokio::spawn({
            let (rt, id) = (rt.clone(), id.clone());
            async move { logs(&rt, &id, true).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!following.is_finished());
        rt.remove(&id).await.unwrap();
        let text = tokio::time::timeout(Duration::from_secs(5), following)
            .await
            .expect("the log ends")
            .unwrap();
        assert_eq!(text, "");
    }

    #[tokio::test]
    async fn labels_script_the_exit() {
        let rt = HollowRuntime::new();
        let id = rt
            .create(&spec("b", &[(LABEL_EXIT_CODE, "3"), (LABEL_RUN_MS, "200")]))
            .await
            .unwrap();
        rt.start(&id).await.unwrap();
        let started = Instant::now();
        assert!(rt.inspect(&id).await.unwrap().running);
        assert_eq!(rt.wait(&id).await, Ok(3));
        assert!(started.elapsed() >= Duration::from_millis(200));
        let state = rt.inspect(&id).await.unwrap();
        assert_eq!(
            (state.running, state.exited, state.exit_code),
            (false, true, Some(3))
        );
        // A stop after the scripted exit keeps its code.
        rt.stop(&id, Duration::ZERO).await.unwrap();
        assert_eq!(rt.wait(&id).await, Ok(3));

        let id = rt
            .create(&spec("c", &[(LABEL_EXIT_CODE, "7")]))
            .await
            .unwrap();
        rt.start(&id).await.unwrap();
        assert_eq!(rt.wait(&id).await, Ok(7));
        let id = rt
            .create(&spec("d", &[(LABEL_RUN_MS, "10")]))
            .await
            .unwrap();
        rt.start(&id).await.unwrap();
        assert_eq!(rt.wait(&id).await, Ok(0));
    }

    #[tokio::test]
    async fn bad_labels_are_refused() {
        let rt = HollowRuntime::new();
        for labels in [
            [(LABEL_EXIT_CODE, "three")],
            [(LABEL_RUN_MS, "-1")],
            [(LABEL_HEALTH, "fine")],
        ] {
            assert!(matches!(
                rt.create(&spec("bad", &labels)).await,
                Err(RuntimeError::Failed(_))
            ));
        }
        assert!(rt.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn health_is_reported_once_started_when_there_is_a_check() {
        let rt = HollowRuntime::new();
        let mut healthy = spec("h", &[]);
        healthy.health_check = Some(health_check());
        let mut unhealthy = spec("u", &[(LABEL_HEALTH, "unhealthy")]);
        unhealthy.health_check = Some(health_check());
        let unchecked = spec("n", &[(LABEL_HEALTH, "unhealthy")]);
        for (spec, created, started) in [
            (healthy, Health::Starting, Health::Healthy),
            (unhealthy, Health::Starting, Health::Unhealthy),
            (unchecked, Health::None, Health::None),
        ] {
            let id = rt.create(&spec).await.unwrap();
            assert_eq!(rt.inspect(&id).await.unwrap().health, created, "{id}");
            rt.start(&id).await.unwrap();
            assert_eq!(rt.inspect(&id).await.unwrap().health, started, "{id}");
        }
    }

    #[tokio::test]
    async fn names_are_unique_and_running_containers_stay() {
        let rt = HollowRuntime::new();
        let id = rt.create(&spec("x", &[])).await.unwrap();
        assert!(matches!(
            rt.create(&spec("x", &[])).await,
            Err(RuntimeError::Failed(m)) if m.contains("already exists")
        ));
        rt.start(&id).await.unwrap();
        assert_eq!(
            rt.remove(&id).await,
            Err(RuntimeError::Failed("container is running".into()))
        );
        assert!(rt.inspect(&id).await.unwrap().running);
        let mut unlabelled = spec("y", &[]);
        unlabelled.labels.clear();
        rt.create(&unlabelled).await.unwrap();
        let listed = rt.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "x");
        assert_eq!(listed[0].task_arn, "task-x");
        assert_eq!(listed[0].container_name, "app");
        assert!(listed[0].state.running);
    }

    #[tokio::test]
    async fn only_hollow_missing_images_are_missing() {
        let rt = HollowRuntime::new();
        assert_eq!(rt.prepare_image("nginx:latest").await, Ok(None));
        assert!(matches!(
            rt.prepare_image("hollow-missing/app:1").await,
            Err(RuntimeError::ImageUnavailable(m)) if m.contains("hollow-missing/app:1")
        ));
    }
}
