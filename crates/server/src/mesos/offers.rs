//! The leader's Mesos loop: the thin shell around the allocator and the status decision.
//!
//! ```text
//!  wait: state change (wait_beyond) │ hub wake-up (REVIVE, closed stream) │ next timer │ 1 s
//!    ─► snapshot + hub ─► orphaned and expired frameworks ─► FrameworkDisconnected / RemoveFramework
//!                       ─► next_update per task           ─► UPDATE events
//!                       ─► timed-out and vanished offers  ─► RemoveOffers, RESCIND events
//!                       ─► allocate                       ─► MakeOffers, OFFERS events
//! ```
//! A pass runs when something it reads changed, not on a fixed tick: a declined offer's
//! instance is offered again as soon as the decline commits, and a task's new state reaches
//! its framework as soon as the agent's report does. Timers cover what no change announces:
//! a refuse filter ending, an offer timing out (only with `--mesos-offer-timeout`), a status
//! due to be resent, a framework's failover timeout or a new leader's grace for
//! re-subscriptions running out. A pass whose write failed waits [`BACKOFF`] before the next,
//! so a write that keeps failing is retried at a steady pace, not as fast as the log commits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::agent::host_of;
use berth_mesos::allocator::{
    Agent, Amount, Candidate, DEFAULT_REFUSE, OfferDecision, allocate, offer_timed_out,
};
use berth_mesos::scheduler::Event;
use berth_mesos::updates::{Next, Sent, next_update};
use berth_mesos::v1::{self, FrameworkId, TaskState};
use berth_model::TypedCommand;
use berth_model::command::{
    FrameworkDisconnected, MakeOffers, OffersMade, RemoveFramework, RemoveOffers,
};
use berth_model::entity::{InstanceStatus, Name, Reservation};
use berth_model::mesos::{Framework, Offer};
use berth_model::{InstanceId, Millis, OfferId};
use berth_state::{State, TaskFilter};

use super::{translate, uuid_bytes, write_or_warn};
use crate::App;

/// A status update not acknowledged is sent again after this long.
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// The longest the loop waits with nothing changed and no timer due: a pass every second
/// catches whatever no wake-up announced.
const IDLE: Duration = Duration::from_secs(1);
/// The wait after a pass in which a write was refused or not written.
const BACKOFF: Duration = Duration::from_millis(250);
/// How often a follower checks whether it leads.
const FOLLOWER_POLL: Duration = Duration::from_millis(250);

/// The leader's Mesos loop: offers, offer timeouts and rescinds, status updates and resends,
/// failover expiry.
pub struct MesosLoop;

impl MesosLoop {
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(app))
    }
}

