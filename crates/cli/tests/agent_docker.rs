//! The agent end to end on a real Docker Engine: a `berth server` and a `berth agent` process
//! (the real binary), driven by the official AWS SDK for Rust, running ECS tasks as Docker
//! containers of the `berth-test/busybox:latest` image (`scripts/test-image.sh`).
//!
//! Covered: dynamic host ports and the logs proxy; an essential container's exit ending the
//! task (and a non-essential one's not); `stopTimeout`; health checks; `dependsOn` ordering
//! (SUCCESS, START, HEALTHY); StopTask; an image that cannot be pulled; an agent killed with
//! SIGKILL and restarted (re-attaching to its containers, stopping what was stopped meanwhile,
//! reporting what died meanwhile); and a lost agent whose tasks are marked STOPPED.
//!
//! Every test has its own server, its own agent (own `--data-dir`, `--listen 127.0.0.1:0`) and
//! its own cluster name, so tests running in parallel never touch each other's containers: the
//! agent only manages containers labelled with its own instance ARN, and each test removes the
//! containers labelled with its cluster when it ends, even when it fails. What Docker really did
//! is checked with the `docker` CLI, independently of the agent's runtime code.
//!
//! Without a Docker Engine the tests are skipped with a message, except under CI (`CI=true`),
//! where they fail.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::builders::ContainerDefinitionBuilder;
use aws_sdk_ecs::types::{
    Container, ContainerCondition, ContainerDefinition, ContainerDependency, ContainerInstance,
    HealthCheck, HealthStatus, MountPoint, NetworkMode, PortMapping, Task, TaskStopCode,
    TransportProtocol, Volume,
};
use common::Berth;
use common::agent::AgentProcess;
use common::docker::{Cleanup, LABEL_TASK, docker_or_skip};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The image every container runs.
const IMAGE: &str = "berth-test/busybox:latest";
/// How long any one awaited change may take (the CI machine is small and busy).
const PATIENCE: Duration = Duration::from_secs(60);
/// How often a wait looks again.
const TICK: Duration = Duration::from_millis(200);
/// A script that runs until SIGTERM, then exits 0 (within a fraction of a second).
const UNTIL_TERM: &str = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.2; done";

/// The label naming the instance whose agent made a container.
const LABEL_INSTANCE: &str = "com.berth.instance-arn";

/// The last `/`-separated part of an ARN.
fn id_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

// --- Docker, through its CLI ---

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// `docker ARGS...`, which must succeed; its stdout.
#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Full ids of the containers, running or not, labelled `key=value`.
fn containers_labelled(key: &str, value: &str) -> Vec<String> {
    docker_ok(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={key}={value}"),
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `docker inspect ID`: the container's details.
#[track_caller]
fn inspect(id: &str) -> Value {
    let text = docker_ok(&["inspect", "--type", "container", id]);
    let mut all: Vec<Value> = serde_json::from_str(&text).expect("docker inspect prints JSON");
    all.pop().expect("one container")
}

/// A timestamp Docker prints (`2024-01-02T03:04:05.123456789Z`, RFC 3339 in UTC) in seconds
/// since the epoch.
#[track_caller]
fn docker_time(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    let (date, time) = s
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or_else(|| panic!("not a UTC timestamp: {s}"));
    let num = |t: &str| -> i64 { t.parse().unwrap_or_else(|_| panic!("bad timestamp {s}")) };
    let d: Vec<i64> = date.split('-').map(num).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(num).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    secs as f64 + format!("0.{frac}").parse::<f64>().expect("fraction")
}

// --- task definitions ---

/// A container of the test image running `sh -c SCRIPT`.
fn sh(name: &str, script: &str) -> ContainerDefinitionBuilder {
    ContainerDefinition::builder()
        .name(name)
        .image(IMAGE)
        .memory_reservation(16)
        .command("sh")
        .command("-c")
        .command(script)
}

/// A `CMD-SHELL` health check with the shortest timings ECS allows.
fn health_check(shell: &str) -> HealthCheck {
    HealthCheck::builder()
        .command("CMD-SHELL")
        .command(shell)
        .interval(5)
        .timeout(2)
        .retries(1)
        .start_period(0)
        .build()
        .unwrap()
}

fn depends_on(container: &str, condition: ContainerCondition) -> ContainerDependency {
    ContainerDependency::builder()
        .container_name(container)
        .condition(condition)
        .build()
        .unwrap()
}

fn mount(volume: &str, path: &str) -> MountPoint {
    MountPoint::builder()
        .source_volume(volume)
        .container_path(path)
        .build()
}

#[track_caller]
fn container<'a>(task: &'a Task, name: &str) -> &'a Container {
    task.containers()
        .iter()
        .find(|c| c.name() == Some(name))
        .unwrap_or_else(|| panic!("task has no container {name}: {task:?}"))
}

