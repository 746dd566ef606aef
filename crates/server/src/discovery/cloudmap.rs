//! AWS Cloud Map's API (`servicediscovery`, AWS JSON 1.1, `X-Amz-Target:
//! Route53AutoNaming_v20170314.<Op>`), the subset that makes namespaces and the services ECS
//! registers tasks in, and that reads their instances back — so `aws servicediscovery ...
//! --endpoint-url` and boto3's `servicediscovery` client work unchanged.
//!
//! ```text
//!  CreatePrivateDnsNamespace, CreateHttpNamespace ─► CreateNamespace  ─► {OperationId}
//!  GetNamespace, ListNamespaces, DeleteNamespace, GetOperation
//!  CreateService (DnsConfig: A/SRV records, TTL) ─► CreateDiscoveryService ─► {Service}
//!  GetService, ListServices, DeleteService
//!  DiscoverInstances, ListInstances ─► the tasks of the ECS services registered in it
//! ```
//! Cloud Map's writes are asynchronous and answer an operation id; berth's are done when they
//! are answered, so an operation id names its target and kind (`ns-…-create`) and
//! GetOperation reports SUCCESS for it. Instances are never registered by hand
//! (RegisterInstance is refused): ECS services register their tasks. Errors have Cloud Map's
//! shape: `__type` and `Message`, status 400 (403 for AccessDeniedException).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_api::{EcsError, ErrorCode};
use berth_model::command::{
    CreateDiscoveryService, CreateNamespace, DeleteDiscoveryService, DeleteNamespace,
};
use berth_model::discovery::{
    DiscoveryService, DnsConfig, DnsRecord, MAX_TTL, NAMESPACE_ID_PREFIX, Namespace, NamespaceType,
    RecordType, RoutingPolicy, SERVICE_ID_PREFIX, check_id, check_namespace_name,
    check_service_name, namespace_arn, service_arn,
};
use berth_model::entity::Tag;
use berth_model::{Millis, TypedCommand};
use berth_state::State;
use berth_state::discovery::Instance;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::App;
use crate::ecs::Ctx;

/// The `X-Amz-Target` prefix of Cloud Map's operations.
pub const TARGET_PREFIX: &str = "Route53AutoNaming_v20170314.";
/// The operations served (what `/metrics` labels requests with; anything else is `other`).
pub const OPERATIONS: &[&str] = &[
    "CreatePrivateDnsNamespace",
    "CreateHttpNamespace",
    "GetNamespace",
    "ListNamespaces",
    "DeleteNamespace",
    "GetOperation",
    "CreateService",
    "GetService",
    "ListServices",
    "DeleteService",
    "DiscoverInstances",
    "ListInstances",
];
/// Page size when `MaxResults` is not given, and its bound.
const MAX_RESULTS: usize = 100;
/// Longest description.
const MAX_DESCRIPTION: usize = 1024;
/// Longest creator request id.
const MAX_REQUEST_ID: usize = 64;

/// An error in Cloud Map's shape.
#[derive(Debug)]
pub struct CloudMapError {
    code: &'static str,
    message: String,
}

impl CloudMapError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidInput", message)
    }

    fn namespace_not_found(id: &str) -> Self {
        Self::new(
            "NamespaceNotFound",
            format!("No namespace exists with ID: {}", shown(id)),
        )
    }

    fn service_not_found(id: &str) -> Self {
        Self::new(
            "ServiceNotFound",
            format!("No service exists with ID: {}", shown(id)),
        )
    }
}

/// Errors raised by the ECS edge's helpers (authorization, an unavailable leader) keep their
/// class where Cloud Map has it.
impl From<EcsError> for CloudMapError {
    fn from(e: EcsError) -> Self {
        let code = match e.code {
            ErrorCode::AccessDeniedException => "AccessDeniedException",
            ErrorCode::ServerException if e.http_status() == 503 => "RequestLimitExceeded",
            ErrorCode::ServerException => "InternalFailure",
            ErrorCode::SerializationException => "SerializationException",
            _ => "InvalidInput",
        };
        Self::new(code, e.message)
    }
}