async fn run(app: Arc<App>) {
    let mut leading_since: Option<Instant> = None;
    loop {
        if !app.node.is_leader() {
            leading_since = None;
            tokio::select! {
                _ = tokio::time::sleep(FOLLOWER_POLL) => {}
                _ = app.stopping() => return,
            }
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
        // Changes committed from here on (the pass's own writes included) wake the next pass.
        let seen = app.node.state().index();
        let pass = pass(&app, since).await;
        let wait = if pass.failed {
            BACKOFF
        } else {
            pass.wait().min(IDLE)
        };
        tokio::select! {
            _ = app.node.wait_beyond(seen, wait), if !pass.failed => {}
            _ = tokio::time::sleep(wait), if pass.failed => {}
            _ = app.mesos.woken(), if !pass.failed => {}
            _ = app.stopping() => return,
        }
    }
}

/// What one pass leaves for the next: when it is due, and whether a write failed.
#[derive(Default)]
struct Pass {
    /// The earliest timer, in epoch ms.
    next: Option<i64>,
    failed: bool,
}

impl Pass {
    /// Something is due at `at` (epoch ms).
    fn due(&mut self, at: i64) {
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }

    /// How long until the earliest timer (at most [`IDLE`] when none is set).
    fn wait(&self) -> Duration {
        self.next.map_or(IDLE, |at| {
            Duration::from_millis(u64::try_from(at - Millis::now().0).unwrap_or(0))
        })
    }

    /// Writes `command`; its output, or `None` (and the pass backs off) if it was not
    /// written or was refused.
    async fn write<C: TypedCommand>(&mut self, app: &App, command: C) -> Option<C::Output> {
        let out = write_or_warn(app, command).await;
        self.failed |= out.is_none();
        out
    }
}

async fn pass(app: &App, leading_since: Instant) -> Pass {
    let mut pass = Pass::default();
    // Frameworks the state calls connected but that have no stream here (this server
    // restarted, leadership moved, or the hub closed a stream nobody read) had their failover
    // clock stopped: once they had time to re-subscribe, they are disconnected, and it runs.
    let grace = app.config.mesos_resubscribe_grace;
    match grace.checked_sub(leading_since.elapsed()) {
        None | Some(Duration::ZERO) => orphan_frameworks(app, &mut pass).await,
        Some(left) => pass.due(Millis::now().0 + millis(left)),
    }
    expire_frameworks(app, &mut pass).await;
    if app.mesos.connected().is_empty() {
        return pass;
    }
    send_updates(app, &mut pass);
    expire_offers(app, &mut pass).await;
    make_offers(app, &mut pass).await;
    pass
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Connected frameworks without a stream on this (leading) node are disconnected.
async fn orphan_frameworks(app: &App, pass: &mut Pass) {
    let state = app.node.state();
    let streams: HashSet<String> = app.mesos.connected().into_iter().collect();
    let orphans: Vec<String> = state
        .frameworks()
        .filter(|f| f.connected && !streams.contains(&f.id))
        .map(|f| f.id.clone())
        .collect();
    for id in orphans {
        pass.write(app, FrameworkDisconnected { id }).await;
    }
}

/// Disconnected frameworks past their failover timeout are removed, their tasks killed.
async fn expire_frameworks(app: &App, pass: &mut Pass) {
    let state = app.node.state();
    let now = Millis::now().0;
    let mut expired = Vec::new();
    for f in state.frameworks().filter(|f| !f.connected) {
        let Some(since) = f.disconnected_at else {
            continue;
        };
        let ends = since.0.saturating_add((f.failover_timeout * 1000.0) as i64);
        if now >= ends {
            expired.push(f.id.clone());
        } else {
            pass.due(ends);
        }
    }
    for id in expired {
        let remove = RemoveFramework {
            id,
            reason: "Framework failover timeout".into(),
        };
        pass.write(app, remove).await;
    }
}

/// Offers past the offer timeout (when one is set) are released; offers gone from the state
/// (their instance drained or lost) are rescinded.
async fn expire_offers(app: &App, pass: &mut Pass) {
    let state = app.node.state();
    let now = Millis::now().0;
    let timeout = app.config.mesos_offer_timeout;
    let mut old: Vec<Arc<Offer>> = Vec::new();
    if let Some(t) = timeout {
        for o in state.offers() {
            if offer_timed_out(o.created_at.0, now, timeout) {
                old.push(o.clone());
            } else {
                pass.due(o.created_at.0.saturating_add(millis(t)));
            }
        }
    }
    if !old.is_empty() {
        // One write for all of them, so a framework sitting on many offers does not hold up
        // the loop.
        {
            let mut hub = app.mesos.lock();
            for o in &old {
                hub.offered.remove(&o.id);
                hub.filters
                    .refuse(&o.framework, o.instance, now, DEFAULT_REFUSE);
            }
        }
        let ids = old.iter().map(|o| o.id).collect();
        pass.write(app, RemoveOffers { ids }).await;
        for o in &old {
            app.mesos.send(
                &o.framework,
                &Event::rescind(v1::OfferId::new(o.id.to_string())),
            );
        }
    }
    let gone: Vec<(OfferId, String)> = {
        let mut hub = app.mesos.lock();
        let gone: Vec<_> = hub
            .offered
            .iter()
            .filter(|(id, _)| state.offer(**id).is_none())
            .map(|(id, f)| (*id, f.clone()))
            .collect();
        for (id, _) in &gone {
            hub.offered.remove(id);
        }
        gone
    };
    for (id, framework) in gone {
        app.mesos.send(
            &framework,
            &Event::rescind(v1::OfferId::new(id.to_string())),
        );
    }
}

/// What `framework` holds in its cluster: its live tasks and its outstanding offers (Mesos
/// counts offered resources as allocated).
fn allocated(state: &State, fw: &Framework) -> Amount {
    let filter = TaskFilter {
        started_by: Some(fw.id.clone()),
        ..Default::default()
    };
    let tasks = state
        .tasks_after(&fw.cluster, &filter, None)
        .filter(|t| t.is_live())
        .map(|t| (t.reservation.cpu, t.reservation.memory));
    let offers = state
        .offers()
        .filter(|o| o.framework == fw.id)
        .map(|o| (o.hold.cpu, o.hold.memory));
    let (cpu, memory) = tasks
        .chain(offers)
        .fold((0, 0), |(c, m), (tc, tm)| (c + tc, m + tm));
    Amount::new(cpu, memory)
}

/// The instances of `cluster` that can take tasks, as the allocator sees them. Free ports
/// are only worked out for instances no offer holds (the others are not offered).
fn agents(state: &State, cluster: &Name) -> Vec<Agent<InstanceId>> {
    state
        .instances_after(cluster, None)
        .filter(|i| i.status == InstanceStatus::Active && i.agent_connected)
        .map(|i| {
            let offered = state.offers_on(i.id).next().is_some();
            let (cpu, memory, ports) = if offered {
                (0, 0, Vec::new())
            } else {
                translate::free(i, state.usage(i.id))
            };
            Agent {
                id: i.id,
                pool: cluster.to_string(),
                total: Amount::new(i.resources.cpu, i.resources.memory),
                free: Amount::new(cpu, memory),
                ports,
                offered,
            }
        })
        .collect()
}

/// Reads the snapshot, asks the allocator for offers, writes them and sends them.
async fn make_offers(app: &App, pass: &mut Pass) {
    let state = app.node.state();
    let now = Millis::now();
    let connected: Vec<Arc<Framework>> = app
        .mesos
        .connected()
        .iter()
        .filter_map(|id| state.framework(id).cloned())
        .filter(|f| f.connected)
        .collect();
    let suppressed = app.mesos.lock().suppressed.clone();
    if connected.iter().all(|f| suppressed.contains(&f.id)) {
        return;
    }
    let candidates: Vec<Candidate> = connected
        .iter()
        .map(|f| Candidate {
            id: f.id.clone(),
            pool: f.cluster.to_string(),
            held: allocated(&state, f),
            suppressed: suppressed.contains(&f.id),
        })
        .collect();
    let clusters: HashSet<&Name> = connected.iter().map(|f| &f.cluster).collect();
    let agents: Vec<Agent<InstanceId>> = clusters
        .into_iter()
        .flat_map(|c| agents(&state, c))
        .collect();
    let decisions: Vec<OfferDecision<InstanceId>> = {
        let mut hub = app.mesos.lock();
        hub.filters.expire(now.0);
        if let Some(end) = hub.filters.next_end(now.0) {
            pass.due(end);
        }
        allocate(&agents, &candidates, &hub.filters, now.0, rand::random())
    };
    if decisions.is_empty() {
        return;
    }
    let offers = decisions
        .into_iter()
        .filter_map(|d| {
            let cluster = state.framework(&d.framework)?.cluster.clone();
            Some(Offer {
                id: OfferId(d.id),
                framework: d.framework,
                cluster,
                instance: d.agent,
                hold: Reservation {
                    cpu: d.resources.cpu,
                    memory: d.resources.memory,
                    tcp: d.ports,
                    ..Default::default()
                },
                created_at: now,
                version: 0,
            })
        })
        .collect();
    let Some(OffersMade { made, rejected }) = pass.write(app, MakeOffers { offers }).await else {
        return;
    };
    if !rejected.is_empty() {
        // Decided on a snapshot something else changed since: decided again after a pause.
        tracing::debug!(rejected = rejected.len(), "Mesos: offers refused at commit");
        pass.failed = true;
    }
    let state = app.node.state();
    let mut by_framework: HashMap<String, Vec<v1::Offer>> = HashMap::new();
    {
        let mut hub = app.mesos.lock();
        for o in &made {
            hub.offered.insert(o.id, o.framework.clone());
        }
    }
    for o in made {
        let Some(instance) = state.instance(o.instance) else {
            continue;
        };
        by_framework
            .entry(o.framework.clone())
            .or_default()
            .push(v1::Offer {
                id: v1::OfferId::new(o.id.to_string()),
                framework_id: FrameworkId::new(o.framework.clone()),
                agent_id: translate::agent_id(o.instance),
                hostname: instance
                    .agent_endpoint
                    .as_deref()
                    .and_then(|url| url.split_once("://"))
                    .map_or("localhost", |(_, authority)| host_of(authority))
                    .to_owned(),
                url: None,
                resources: translate::offer_resources(o.hold.cpu, o.hold.memory, &o.hold.tcp),
                attributes: translate::attributes(instance),
                executor_ids: Vec::new(),
                unavailability: None,
                allocation_info: None,
            });
    }
    for (framework, offers) in by_framework {
        app.mesos.send(&framework, &Event::offers(offers));
    }
}

/// Sends each connected framework the new state of its tasks, and again what it has not
/// acknowledged for [`RESEND_AFTER`].
fn send_updates(app: &App, pass: &mut Pass) {
    let state = app.node.state();
    let now = Millis::now().0;
    for framework in app.mesos.connected() {
        let Some(fw) = state.framework(&framework) else {
            continue;
        };
        let filter = TaskFilter {
            started_by: Some(framework.clone()),
            ..Default::default()
        };
        let mut out = Vec::new();
        {
            let mut hub = app.mesos.lock();
            for t in state.tasks_after(&fw.cluster, &filter, None) {
                let Some(mesos) = translate::mesos_task_id(t) else {
                    continue;
                };
                let (s, reason, message) = translate::status_of(t);
                // A launched task is staging until its agent reports; Mesos agents never send
                // TASK_STAGING, and frameworks do not expect it.
                if s == TaskState::Staging {
                    continue;
                }
                let started = t.started_at.is_some();
                match next_update(s, started, hub.sent.get(&t.id), now, RESEND_AFTER) {
                    Next::Nothing => {}
                    Next::Resend => {
                        if let Some(sent) = hub.sent.get_mut(&t.id) {
                            sent.at = now;
                            out.push(sent.status.clone());
                        }
                    }
                    Next::Send { running_first } => {
                        if running_first {
                            let mut running =
                                translate::status(mesos, Some(t), TaskState::Running, None, None);
                            running.source = Some(v1::StatusSource::Agent);
                            // Acknowledgeable like any agent update; only the newest status
                            // is resent, so its acknowledgement is not waited for.
                            running.uuid = Some(uuid_bytes().into());
                            out.push(running);
                        }
                        let mut status = translate::status(mesos, Some(t), s, reason, message);
                        status.source = Some(v1::StatusSource::Agent);
                        let uuid = uuid_bytes();
                        status.uuid = Some(uuid.clone().into());
                        hub.sent.insert(
                            t.id,
                            Sent {
                                state: s,
                                uuid,
                                status: status.clone(),
                                at: now,
                                acked: false,
                            },
                        );
                        out.push(status);
                    }
                }
                if let Some(sent) = hub.sent.get(&t.id).filter(|s| !s.acked) {
                    pass.due(sent.at.saturating_add(millis(RESEND_AFTER)));
                }
            }
        }
        for status in out {
            if let Ok(e) = Event::update(status) {
                app.mesos.send(&framework, &e);
            }
        }
    }
}