/// One line on a task: status, stop code, reason and each container's state.
fn summary(t: &Task) -> String {
    let containers: Vec<String> = t
        .containers()
        .iter()
        .map(|c| {
            format!(
                "{}={} exit={:?} health={:?} reason={:?}",
                c.name().unwrap_or_default(),
                c.last_status().unwrap_or_default(),
                c.exit_code(),
                c.health_status().map(HealthStatus::as_str),
                c.reason()
            )
        })
        .collect();
    format!(
        "last={} desired={} health={:?} stopCode={:?} stoppedReason={:?} containers=[{}]",
        t.last_status().unwrap_or_default(),
        t.desired_status().unwrap_or_default(),
        t.health_status().map(HealthStatus::as_str),
        t.stop_code().map(TaskStopCode::as_str),
        t.stopped_reason(),
        containers.join("; ")
    )
}

/// Calls `probe` every [`TICK`] until it answers `Ok`, for up to [`PATIENCE`]; the `Err` it
/// answered last is in the panic message.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {PATIENCE:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(TICK).await,
        }
    }
}

// --- HTTP ---

/// `GET path` from `127.0.0.1:port` over plain TCP: the whole response as text.
async fn http_get(port: u16, path: &str) -> Result<String, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

// --- one test's world ---

/// A server, an agent on its own cluster, and the cleanup of that cluster's containers.
/// Fields drop in order: the agent is killed first, then its containers are removed.
struct Env {
    agent: AgentProcess,
    _cleanup: Cleanup,
    client: Client,
    cluster: String,
    server: Berth,
}

impl Env {
    /// `None` (after saying so) when Docker is unavailable outside CI; panics under CI.
    async fn start(test: &str, server_flags: &[&str], agent_flags: &[&str]) -> Option<Env> {
        if !docker_or_skip() {
            return None;
        }
        let cluster = format!("agent-docker-{test}-{}", std::process::id());
        let cleanup = Cleanup {
            cluster: cluster.clone(),
        };
        let server = Berth::start_with(server_flags);
        let client = server.client();
        client
            .create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("CreateCluster");
        let agent = AgentProcess::start(&server.endpoint, &cluster, agent_flags);
        assert!(
            agent.ready_line.contains("(Docker "),
            "the agent must run tasks on Docker: {}",
            agent.ready_line
        );
        Some(Env {
            agent,
            _cleanup: cleanup,
            client,
            cluster,
            server,
        })
    }

    /// Registers a bridge-mode task definition; its ARN.
    async fn register(
        &self,
        family: &str,
        containers: Vec<ContainerDefinition>,
        volumes: Vec<Volume>,
    ) -> String {
        self.client
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::Bridge)
            .set_container_definitions(Some(containers))
            .set_volumes(Some(volumes))
            .send()
            .await
            .expect("RegisterTaskDefinition")
            .task_definition()
            .and_then(|d| d.task_definition_arn())
            .expect("a task definition ARN")
            .to_owned()
    }

    /// RunTask with one task, which must be placed; the task's ARN.
    async fn run(&self, task_definition: &str) -> String {
        let out = self
            .client
            .run_task()
            .cluster(&self.cluster)
            .task_definition(task_definition)
            .send()
            .await
            .expect("RunTask");
        assert!(
            out.failures().is_empty(),
            "RunTask failed: {:?}",
            out.failures()
        );
        assert_eq!(out.tasks().len(), 1, "{out:?}");
        out.tasks()[0].task_arn().expect("task ARN").to_owned()
    }

    async fn describe(&self, task: &str) -> Task {
        let out = self
            .client
            .describe_tasks()
            .cluster(&self.cluster)
            .tasks(task)
            .send()
            .await
            .expect("DescribeTasks");
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        out.tasks().first().expect("the task").clone()
    }

    /// Waits until the task satisfies `done`.
    async fn wait_task(&self, task: &str, what: &str, done: impl Fn(&Task) -> bool) -> Task {
        eventually(what, async || {
            let t = self.describe(task).await;
            if done(&t) { Ok(t) } else { Err(summary(&t)) }
        })
        .await
    }

    /// Waits until the task is RUNNING; fails at once if it stops instead.
    async fn wait_running(&self, task: &str) -> Task {
        let t = self
            .wait_task(task, "the task to be RUNNING", |t| {
                matches!(t.last_status(), Some("RUNNING" | "STOPPED"))
            })
            .await;
        assert_eq!(
            t.last_status(),
            Some("RUNNING"),
            "the task stopped instead of running: {}",
            summary(&t)
        );
        t
    }

    async fn wait_stopped(&self, task: &str) -> Task {
        self.wait_task(task, "the task to be STOPPED", |t| {
            t.last_status() == Some("STOPPED")
        })
        .await
    }

    async fn stop(&self, task: &str, reason: &str) {
        self.client
            .stop_task()
            .cluster(&self.cluster)
            .task(task)
            .reason(reason)
            .send()
            .await
            .expect("StopTask");
    }

    /// The agent's container instance, as the server sees it.
    async fn instance(&self) -> ContainerInstance {
        let out = self
            .client
            .describe_container_instances()
            .cluster(&self.cluster)
            .container_instances(&self.agent.instance_arn)
            .send()
            .await
            .expect("DescribeContainerInstances");
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        out.container_instances()[0].clone()
    }

    /// `GET /v1/tasks/{id}/logs?container=NAME` on the server: (status, body).
    async fn logs(&self, task: &str, container: &str) -> (u16, String) {
        let path = format!(
            "/v1/tasks/{}/logs?cluster={}&container={container}",
            id_of(task),
            self.cluster
        );
        let r = common::raw(&self.server.endpoint, "GET", &path, &[], b"").await;
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }
}

