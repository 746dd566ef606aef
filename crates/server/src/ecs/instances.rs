//! RegisterContainerInstance, DeregisterContainerInstance, ListContainerInstances,
//! DescribeContainerInstances, UpdateContainerInstancesState, PutAttributes, ListAttributes,
//! DeleteAttributes.

use std::collections::BTreeMap;

use berth_api::agent::{CERTIFICATE_ATTRIBUTE, ENDPOINT_ATTRIBUTE};
use berth_api::types::{self as api, enums};
use berth_api::{EcsError, ErrorCode};
use berth_model::InstanceId;
use berth_model::arn::parse_container_instance;
use berth_model::command::{
    AttributeChange, DeleteAttributes, DeregisterContainerInstance, Partial, PutAttributes,
    RegisterContainerInstance, UpdateContainerInstancesState,
};
use berth_model::entity::{InstanceStatus, Resources};
use berth_model::validate::{
    self, attribute_name, attribute_value, list_len, max_results, one_of, required, required_str,
};
use berth_scheduler::{instance_matches, query};
use serde::Deserialize;

use super::render;
use super::{Ctx, active_cluster, existing_cluster};
use crate::App;
use crate::pagination;

/// A container-instance reference that must belong to `cluster` when its ARN names one.
pub(crate) fn instance_ref(reference: &str, cluster: &str) -> Result<InstanceId, EcsError> {
    let (named, id) =
        parse_container_instance(reference).map_err(|e| EcsError::invalid(e.to_string()))?;
    if let Some(named) = named
        && named != cluster
    {
        return Err(EcsError::invalid(format!(
            "Container instance {reference} belongs to cluster {named}, not {cluster}"
        )));
    }
    Ok(id)
}

/// The fields of an EC2 instance identity document berth uses.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IdentityDocument {
    instance_id: Option<String>,
    availability_zone: Option<String>,
    instance_type: Option<String>,
    image_id: Option<String>,
}

