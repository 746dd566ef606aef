//! The web UI against a real server, over HTTP as a browser speaks it: the login page and its
//! session cookie, what a signed-in principal sees (and does not), live updates over SSE,
//! CSRF on writes, and sessions that end with their credential; the service, task and
//! instance pages with a real hollow agent: their data, links, log tails, placement verdicts,
//! escaping, refusals and 404s. (A real browser drives it in tests/e2e/test_ui.py.)

mod common;

use std::time::Duration;

use common::agent::AgentProcess;
use common::{Berth, RawResponse, credential, ecs_op, raw, raw_unsigned};
use http_body_util::BodyExt;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

fn text(r: &RawResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Signs in with `credentials`; the `Cookie` header value the browser would send after.
async fn sign_in(b: &Berth, credentials: &berth_client::Credentials) -> String {
    let body = format!(
        "access_key_id={}&secret={}",
        credentials.access_key_id,
        urlencode(credentials.secret.expose())
    );
    let r = raw_unsigned(&b.endpoint, "POST", "/ui/login", &[FORM], body.as_bytes()).await;
    assert_eq!(r.status, 303, "{}", text(&r));
    assert_eq!(r.header("location"), Some("/ui"));
    let cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(credentials.secret.expose()),
        "the cookie must not hold the secret"
    );
    cookie.split(';').next().unwrap().to_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(b: &Berth, path: &str, cookie: &str) -> RawResponse {
    raw_unsigned(&b.endpoint, "GET", path, &[("cookie", cookie)], b"").await
}

/// The CSRF token in a signed-in page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_ui_needs_a_session_and_a_session_needs_a_secret() {
    let b = Berth::start();
    // Unsigned: the pages send the browser to the login page; nothing else answers.
    let r = raw_unsigned(&b.endpoint, "GET", "/ui", &[], b"").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    let r = raw_unsigned(&b.endpoint, "POST", "/ui/logout", &[FORM], b"csrf=x").await;
    assert_eq!(r.status, 401, "{}", text(&r));
    let r = raw_unsigned(
        &b.endpoint,
        "GET",
        "/ui",
        &[("cookie", "berth_session=bs1.A.1.99999999999.00")],
        b"",
    )
    .await;
    assert_eq!(r.status, 303, "a forged session is no session");

    let login = raw_unsigned(&b.endpoint, "GET", "/ui/login", &[], b"").await;
    assert_eq!(login.status, 200);
    assert!(text(&login).contains(r#"<form method="post" action="/ui/login">"#));
    let csp = login.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(login.header("x-frame-options"), Some("DENY"));

    // A wrong secret, an unknown key, an agent's join token: refused alike.
    let admin = common::admin(&b.endpoint);
    for body in [
        format!("access_key_id={}&secret=wrong", admin.access_key_id),
        "access_key_id=BKNOSUCHKEY&secret=x".to_owned(),
    ] {
        let r = raw_unsigned(&b.endpoint, "POST", "/ui/login", &[FORM], body.as_bytes()).await;
        assert_eq!(r.status, 401);
        assert!(text(&r).contains("not valid"), "{}", text(&r));
        assert!(r.header("set-cookie").is_none());
    }
    let token = common::join_token(&b.endpoint, "default").await;
    let body = format!(
        "access_key_id={}&secret={}",
        token.id,
        urlencode(token.secret.expose())
    );
    let r = raw_unsigned(&b.endpoint, "POST", "/ui/login", &[FORM], body.as_bytes()).await;
    assert_eq!(r.status, 401, "a join token is not a person");
    // A page of another site cannot sign a browser in.
    let body = format!(
        "access_key_id={}&secret={}",
        admin.access_key_id,
        urlencode(admin.secret.expose())
    );
    let host = b.endpoint.trim_start_matches("http://").to_owned();
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/ui/login",
        &[FORM, ("origin", "http://evil.example"), ("host", &host)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403);
    let origin = b.endpoint.clone();
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/ui/login",
        &[FORM, ("origin", &origin), ("host", &host)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303, "the server's own page may: {}", text(&r));

    let cookie = sign_in(&b, &admin).await;
    let r = get(&b, "/ui", &cookie).await;
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(
        text(&r).contains("signed in as <strong>user/admin</strong>"),
        "{}",
        text(&r)
    );

    // Signing out needs the page's CSRF token.
    let page = text(&r);
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/ui/logout",
        &[FORM, ("cookie", &cookie)],
        b"csrf=forged",
    )
    .await;
    assert_eq!(r.status, 403);
    let body = format!("csrf={}", csrf_of(&page));
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/ui/logout",
        &[FORM, ("cookie", &cookie)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
}

/// Signing out ends that session on the server, not only in the browser: a copy of its cookie
/// is refused afterwards by every server of the cluster (followers included), while another
/// session of the same user goes on.
#[tokio::test]
async fn signing_out_revokes_the_session_everywhere_and_only_that_session() {
    let root = tempfile::tempdir().unwrap();
    let nodes = common::cluster::start_cluster(root.path(), 3);
    let servers: Vec<&Berth> = nodes.iter().flatten().collect();
    let b = servers[0];
    let admin = common::admin(&b.endpoint);
    let kept = sign_in(b, &admin).await;
    let signed_out = sign_in(b, &admin).await;
    assert_ne!(kept, signed_out, "two sign-ins are two sessions");
    let page = get(b, "/ui", &signed_out).await;
    assert_eq!(page.status, 200, "{}", text(&page));
    for s in &servers {
        let r = get(s, "/ui", &signed_out).await;
        assert_eq!(r.status, 200, "any server accepts a session: {}", text(&r));
    }

    let body = format!("csrf={}", csrf_of(&text(&page)));
    let r = raw_unsigned(
        &b.endpoint,
        "POST",
        "/ui/logout",
        &[FORM, ("cookie", &signed_out)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303, "{}", text(&r));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));

    // Every server has applied the sign-out once it reaches the leader's index.
    let leader = common::cluster::leader_of(&nodes).await;
    let leader = nodes[leader as usize - 1].as_ref().unwrap();
    let index = common::get_json(&leader.endpoint, "/v1/health").await["index"]
        .as_u64()
        .expect("an index");
    for s in &servers {
        common::cluster::caught_up(s, index).await;
        // The copied cookie, replayed: pages send it to the login page, writes get 401.
        let r = get(s, "/ui", &signed_out).await;
        assert_eq!(
            r.status,
            303,
            "{}: a signed-out session: {}",
            s.endpoint,
            text(&r)
        );
        assert_eq!(r.header("location"), Some("/ui/login"));
        let r = raw_unsigned(
            &s.endpoint,
            "POST",
            "/ui/logout",
            &[FORM, ("cookie", &signed_out)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 401, "{}", text(&r));
        assert!(text(&r).contains("signed out"), "{}", text(&r));
        // The same user's other session is untouched.
        let r = get(s, "/ui", &kept).await;
        assert_eq!(
            r.status,
            200,
            "{}: the other session: {}",
            s.endpoint,
            text(&r)
        );
    }
}

#[tokio::test]
async fn a_principal_sees_what_its_policy_allows_and_its_session_ends_with_its_credential() {
    let b = Berth::start();
    for name in ["alpha", "beta"] {
        let r = ecs_op(
            &b.endpoint,
            "CreateCluster",
            &format!(r#"{{"clusterName":"{name}"}}"#),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let operator = credential(&b, "ops-alpha", "operator:alpha").await;
    let cookie = sign_in(&b, &operator).await;
    let page = text(&get(&b, "/ui?fragment=1", &cookie).await);
    assert!(page.contains(r#"data-cluster="alpha""#), "{page}");
    assert!(!page.contains(r#"data-cluster="beta""#), "{page}");
    assert!(
        page.contains("1 more cluster(s) you may not describe"),
        "{page}"
    );
    assert!(
        !page.contains("<html"),
        "a fragment is just the main content"
    );

    // Deleting the credential ends its sessions at once, on every server.
    let r = raw(
        &b.endpoint,
        "DELETE",
        &format!("/v1/credentials/{}", operator.access_key_id),
        &[],
        b"",
    )
    .await;
    assert!(r.status < 300, "{}", text(&r));
    let r = get(&b, "/ui", &cookie).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
}

#[tokio::test]
async fn the_overview_changes_live() {
    let b = Berth::start();
    let cookie = sign_in(&b, &common::admin(&b.endpoint)).await;
    let page = text(&get(&b, "/ui?fragment=1", &cookie).await);
    let at = page.find("data-index=\"").expect("the index shown") + 12;
    let index: u64 = page[at..].split('"').next().unwrap().parse().unwrap();

    let req = hyper::Request::builder()
        .uri(format!("{}/ui/events?since={index}", b.endpoint))
        .header("cookie", &cookie)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = common::http().request(req).await.expect("the event stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp.into_body();

    let r = ecs_op(&b.endpoint, "CreateCluster", r#"{"clusterName":"fresh"}"#).await;
    assert_eq!(r.status, 200);
    let mut seen = String::new();
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.contains("event: change") {
            let frame = body.frame().await.expect("open").expect("a frame");
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
    assert!(event.is_ok(), "no change event within 5 s: {seen:?}");
    let data: u64 = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("the new index")
        .trim()
        .parse()
        .unwrap();
    assert!(data > index, "{seen}");
    let page = text(&get(&b, "/ui?fragment=1", &cookie).await);
    assert!(page.contains(r#"data-cluster="fresh""#), "{page}");
}

/// The first value of attribute `name` in `page` (`name="value"`).
fn attribute(page: &str, name: &str) -> Option<String> {
    let marker = format!(r#"{name}=""#);
    let at = page.find(&marker)? + marker.len();
    Some(page[at..].split('"').next()?.to_owned())
}

/// The page at `path` once `ready` holds for it (within 20 s).
async fn page_until(
    b: &Berth,
    path: &str,
    cookie: &str,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = text(&get(b, path, cookie).await);
        if ready(&page) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path}: not within 20 s: {what}\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ecs_ok(b: &Berth, op: &str, body: serde_json::Value) -> serde_json::Value {
    let r = ecs_op(&b.endpoint, op, &body.to_string()).await;
    assert_eq!(r.status, 200, "{op}: {}", text(&r));
    r.json()
}

#[tokio::test]
async fn service_task_and_instance_pages_show_the_cluster_as_it_is() {
    let b = Berth::start();
    ecs_ok(&b, "CreateCluster", serde_json::json!({"clusterName": "c"})).await;
    let agent = AgentProcess::start(
        &b.endpoint,
        "c",
        &[
            "--runtime",
            "hollow",
            "--cpu",
            "2048",
            "--memory",
            "1024",
            "--attribute",
            "stack=blue",
        ],
    );
    let instance_id = agent.instance_arn.rsplit('/').next().unwrap().to_owned();
    let container = |name: &str, memory: u32| {
        serde_json::json!({"name": name, "image": "hollow/app:1", "cpu": 128, "memory": memory,
            "portMappings": [{"containerPort": 80, "hostPort": 0}]})
    };
    ecs_ok(
        &b,
        "RegisterTaskDefinition",
        serde_json::json!({"family": "web", "containerDefinitions": [container("app", 128)]}),
    )
    .await;
    ecs_ok(
        &b,
        "RegisterTaskDefinition",
        serde_json::json!({"family": "huge", "containerDefinitions": [container("app", 4096)]}),
    )
    .await;
    ecs_ok(
        &b,
        "CreateService",
        serde_json::json!({"cluster": "c", "serviceName": "web",
        "taskDefinition": "web", "desiredCount": 2}),
    )
    .await;

    let cookie = sign_in(&b, &common::admin(&b.endpoint)).await;
    let service_path = "/ui/clusters/c/services/web";
    let page = page_until(&b, service_path, &cookie, "two tasks of web RUNNING", |p| {
        p.matches(r#"data-status="RUNNING""#).count() == 2
    })
    .await;
    assert!(
        page.contains("<title>Service web · berth</title>"),
        "{page}"
    );
    assert!(page.contains(r#"data-deployment="ecs-svc/"#), "{page}");
    assert!(page.contains("2 running, 0 pending of 2 desired"), "{page}");
    assert!(page.contains("has started"), "the service's events: {page}");
    assert!(
        page.contains(&format!(r#"href="/ui/clusters/c/instances/{instance_id}""#)),
        "{page}"
    );

    // The overview links to the service and the instance.
    let overview = text(&get(&b, "/ui?fragment=1", &cookie).await);
    assert!(
        overview.contains(&format!(r#"href="{service_path}""#)),
        "{overview}"
    );
    assert!(
        overview.contains(&format!(r#"href="/ui/clusters/c/instances/{instance_id}""#)),
        "{overview}"
    );

    // The task page: containers with their bindings, the history timeline, the log tail.
    let task = attribute(&page, "data-task").expect("a task on the service page");
    let task_path = format!("/ui/clusters/c/tasks/{task}");
    assert!(page.contains(&format!(r#"href="{task_path}""#)), "{page}");
    let r = get(&b, &task_path, &cookie).await;
    assert_eq!(r.status, 200);
    let page = text(&r);
    assert!(
        page.contains(r#"<tr data-container="app" data-status="RUNNING">"#),
        "{page}"
    );
    assert!(page.contains("→ 80/tcp"), "the network binding: {page}");
    assert!(
        page.contains("status: PENDING → RUNNING"),
        "the timeline: {page}"
    );
    assert!(
        page.contains(r#"href="/ui/clusters/c/services/web""#),
        "{page}"
    );
    assert!(
        page.contains("data-follow"),
        "a running task's logs are followed: {page}"
    );
    let logs = attribute(&page, "data-logs").expect("a log box");
    let r = get(&b, &logs, &cookie).await;
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("hollow container"), "{}", text(&r));

    // Stopping it with a hostile reason: the page shows it, escaped, live.
    ecs_ok(
        &b,
        "StopTask",
        serde_json::json!({"cluster": "c", "task": task,
        "reason": "<script>alert(1)</script>"}),
    )
    .await;
    let page = page_until(
        &b,
        &format!("{task_path}?fragment=1"),
        &cookie,
        "the task STOPPED",
        |p| p.contains(r#"data-status="STOPPED""#),
    )
    .await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("desired: RUNNING → STOPPED"), "{page}");
    assert!(page.contains("by user/admin"), "who stopped it: {page}");

    // The instance page: attributes, capacity, its tasks, and placement verdicts.
    ecs_ok(
        &b,
        "TagResource",
        serde_json::json!({"resourceArn": agent.instance_arn,
        "tags": [{"key": "owner", "value": "<img src=x onerror=alert(1)>"}]}),
    )
    .await;
    let instance_path = format!("/ui/clusters/c/instances/{instance_id}");
    let page = text(&get(&b, &format!("{instance_path}?taskdef=huge:1"), &cookie).await);
    assert!(
        page.contains("<td><code>stack</code></td><td>blue</td>"),
        "{page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img"), "{page}");
    assert!(
        page.contains(r#"<tr data-resource="cpu"><td>CPU units</td><td>2048</td>"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"href="{task_path}""#)),
        "its tasks, stopped ones too: {page}"
    );
    assert!(
        page.contains(r#"<tr data-verdict="rejected"><td>task definition huge:1</td>"#),
        "{page}"
    );
    assert!(page.contains("MEMORY"), "why: {page}");
    assert!(
        page.contains(r#"<option value="huge:1" selected>"#),
        "the form keeps the choice: {page}"
    );
    let page = text(
        &get(
            &b,
            &format!("{instance_path}?taskdef=web:1&fragment=1"),
            &cookie,
        )
        .await,
    );
    assert!(
        page.contains(r#"<tr data-verdict="chosen"><td>task definition web:1</td>"#),
        "{page}"
    );

    // Long lists are capped, and the page says so.
    ecs_ok(
        &b,
        "RegisterTaskDefinition",
        serde_json::json!({"family": "tiny",
        "containerDefinitions": [{"name": "app", "image": "hollow/app:1", "memory": 6}]}),
    )
    .await;
    for _ in 0..11 {
        let placed = ecs_ok(
            &b,
            "RunTask",
            serde_json::json!({"cluster": "c",
            "taskDefinition": "tiny", "count": 10}),
        )
        .await;
        assert_eq!(
            placed["tasks"].as_array().map(Vec::len),
            Some(10),
            "{placed}"
        );
    }
    let page = text(&get(&b, &format!("{instance_path}?fragment=1"), &cookie).await);
    assert_eq!(page.matches("<tr data-task=").count(), 100, "{page}");
    assert!(
        page.contains("showing 100; ") && page.contains(" more not listed"),
        "{page}"
    );

    // Unknown things are 404 pages; a malformed id is unknown too.
    for path in [
        "/ui/clusters/c/services/nope".to_owned(),
        "/ui/clusters/nope/services/web".to_owned(),
        format!("/ui/clusters/nope/tasks/{task}"),
        "/ui/clusters/c/tasks/0123456789abcdef0123456789abcdef".to_owned(),
        "/ui/clusters/c/tasks/%3Cscript%3E".to_owned(),
        "/ui/clusters/c/instances/zz".to_owned(),
        "/ui/no/such/page".to_owned(),
    ] {
        let r = get(&b, &path, &cookie).await;
        assert_eq!(r.status, 404, "{path}: {}", text(&r));
        assert!(
            text(&r).contains("<h1>Not found</h1>"),
            "{path}: {}",
            text(&r)
        );
        assert!(!text(&r).contains("<script>"), "{path}: {}", text(&r));
    }

    let r = raw_unsigned(&b.endpoint, "GET", "/ui/assets/nothing.js", &[], b"").await;
    assert_eq!(r.status, 404, "no asset by that name, and no page either");

    // Unsigned, every page sends the browser to sign in.
    for path in [service_path, &task_path, &instance_path, &logs] {
        let r = raw_unsigned(&b.endpoint, "GET", path, &[], b"").await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/ui/login"));
    }

    // A principal that may describe, but not read history, logs or placements, sees the pages
    // without them, and is told why.
    let body = serde_json::json!({"name": "describer", "policy": {"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*"],
            "Resource": "*"}]}});
    let r = raw(
        &b.endpoint,
        "POST",
        "/v1/credentials",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", text(&r));
    let describer = berth_client::Credentials {
        access_key_id: r.json()["accessKeyId"].as_str().unwrap().into(),
        secret: berth_auth::SecretKey::new(r.json()["secretAccessKey"].as_str().unwrap()),
    };
    let cookie = sign_in(&b, &describer).await;
    let page = text(&get(&b, &task_path, &cookie).await);
    assert!(page.contains("may not read this task's history"), "{page}");
    assert!(page.contains(r#"data-container="app""#), "{page}");
    let r = get(&b, &logs, &cookie).await;
    assert!(text(&r).contains("No logs: 403"), "{}", text(&r));
    let page = text(&get(&b, &format!("{instance_path}?taskdef=huge:1"), &cookie).await);
    assert!(
        page.contains(r#"<tr data-verdict="error"><td>task definition huge:1</td>"#),
        "{page}"
    );
    assert!(page.contains("berth:DryRunPlacement"), "{page}");

    // A principal that may not read cluster c is refused, and shown nothing of it.
    let other = credential(&b, "ops-other", "operator:other").await;
    let cookie = sign_in(&b, &other).await;
    for path in [service_path, &task_path, &instance_path] {
        let r = get(&b, path, &cookie).await;
        assert_eq!(r.status, 403, "{path}: {}", text(&r));
        let page = text(&r);
        assert!(
            page.contains("Not allowed") && page.contains("not authorized"),
            "{path}: {page}"
        );
        for secret in ["data-deployment", "data-container", "stack", "hollow"] {
            assert!(!page.contains(secret), "{path} leaks {secret}: {page}");
        }
    }
    let r = get(&b, &logs, &cookie).await;
    assert!(text(&r).contains("No logs: 403"), "{}", text(&r));
    assert!(!text(&r).contains("hollow container"), "{}", text(&r));
}
