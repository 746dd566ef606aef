//! The Docker runtime against the real engine, with the `berth-test/busybox` image built by
//! `scripts/test-image.sh` (no registry needed). Without Docker every test prints why and
//! passes, except under `CI=true`, where a missing Docker is a failure.
//!
//! Settings are checked where they take effect (the process's output, an HTTP answer, the
//! engine's own view of the container through bollard), not by reading back the request.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_agent::runtime::docker::DockerRuntime;
use berth_agent::runtime::{
    ContainerSpec, Health, HealthCheck, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_TASK, Link,
    LogStream, Mount, MountSource, NetworkMode, PortBinding, Protocol, Runtime, RuntimeError,
    RuntimeKind, Ulimit,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout};

const IMAGE: &str = "berth-test/busybox:latest";
const MIB: i64 = 1024 * 1024;

/// Connects, or says why not: `None` (skip) normally, a panic under `CI=true`. Builds the
/// test image once per test binary.
async fn runtime() -> Option<DockerRuntime> {
    let runtime = match DockerRuntime::connect().await {
        Ok(runtime) => runtime,
        Err(err) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Docker is required when CI=true, but: {err}"
            );
            eprintln!("skipping: {err}");
            return None;
        }
    };
    static IMAGE_BUILT: OnceLock<()> = OnceLock::new();
    IMAGE_BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-image.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .expect("run scripts/test-image.sh");
        assert!(
            output.status.success(),
            "scripts/test-image.sh failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
    Some(runtime)
}

/// Removes the test's containers and volumes however the test ends.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = Command::new("docker")
                .args(["rm", "-f", "-v", container])
                .output();
        }
        for volume in &self.volumes {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", volume])
                .output();
        }
    }
}

impl Cleanup {
    /// A busybox container spec with berth's labels, its name registered for removal.
    fn spec(&mut self, role: &str, command: &[&str]) -> ContainerSpec {
        let name = unique(role);
        self.containers.push(name.clone());
        let task_arn = format!("arn:aws:ecs:local:000000000000:task/berth-test/{name}");
        ContainerSpec {
            runtime_name: name,
            task_arn: task_arn.clone(),
            cluster: "berth-test".to_string(),
            container_name: role.to_string(),
            image: IMAGE.to_string(),
            command: strings(command),
            labels: BTreeMap::from([
                (LABEL_TASK.to_string(), task_arn),
                (LABEL_CONTAINER.to_string(), role.to_string()),
                (LABEL_CLUSTER.to_string(), "berth-test".to_string()),
            ]),
            stop_timeout: Duration::from_secs(2),
            ..Default::default()
        }
    }

    fn volume(&mut self, role: &str) -> String {
        let name = unique(role);
        self.volumes.push(name.clone());
        name
    }
}

fn unique(role: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "berth-test-{role}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn docker() -> Docker {
    Docker::connect_with_defaults().expect("bollard client")
}

