//! Prometheus metrics: what a server counts, what it reads from its state when scraped, and
//! the two ways to scrape it.
//!
//! ```text
//!  every request ─► track (one layer, outside authentication) ─► berth_api_requests_total
//!                                                                berth_api_request_duration_seconds
//!  Raft batcher / log writer ─► berth_raft_*, berth_placements_*, berth_mesos_offers_total
//!  agent monitor, polls ─► berth_agent_transitions_total
//!  queue and service controllers ─► berth_preemptions_total, berth_preempted_tasks_total
//!  scrape ─► the published state, read once: tasks by status, instances, services by health,
//!            Mesos frameworks and outstanding offers
//!
//!  GET /metrics on the API port: SigV4 for `berth`, action berth:GetMetrics
//!  GET /metrics on --metrics-listen: no authentication, as exporters are scraped
//! ```
//! Counters live where the work happens; every level is computed from one state snapshot at
//! scrape time, so the numbers of one scrape agree with each other and nothing runs between
//! scrapes. The text is Prometheus' format (0.0.4) unless the scraper asks for OpenMetrics,
//! as Prometheus itself does.
//!
//! Label values come from closed sets (ECS operation names berth implements, route templates,
//! HTTP status codes, statuses) or from cluster names, so a client cannot grow the number of
//! series by sending odd requests.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use berth_api::protocol::operation_name;
use berth_auth::action;
use berth_model::entity::{InstanceStatus, TaskStatus};
use berth_model::service::RolloutState;
use berth_raft::Node;
use berth_state::TaskFilter;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::App;
use crate::auth::{Api, Principal};
use crate::ecs::{IMPLEMENTED, context, error_response};

/// The path both endpoints answer on.
pub const PATH: &str = "/metrics";

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which request: its API, its operation (ECS operation, or the route template) and the HTTP
/// status it was answered with.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    operation: Cow<'static, str>,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    api: &'static str,
    operation: Cow<'static, str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    to: &'static str,
}

/// What an agent's connectivity became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTransition {
    /// The leader stopped hearing from it (`agentConnected: false`).
    Disconnected,
    /// A disconnected agent polled again.
    Reconnected,
    /// It stayed silent past the grace period; its tasks were stopped.
    Lost,
}

impl AgentTransition {
    fn as_str(self) -> &'static str {
        match self {
            AgentTransition::Disconnected => "disconnected",
            AgentTransition::Reconnected => "reconnected",
            AgentTransition::Lost => "lost",
        }
    }
}

/// Who looked for tasks to preempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preemptor {
    /// The queue controller, for a queued RunTask task.
    Queue,
    /// The service controller, for a service's (or a daemon's) task.
    Service,
}

