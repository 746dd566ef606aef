//! The service controller: the thin shell that runs the pure service reconciler on the leader.
//!
//! ```text
//!  watch (wait_beyond) ─► changes since last look ─► dirty services ─┐
//!  timers the last decisions asked for (grace, backoff, retries) ─────┤
//!  a full pass every `resync` (belt and braces) ──────────────────────┤
//!                                                                     ▼
//!         one snapshot ─► reconcile(snapshot, service, now, seed) per dirty service
//!                     ─► by priority, highest first, commit each decision:
//!                        StopTask… ─► PlaceTasks ─► PreemptAndPlace… ─► PutService
//! ```
//! A change to a task marks its service dirty (by its `service:<name>` group), a change to an
//! instance marks every service of its cluster (daemons follow instances, draining moves
//! tasks), a change to a service marks it. Decisions for different services of one priority
//! are committed concurrently, so the Raft queue batches them into few log entries; priorities
//! commit one after another, highest first (`commit_bands`), since every decision of a pass
//! was planned on the same snapshot and the first to commit gets the room. A decision's placements
//! are re-checked at commit like any scheduler's; what is rejected is planned again on the
//! next pass, which the commit's own change triggers. A service write decided on a stale
//! version is refused (the API changed the service meanwhile) and simply re-decided.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_model::Millis;
use berth_model::command::{Placed, Preempted};
use berth_model::service::service_of_group;
use berth_raft::Written;
use berth_scheduler::service::{Decision, Settings, commit_bands, reconcile};
use berth_state::{EntityKey, State};
use futures::future::join_all;

use crate::App;
use crate::metrics::{Preemption, Preemptor};

type Key = (Arc<str>, Arc<str>);

/// Spawns the controller loop; it acts only while this node is the leader.
pub struct ServiceController;

impl ServiceController {
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { run(app).await })
    }
}

/// Every non-INACTIVE service.
fn all_services(state: &State) -> impl Iterator<Item = Key> + '_ {
    state
        .live_services()
        .map(|s| (s.cluster.clone(), s.name.clone()))
}

/// The services a change may concern.
fn touched(state: &State, key: &EntityKey, dirty: &mut HashSet<Key>) {
    match key {
        EntityKey::Service(c, n) => {
            dirty.insert((c.clone(), n.clone()));
        }
        EntityKey::Task(id) => {
            if let Some(t) = state.task(*id)
                && let Some(name) = service_of_group(&t.group)
            {
                dirty.insert((t.cluster.clone(), name.into()));
            }
        }
        EntityKey::Instance(id) => match state.instance(*id) {
            Some(i) => dirty.extend(
                state
                    .live_services()
                    .filter(|s| s.cluster == i.cluster)
                    .map(|s| (s.cluster.clone(), s.name.clone())),
            ),
            None => dirty.extend(all_services(state)),
        },
        // A released offer frees room; a service that was short of it finds it at the retry
        // its unplaced decision asked for.
        EntityKey::Cluster(_)
        | EntityKey::TaskDefinition(..)
        | EntityKey::Framework(_)
        | EntityKey::Offer(_)
        | EntityKey::Credential(_) => {}
    }
}

async fn run(app: Arc<App>) {
    let settings = Settings::default();
    let resync = app.config.service_resync_interval;
    let mut seen = 0u64;
    let mut dirty: HashSet<Key> = HashSet::new();
    let mut timers: BTreeMap<Key, Millis> = BTreeMap::new();
    let mut next_resync = tokio::time::Instant::now();
    loop {
        if !app.node.is_leader() {
            // A new leader starts from a full pass.
            dirty.clear();
            timers.clear();
            next_resync = tokio::time::Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = app.stopping() => return,
            }
            continue;
        }
        let now = Millis::now();
        let until_timer = timers
            .values()
            .min()
            .map(|at| Duration::from_millis(at.0.saturating_sub(now.0).max(0) as u64))
            .unwrap_or(resync);
        let wait = until_timer
            .min(next_resync.saturating_duration_since(tokio::time::Instant::now()))
            .min(Duration::from_secs(1));
        let state = tokio::select! {
            s = app.node.wait_beyond(seen, wait) => s,
            _ = app.stopping() => return,
        };
        if state.index() > seen {
            match state.changes_since(seen) {
                Some(changes) => {
                    for (_, key) in &changes {
                        touched(&state, key, &mut dirty);
                    }
                }
                None => dirty.extend(all_services(&state)),
            }
            seen = state.index();
        }
        let now = Millis::now();
        let due: Vec<Key> = timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            timers.remove(&k);
            dirty.insert(k);
        }
        if tokio::time::Instant::now() >= next_resync {
            dirty.extend(all_services(&state));
            next_resync = tokio::time::Instant::now() + resync;
        }
        if dirty.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let considered = dirty.len();
        let mut decisions = Vec::new();
        for (key, decision) in decide_all(&state, dirty.drain().collect(), now, &settings).await {
            // Counted for every decision: one that found no set usually has nothing to do.
            if let Some(d) = &decision {
                app.metrics.preemption(
                    Preemptor::Service,
                    Preemption::NoSet {
                        searches: d.preemption_misses,
                    },
                );
            }
            match decision.as_ref().and_then(|d| d.wake_at) {
                Some(at) => timers.insert(key, at),
                None => timers.remove(&key),
            };
            if let Some(d) = decision.filter(|d| !d.is_empty()) {
                decisions.push(d);
            }
        }
        let decided = started.elapsed();
        let acting = decisions.len();
        // Higher-priority services' decisions commit first, a band per priority; decisions
        // whose placements were refused at commit are decided again next pass.
        for band in commit_bands(&state, decisions) {
            for key in join_all(band.into_iter().map(|d| commit(&app, d)))
                .await
                .into_iter()
                .flatten()
            {
                dirty.insert(key);
            }
        }
        tracing::debug!(
            index = state.index(),
            considered,
            acting,
            decide_ms = decided.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "service controller pass"
        );
    }
}

