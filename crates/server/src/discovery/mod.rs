//! Service discovery: where ECS services register their tasks, and how the answers reach the
//! agents' DNS servers.
//!
//! ```text
//!  Cloud Map API (cloudmap.rs) ── namespaces, discovery services ──┐
//!  CreateService { serviceRegistries } ── checked here ────────────┤ Raft state
//!                                                                  ▼
//!  Publisher: on each state change (coalesced), berth_state::discovery ─► DiscoveryFeed;
//!             published only when its revision changes
//!      │
//!      ├─► GET /v1/discover?revision=R&wait=S   agents' long-poll (their DNS answers)
//!      └─► GET /v1/discover/{namespace}/{service}   one service's instances, as JSON
//! ```
//! Commits that change no answer wake no agent: agents wait on the published feed, not on
//! the state.

pub mod cloudmap;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use berth_api::agent::{DISCOVER_PATH, DiscoveredInstance, DiscoveredService, DiscoveryFeed};
use berth_api::{EcsError, types as api};
use berth_model::discovery::{
    NamespaceType, RecordType, ServiceRegistry, parse_service_arn, service_arn,
};
use berth_model::entity::TaskDefinition;
use berth_state::State as ClusterState;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::App;
use crate::auth::Principal;
use crate::ecs::{context, error_response};

/// The longest a feed request waits for a change.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// After a change, how long the publisher lets further commits gather before it recomputes:
/// a burst of commits costs one computation, and an answer leaves DNS at most this much
/// later (TTLs are seconds).
const COALESCE: Duration = Duration::from_millis(20);
/// The action that reads instances: DiscoverInstances, `/v1/discover` and the feed.
const DISCOVER: &str = "servicediscovery:DiscoverInstances";

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route(DISCOVER_PATH, get(feed))
        .route("/v1/discover/{namespace}/{service}", get(instances))
}

/// The feed as last computed, for every waiting agent.
pub struct Publisher {
    feed: watch::Sender<Arc<DiscoveryFeed>>,
    running: AtomicBool,
}

impl Default for Publisher {
    fn default() -> Self {
        Self {
            feed: watch::Sender::new(Arc::new(DiscoveryFeed::default())),
            running: AtomicBool::new(false),
        }
    }
}

impl Publisher {
    /// The published feed; the first call computes it and starts following the state.
    fn subscribe(app: &Arc<App>) -> watch::Receiver<Arc<DiscoveryFeed>> {
        let publisher = &app.discovery;
        if !publisher.running.swap(true, Ordering::AcqRel) {
            let state = app.node.state();
            publisher.feed.send_replace(Arc::new(feed_of(&state)));
            let app = app.clone();
            tokio::spawn(async move {
                let mut seen = state.index();
                loop {
                    let newer = tokio::select! {
                        newer = app.node.wait_beyond(seen, Duration::from_secs(3600)) => newer,
                        () = app.stopping() => return,
                    };
                    if newer.index() <= seen {
                        continue;
                    }
                    tokio::time::sleep(COALESCE).await;
                    let state = app.node.state();
                    seen = state.index();
                    let feed = feed_of(&state);
                    app.discovery.feed.send_if_modified(|current| {
                        let changed = current.revision != feed.revision;
                        if changed {
                            *current = Arc::new(feed);
                        }
                        changed
                    });
                }
            });
        }
        publisher.feed.subscribe()
    }
}

/// What the agents answer: the healthy instances of every discovery service with DNS
/// records in a DNS namespace.
pub fn feed_of(state: &ClusterState) -> DiscoveryFeed {
    let mut services = Vec::new();
    for registered in state.registered() {
        let (Some(dns), NamespaceType::DnsPrivate) =
            (&registered.service.dns, registered.namespace.kind)
        else {
            continue;
        };
        services.push(DiscoveredService {
            namespace: registered.namespace.name.to_string(),
            name: registered.service.name.to_string(),
            a_ttl: dns.ttl(RecordType::A),
            srv_ttl: dns.ttl(RecordType::Srv),
            instances: registered
                .instances
                .into_iter()
                .filter(|i| i.healthy)
                .map(|i| DiscoveredInstance {
                    id: i.id,
                    address: i.address,
                    port: i.port,
                })
                .collect(),
        });
    }
    let mut h = std::hash::DefaultHasher::new();
    services.hash(&mut h);
    DiscoveryFeed {
        // Never 0: an agent that has seen nothing asks with 0.
        revision: h.finish().max(1),
        services,
    }
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    #[serde(default)]
    revision: u64,
    #[serde(default)]
    wait: u64,
}