/// A refusal of the state machine, in the class Cloud Map gives it for `kind` of resource.
fn refused(e: berth_model::Error, not_found: &'static str, exists: &'static str) -> CloudMapError {
    use berth_model::Error as E;
    match e {
        E::ResourceNotFound(m) => CloudMapError::new(not_found, m),
        E::Conflict(m) => CloudMapError::new(exists, m),
        E::ResourceInUse(m) => CloudMapError::new("ResourceInUse", m),
        E::LimitExceeded(m) => CloudMapError::new("ResourceLimitExceeded", m),
        other => EcsError::from(other).into(),
    }
}

/// The HTTP response for a Cloud Map call's result.
pub fn respond(result: Result<Value, CloudMapError>) -> Response {
    let mut response = match result {
        Ok(body) => (StatusCode::OK, body.to_string()).into_response(),
        Err(e) => {
            let status = if e.code == "AccessDeniedException" {
                StatusCode::FORBIDDEN
            } else if e.code == "InternalFailure" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            let body = json!({ "__type": e.code, "Message": e.message });
            let mut r = (status, body.to_string()).into_response();
            r.headers_mut()
                .insert("x-amzn-errortype", HeaderValue::from_static(e.code));
            r
        }
    };
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static(berth_api::protocol::CONTENT_TYPE),
    );
    response
}

/// Serves one Cloud Map call.
pub async fn handle(
    app: &App,
    ctx: &Ctx,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, CloudMapError> {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default();
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            CloudMapError::new(
                "SerializationException",
                format!("The request body is not JSON: {e}"),
            )
        })?
    };
    match op {
        "CreatePrivateDnsNamespace" => {
            create_namespace(app, ctx, parse(body)?, NamespaceType::DnsPrivate).await
        }
        "CreateHttpNamespace" => {
            create_namespace(app, ctx, parse(body)?, NamespaceType::Http).await
        }
        "GetNamespace" => get_namespace(app, ctx, parse(body)?),
        "ListNamespaces" => list_namespaces(app, ctx, parse(body)?),
        "DeleteNamespace" => delete_namespace(app, ctx, parse(body)?).await,
        "GetOperation" => get_operation(app, ctx, parse(body)?),
        "CreateService" => create_service(app, ctx, parse(body)?).await,
        "GetService" => get_service(app, ctx, parse(body)?),
        "ListServices" => list_services(app, ctx, parse(body)?),
        "DeleteService" => delete_service(app, ctx, parse(body)?).await,
        "DiscoverInstances" => discover_instances(app, ctx, parse(body)?),
        "ListInstances" => list_instances(app, ctx, parse(body)?),
        "CreatePublicDnsNamespace" => Err(CloudMapError::invalid(
            "Public DNS namespaces are not supported: berth answers DNS inside the cluster \
             only; create a private DNS namespace",
        )),
        "RegisterInstance" | "DeregisterInstance" | "UpdateInstanceCustomHealthStatus" => {
            Err(CloudMapError::invalid(format!(
                "{op} is not supported: berth registers the tasks of ECS services that name \
                 the discovery service in their serviceRegistries, and their health is the \
                 tasks' own"
            )))
        }
        other => Err(CloudMapError::new(
            "UnknownOperationException",
            format!(
                "Unknown operation '{}': berth serves Cloud Map's namespace, service and \
                 instance discovery operations",
                shown(other)
            ),
        )),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: Value) -> Result<T, CloudMapError> {
    serde_json::from_value(body).map_err(|e| {
        CloudMapError::new(
            "SerializationException",
            format!("The request body does not match the operation's input: {e}"),
        )
    })
}

