//! Schedules through EventBridge Scheduler's REST API (signed for `scheduler`) against a real
//! server and a real hollow agent: a `rate(1 minute)` schedule starts its tasks at its due
//! time as the schedule's creator (tags, overrides and startedBy carried into RunTask), and
//! skips its next due time while that run still runs; errors come in the Scheduler's shape
//! and policies hold (read-only and per-cluster operators); a one-time schedule deletes
//! itself after its run.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::ContainerDefinition;
use common::agent::AgentProcess;
use common::{Berth, RawResponse, credential, eventually, raw, raw_as};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::000000000000:role/scheduler";

fn cluster_arn(cluster: &str) -> String {
    format!("arn:aws:ecs:us-east-1:000000000000:cluster/{cluster}")
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn setup(ecs: &Client, cluster: &str) {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("job")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .cpu(1)
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A CreateSchedule / UpdateSchedule body running `job` in `cluster`.
fn body(expression: &str, cluster: &str) -> Value {
    json!({
        "ScheduleExpression": expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": cluster_arn(cluster),
            "RoleArn": ROLE,
            "EcsParameters": {"TaskDefinitionArn": "job"},
        },
    })
}

async fn call(
    credentials: Option<&berth_client::Credentials>,
    b: &Berth,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> RawResponse {
    let bytes = body.map(Value::to_string).unwrap_or_default();
    let headers = [("content-type", "application/json")];
    match credentials {
        Some(c) => raw_as(c, &b.endpoint, method, path, &headers, bytes.as_bytes()).await,
        None => raw(&b.endpoint, method, path, &headers, bytes.as_bytes()).await,
    }
}

/// Asserts the Scheduler's error shape: the status, `X-Amzn-Errortype` and a message.
#[track_caller]
fn expect(r: &RawResponse, status: u16, code: &str) -> String {
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, status, "{code}: {text}");
    assert_eq!(r.header("x-amzn-errortype"), Some(code), "{text}");
    let v = r.json();
    let message = v["Message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(message.len() >= 10, "{code} needs a message: {text}");
    message
}

fn cli_command(b: &Berth, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .env("BERTH_ENDPOINT", &b.endpoint)
        .env("AWS_SHARED_CREDENTIALS_FILE", b.credentials_file())
        .env("RUST_LOG", "warn")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .stdin(std::process::Stdio::null());
    command
}

/// `berth ARGS...` as the server's admin; its stdout (it must succeed).
#[track_caller]
fn berth_cli(b: &Berth, args: &[&str]) -> Vec<u8> {
    let out = cli_command(b, args).output().expect("run berth");
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The ARNs of the tasks `started_by` started in `cluster`.
async fn started_by(ecs: &Client, cluster: &str, started_by: &str) -> Vec<String> {
    ecs.list_tasks()
        .cluster(cluster)
        .started_by(started_by)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec()
}

async fn runs(b: &Berth, name: &str) -> Value {
    let r = call(
        None,
        b,
        "GET",
        &format!("/v1/schedules/default/{name}/runs"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The schedule's runs once it has recorded `n`, polled every 200 ms for up to `within`.
async fn until_runs(b: &Berth, name: &str, n: usize, within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = runs(b, name).await;
        if status["runs"].as_array().is_some_and(|r| r.len() >= n) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} did not record {n} run(s) within {within:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_rate_schedule_runs_its_tasks_when_due_and_skips_while_they_still_run() {
    const C: &str = "sched";
    let b = Berth::start();
    let ecs = b.client();
    setup(&ecs, C).await;
    let _agent = AgentProcess::start(&b.endpoint, C, &["--runtime", "hollow"]);

    // The first due time is the start date, three seconds from now; then every minute.
    let start = (now_seconds() + 3.0).floor();
    let mut create = body("rate(1 minute)", C);
    create["StartDate"] = json!(start);
    create["Target"]["EcsParameters"]["TaskCount"] = json!(2);
    create["Target"]["EcsParameters"]["Tags"] = json!([{"team": "data"}]);
    create["Target"]["Input"] = json!(
        json!({"containerOverrides": [{"name": "app", "environment": [{"name": "MODE", "value": "nightly"}]}]})
            .to_string()
    );
    let r = call(None, &b, "POST", "/schedules/every-minute", Some(&create)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["ScheduleArn"],
        "arn:aws:scheduler:us-east-1:000000000000:schedule/default/every-minute"
    );

    // The first run: two tasks, started within the stated tolerance of the due time (10 s:
    // the runner looks every second; the rest is slack for a loaded CI machine).
    let first = until_runs(&b, "every-minute", 1, Duration::from_secs(30)).await;
    let run = &first["runs"][0];
    assert_eq!(run["outcome"]["kind"], "STARTED", "{first}");
    let due = berth_schedule::parse_instant(run["due"].as_str().unwrap()).unwrap();
    assert_eq!(
        due,
        (start * 1000.0) as i64,
        "the first due time is the start date"
    );
    let at = berth_schedule::parse_instant(run["at"].as_str().unwrap()).unwrap();
    assert!(
        (0..10_000).contains(&(at - due)),
        "run recorded {} ms after its due time",
        at - due
    );
    let tasks: Vec<String> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks.len(), 2, "{first}");

    // The tasks are RunTask's, as the schedule asked: started by the schedule, tagged, with
    // the overrides of Target.Input.
    let described = ecs
        .describe_tasks()
        .cluster(C)
        .set_tasks(Some(tasks.clone()))
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(described.tasks().len(), 2);
    for t in described.tasks() {
        assert_eq!(t.started_by(), Some("schedule/default/every-minute"));
        assert!(
            t.tags()
                .iter()
                .any(|tag| tag.key() == Some("team") && tag.value() == Some("data")),
            "{:?}",
            t.tags()
        );
        let env = t.overrides().unwrap().container_overrides()[0].environment();
        assert_eq!(env[0].value(), Some("nightly"));
    }
    eventually(
        Duration::from_secs(20),
        "the run's tasks RUNNING",
        || async {
            let d = ecs
                .describe_tasks()
                .cluster(C)
                .set_tasks(Some(tasks.clone()))
                .send()
                .await
                .unwrap();
            d.tasks().iter().all(|t| t.last_status() == Some("RUNNING"))
        },
    )
    .await;

    // The next due time comes while they still run: SKIP_IF_RUNNING (the default) records it
    // as skipped and starts nothing.
    let second = until_runs(&b, "every-minute", 2, Duration::from_secs(90)).await;
    let skipped = &second["runs"][1];
    assert_eq!(skipped["outcome"]["kind"], "SKIPPED", "{second}");
    assert!(
        skipped["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("still running"),
        "{second}"
    );
    assert_eq!(
        berth_schedule::parse_instant(skipped["due"].as_str().unwrap()).unwrap(),
        due + 60_000
    );
    assert!(skipped["tasks"].as_array().unwrap().is_empty());
    let listed = started_by(&ecs, C, "schedule/default/every-minute").await;
    assert_eq!(listed.len(), 2, "no task was started twice");
}

#[tokio::test]
async fn the_scheduler_api_answers_in_its_own_shape_and_holds_to_policies() {
    let b = Berth::start();
    let ecs = b.client();
    setup(&ecs, "a").await;
    ecs.create_cluster().cluster_name("b").send().await.unwrap();

    // Unsigned: refused before anything else.
    let r = common::raw_unsigned(&b.endpoint, "GET", "/schedules", &[], b"").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );

    // Create, read back, list, conflict.
    let create = body("cron(0 12 ? * MON-FRI *)", "a");
    let r = call(None, &b, "POST", "/schedules/weekdays", Some(&create)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = call(None, &b, "GET", "/schedules/weekdays", None)
        .await
        .json();
    assert_eq!(got["ScheduleExpression"], "cron(0 12 ? * MON-FRI *)");
    assert_eq!(got["State"], "ENABLED");
    assert_eq!(got["FlexibleTimeWindow"]["Mode"], "OFF");
    assert_eq!(got["Target"]["EcsParameters"]["TaskDefinitionArn"], "job");
    assert_eq!(got["Target"]["RoleArn"], ROLE);
    assert!(got["CreationDate"].as_f64().unwrap() > 1.7e9, "{got}");
    let r = call(None, &b, "POST", "/schedules/weekdays", Some(&create)).await;
    expect(&r, 409, "ConflictException");

    // Validation, in the Scheduler's words.
    let r = call(
        None,
        &b,
        "POST",
        "/schedules/bad",
        Some(&body("cron(0 12 * * * *)", "a")),
    )
    .await;
    let m = expect(&r, 400, "ValidationException");
    assert!(m.contains("Invalid Schedule Expression"), "{m}");
    let mut lambda = body("rate(5 minutes)", "a");
    lambda["Target"]["Arn"] = json!("arn:aws:lambda:us-east-1:000000000000:function:f");
    let m = expect(
        &call(None, &b, "POST", "/schedules/bad", Some(&lambda)).await,
        400,
        "ValidationException",
    );
    assert!(m.contains("ECS"), "{m}");
    let mut no_role = body("rate(5 minutes)", "a");
    no_role["Target"]["RoleArn"] = json!("not-a-role");
    expect(
        &call(None, &b, "POST", "/schedules/bad", Some(&no_role)).await,
        400,
        "ValidationException",
    );
    let mut zone = body("rate(5 minutes)", "a");
    zone["ScheduleExpressionTimezone"] = json!("Mars/Olympus_Mons");
    expect(
        &call(None, &b, "POST", "/schedules/bad", Some(&zone)).await,
        400,
        "ValidationException",
    );
    expect(
        &call(None, &b, "POST", "/schedules/bad%20name", Some(&create)).await,
        400,
        "ValidationException",
    );
    let m = expect(
        &call(None, &b, "GET", "/schedules/nope", None).await,
        404,
        "ResourceNotFoundException",
    );
    assert!(m.contains("nope"), "{m}");
    expect(
        &call(None, &b, "GET", "/schedules/weekdays?groupName=other", None).await,
        404,
        "ResourceNotFoundException",
    );

    // Read-only: may get and list, may not create.
    let reader = credential(&b, "reader", "read-only").await;
    let r = call(Some(&reader), &b, "GET", "/schedules/weekdays", None).await;
    assert_eq!(r.status, 200);
    let r = call(Some(&reader), &b, "POST", "/schedules/mine", Some(&create)).await;
    expect(&r, 403, "AccessDeniedException");

    // An operator of cluster a schedules in a, not in b, and lists only a's schedules.
    let operator = credential(&b, "ops-a", "operator:a").await;
    let r = call(
        Some(&operator),
        &b,
        "POST",
        "/schedules/b-job",
        Some(&body("rate(5 minutes)", "b")),
    )
    .await;
    expect(&r, 403, "AccessDeniedException");
    let r = call(
        None,
        &b,
        "POST",
        "/schedules/b-job",
        Some(&body("rate(5 minutes)", "b")),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        Some(&operator),
        &b,
        "POST",
        "/schedules/a-job",
        Some(&body("rate(5 minutes)", "a")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let listed = call(Some(&operator), &b, "GET", "/schedules", None)
        .await
        .json();
    let names: Vec<&str> = listed["Schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-job", "weekdays"]);
    let r = call(Some(&operator), &b, "DELETE", "/schedules/b-job", None).await;
    expect(&r, 403, "AccessDeniedException");

    // Pagination and filters, as the admin.
    let page = call(None, &b, "GET", "/schedules?MaxResults=2", None)
        .await
        .json();
    assert_eq!(page["Schedules"].as_array().unwrap().len(), 2);
    let token = page["NextToken"].as_str().unwrap();
    let rest = call(
        None,
        &b,
        "GET",
        &format!("/schedules?MaxResults=2&NextToken={token}"),
        None,
    )
    .await
    .json();
    assert_eq!(rest["Schedules"][0]["Name"], "weekdays");
    assert!(rest.get("NextToken").is_none());
    let prefixed = call(None, &b, "GET", "/schedules?NamePrefix=b-", None)
        .await
        .json();
    assert_eq!(prefixed["Schedules"].as_array().unwrap().len(), 1);
    expect(
        &call(None, &b, "GET", "/schedules?MaxResults=0", None).await,
        400,
        "ValidationException",
    );

    // Update replaces the settings; the run policy is berth's own, kept across updates.
    let r = call(
        None,
        &b,
        "PUT",
        "/v1/schedules/default/weekdays/policy",
        Some(&json!({"concurrency": "REPLACE", "missedRuns": "CATCH_UP_ONCE"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut disabled = body("rate(2 hours)", "a");
    disabled["State"] = json!("DISABLED");
    let r = call(None, &b, "PUT", "/schedules/weekdays", Some(&disabled)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = call(None, &b, "GET", "/schedules/weekdays", None)
        .await
        .json();
    assert_eq!(got["ScheduleExpression"], "rate(2 hours)");
    assert_eq!(got["State"], "DISABLED");
    let status = runs(&b, "weekdays").await;
    assert_eq!(status["policy"]["concurrency"], "REPLACE");
    assert_eq!(status["policy"]["missedRuns"], "CATCH_UP_ONCE");
    assert!(
        status["nextDue"].is_null(),
        "a disabled schedule has no next due time"
    );
    let r = call(
        None,
        &b,
        "PUT",
        "/v1/schedules/default/weekdays/policy",
        Some(&json!({"concurrency": "SOMETIMES"})),
    )
    .await;
    assert_eq!(r.status, 400);

    // The operator's CLI shows the same, and sets policies.
    let listed: Value =
        serde_json::from_slice(&berth_cli(&b, &["schedule", "ls", "-o", "json"])).unwrap();
    let weekdays = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "weekdays")
        .unwrap();
    assert_eq!(weekdays["expression"], "rate(2 hours)");
    assert_eq!(weekdays["state"], "DISABLED");
    assert_eq!(weekdays["cluster"], "a");
    assert_eq!(weekdays["concurrency"], "REPLACE");
    let table = String::from_utf8(berth_cli(&b, &["schedule", "ls"])).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("a-job"), "{table}");
    berth_cli(
        &b,
        &["schedule", "policy", "weekdays", "--concurrency", "ALLOW"],
    );
    let runs_view: Value = serde_json::from_slice(&berth_cli(
        &b,
        &["schedule", "runs", "weekdays", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(runs_view["policy"]["concurrency"], "ALLOW");
    assert_eq!(
        runs_view["policy"]["missedRuns"], "CATCH_UP_ONCE",
        "the other policy is kept"
    );
    let refused = cli_command(&b, &["schedule", "runs", "nope"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("ResourceNotFoundException"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Delete: gone.
    let r = call(None, &b, "DELETE", "/schedules/weekdays", None).await;
    assert_eq!(r.status, 200);
    expect(
        &call(None, &b, "GET", "/schedules/weekdays", None).await,
        404,
        "ResourceNotFoundException",
    );
    expect(
        &call(None, &b, "DELETE", "/schedules/weekdays", None).await,
        404,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn a_one_time_schedule_runs_once_then_deletes_itself() {
    const C: &str = "once";
    let b = Berth::start();
    let ecs = b.client();
    setup(&ecs, C).await;
    let _agent = AgentProcess::start(&b.endpoint, C, &["--runtime", "hollow"]);
    let when = berth_schedule::format_utc(((now_seconds() + 3.0).floor() * 1000.0) as i64).unwrap();
    let mut once = body(&format!("at({})", when.trim_end_matches('Z')), C);
    once["ActionAfterCompletion"] = json!("DELETE");
    let r = call(None, &b, "POST", "/schedules/once", Some(&once)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    eventually(
        Duration::from_secs(30),
        "the schedule deleted after its run",
        || async { call(None, &b, "GET", "/schedules/once", None).await.status == 404 },
    )
    .await;
    let listed = started_by(&ecs, C, "schedule/default/once").await;
    assert_eq!(listed.len(), 1, "it ran exactly once");
}

#[tokio::test]
async fn a_leader_killed_while_schedules_run_does_not_run_a_due_time_twice() {
    const C: &str = "ha";
    const SCHEDULES: usize = 4;
    let root = tempfile::tempdir().unwrap();
    let mut nodes = common::cluster::start_cluster(root.path(), 3);
    let leader = common::cluster::leader_of(&nodes).await as usize;
    let l = nodes[leader - 1].as_ref().unwrap();
    let ecs = l.client();
    ecs.create_cluster().cluster_name(C).send().await.unwrap();
    ecs.register_task_definition()
        .family("job")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();

    // Several schedules due at one instant, each starting two tasks that wait for capacity
    // (the cluster has no instance: `berth:queue-timeout` lets them queue), so the runner is
    // busy with them for a while when the leader is killed.
    let due_ms = ((now_seconds() + 4.0).floor() * 1000.0) as i64;
    let at = berth_schedule::format_utc(due_ms).unwrap();
    for i in 0..SCHEDULES {
        let mut once = body(&format!("at({})", at.trim_end_matches('Z')), C);
        once["Target"]["EcsParameters"]["TaskCount"] = json!(2);
        once["Target"]["EcsParameters"]["Tags"] = json!([{"berth:queue-timeout": "600"}]);
        let r = call(None, l, "POST", &format!("/schedules/job-{i}"), Some(&once)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    // SIGKILL the leader 30 ms after the due time: while it takes due times and runs them.
    let wait = due_ms + 30 - (now_seconds() * 1000.0) as i64;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    nodes[leader - 1].as_mut().unwrap().kill();
    nodes[leader - 1] = None;
    let survivor = nodes.iter().flatten().next().unwrap();

    // A new leader finishes what the old one began: every schedule ends with one started run
    // of exactly its two tasks, and no task was started twice.
    for i in 0..SCHEDULES {
        let name = format!("job-{i}");
        let status = until_runs(survivor, &name, 1, Duration::from_secs(60)).await;
        let runs = status["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{status}");
        assert_eq!(runs[0]["outcome"]["kind"], "STARTED", "{status}");
        assert_eq!(
            berth_schedule::parse_instant(runs[0]["due"].as_str().unwrap()).unwrap(),
            due_ms
        );
        let recorded: Vec<&str> = runs[0]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(recorded.len(), 2, "{status}");
        let listed = started_by(&survivor.client(), C, &format!("schedule/default/{name}")).await;
        let mut started: Vec<&str> = listed.iter().map(String::as_str).collect();
        started.sort();
        let mut recorded = recorded;
        recorded.sort();
        assert_eq!(
            started, recorded,
            "{name}: the tasks started are the run's, once"
        );
    }
}