fn ports(r: &api::Resource) -> Result<Vec<u16>, EcsError> {
    let mut out = Vec::new();
    for p in r.string_set_value.as_deref().unwrap_or_default() {
        out.push(p.trim().parse::<u16>().map_err(|_| {
            EcsError::invalid(format!(
                "Resource {}: '{}' is not a port number (0-65535)",
                r.name.as_deref().unwrap_or_default(),
                validate::shorten(p)
            ))
        })?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn integer(r: &api::Resource) -> Result<i64, EcsError> {
    let v = r
        .integer_value
        .map(i64::from)
        .or(r.long_value.filter(|v| *v != 0))
        .or(r.double_value.filter(|v| *v != 0.0).map(|d| d as i64))
        .unwrap_or(0);
    if v < 0 {
        return Err(EcsError::invalid(format!(
            "Resource {} must not be negative",
            r.name.as_deref().unwrap_or_default()
        )));
    }
    Ok(v)
}

/// The resources an instance registers: what `totalResources` gives, and where it leaves CPU
/// or MEMORY out (tools that register a host from its EC2 identity document alone send none),
/// what the document's instance type has. A type berth does not know registers 0 for what is
/// missing, which the second value names (for the log); registration is never refused for it.
fn resources(
    total: Option<&[api::Resource]>,
    instance_type: Option<&str>,
) -> Result<(Resources, Option<&'static str>), EcsError> {
    let mut out = Resources::default();
    let (mut cpu, mut memory) = (None, None);
    for r in total.unwrap_or_default() {
        match required_str(&r.name, "totalResources.name")? {
            "CPU" => cpu = Some(integer(r)?),
            "MEMORY" => memory = Some(integer(r)?),
            "PORTS" => out.ports = ports(r)?,
            "PORTS_UDP" => out.udp_ports = ports(r)?,
            _ => out.other.push(r.clone()),
        }
    }
    let zeroed = match (cpu, memory) {
        (Some(_), Some(_)) => None,
        (None, None) => Some("CPU and MEMORY"),
        (None, Some(_)) => Some("CPU"),
        (Some(_), None) => Some("MEMORY"),
    };
    let zeroed = match instance_type.and_then(berth_model::instance_type::capacity) {
        Some(capacity) if zeroed.is_some() => {
            cpu = cpu.or(Some(capacity.cpu));
            memory = memory.or(Some(capacity.memory));
            None
        }
        _ => zeroed,
    };
    out.cpu = cpu.unwrap_or(0);
    out.memory = memory.unwrap_or(0);
    Ok((out, zeroed))
}

fn attributes(
    given: Option<&[api::Attribute]>,
) -> Result<BTreeMap<String, Option<String>>, EcsError> {
    let mut out = BTreeMap::new();
    for a in given.unwrap_or_default() {
        let name = required_str(&a.name, "attributes.name")?;
        attribute_name(name)?;
        if let Some(v) = &a.value {
            attribute_value(v)?;
        }
        out.insert(name.to_owned(), a.value.clone());
    }
    Ok(out)
}

pub async fn register(
    app: &App,
    ctx: &Ctx,
    req: api::RegisterContainerInstanceRequest,
) -> Result<api::RegisterContainerInstanceResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let doc: IdentityDocument = match req.instance_identity_document.as_deref() {
        None | Some("") => IdentityDocument::default(),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            EcsError::invalid(format!(
                "instanceIdentityDocument is not a valid identity document: {e}"
            ))
        })?,
    };
    let (resources, zeroed) =
        resources(req.total_resources.as_deref(), doc.instance_type.as_deref())?;
    let instance_type = doc.instance_type.clone();
    let mut attrs = attributes(req.attributes.as_deref())?;
    let mut builtin = |name: &str, value: Option<&String>| {
        if let Some(v) = value {
            attrs.insert(name.to_owned(), Some(v.clone()));
        }
    };
    builtin("ecs.ami-id", doc.image_id.as_ref());
    builtin("ecs.availability-zone", doc.availability_zone.as_ref());
    builtin("ecs.instance-type", doc.instance_type.as_ref());
    attrs
        .entry("ecs.os-type".into())
        .or_insert_with(|| Some("linux".into()));
    let os_family = match attrs.get("ecs.os-type").cloned().flatten().as_deref() {
        Some("windows") => "WINDOWS_SERVER",
        _ => "LINUX",
    };
    attrs
        .entry("ecs.os-family".into())
        .or_insert_with(|| Some(os_family.into()));

    // An agent registers its own instance (made when it joined) and nothing else; only it
    // says where it serves logs.
    let endpoint = attrs.remove(ENDPOINT_ATTRIBUTE).flatten();
    let certificate = attrs.remove(CERTIFICATE_ATTRIBUTE).flatten();
    let (id, reregister, agent_endpoint) = match ctx.principal.agent_instance() {
        Some((own_cluster, own)) => {
            if own_cluster != cluster {
                return Err(EcsError::new(
                    ErrorCode::AccessDeniedException,
                    format!("This agent's credential is for cluster {own_cluster}, not {cluster}"),
                ));
            }
            if let Some(arn) = req.container_instance_arn.as_deref()
                && instance_ref(arn, &cluster)? != own
            {
                return Err(EcsError::new(
                    ErrorCode::AccessDeniedException,
                    format!(
                        "An agent may register only its own container instance ({own}), not {arn}"
                    ),
                ));
            }
            let endpoint = match (endpoint, certificate) {
                (Some(url), Some(sha256)) => Some(agent_endpoint(&url, &sha256)?),
                (None, None) => None,
                _ => {
                    return Err(EcsError::invalid(format!(
                        "An agent registers {ENDPOINT_ATTRIBUTE} and {CERTIFICATE_ATTRIBUTE} \
                         together"
                    )));
                }
            };
            (own, app.node.state().instance(own).is_some(), endpoint)
        }
        None => {
            if endpoint.is_some() {
                return Err(reserved_attribute(ENDPOINT_ATTRIBUTE));
            }
            if certificate.is_some() {
                return Err(reserved_attribute(CERTIFICATE_ATTRIBUTE));
            }
            if let Some(name) = attrs.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
                return Err(reserved_attribute(name));
            }
            match req.container_instance_arn.as_deref() {
                Some(arn) => (instance_ref(arn, &cluster)?, true, None),
                None => (InstanceId(rand::random()), false, None),
            }
        }
    };
    let command = RegisterContainerInstance {
        cluster: cluster.as_str().into(),
        id,
        reregister,
        ec2_instance_id: doc.instance_id,
        resources,
        attributes: attrs,
        version_info: req.version_info,
        tags: validate::tags(req.tags.as_deref())?,
        agent_certificate: agent_endpoint.as_ref().map(|(_, sha256)| sha256.clone()),
        agent_endpoint: agent_endpoint.map(|(url, _)| url),
    };
    let i = app.write_by(&ctx.principal, command).await?;
    app.heartbeats.heard(i.id);
    if let Some(zeroed) = zeroed {
        tracing::warn!(
            container_instance = %ctx.arn.container_instance(&i.cluster, i.id),
            ec2_instance_id = i.ec2_instance_id.as_deref().unwrap_or("(none)"),
            instance_type = instance_type.as_deref().unwrap_or("(none)"),
            "registered with no {zeroed}: totalResources left it out and berth does not know \
             the size of the instance type; tasks that need it will not be placed there until \
             the instance registers again with totalResources"
        );
    }
    let state = app.node.state();
    Ok(api::RegisterContainerInstanceResponse {
        container_instance: Some(render::instance(&ctx.arn, &i, state.usage(i.id), true)),
    })
}

