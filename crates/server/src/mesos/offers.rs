//! The leader's Mesos loop: the thin shell around the allocator and the status decision.
//!
//! ```text
//!  wait: state change (wait_beyond) │ hub wake-up (REVIVE, closed stream) │ next timer │ 1 s
//!    ─► change log since the last pass ─► Scope (berth_mesos::pass): agents, tasks, offers
//!    ─► Pacer: at once, or at the end of the gap since the last pass
//!    ─► pass: refresh the View's agents named   ─► orphaned and expired frameworks
//!             next_update per task named or due ─► UPDATE events
//!             timed-out and vanished offers     ─► RemoveOffers, RESCIND events
//!             allocate over the View            ─► MakeOffers, OFFERS events
//! ```
//! A pass runs when something it reads changed, not on a fixed tick: a declined offer's
//! instance is offered again as soon as the decline commits, and a task's new state reaches
//! its framework as soon as the agent's report does. It looks only at what the change log
//! says changed (the [`View`] keeps every agent's free resources between passes), and the
//! offers it made are no reason for another. Under a burst, passes are [`GAP`] apart, each
//! taking everything that arrived meanwhile: a pass per commit would cost the commits
//! themselves more than the tick it replaced did. Timers cover what no change announces: a
//! refuse filter ending, an offer timing out (only with `--mesos-offer-timeout`), a status due
//! to be resent, a framework's failover timeout or a new leader's grace for re-subscriptions
//! running out. A pass whose write failed waits [`BACKOFF`] before the next, so a write that
//! keeps failing is retried at a steady pace, not as fast as the log commits.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::agent::host_of;
use berth_mesos::allocator::{
    Amount, Candidate, DEFAULT_REFUSE, OfferDecision, allocate, offer_timed_out,
};
use berth_mesos::pass::{Change, Pacer, Scope};
use berth_mesos::scheduler::Event;
use berth_mesos::updates::{Next, Sent, next_update};
use berth_mesos::v1::{self, FrameworkId, TaskState};
use berth_model::TypedCommand;
use berth_model::command::{
    FrameworkDisconnected, MakeOffers, OffersMade, RemoveFramework, RemoveOffers,
};
use berth_model::entity::Reservation;
use berth_model::mesos::{Framework, Offer};
use berth_model::{InstanceId, Millis, OfferId, TaskId};
use berth_state::{State, TaskFilter};

use super::view::View;
use super::{translate, uuid_bytes, write_or_warn};
use crate::App;

/// A status update not acknowledged is sent again after this long.
const RESEND_AFTER: Duration = Duration::from_secs(10);
/// The longest the loop waits with nothing changed and no timer due: then it makes a pass over
/// everything, which catches whatever no wake-up announced.
const IDLE: Duration = Duration::from_secs(1);
/// The shortest time between the starts of two passes. Work that arrives after a quiet gap
/// starts a pass at once; under a burst, one pass every gap takes everything that came.
const GAP: Duration = Duration::from_millis(15);
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

/// What the loop keeps while this node leads.
struct Leading {
    since: Instant,
    view: View,
    /// The log index the scope has been read up to.
    seen: u64,
    /// Offers the loop made that the log has not shown it yet.
    own: HashSet<OfferId>,
    pacer: Pacer,
    /// What the next pass looks at.
    scope: Scope<InstanceId, TaskId, OfferId>,
    /// The earliest timer the last pass left, in epoch ms.
    next: Option<i64>,
}

impl Leading {
    fn new(seen: u64) -> Self {
        Self {
            since: Instant::now(),
            view: View::default(),
            seen,
            own: HashSet::new(),
            pacer: Pacer::new(GAP),
            scope: Scope::everything(),
            next: None,
        }
    }

    /// Adds what the log says changed since the last read to the scope.
    fn read_changes(&mut self, state: &State) {
        match state.changes_since(self.seen) {
            Some(changes) => {
                for (_, key) in &changes {
                    if let Some(c) = self.view.change(state, key, &mut self.own) {
                        self.scope.add(c);
                    }
                }
            }
            None => {
                // The log no longer reaches back: the offers made before the gap will not
                // show up in it.
                self.own.clear();
                self.scope.add(Change::Everything);
            }
        }
        self.seen = state.index();
    }

    /// How long to wait for a change: until the earliest timer, at most [`IDLE`].
    fn wait(&self) -> Duration {
        self.next.map_or(IDLE, |at| {
            Duration::from_millis(u64::try_from(at - Millis::now().0).unwrap_or(0)).min(IDLE)
        })
    }
}