async fn collect(mut logs: LogStream) -> String {
    let mut text = Vec::new();
    while let Some(chunk) = logs.next().await {
        text.extend_from_slice(&chunk.expect("log chunk"));
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Creates, starts and waits for a container; its exit code and output.
async fn run(runtime: &DockerRuntime, spec: &ContainerSpec) -> (i32, String) {
    let id = runtime.create(spec).await.expect("create");
    runtime.start(&id).await.expect("start");
    let code = timeout(Duration::from_secs(60), runtime.wait(&id))
        .await
        .expect("container exits within 60s")
        .expect("wait");
    let output = collect(runtime.logs(&id, false).await.expect("logs")).await;
    (code, output)
}

/// GETs `/` from `127.0.0.1:port` until something answers HTTP (20s at most).
async fn http_get(port: u16) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut answer = Vec::new();
            let exchanged = async {
                stream
                    .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    .await?;
                stream.read_to_end(&mut answer).await
            };
            if timeout(Duration::from_secs(5), exchanged).await.is_ok()
                && answer.starts_with(b"HTTP/")
            {
                return Some(String::from_utf8_lossy(&answer).into_owned());
            }
        }
        sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Polls `inspect` until `health` (20s at most); the health last seen.
async fn wait_for_health(runtime: &DockerRuntime, id: &str, health: Health) -> Health {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = runtime.inspect(id).await.expect("inspect").health;
        if seen == health || Instant::now() > deadline {
            return seen;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

const HTTPD: &str = "echo hello from berth > /www/index.html && exec httpd -f -p 80 -h /www";

#[tokio::test]
async fn bridge_mode_publishes_the_host_port() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    assert_eq!(runtime.kind(), RuntimeKind::Docker);
    let version = runtime.version().await.expect("version");
    assert!(version.starts_with("Docker "), "{version}");
    let digest = runtime
        .prepare_image(IMAGE)
        .await
        .expect("the test image is present")
        .expect("a digest");
    assert!(digest.starts_with("sha256:"), "{digest}");

    let host_port = free_port();
    let mut spec = cleanup.spec("web", &["sh", "-c", HTTPD]);
    spec.ports = vec![PortBinding {
        container_port: 80,
        host_port,
        protocol: Protocol::Tcp,
    }];
    let id = runtime.create(&spec).await.expect("create");
    let created = runtime.inspect(&id).await.expect("inspect");
    assert!(!created.running && !created.exited, "{created:?}");
    runtime.start(&id).await.expect("start");

    let answer = http_get(host_port)
        .await
        .expect("httpd answers on the host port");
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
        "{answer}"
    );
    assert!(answer.contains("hello from berth"), "{answer}");
    let state = runtime.inspect(&id).await.expect("inspect");
    assert!(state.running && !state.exited, "{state:?}");
    assert_eq!(state.exit_code, None);
    assert_eq!(state.health, Health::None);
    assert_eq!(state.image_digest.as_deref(), Some(digest.as_str()));

    let details = docker()
        .inspect_container(&id, None)
        .await
        .expect("inspect");
    let host_config = details.host_config.expect("host config");
    assert_eq!(host_config.network_mode.as_deref(), Some("bridge"));
    let bindings = host_config.port_bindings.expect("port bindings");
    let binding = bindings["80/tcp"].as_ref().expect("80/tcp bound");
    assert_eq!(
        binding[0].host_port.as_deref(),
        Some(host_port.to_string().as_str())
    );

    runtime
        .stop(&id, Duration::from_secs(5))
        .await
        .expect("stop");
    runtime.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn host_mode_shares_the_host_network() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let port = free_port();
    let command = format!(
        "echo hello from the host network > /www/index.html && exec httpd -f -p {port} -h /www"
    );
    let mut spec = cleanup.spec("hostnet", &["sh", "-c", &command]);
    spec.network_mode = NetworkMode::Host;
    spec.ports = vec![PortBinding {
        container_port: port,
        host_port: port,
        protocol: Protocol::Tcp,
    }];
    let id = runtime.create(&spec).await.expect("create");
    runtime.start(&id).await.expect("start");

    let answer = http_get(port)
        .await
        .expect("httpd answers on the host's port");
    assert!(answer.contains("hello from the host network"), "{answer}");
    let details = docker()
        .inspect_container(&id, None)
        .await
        .expect("inspect");
    let host_config = details.host_config.expect("host config");
    assert_eq!(host_config.network_mode.as_deref(), Some("host"));
    assert!(host_config.port_bindings.unwrap_or_default().is_empty());

    runtime
        .stop(&id, Duration::from_secs(5))
        .await
        .expect("stop");
    runtime.remove(&id).await.expect("remove");
}

#[tokio::test]
async fn process_settings_reach_the_process() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();

    let mut spec = cleanup.spec(
        "settings",
        &[r#"echo "$GREETING|$EQUATION|$(pwd)|$(id -u):$(id -g)|$(hostname)""#],
    );
    spec.entry_point = strings(&["sh", "-c"]);
    spec.environment = vec![
        ("GREETING".to_string(), "hello world".to_string()),
        ("EQUATION".to_string(), "a=b".to_string()),
    ];
    spec.working_directory = Some("/srv/app".to_string());
    spec.user = Some("1234:5678".to_string());
    spec.hostname = Some("berth-host".to_string());
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(output, "hello world|a=b|/srv/app|1234:5678|berth-host\n");

    // A command alone replaces the image's CMD.
    let spec = cleanup.spec("command", &["echo", "just", "the", "command"]);
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!((code, output.as_str()), (0, "just the command\n"));

    // Exit codes come back from wait and inspect.
    let spec = cleanup.spec("exit", &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!(code, 3);
    assert!(
        output.contains("out\n") && output.contains("err\n"),
        "{output}"
    );
    let id = runtime
        .create(&cleanup.spec("exit-again", &["sh", "-c", "exit 7"]))
        .await
        .expect("create");
    runtime.start(&id).await.expect("start");
    assert_eq!(runtime.wait(&id).await.expect("wait"), 7);
    assert_eq!(runtime.wait(&id).await.expect("wait after the exit"), 7);
    let state = runtime.inspect(&id).await.expect("inspect");
    assert!(state.exited && !state.running, "{state:?}");
    assert_eq!(state.exit_code, Some(7));
    assert!(!state.oom_killed);

    // A command that does not exist fails the start, in Docker's words (the supervisor, not
    // the runtime, names it CannotStartContainerError, once).
    let id = runtime
        .create(&cleanup.spec("missing-binary", &["no-such-binary"]))
        .await
        .expect("create");
    match runtime.start(&id).await {
        Err(RuntimeError::Failed(message)) => {
            assert!(!message.contains("CannotStartContainerError"), "{message}");
            assert!(message.contains("no-such-binary"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let state = runtime.inspect(&id).await.expect("inspect");
    assert!(!state.running);
    assert!(
        state
            .error
            .as_deref()
            .is_some_and(|error| error.contains("no-such-binary")),
        "{state:?}"
    );
}

/// ECS `dnsServers` and `dnsSearchDomains` become the container's resolv.conf: how a task is
/// pointed at an agent's service discovery DNS.
#[tokio::test]
async fn dns_servers_and_search_domains_reach_the_resolver() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let mut spec = cleanup.spec("dns", &["cat", "/etc/resolv.conf"]);
    spec.dns_servers = strings(&["172.17.0.1", "10.9.8.7"]);
    spec.dns_search_domains = strings(&["prod.berth"]);
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!(code, 0, "{output}");
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    assert!(lines.contains(&"nameserver 172.17.0.1"), "{output}");
    assert!(lines.contains(&"nameserver 10.9.8.7"), "{output}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("search") && l.contains("prod.berth")),
        "{output}"
    );
}

#[tokio::test]
async fn labels_limits_and_options_reach_the_engine() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let mut spec = cleanup.spec(
        "limits",
        &[
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ],
    );
    spec.labels
        .insert("team".to_string(), "storage".to_string());
    spec.cpu_shares = Some(256);
    spec.memory_mib = Some(64);
    spec.memory_reservation_mib = Some(32);
    spec.ulimits = vec![Ulimit {
        name: "nofile".to_string(),
        soft: 1024,
        hard: 2048,
    }];
    spec.read_only_root_filesystem = true;
    spec.stop_timeout = Duration::from_millis(2500);
    spec.health_check = Some(HealthCheck {
        command: strings(&["CMD-SHELL", "exit 0"]),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        retries: 3,
        start_period: Duration::from_secs(1),
    });
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!(code, 0, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[..2], ["1024", "2048"], "{output}");
    // cgroup v1 shows the limit; elsewhere the file is missing and the line absent.
    if let Some(limit) = lines.get(2) {
        assert_eq!(*limit, (64 * MIB).to_string());
    }

    let details = docker()
        .inspect_container(&spec.runtime_name, None)
        .await
        .expect("inspect");
    let config = details.config.expect("config");
    let labels = config.labels.expect("labels");
    assert_eq!(labels[LABEL_TASK], spec.task_arn);
    assert_eq!(labels[LABEL_CONTAINER], "limits");
    assert_eq!(labels[LABEL_CLUSTER], "berth-test");
    assert_eq!(labels["team"], "storage");
    assert_eq!(config.stop_timeout, Some(3));
    let health = config.healthcheck.expect("healthcheck");
    assert_eq!(health.test, Some(strings(&["CMD-SHELL", "exit 0"])));
    assert_eq!(health.interval, Some(5_000_000_000));
    assert_eq!(health.timeout, Some(2_000_000_000));
    assert_eq!(health.retries, Some(3));
    assert_eq!(health.start_period, Some(1_000_000_000));
    let host_config = details.host_config.expect("host config");
    assert_eq!(host_config.cpu_shares, Some(256));
    assert_eq!(host_config.memory, Some(64 * MIB));
    assert_eq!(host_config.memory_reservation, Some(32 * MIB));
    let ulimits = host_config.ulimits.expect("ulimits");
    assert_eq!(ulimits.len(), 1);
    assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
    assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(2048)));
    assert_eq!(host_config.readonly_rootfs, Some(true));
    assert_eq!(host_config.privileged, Some(false));
    let log_config = host_config.log_config.expect("log config");
    assert_eq!(log_config.typ.as_deref(), Some("json-file"));

    // The read-only root filesystem holds.
    let mut spec = cleanup.spec("readonly", &["sh", "-c", "echo x > /tmp/file"]);
    spec.read_only_root_filesystem = true;
    let (code, output) = run(&runtime, &spec).await;
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("Read-only file system"), "{output}");
}

#[tokio::test]
async fn out_of_memory_is_reported() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let mut spec = cleanup.spec(
        "oom",
        &[
            "sh",
            "-c",
            r#"x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived"#,
        ],
    );
    spec.memory_mib = Some(8);
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!(code, 137, "{output}");
    assert!(!output.contains("survived"), "{output}");
    let state = runtime.inspect(&spec.runtime_name).await.expect("inspect");
    assert!(state.exited && state.oom_killed, "{state:?}");
}