pub async fn deregister(
    app: &App,
    ctx: &Ctx,
    req: api::DeregisterContainerInstanceRequest,
) -> Result<api::DeregisterContainerInstanceResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let id = instance_ref(
        required_str(&req.container_instance, "containerInstance")?,
        &cluster,
    )?;
    let command = DeregisterContainerInstance {
        cluster: cluster.as_str().into(),
        id,
        force: req.force.unwrap_or(false),
    };
    let i = app.write_by(&ctx.principal, command).await?;
    Ok(api::DeregisterContainerInstanceResponse {
        container_instance: Some(render::instance(&ctx.arn, &i, None, true)),
    })
}

pub async fn list(
    app: &App,
    ctx: &Ctx,
    req: api::ListContainerInstancesRequest,
) -> Result<api::ListContainerInstancesResponse, EcsError> {
    const OP: &str = "ListContainerInstances";
    let cluster = existing_cluster(app, &req.cluster)?;
    let max = max_results(req.max_results, 100, 100)?;
    let status = req
        .status
        .as_deref()
        .map(|s| one_of(s, enums::CONTAINER_INSTANCE_STATUS, "status"))
        .transpose()?;
    let filter = req
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| query::parse(f).map_err(|e| EcsError::invalid(format!("filter: {e}"))))
        .transpose()?;
    let after: Option<InstanceId> = pagination::decode(OP, req.next_token.as_deref())?;
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let items = state
        .instances_after(&cluster, after)
        .filter(|i| match status {
            Some(s) => i.status.as_str() == s,
            None => i.status != InstanceStatus::Inactive,
        })
        .filter(|i| {
            filter
                .as_ref()
                .is_none_or(|f| instance_matches(&state, i, f))
        });
    let (page, next) = pagination::page(OP, items, max, |i| i.id);
    Ok(api::ListContainerInstancesResponse {
        container_instance_arns: Some(
            page.iter()
                .map(|i| ctx.arn.container_instance(&i.cluster, i.id))
                .collect(),
        ),
        next_token: next,
    })
}

pub async fn describe(
    app: &App,
    ctx: &Ctx,
    req: api::DescribeContainerInstancesRequest,
) -> Result<api::DescribeContainerInstancesResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let refs = required(&req.container_instances, "containerInstances")?;
    list_len(refs, "containerInstances", true, 100)?;
    let mut include_tags = false;
    for v in req.include.as_deref().unwrap_or_default() {
        include_tags |= one_of(v, enums::CONTAINER_INSTANCE_FIELD, "include value")? == "TAGS";
    }
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        let instance = instance_ref(r, &cluster)
            .ok()
            .and_then(|id| state.instance(id))
            .filter(|i| *i.cluster == *cluster);
        match instance {
            Some(i) => found.push(render::instance(
                &ctx.arn,
                i,
                state.usage(i.id),
                include_tags,
            )),
            None => failures.push(render::missing(match parse_container_instance(r) {
                Ok((_, id)) => ctx.arn.container_instance(&cluster, id),
                Err(_) => r.clone(),
            })),
        }
    }
    Ok(api::DescribeContainerInstancesResponse {
        container_instances: Some(found),
        failures: Some(failures),
    })
}