/// Reconciles `keys` on one snapshot, on blocking threads (one share per core): planning a
/// hundred tasks over a thousand instances is CPU work that must not stall the async runtime
/// serving the API and the agents' polls. `None` for services that no longer exist.
async fn decide_all(
    state: &Arc<State>,
    keys: Vec<Key>,
    now: Millis,
    settings: &Settings,
) -> Vec<(Key, Option<Decision>)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, keys.len().max(1));
    let mut shares: Vec<Vec<(Key, u64)>> = vec![Vec::new(); threads];
    for (i, key) in keys.into_iter().enumerate() {
        shares[i % threads].push((key, rand::random()));
    }
    let work = shares.into_iter().map(|share| {
        let state = state.clone();
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || {
            share
                .into_iter()
                .map(|(key, seed)| {
                    let decision = state
                        .service(&key.0, &key.1)
                        .map(|s| reconcile(&state, s, now, seed, &settings));
                    (key, decision)
                })
                .collect::<Vec<_>>()
        })
    });
    let mut out = Vec::new();
    for result in join_all(work).await {
        match result {
            Ok(decided) => out.extend(decided),
            Err(e) => tracing::error!(error = %e, "a service reconcile panicked"),
        }
    }
    out
}

/// Commits one decision: stops, then placements, then the service's new value (with the
/// "has started" event naming the tasks that were really placed). Returns the service when
/// some of its placements were refused at commit, to be decided again on a fresher snapshot.
async fn commit(app: &App, decision: Decision) -> Option<Key> {
    let key = (
        decision.current.cluster.clone(),
        decision.current.name.clone(),
    );
    let mut retry = None;
    let service = format!("{}/{}", decision.current.cluster, decision.current.name);
    let stops = join_all(
        decision
            .stop_commands()
            .into_iter()
            .map(|c| app.node.write(c)),
    )
    .await;
    for r in stops {
        match r {
            Ok(w) => {
                if let Err(e) = w.result {
                    tracing::debug!(%service, error = %e, "a service task could not be stopped");
                }
            }
            Err(e) => {
                tracing::warn!(%service, error = %e, "stopping a service task failed");
                return Some(key);
            }
        }
    }
    let mut placed = Vec::new();
    if let Some(command) = decision.place_command() {
        match app.node.write(command).await {
            Ok(w) => match w.result {
                Ok(Placed { tasks, rejected }) => {
                    placed = tasks.iter().map(|t| t.id).collect();
                    if !rejected.is_empty() {
                        tracing::debug!(%service, rejected = rejected.len(), "placements rejected at commit; re-planning");
                        retry = Some(key.clone());
                    }
                }
                Err(e) => tracing::debug!(%service, error = %e, "placing service tasks refused"),
            },
            Err(e) => {
                tracing::warn!(%service, error = %e, "placing service tasks failed");
                return Some(key);
            }
        }
    }
    // Placements that displace lower-priority tasks, one transaction each; a conflict (a
    // victim moved on, the room went elsewhere) is decided again on a fresher snapshot.
    for command in decision.preempt.iter().cloned() {
        match app.node.write(command).await {
            Ok(w) => match w.result {
                Ok(Preempted { task, evicted }) => {
                    tracing::info!(%service, task = %task.id, evicted = evicted.len(), "placed by preemption");
                    app.metrics.preemption(
                        Preemptor::Service,
                        Preemption::Committed {
                            evicted: evicted.len(),
                        },
                    );
                    placed.push(task.id);
                }
                Err(e) => {
                    tracing::debug!(%service, error = %e, "preemption refused at commit; deciding again");
                    app.metrics
                        .preemption(Preemptor::Service, Preemption::Refused);
                    retry = Some(key.clone());
                }
            },
            Err(e) => {
                tracing::warn!(%service, error = %e, "preemption failed");
                retry = Some(key.clone());
            }
        }
    }
    if let Some(command) = decision.service_command(&placed, Millis::now(), rand::random()) {
        match app.node.write(command).await {
            Ok(Written { result: Err(e), .. }) => {
                tracing::debug!(%service, error = %e, "service update refused; deciding again");
                retry = Some(key);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%service, error = %e, "updating the service failed");
                retry = Some(key);
            }
        }
    }
    retry
}