#[tokio::test]
async fn bind_mounts_and_named_volumes_share_data() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let host_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(host_dir.path().join("from-host"), "written by the host\n").expect("write");

    let mut spec = cleanup.spec(
        "bind",
        &[
            "sh",
            "-c",
            "cat /host/from-host && echo written by the container > /host/from-container",
        ],
    );
    spec.mounts = vec![Mount {
        source: MountSource::Bind(host_dir.path().to_path_buf()),
        target: "/host".to_string(),
        read_only: false,
    }];
    let (code, output) = run(&runtime, &spec).await;
    assert_eq!((code, output.as_str()), (0, "written by the host\n"));
    let written = std::fs::read_to_string(host_dir.path().join("from-container")).expect("read");
    assert_eq!(written, "written by the container\n");

    // Read-only binds refuse writes; a missing host directory is created, as on ECS.
    let missing = host_dir.path().join("created/by/docker");
    let mut spec = cleanup.spec("bind-ro", &["sh", "-c", "echo x > /ro/file"]);
    spec.mounts = vec![
        Mount {
            source: MountSource::Bind(host_dir.path().to_path_buf()),
            target: "/ro".to_string(),
            read_only: true,
        },
        Mount {
            source: MountSource::Bind(missing.clone()),
            target: "/created".to_string(),
            read_only: false,
        },
    ];
    let (code, output) = run(&runtime, &spec).await;
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("Read-only file system"), "{output}");
    assert!(missing.is_dir());

    // A relative source would be taken for a volume name: refused.
    let mut spec = cleanup.spec("bind-relative", &["true"]);
    spec.mounts = vec![Mount {
        source: MountSource::Bind("relative/path".into()),
        target: "/x".to_string(),
        read_only: false,
    }];
    assert!(matches!(
        runtime.create(&spec).await,
        Err(RuntimeError::Unsupported(_))
    ));

    let volume = cleanup.volume("data");
    let volume_mount = |read_only| Mount {
        source: MountSource::Volume {
            name: volume.clone(),
            driver: Some("local".to_string()),
            driver_opts: BTreeMap::new(),
            labels: BTreeMap::from([("com.berth.test".to_string(), "volume".to_string())]),
        },
        target: "/data".to_string(),
        read_only,
    };
    let mut writer = cleanup.spec("writer", &["sh", "-c", "echo shared data > /data/file"]);
    writer.mounts = vec![volume_mount(false)];
    assert_eq!(run(&runtime, &writer).await, (0, String::new()));
    let mut reader = cleanup.spec("reader", &["cat", "/data/file"]);
    reader.mounts = vec![volume_mount(true)];
    assert_eq!(
        run(&runtime, &reader).await,
        (0, "shared data\n".to_string())
    );

    let inspected = docker()
        .inspect_volume(&volume)
        .await
        .expect("the volume exists");
    assert_eq!(inspected.driver, "local");
    assert_eq!(inspected.labels["com.berth.test"], "volume");
    // Removing a container keeps the named volume.
    runtime.remove(&writer.runtime_name).await.expect("remove");
    runtime.remove(&reader.runtime_name).await.expect("remove");
    docker()
        .inspect_volume(&volume)
        .await
        .expect("the volume survives its containers");
}