pub async fn update_state(
    app: &App,
    ctx: &Ctx,
    req: api::UpdateContainerInstancesStateRequest,
) -> Result<api::UpdateContainerInstancesStateResponse, EcsError> {
    let cluster = existing_cluster(app, &req.cluster)?;
    let refs = required(&req.container_instances, "containerInstances")?;
    list_len(refs, "containerInstances", true, 10)?;
    let status = one_of(
        required_str(&req.status, "status")?,
        &["ACTIVE", "DRAINING"],
        "status",
    )?;
    let ids = refs
        .iter()
        .map(|r| instance_ref(r, &cluster))
        .collect::<Result<Vec<_>, _>>()?;
    let command = UpdateContainerInstancesState {
        cluster: cluster.as_str().into(),
        ids,
        status: InstanceStatus::parse(status).expect("validated above"),
    };
    let Partial { done, failures } = app.write_by(&ctx.principal, command).await?;
    let state = app.node.state();
    Ok(api::UpdateContainerInstancesStateResponse {
        container_instances: Some(
            done.iter()
                .map(|i| render::instance(&ctx.arn, i, state.usage(i.id), false))
                .collect(),
        ),
        failures: Some(
            failures
                .iter()
                .map(|f| render::failure(&ctx.arn, f))
                .collect(),
        ),
    })
}

/// Validates PutAttributes/DeleteAttributes items: container-instance targets in `cluster`.
fn attribute_changes(
    given: &[api::Attribute],
    cluster: &str,
    need_value_check: bool,
) -> Result<Vec<AttributeChange>, EcsError> {
    list_len(given, "attributes", true, 10)?;
    let mut out = Vec::new();
    for a in given {
        let name = required_str(&a.name, "attributes.name")?;
        attribute_name(name)?;
        if need_value_check {
            if name.starts_with("ecs.") {
                return Err(EcsError::invalid(format!(
                    "Attribute name '{name}' is reserved: names starting with 'ecs.' are set by berth"
                )));
            }
            if let Some(v) = &a.value {
                attribute_value(v)?;
            }
        }
        if let Some(t) = &a.target_type {
            one_of(t, enums::TARGET_TYPE, "targetType")?;
        }
        let target = required_str(&a.target_id, "attributes.targetId")?;
        out.push(AttributeChange {
            instance: instance_ref(target, cluster)?,
            name: name.to_owned(),
            value: a.value.clone(),
        });
    }
    Ok(out)
}

fn render_changes(ctx: &Ctx, cluster: &str, changes: &[AttributeChange]) -> Vec<api::Attribute> {
    changes
        .iter()
        .map(|c| api::Attribute {
            name: Some(c.name.clone()),
            value: c.value.clone(),
            target_type: Some("container-instance".into()),
            target_id: Some(ctx.arn.container_instance(cluster, c.instance)),
        })
        .collect()
}

/// PutAttributes (`put`) or DeleteAttributes: validates, commits, renders what was applied.
/// Attributes in the `berth.` namespace are what an instance's own agent says of itself
/// (where it serves logs, which runtimes it has): placement and log fetching trust them, so
/// only the agent sets them, when it registers.
const RESERVED_PREFIX: &str = "berth.";

fn reserved_attribute(name: &str) -> EcsError {
    EcsError::invalid(format!(
        "{} is in the berth. namespace, which the container instance's own agent sets when it \
         registers; it cannot be put, deleted or registered by anyone else",
        validate::shorten(name)
    ))
}

/// An agent's log endpoint, `https://host:port` and nothing more (container output never
/// travels in the clear), and the SHA-256 of its certificate, 64 lowercase hex digits.
fn agent_endpoint(url: &str, sha256: &str) -> Result<(String, String), EcsError> {
    let bad = || {
        EcsError::invalid(format!(
            "{ENDPOINT_ATTRIBUTE} must be https://HOST:PORT, not '{}'",
            validate::shorten(url)
        ))
    };
    let uri: hyper::Uri = url.parse().map_err(|_| bad())?;
    let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
    if uri.scheme_str() != Some("https")
        || !bare
        || uri.host().is_none()
        || uri.port_u16().is_none()
    {
        return Err(bad());
    }
    let hex = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex {
        return Err(EcsError::invalid(format!(
            "{CERTIFICATE_ATTRIBUTE} must be a SHA-256 in 64 lowercase hex digits, not '{}'",
            validate::shorten(sha256)
        )));
    }
    Ok((url.trim_end_matches('/').to_owned(), sha256.to_owned()))
}

