//! One conformance suite for every runtime.
//!
//! The agent's supervisor drives Docker, host processes and hollow containers through the same
//! calls and reads the answers the same way, so each check here is written once against
//! `&dyn Runtime` and instantiated for all three: `process::<check>`, `docker::<check>`,
//! `hollow::<check>`. A [`Fixture`] says how to build specs for a runtime and what it can be
//! asked: the hollow runtime runs nothing, so its specs carry the labels that script what the
//! command would do, and the checks that look at a real process's output skip it.
//!
//! Docker checks need a Docker Engine and the `berth-test/busybox:latest` image, which
//! `scripts/test-image.sh` builds (once per test process, idempotently). Without an engine they
//! are skipped with a message, except under CI (`CI=true`), where they fail.
//!
//! The process runtime's specific behaviour (its shim, sandboxes, ports, users) is checked in
//! `process_only` at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_agent::runtime::docker::DockerRuntime;
use berth_agent::runtime::hollow::{HollowRuntime, LABEL_EXIT_CODE, LABEL_HEALTH, LABEL_RUN_MS};
use berth_agent::runtime::process::ProcessRuntime;
use berth_agent::runtime::{
    ContainerSpec, ContainerState, Health, HealthCheck, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_TASK,
    Runtime, RuntimeError,
};
use futures::TryStreamExt;

/// The image Docker checks run (see `scripts/test-image.sh`).
const DOCKER_IMAGE: &str = "berth-test/busybox:latest";
/// A command that runs until SIGTERM, then exits 0 at once.
const UNTIL_TERM: &str = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done";
/// How long any one step may take before a check gives up on it.
const PATIENCE: Duration = Duration::from_secs(30);

enum Backend {
    /// Sandboxes under this root; a new `ProcessRuntime` over it is a restarted agent.
    Process(tempfile::TempDir),
    Docker,
    Hollow,
}

/// One runtime under test, and what to expect of it.
struct Fixture {
    runtime: Arc<dyn Runtime>,
    backend: Backend,
    image: &'static str,
    /// An image `prepare_image` must report unavailable, where the runtime has images.
    missing_image: Option<&'static str>,
    /// Whether the spec's command really runs (false: the hollow runtime pretends).
    runs_commands: bool,
    /// Containers this check created, for the cleanup.
    created: Mutex<Vec<String>>,
}

impl Fixture {
    async fn process() -> Option<Fixture> {
        let root = tempfile::tempdir().expect("a temporary directory");
        Some(Fixture {
            runtime: Arc::new(process_runtime(&root)),
            backend: Backend::Process(root),
            image: "ignored",
            missing_image: None,
            runs_commands: true,
            created: Mutex::default(),
        })
    }