/// The one Docker container of a task's container, found by its labels.
#[track_caller]
fn only_container_of(task: &str, name: &str) -> String {
    let ids: Vec<String> = containers_labelled(LABEL_TASK, task)
        .into_iter()
        .filter(|id| inspect(id)["Config"]["Labels"]["com.berth.container-name"] == name)
        .collect();
    assert_eq!(ids.len(), 1, "containers of {task} named {name}: {ids:?}");
    ids[0].clone()
}

// ---------------------------------------------------------------------------------------------
// 1. Ports and logs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_web_container_answers_on_its_dynamic_host_port_and_its_logs_are_served() {
    let Some(env) = Env::start("web", &[], &[]).await else {
        return;
    };
    let web = sh(
        "web",
        "echo hello-from-berth > /www/index.html; echo serving /www; exec httpd -f -v -p 80 -h /www",
    )
    .port_mappings(
        PortMapping::builder()
            .container_port(80)
            .protocol(TransportProtocol::Tcp)
            .build(),
    )
    // httpd as PID 1 ignores SIGTERM.
    .stop_timeout(2)
    .build();
    let td = env.register("web", vec![web], vec![]).await;
    let task = env.run(&td).await;
    let t = env.wait_running(&task).await;

    let c = container(&t, "web");
    assert_eq!(c.last_status(), Some("RUNNING"));
    let [binding] = c.network_bindings() else {
        panic!("one network binding expected: {:?}", c.network_bindings());
    };
    assert_eq!(binding.container_port(), Some(80));
    assert_eq!(binding.protocol(), Some(&TransportProtocol::Tcp));
    let host_port = binding.host_port().expect("a host port") as u16;
    assert!(
        host_port >= 1024 && host_port != 80,
        "a dynamic host port, got {host_port}"
    );

    // Docker publishes exactly that port.
    let id = c.runtime_id().expect("runtimeId");
    let details = inspect(id);
    assert_eq!(details["State"]["Running"], true);
    assert_eq!(
        details["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        host_port.to_string(),
        "{}",
        details["HostConfig"]["PortBindings"]
    );

    // And httpd answers on it.
    let response = eventually("httpd to answer on the host port", async || {
        let text = http_get(host_port, "/index.html").await?;
        if text.contains("hello-from-berth") {
            Ok(text)
        } else {
            Err(format!("{text:?}"))
        }
    })
    .await;
    assert!(
        response.starts_with("HTTP/1.") && response.lines().next().unwrap().contains("200"),
        "{response}"
    );

    // The server proxies the container's output from the agent.
    let body = eventually(
        "the logs to hold the container's output",
        async || match env.logs(&task, "web").await {
            (200, body) if body.contains("serving /www") => Ok(body),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(body.contains("serving /www"), "{body}");
    let (status, body) = env.logs(&task, "nope").await;
    assert_eq!(status, 404, "{body}");

    // Followed, the stream delivers what was written and stays open.
    let path = format!(
        "/v1/tasks/{}/logs?cluster={}&container=web&follow=true",
        id_of(&task),
        env.cluster
    );
    let response = common::stream_get(&env.server.endpoint, &path).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("serving /www") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(data));
                }
            }
            other => panic!("the followed logs ended or stalled ({other:?}); got {seen:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Essential containers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_essential_container_exiting_stops_the_task() {
    let Some(env) = Env::start("essential", &[], &[]).await else {
        return;
    };
    let td = env
        .register(
            "exits",
            vec![sh("main", "echo bye; exit 3").build()],
            vec![],
        )
        .await;
    let task = env.run(&td).await;
    let t = env.wait_stopped(&task).await;
    assert_eq!(
        t.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{}",
        summary(&t)
    );
    let main = container(&t, "main");
    assert_eq!(main.exit_code(), Some(3), "{}", summary(&t));
    assert_eq!(main.last_status(), Some("STOPPED"));
    let reason = t.stopped_reason().unwrap_or_default();
    assert!(
        reason.contains("Essential container") && reason.contains("main"),
        "stoppedReason names the essential container: {reason:?}"
    );
    assert_eq!(t.desired_status(), Some("STOPPED"));

    let id = main.runtime_id().expect("runtimeId");
    let state = &inspect(id)["State"];
    assert_eq!(state["Running"], false);
    assert_eq!(state["ExitCode"], 3);
}

