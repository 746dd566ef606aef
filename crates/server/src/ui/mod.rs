//! The web UI at `/ui`: server-rendered pages kept live by Server-Sent Events.
//!
//! ```text
//!  GET /ui/login, POST /ui/login ── access key id + secret, checked once ──► session cookie
//!  every other /ui path ── the cookie's session token (berth_auth::session) ──► the principal
//!        │ no valid session: GET is sent to the login page, anything else gets 401
//!        ▼
//!  GET /ui                                          overview of every cluster it may describe
//!  GET /ui/clusters/{cluster}/services/{service}    deployments, events, tasks
//!  GET /ui/clusters/{cluster}/tasks/{task}          containers, history, log tails (…/logs)
//!  GET /ui/clusters/{cluster}/instances/{instance}  capacity, attributes, tasks, placement
//!  any page ?fragment=1  just its live region (#live), which ui.js swaps in
//!  GET /ui/events      SSE: `change` with the new state index whenever the state moves
//!  POST /ui/logout     needs the page's CSRF token; revokes the session on every server
//! ```
//! Each page is read with the principal's own permissions (the ECS Describe action on what it
//! shows; history, logs and dry-runs need theirs too), answers a page saying so when they are
//! missing, a 404 page for what does not exist, and caps every list it shows (and says so).
//! The browser never keeps the secret, only a session token that every server accepts (it is
//! signed with a key derived from the cluster secret) and that dies with its credential, or
//! when it signs out: a `RevokeSession` command puts its id in the replicated state until its
//! expiry, so a copied cookie is refused by every server, leader or follower, once the
//! sign-out is applied there, while the principal's other sessions go on. The UI acts as the
//! signed-in principal: what it shows is filtered by that principal's policy.
//! Pages carry no inline script or style, under a strict Content-Security-Policy, and the
//! cookie is `HttpOnly` and `SameSite=Strict`; writes also need a CSRF token.

mod delegate;
mod instance;
mod overview;
mod page;
mod service;
mod task;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use berth_api::EcsError;
use berth_api::protocol::DEFAULT_REGION;
use berth_auth::Session;
use berth_model::Millis;
use berth_model::arn::ArnContext;
use berth_model::command::RevokeSession;
use berth_model::credential::CredentialKind;
use futures::Stream;
use maud::Markup;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::App;
use crate::auth::Principal;

pub use overview::{Overview, overview};

/// Where the UI lives; the login page and the assets are the only paths open without a session.
pub const PREFIX: &str = "/ui";
const LOGIN: &str = "/ui/login";
const ASSETS: &str = "/ui/assets/";
const COOKIE: &str = "berth_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Live updates are coalesced: at most one `change` event per this interval (the first of a
/// burst goes at once).
const COALESCE: Duration = Duration::from_millis(250);

const SCRIPT: &str = include_str!("assets/ui.js");
const STYLE: &str = include_str!("assets/ui.css");

/// The session token of a signed-in request (what its CSRF token is derived from), and the
/// session it stands for (what signing out revokes).
#[derive(Clone)]
struct SignedIn {
    token: String,
    session: Session,
}

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route(PREFIX, get(home))
        .route("/ui/", get(|| async { Redirect::to(PREFIX) }))
        .route(
            "/ui/clusters/{cluster}/services/{service}",
            get(service_page),
        )
        .route("/ui/clusters/{cluster}/tasks/{task}", get(task_page))
        .route("/ui/clusters/{cluster}/tasks/{task}/logs", get(task_logs))
        .route(
            "/ui/clusters/{cluster}/instances/{instance}",
            get(instance_page),
        )
        .route("/ui/{*unknown}", get(unknown_path))
        .route("/ui/events", get(events))
        .route(LOGIN, get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/ui.js", get(|| asset(SCRIPT, "text/javascript")))
        .route("/ui/assets/ui.css", get(|| asset(STYLE, "text/css")))
        .layer(axum::middleware::map_response(security_headers))
}