    async fn docker() -> Option<Fixture> {
        let runtime = match DockerRuntime::connect().await {
            Ok(runtime) => runtime,
            Err(e) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("Docker is unavailable: {e} (CI runs the Docker checks and needs Docker)")
            }
            Err(e) => {
                eprintln!("skipping: Docker is unavailable: {e}");
                return None;
            }
        };
        build_test_image();
        Some(Fixture {
            runtime: Arc::new(runtime),
            backend: Backend::Docker,
            image: DOCKER_IMAGE,
            missing_image: Some("localhost:1/berth-conformance/missing:latest"),
            runs_commands: true,
            created: Mutex::default(),
        })
    }

    async fn hollow() -> Option<Fixture> {
        Some(Fixture {
            runtime: Arc::new(HollowRuntime::new()),
            backend: Backend::Hollow,
            image: "berth-conformance:latest",
            missing_image: Some("hollow-missing/berth-conformance:latest"),
            runs_commands: false,
            created: Mutex::default(),
        })
    }

    fn rt(&self) -> &dyn Runtime {
        self.runtime.as_ref()
    }

    /// The runtime as a restarted agent sees it: a new instance over the same containers
    /// (the same instance for the hollow runtime, which keeps nothing across restarts).
    async fn reopen(&self) -> Arc<dyn Runtime> {
        match &self.backend {
            Backend::Process(root) => Arc::new(process_runtime(root)),
            Backend::Docker => Arc::new(DockerRuntime::connect().await.expect("Docker again")),
            Backend::Hollow => self.runtime.clone(),
        }
    }

    /// A spec running `sh -c script`, with a fresh name and berth's labels.
    fn spec(&self, script: &str) -> ContainerSpec {
        let name = unique_name();
        let task_arn = format!("arn:aws:ecs:us-east-1:000000000000:task/conformance/{name}");
        ContainerSpec {
            runtime_name: name,
            task_arn: task_arn.clone(),
            cluster: "conformance".into(),
            container_name: "app".into(),
            image: self.image.into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            labels: BTreeMap::from([
                (LABEL_TASK.to_owned(), task_arn),
                (LABEL_CONTAINER.to_owned(), "app".to_owned()),
                (LABEL_CLUSTER.to_owned(), "conformance".to_owned()),
            ]),
            stop_timeout: Duration::from_secs(10),
            ..ContainerSpec::default()
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> String {
        let id = self
            .rt()
            .create(spec)
            .await
            .unwrap_or_else(|e| panic!("creating {}: {e:?}", spec.runtime_name));
        self.created.lock().unwrap().push(id.clone());
        id
    }

    async fn run(&self, spec: &ContainerSpec) -> String {
        let id = self.create(spec).await;
        self.rt()
            .start(&id)
            .await
            .unwrap_or_else(|e| panic!("starting {}: {e:?}", spec.runtime_name));
        id
    }

    async fn wait(&self, id: &str) -> i32 {
        tokio::time::timeout(PATIENCE, self.rt().wait(id))
            .await
            .expect("the container exits")
            .expect("wait")
    }

    async fn inspect(&self, id: &str) -> ContainerState {
        self.rt().inspect(id).await.expect("inspect")
    }

    async fn logs(&self, id: &str, follow: bool) -> String {
        let chunks: Vec<bytes::Bytes> = tokio::time::timeout(PATIENCE, async {
            self.rt().logs(id, follow).await?.try_collect().await
        })
        .await
        .expect("the logs end")
        .expect("logs");
        String::from_utf8_lossy(&chunks.concat()).into_owned()
    }

    /// Waits for a line of output, so that what the script sets up first (a trap) is in place.
    async fn wait_for_output(&self, id: &str, line: &str) {
        if !self.runs_commands {
            return;
        }
        let deadline = Instant::now() + PATIENCE;
        while !self.logs(id, false).await.lines().any(|l| l == line) {
            assert!(Instant::now() < deadline, "{id} never printed {line:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the health is `want`; every health seen on the way must be in `allowed`.
    async fn health_becomes(&self, id: &str, want: Health, allowed: &[Health]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let health = self.inspect(id).await.health;
            if health == want {
                return;
            }
            assert!(
                allowed.contains(&health),
                "{id}: health {health:?} on the way to {want:?}"
            );
            assert!(
                Instant::now() < deadline,
                "{id}: health still {health:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops and removes what the check created, passed or failed.
    async fn cleanup(&self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        for id in created {
            let _ = self.rt().stop(&id, Duration::ZERO).await;
            let _ = self.rt().remove(&id).await;
        }
    }
}

fn process_runtime(root: &tempfile::TempDir) -> ProcessRuntime {
    ProcessRuntime::new(
        PathBuf::from(env!("CARGO_BIN_EXE_berth")),
        root.path().to_owned(),
    )
}

/// `berth-conf-<pid>-<n>`: unique across the test processes that nextest runs at once.
fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "berth-conf-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `scripts/test-image.sh` once per test process; it does nothing when the image is there.
fn build_test_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-image.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{script} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
}

/// Makes a spec exit with `code` after `run_ms` in the hollow runtime too (the others run
/// the command, which must do the same).
fn scripted_exit(mut spec: ContainerSpec, code: i32, run_ms: u64) -> ContainerSpec {
    spec.labels
        .insert(LABEL_EXIT_CODE.to_owned(), code.to_string());
    spec.labels
        .insert(LABEL_RUN_MS.to_owned(), run_ms.to_string());
    spec
}

fn health_check(command: &str) -> HealthCheck {
    HealthCheck {
        command: vec!["CMD-SHELL".into(), command.into()],
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        retries: 2,
        start_period: Duration::ZERO,
    }
}

// ---- The checks ----

async fn exit_code_zero_is_reported(f: &Fixture) {
    exit_code_is_reported(f, 0).await;
}

async fn exit_code_three_is_reported(f: &Fixture) {
    exit_code_is_reported(f, 3).await;
}

async fn exit_code_is_reported(f: &Fixture, code: i32) {
    // Long enough to be seen running even on a loaded machine.
    let spec = scripted_exit(f.spec(&format!("sleep 2; exit {code}")), code, 2000);
    let id = f.run(&spec).await;
    let running = f.inspect(&id).await;
    assert!(running.running, "{running:?}");
    assert!(!running.exited, "{running:?}");
    assert_eq!(running.exit_code, None);
    assert_eq!(f.wait(&id).await, code);
    let exited = f.inspect(&id).await;
    assert!(!exited.running, "{exited:?}");
    assert!(exited.exited, "{exited:?}");
    assert_eq!(exited.exit_code, Some(code));
    // Waiting on an exited container answers at once, with the same code.
    assert_eq!(f.wait(&id).await, code);
}

async fn a_created_container_is_neither_running_nor_exited(f: &Fixture) {
    let id = f.create(&f.spec(UNTIL_TERM)).await;
    let created = f.inspect(&id).await;
    assert!(!created.running && !created.exited, "{created:?}");
    assert_eq!(created.exit_code, None);
    f.rt()
        .remove(&id)
        .await
        .expect("removing a created container");
    assert!(matches!(
        f.rt().inspect(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
}

async fn stop_waits_out_the_timeout_for_a_container_ignoring_sigterm(f: &Fixture) {
    let spec = f.spec("trap '' TERM; echo ready; while true; do sleep 1; done");
    let id = f.run(&spec).await;
    f.wait_for_output(&id, "ready").await;
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    f.rt().stop(&id, timeout).await.expect("stop");
    let took = started.elapsed();
    assert!(
        took >= timeout,
        "stopped after {took:?}, before the timeout"
    );
    assert!(
        took < timeout + Duration::from_secs(5),
        "stopped after {took:?}"
    );
    let state = f.inspect(&id).await;
    assert!(state.exited && !state.running, "{state:?}");
    assert_eq!(state.exit_code, Some(137), "SIGKILLed: 128 + 9");
    assert_eq!(f.wait(&id).await, 137);
}

async fn stop_is_quick_for_a_container_that_exits_on_sigterm(f: &Fixture) {
    let id = f.run(&f.spec(UNTIL_TERM)).await;
    f.wait_for_output(&id, "ready").await;
    let started = Instant::now();
    f.rt()
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    let state = f.inspect(&id).await;
    assert!(state.exited && !state.running, "{state:?}");
    // The trap exits 0; a hollow container "dies" of the SIGTERM.
    let expected = if f.runs_commands { 0 } else { 143 };
    assert_eq!(state.exit_code, Some(expected));
    assert_eq!(f.wait(&id).await, expected);
}

/// A program run without a shell (which would reset its signal mask itself) dies of the
/// stop's SIGTERM at once. Reported: process-runtime commands inherited the shim's blocked
/// signals, so every stop of, say, `sleep` or an HTTP server waited out its stop timeout and
/// ended in SIGKILL (137). (Not a Docker check: there the command is the container's PID 1,
/// which the kernel shields from signals it has no handler for, as `docker stop` shows.)
async fn a_command_run_without_a_shell_dies_of_sigterm(f: &Fixture) {
    let mut spec = f.spec("");
    spec.command = vec!["sleep".into(), "600".into()];
    let id = f.run(&spec).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    f.rt()
        .stop(&id, Duration::from_secs(20))
        .await
        .expect("stop");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert_eq!(f.wait(&id).await, 143, "died of SIGTERM: 128 + 15");
}

async fn stop_and_remove_are_idempotent(f: &Fixture) {
    let id = f.run(&f.spec(UNTIL_TERM)).await;
    f.wait_for_output(&id, "ready").await;
    f.rt()
        .stop(&id, Duration::from_secs(10))
        .await
        .expect("stop");
    let stopped = f.inspect(&id).await;
    assert!(stopped.exited, "{stopped:?}");
    f.rt()
        .stop(&id, Duration::from_secs(10))
        .await
        .expect("stopping a stopped container");
    assert_eq!(f.inspect(&id).await, stopped);
    f.rt().remove(&id).await.expect("remove");
    f.rt()
        .remove(&id)
        .await
        .expect("removing a removed container");
    assert!(matches!(
        f.rt().inspect(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
}

async fn a_running_container_is_not_removed(f: &Fixture) {
    let id = f.run(&f.spec(UNTIL_TERM)).await;
    match f.rt().remove(&id).await {
        Err(RuntimeError::Failed(_)) => {}
        other => panic!("removing a running container: {other:?}"),
    }
    assert!(f.inspect(&id).await.running);
}

async fn unknown_ids_are_not_found(f: &Fixture) {
    let id = unique_name();
    let not_found = |what: &str, result: Result<(), RuntimeError>| match result {
        Err(RuntimeError::NotFound(_)) => {}
        other => panic!("{what} of an unknown container: {other:?}"),
    };
    not_found("inspect", f.rt().inspect(&id).await.map(drop));
    not_found("wait", f.rt().wait(&id).await.map(drop));
    not_found("start", f.rt().start(&id).await);
    not_found("stop", f.rt().stop(&id, Duration::ZERO).await);
    not_found("logs", f.rt().logs(&id, false).await.map(drop));
    // What is not there is removed already.
    f.rt()
        .remove(&id)
        .await
        .expect("removing an unknown container");
}

async fn a_runtime_name_is_created_once(f: &Fixture) {
    let spec = f.spec(UNTIL_TERM);
    let id = f.create(&spec).await;
    match f.rt().create(&spec).await {
        Err(RuntimeError::Failed(_)) => {}
        other => panic!("creating {} again: {other:?}", spec.runtime_name),
    }
    let state = f.inspect(&id).await;
    assert!(!state.running && !state.exited, "{state:?}");
}

async fn command_environment_and_working_directory_reach_the_process(f: &Fixture) {
    let mut spec = f.spec("unused");
    spec.entry_point = vec!["sh".into(), "-c".into()];
    spec.command = vec![
        r#"echo "greeting=$GREETING"; echo "cwd=$(pwd)"; echo "arg=$1"; echo oops >&2"#.into(),
        "zero".into(),
        "one".into(),
    ];
    spec.environment = vec![("GREETING".into(), "hello, world".into())];
    spec.working_directory = Some("/tmp".into());
    let id = f.run(&spec).await;
    assert_eq!(f.wait(&id).await, 0);
    // Docker copies stdout and stderr separately: only each stream keeps its order.
    let logs = f.logs(&id, false).await;
    let (stderr, stdout): (Vec<&str>, Vec<&str>) = logs.lines().partition(|l| *l == "oops");
    assert_eq!(
        stdout,
        ["greeting=hello, world", "cwd=/tmp", "arg=one"],
        "{logs:?}"
    );
    assert_eq!(stderr, ["oops"], "{logs:?}");
}

async fn followed_logs_end_at_exit_with_all_the_output(f: &Fixture) {
    let spec = scripted_exit(f.spec("echo first; sleep 1; echo second"), 0, 1000);
    let id = f.run(&spec).await;
    let started = Instant::now();
    let text = f.logs(&id, true).await;
    let state = f.inspect(&id).await;
    assert!(
        state.exited,
        "the logs ended after {:?}, before the exit: {state:?}",
        started.elapsed()
    );
    let expected = if f.runs_commands {
        "first\nsecond\n".to_owned()
    } else {
        format!("hollow container {} started\n", spec.runtime_name)
    };
    assert_eq!(text, expected);
    // Without follow, the same, at once.
    assert_eq!(f.logs(&id, false).await, expected);
}

async fn a_passing_health_check_makes_it_healthy(f: &Fixture) {
    let mut spec = f.spec(UNTIL_TERM);
    spec.health_check = Some(health_check("exit 0"));
    spec.labels
        .insert(LABEL_HEALTH.to_owned(), "healthy".to_owned());
    let id = f.run(&spec).await;
    f.health_becomes(&id, Health::Healthy, &[Health::Starting])
        .await;
}

async fn a_failing_health_check_makes_it_unhealthy(f: &Fixture) {
    let mut spec = f.spec(UNTIL_TERM);
    spec.health_check = Some(health_check("exit 1"));
    spec.labels
        .insert(LABEL_HEALTH.to_owned(), "unhealthy".to_owned());
    let id = f.run(&spec).await;
    f.health_becomes(&id, Health::Unhealthy, &[Health::Starting])
        .await;
    assert!(f.inspect(&id).await.running, "unhealthy, still running");
}

async fn without_a_health_check_health_is_none(f: &Fixture) {
    let id = f.run(&f.spec(UNTIL_TERM)).await;
    assert_eq!(f.inspect(&id).await.health, Health::None);
}

async fn a_restarted_agent_finds_and_stops_a_running_container(f: &Fixture) {
    let mut spec = f.spec(UNTIL_TERM);
    spec.labels
        .insert("com.example.team".to_owned(), "berth".to_owned());
    let id = f.run(&spec).await;
    f.wait_for_output(&id, "ready").await;
    let again = f.reopen().await;
    let found = again
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|e| e.runtime_name == spec.runtime_name)
        .unwrap_or_else(|| panic!("{} is not listed", spec.runtime_name));
    assert_eq!(found.id, id);
    assert_eq!(found.task_arn, spec.task_arn);
    assert_eq!(found.container_name, spec.container_name);
    for (name, value) in &spec.labels {
        assert_eq!(found.labels.get(name), Some(value), "label {name}");
    }
    assert!(found.state.running, "{:?}", found.state);
    again
        .stop(&found.id, Duration::from_secs(10))
        .await
        .expect("stop from the restarted agent");
    let expected = if f.runs_commands { 0 } else { 143 };
    assert_eq!(
        tokio::time::timeout(PATIENCE, again.wait(&found.id))
            .await
            .expect("exits")
            .expect("wait"),
        expected
    );
    // The first instance sees the same.
    assert_eq!(f.inspect(&id).await.exit_code, Some(expected));
}

async fn a_missing_image_is_unavailable(f: &Fixture) {
    let missing = f
        .missing_image
        .expect("a runtime with images names a missing one");
    f.rt()
        .prepare_image(f.image)
        .await
        .expect("the test image is available");
    match f.rt().prepare_image(missing).await {
        Err(RuntimeError::ImageUnavailable(message)) => assert!(!message.is_empty()),
        other => panic!("preparing {missing}: {other:?}"),
    }
}

/// Instantiates the checks for the runtimes they apply to, as `<runtime>::<check>`: `all` for
/// every runtime, `processes` for those that run a real process (not hollow), `images` for
/// those that have images (not process). Each test cleans up what it created, passed or not.
macro_rules! conformance {
    (
        all: [$($all:ident),* $(,)?],
        processes: [$($processes:ident),* $(,)?],
        images: [$($images:ident),* $(,)?] $(,)?
    ) => {
        conformance!(@runtime process = process; $($all,)* $($processes,)*);
        conformance!(@runtime docker = docker; $($all,)* $($processes,)* $($images,)*);
        conformance!(@runtime hollow = hollow; $($all,)* $($images,)*);
    };
    (@runtime $module:ident = $runtime:ident; $($check:ident,)*) => {
        mod $module {
            use futures::FutureExt as _;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(fixture) = super::Fixture::$runtime().await else {
                        return;
                    };
                    let outcome = std::panic::AssertUnwindSafe(super::$check(&fixture))
                        .catch_unwind()
                        .await;
                    fixture.cleanup().await;
                    if let Err(panic) = outcome {
                        std::panic::resume_unwind(panic);
                    }
                }
            )*
        }
    };
}

conformance! {
    all: [
        exit_code_zero_is_reported,
        exit_code_three_is_reported,
        a_created_container_is_neither_running_nor_exited,
        stop_is_quick_for_a_container_that_exits_on_sigterm,
        stop_and_remove_are_idempotent,
        a_running_container_is_not_removed,
        unknown_ids_are_not_found,
        a_runtime_name_is_created_once,
        followed_logs_end_at_exit_with_all_the_output,
        a_passing_health_check_makes_it_healthy,
        a_failing_health_check_makes_it_unhealthy,
        without_a_health_check_health_is_none,
        a_restarted_agent_finds_and_stops_a_running_container,
    ],
    processes: [
        stop_waits_out_the_timeout_for_a_container_ignoring_sigterm,
        command_environment_and_working_directory_reach_the_process,
    ],
    images: [a_missing_image_is_unavailable],
}

// ---- What only the process runtime does ----

impl Fixture {
    /// The process runtime's root, where sandboxes are by default.
    fn root(&self) -> PathBuf {
        match &self.backend {
            Backend::Process(root) => root.path().to_owned(),
            Backend::Docker | Backend::Hollow => panic!("only the process runtime has a root"),
        }
    }
}

/// `/proc/<pid>/stat` after the command name: state, ppid, pgrp, session, ...
fn proc_stat(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The pid recorded in a sandbox file (`<pid> <start time>`).
fn recorded_pid(sandbox: &std::path::Path, file: &str) -> i32 {
    let text = std::fs::read_to_string(sandbox.join(file)).expect(file);
    text.split_whitespace()
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{file} holds {text:?}"))
}

async fn the_shim_is_detached_from_the_agent(f: &Fixture) {
    assert!(
        f.rt()
            .version()
            .await
            .unwrap()
            .starts_with("process (shim ")
    );
    let spec = f.spec(UNTIL_TERM);
    let id = f.run(&spec).await;
    f.wait_for_output(&id, "ready").await;
    let sandbox = f.root().join(&spec.runtime_name);
    let shim = recorded_pid(&sandbox, "shim.pid");
    let child = recorded_pid(&sandbox, "child.pid");
    let shim_stat = proc_stat(shim).expect("the shim runs");
    let child_stat = proc_stat(child).expect("the command runs");
    // Not the agent's child, and a session of its own: a SIGKILLed agent takes neither the
    // shim nor, through its process group or terminal, the command.
    assert_ne!(
        shim_stat[1],
        std::process::id().to_string(),
        "the shim's parent"
    );
    assert_eq!(shim_stat[3], shim.to_string(), "the shim leads its session");
    assert_eq!(child_stat[1], shim.to_string(), "the command's parent");
    assert_eq!(
        child_stat[2],
        child.to_string(),
        "the command leads its process group"
    );
    assert_eq!(
        child_stat[3],
        shim.to_string(),
        "the command is in the shim's session"
    );
}

async fn a_sandbox_elsewhere_is_found_by_a_new_runtime(f: &Fixture) {
    let elsewhere = tempfile::tempdir().unwrap();
    let mut spec = f.spec(UNTIL_TERM);
    let sandbox = elsewhere.path().join("task").join("app");
    spec.sandbox_dir = Some(sandbox.clone());
    let id = f.run(&spec).await;
    f.wait_for_output(&id, "ready").await;
    assert_eq!(
        std::fs::read_to_string(sandbox.join("output.log")).unwrap(),
        "ready\n"
    );
    let again = f.reopen().await;
    let listed = again.list().await.unwrap();
    assert!(
        listed.iter().any(|e| e.id == id && e.state.running),
        "{listed:?}"
    );
    again.stop(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(again.wait(&id).await, Ok(0));
    again.remove(&id).await.unwrap();
    assert!(!sandbox.exists(), "the sandbox is removed");
    assert!(again.list().await.unwrap().is_empty());
}

async fn a_killed_shim_leaves_a_killed_container(f: &Fixture) {
    let spec = f.spec(UNTIL_TERM);
    let id = f.run(&spec).await;
    f.wait_for_output(&id, "ready").await;
    let sandbox = f.root().join(&spec.runtime_name);
    let shim = recorded_pid(&sandbox, "shim.pid");
    let child = recorded_pid(&sandbox, "child.pid");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &shim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(f.wait(&id).await, 137);
    let state = f.inspect(&id).await;
    assert!(state.exited && !state.running, "{state:?}");
    assert!(
        state.error.as_deref().is_some_and(|e| e.contains("shim")),
        "{state:?}"
    );
    // The orphaned command was killed with the shim's absence noticed (it may linger as a
    // zombie until init reaps it).
    let deadline = Instant::now() + PATIENCE;
    while proc_stat(child).is_some_and(|stat| stat[0] != "Z") {
        assert!(Instant::now() < deadline, "the command {child} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ports_user_and_ulimits_reach_the_process(f: &Fixture) {
    let mut spec = f.spec(
        r#"echo "$PORT $PORT0 $PORT1 $PORT_8080 $PORT_9090"; ulimit -n; id -u; echo "$HOME""#,
    );
    spec.ports = [(8080, 31080), (9090, 31090)]
        .into_iter()
        .map(
            |(container_port, host_port)| berth_agent::runtime::PortBinding {
                container_port,
                host_port,
                protocol: berth_agent::runtime::Protocol::Tcp,
            },
        )
        .collect();
    spec.ulimits = vec![berth_agent::runtime::Ulimit {
        name: "nofile".into(),
        soft: 123,
        hard: 456,
    }];
    let as_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if as_root {
        spec.user = Some("nobody".into());
        // nobody cannot enter the sandbox (a private temporary directory).
        spec.working_directory = Some("/".into());
    }
    let id = f.run(&spec).await;
    assert_eq!(f.wait(&id).await, 0);
    let logs = f.logs(&id, false).await;
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines[..2],
        ["31080 31080 31090 31080 31090", "123"],
        "{logs:?}"
    );
    if as_root {
        assert_eq!(lines[2..], ["65534", "/nonexistent"], "{logs:?}");
    }
}

async fn a_missing_program_does_not_start(f: &Fixture) {
    let mut spec = f.spec("unused");
    spec.command = vec!["/nonexistent/berth-program".into()];
    let id = f.create(&spec).await;
    match f.rt().start(&id).await {
        Err(RuntimeError::Failed(message)) => {
            assert!(message.contains("/nonexistent/berth-program"), "{message}")
        }
        other => panic!("starting a missing program: {other:?}"),
    }
    let state = f.inspect(&id).await;
    assert!(state.exited && !state.running, "{state:?}");
    assert_eq!(state.exit_code, Some(127));
    assert!(state.error.is_some(), "{state:?}");
    assert_eq!(f.wait(&id).await, 127);
}

async fn a_followed_log_ends_when_the_container_is_removed(f: &Fixture) {
    let id = f.create(&f.spec(UNTIL_TERM)).await;
    let logs = f.rt().logs(&id, true).await.expect("logs");
    let following = tokio::spawn(logs.try_collect::<Vec<bytes::Bytes>>());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !following.is_finished(),
        "following a created container waits"
    );
    f.rt().remove(&id).await.expect("remove");
    let chunks = tokio::time::timeout(PATIENCE, following)
        .await
        .expect("the log ends")
        .unwrap()
        .expect("no error");
    assert!(chunks.is_empty(), "{chunks:?}");
}

conformance!(@runtime process_only = process;
    the_shim_is_detached_from_the_agent,
    a_sandbox_elsewhere_is_found_by_a_new_runtime,
    a_killed_shim_leaves_a_killed_container,
    ports_user_and_ulimits_reach_the_process,
    a_missing_program_does_not_start,
    a_followed_log_ends_when_the_container_is_removed,
    a_command_run_without_a_shell_dies_of_sigterm,
);