fn shown(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Allows `servicediscovery:<op>` on `resource`.
fn authorize(ctx: &Ctx, op: &str, resource: &str) -> Result<(), CloudMapError> {
    ctx.authorize(
        &format!("servicediscovery:{op}"),
        &[resource.to_owned()],
        None,
    )
    .map_err(Into::into)
}

async fn write<C: TypedCommand>(
    app: &App,
    ctx: &Ctx,
    command: C,
) -> Result<Result<C::Output, berth_model::Error>, CloudMapError> {
    let written = app
        .node
        .write_by(&ctx.principal.actor(), command)
        .await
        .map_err(crate::ecs::unavailable)?;
    Ok(written.result)
}

/// A new id: `prefix` and 16 lowercase letters and digits.
fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = (0..16)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

fn description(given: Option<String>) -> Result<Option<String>, CloudMapError> {
    match given {
        Some(d) if d.len() > MAX_DESCRIPTION => Err(CloudMapError::invalid(format!(
            "Description must be at most {MAX_DESCRIPTION} characters"
        ))),
        other => Ok(other),
    }
}

fn request_id(given: Option<String>) -> Result<Option<String>, CloudMapError> {
    match given {
        Some(r) if r.is_empty() || r.len() > MAX_REQUEST_ID => Err(CloudMapError::invalid(
            format!("CreatorRequestId must be 1 to {MAX_REQUEST_ID} characters"),
        )),
        other => Ok(other),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagShape {
    key: String,
    value: String,
}

fn tags(given: Option<Vec<TagShape>>) -> Result<Vec<Tag>, CloudMapError> {
    let given = given.unwrap_or_default();
    if given.len() > 200 {
        return Err(CloudMapError::new(
            "TooManyTagsException",
            "A resource may have at most 200 tags",
        ));
    }
    given
        .into_iter()
        .map(|t| {
            if t.key.is_empty() || t.key.len() > 128 || t.value.len() > 256 {
                Err(CloudMapError::invalid(
                    "Tag keys are 1 to 128 characters and values at most 256",
                ))
            } else {
                Ok(Tag {
                    key: t.key,
                    value: t.value,
                })
            }
        })
        .collect()
}

fn seconds(at: Millis) -> f64 {
    at.0 as f64 / 1000.0
}

// --- namespaces --------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateNamespaceInput {
    name: String,
    creator_request_id: Option<String>,
    description: Option<String>,
    /// Private DNS namespaces name a VPC in AWS; berth has none and ignores it.
    #[serde(rename = "Vpc")]
    _vpc: Option<String>,
    tags: Option<Vec<TagShape>>,
    /// SOA settings in AWS; berth answers no SOA and ignores them.
    #[serde(rename = "Properties")]
    _properties: Option<Value>,
}

fn operation_id(target: &str, kind: &str) -> String {
    format!("{target}-{kind}")
}

async fn create_namespace(
    app: &App,
    ctx: &Ctx,
    input: CreateNamespaceInput,
    kind: NamespaceType,
) -> Result<Value, CloudMapError> {
    let op = match kind {
        NamespaceType::DnsPrivate => "CreatePrivateDnsNamespace",
        NamespaceType::Http => "CreateHttpNamespace",
    };
    authorize(ctx, op, "*")?;
    let name =
        check_namespace_name(&input.name).map_err(|e| CloudMapError::invalid(e.to_string()))?;
    let namespace = Namespace {
        id: new_id(NAMESPACE_ID_PREFIX).into(),
        name: name.into(),
        kind,
        description: description(input.description)?,
        creator_request_id: request_id(input.creator_request_id)?,
        tags: tags(input.tags)?,
        created_at: Millis::now(),
        version: 0,
    };
    let stored = write(app, ctx, CreateNamespace { namespace })
        .await?
        .map_err(|e| refused(e, "NamespaceNotFound", "NamespaceAlreadyExists"))?;
    Ok(json!({ "OperationId": operation_id(&stored.id, "create") }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdInput {
    id: String,
}

fn namespace_json(ctx: &Ctx, state: &State, n: &Namespace) -> Value {
    let http = json!({ "HttpName": &*n.name });
    let properties = match n.kind {
        NamespaceType::DnsPrivate => json!({ "DnsProperties": {}, "HttpProperties": http }),
        NamespaceType::Http => json!({ "HttpProperties": http }),
    };
    let mut value = json!({
        "Id": &*n.id,
        "Arn": namespace_arn(&ctx.arn, &n.id),
        "Name": &*n.name,
        "Type": n.kind.as_str(),
        "ServiceCount": state.discovery_services_in(&n.id).count(),
        "Properties": properties,
        "CreateDate": seconds(n.created_at),
    });
    if let Some(d) = &n.description {
        value["Description"] = json!(d);
    }
    if let Some(r) = &n.creator_request_id {
        value["CreatorRequestId"] = json!(r);
    }
    value
}

fn namespace_of<'a>(state: &'a State, id: &str) -> Result<&'a Arc<Namespace>, CloudMapError> {
    state
        .namespace(id)
        .ok_or_else(|| CloudMapError::namespace_not_found(id))
}

fn get_namespace(app: &App, ctx: &Ctx, input: IdInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "GetNamespace", &namespace_arn(&ctx.arn, &input.id))?;
    let state = app.node.state();
    let namespace = namespace_of(&state, &input.id)?;
    Ok(json!({ "Namespace": namespace_json(ctx, &state, namespace) }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
    filters: Option<Vec<Filter>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    name: String,
    values: Vec<String>,
    condition: Option<String>,
}

fn page_size(max: Option<i64>) -> Result<usize, CloudMapError> {
    match max {
        None => Ok(MAX_RESULTS),
        Some(n) if (1..=MAX_RESULTS as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(CloudMapError::invalid(format!(
            "MaxResults must be 1 to {MAX_RESULTS}"
        ))),
    }
}

/// One page of `items` (each with its id) after `next_token`, and the token of the next.
fn page<T>(
    items: impl Iterator<Item = (String, T)>,
    next_token: Option<&str>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let mut items = items.filter(|(id, _)| next_token.is_none_or(|after| id.as_str() > after));
    let page: Vec<(String, T)> = items.by_ref().take(size).collect();
    let next = (page.len() == size && items.next().is_some())
        .then(|| page.last().map(|(id, _)| id.clone()))
        .flatten();
    (page.into_iter().map(|(_, v)| v).collect(), next)
}

fn list_namespaces(app: &App, ctx: &Ctx, input: ListInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "ListNamespaces", "*")?;
    let mut kind = None;
    let mut name = None;
    for f in input.filters.iter().flatten() {
        let condition = f.condition.as_deref().unwrap_or("EQ");
        match (f.name.as_str(), condition, f.values.as_slice()) {
            ("TYPE", "EQ", [v]) => kind = Some(v.clone()),
            ("NAME", "EQ", [v]) => name = Some(v.to_ascii_lowercase()),
            _ => {
                return Err(CloudMapError::invalid(
                    "ListNamespaces filters: TYPE or NAME with condition EQ and one value",
                ));
            }
        }
    }
    let state = app.node.state();
    let matching = state
        .namespaces()
        .filter(|n| kind.as_deref().is_none_or(|k| n.kind.as_str() == k))
        .filter(|n| name.as_deref().is_none_or(|m| &*n.name == m))
        .map(|n| (n.id.to_string(), namespace_json(ctx, &state, n)));
    let (items, next) = page(
        matching,
        input.next_token.as_deref(),
        page_size(input.max_results)?,
    );
    let mut out = json!({ "Namespaces": items });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

async fn delete_namespace(app: &App, ctx: &Ctx, input: IdInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "DeleteNamespace", &namespace_arn(&ctx.arn, &input.id))?;
    check_id(NAMESPACE_ID_PREFIX, &input.id)
        .map_err(|_| CloudMapError::namespace_not_found(&input.id))?;
    let deleted = write(
        app,
        ctx,
        DeleteNamespace {
            id: input.id.as_str().into(),
        },
    )
    .await?
    .map_err(|e| refused(e, "NamespaceNotFound", "NamespaceAlreadyExists"))?;
    Ok(json!({ "OperationId": operation_id(&deleted.id, "delete") }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OperationInput {
    operation_id: String,
}

fn get_operation(app: &App, ctx: &Ctx, input: OperationInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "GetOperation", "*")?;
    let not_found = || {
        CloudMapError::new(
            "OperationNotFound",
            format!(
                "No operation exists with ID: {}",
                shown(&input.operation_id)
            ),
        )
    };
    let (target, kind) = input.operation_id.rsplit_once('-').ok_or_else(not_found)?;
    let (kind, key) = match kind {
        "create" if target.starts_with(NAMESPACE_ID_PREFIX) => ("CREATE_NAMESPACE", "NAMESPACE"),
        "delete" if target.starts_with(NAMESPACE_ID_PREFIX) => ("DELETE_NAMESPACE", "NAMESPACE"),
        _ => return Err(not_found()),
    };
    check_id(NAMESPACE_ID_PREFIX, target).map_err(|_| not_found())?;
    let state = app.node.state();
    let namespace = state.namespace(target);
    // A deletion is done when it is answered: one whose namespace is still there was never
    // made. (A creation whose namespace is gone was deleted since, and stays a success.)
    if kind == "DELETE_NAMESPACE" && namespace.is_some() {
        return Err(not_found());
    }
    let at = namespace.map_or_else(Millis::now, |n| n.created_at);
    Ok(json!({
        "Operation": {
            "Id": input.operation_id,
            "Type": kind,
            "Status": "SUCCESS",
            "CreateDate": seconds(at),
            "UpdateDate": seconds(at),
            "Targets": { key: target },
        }
    }))
}

// --- services ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateServiceInput {
    name: String,
    namespace_id: Option<String>,
    creator_request_id: Option<String>,
    description: Option<String>,
    dns_config: Option<DnsConfigShape>,
    health_check_config: Option<Value>,
    /// ECS sets the health of its tasks; berth's come from the tasks themselves.
    #[serde(rename = "HealthCheckCustomConfig")]
    _health_check_custom_config: Option<Value>,
    tags: Option<Vec<TagShape>>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DnsConfigShape {
    namespace_id: Option<String>,
    routing_policy: Option<String>,
    dns_records: Vec<DnsRecordShape>,
}

#[derive(Debug, Deserialize)]
struct DnsRecordShape {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "TTL")]
    ttl: i64,
}

fn dns_config(shape: DnsConfigShape) -> Result<DnsConfig, CloudMapError> {
    let routing_policy = match shape.routing_policy.as_deref() {
        None | Some("MULTIVALUE") => RoutingPolicy::Multivalue,
        Some("WEIGHTED") => RoutingPolicy::Weighted,
        Some(other) => {
            return Err(CloudMapError::invalid(format!(
                "RoutingPolicy {} is not MULTIVALUE or WEIGHTED",
                shown(other)
            )));
        }
    };
    let mut records: Vec<DnsRecord> = Vec::new();
    for r in shape.dns_records {
        let kind = match r.kind.as_str() {
            "A" => RecordType::A,
            "SRV" => RecordType::Srv,
            "AAAA" | "CNAME" => {
                return Err(CloudMapError::invalid(format!(
                    "{} records are not supported: berth answers A (and AAAA for IPv6 hosts) \
                     and SRV",
                    r.kind
                )));
            }
            other => {
                return Err(CloudMapError::invalid(format!(
                    "DnsRecords Type {} is not A, AAAA, SRV or CNAME",
                    shown(other)
                )));
            }
        };
        let ttl = u32::try_from(r.ttl)
            .ok()
            .filter(|t| *t <= MAX_TTL)
            .ok_or_else(|| CloudMapError::invalid(format!("TTL must be 0 to {MAX_TTL}")))?;
        if records.iter().any(|x| x.kind == kind) {
            return Err(CloudMapError::invalid(format!(
                "DnsRecords names {} twice",
                r.kind
            )));
        }
        records.push(DnsRecord { kind, ttl });
    }
    if records.is_empty() {
        return Err(CloudMapError::invalid(
            "DnsConfig needs at least one DnsRecords entry",
        ));
    }
    Ok(DnsConfig {
        routing_policy,
        records,
    })
}

async fn create_service(
    app: &App,
    ctx: &Ctx,
    input: CreateServiceInput,
) -> Result<Value, CloudMapError> {
    let namespace_id = input
        .namespace_id
        .clone()
        .or_else(|| {
            input
                .dns_config
                .as_ref()
                .and_then(|d| d.namespace_id.clone())
        })
        .ok_or_else(|| CloudMapError::invalid("NamespaceId is required"))?;
    authorize(
        ctx,
        "CreateService",
        &namespace_arn(&ctx.arn, &namespace_id),
    )?;
    if input.health_check_config.is_some() {
        return Err(CloudMapError::invalid(
            "HealthCheckConfig (Route 53 health checks) is not supported: the instances are \
             ECS tasks, whose health is their containers' health checks",
        ));
    }
    if input
        .kind
        .as_deref()
        .is_some_and(|k| k != "HTTP" && k != "DNS_HTTP")
    {
        return Err(CloudMapError::invalid("Type must be HTTP or DNS_HTTP"));
    }
    let name =
        check_service_name(&input.name).map_err(|e| CloudMapError::invalid(e.to_string()))?;
    let state = app.node.state();
    let namespace = namespace_of(&state, &namespace_id)?;
    let dns = match (namespace.kind, input.dns_config) {
        (NamespaceType::DnsPrivate, Some(shape)) => Some(dns_config(shape)?),
        (NamespaceType::DnsPrivate, None) => None,
        (NamespaceType::Http, Some(_)) => {
            return Err(CloudMapError::invalid(format!(
                "Namespace {} is an HTTP namespace: its services have no DnsConfig",
                namespace.name
            )));
        }
        (NamespaceType::Http, None) => None,
    };
    let service = DiscoveryService {
        id: new_id(SERVICE_ID_PREFIX).into(),
        name: name.into(),
        namespace_id: namespace.id.clone(),
        description: description(input.description)?,
        dns,
        creator_request_id: request_id(input.creator_request_id)?,
        tags: tags(input.tags)?,
        created_at: Millis::now(),
        version: 0,
    };
    let stored = write(app, ctx, CreateDiscoveryService { service })
        .await?
        .map_err(|e| refused(e, "NamespaceNotFound", "ServiceAlreadyExists"))?;
    let state = app.node.state();
    Ok(json!({ "Service": service_json(ctx, &state, &stored) }))
}

fn service_json(ctx: &Ctx, state: &State, s: &DiscoveryService) -> Value {
    let mut value = json!({
        "Id": &*s.id,
        "Arn": service_arn(&ctx.arn, &s.id),
        "Name": &*s.name,
        "NamespaceId": &*s.namespace_id,
        "InstanceCount": state.discovery_instances(s).len(),
        "Type": if s.dns.is_some() { "DNS_HTTP" } else { "HTTP" },
        "HealthCheckCustomConfig": { "FailureThreshold": 1 },
        "CreateDate": seconds(s.created_at),
    });
    if let Some(dns) = &s.dns {
        value["DnsConfig"] = json!({
            "NamespaceId": &*s.namespace_id,
            "RoutingPolicy": dns.routing_policy.as_str(),
            "DnsRecords": dns.records.iter().map(|r| json!({
                "Type": r.kind.as_str(),
                "TTL": r.ttl,
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(d) = &s.description {
        value["Description"] = json!(d);
    }
    if let Some(r) = &s.creator_request_id {
        value["CreatorRequestId"] = json!(r);
    }
    value
}

fn service_of<'a>(state: &'a State, id: &str) -> Result<&'a Arc<DiscoveryService>, CloudMapError> {
    state
        .discovery_service(id)
        .ok_or_else(|| CloudMapError::service_not_found(id))
}

fn get_service(app: &App, ctx: &Ctx, input: IdInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "GetService", &service_arn(&ctx.arn, &input.id))?;
    let state = app.node.state();
    let service = service_of(&state, &input.id)?;
    Ok(json!({ "Service": service_json(ctx, &state, service) }))
}

fn list_services(app: &App, ctx: &Ctx, input: ListInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "ListServices", "*")?;
    let mut namespaces: Option<Vec<String>> = None;
    for f in input.filters.iter().flatten() {
        match (f.name.as_str(), f.condition.as_deref().unwrap_or("EQ")) {
            ("NAMESPACE_ID", "EQ" | "IN") => namespaces = Some(f.values.clone()),
            _ => {
                return Err(CloudMapError::invalid(
                    "ListServices filters: NAMESPACE_ID with condition EQ or IN",
                ));
            }
        }
    }
    let state = app.node.state();
    let matching = state
        .discovery_services()
        .filter(|s| {
            namespaces
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| *id == *s.namespace_id))
        })
        .map(|s| (s.id.to_string(), service_json(ctx, &state, s)));
    let (items, next) = page(
        matching,
        input.next_token.as_deref(),
        page_size(input.max_results)?,
    );
    let mut out = json!({ "Services": items });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

async fn delete_service(app: &App, ctx: &Ctx, input: IdInput) -> Result<Value, CloudMapError> {
    authorize(ctx, "DeleteService", &service_arn(&ctx.arn, &input.id))?;
    check_id(SERVICE_ID_PREFIX, &input.id)
        .map_err(|_| CloudMapError::service_not_found(&input.id))?;
    write(
        app,
        ctx,
        DeleteDiscoveryService {
            id: input.id.as_str().into(),
        },
    )
    .await?
    .map_err(|e| refused(e, "ServiceNotFound", "ServiceAlreadyExists"))?;
    Ok(json!({}))
}

// --- instances ---------------------------------------------------------------------------------

/// An instance's attributes, as ECS registers them in Cloud Map.
fn attributes(i: &Instance) -> Value {
    let mut a = serde_json::Map::new();
    if let Some(address) = i.address {
        let key = if address.is_ipv4() {
            "AWS_INSTANCE_IPV4"
        } else {
            "AWS_INSTANCE_IPV6"
        };
        a.insert(key.into(), json!(address.to_string()));
    }
    if let Some(port) = i.port {
        a.insert("AWS_INSTANCE_PORT".into(), json!(port.to_string()));
    }
    if let Some(zone) = &i.availability_zone {
        a.insert("AVAILABILITY_ZONE".into(), json!(zone));
    }
    a.insert("ECS_CLUSTER_NAME".into(), json!(&*i.cluster));
    a.insert("ECS_SERVICE_NAME".into(), json!(&*i.ecs_service));
    a.insert("ECS_TASK_DEFINITION_FAMILY".into(), json!(&*i.family));
    a.insert(
        "AWS_INIT_HEALTH_STATUS".into(),
        json!(if i.healthy { "HEALTHY" } else { "UNHEALTHY" }),
    );
    Value::Object(a)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DiscoverInput {
    namespace_name: String,
    service_name: String,
    max_results: Option<i64>,
    health_status: Option<String>,
    query_parameters: Option<std::collections::BTreeMap<String, String>>,
}

/// Which instances a DiscoverInstances call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum HealthFilter {
    Healthy,
    Unhealthy,
    All,
    HealthyOrElseAll,
}

impl HealthFilter {
    pub(crate) fn parse(given: Option<&str>) -> Option<HealthFilter> {
        match given {
            None | Some("HEALTHY") => Some(HealthFilter::Healthy),
            Some("UNHEALTHY") => Some(HealthFilter::Unhealthy),
            Some("ALL") => Some(HealthFilter::All),
            Some("HEALTHY_OR_ELSE_ALL") => Some(HealthFilter::HealthyOrElseAll),
            Some(_) => None,
        }
    }

    /// The instances of `all` the filter keeps.
    pub(crate) fn apply(self, all: Vec<Instance>) -> Vec<Instance> {
        match self {
            HealthFilter::All => all,
            HealthFilter::Healthy => all.into_iter().filter(|i| i.healthy).collect(),
            HealthFilter::Unhealthy => all.into_iter().filter(|i| !i.healthy).collect(),
            HealthFilter::HealthyOrElseAll if all.iter().any(|i| i.healthy) => {
                all.into_iter().filter(|i| i.healthy).collect()
            }
            HealthFilter::HealthyOrElseAll => all,
        }
    }
}

/// The discovery service `service` of namespace `namespace` (by names).
pub(crate) fn by_names<'a>(
    state: &'a State,
    namespace: &str,
    service: &str,
) -> Result<(&'a Arc<Namespace>, &'a Arc<DiscoveryService>), CloudMapError> {
    let namespace_name = namespace.trim_end_matches('.').to_ascii_lowercase();
    let ns = state.namespace_named(&namespace_name).ok_or_else(|| {
        CloudMapError::new(
            "NamespaceNotFound",
            format!("No namespace exists with name: {}", shown(namespace)),
        )
    })?;
    let service_name = service.to_ascii_lowercase();
    let svc = state
        .discovery_services_in(&ns.id)
        .find(|s| *s.name == *service_name)
        .ok_or_else(|| {
            CloudMapError::new(
                "ServiceNotFound",
                format!(
                    "No service named {} exists in namespace {}",
                    shown(service),
                    ns.name
                ),
            )
        })?;
    Ok((ns, svc))
}

fn discover_instances(app: &App, ctx: &Ctx, input: DiscoverInput) -> Result<Value, CloudMapError> {
    let state = app.node.state();
    let (namespace, service) = by_names(&state, &input.namespace_name, &input.service_name)?;
    authorize(
        ctx,
        "DiscoverInstances",
        &service_arn(&ctx.arn, &service.id),
    )?;
    let filter = HealthFilter::parse(input.health_status.as_deref()).ok_or_else(|| {
        CloudMapError::invalid(
            "HealthStatus must be HEALTHY, UNHEALTHY, ALL or HEALTHY_OR_ELSE_ALL",
        )
    })?;
    let max = match input.max_results {
        None => 1000,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(_) => return Err(CloudMapError::invalid("MaxResults must be 1 to 1000")),
    };
    let instances = filter.apply(state.discovery_instances(service));
    let revision = revision_of(&instances);
    let out: Vec<Value> = instances
        .iter()
        .filter(|i| {
            // Custom attributes are ECS's own here: a query matches those.
            let attrs = attributes(i);
            input
                .query_parameters
                .iter()
                .flatten()
                .all(|(k, v)| attrs.get(k).and_then(Value::as_str) == Some(v.as_str()))
        })
        .take(max)
        .map(|i| {
            json!({
                "InstanceId": i.id,
                "NamespaceName": &*namespace.name,
                "ServiceName": &*service.name,
                "HealthStatus": if i.healthy { "HEALTHY" } else { "UNHEALTHY" },
                "Attributes": attributes(i),
            })
        })
        .collect();
    Ok(json!({ "Instances": out, "InstancesRevision": revision }))
}

/// A number that changes when the instances do (Cloud Map's `InstancesRevision`).
pub(crate) fn revision_of(instances: &[Instance]) -> i64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for i in instances {
        i.id.hash(&mut h);
        i.address.hash(&mut h);
        i.port.hash(&mut h);
        i.healthy.hash(&mut h);
    }
    (h.finish() >> 1) as i64
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInstancesInput {
    service_id: String,
    next_token: Option<String>,
    max_results: Option<i64>,
}

fn list_instances(app: &App, ctx: &Ctx, input: ListInstancesInput) -> Result<Value, CloudMapError> {
    authorize(
        ctx,
        "ListInstances",
        &service_arn(&ctx.arn, &input.service_id),
    )?;
    let state = app.node.state();
    let service = service_of(&state, &input.service_id)?;
    let instances = state.discovery_instances(service);
    let (items, next) = page(
        instances.iter().map(|i| {
            (
                i.id.clone(),
                json!({ "Id": i.id, "Attributes": attributes(i) }),
            )
        }),
        input.next_token.as_deref(),
        page_size(input.max_results)?,
    );
    let mut out = json!({ "Instances": items });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_continue_after_the_last_id_and_end_without_a_token() {
        let items = || (1..=5).map(|i| (format!("id{i}"), i));
        let (first, next) = page(items(), None, 2);
        assert_eq!(first, [1, 2]);
        assert_eq!(next.as_deref(), Some("id2"));
        let (second, next) = page(items(), next.as_deref(), 2);
        assert_eq!(second, [3, 4]);
        let (last, next) = page(items(), next.as_deref(), 2);
        assert_eq!(last, [5]);
        assert_eq!(next, None);
        let (exact, next) = page(items(), None, 5);
        assert_eq!(exact.len(), 5);
        assert_eq!(next, None, "no token when nothing follows");
    }

    #[test]
    fn dns_records_are_a_or_srv_once_each_with_a_bounded_ttl() {
        let shape = |records: Value| -> DnsConfigShape {
            serde_json::from_value(json!({ "DnsRecords": records })).unwrap()
        };
        let ok = dns_config(shape(
            json!([{"Type": "SRV", "TTL": 5}, {"Type": "A", "TTL": 10}]),
        ))
        .unwrap();
        assert_eq!(ok.ttl(RecordType::Srv), Some(5));
        assert_eq!(ok.ttl(RecordType::A), Some(10));
        for bad in [
            json!([]),
            json!([{"Type": "SRV", "TTL": 5}, {"Type": "SRV", "TTL": 6}]),
            json!([{"Type": "SRV", "TTL": -1}]),
            json!([{"Type": "SRV", "TTL": 86_401}]),
            json!([{"Type": "CNAME", "TTL": 5}]),
            json!([{"Type": "MX", "TTL": 5}]),
        ] {
            assert!(dns_config(shape(bad.clone())).is_err(), "{bad}");
        }
    }
}
