//! The operator's CLI end to end: the built `berth` binary run as a person or a script runs
//! it, against a real server with a real (hollow) agent, for every command — tables read as
//! text, `--output json` (and yaml) parsed back, and the exit codes of `--wait` checked on
//! success (0), on failure (3: a task that exits 1, a task that cannot be placed, a tripped
//! deployment circuit breaker) and on a failed request (1).

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::Berth;
use common::agent::AgentProcess;
use serde_json::{Value, json};

/// `berth ARGS...` against `b`, signing with its admin credential the way an operator's
/// shell would (BERTH_ENDPOINT, AWS_SHARED_CREDENTIALS_FILE), with no colour.
fn berth(b: &Berth, args: &[&str]) -> Output {
    berth_command(b, args).output().expect("run berth")
}

fn berth_command(b: &Berth, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .env("BERTH_ENDPOINT", &b.endpoint)
        .env("AWS_SHARED_CREDENTIALS_FILE", b.credentials_file())
        .env("RUST_LOG", "warn")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("BERTH_CLUSTER")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
#[track_caller]
fn ok(b: &Berth, args: &[&str]) -> String {
    let out = berth(b, args);
    assert!(
        out.status.success(),
        "berth {args:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a command with `-o json` that must succeed; its output parsed.
#[track_caller]
fn json_of(b: &Berth, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["-o", "json"]).collect();
    let out = ok(b, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("berth {args:?}: not JSON ({e}): {out}"))
}

/// Runs a command that must fail with `code`; its stderr.
#[track_caller]
fn fails(b: &Berth, args: &[&str], code: i32) -> String {
    let out = berth(b, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "berth {args:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// The output of a child that must exit within 20 s (killed, and the test failed, if not).
fn wait_output(mut child: std::process::Child, what: &str) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Registers a task definition through `berth taskdef register FILE`.
fn register(b: &Berth, definition: Value) -> Value {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(definition.to_string().as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    json_of(b, &["taskdef", "register", &path])
}

/// A hollow container definition: it runs nothing; the labels script its exit.
fn container(name: &str, labels: Value) -> Value {
    json!({"name": name, "image": "hollow/app:1", "cpu": 256, "memory": 128, "dockerLabels": labels})
}

/// A server, cluster `c` made with `berth cluster create`, and one hollow agent with 4 vCPU
/// and 8 GiB.
fn cluster_with_agent() -> (Berth, AgentProcess) {
    let b = Berth::start();
    let created = json_of(&b, &["cluster", "create", "c"]);
    assert_eq!(created[0]["name"], "c", "{created}");
    assert_eq!(created[0]["status"], "ACTIVE", "{created}");
    let agent = AgentProcess::start(
        &b.endpoint,
        "c",
        &["--runtime", "hollow", "--cpu", "4096", "--memory", "8192"],
    );
    (b, agent)
}

#[test]
fn tasks_are_run_listed_explained_stopped_and_traced_through_their_history() {
    let (b, agent) = cluster_with_agent();
    let instance_id = agent.instance_arn.rsplit('/').next().unwrap().to_owned();
    let web = register(
        &b,
        json!({"family": "web", "containerDefinitions": [container("app", json!({}))]}),
    );
    assert_eq!(web[0]["family"], "web");
    assert_eq!(web[0]["revision"], 1);
    assert_eq!(web[0]["containers"][0]["image"], "hollow/app:1");

    // A watch from the current index sees the tasks about to run.
    let index = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::get_json(&b.endpoint, "/v1/health"))["index"]
        .as_u64()
        .unwrap()
        .to_string();
    let watch = berth_command(
        &b,
        &[
            "watch", "--index", &index, "--diff", "--kind", "task", "--limit", "1", "-o", "json",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();

    // run --wait: exit 0 once both tasks run; JSON parsed back.
    let tasks = json_of(
        &b,
        &["run", "web", "--cluster", "c", "--count", "2", "--wait"],
    );
    let tasks = tasks.as_array().unwrap().clone();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    for t in &tasks {
        assert_eq!(t["lastStatus"], "RUNNING", "{t}");
        assert_eq!(t["instance"], instance_id.as_str(), "{t}");
        assert_eq!(t["taskDefinition"], "web:1", "{t}");
    }
    let watched = wait_output(watch, "watch --limit 1");
    assert!(watched.status.success(), "{}", text(&watched.stderr));
    let change: Value = serde_json::from_str(text(&watched.stdout).trim()).unwrap();
    assert_eq!(change["kind"], "task", "{change}");
    assert!(
        tasks.iter().any(|t| t["arn"] == change["arn"]),
        "the watch saw one of the tasks run: {change}"
    );
    let fields = change["fields"]
        .as_array()
        .expect("--diff: the change's fields");
    assert!(fields.iter().any(|f| f["path"] == "lastStatus"), "{change}");

    // Listings, as JSON and as tables.
    let listed = json_of(&b, &["task", "ls", "--cluster", "c"]);
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let mut run_ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    ids.sort();
    run_ids.sort();
    assert_eq!(ids, run_ids);
    assert_eq!(
        json_of(&b, &["task", "ls", "--cluster", "c", "--family", "nope"]),
        json!([])
    );
    let instances = json_of(&b, &["instance", "ls", "--cluster", "c"]);
    assert_eq!(instances[0]["id"], instance_id.as_str());
    assert_eq!(instances[0]["cpuTotal"], 4096);
    assert_eq!(instances[0]["cpuFree"], 4096 - 2 * 256, "{instances}");
    assert_eq!(instances[0]["memoryFree"], 8192 - 2 * 128, "{instances}");
    assert_eq!(instances[0]["runningTasks"], 2);
    assert_eq!(
        json_of(
            &b,
            &["instance", "ls", "--cluster", "c", "--status", "DRAINING"]
        ),
        json!([])
    );
    let clusters = json_of(&b, &["cluster", "ls"]);
    let c = clusters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "c")
        .unwrap();
    assert_eq!(c["runningTasks"], 2, "{clusters}");
    assert_eq!(c["instances"], 1, "{clusters}");
    assert_eq!(
        json_of(&b, &["taskdef", "ls", "--family", "web"])[0]["revision"],
        1
    );

    // --quiet: the ids alone, one a line, for the shell (`berth stop $(berth task ls -q)`).
    let mut quiet: Vec<&str> = Vec::new();
    let listed_quietly = ok(&b, &["task", "ls", "--cluster", "c", "-q"]);
    quiet.extend(listed_quietly.lines());
    quiet.sort();
    assert_eq!(quiet, run_ids, "{listed_quietly:?}");

    let table = ok(&b, &["task", "ls", "--cluster", "c"]);
    assert!(table.starts_with("TASK "), "{table}");
    assert_eq!(table.lines().count(), 3, "a header and two tasks: {table}");
    assert!(!table.contains('\x1b'), "no colour on a pipe: {table:?}");
    let status = ok(&b, &["status", "--cluster", "c"]);
    assert!(
        status.contains("Cluster c ACTIVE  1 instances  CPU 512/4096"),
        "{status}"
    );
    assert!(status.contains(&instance_id), "{status}");
    assert!(status.contains("Tasks: 2 RUNNING"), "{status}");
    let yaml: Value =
        serde_yaml_ng::from_str(&ok(&b, &["status", "--cluster", "c", "-o", "yaml"])).unwrap();
    assert_eq!(yaml[0]["tasks"]["RUNNING"], 2, "{yaml}");
    let described = ok(&b, &["task", "describe", run_ids[0], "--cluster", "c"]);
    assert!(
        described.contains("Containers:") && described.contains("app"),
        "{described}"
    );

    let described = ok(
        &b,
        &["instance", "describe", &instance_id, "--cluster", "c"],
    );
    assert!(described.contains("berth.runtime.hollow"), "{described}");
    assert!(
        described.contains("CPU:           512 used, 3584 free of 4096"),
        "{described}"
    );
    assert_eq!(
        json_of(&b, &["taskdef", "describe", "web:1"])[0]["containers"][0]["cpu"],
        256
    );
    assert_eq!(
        json_of(&b, &["cluster", "describe", "c"])[0]["runningTasks"],
        2
    );

    // explain: the dry run chooses the instance; a constraint nothing meets rejects it.
    let plan = json_of(&b, &["explain", "web", "--cluster", "c", "--count", "2"]);
    assert_eq!(
        (plan["requested"].as_u64(), plan["placed"].as_u64()),
        (Some(2), Some(2)),
        "{plan}"
    );
    assert_eq!(plan["instances"][0]["verdict"], "chosen", "{plan}");
    let rejected = json_of(
        &b,
        &[
            "explain",
            "web",
            "--cluster",
            "c",
            "--constraint",
            "attribute:zone == mars",
        ],
    );
    assert_eq!(rejected["placed"], 0, "{rejected}");
    assert_eq!(
        rejected["instances"][0]["verdict"], "rejected",
        "{rejected}"
    );
    assert!(
        rejected["instances"][0]["reason"].as_str().is_some(),
        "{rejected}"
    );
    let explained = ok(&b, &["explain", "web", "--cluster", "c"]);
    assert!(
        explained.starts_with("1 of 1 tasks of web:1 would be placed in c"),
        "{explained}"
    );
    assert!(explained.contains("chosen"), "{explained}");

    // logs, and logs -f that ends when the task stops.
    let logs = ok(
        &b,
        &["logs", run_ids[0], "--cluster", "c", "--container", "app"],
    );
    assert!(
        logs.contains("hollow container") && logs.contains(run_ids[0]),
        "{logs}"
    );
    let follow = berth_command(&b, &["logs", "-f", run_ids[0], "--cluster", "c"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // stop --wait, then the task's history shows who stopped it and what changed.
    let stopped = json_of(
        &b,
        &[
            "stop",
            run_ids[0],
            "--cluster",
            "c",
            "--reason",
            "cli test",
            "--wait",
        ],
    );
    assert_eq!(stopped[0]["lastStatus"], "STOPPED", "{stopped}");
    assert_eq!(stopped[0]["stoppedReason"], "cli test", "{stopped}");
    let followed = wait_output(follow, "logs -f of a stopped task");
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    assert!(
        text(&followed.stdout).contains("hollow container"),
        "{}",
        text(&followed.stdout)
    );
    let arn = stopped[0]["arn"].as_str().unwrap();
    let history = json_of(&b, &["history", arn]);
    let versions = history["versions"].as_array().unwrap();
    assert!(versions.len() >= 3, "created, running, stopped: {history}");
    let stop = versions
        .iter()
        .find(|v| {
            v["changes"].as_array().unwrap().iter().any(|c| {
                c["path"] == "desiredStatus" && c["old"] == "RUNNING" && c["new"] == "STOPPED"
            })
        })
        .unwrap_or_else(|| panic!("no version stopped the task: {history}"));
    assert_eq!(stop["by"], "user/admin", "{stop}");
    let shown = ok(&b, &["history", arn]);
    assert!(
        shown.contains("~ desiredStatus: \"RUNNING\" → \"STOPPED\""),
        "{shown}"
    );
    assert!(shown.contains("by user/admin"), "{shown}");

    // --wait failures are exit 3, with the reason; a failed request is exit 1.
    register(
        &b,
        json!({"family": "unpullable", "containerDefinitions": [
            {"name": "app", "image": "hollow-missing/app:1", "memory": 64}]}),
    );
    let why = fails(&b, &["run", "unpullable", "--cluster", "c", "--wait"], 3);
    assert!(
        why.contains("stopped") && why.contains("app: "),
        "the container's reason: {why}"
    );
    register(
        &b,
        json!({"family": "huge", "containerDefinitions": [
            {"name": "app", "image": "hollow/app:1", "memory": 100000}]}),
    );
    let why = fails(&b, &["run", "huge", "--cluster", "c", "--wait"], 3);
    assert!(why.contains("RESOURCE:MEMORY"), "{why}");
    // explain takes exactly run's arguments: one task per instance in a group of its own
    // places one of two, and run then starts that one and fails on the other.
    let solo = [
        "web",
        "--cluster",
        "c",
        "--count",
        "2",
        "--group",
        "solo",
        "--distinct-instance",
    ];
    let plan = json_of(&b, &[&["explain"][..], &solo].concat());
    assert_eq!(
        (plan["requested"].as_u64(), plan["placed"].as_u64()),
        (Some(2), Some(1)),
        "{plan}"
    );
    let why = fails(&b, &[&["run"][..], &solo, &["--wait"]].concat(), 3);
    assert!(why.contains("1 of 2 tasks not placed"), "{why}");
    let solos = json_of(&b, &["task", "ls", "--cluster", "c", "--family", "web"]);
    assert_eq!(
        solos
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["group"] == "solo")
            .count(),
        1,
        "{solos}"
    );
    let why = fails(&b, &["task", "ls", "--cluster", "nowhere"], 1);
    assert!(
        why.contains("nowhere"),
        "the error names the cluster: {why}"
    );
}

#[test]
fn service_rollouts_are_followed_until_they_complete_or_the_circuit_breaker_trips() {
    let (b, _agent) = cluster_with_agent();
    register(
        &b,
        json!({"family": "good", "containerDefinitions": [container("app", json!({}))]}),
    );
    // Its image cannot be pulled: its tasks fail to start.
    register(
        &b,
        json!({"family": "bad", "containerDefinitions": [
            {"name": "app", "image": "hollow-missing/app:1", "memory": 64}]}),
    );

    let out = berth(
        &b,
        &[
            "service",
            "create",
            "web",
            "--cluster",
            "c",
            "--task-definition",
            "good",
            "--desired-count",
            "2",
            "--wait",
            "--timeout",
            "30",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["running"], 2, "{created}");
    assert_eq!(created["health"], "steady", "{created}");
    assert_eq!(
        created["deployments"][0]["rolloutState"], "COMPLETED",
        "{created}"
    );
    let progress = text(&out.stderr);
    assert!(
        progress.contains("has started 2 tasks") && progress.contains("(good:1): 2/2 running"),
        "events as they come: {progress}"
    );

    // A revision whose tasks exit 1: the circuit breaker trips, the wait exits 3 and says so,
    // and the service rolls back to the last completed deployment.
    let why = fails(
        &b,
        &[
            "service",
            "update",
            "web",
            "--cluster",
            "c",
            "--task-definition",
            "bad",
            "--wait",
            "--timeout",
            "40",
        ],
        3,
    );
    assert!(why.contains("circuit breaker"), "{why}");
    let services = json_of(&b, &["service", "ls", "--cluster", "c"]);
    assert_eq!(services[0]["name"], "web");
    assert_eq!(
        services[0]["taskDefinition"], "good:1",
        "rolled back: {services}"
    );

    // scale --wait: done once the (rolled-back) PRIMARY alone runs three tasks.
    let scaled = json_of(
        &b,
        &[
            "service",
            "scale",
            "web",
            "3",
            "--cluster",
            "c",
            "--wait",
            "--timeout",
            "40",
        ],
    );
    assert_eq!(scaled["desired"], 3, "{scaled}");
    assert_eq!(scaled["running"], 3, "{scaled}");
    assert_eq!(
        scaled["deployments"].as_array().unwrap().len(),
        1,
        "{scaled}"
    );
    let tasks = json_of(&b, &["task", "ls", "--cluster", "c", "--service", "web"]);
    assert_eq!(tasks.as_array().unwrap().len(), 3, "{tasks}");
    let described = ok(&b, &["service", "describe", "web", "--cluster", "c"]);
    assert!(
        described.contains("Deployments:") && described.contains("Events:"),
        "{described}"
    );
    let status = ok(&b, &["status", "--cluster", "c"]);
    assert!(status.contains("Services: 1 steady"), "{status}");

    // A timeout is exit 4.
    let why = fails(
        &b,
        &[
            "service",
            "update",
            "web",
            "--cluster",
            "c",
            "--force-new-deployment",
            "--wait",
            "--timeout",
            "0",
        ],
        4,
    );
    assert!(why.contains("timed out"), "{why}");

    let deleted = json_of(
        &b,
        &[
            "service",
            "delete",
            "web",
            "--cluster",
            "c",
            "--force",
            "--wait",
            "--timeout",
            "40",
        ],
    );
    assert_eq!(deleted["running"], 0, "{deleted}");
    assert_eq!(
        json_of(&b, &["task", "ls", "--cluster", "c", "--service", "web"]),
        json!([])
    );
}

/// The credential and endpoint are found as the AWS tools find them: a named profile
/// (`AWS_PROFILE`) in ~/.aws/credentials, its `endpoint_url` and `region` in ~/.aws/config.
#[test]
fn the_connection_comes_from_the_aws_profile_like_the_aws_tools() {
    let b = Berth::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    let admin = std::fs::read_to_string(b.credentials_file()).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        admin.replace("[default]", "[ops]"),
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[profile ops]\nregion = eu-west-1\nendpoint_url = {}\n",
            b.endpoint
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["cluster", "create", "from-profile", "-o", "json"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("AWS_PROFILE", "ops")
        .env("RUST_LOG", "warn")
        .env_remove("BERTH_ENDPOINT")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_ECS")
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        created[0]["arn"], "arn:aws:ecs:eu-west-1:000000000000:cluster/from-profile",
        "signed for the profile's region: {created}"
    );
    let deleted = json_of(&b, &["cluster", "delete", "from-profile"]);
    assert_eq!(deleted[0]["status"], "INACTIVE", "{deleted}");
    let status = ok(&b, &["status"]);
    assert!(!status.contains("Cluster from-profile ACTIVE"), "{status}");
    // Without a credential anywhere, the error says where it looked.
    let out = berth_command(&b, &["cluster", "ls"])
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing"),
        "{}",
        text(&out.stderr)
    );
}

/// Over TLS, both clients (the ECS SDK's and the native one) trust the CA `--ca-bundle` names.
#[test]
fn an_https_server_is_reached_with_its_ca_bundle() {
    let b = Berth::start_with(&["--tls"]);
    assert!(b.endpoint.starts_with("https://"), "{}", b.endpoint);
    let ca = b.data_dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let created = json_of(&b, &["cluster", "create", "secure", "--ca-bundle", ca]);
    assert_eq!(created[0]["name"], "secure", "{created}");
    let arn = created[0]["arn"].as_str().unwrap();
    let history = json_of(&b, &["history", arn, "--ca-bundle", ca]);
    assert_eq!(history["versions"][0]["by"], "user/admin", "{history}");
    // Without the CA, the server's certificate is not trusted.
    let why = fails(&b, &["cluster", "ls"], 1);
    assert!(why.to_lowercase().contains("certificate"), "{why}");
}

#[test]
fn help_lists_examples_and_exit_codes_and_completions_are_generated() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("berth run web:3 --count 3 --wait"),
        "{help}"
    );
    assert!(
        help.contains("Exit codes:") && help.contains("circuit breaker"),
        "{help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = text(&out.stdout);
    assert!(
        script.contains("complete -F _berth") && script.contains("taskdef"),
        "{}",
        &script[..200.min(script.len())]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error is exit 2");
}
