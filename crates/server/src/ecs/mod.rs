//! The ECS API edge: `POST /` with `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`.
//!
//! ```text
//!  principal (auth layer) ─► operation + region ─► parse body (SerializationException)
//!     ─► authorize ecs:<Op> on what it touches (access.rs) ─► handler ─► JSON
//!                                                               └─► EcsError ─► 4xx/5xx
//! ```
//! This module is the one place where requests become handler calls and errors become the ECS
//! error shape; the handlers (one module per resource) only see typed, authorized requests.

mod access;
mod account;
mod agent;
mod capacity;
mod clusters;
mod coverage;
mod deployments;
mod instances;
mod protection;
pub(crate) mod render;
mod services;
mod tags;
mod task_definitions;
mod task_sets;
mod tasks;

pub(crate) use instances::instance_ref;
pub(crate) use tasks::task_ref;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use berth_api::protocol::{
    CONTENT_TYPE, DEFAULT_REGION, operation_name, region_from_authorization,
};
use berth_api::{EcsError, ErrorCode};
use berth_model::TypedCommand;
use berth_model::arn::{ArnContext, parse_cluster};
use berth_model::entity::Cluster;
use berth_raft::WriteError;
use berth_state::State as ClusterState;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::App;
use crate::auth::Principal;
use access::Touches;

/// The cluster every call defaults to when it names none.
pub const DEFAULT_CLUSTER: &str = "default";

/// What every handler knows about the request besides its body.
pub struct Ctx {
    /// Renders ARNs in the caller's region and the server's account.
    pub arn: ArnContext,
    /// The `Host` the caller used, for endpoints handed back to agents.
    pub host: Option<String>,
    /// Who is calling (the authentication layer put it there).
    pub principal: Principal,
}

impl Ctx {
    /// Allows `action` on `resources` in `cluster`, or answers AccessDeniedException.
    pub(crate) fn authorize(
        &self,
        action: &str,
        resources: &[String],
        cluster: Option<&str>,
    ) -> Result<(), EcsError> {
        self.principal
            .authorize(&self.arn, action, resources, cluster)
    }

    /// Whether a task of `spec` started by the caller in `cluster` must stay off agents whose
    /// default runtime is the process runtime: it names no runtime, and the caller may not run
    /// host processes.
    pub(crate) fn kept_off_host_process_agents(
        &self,
        spec: &berth_api::types::TaskDefinition,
        cluster: &str,
    ) -> bool {
        !berth_model::privileges::names_runtime(spec)
            && self
                .authorize(
                    berth_auth::Privilege::HostProcess.action(),
                    &[],
                    Some(cluster),
                )
                .is_err()
    }