/// How one preemption search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preemption {
    /// A set was found and `PreemptAndPlace` committed, stopping `evicted` tasks.
    Committed { evicted: usize },
    /// A set was found but the commit refused it (the state moved on); decided again.
    Refused,
    /// `searches` searches found no set of tasks whose stopping would make room.
    NoSet { searches: usize },
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoopLabels {
    background: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PreemptionLabels {
    preemptor: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PreemptorLabels {
    preemptor: &'static str,
}

impl Preemptor {
    fn as_str(self) -> &'static str {
        match self {
            Preemptor::Queue => "queue",
            Preemptor::Service => "service",
        }
    }
}

fn latency_histogram() -> Histogram {
    // 250 µs to ~8 s: a Describe answers in about a millisecond, a long-poll in many seconds.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// A server's metrics: its registry, and the counters recorded as requests are served.
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabels, Histogram, fn() -> Histogram>,
    agents: Family<TransitionLabels, Counter>,
    preemptions: Family<PreemptionLabels, Counter>,
    preempted: Family<PreemptorLabels, Counter>,
    background_restarts: Family<LoopLabels, Counter>,
    /// A collector from outside the server, added after start (`berth dev`'s agent).
    included: Arc<OnceLock<Box<dyn Collector>>>,
}

impl Metrics {
    /// Every metric of a server on `node`.
    pub fn new(node: &Arc<Node>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let agents = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "berth_api_requests",
            "Requests answered, by API (ecs, native, mesos, peer, open), operation (the ECS \
             operation or the route) and HTTP status",
            requests.clone(),
        );
        registry.register_with_unit(
            "berth_api_request_duration",
            "Time from a request's arrival to its response head, authentication included",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "berth_agent_transitions",
            "Agents that went disconnected, reconnected or lost, as the leader recorded them",
            agents.clone(),
        );
        // Labels from closed sets only (no cluster): the counters outlive clusters, and which
        // cluster preempts is in the stopped tasks' reasons and the controllers' logs.
        let preemptions = Family::<PreemptionLabels, Counter>::default();
        let preempted = Family::<PreemptorLabels, Counter>::default();
        registry.register(
            "berth_preemptions",
            "Preemption searches by preemptor (queue, service) and outcome: committed (tasks \
             stopped and the preemptor placed in one transaction), refused (re-checked at commit \
             and refused; decided again), no_set (no set of lower-priority, unprotected tasks \
             would make room; counted once a pass per distinct queued need, and per service \
             template that could not be placed)",
            preemptions.clone(),
        );
        registry.register(
            "berth_preempted_tasks",
            "Tasks stopped by a committed preemption, by preemptor (queue, service)",
            preempted.clone(),
        );
        let background_restarts = Family::<LoopLabels, Counter>::default();
        registry.register(
            "berth_background_restarts",
            "Background loops (housekeeping, service_controller, queue_controller, \
             schedule_runner, mesos, agent_monitor) restarted after they panicked or ended; \
             anything above 0 is a bug worth reporting, with the server's error log",
            background_restarts.clone(),
        );
        node.register_metrics(&mut registry);
        registry.register_collector(Box::new(StateLevels { node: node.clone() }));
        let included = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(Included(included.clone())));
        Metrics {
            registry: Arc::new(registry),
            requests,
            durations,
            agents,
            preemptions,
            preempted,
            background_restarts,
            included,
        }
    }

    /// Adds `collector`'s metrics to this server's (once: later calls are ignored). `berth
    /// dev` includes its agent's this way, so one scrape sees both.
    pub fn include(&self, collector: impl Collector) {
        let _ = self.included.set(Box::new(collector));
    }

    /// Records a restart of background loop `name`.
    pub fn background_restart(&self, name: &'static str) {
        self.background_restarts
            .get_or_create(&LoopLabels { background: name })
            .inc();
    }

    /// Records `count` agents making `transition`.
    pub fn agents(&self, transition: AgentTransition, count: usize) {
        self.agents
            .get_or_create(&TransitionLabels {
                to: transition.as_str(),
            })
            .inc_by(count as u64);
    }

    /// Records how a preemption search by `by` ended.
    pub fn preemption(&self, by: Preemptor, outcome: Preemption) {
        let (label, count) = match outcome {
            Preemption::Committed { evicted } => {
                self.preempted
                    .get_or_create(&PreemptorLabels {
                        preemptor: by.as_str(),
                    })
                    .inc_by(evicted as u64);
                ("committed", 1)
            }
            Preemption::Refused => ("refused", 1),
            Preemption::NoSet { searches } => ("no_set", searches),
        };
        if count > 0 {
            self.preemptions
                .get_or_create(&PreemptionLabels {
                    preemptor: by.as_str(),
                    outcome: label,
                })
                .inc_by(count as u64);
        }
    }

    /// Every metric of this server, for [`exporter`].
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

/// The whole exposition of `registry`, in OpenMetrics when `openmetrics`, else Prometheus'
/// text format; with its content type.
fn render(registry: &Registry, openmetrics: bool) -> (String, &'static str) {
    use prometheus_client::encoding::{prometheus_text, text};
    let mut out = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail, nor can berth's collectors.
    let content_type = if openmetrics {
        text::encode(&mut out, registry).map(|()| OPENMETRICS)
    } else {
        prometheus_text::encode(&mut out, registry).map(|()| prometheus_text::CONTENT_TYPE)
    };
    (out, content_type.unwrap_or(OPENMETRICS))
}

/// The layer in front of every route: counts and times each request by what it was for.
pub(crate) async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let api = Api::of(request.uri().path(), target);
    let operation: Cow<'static, str> = match api {
        Api::Ecs => Cow::Borrowed(ecs_operation(request.headers())),
        Api::CloudMap => Cow::Borrowed(
            target
                .and_then(|t| t.strip_prefix(crate::discovery::cloudmap::TARGET_PREFIX))
                .and_then(|op| {
                    crate::discovery::cloudmap::OPERATIONS
                        .iter()
                        .find(|known| **known == op)
                })
                .copied()
                .unwrap_or("other"),
        ),
        _ => match request.extensions().get::<MatchedPath>() {
            Some(path) => Cow::Owned(path.as_str().to_owned()),
            None => Cow::Borrowed("unmatched"),
        },
    };
    let response = next.run(request).await;
    let api = api_label(api);
    app.metrics
        .durations
        .get_or_create(&OperationLabels {
            api,
            operation: operation.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            api,
            operation,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn api_label(api: Api) -> &'static str {
    match api {
        Api::Open => "open",
        Api::Ecs => "ecs",
        Api::CloudMap => "servicediscovery",
        Api::Mesos => "mesos",
        Api::Scheduler => "scheduler",
        Api::Peer => "peer",
        Api::Native => "native",
        Api::Ui => "ui",
    }
}

/// The ECS operation a request names, if berth implements it; `other` for anything else, so
/// that made-up targets share one series.
fn ecs_operation(headers: &HeaderMap) -> &'static str {
    let named = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(operation_name);
    named
        .and_then(|op| IMPLEMENTED.iter().find(|known| **known == op))
        .copied()
        .unwrap_or("other")
}

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"))
}

