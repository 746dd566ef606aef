//! The leader's Mesos loop: the thin shell around the allocator and the status decision.
//!
//! ```text
//!  wait: state change (wait_beyond) │ hub wake-up (REVIVE, closed stream) │ next timer │ 1 s
//!    ─► Pacer: at once, or at the end of the gap since the last pass
//!    ─► begin: change log up to the state decided on ─► Scope (berth_mesos::pass): agents,
//!              tasks, offers ─► refresh the View's agents named
//!    ─► pass: orphaned and expired frameworks   ─► FrameworkDisconnected, RemoveFramework
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
//!
//! Every pass reads the log up to the state it decides on before it decides, whatever started
//! it: the allocator offers every agent the view holds, so a view behind the log makes offers
//! the commit refuses (the instance's room was taken since), and a retry on the same view is
//! refused the same way, again and again (see [`Leading::begin`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::agent::host_of;
use berth_mesos::allocator::{
    Amount, Candidate, DEFAULT_REFUSE, Filters, allocate, offer_timed_out,
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

    /// The loop woke up with no pass waiting: `asked` by the hub (a REVIVE, a closed stream),
    /// for a timer that is due at `now`, for changes, or after [`IDLE`] without any, which is
    /// a look at everything.
    fn woke(&mut self, state: &State, asked: bool, now: i64) {
        if asked || self.next.is_some_and(|at| at <= now) {
            self.scope.ask();
        } else if state.index() == self.seen {
            self.scope.add(Change::Everything);
        }
        self.read_changes(state);
    }

    /// Starts a pass that decides on `state`: reads the log up to it, refreshes the agents
    /// the scope names (all of them in a pass over everything) and hands the scope over.
    ///
    /// Whatever the pass was started for (a change, a REVIVE, a timer, the retry after a
    /// write was refused), the log is read first. The allocator offers every agent of the
    /// view, so an agent the log changed and the view was not told about is offered as it
    /// was: its offer is refused at commit, and without the read the retry would be decided
    /// on the same view and refused again, for as long as nothing else read the log.
    fn begin(&mut self, state: &State) -> Scope<InstanceId, TaskId, OfferId> {
        self.read_changes(state);
        let scope = std::mem::take(&mut self.scope);
        if scope.everything {
            self.view.rebuild(state);
        } else {
            for agent in &scope.agents {
                self.view.refresh(state, *agent);
            }
        }
        scope
    }

    /// The pass's offers were written: their agents are held, and the log entries that
    /// show them are no reason for another pass.
    fn made(&mut self, offers: &[Arc<Offer>]) {
        for o in offers {
            self.view.offered(o);
            self.own.insert(o.id);
        }
    }

    /// A pass ended: the timers it found, and, if a write failed, a retry (after
    /// [`BACKOFF`]).
    fn ended(&mut self, pass: &Pass) {
        self.next = pass.next;
        if pass.failed {
            self.scope.ask();
        }
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
            l.woke(&app.node.state(), woken, Millis::now().0);
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
        }
        l.pacer.started(Millis::now().0);
        let scope = l.begin(&app.node.state());
        let pass = pass(&app, l, scope).await;
        l.ended(&pass);
        if pass.failed {
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF) => {}
                _ = app.stopping() => return,
            }
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

/// The offers the allocator makes over `view` to the `connected` frameworks (those the state
/// also calls connected) that are not `suppressed`, as of `now`; offer ids from `seed`.
fn offers_to_make(
    state: &State,
    view: &View,
    connected: &HashSet<String>,
    suppressed: &HashSet<String>,
    filters: &Filters<InstanceId>,
    now: Millis,
    seed: u64,
) -> Vec<Offer> {
    let frameworks: Vec<Arc<Framework>> = connected
        .iter()
        .filter_map(|id| state.framework(id).cloned())
        .filter(|f| f.connected)
        .collect();
    if frameworks.iter().all(|f| suppressed.contains(&f.id)) {
        return Vec::new();
    }
    let held = allocated(state, &frameworks);
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
    allocate(view.agents(&pools), &candidates, filters, now.0, seed)
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
        .collect()
}