    /// Checks that the caller may ask for every host privilege `spec` needs, to register it
    /// or to run it (in `cluster`).
    pub(crate) fn allow_privileges(
        &self,
        spec: &berth_api::types::TaskDefinition,
        cluster: Option<&str>,
        doing: &str,
    ) -> Result<(), EcsError> {
        for privilege in berth_model::privileges::privileges(spec) {
            let action = privilege.action();
            if self.authorize(action, &[], cluster).is_err() {
                return Err(EcsError::new(
                    ErrorCode::AccessDeniedException,
                    format!(
                        "{doing} needs the {action} permission ({}), which {} does not have; \
                         only the admin role has host privileges unless a policy grants them",
                        privilege.describe(),
                        self.principal.arn(&self.arn)
                    ),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", post(ecs))
        .route("/v1/placement/dry-run", post(dry_run))
        .route(
            "/v1/placement/queue/{cluster}/{task}",
            axum::routing::get(tasks::standing),
        )
}

/// `POST /`: ECS, or Cloud Map when the target is one of its operations (both are AWS JSON
/// 1.1 at the same path; the authentication layer has checked the signature for the one the
/// target names).
async fn ecs(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if target.is_some_and(|t| t.starts_with(crate::discovery::cloudmap::TARGET_PREFIX)) {
        let ctx = context(&app, &headers, principal);
        return crate::discovery::cloudmap::respond(
            crate::discovery::cloudmap::handle(&app, &ctx, &headers, &body).await,
        );
    }
    respond(handle(&app, principal, &headers, &body).await)
}

/// `POST /v1/placement/dry-run`: a RunTask body in, the plan and every instance's verdict out;
/// nothing is committed. Errors have the ECS shape, as for RunTask itself.
async fn dry_run(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let ctx = context(&app, &headers, principal);
        let req: berth_api::types::RunTaskRequest = parse(&body)?;
        let access = req.touches(&ctx.arn);
        ctx.authorize(
            berth_auth::action::DRY_RUN_PLACEMENT,
            &access.resources,
            access.cluster.as_deref(),
        )?;
        let plan = tasks::dry_run(&app, &ctx, req).await?;
        encode(&plan)
    }
    .await;
    let mut response = respond(result);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// RunTask for someone who is not calling now (a schedule's creator, at each run), authorized
/// exactly as the ECS API authorizes it.
pub(crate) async fn run_task(
    app: &App,
    ctx: &Ctx,
    request: berth_api::types::RunTaskRequest,
) -> Result<berth_api::types::RunTaskResponse, EcsError> {
    authorize(ctx, "ecs:RunTask", &request)?;
    tasks::run(app, ctx, request).await
}

/// The request's context: ARNs in the caller's SigV4 region (default us-east-1).
pub(crate) fn context(app: &App, headers: &HeaderMap, principal: Principal) -> Ctx {
    let region = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(region_from_authorization)
        .unwrap_or(DEFAULT_REGION);
    Ctx {
        arn: ArnContext::new(region, app.config.account_id.clone()),
        host: headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        principal,
    }
}

/// An error in the ECS shape, as every AWS JSON 1.1 service answers it.
pub(crate) fn error_response(e: EcsError) -> Response {
    respond(Err(e))
}

/// A handler's result as an HTTP response: the JSON body, or the ECS error shape.
fn respond(result: Result<Vec<u8>, EcsError>) -> Response {
    let mut response = match result {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut r = (status, e.body()).into_response();
            r.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static(e.code.as_str()),
            );
            r
        }
    };
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        h.insert("x-amzn-requestid", id);
    }
    response
}

fn request_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

async fn handle(
    app: &App,
    principal: Principal,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<u8>, EcsError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let op = operation_name(target).ok_or_else(|| {
        EcsError::new(
            ErrorCode::UnknownOperationException,
            format!(
                "Unknown operation: X-Amz-Target must be {}<Operation>; got '{}'",
                berth_api::protocol::TARGET_PREFIX,
                target.chars().take(200).collect::<String>()
            ),
        )
    })?;
    let ctx = context(app, headers, principal);
    dispatch(app, &ctx, op, headers, body).await
}

/// Declares the dispatch from one line per operation, `"Name" => handler`: `IMPLEMENTED`
/// (what the coverage table and its test read) and `dispatch`, which parses the body,
/// authorizes `ecs:<Name>` on what it touches, serves a linearizable read when asked, and
/// calls the handler. An operation of the model that is not listed is refused with the reason
/// in [`coverage::REFUSED`]; anything else is unknown.
macro_rules! operations {
    ($($name:literal => $handler:path,)*) => {
        /// The operations berth answers (the coverage table reads them; so do the metrics).
        pub(crate) const IMPLEMENTED: &[&str] = &[$($name),*];

        async fn dispatch(
            app: &App,
            ctx: &Ctx,
            op: &str,
            headers: &HeaderMap,
            body: &[u8],
        ) -> Result<Vec<u8>, EcsError> {
            match op {
                $($name => {
                    let request = parse(body)?;
                    authorize(ctx, concat!("ecs:", $name), &request)?;
                    if linearizable(app, op, headers) {
                        app.node.read_barrier().await.map_err(unavailable)?;
                    }
                    encode(&$handler(app, ctx, request).await?)
                })*
                other => Err(coverage::refusal(other).unwrap_or_else(|| EcsError::new(
                    ErrorCode::UnknownOperationException,
                    format!(
                        "Unknown operation '{}': it is not an operation of the ECS API",
                        other.chars().take(100).collect::<String>()
                    ),
                ))),
            }
        }
    };
}

operations! {
    "CreateCluster" => clusters::create,
    "DeleteCluster" => clusters::delete,
    "DescribeClusters" => clusters::describe,
    "ListClusters" => clusters::list,
    "UpdateCluster" => clusters::update,
    "UpdateClusterSettings" => clusters::update_settings,
    "PutClusterCapacityProviders" => capacity::put_cluster,
    "CreateCapacityProvider" => capacity::create,
    "DescribeCapacityProviders" => capacity::describe,
    "UpdateCapacityProvider" => capacity::update,
    "DeleteCapacityProvider" => capacity::delete,
    "RegisterTaskDefinition" => task_definitions::register,
    "DescribeTaskDefinition" => task_definitions::describe,
    "ListTaskDefinitions" => task_definitions::list,
    "ListTaskDefinitionFamilies" => task_definitions::list_families,
    "DeregisterTaskDefinition" => task_definitions::deregister,
    "DeleteTaskDefinitions" => task_definitions::delete,
    "RegisterContainerInstance" => instances::register,
    "DeregisterContainerInstance" => instances::deregister,
    "ListContainerInstances" => instances::list,
    "DescribeContainerInstances" => instances::describe,
    "UpdateContainerInstancesState" => instances::update_state,
    "PutAttributes" => instances::put_attributes,
    "ListAttributes" => instances::list_attributes,
    "DeleteAttributes" => instances::delete_attributes,
    "RunTask" => tasks::run,
    "StartTask" => tasks::start,
    "StopTask" => tasks::stop,
    "DescribeTasks" => tasks::describe,
    "ListTasks" => tasks::list,
    "UpdateTaskProtection" => protection::update,
    "GetTaskProtection" => protection::get,
    "CreateService" => services::create,
    "UpdateService" => services::update,
    "DeleteService" => services::delete,
    "DescribeServices" => services::describe,
    "ListServices" => services::list,
    "CreateTaskSet" => task_sets::create,
    "DescribeTaskSets" => task_sets::describe,
    "UpdateTaskSet" => task_sets::update,
    "UpdateServicePrimaryTaskSet" => task_sets::update_primary,
    "DeleteTaskSet" => task_sets::delete,
    "ListServiceDeployments" => deployments::list,
    "DescribeServiceDeployments" => deployments::describe,
    "DescribeServiceRevisions" => deployments::describe_revisions,
    "StopServiceDeployment" => deployments::stop,
    "PutAccountSetting" => account::put_setting,
    "PutAccountSettingDefault" => account::put_default,
    "ListAccountSettings" => account::list,
    "DeleteAccountSetting" => account::delete,
    "TagResource" => tags::tag,
    "UntagResource" => tags::untag,
    "ListTagsForResource" => tags::list,
    "DiscoverPollEndpoint" => agent::discover_poll_endpoint,
    "SubmitTaskStateChange" => agent::submit_task_state_change,
    "SubmitContainerStateChange" => agent::submit_container_state_change,
}

/// Allows `action` (`ecs:<Operation>`) on what `request` touches, or answers
/// AccessDeniedException. What it touches is worked out only when the caller's policy could
/// answer differently for different resources.
fn authorize<T: Touches>(ctx: &Ctx, action: &str, request: &T) -> Result<(), EcsError> {
    if ctx.principal.allows_everywhere(action) {
        return Ok(());
    }
    let access = request.touches(&ctx.arn);
    ctx.authorize(action, &access.resources, access.cluster.as_deref())
}

/// Parses a request body; an empty body is an empty request. Malformed JSON and members of the
/// wrong type are a SerializationException, as every AWS JSON 1.1 service answers.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, EcsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let serialization = |message: String| EcsError::new(ErrorCode::SerializationException, message);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at '{path}'")
        };
        serialization(format!(
            "Could not read the request body{at}: {}",
            e.into_inner()
        ))
    })?;
    de.end()
        .map_err(|e| serialization(format!("Could not read the request body: {e}")))?;
    Ok(parsed)
}