async fn change_attributes(
    app: &App,
    ctx: &Ctx,
    cluster: &Option<String>,
    given: &Option<Vec<api::Attribute>>,
    put: bool,
) -> Result<Vec<api::Attribute>, EcsError> {
    if let Some(name) = given
        .iter()
        .flatten()
        .filter_map(|a| a.name.as_deref())
        .find(|n| n.starts_with(RESERVED_PREFIX))
    {
        return Err(reserved_attribute(name));
    }
    let cluster = existing_cluster(app, cluster)?;
    let attributes = attribute_changes(required(given, "attributes")?, &cluster, put)?;
    let name = cluster.as_str().into();
    let changes = if put {
        app.write_by(
            &ctx.principal,
            PutAttributes {
                cluster: name,
                attributes,
            },
        )
        .await?
    } else {
        app.write_by(
            &ctx.principal,
            DeleteAttributes {
                cluster: name,
                attributes,
            },
        )
        .await?
    };
    Ok(render_changes(ctx, &cluster, &changes))
}

pub async fn put_attributes(
    app: &App,
    ctx: &Ctx,
    req: api::PutAttributesRequest,
) -> Result<api::PutAttributesResponse, EcsError> {
    let attributes = change_attributes(app, ctx, &req.cluster, &req.attributes, true).await?;
    Ok(api::PutAttributesResponse {
        attributes: Some(attributes),
    })
}

pub async fn delete_attributes(
    app: &App,
    ctx: &Ctx,
    req: api::DeleteAttributesRequest,
) -> Result<api::DeleteAttributesResponse, EcsError> {
    let attributes = change_attributes(app, ctx, &req.cluster, &req.attributes, false).await?;
    Ok(api::DeleteAttributesResponse {
        attributes: Some(attributes),
    })
}

pub async fn list_attributes(
    app: &App,
    ctx: &Ctx,
    req: api::ListAttributesRequest,
) -> Result<api::ListAttributesResponse, EcsError> {
    const OP: &str = "ListAttributes";
    let cluster = existing_cluster(app, &req.cluster)?;
    one_of(
        required_str(&req.target_type, "targetType")?,
        enums::TARGET_TYPE,
        "targetType",
    )?;
    if req.attribute_value.is_some() && req.attribute_name.is_none() {
        return Err(EcsError::invalid(
            "attributeValue can only be used with attributeName",
        ));
    }
    let max = max_results(req.max_results, 100, 100)?;
    let after: Option<(InstanceId, String)> = pagination::decode(OP, req.next_token.as_deref())?;
    let state = app.node.state();
    active_cluster(&state, &cluster)?;
    let name = req.attribute_name.as_deref();
    let value = req.attribute_value.as_deref();
    let items = state
        .instances_after(&cluster, None)
        .filter(|i| i.status != InstanceStatus::Inactive)
        .flat_map(|i| {
            i.attributes
                .iter()
                .map(move |(n, v)| (i.id, n.clone(), v.clone()))
        })
        .filter(|(id, n, _)| after.as_ref().is_none_or(|(aid, an)| (id, n) > (aid, an)))
        .filter(|(_, n, v)| {
            name.is_none_or(|x| x == n) && value.is_none_or(|x| v.as_deref() == Some(x))
        });
    let (page, next) = pagination::page(OP, items, max, |(id, n, _)| (*id, n.clone()));
    Ok(api::ListAttributesResponse {
        attributes: Some(
            page.into_iter()
                .map(|(id, n, v)| api::Attribute {
                    name: Some(n),
                    value: v,
                    target_type: Some("container-instance".into()),
                    target_id: Some(ctx.arn.container_instance(&cluster, id)),
                })
                .collect(),
        ),
        next_token: next,
    })
}