fn exposition(registry: &Registry, headers: &HeaderMap) -> Response {
    let (text, content_type) = render(registry, wants_openmetrics(headers));
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /metrics` on the API port, behind authentication like the rest of the native API.
pub(crate) fn router() -> Router<Arc<App>> {
    Router::new().route(PATH, get(signed))
}

async fn signed(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(&app, &headers, principal);
    if let Err(e) = ctx.authorize(action::GET_METRICS, &[], None) {
        return error_response(e);
    }
    exposition(&app.metrics.registry, &headers)
}

/// `GET /metrics` alone and unauthenticated, for `--metrics-listen` on servers and agents:
/// what Prometheus scrapes without credentials. Nothing else is reachable through it.
pub fn exporter(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            PATH,
            get(
                |State(registry): State<Arc<Registry>>, headers: HeaderMap| async move {
                    exposition(&registry, &headers)
                },
            ),
        )
        .with_state(registry)
}

/// What [`Metrics::include`] added, if anything yet.
#[derive(Debug)]
struct Included(Arc<OnceLock<Box<dyn Collector>>>);

impl Collector for Included {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.0.get() {
            Some(collector) => collector.encode(encoder),
            None => Ok(()),
        }
    }
}

/// Levels read from the newest published state at scrape time.
struct StateLevels {
    node: Arc<Node>,
}

impl std::fmt::Debug for StateLevels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateLevels")
    }
}

/// One gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// One gauge family: its descriptor, then one sample per label set.
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The managed-scaling figures of every capacity provider attached to a cluster, for an
/// external autoscaler (berth launches no machines): ECS's CapacityProviderReservation
/// (M / N × 100), N and M themselves, and the provider's target when managed scaling is on.
/// Scale out while the reservation is above the target, in while it is below.
fn capacity_providers(
    encoder: &mut DescriptorEncoder,
    state: &berth_state::State,
    clusters: &[&Arc<berth_model::entity::Cluster>],
) -> Result<(), std::fmt::Error> {
    let mut rows = Vec::new();
    for cluster in clusters
        .iter()
        .filter(|c| c.status == berth_model::entity::ClusterStatus::Active)
    {
        for (provider, r) in berth_scheduler::capacity::reservations(state, &cluster.name) {
            let target = state
                .capacity_provider(&provider)
                .and_then(|p| p.target_capacity());
            rows.push((cluster.name.to_string(), provider.to_string(), r, target));
        }
    }
    let labels = |c: &str, p: &str| [("cluster", c.to_owned()), ("provider", p.to_owned())];
    let mut family = encoder.encode_descriptor(
        "berth_capacity_provider_reservation_percent",
        "ECS's CapacityProviderReservation per capacity provider: instances needed for its \
         running tasks and the service tasks waiting for room on it (M), over its container \
         instances (N), times 100; 200 when it has demand and no instance",
        None,
        MetricType::Gauge,
    )?;
    for (c, p, r, _) in &rows {
        ConstGauge::new(r.percent()).encode(family.encode_family(&labels(c, p))?)?;
    }
    gauges(
        encoder,
        "berth_capacity_provider_instances",
        "Container instances of each capacity provider in the cluster (N)",
        rows.iter()
            .map(|(c, p, r, _)| (labels(c, p), i64::from(r.instances))),
    )?;
    gauges(
        encoder,
        "berth_capacity_provider_instances_needed",
        "Container instances each capacity provider needs for its tasks (M)",
        rows.iter()
            .map(|(c, p, r, _)| (labels(c, p), i64::from(r.needed))),
    )?;
    gauges(
        encoder,
        "berth_capacity_provider_waiting_tasks",
        "Service tasks assigned to each capacity provider by a strategy that have no place yet",
        rows.iter()
            .map(|(c, p, r, _)| (labels(c, p), i64::from(r.waiting_tasks))),
    )?;
    gauges(
        encoder,
        "berth_capacity_provider_target_percent",
        "managedScaling.targetCapacity of each capacity provider whose managed scaling is ENABLED",
        rows.iter()
            .filter_map(|(c, p, _, t)| t.map(|t| (labels(c, p), i64::from(t)))),
    )
}

/// How a live service is doing: its PRIMARY deployment failed (the circuit breaker tripped),
/// it has reached its steady state (ECS's "has reached a steady state." and nothing moved
/// since), or it is on its way there.
fn service_health(s: &berth_model::service::Service) -> &'static str {
    match s.primary() {
        Some(d) if d.rollout_state == RolloutState::Failed => "failed",
        _ if s.steady => "steady",
        _ => "deploying",
    }
}

impl Collector for StateLevels {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.node.state();
        let clusters: Vec<_> = state.clusters_after(None).collect();
        let all = TaskFilter::default();
        let mut tasks = Vec::new();
        let mut instances = Vec::new();
        let mut services = Vec::new();
        let mut queued = Vec::new();
        let queue_lengths = state.queue_lengths();
        for cluster in &clusters {
            let name: &str = &cluster.name;
            let waiting = queue_lengths
                .iter()
                .find(|(c, _)| **c == *name)
                .map_or(0, |(_, n)| *n as i64);
            queued.push(([("cluster", name)], waiting));
            let mut by_status = [0i64; TaskStatus::ALL.len()];
            for task in state.tasks_after(name, &all, None) {
                by_status[task.last_status as usize] += 1;
            }
            for status in TaskStatus::ALL {
                tasks.push((
                    [("cluster", name), ("status", status.as_str())],
                    by_status[*status as usize],
                ));
            }
            let mut by_instance = [[0i64; 2]; InstanceStatus::ALL.len()];
            for i in state.instances_after(name, None) {
                by_instance[i.status as usize][usize::from(i.agent_connected)] += 1;
            }
            for status in InstanceStatus::ALL {
                for (connected, agent) in [(1, "connected"), (0, "disconnected")] {
                    instances.push((
                        [
                            ("cluster", name),
                            ("status", status.as_str()),
                            ("agent", agent),
                        ],
                        by_instance[*status as usize][connected],
                    ));
                }
            }
            let mut by_health = [("steady", 0i64), ("deploying", 0), ("failed", 0)];
            for s in state.services_after(name, None) {
                if s.status == berth_model::service::ServiceStatus::Inactive {
                    continue;
                }
                let health = service_health(s);
                if let Some(slot) = by_health.iter_mut().find(|(h, _)| *h == health) {
                    slot.1 += 1;
                }
            }
            for (health, count) in by_health {
                services.push(([("cluster", name), ("health", health)], count));
            }
        }
        gauge(
            &mut encoder,
            "berth_clusters",
            "Clusters in the state (ACTIVE or not)",
            clusters.len() as i64,
        )?;
        gauges(
            &mut encoder,
            "berth_tasks",
            "Tasks the state holds, by cluster and last status (STOPPED ones until they expire)",
            tasks,
        )?;
        gauges(
            &mut encoder,
            "berth_container_instances",
            "Container instances, by cluster, status and whether their agent is connected",
            instances,
        )?;
        gauges(
            &mut encoder,
            "berth_services",
            "Services that are not INACTIVE, by cluster and health: steady (reached its steady \
             state), deploying (on its way), failed (its newest deployment failed)",
            services,
        )?;
        gauges(
            &mut encoder,
            "berth_queued_tasks",
            "RunTask tasks waiting for capacity (PROVISIONING, queued with berth:queue-timeout), \
             by cluster",
            queued,
        )?;
        capacity_providers(&mut encoder, &state, &clusters)?;
        let mut frameworks = [0i64; 2];
        for f in state.frameworks() {
            frameworks[usize::from(f.connected)] += 1;
        }
        gauges(
            &mut encoder,
            "berth_mesos_frameworks",
            "Mesos frameworks subscribed, by whether their event stream is connected",
            [
                ([("state", "connected")], frameworks[1]),
                ([("state", "disconnected")], frameworks[0]),
            ],
        )?;
        gauge(
            &mut encoder,
            "berth_mesos_offers_outstanding",
            "Mesos offers made and not yet accepted, declined or rescinded",
            state.offers().count() as i64,
        )?;
        gauge(
            &mut encoder,
            "berth_state_index",
            "The log index of the state this server serves",
            state.index() as i64,
        )
    }
}