/// Asks the allocator for offers over the view, writes them and sends them.
async fn make_offers(app: &App, pass: &mut Pass, l: &mut Leading, connected: &HashSet<String>) {
    let now = Millis::now();
    let state = app.node.state();
    let offers = {
        let mut hub = app.mesos.lock();
        hub.filters.expire(now.0);
        if let Some(end) = hub.filters.next_end(now.0) {
            pass.due(end);
        }
        offers_to_make(
            &state,
            &l.view,
            connected,
            &hub.suppressed,
            &hub.filters,
            now,
            rand::random(),
        )
    };
    if offers.is_empty() {
        return;
    }
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
    l.made(&made);
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

#[cfg(test)]
mod tests {
    //! The loop's bookkeeping between passes, driven as [`run`] drives it, on a state built
    //! by applying commands, with the commits of other writers (RunTask) placed between a
    //! pass's decision and its own commit.

    use std::collections::BTreeMap;

    use berth_api::types as api;
    use berth_model::command::{
        CreateCluster, PlaceTasks, RegisterContainerInstance, RegisterTaskDefinition, RemoveOffers,
        Stamped, SubscribeFramework,
    };
    use berth_model::entity::{Requirements, Resources};
    use berth_scheduler::{TaskTemplate, place};
    use berth_state::Config;

    use super::*;

    const CLUSTER: &str = "default";
    const FRAMEWORK: &str = "sharing";
    /// Each instance's CPU units, and what one RunTask task takes of them.
    const CPU: i64 = 1024;
    const TASK_CPU: i64 = 256;

    /// A state, the clock its next command is applied at, and the hub's soft state that a
    /// framework's calls change (its refuse filters).
    struct World {
        state: State,
        now: Millis,
        filters: Filters<InstanceId>,
    }

    impl World {
        /// Cluster `default` with `instances` agents (1,024 CPU units, 2,048 MiB each) and
        /// the task definition `ecs-side:1` (256 units, 32 MiB) that RunTask launches.
        fn new(instances: u128) -> Self {
            let mut w = Self {
                state: State::new(Config::default()),
                now: Millis(1_700_000_000_000),
                filters: Filters::default(),
            };
            w.ok(CreateCluster {
                name: CLUSTER.into(),
                settings: Vec::new(),
                configuration: None,
                service_connect_defaults: None,
                tags: Vec::new(),
                capacity_providers: Vec::new(),
                default_strategy: Vec::new(),
            });
            w.ok(RegisterTaskDefinition {
                family: "ecs-side".into(),
                spec: Arc::new(api::TaskDefinition {
                    container_definitions: Some(vec![api::ContainerDefinition {
                        name: Some("main".into()),
                        image: Some("berth/none".into()),
                        cpu: Some(TASK_CPU as i32),
                        memory: Some(32),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                requirements: Requirements {
                    cpu: TASK_CPU,
                    memory: 32,
                    network_mode: None,
                    ports: Vec::new(),
                },
                tags: Vec::new(),
            });
            for id in 1..=instances {
                w.ok(RegisterContainerInstance {
                    cluster: CLUSTER.into(),
                    id: InstanceId(id),
                    reregister: false,
                    ec2_instance_id: None,
                    resources: Resources {
                        cpu: CPU,
                        memory: 2048,
                        ports: Vec::new(),
                        udp_ports: Vec::new(),
                        other: Vec::new(),
                    },
                    attributes: BTreeMap::new(),
                    version_info: None,
                    tags: Vec::new(),
                    agent_endpoint: None,
                    agent_certificate: None,
                });
            }
            w
        }

        /// Commits `command` as the next log entry, a millisecond after the previous one.
        fn ok<C: TypedCommand>(&mut self, command: C) -> C::Output {
            self.now = Millis(self.now.0 + 1);
            let index = self.state.index() + 1;
            let stamped = Stamped {
                at: self.now,
                command: command.into(),
                by: None,
            };
            let outcome = self.state.apply(index, &stamped).expect("applied");
            C::Output::try_from(outcome).expect("the command's own output")
        }

        /// The framework subscribes (its stream is open on this node before it commits).
        fn subscribe(&mut self) {
            self.ok(SubscribeFramework {
                framework: Arc::new(Framework {
                    id: FRAMEWORK.into(),
                    cluster: CLUSTER.into(),
                    name: FRAMEWORK.into(),
                    user: "root".into(),
                    roles: vec!["*".into()],
                    hostname: None,
                    principal: None,
                    webui_url: None,
                    capabilities: Vec::new(),
                    checkpoint: false,
                    failover_timeout: 60.0,
                    connected: true,
                    disconnected_at: None,
                    registered_at: self.now,
                    owner: None,
                    version: 0,
                }),
            });
        }

        /// RunTask launches one `ecs-side` task where the planner places it, as the ECS
        /// endpoint does (plan on a snapshot, commit PlaceTasks); the instance it took.
        fn run_task(&mut self) -> InstanceId {
            let definition = self.state.task_definition("ecs-side", 1).unwrap().clone();
            let template = TaskTemplate::plain(
                CLUSTER.into(),
                definition,
                "family:ecs-side".into(),
                None,
                Vec::new(),
                Vec::new(),
                self.now,
            );
            let plan = place(&self.state, &template.request(1, None, false), 7);
            let [placement] = &plan.placements[..] else {
                panic!("RunTask found no room: {plan:?}");
            };
            let instance = self.state.instance(placement.instance).unwrap();
            let task = template.task(TaskId(rand::random()), instance, placement);
            let placed = self.ok(PlaceTasks {
                cluster: CLUSTER.into(),
                tasks: vec![task],
                client_token: None,
                distinct_instance: false,
            });
            assert_eq!(placed.tasks.len(), 1, "{:?}", placed.rejected);
            placement.instance
        }

        /// What a pass of `l` decides to offer the subscribed framework, as of now.
        fn decide(&self, l: &Leading) -> Vec<Offer> {
            offers_to_make(
                &self.state,
                &l.view,
                &HashSet::from([FRAMEWORK.to_owned()]),
                &HashSet::new(),
                &self.filters,
                self.now,
                rand::random(),
            )
        }

        /// The framework declines `offers`, refusing their instances for an hour.
        fn decline(&mut self, offers: &[Arc<Offer>]) {
            for o in offers {
                self.filters
                    .refuse(FRAMEWORK, o.instance, self.now.0, Duration::from_secs(3600));
            }
            let ids = offers.iter().map(|o| o.id).collect();
            self.ok(RemoveOffers { ids });
        }
    }

    /// The room an offer holds, by instance.
    fn room(offers: &[Arc<Offer>]) -> BTreeMap<InstanceId, i64> {
        offers.iter().map(|o| (o.instance, o.hold.cpu)).collect()
    }

    /// The pymesos competition test's race, step by step: the framework's first pass is
    /// decided on the state its subscription committed in, and a RunTask commits before the
    /// pass's offer does, so the commit refuses it (the instance no longer has the room). The
    /// retry after the backoff must read the log: decided on the same view, it would offer
    /// the same room, be refused again, and the framework would never get an offer.
    #[test]
    fn a_framework_that_subscribes_while_run_task_fills_the_cluster_gets_an_offer_with_room() {
        let mut w = World::new(1);
        let mut l = Leading::new(w.state.index());
        // The loop starts leading: a pass over everything, with no framework yet.
        l.begin(&w.state);
        assert!(w.decide(&l).is_empty());
        l.ended(&Pass::default());

        w.subscribe();
        l.woke(&w.state, false, w.now.0);
        let scope = l.begin(&w.state);
        assert!(scope.everything, "a subscription is a pass over everything");
        let offers = w.decide(&l);
        let taken = w.run_task();
        let first = w.ok(MakeOffers { offers });
        assert!(
            first.made.is_empty() && first.rejected.len() == 1,
            "the offer decided before RunTask committed must be refused: {first:?}"
        );
        l.made(&first.made);
        l.ended(&Pass {
            next: None,
            failed: true,
        });

        // The retry, after the backoff.
        assert!(!l.scope.is_empty(), "a refused write is retried");
        l.begin(&w.state);
        let retry = w.ok(MakeOffers {
            offers: w.decide(&l),
        });
        assert!(retry.rejected.is_empty(), "refused again: {retry:?}");
        assert_eq!(room(&retry.made), BTreeMap::from([(taken, CPU - TASK_CPU)]));
    }

    /// A REVIVE names no agent: the pass it starts still offers every agent with room, those
    /// the log changed since the decline and those it did not.
    #[test]
    fn a_revived_framework_is_offered_every_agent_with_room_not_only_those_the_log_names() {
        let mut w = World::new(2);
        w.subscribe();
        let mut l = Leading::new(w.state.index());
        l.begin(&w.state);
        let first = w.ok(MakeOffers {
            offers: w.decide(&l),
        });
        l.made(&first.made);
        l.ended(&Pass::default());
        assert_eq!(
            room(&first.made),
            BTreeMap::from([(InstanceId(1), CPU), (InstanceId(2), CPU)])
        );

        // Both declined for an hour: the pass that reads the decline offers nothing.
        w.decline(&first.made);
        l.woke(&w.state, false, w.now.0);
        let scope = l.begin(&w.state);
        assert_eq!(scope.agents, BTreeSet::from([InstanceId(1), InstanceId(2)]));
        assert!(w.decide(&l).is_empty(), "declined agents are filtered");
        l.ended(&Pass::default());

        // RunTask takes room on one of them: a pass that names that agent only.
        let taken = w.run_task();
        l.woke(&w.state, false, w.now.0);
        let scope = l.begin(&w.state);
        assert_eq!(scope.agents, BTreeSet::from([taken]));
        assert!(w.decide(&l).is_empty(), "still filtered");
        l.ended(&Pass::default());

        // REVIVE: the hub drops the framework's filters and wakes the loop.
        w.filters.clear(FRAMEWORK);
        l.woke(&w.state, true, w.now.0);
        let scope = l.begin(&w.state);
        assert!(scope.asked && scope.agents.is_empty() && !scope.everything);
        let revived = w.ok(MakeOffers {
            offers: w.decide(&l),
        });
        assert!(revived.rejected.is_empty(), "{revived:?}");
        let other = if taken == InstanceId(1) {
            InstanceId(2)
        } else {
            InstanceId(1)
        };
        assert_eq!(
            room(&revived.made),
            BTreeMap::from([(taken, CPU - TASK_CPU), (other, CPU)])
        );
    }
}