fn encode<T: Serialize>(response: &T) -> Result<Vec<u8>, EcsError> {
    serde_json::to_vec(response)
        .map_err(|e| EcsError::server(format!("could not encode the response: {e}")))
}

/// The header that asks for a linearizable read (`linearizable`), or for the server's
/// default (anything else).
pub const READ_CONSISTENCY_HEADER: &str = "x-berth-read-consistency";

/// Whether operation `op` is a read that must see every write acknowledged before it, on
/// whichever server it reaches: asked for by the header, or by the server's configuration.
/// Other reads are served from this server's applied state, which on a follower may trail
/// the leader by a moment.
fn linearizable(app: &App, op: &str, headers: &HeaderMap) -> bool {
    let read = op.starts_with("Describe") || op.starts_with("List");
    read && (app.config.linearizable_reads
        || headers
            .get(READ_CONSISTENCY_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"linearizable")))
}

/// A write that could not be committed, as the ECS error it is answered with: 503 where the
/// group could not commit it now, 500 for a fault.
pub(crate) fn unavailable(e: WriteError) -> EcsError {
    match e {
        WriteError::NotLeader { leader } => EcsError::unavailable(format!(
            "No leader could take the request ({}); retry",
            leader.map_or_else(
                || "none is elected now".to_owned(),
                |(_, addr)| format!("the leader known here, {addr}, did not")
            )
        )),
        WriteError::Unavailable(why) => EcsError::unavailable(why),
        unacknowledged @ WriteError::Unacknowledged { .. } => {
            EcsError::unavailable(unacknowledged.to_string())
        }
        WriteError::UnexpectedOutcome(bug) => EcsError::server(bug.to_string()),
    }
}

