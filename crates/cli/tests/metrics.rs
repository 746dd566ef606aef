//! Prometheus metrics, scraped from a real `berth server` (and a real hollow `berth agent`) and
//! parsed with a Prometheus text-format parser (`prometheus-parse`): counters move as the
//! cluster works, levels follow the state, `/metrics` on the API port is signed like the rest
//! of the native API, and `--metrics-listen` answers without credentials.

mod common;

use std::time::Duration;

use aws_sdk_ecs::types::{ContainerDefinition, DesiredStatus};
use common::agent::AgentProcess;
use common::{
    Berth, credential, eventually, int_resource, ports_resource, raw, raw_as, raw_unsigned,
};
use prometheus_parse::{Scrape, Value};

/// One scrape, parsed.
struct Scraped {
    scrape: Scrape,
    text: String,
}

impl Scraped {
    fn parse(text: String) -> Scraped {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = Scrape::parse(lines).expect("the exposition parses");
        Scraped { scrape, text }
    }

    /// The sum of the samples of `metric` whose labels include `labels` (0 when none match):
    /// counters, gauges, and a histogram's `_count` and `_sum`.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{metric} is not a single value: {other:?}"),
            })
            .sum()
    }

    /// Whether `metric` has a HELP line and the type `kind`.
    fn declares(&self, metric: &str, kind: &str) -> bool {
        self.scrape.docs.contains_key(metric)
            && self.text.contains(&format!("# TYPE {metric} {kind}\n"))
    }
}