#[tokio::test]
async fn links_reach_another_container_by_alias() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let server = cleanup.spec("server", &["sh", "-c", HTTPD]);
    let server_id = runtime.create(&server).await.expect("create");
    runtime.start(&server_id).await.expect("start");

    let mut client = cleanup.spec(
        "client",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://web/ && exit 0; sleep 1; done; exit 1",
        ],
    );
    client.links = vec![Link {
        runtime_name: server.runtime_name.clone(),
        alias: "web".to_string(),
    }];
    let (code, output) = run(&runtime, &client).await;
    assert_eq!((code, output.as_str()), (0, "hello from berth\n"));

    runtime
        .stop(&server_id, Duration::from_secs(5))
        .await
        .expect("stop");
}

#[tokio::test]
async fn health_checks_report_healthy_and_unhealthy() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let check = |command: &[&str]| HealthCheck {
        command: strings(command),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 1,
        start_period: Duration::ZERO,
    };
    let sleeper = [
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    ];

    let mut healthy = cleanup.spec("healthy", &sleeper);
    healthy.health_check = Some(check(&["CMD-SHELL", "test -d /www && exit 0"]));
    let healthy_id = runtime.create(&healthy).await.expect("create");
    let mut unhealthy = cleanup.spec("unhealthy", &sleeper);
    unhealthy.health_check = Some(check(&["CMD", "false"]));
    let unhealthy_id = runtime.create(&unhealthy).await.expect("create");
    let unchecked_id = runtime
        .create(&cleanup.spec("unchecked", &sleeper))
        .await
        .expect("create");

    for id in [&healthy_id, &unhealthy_id, &unchecked_id] {
        runtime.start(id).await.expect("start");
    }
    // The first check runs an interval after the start.
    assert_eq!(
        runtime.inspect(&healthy_id).await.expect("inspect").health,
        Health::Starting
    );
    assert_eq!(
        wait_for_health(&runtime, &healthy_id, Health::Healthy).await,
        Health::Healthy
    );
    assert_eq!(
        wait_for_health(&runtime, &unhealthy_id, Health::Unhealthy).await,
        Health::Unhealthy
    );
    let unchecked = runtime.inspect(&unchecked_id).await.expect("inspect");
    assert!(unchecked.running);
    assert_eq!(unchecked.health, Health::None);

    for id in [&healthy_id, &unhealthy_id, &unchecked_id] {
        runtime
            .stop(id, Duration::from_secs(5))
            .await
            .expect("stop");
    }
}