#[tokio::test]
async fn a_non_essential_container_exiting_leaves_the_task_running() {
    let Some(env) = Env::start("nonessential", &[], &[]).await else {
        return;
    };
    let td = env
        .register(
            "sidecar-exits",
            vec![
                sh("main", UNTIL_TERM).build(),
                sh("side", "sleep 1; exit 5").essential(false).build(),
            ],
            vec![],
        )
        .await;
    let task = env.run(&td).await;
    let t = env
        .wait_task(&task, "the non-essential container to exit", |t| {
            container(t, "side").last_status() == Some("STOPPED")
                || t.last_status() == Some("STOPPED")
        })
        .await;
    assert_eq!(t.last_status(), Some("RUNNING"), "{}", summary(&t));
    assert_eq!(
        container(&t, "side").exit_code(),
        Some(5),
        "{}",
        summary(&t)
    );

    // It stays that way (an observation window, not a synchronisation).
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let t = env.describe(&task).await;
        assert_eq!(t.last_status(), Some("RUNNING"), "{}", summary(&t));
        assert_eq!(container(&t, "main").last_status(), Some("RUNNING"));
        tokio::time::sleep(TICK).await;
    }
    let main = only_container_of(&task, "main");
    assert_eq!(inspect(&main)["State"]["Running"], true);
    let side = only_container_of(&task, "side");
    assert_eq!(inspect(&side)["State"]["ExitCode"], 5);
}

// ---------------------------------------------------------------------------------------------
// 3. stopTimeout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stop_timeout_is_honoured_for_a_container_that_ignores_sigterm() {
    let Some(env) = Env::start("stoptimeout", &[], &[]).await else {
        return;
    };
    let stubborn = sh(
        "stubborn",
        "trap '' TERM; echo ignoring TERM; while true; do sleep 0.2; done",
    )
    .stop_timeout(3)
    .build();
    let td = env.register("stubborn", vec![stubborn], vec![]).await;
    let task = env.run(&td).await;
    let t = env.wait_running(&task).await;
    let id = container(&t, "stubborn")
        .runtime_id()
        .expect("runtimeId")
        .to_owned();

    let asked = Instant::now();
    env.stop(&task, "testing stopTimeout").await;
    tokio::time::sleep_until((asked + Duration::from_millis(1500)).into()).await;
    let t = env.describe(&task).await;
    assert_eq!(
        t.last_status(),
        Some("RUNNING"),
        "1.5 s into a 3 s stopTimeout: {}",
        summary(&t)
    );
    assert_eq!(t.desired_status(), Some("STOPPED"));
    assert_eq!(inspect(&id)["State"]["Running"], true, "SIGTERM is ignored");

    let t = env.wait_stopped(&task).await;
    let elapsed = asked.elapsed();
    eprintln!("a container ignoring SIGTERM with stopTimeout 3 stopped in {elapsed:?}");
    assert!(
        elapsed >= Duration::from_secs(3),
        "stopped before its stopTimeout: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(15),
        "stopTimeout 3 took {elapsed:?}"
    );
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(
        container(&t, "stubborn").exit_code(),
        Some(137),
        "SIGKILL after the timeout: {}",
        summary(&t)
    );
    let state = &inspect(&id)["State"];
    assert_eq!(state["Running"], false);
    assert_eq!(state["ExitCode"], 137);
}

