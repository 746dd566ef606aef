//! berth's control-plane server.
//!
//! ```text
//!                              ┌ auth: SigV4 (or Mesos Basic) ─► Principal ┐
//!  POST /                      │ ECS API (AWS JSON 1.1)                     ─┐
//!  GET  /v1/history/{arn}      │ native API                                  ├─► App ─► Node ─► State
//!  POST /v1/credentials ...    │ credentials, join tokens                    │     (Raft)
//!  POST /v1/raft/*             └ Raft RPCs between servers (peer key only)  ─┘
//! ```
//! [`router`] builds the whole HTTP surface from an [`App`], every route behind the
//! authentication layer ([`auth`]), so tests can drive it without a socket; [`serve`] runs it
//! on a listener (TLS, timeouts); [`Housekeeping`] runs the leader's periodic work
//! (forgetting old STOPPED tasks), [`ServiceController`] keeps services at their desired
//! state, [`QueueController`] places RunTask's queued tasks as capacity frees and
//! [`ScheduleRunner`] runs schedules' tasks when they are due (EventBridge Scheduler's API).

pub mod agents;
pub mod auth;
pub mod background;
pub mod bootstrap;
mod controller;
pub mod credentials;
pub mod discovery;
pub mod ecs;
mod mesos;
pub mod metrics;
mod native;
mod operator;
mod pagination;
mod queue;
mod schedules;
pub mod serve;
pub mod tls;
pub mod ui;

pub use controller::ServiceController;
pub use mesos::MesosLoop;
pub use queue::QueueController;
pub use schedules::runner::ScheduleRunner;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_model::Millis;
use berth_model::command::Expire;
use berth_raft::Node;

/// Server settings that are not Raft's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The account id in every ARN.
    pub account_id: String,
    /// How long STOPPED tasks stay visible (ECS keeps them about an hour).
    pub stopped_task_retention: Duration,
    /// How long deregistered (INACTIVE) container instances stay visible.
    pub inactive_instance_retention: Duration,
    /// How often the leader forgets what has expired.
    pub expire_interval: Duration,
    /// An agent not heard from for this long is marked `agentConnected: false`.
    pub heartbeat_timeout: Duration,
    /// A disconnected agent's tasks are marked STOPPED once it has been silent this much
    /// longer, so that schedulers can replace them.
    pub agent_lost_after: Duration,
    /// How often the leader checks heartbeats.
    pub heartbeat_check_interval: Duration,
    /// How often the service controller reconciles every service even if nothing changed.
    pub service_resync_interval: Duration,
    /// The cluster Mesos frameworks schedule on.
    pub mesos_cluster: String,
    /// How long an unanswered Mesos offer is held before it is rescinded; `None` (Mesos's
    /// default) holds it until the framework answers or the instance goes away.
    pub mesos_offer_timeout: Option<Duration>,
    /// How long a new leader waits for frameworks to re-subscribe before it treats those
    /// without a stream as disconnected.
    pub mesos_resubscribe_grace: Duration,
    /// Serve every ECS Describe/List linearizably (a read barrier first), not only those
    /// that ask with the `x-berth-read-consistency: linearizable` header.
    pub linearizable_reads: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            account_id: "000000000000".into(),
            stopped_task_retention: Duration::from_secs(3600),
            inactive_instance_retention: Duration::from_secs(3600),
            expire_interval: Duration::from_secs(60),
            heartbeat_timeout: Duration::from_secs(30),
            agent_lost_after: Duration::from_secs(60),
            heartbeat_check_interval: Duration::from_secs(1),
            service_resync_interval: Duration::from_secs(30),
            mesos_cluster: ecs::DEFAULT_CLUSTER.to_owned(),
            mesos_offer_timeout: None,
            mesos_resubscribe_grace: Duration::from_secs(10),
            linearizable_reads: false,
        }
    }
}

/// Everything a request handler needs.
pub struct App {
    pub node: Arc<Node>,
    pub config: ServerConfig,
    /// The seal key, the peers' key, and credential secrets already unsealed.
    pub keyring: auth::Keyring,
    /// This server's TLS, if it speaks TLS (its CA goes into join tokens).
    pub tls: Option<tls::Tls>,
    /// True once the bootstrap admin's credential file is written: until then only Raft
    /// RPCs are answered.
    bootstrapped: tokio::sync::watch::Sender<bool>,
    pub heartbeats: agents::Heartbeats,
    /// The Mesos scheduler API's connections on this node.
    pub mesos: mesos::Hub,
    /// What `/metrics` reports.
    pub metrics: metrics::Metrics,
    /// The service discovery feed agents follow.
    pub discovery: discovery::Publisher,
    /// Turns true when the server starts shutting down: long-polls answer at once, so that a
    /// graceful shutdown does not wait for them.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl App {
    pub fn new(
        node: Arc<Node>,
        config: ServerConfig,
        keyring: auth::Keyring,
        tls: Option<tls::Tls>,
    ) -> Arc<Self> {
        let metrics = metrics::Metrics::new(&node);
        Arc::new(Self {
            node,
            config,
            keyring,
            tls,
            bootstrapped: tokio::sync::watch::Sender::new(false),
            heartbeats: agents::Heartbeats::default(),
            mesos: mesos::Hub::default(),
            metrics,
            discovery: discovery::Publisher::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Opens the API: the admin credential is on disk.
    pub fn set_bootstrapped(&self) {
        self.bootstrapped.send_replace(true);
    }

    /// Waits up to `timeout` for [`App::set_bootstrapped`]; whether it happened.
    pub async fn wait_bootstrapped(&self, timeout: Duration) -> bool {
        let mut rx = self.bootstrapped.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|b| *b)).await,
            Ok(Ok(_))
        )
    }

    /// Ends every long-poll in progress and refuses to start new ones.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Turns true when [`App::begin_shutdown`] is called.
    pub(crate) fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Resolves once [`App::begin_shutdown`] has been called.
    pub async fn stopping(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The whole HTTP surface of a server, every route behind the authentication layer.
pub fn router(app: Arc<App>) -> Router {
    ecs::router()
        .merge(native::router())
        .merge(operator::router())
        .merge(agents::router())
        .merge(credentials::router())
        .merge(mesos::router())
        .merge(metrics::router())
        .merge(schedules::router())
        .merge(discovery::router())
        .merge(ui::router())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ))
        // Bodies are read, within limits, by the authentication layer.
        .layer(axum::extract::DefaultBodyLimit::disable())
        // Outermost, so that refused requests are counted too.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .with_state(app)
}

/// The leader's periodic work.
pub struct Housekeeping;

impl Housekeeping {
    /// Spawns the loop that, on the leader, forgets STOPPED tasks and INACTIVE instances past
    /// their retention.
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.config.expire_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !app.node.is_leader() {
                    continue;
                }
                let now = Millis::now();
                let command = Expire {
                    stopped_before: now
                        .saturating_sub_ms(app.config.stopped_task_retention.as_millis() as i64),
                    inactive_before: now.saturating_sub_ms(
                        app.config.inactive_instance_retention.as_millis() as i64,
                    ),
                };
                if let Err(e) = app.node.write(command).await {
                    tracing::warn!(error = %e, "expiring old tasks failed");
                }
            }
        })
    }
}