#[tokio::test]
async fn stop_honours_the_timeout() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    // sh is PID 1 here: only a trapped TERM reaches it.
    let stubborn = cleanup.spec(
        "stubborn",
        &["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
    );
    let stubborn_id = runtime.create(&stubborn).await.expect("create");
    let polite = cleanup.spec(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    let polite_id = runtime.create(&polite).await.expect("create");
    runtime.start(&stubborn_id).await.expect("start");
    runtime.start(&polite_id).await.expect("start");
    sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    runtime
        .stop(&stubborn_id, Duration::from_millis(2500))
        .await
        .expect("stop");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed < Duration::from_secs(15),
        "stopping a container that ignores TERM took {elapsed:?}, expected the 3s timeout"
    );
    let state = runtime.inspect(&stubborn_id).await.expect("inspect");
    assert!(state.exited && !state.running, "{state:?}");
    assert_eq!(state.exit_code, Some(137));

    let started = Instant::now();
    runtime
        .stop(&polite_id, Duration::from_secs(20))
        .await
        .expect("stop");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "a container that exits on TERM took {elapsed:?}"
    );
    assert_eq!(runtime.wait(&polite_id).await.expect("wait"), 0);

    // Stop and remove are idempotent; an unknown container is NotFound.
    runtime
        .stop(&polite_id, Duration::from_secs(1))
        .await
        .expect("stop again");
    runtime.remove(&polite_id).await.expect("remove");
    runtime.remove(&polite_id).await.expect("remove again");
    let gone = runtime.stop(&polite_id, Duration::from_secs(1)).await;
    assert_eq!(gone, Err(RuntimeError::NotFound(polite_id.clone())));
    assert_eq!(
        runtime.inspect(&polite_id).await,
        Err(RuntimeError::NotFound(polite_id.clone()))
    );
    assert_eq!(
        runtime.wait(&polite_id).await,
        Err(RuntimeError::NotFound(polite_id.clone()))
    );
    assert!(matches!(
        runtime.logs(&polite_id, true).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_missing_image_is_unavailable_quickly() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let image = "berth-test/no-such-image:1";
    let started = Instant::now();
    let result = runtime.prepare_image(image).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    match result {
        Err(RuntimeError::ImageUnavailable(message)) => {
            let prefix = format!(
                "CannotPullContainerError: image '{image}' is not present on this host and could not be pulled: "
            );
            let reason = message
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{message}"));
            // Docker's reason follows.
            assert!(!reason.trim().is_empty(), "{message}");
        }
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }

    let mut spec = cleanup.spec("no-image", &["true"]);
    spec.image = image.to_string();
    match runtime.create(&spec).await {
        Err(RuntimeError::ImageUnavailable(message)) => {
            assert!(message.contains(image), "{message}")
        }
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn creating_a_name_twice_fails() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let spec = cleanup.spec("twice", &["true"]);
    let id = runtime.create(&spec).await.expect("create");
    match runtime.create(&spec).await {
        Err(RuntimeError::Failed(message)) => {
            assert!(message.contains("already exists"), "{message}");
            assert!(message.contains(&spec.runtime_name), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // The first one is untouched.
    let state = runtime.inspect(&id).await.expect("inspect");
    assert!(!state.running && !state.exited, "{state:?}");
}

#[tokio::test]
async fn list_finds_labelled_containers_from_another_connection() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let running = cleanup.spec(
        "listed-running",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    let running_id = runtime.create(&running).await.expect("create");
    runtime.start(&running_id).await.expect("start");
    let exited = cleanup.spec("listed-exited", &["sh", "-c", "exit 4"]);
    let (code, _) = run(&runtime, &exited).await;
    assert_eq!(code, 4);
    let mut unlabelled = cleanup.spec("unlabelled", &["true"]);
    unlabelled.labels.remove(LABEL_TASK);
    let unlabelled_id = runtime.create(&unlabelled).await.expect("create");

    let other = DockerRuntime::connect().await.expect("a second connection");
    let listed = other.list().await.expect("list");
    assert!(
        listed
            .iter()
            .all(|existing| existing.labels.contains_key(LABEL_TASK))
    );
    assert!(!listed.iter().any(|existing| existing.id == unlabelled_id));

    let found = listed
        .iter()
        .find(|existing| existing.id == running_id)
        .expect("the running container is listed");
    assert_eq!(found.runtime_name, running.runtime_name);
    assert_eq!(found.task_arn, running.task_arn);
    assert_eq!(found.container_name, "listed-running");
    assert_eq!(found.labels, running.labels);
    assert!(
        found.state.running && !found.state.exited,
        "{:?}",
        found.state
    );

    let found = listed
        .iter()
        .find(|existing| existing.runtime_name == exited.runtime_name)
        .expect("the exited container is listed");
    assert_eq!(found.task_arn, exited.task_arn);
    assert!(
        found.state.exited && !found.state.running,
        "{:?}",
        found.state
    );
    assert_eq!(found.state.exit_code, Some(4));

    runtime
        .stop(&running_id, Duration::from_secs(5))
        .await
        .expect("stop");
}

#[tokio::test]
async fn followed_logs_end_when_the_container_exits() {
    let Some(runtime) = runtime().await else {
        return;
    };
    let mut cleanup = Cleanup::default();
    let spec = cleanup.spec(
        "logs",
        &[
            "sh",
            "-c",
            "echo one; sleep 2; echo two; sleep 1; echo three >&2",
        ],
    );
    let id = runtime.create(&spec).await.expect("create");
    runtime.start(&id).await.expect("start");

    let started = Instant::now();
    let logs = runtime.logs(&id, true).await.expect("logs");
    let output = timeout(Duration::from_secs(30), collect(logs))
        .await
        .expect("the followed logs end once the container exits");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "ended after {:?}",
        started.elapsed()
    );
    assert_eq!(output, "one\ntwo\nthree\n");
    let state = runtime.inspect(&id).await.expect("inspect");
    assert!(state.exited, "{state:?}");

    // Without follow, logs return what there is at once, even from a running container.
    let spec = cleanup.spec(
        "logs-running",
        &["sh", "-c", "echo ready; while true; do sleep 1; done"],
    );
    let id = runtime.create(&spec).await.expect("create");
    runtime.start(&id).await.expect("start");
    sleep(Duration::from_millis(500)).await;
    let output = timeout(
        Duration::from_secs(10),
        collect(runtime.logs(&id, false).await.expect("logs")),
    )
    .await
    .expect("unfollowed logs end at once");
    assert_eq!(output, "ready\n");
    runtime
        .stop(&id, Duration::from_secs(1))
        .await
        .expect("stop");
}