/// `GET /v1/discover?revision=R&wait=S`: the feed once its revision is not `R`, or after `S`
/// seconds (at most 60).
async fn feed(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    Query(q): Query<FeedQuery>,
) -> Response {
    let ctx = context(&app, &headers, principal);
    if let Err(e) = ctx.authorize(DISCOVER, &["*".to_owned()], None) {
        return error_response(e);
    }
    let mut feed = Publisher::subscribe(&app);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait).min(MAX_WAIT);
    loop {
        let current = feed.borrow_and_update().clone();
        if current.revision != q.revision {
            return Json(current).into_response();
        }
        tokio::select! {
            changed = feed.changed() => if changed.is_err() {
                return Json(current).into_response();
            },
            () = tokio::time::sleep_until(deadline) => return Json(current).into_response(),
            () = app.stopping() => return Json(current).into_response(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstancesQuery {
    health_status: Option<String>,
}

/// `GET /v1/discover/{namespace}/{service}`: one discovery service's instances (healthy ones
/// unless `healthStatus` says otherwise: UNHEALTHY, ALL, HEALTHY_OR_ELSE_ALL).
async fn instances(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    Path((namespace, service)): Path<(String, String)>,
    Query(q): Query<InstancesQuery>,
) -> Response {
    let ctx = context(&app, &headers, principal);
    let state = app.node.state();
    let (ns, svc) = match cloudmap::by_names(&state, &namespace, &service) {
        Ok(found) => found,
        Err(e) => return cloudmap::respond(Err(e)),
    };
    if let Err(e) = ctx.authorize(DISCOVER, &[service_arn(&ctx.arn, &svc.id)], None) {
        return error_response(e);
    }
    let Some(filter) = cloudmap::HealthFilter::parse(q.health_status.as_deref()) else {
        return error_response(EcsError::invalid(
            "healthStatus must be HEALTHY, UNHEALTHY, ALL or HEALTHY_OR_ELSE_ALL",
        ));
    };
    let instances = filter.apply(state.discovery_instances(svc));
    Json(json!({
        "namespace": &*ns.name,
        "service": &*svc.name,
        "serviceArn": service_arn(&ctx.arn, &svc.id),
        "revision": cloudmap::revision_of(&instances),
        "instances": instances,
    }))
    .into_response()
}

/// An ECS service's `serviceRegistries`, checked against the discovery services and the task
/// definition whose tasks it registers (`None` for an EXTERNAL service, whose task sets bring
/// their own).
pub(crate) fn service_registries(
    state: &ClusterState,
    given: Option<&[api::ServiceRegistry]>,
    definition: Option<&TaskDefinition>,
) -> Result<Vec<ServiceRegistry>, EcsError> {
    let given = given.unwrap_or_default();
    let [registry] = given else {
        return if given.is_empty() {
            Ok(Vec::new())
        } else {
            Err(EcsError::invalid(
                "serviceRegistries may name one registry: a service registers in one \
                 discovery service",
            ))
        };
    };
    let Some(definition) = definition else {
        return Err(EcsError::invalid(
            "serviceRegistries are not supported for the EXTERNAL deployment controller yet",
        ));
    };
    let arn = registry
        .registry_arn
        .as_deref()
        .ok_or_else(|| EcsError::invalid("serviceRegistries[0].registryArn is required"))?;
    let id = parse_service_arn(arn).map_err(EcsError::from)?;
    let service = state.discovery_service(id).ok_or_else(|| {
        EcsError::invalid(format!(
            "serviceRegistries[0].registryArn {arn} names no discovery service: create it \
             with servicediscovery CreateService first"
        ))
    })?;
    let port = |p: Option<i32>, field: &str| {
        p.map(|p| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| EcsError::invalid(format!("{field} must be 1 to 65535")))
        })
        .transpose()
    };
    let container_port = port(registry.container_port, "containerPort")?;
    let fixed_port = port(registry.port, "port")?;
    let network_mode = definition.spec.network_mode.as_deref().unwrap_or("bridge");
    if fixed_port.is_some() {
        return Err(EcsError::invalid(
            "serviceRegistries port applies to the awsvpc network mode; with bridge or host, \
             give containerName and containerPort",
        ));
    }
    let container = match (&registry.container_name, container_port) {
        (Some(name), Some(port)) => {
            let container = definition
                .spec
                .container_definitions
                .iter()
                .flatten()
                .find(|c| c.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| {
                    EcsError::invalid(format!(
                        "serviceRegistries containerName {name} is not a container of the \
                         task definition"
                    ))
                })?;
            let mapped = container
                .port_mappings
                .iter()
                .flatten()
                .any(|m| m.container_port == Some(i32::from(port)));
            if !mapped {
                return Err(EcsError::invalid(format!(
                    "serviceRegistries containerPort {port} is not in the port mappings of \
                     container {name}"
                )));
            }
            Some((name.clone(), port))
        }
        (None, None) => None,
        _ => {
            return Err(EcsError::invalid(
                "serviceRegistries containerName and containerPort go together",
            ));
        }
    };
    if let Some(dns) = &service.dns {
        if dns.ttl(RecordType::Srv).is_some() && container.is_none() {
            return Err(EcsError::invalid(format!(
                "Discovery service {} answers SRV records: with the {network_mode} network \
                 mode, serviceRegistries needs containerName and containerPort",
                service.name
            )));
        }
        if dns.ttl(RecordType::A).is_some() && network_mode == "bridge" {
            return Err(EcsError::invalid(format!(
                "Discovery service {} answers A records, which carry no port: a bridge-mode \
                 task is reached at a host port, so register it in a service with SRV records \
                 only (or use the host network mode)",
                service.name
            )));
        }
    }
    let (container_name, container_port) = container.unzip();
    Ok(vec![ServiceRegistry {
        registry_id: service.id.clone(),
        container_name,
        container_port,
        port: None,
    }])
}

/// A service's registries as ECS shows them.
pub(crate) fn render_registries(
    arn: &berth_model::arn::ArnContext,
    registries: &[ServiceRegistry],
) -> Vec<api::ServiceRegistry> {
    registries
        .iter()
        .map(|r| api::ServiceRegistry {
            registry_arn: Some(service_arn(arn, &r.registry_id)),
            port: r.port.map(i32::from),
            container_name: r.container_name.clone(),
            container_port: r.container_port.map(i32::from),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_feed_has_a_revision_an_agent_has_not_seen() {
        let feed = feed_of(&ClusterState::default());
        assert!(feed.services.is_empty());
        assert_ne!(feed.revision, 0);
    }
}