/// `GET /metrics`, signed as the server's admin.
async fn scrape(b: &Berth) -> Scraped {
    let r = raw(&b.endpoint, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Scraped::parse(String::from_utf8(r.body).expect("UTF-8"))
}

/// `GET http://ADDR/metrics` without any credentials.
async fn scrape_unsigned(addr: &str, headers: &[(&str, &str)]) -> common::RawResponse {
    raw_unsigned(&format!("http://{addr}"), "GET", "/metrics", headers, b"").await
}

/// A loopback address nothing listens on now.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

async fn cluster_with_one_instance(ecs: &aws_sdk_ecs::Client, cluster: &str) {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    ecs.register_container_instance()
        .cluster(cluster)
        .total_resources(int_resource("CPU", 4096))
        .total_resources(int_resource("MEMORY", 8192))
        .total_resources(ports_resource("PORTS", &["22"]))
        .total_resources(ports_resource("PORTS_UDP", &[]))
        .send()
        .await
        .unwrap();
}

async fn task_definition(ecs: &aws_sdk_ecs::Client, family: &str) {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .memory(16)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn counters_and_levels_move_as_the_cluster_works() {
    let b = Berth::start();
    let ecs = b.client();
    let before = scrape(&b).await;
    assert_eq!(
        before.value("berth_raft_is_leader", &[]),
        1.0,
        "a lone server leads"
    );
    assert!(before.value("berth_raft_term", &[]) >= 1.0);
    assert_eq!(before.value("berth_raft_voters", &[]), 1.0);
    assert_eq!(before.value("berth_raft_learners", &[]), 0.0);
    assert!(before.value("berth_raft_log_file_bytes", &[]) > 0.0);

    cluster_with_one_instance(&ecs, "metrics").await;
    task_definition(&ecs, "m").await;
    let run = ecs
        .run_task()
        .cluster("metrics")
        .task_definition("m")
        .count(3)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 3, "{:?}", run.failures());
    let after = scrape(&b).await;
    // Every family is declared, with HELP and its type, once it has a sample.
    for (metric, kind) in [
        ("berth_api_requests_total", "counter"),
        ("berth_api_request_duration_seconds", "histogram"),
        ("berth_placements_committed_total", "counter"),
        ("berth_raft_commit_duration_seconds", "histogram"),
        ("berth_raft_entry_commands", "histogram"),
        ("berth_raft_log_write_entries", "histogram"),
        ("berth_raft_term", "gauge"),
        ("berth_raft_is_leader", "gauge"),
        ("berth_raft_log_file_bytes", "gauge"),
        ("berth_raft_snapshot_file_bytes", "gauge"),
        ("berth_raft_leader_changes_total", "counter"),
        ("berth_raft_candidacies_total", "counter"),
        ("berth_raft_voters", "gauge"),
        ("berth_raft_learners", "gauge"),
        ("berth_raft_membership_changing", "gauge"),
        ("berth_tasks", "gauge"),
        ("berth_services", "gauge"),
        ("berth_container_instances", "gauge"),
        ("berth_mesos_frameworks", "gauge"),
        ("berth_mesos_offers_outstanding", "gauge"),
    ] {
        assert!(
            after.declares(metric, kind),
            "{metric} ({kind}) with HELP in\n{}",
            after.text
        );
    }

    let run_task = [("api", "ecs"), ("operation", "RunTask"), ("status", "200")];
    assert_eq!(
        after.value("berth_api_requests_total", &run_task)
            - before.value("berth_api_requests_total", &run_task),
        1.0
    );
    assert_eq!(
        after.value(
            "berth_api_request_duration_seconds_count",
            &[("api", "ecs"), ("operation", "RunTask")]
        ),
        1.0
    );
    assert_eq!(
        after.value("berth_placements_committed_total", &[])
            - before.value("berth_placements_committed_total", &[]),
        3.0
    );
    assert!(
        after.value("berth_raft_commit_duration_seconds_count", &[])
            > before.value("berth_raft_commit_duration_seconds_count", &[])
    );
    assert!(after.value("berth_raft_log_write_entries_count", &[]) > 0.0);
    let in_cluster = [("cluster", "metrics")];
    assert_eq!(after.value("berth_tasks", &in_cluster), 3.0);
    assert_eq!(
        after.value(
            "berth_tasks",
            &[("cluster", "metrics"), ("status", "STOPPED")]
        ),
        0.0
    );
    assert_eq!(
        after.value(
            "berth_container_instances",
            &[
                ("cluster", "metrics"),
                ("status", "ACTIVE"),
                ("agent", "connected")
            ]
        ),
        1.0
    );

    // A service appears among the services, by health.
    ecs.create_service()
        .cluster("metrics")
        .service_name("web")
        .task_definition("m")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let services = scrape(&b).await;
    assert_eq!(services.value("berth_services", &in_cluster), 1.0);
    assert_eq!(
        services.value(
            "berth_services",
            &[("cluster", "metrics"), ("health", "failed")]
        ),
        0.0
    );

    // Refusals are counted by their status, under the operation they were for.
    let unknown = common::ecs_op(&b.endpoint, "DescribeClusters", "{not json").await;
    assert_eq!(unknown.status, 400);
    let refused = scrape(&b).await;
    assert_eq!(
        refused.value(
            "berth_api_requests_total",
            &[
                ("api", "ecs"),
                ("operation", "DescribeClusters"),
                ("status", "400")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn the_api_ports_metrics_are_signed_and_authorized() {
    let b = Berth::start();
    let r = raw_unsigned(&b.endpoint, "GET", "/metrics", &[], b"").await;
    let body = r.json();
    assert_eq!(r.status, 403, "{body}");
    assert_eq!(
        body["__type"], "MissingAuthenticationTokenException",
        "{body}"
    );
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );

    let reader = credential(&b, "prometheus", "read-only").await;
    let r = raw_as(&reader, &b.endpoint, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "a read-only credential may scrape");

    let framework = credential(&b, "marathon", "framework").await;
    let r = raw_as(&framework, &b.endpoint, "GET", "/metrics", &[], b"").await;
    let body = r.json();
    assert_eq!(r.status, 403, "{body}");
    assert_eq!(body["__type"], "AccessDeniedException", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("berth:GetMetrics"), "{message}");

    // Both refused scrapes (unsigned, not allowed) were counted, under their route.
    let scraped = scrape(&b).await;
    assert_eq!(
        scraped.value(
            "berth_api_requests_total",
            &[
                ("api", "native"),
                ("operation", "/metrics"),
                ("status", "403")
            ]
        ),
        2.0
    );
}

#[tokio::test]
async fn metrics_listen_answers_without_credentials_and_only_metrics() {
    let addr = free_addr();
    let b = Berth::start_with(&["--metrics-listen", &addr]);
    let r = scrape_unsigned(&addr, &[]).await;
    assert_eq!(r.status, 200);
    let scraped = Scraped::parse(String::from_utf8(r.body).unwrap());
    assert_eq!(scraped.value("berth_raft_is_leader", &[]), 1.0);

    // Prometheus asks for OpenMetrics first; it gets it.
    let r = scrape_unsigned(
        &addr,
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .await;
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");

    // Nothing else is reachable through it.
    let r = raw_unsigned(&format!("http://{addr}"), "GET", "/v1/watch", &[], b"").await;
    assert_eq!(r.status, 404);
    drop(b);
}

#[test]
fn metrics_listen_on_a_public_address_needs_metrics_public() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--metrics-listen", "0.0.0.0:0"])
        .output()
        .expect("run berth server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--metrics-public"), "{stderr}");
}

#[tokio::test]
async fn an_agents_metrics_count_container_starts() {
    let b = Berth::start();
    let ecs = b.client();
    ecs.create_cluster()
        .cluster_name("hollow")
        .send()
        .await
        .unwrap();
    task_definition(&ecs, "h").await;
    let addr = free_addr();
    let _agent = AgentProcess::start(
        &b.endpoint,
        "hollow",
        &["--runtime", "hollow", "--metrics-listen", &addr],
    );
    let run = ecs
        .run_task()
        .cluster("hollow")
        .task_definition("h")
        .count(2)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 2, "{:?}", run.failures());

    let started = [("runtime", "hollow"), ("result", "started")];
    eventually(
        Duration::from_secs(30),
        "two containers started",
        || async {
            let r = scrape_unsigned(&addr, &[]).await;
            Scraped::parse(String::from_utf8(r.body).unwrap())
                .value("berth_agent_container_starts_total", &started)
                == 2.0
        },
    )
    .await;
    let agent = Scraped::parse(String::from_utf8(scrape_unsigned(&addr, &[]).await.body).unwrap());
    assert!(agent.declares("berth_agent_runtime_call_duration_seconds", "histogram"));
    assert_eq!(
        agent.value(
            "berth_agent_runtime_call_duration_seconds_count",
            &[("runtime", "hollow"), ("operation", "start")]
        ),
        2.0
    );

    // The server sees them running, by state.
    eventually(Duration::from_secs(30), "two tasks RUNNING", || async {
        scrape(&b).await.value(
            "berth_tasks",
            &[("cluster", "hollow"), ("status", "RUNNING")],
        ) == 2.0
    })
    .await;
    let tasks = ecs
        .list_tasks()
        .cluster("hollow")
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(tasks.task_arns().len(), 2);
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn berth server");
    let ready = common::ready_line(&mut child);
    assert!(ready.contains("listening on"), "{ready}");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "an info-level start logs something");
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
        assert!(event["message"].is_string(), "{line}");
    }
}