async fn run(app: Arc<App>) {
    let mut leading: Option<Leading> = None;
    loop {
        if !app.node.is_leader() {
            leading = None;
            tokio::select! {
                _ = tokio::time::sleep(FOLLOWER_POLL) => {}
                _ = app.stopping() => return,
            }
            continue;
        }
        let l = leading.get_or_insert_with(|| Leading::new(app.node.state().index()));
        if l.scope.is_empty() {
            let woken = tokio::select! {
                _ = app.node.wait_beyond(l.seen, l.wait()) => false,
                _ = app.mesos.woken() => true,
                _ = app.stopping() => return,
            };
            let state = app.node.state();
            let now = Millis::now().0;
            if woken || l.next.is_some_and(|at| at <= now) {
                l.scope.ask();
            } else if state.index() == l.seen {
                // Quiet for IDLE: a look at everything.
                l.scope.add(Change::Everything);
            }
            l.read_changes(&state);
            if l.scope.is_empty() {
                continue;
            }
        }
        // Under a burst, wait for the end of the gap: what commits meanwhile joins this pass.
        let now = Millis::now().0;
        let start = l.pacer.start_at(now);
        if start > now {
            let gap = Duration::from_millis(u64::try_from(start - now).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(gap) => {}
                _ = app.stopping() => return,
            }
            l.read_changes(&app.node.state());
        }
        l.pacer.started(Millis::now().0);
        let scope = std::mem::take(&mut l.scope);
        let pass = pass(&app, l, scope).await;
        l.next = pass.next;
        if pass.failed {
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF) => {}
                _ = app.stopping() => return,
            }
            l.scope.ask();
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

    /// Writes `command`; its output, or `None` (and the pass backs off) if it was not
    /// written or was refused.
    async fn write<C: TypedCommand>(&mut self, app: &App, command: C) -> Option<C::Output> {
        let out = write_or_warn(app, command).await;
        self.failed |= out.is_none();
        out
    }
}

async fn pass(app: &App, l: &mut Leading, scope: Scope<InstanceId, TaskId, OfferId>) -> Pass {
    let mut pass = Pass::default();
    {
        let state = app.node.state();
        if scope.everything {
            l.view.rebuild(&state);
        } else {
            for agent in &scope.agents {
                l.view.refresh(&state, *agent);
            }
        }
    }
    // Frameworks the state calls connected but that have no stream here (this server
    // restarted, leadership moved, or the hub closed a stream nobody read) had their failover
    // clock stopped: once they had time to re-subscribe, they are disconnected, and it runs.
    let grace = app.config.mesos_resubscribe_grace;
    match grace.checked_sub(l.since.elapsed()) {
        None | Some(Duration::ZERO) => orphan_frameworks(app, &mut pass).await,
        Some(left) => pass.due(Millis::now().0 + millis(left)),
    }
    expire_frameworks(app, &mut pass).await;
    let connected: HashSet<String> = app.mesos.connected().into_iter().collect();
    if connected.is_empty() {
        return pass;
    }
    send_updates(app, &mut pass, &scope, &connected);
    expire_offers(app, &mut pass, &scope).await;
    make_offers(app, &mut pass, l, &connected).await;
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
/// (declined, accepted, their instance drained or lost) that this node sent are rescinded.
async fn expire_offers(app: &App, pass: &mut Pass, scope: &Scope<InstanceId, TaskId, OfferId>) {
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
        let candidates: Vec<OfferId> = if scope.everything {
            hub.offered.keys().copied().collect()
        } else {
            scope.offers.iter().copied().collect()
        };
        candidates
            .into_iter()
            .filter(|id| state.offer(*id).is_none())
            .filter_map(|id| hub.offered.remove(&id).map(|f| (id, f)))
            .collect()
    };
    for (id, framework) in gone {
        app.mesos.send(
            &framework,
            &Event::rescind(v1::OfferId::new(id.to_string())),
        );
    }
}