impl App {
    /// Proposes a command on behalf of `principal` (history names it) and waits for its
    /// output (durable, committed, applied).
    pub(crate) async fn write_by<C: TypedCommand>(
        &self,
        principal: &Principal,
        command: C,
    ) -> Result<C::Output, EcsError> {
        let written = self
            .node
            .write_by(&principal.actor(), command)
            .await
            .map_err(unavailable)?;
        written.result.map_err(Into::into)
    }
}

/// ClusterNotFoundException for a cluster that was never created, naming it.
pub(crate) fn cluster_not_found(name: &str) -> EcsError {
    berth_model::Error::ClusterNotFound(name.to_owned()).into()
}

/// ClusterNotFoundException for a deleted (INACTIVE) cluster, naming it.
pub(crate) fn cluster_inactive(name: &str) -> EcsError {
    berth_model::Error::ClusterInactive(name.to_owned()).into()
}

/// A `cluster` parameter: short name or ARN, `default` when absent.
pub(crate) fn cluster_param(value: &Option<String>) -> Result<String, EcsError> {
    match value.as_deref() {
        None | Some("") => Ok(DEFAULT_CLUSTER.to_owned()),
        Some(s) => parse_cluster(s).map_err(|e| EcsError::invalid(e.to_string())),
    }
}

/// A `cluster` parameter that must name an ACTIVE cluster: its name, or the
/// ClusterNotFoundException naming it, before anything else about the request is looked up.
pub(crate) fn existing_cluster(app: &App, value: &Option<String>) -> Result<String, EcsError> {
    let name = cluster_param(value)?;
    active_cluster(&app.node.state(), &name)?;
    Ok(name)
}

/// The named cluster, if it exists and is ACTIVE in `state`.
pub(crate) fn active_cluster<'a>(
    state: &'a ClusterState,
    name: &str,
) -> Result<&'a Arc<Cluster>, EcsError> {
    use berth_model::entity::ClusterStatus;
    match state.cluster(name) {
        Some(c) if c.status == ClusterStatus::Active => Ok(c),
        Some(_) => Err(cluster_inactive(name)),
        None => Err(cluster_not_found(name)),
    }
}

/// An entity as ECS would show it, for `/v1/history`: derived figures (counts, remaining
/// resources) are not part of a version and are left out.
pub(crate) fn render_for_history(
    arn: &ArnContext,
    entity: &berth_state::Entity,
) -> serde_json::Value {
    use berth_state::Entity;
    let value = match entity {
        Entity::Cluster(c) => {
            let mut c = render::cluster(arn, c, Default::default(), render::ClusterInclude::ALL);
            c.registered_container_instances_count = None;
            c.running_tasks_count = None;
            c.pending_tasks_count = None;
            c.active_services_count = None;
            c.statistics = None;
            serde_json::to_value(c)
        }
        Entity::TaskDefinition(t) => serde_json::to_value(render::task_definition(arn, t)),
        Entity::Instance(i) => {
            let mut i = render::instance(arn, i, None, true);
            i.remaining_resources = None;
            i.running_tasks_count = None;
            i.pending_tasks_count = None;
            serde_json::to_value(i)
        }
        Entity::Task(t) => serde_json::to_value(render::task(arn, t, true)),
        Entity::Service(s) => {
            let mut rendered = render::service_value(arn, s);
            rendered.tags = Some(render::tags(&s.tags));
            serde_json::to_value(rendered)
        }
        // Not ECS resources: shown as stored.
        Entity::Framework(f) => serde_json::to_value(&**f),
        Entity::Offer(o) => serde_json::to_value(&**o),
        // Never the (sealed) secret.
        Entity::Credential(c) => Ok(serde_json::json!({
            "accessKeyId": c.access_key_id,
            "name": c.name,
            "role": c.role,
            "createdBy": c.created_by,
        })),
    };
    value.unwrap_or(serde_json::Value::Null)
}
