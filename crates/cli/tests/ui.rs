//! The web UI against a real server, over HTTP as a browser speaks it: the login page and its
//! session cookie, what a signed-in principal sees (and does not), live updates over SSE,
//! CSRF on writes, and sessions that end with their credential. (A real browser drives it in
//! tests/e2e/test_ui.py.)

mod common;

use std::time::Duration;

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