/// What each of `frameworks` holds in its cluster: its live tasks and its outstanding offers
/// (Mesos counts offered resources as allocated).
fn allocated<'a>(state: &State, frameworks: &'a [Arc<Framework>]) -> HashMap<&'a str, Amount> {
    let mut held: HashMap<&str, Amount> = frameworks
        .iter()
        .map(|f| (f.id.as_str(), Amount::default()))
        .collect();
    let mut add = |framework: &str, cpu: i64, memory: i64| {
        if let Some(h) = held.get_mut(framework) {
            h.cpu += cpu;
            h.memory += memory;
        }
    };
    for o in state.offers() {
        add(&o.framework, o.hold.cpu, o.hold.memory);
    }
    for fw in frameworks {
        let filter = TaskFilter {
            started_by: Some(fw.id.clone()),
            ..Default::default()
        };
        for t in state
            .tasks_after(&fw.cluster, &filter, None)
            .filter(|t| t.is_live())
        {
            add(&fw.id, t.reservation.cpu, t.reservation.memory);
        }
    }
    held
}

/// Asks the allocator for offers over the view, writes them and sends them.
async fn make_offers(app: &App, pass: &mut Pass, l: &mut Leading, connected: &HashSet<String>) {
    let state = app.node.state();
    let now = Millis::now();
    let frameworks: Vec<Arc<Framework>> = connected
        .iter()
        .filter_map(|id| state.framework(id).cloned())
        .filter(|f| f.connected)
        .collect();
    let suppressed = app.mesos.lock().suppressed.clone();
    if frameworks.iter().all(|f| suppressed.contains(&f.id)) {
        return;
    }
    let held = allocated(&state, &frameworks);
    let candidates: Vec<Candidate> = frameworks
        .iter()
        .map(|f| Candidate {
            id: f.id.clone(),
            pool: f.cluster.to_string(),
            held: held.get(f.id.as_str()).copied().unwrap_or_default(),
            suppressed: suppressed.contains(&f.id),
        })
        .collect();
    let pools: HashSet<String> = frameworks.iter().map(|f| f.cluster.to_string()).collect();
    let decisions: Vec<OfferDecision<InstanceId>> = {
        let mut hub = app.mesos.lock();
        hub.filters.expire(now.0);
        if let Some(end) = hub.filters.next_end(now.0) {
            pass.due(end);
        }
        allocate(
            l.view.agents(&pools),
            &candidates,
            &hub.filters,
            now.0,
            rand::random(),
        )
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
            l.view.offered(o);
            l.own.insert(o.id);
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

/// Sends each connected framework the new state of its tasks that changed (of all its tasks,
/// in a pass over everything), and again what it has not acknowledged for [`RESEND_AFTER`].
fn send_updates(
    app: &App,
    pass: &mut Pass,
    scope: &Scope<InstanceId, TaskId, OfferId>,
    connected: &HashSet<String>,
) {
    let state = app.node.state();
    let now = Millis::now().0;
    let mut tasks: BTreeSet<TaskId> = if scope.everything {
        let mut all = BTreeSet::new();
        for fw in connected.iter().filter_map(|id| state.framework(id)) {
            let filter = TaskFilter {
                started_by: Some(fw.id.clone()),
                ..Default::default()
            };
            all.extend(state.tasks_after(&fw.cluster, &filter, None).map(|t| t.id));
        }
        all
    } else {
        scope.tasks.clone()
    };
    let mut out: Vec<(String, v1::TaskStatus)> = Vec::new();
    let mut hub = app.mesos.lock();
    for (id, sent) in &hub.sent {
        match sent.resend_at(RESEND_AFTER) {
            Some(at) if at <= now => {
                tasks.insert(*id);
            }
            Some(at) => pass.due(at),
            None => {}
        }
    }
    for t in tasks.iter().filter_map(|id| state.task(*id)) {
        let Some(framework) = t.started_by.as_deref().filter(|f| connected.contains(*f)) else {
            continue;
        };
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
                    out.push((framework.to_owned(), sent.status.clone()));
                }
            }
            Next::Send { running_first } => {
                if running_first {
                    let mut running =
                        translate::status(mesos, Some(t), TaskState::Running, None, None);
                    running.source = Some(v1::StatusSource::Agent);
                    // Acknowledgeable like any agent update; only the newest status is
                    // resent, so its acknowledgement is not waited for.
                    running.uuid = Some(uuid_bytes().into());
                    out.push((framework.to_owned(), running));
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
                out.push((framework.to_owned(), status));
            }
        }
        if let Some(at) = hub.sent.get(&t.id).and_then(|s| s.resend_at(RESEND_AFTER)) {
            pass.due(at);
        }
    }
    drop(hub);
    for (framework, status) in out {
        if let Ok(e) = Event::update(status) {
            app.mesos.send(&framework, &e);
        }
    }
}