/// The UI's authentication, in place of SigV4: the login page and assets are open; everything
/// else needs a valid session cookie.
pub(crate) async fn gate(app: &App, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == LOGIN || path.starts_with(ASSETS) {
        return next.run(request).await;
    }
    match signed_in(app, request.headers()) {
        Ok((principal, signed_in)) => {
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(signed_in);
            next.run(request).await
        }
        Err(_) if request.method() == Method::GET => Redirect::to(LOGIN).into_response(),
        Err(why) => (StatusCode::UNAUTHORIZED, why.to_string()).into_response(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a request carries no valid session (a POST is answered 401 with the message; a GET is
/// sent to the sign-in page).
#[derive(Debug, thiserror::Error)]
enum NotSignedIn {
    /// No session cookie.
    #[error("not signed in")]
    NoCookie,
    /// The cookie's token does not verify (malformed, forged, expired).
    #[error(transparent)]
    Invalid(#[from] berth_auth::SessionError),
    /// The session was signed out.
    #[error("this session was signed out; sign in again")]
    SignedOut,
    /// The credential the session was made for is gone or was changed.
    #[error("the session's credential was deleted or changed; sign in again")]
    CredentialChanged,
}

/// The principal behind the request's session cookie, and its session.
fn signed_in(app: &App, headers: &HeaderMap) -> Result<(Principal, SignedIn), NotSignedIn> {
    let token = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .ok_or(NotSignedIn::NoCookie)?;
    let session = app.keyring.session_key().verify(token, now_secs())?;
    let state = app.node.state();
    if state.session_revoked(&session.id) {
        return Err(NotSignedIn::SignedOut);
    }
    let credential = state
        .credential(&session.access_key_id)
        .filter(|c| c.version == session.credential_version && c.valid_at(Millis::now()))
        .ok_or(NotSignedIn::CredentialChanged)?;
    let signed_in = SignedIn {
        token: token.to_owned(),
        session,
    };
    Ok((Principal::Credential(credential.clone()), signed_in))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        // Not no-referrer: with it, browsers send `Origin: null` on a form's POST, and the
        // sign-in's same-origin check needs the real one.
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn html(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    /// Present (any value): answer just the page's live region.
    fragment: Option<String>,
    /// The instance page: the task definition whose placement to explain.
    taskdef: Option<String>,
}

/// What a page handler found to show.
enum Shown {
    Page {
        title: String,
        /// Controls above the live region (they must survive its updates).
        controls: Markup,
        /// The live region.
        fragment: Markup,
        /// What stays put below it across live updates.
        rest: Markup,
    },
    NotFound(String),
    Refused(String),
}

/// The whole page, or (`?fragment=1`) its live region, with the status the outcome calls for.
fn respond(
    app: &App,
    principal: &Principal,
    session: &SignedIn,
    q: &PageQuery,
    shown: Shown,
) -> Response {
    let none = maud::html! {};
    let (status, title, controls, fragment, rest) = match shown {
        Shown::Page {
            title,
            controls,
            fragment,
            rest,
        } => (StatusCode::OK, title, controls, fragment, rest),
        Shown::NotFound(what) => (
            StatusCode::NOT_FOUND,
            "Not found".into(),
            none.clone(),
            page::not_found(&what),
            none,
        ),
        Shown::Refused(why) => (
            StatusCode::FORBIDDEN,
            "Not allowed".into(),
            none.clone(),
            page::refused(&why),
            none,
        ),
    };
    if q.fragment.is_some() {
        return html(status, fragment);
    }
    let viewer = page::Viewer {
        name: principal.actor(),
        csrf: app.keyring.session_key().csrf(&session.token),
    };
    html(
        status,
        page::layout(&title, Some(&viewer), page::live(controls, fragment, rest)),
    )
}

/// The ARNs the UI renders and authorizes with.
fn arns(app: &App) -> ArnContext {
    ArnContext::new(DEFAULT_REGION, app.config.account_id.clone())
}

/// Whether `principal` may do `action` on `resource` in `cluster`; the refusal in AWS's words
/// (an AccessDeniedException, whose message the page shows).
fn may(
    principal: &Principal,
    arn: &ArnContext,
    action: &str,
    resource: String,
    cluster: &str,
) -> Result<(), EcsError> {
    principal.authorize(arn, action, &[resource], Some(cluster))
}

async fn home(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(session): Extension<SignedIn>,
    Query(q): Query<PageQuery>,
) -> Response {
    let arn = arns(&app);
    let state = app.node.state();
    let data = overview(&state, |cluster| {
        may(
            &principal,
            &arn,
            "ecs:DescribeClusters",
            arn.cluster(cluster),
            cluster,
        )
        .is_ok()
    });
    let shown = Shown::Page {
        title: "Overview".into(),
        controls: maud::html! {},
        fragment: page::overview(&data),
        rest: maud::html! {},
    };
    respond(&app, &principal, &session, &q, shown)
}

async fn service_page(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(session): Extension<SignedIn>,
    Path((cluster, name)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let arn = arns(&app);
    let shown = (|| {
        may(
            &principal,
            &arn,
            "ecs:DescribeServices",
            arn.service(&cluster, &name),
            &cluster,
        )
        .map_err(|e| Shown::Refused(e.message))?;
        let state = app.node.state();
        let data = service::service_page(&state, &cluster, &name).ok_or_else(|| {
            Shown::NotFound(format!("Cluster {cluster} has no service named {name}."))
        })?;
        Ok(Shown::Page {
            title: format!("Service {name}"),
            controls: maud::html! {},
            fragment: service::render(&data),
            rest: maud::html! {},
        })
    })()
    .unwrap_or_else(|shown| shown);
    respond(&app, &principal, &session, &q, shown)
}

/// A task id in a path, or the page saying there is no such task.
fn task_id(cluster: &str, task: &str) -> Result<berth_model::TaskId, Shown> {
    task.parse()
        .map_err(|_| Shown::NotFound(format!("Cluster {cluster} has no task {task}.")))
}

async fn task_page(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(session): Extension<SignedIn>,
    Path((cluster, task)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let arn = arns(&app);
    let shown = (|| {
        let id = task_id(&cluster, &task)?;
        let resource = arn.task(&cluster, id);
        may(
            &principal,
            &arn,
            "ecs:DescribeTasks",
            resource.clone(),
            &cluster,
        )
        .map_err(|e| Shown::Refused(e.message))?;
        let with_history = may(
            &principal,
            &arn,
            berth_auth::action::GET_HISTORY,
            resource,
            &cluster,
        )
        .is_ok();
        let state = app.node.state();
        let data = task::task_page(&state, &cluster, &task, with_history)
            .ok_or_else(|| Shown::NotFound(format!("Cluster {cluster} has no task {task}.")))?;
        Ok(Shown::Page {
            title: format!("Task {task}"),
            controls: maud::html! {},
            fragment: task::render(&data),
            rest: task::logs_panel(&data),
        })
    })()
    .unwrap_or_else(|shown| shown);
    respond(&app, &principal, &session, &q, shown)
}

#[derive(Deserialize)]
struct LogsQuery {
    container: String,
}

/// The tail of one container's log, as the HTML the task page's script puts in its box. The
/// logs handler itself checks `berth:GetTaskLogs` and that the container exists.
async fn task_logs(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path((cluster, task)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Response {
    let tail = match task_id(&cluster, &task) {
        Ok(id) => {
            delegate::log_tail(&app, &principal, &cluster, &id.to_string(), &q.container).await
        }
        Err(_) => Err(delegate::DelegateError::NoTask { cluster, task }),
    };
    html(StatusCode::OK, task::log_fragment(&tail))
}

async fn instance_page(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(session): Extension<SignedIn>,
    Path((cluster, instance)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let arn = arns(&app);
    let found = (|| {
        let missing = || {
            Shown::NotFound(format!(
                "Cluster {cluster} has no container instance {instance}."
            ))
        };
        let id: berth_model::InstanceId = instance.parse().map_err(|_| missing())?;
        let resource = arn.container_instance(&cluster, id);
        may(
            &principal,
            &arn,
            "ecs:DescribeContainerInstances",
            resource.clone(),
            &cluster,
        )
        .map_err(|e| Shown::Refused(e.message))?;
        let state = app.node.state();
        let data = instance::instance_page(&state, &cluster, &instance, q.taskdef.as_deref())
            .ok_or_else(missing)?;
        Ok((data, resource))
    })();
    let (mut data, resource) = match found {
        Ok(found) => found,
        Err(shown) => return respond(&app, &principal, &session, &q, shown),
    };
    for explain in &data.to_explain {
        let outcome = delegate::dry_run(&app, &principal, &explain.request)
            .await
            .map(|answer| instance::InstanceVerdict::from_dry_run(&answer, &resource));
        data.verdicts.push(instance::Verdict {
            subject: explain.subject.clone(),
            outcome,
        });
    }
    let shown = Shown::Page {
        title: format!("Instance {instance}"),
        controls: instance::explain_form(&data, q.taskdef.as_deref()),
        fragment: instance::render(&data),
        rest: maud::html! {},
    };
    respond(&app, &principal, &session, &q, shown)
}

/// Any other path under `/ui`: the not-found page (a bare 404 under the open asset path, where
/// nobody need be signed in).
async fn unknown_path(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Principal>>,
    session: Option<Extension<SignedIn>>,
    uri: axum::http::Uri,
) -> Response {
    let (Some(Extension(principal)), Some(Extension(session))) = (principal, session) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let q = PageQuery {
        fragment: None,
        taskdef: None,
    };
    let what = format!("There is no page at {}.", uri.path());
    respond(&app, &principal, &session, &q, Shown::NotFound(what))
}

#[derive(Deserialize)]
struct EventsQuery {
    /// The index the page shows: a change since then is sent at once.
    since: Option<u64>,
}

/// `change` events carrying the state's index, coalesced, until the server stops. Idle, a
/// subscriber costs a parked task and a keep-alive comment every 15 s.
async fn events(
    State(app): State<Arc<App>>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let since = q.since.unwrap_or_else(|| app.node.state().index());
    // A change is sent at once; the next no sooner than COALESCE after it, carrying whatever
    // happened meanwhile.
    let start = (app, since, Instant::now() - COALESCE);
    let changes = futures::stream::unfold(start, |(app, seen, last_sent)| async move {
        loop {
            let index = tokio::select! {
                state = app.node.wait_beyond(seen, Duration::from_secs(3600)) => state.index(),
                () = app.stopping() => return None,
            };
            if index > seen {
                tokio::time::sleep_until((last_sent + COALESCE).into()).await;
                let index = app.node.state().index();
                let event = Event::default().event("change").data(index.to_string());
                return Some((Ok(event), (app, index, Instant::now())));
            }
        }
    });
    Sse::new(changes).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn login_form() -> Response {
    html(
        StatusCode::OK,
        page::layout("Sign in", None, page::login(None)),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    access_key_id: String,
    secret: String,
}

/// Checks the access key id and secret once and answers with a session cookie.
async fn login(State(app): State<Arc<App>>, headers: HeaderMap, form: Form<LoginForm>) -> Response {
    // A page of another site must not sign a browser in as someone else.
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-in refused").into_response();
    }
    let refused = || {
        html(
            StatusCode::UNAUTHORIZED,
            page::layout(
                "Sign in",
                None,
                page::login(Some("The access key id or secret is not valid.")),
            ),
        )
    };
    let state = app.node.state();
    let Some(credential) = state
        .credential(form.access_key_id.trim())
        .filter(|c| c.kind == CredentialKind::User && c.valid_at(Millis::now()))
    else {
        return refused();
    };
    let Ok(secret) = app.keyring.secret_of(credential) else {
        return refused();
    };
    if !bool::from(
        secret
            .expose()
            .as_bytes()
            .ct_eq(form.secret.trim().as_bytes()),
    ) {
        return refused();
    }
    let token = app.keyring.session_key().issue(&Session {
        access_key_id: credential.access_key_id.clone(),
        credential_version: credential.version,
        expires: now_secs() + SESSION_TTL.as_secs(),
        id: berth_auth::session_id(rand::random()),
    });
    let secure = if app.tls.is_some() { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to(PREFIX).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// Whether a browser's POST comes from a page of this server: its `Origin` (sent by every
/// current browser on a POST) names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    origin_host.is_some() && origin_host == host
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Signs out: revokes the session in the replicated state (so the cookie, wherever it was
/// copied to, is refused by every server), then clears the browser's cookie.
async fn logout(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Extension(signed_in): Extension<SignedIn>,
    form: Form<LogoutForm>,
) -> Response {
    if !app
        .keyring
        .session_key()
        .csrf_matches(&signed_in.token, &form.csrf)
    {
        return (StatusCode::FORBIDDEN, "the form's CSRF token is not valid").into_response();
    }
    let revoke = RevokeSession {
        session: signed_in.session.id.clone(),
        expires: Millis(
            i64::try_from(signed_in.session.expires.saturating_mul(1000)).unwrap_or(i64::MAX),
        ),
    };
    if let Err(e) = app.write_by(&principal, revoke).await {
        // The session still works: say so rather than pretend it ended.
        let status = crate::ecs::error_response(e.clone()).status();
        let message = format!(
            "Signing out failed; the session is still valid. {}",
            e.message
        );
        return (status, message).into_response();
    }
    let mut response = Redirect::to(LOGIN).into_response();
    let cleared = format!("{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}