#[tokio::test]
async fn a_container_that_exits_on_sigterm_stops_promptly() {
    let Some(env) = Env::start("sigterm", &[], &[]).await else {
        return;
    };
    // The default stopTimeout (30 s) applies: a prompt stop is SIGTERM's doing.
    let td = env
        .register("polite", vec![sh("polite", UNTIL_TERM).build()], vec![])
        .await;
    let task = env.run(&td).await;
    env.wait_running(&task).await;

    let asked = Instant::now();
    env.stop(&task, "testing SIGTERM").await;
    let t = env.wait_stopped(&task).await;
    let elapsed = asked.elapsed();
    eprintln!("a container exiting on SIGTERM stopped in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "SIGTERM should stop it in a second or two, took {elapsed:?}"
    );
    let code = container(&t, "polite").exit_code();
    assert!(
        matches!(code, Some(0 | 143)),
        "exit code {code:?}: {}",
        summary(&t)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Health checks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_checks_make_containers_and_tasks_healthy_or_unhealthy() {
    let Some(env) = Env::start("health", &[], &[]).await else {
        return;
    };
    let sick = env
        .register(
            "sick",
            vec![
                sh("app", UNTIL_TERM)
                    .health_check(health_check("exit 1"))
                    .build(),
            ],
            vec![],
        )
        .await;
    let fine = env
        .register(
            "fine",
            vec![
                sh("app", UNTIL_TERM)
                    .health_check(health_check("true"))
                    .build(),
            ],
            vec![],
        )
        .await;
    let sick = env.run(&sick).await;
    let fine = env.run(&fine).await;

    let t = env
        .wait_task(&sick, "the failing check to make the task UNHEALTHY", |t| {
            t.health_status() == Some(&HealthStatus::Unhealthy)
                || t.last_status() == Some("STOPPED")
        })
        .await;
    assert_eq!(t.last_status(), Some("RUNNING"), "{}", summary(&t));
    let app = container(&t, "app");
    assert_eq!(app.health_status(), Some(&HealthStatus::Unhealthy));
    let id = app.runtime_id().expect("runtimeId");
    assert_eq!(inspect(id)["State"]["Health"]["Status"], "unhealthy");

    let t = env
        .wait_task(&fine, "the passing check to make the task HEALTHY", |t| {
            t.health_status() == Some(&HealthStatus::Healthy) || t.last_status() == Some("STOPPED")
        })
        .await;
    assert_eq!(t.last_status(), Some("RUNNING"), "{}", summary(&t));
    let app = container(&t, "app");
    assert_eq!(app.health_status(), Some(&HealthStatus::Healthy));
    let id = app.runtime_id().expect("runtimeId");
    assert_eq!(inspect(id)["State"]["Health"]["Status"], "healthy");
}

// ---------------------------------------------------------------------------------------------
// 5. dependsOn
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn depends_on_orders_the_start_of_containers() {
    let Some(env) = Env::start("dependson", &[], &[]).await else {
        return;
    };
    let shared = || vec![Volume::builder().name("shared").build()];

    // init must have exited 0 before app starts (app checks the flag init leaves), and
    // sidecar starts once app has.
    let ordered = env
        .register(
            "ordered",
            vec![
                sh("init", "sleep 2; echo ready > /shared/flag; exit 0")
                    .essential(false)
                    .mount_points(mount("shared", "/shared"))
                    .build(),
                sh(
                    "app",
                    &format!("test -f /shared/flag || {{ echo no flag; exit 7; }}; {UNTIL_TERM}"),
                )
                .mount_points(mount("shared", "/shared"))
                .depends_on(depends_on("init", ContainerCondition::Success))
                .build(),
                sh("sidecar", UNTIL_TERM)
                    .essential(false)
                    .depends_on(depends_on("app", ContainerCondition::Start))
                    .build(),
            ],
            shared(),
        )
        .await;
    // api starts only once db's health check has passed (the check leaves a file).
    let healthy = env
        .register(
            "healthy-dependency",
            vec![
                sh("db", UNTIL_TERM)
                    .essential(false)
                    .mount_points(mount("shared", "/shared"))
                    .health_check(health_check("touch /shared/db-was-healthy"))
                    .build(),
                sh(
                    "api",
                    &format!(
                        "test -f /shared/db-was-healthy || {{ echo db not healthy; exit 7; }}; {UNTIL_TERM}"
                    ),
                )
                .mount_points(mount("shared", "/shared"))
                .depends_on(depends_on("db", ContainerCondition::Healthy))
                .build(),
            ],
            shared(),
        )
        .await;
    let ordered = env.run(&ordered).await;
    let healthy = env.run(&healthy).await;

    let t = env.wait_running(&ordered).await;
    let init = container(&t, "init");
    assert_eq!(init.last_status(), Some("STOPPED"), "{}", summary(&t));
    assert_eq!(init.exit_code(), Some(0), "{}", summary(&t));
    assert_eq!(container(&t, "app").last_status(), Some("RUNNING"));
    assert_eq!(container(&t, "sidecar").last_status(), Some("RUNNING"));
    let state =
        |name: &str| inspect(container(&t, name).runtime_id().expect("runtimeId"))["State"].clone();
    let (init, app, sidecar) = (state("init"), state("app"), state("sidecar"));
    assert_eq!(init["ExitCode"], 0);
    assert_eq!(app["Running"], true, "app found init's flag: {app}");
    let init_finished = docker_time(&init["FinishedAt"]);
    let app_started = docker_time(&app["StartedAt"]);
    let sidecar_started = docker_time(&sidecar["StartedAt"]);
    assert!(
        init_finished <= app_started,
        "app started at {app_started}, before init finished at {init_finished}"
    );
    assert!(
        app_started <= sidecar_started,
        "sidecar started at {sidecar_started}, before app at {app_started}"
    );
    assert!(
        app_started - docker_time(&init["StartedAt"]) >= 2.0,
        "init sleeps 2 s before app may start"
    );

    let t = env.wait_running(&healthy).await;
    assert_eq!(
        container(&t, "db").health_status(),
        Some(&HealthStatus::Healthy),
        "{}",
        summary(&t)
    );
    assert_eq!(container(&t, "api").last_status(), Some("RUNNING"));
    let db = inspect(container(&t, "db").runtime_id().unwrap());
    let api = inspect(container(&t, "api").runtime_id().unwrap());
    assert_eq!(api["State"]["Running"], true, "api found db's file: {api}");
    let first_pass = db["State"]["Health"]["Log"]
        .as_array()
        .expect("db's health log")
        .iter()
        .filter(|probe| probe["ExitCode"] == 0)
        .map(|probe| docker_time(&probe["End"]))
        .fold(f64::INFINITY, f64::min);
    let api_started = docker_time(&api["State"]["StartedAt"]);
    assert!(
        first_pass <= api_started,
        "api started at {api_started}, before db's first passing check at {first_pass}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. StopTask
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stop_task_stops_the_docker_container() {
    let Some(env) = Env::start("stoptask", &[], &[]).await else {
        return;
    };
    let td = env
        .register("stoppable", vec![sh("main", UNTIL_TERM).build()], vec![])
        .await;
    let task = env.run(&td).await;
    let t = env.wait_running(&task).await;
    let id = container(&t, "main")
        .runtime_id()
        .expect("runtimeId")
        .to_owned();
    assert_eq!(only_container_of(&task, "main"), id);
    assert_eq!(inspect(&id)["State"]["Running"], true);
    assert_eq!(
        inspect(&id)["Config"]["Labels"][LABEL_INSTANCE],
        env.agent.instance_arn.as_str()
    );

    env.stop(&task, "no longer needed").await;
    let t = env.wait_stopped(&task).await;
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(t.stopped_reason(), Some("no longer needed"));
    let main = container(&t, "main");
    assert_eq!(main.last_status(), Some("STOPPED"));
    assert!(matches!(main.exit_code(), Some(0 | 143)), "{}", summary(&t));
    let state = &inspect(&id)["State"];
    assert_eq!(state["Running"], false, "{state}");
    assert_eq!(state["Status"], "exited", "{state}");

    // The stopped container is kept a while, so its logs are still there.
    let (status, body) = env.logs(&task, "main").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ready"), "{body:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. Images that cannot be pulled
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_task_whose_image_cannot_be_pulled_fails_to_start() {
    let Some(env) = Env::start("noimage", &[], &[]).await else {
        return;
    };
    let missing = sh("main", "true")
        .image("berth-test/does-not-exist:latest")
        .build();
    let td = env.register("no-image", vec![missing], vec![]).await;
    let asked = Instant::now();
    let task = env.run(&td).await;
    let t = env.wait_stopped(&task).await;
    let elapsed = asked.elapsed();
    eprintln!("a task with a missing image stopped in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert_eq!(
        t.stop_code(),
        Some(&TaskStopCode::TaskFailedToStart),
        "{}",
        summary(&t)
    );
    let reason = t.stopped_reason().unwrap_or_default();
    assert!(reason.contains("CannotPullContainerError"), "{reason:?}");
    assert!(
        reason.contains("berth-test/does-not-exist"),
        "the reason names the image: {reason:?}"
    );
    assert!(t.started_at().is_none(), "it never started: {t:?}");
    assert!(
        containers_labelled(LABEL_TASK, &task).is_empty(),
        "no container was created"
    );
}

#[tokio::test]
async fn a_container_that_cannot_start_says_so_once() {
    let Some(env) = Env::start("nostart", &[], &[]).await else {
        return;
    };
    // Docker creates the container, then cannot exec its entry point.
    let broken = sh("main", "true")
        .set_entry_point(Some(vec!["/does-not-exist".to_owned()]))
        .build();
    let td = env.register("no-start", vec![broken], vec![]).await;
    let task = env.run(&td).await;
    let t = env.wait_stopped(&task).await;
    assert_eq!(
        t.stop_code(),
        Some(&TaskStopCode::TaskFailedToStart),
        "{}",
        summary(&t)
    );
    let reason = t.stopped_reason().unwrap_or_default();
    assert!(
        reason.starts_with("CannotStartContainerError: ")
            && reason.matches("CannotStartContainerError").count() == 1,
        "the reason names the error once: {reason:?}"
    );
    assert!(
        reason.contains("does-not-exist"),
        "and says why: {reason:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Agent restarts
// ---------------------------------------------------------------------------------------------

/// Reported: the logs of a task that stopped before an agent restart were gone at once ("no
/// container … on this instance") although `--cleanup-wait` is 600 s. The restarted agent keeps
/// such containers, and serves their logs, for the cleanup wait.
#[tokio::test]
async fn logs_of_a_task_that_ended_before_an_agent_restart_are_kept() {
    let Some(mut env) = Env::start("ended-restart", &[], &[]).await else {
        return;
    };
    let td = env
        .register(
            "said-goodbye",
            vec![sh("main", "echo goodbye; exit 0").build()],
            vec![],
        )
        .await;
    let task = env.run(&td).await;
    let t = env.wait_stopped(&task).await;
    let id = container(&t, "main").runtime_id().unwrap().to_owned();
    env.agent.restart();
    // The restarted agent has retired the container (it is not assigned any more); give it the
    // first poll to do so, then the container is still there and its logs are served.
    eventually("the logs served after the restart", async || {
        match env.logs(&task, "main").await {
            (200, body) if body.contains("goodbye") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(inspect(&id)["State"]["Running"], false);
}

#[tokio::test]
async fn a_restarted_agent_reattaches_without_duplicates() {
    let Some(mut env) = Env::start("restart", &[], &[]).await else {
        return;
    };
    let td = env
        .register("long-running", vec![sh("main", UNTIL_TERM).build()], vec![])
        .await;
    let stopped = env.run(&td).await;
    let kept = env.run(&td).await;
    let stopped_id = container(&env.wait_running(&stopped).await, "main")
        .runtime_id()
        .unwrap()
        .to_owned();
    let kept_id = container(&env.wait_running(&kept).await, "main")
        .runtime_id()
        .unwrap()
        .to_owned();
    let instance = env.agent.instance_arn.clone();

    env.agent.kill();
    env.stop(&stopped, "stopped while the agent was down").await;
    let t = env.describe(&stopped).await;
    assert_eq!(
        (t.last_status(), t.desired_status()),
        (Some("RUNNING"), Some("STOPPED")),
        "nobody can stop it yet: {}",
        summary(&t)
    );
    assert_eq!(inspect(&stopped_id)["State"]["Running"], true);

    env.agent.restart();
    assert_eq!(
        env.agent.instance_arn, instance,
        "the restarted agent re-registers as the same container instance"
    );
    let listed = env
        .client
        .list_container_instances()
        .cluster(&env.cluster)
        .send()
        .await
        .expect("ListContainerInstances");
    assert_eq!(listed.container_instance_arns(), [instance.as_str()]);
    let i = env.instance().await;
    assert!(i.agent_connected(), "{i:?}");
    assert_eq!(i.status(), Some("ACTIVE"));

    // The task stopped meanwhile gets its container stopped...
    let t = env.wait_stopped(&stopped).await;
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(t.stopped_reason(), Some("stopped while the agent was down"));
    let state = &inspect(&stopped_id)["State"];
    assert_eq!(state["Running"], false, "{state}");
    assert_eq!(
        containers_labelled(LABEL_TASK, &stopped),
        [stopped_id.as_str()]
    );

    // ...and the other one runs on in the same container, with no second one started and
    // no STOPPED reported (an observation window, not a synchronisation).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let t = env.describe(&kept).await;
        assert_eq!(t.last_status(), Some("RUNNING"), "{}", summary(&t));
        assert_eq!(t.desired_status(), Some("RUNNING"));
        let main = container(&t, "main");
        assert_eq!(main.last_status(), Some("RUNNING"), "{}", summary(&t));
        assert_eq!(main.runtime_id(), Some(kept_id.as_str()));
        assert_eq!(containers_labelled(LABEL_TASK, &kept), [kept_id.as_str()]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(inspect(&kept_id)["State"]["Running"], true);
    // Its logs are served by the new agent process (which listens on a new port).
    let (status, body) = env.logs(&kept, "main").await;
    assert_eq!((status, body.contains("ready")), (200, true), "{body:?}");
    let mut on_instance = containers_labelled(LABEL_INSTANCE, &instance);
    on_instance.sort();
    let mut expected = vec![stopped_id, kept_id];
    expected.sort();
    assert_eq!(on_instance, expected, "the instance's containers");

    // The re-attached task is still managed: it stops on request.
    env.stop(&kept, "done").await;
    let t = env.wait_stopped(&kept).await;
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated));
}

#[tokio::test]
async fn a_container_that_died_while_the_agent_was_down_is_reported_stopped() {
    let Some(mut env) = Env::start("diedwhiledown", &[], &[]).await else {
        return;
    };
    let td = env
        .register("doomed", vec![sh("main", UNTIL_TERM).build()], vec![])
        .await;
    let task = env.run(&td).await;
    let id = container(&env.wait_running(&task).await, "main")
        .runtime_id()
        .unwrap()
        .to_owned();

    env.agent.kill();
    docker_ok(&["kill", &id]);
    let state = &inspect(&id)["State"];
    assert_eq!(
        (state["Running"].clone(), state["ExitCode"].clone()),
        (Value::from(false), Value::from(137))
    );
    let t = env.describe(&task).await;
    assert_eq!(
        t.last_status(),
        Some("RUNNING"),
        "nobody has told the server"
    );

    env.agent.restart();
    let t = env.wait_stopped(&task).await;
    assert_eq!(
        t.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{}",
        summary(&t)
    );
    let main = container(&t, "main");
    assert_eq!(main.exit_code(), Some(137), "{}", summary(&t));
    assert_eq!(main.runtime_id(), Some(id.as_str()));
    let reason = t.stopped_reason().unwrap_or_default();
    assert!(reason.contains("main"), "{reason:?}");
    // Reported as it was, not restarted.
    assert_eq!(containers_labelled(LABEL_TASK, &task), [id]);
}

// ---------------------------------------------------------------------------------------------
// 9. Lost agents
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_lost_agents_tasks_are_stopped_and_its_orphans_removed_when_it_returns() {
    let Some(mut env) = Env::start(
        "lost",
        &["--agent-heartbeat-timeout", "2", "--agent-lost-after", "2"],
        &["--poll-wait", "1", "--cleanup-wait", "3"],
    )
    .await
    else {
        return;
    };
    let td = env
        .register("orphaned", vec![sh("main", UNTIL_TERM).build()], vec![])
        .await;
    let task = env.run(&td).await;
    let id = container(&env.wait_running(&task).await, "main")
        .runtime_id()
        .unwrap()
        .to_owned();
    assert!(env.instance().await.agent_connected());

    env.agent.kill();
    let killed = Instant::now();
    let i = eventually("the instance to be disconnected", async || {
        let i = env.instance().await;
        if i.agent_connected() {
            Err(format!("{i:?}"))
        } else {
            Ok(i)
        }
    })
    .await;
    let disconnected = killed.elapsed();
    eprintln!("disconnected {disconnected:?} after the kill");
    // Heartbeat timeout 2 s, checked every second.
    assert!(
        disconnected < Duration::from_secs(15),
        "disconnected only after {disconnected:?}"
    );
    assert_eq!(i.status(), Some("ACTIVE"));

    // Nothing is placed on a disconnected instance.
    let out = env
        .client
        .run_task()
        .cluster(&env.cluster)
        .task_definition(&td)
        .send()
        .await
        .expect("RunTask");
    assert!(out.tasks().is_empty(), "{out:?}");
    let [failure] = out.failures() else {
        panic!("one failure expected: {out:?}");
    };
    assert_eq!(failure.reason(), Some("AGENT"), "{failure:?}");
    assert_eq!(failure.arn(), Some(env.agent.instance_arn.as_str()));

    let t = env.wait_stopped(&task).await;
    let lost = killed.elapsed();
    eprintln!("the lost agent's task stopped {lost:?} after the kill");
    // Heartbeat timeout 2 s plus 2 s of grace.
    assert!(lost < Duration::from_secs(30), "lost only after {lost:?}");
    let reason = t.stopped_reason().unwrap_or_default().to_lowercase();
    assert!(
        reason.contains("agent") && reason.contains("lost"),
        "stoppedReason says the agent was lost: {reason:?}"
    );
    assert_eq!(t.desired_status(), Some("STOPPED"));
    assert_eq!(container(&t, "main").last_status(), Some("STOPPED"));
    // Nobody stopped the container itself: it is an orphan now.
    assert_eq!(inspect(&id)["State"]["Running"], true);

    // The agent comes back: connected again, it stops the orphan at once, and removes it once
    // its logs have been kept for --cleanup-wait.
    env.agent.restart();
    eventually("the instance to be connected again", async || {
        let i = env.instance().await;
        if i.agent_connected() {
            Ok(())
        } else {
            Err(format!("{i:?}"))
        }
    })
    .await;
    eventually("the orphaned container to be stopped", async || {
        // Gone already counts: it was stopped and then removed.
        let running = !containers_labelled(LABEL_TASK, &task).is_empty()
            && inspect(&id)["State"]["Running"] == true;
        if running {
            Err("still running".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    eventually("the orphaned container to be removed", async || {
        let left = containers_labelled(LABEL_TASK, &task);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    // The task stays as it was recorded.
    let t = env.describe(&task).await;
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert!(
        t.stopped_reason()
            .unwrap_or_default()
            .to_lowercase()
            .contains("lost")
    );
    // And the instance takes tasks again.
    let again = env.run(&td).await;
    env.wait_running(&again).await;
}
