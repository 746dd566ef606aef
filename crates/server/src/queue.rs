//! The queue controller: the thin shell that runs the pure queue decision
//! (`berth_scheduler::queue::decide`) on the leader and commits it.
//!
//! ```text
//!  watch (wait_beyond) ─► changes since last look ─► clusters whose capacity or queue moved ─┐
//!  the next wait to run out in each cluster (the decision's wake_at) ────────────────────────┤
//!                                                                                             ▼
//!     one snapshot ─► decide(snapshot, cluster, now, seed) per cluster with a queue
//!                 ─► PlaceQueuedTasks (re-checked at commit) ─► PreemptAndPlace… (one
//!                    transaction each, refused whole on a conflict) ─► ExpireQueuedTasks
//!                 ─► berth_preemptions_total{preemptor="queue"}: committed, refused, no_set
//! ```
//! Any change to a task, an instance or a cluster marks its cluster: a task stopping or an
//! instance registering frees capacity, a new queued task may fit at once. Only clusters with
//! queued tasks are decided. A placement refused at commit (another scheduler took the room
//! first) marks the cluster again, and the commit's own change wakes the loop, so it is
//! decided again on a fresher snapshot. An expiry decided on a stale snapshot changes nothing
//! for a task that was placed or stopped meanwhile (the state machine checks it still waits).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_model::Millis;
use berth_model::command::{Placed, Preempted};
use berth_model::entity::Name;
use berth_scheduler::queue::{Decision, decide};
use berth_state::{EntityKey, State};
use futures::future::join_all;

use crate::App;
use crate::metrics::{Preemption, Preemptor};

/// Spawns the queue controller loop; it acts only while this node is the leader.
pub struct QueueController;

impl QueueController {
    pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { run(app).await })
    }
}

/// Clusters that have tasks waiting for capacity.
fn with_queues(state: &State) -> impl Iterator<Item = Name> + '_ {
    state.queue_lengths().into_iter().map(|(c, _)| c)
}

/// The cluster a change concerns, if any.
fn touched(state: &State, key: &EntityKey) -> Option<Name> {
    match key {
        EntityKey::Task(id) => state.task(*id).map(|t| t.cluster.clone()),
        EntityKey::Instance(id) => state.instance(*id).map(|i| i.cluster.clone()),
        EntityKey::Cluster(name) => Some(name.clone()),
        // A released offer frees room too, seen at the next change or wait.
        EntityKey::TaskDefinition(..)
        | EntityKey::Service(..)
        | EntityKey::Framework(_)
        | EntityKey::Offer(_)
        | EntityKey::Credential(_) => None,
    }
}

async fn run(app: Arc<App>) {
    let mut seen = 0u64;
    let mut dirty: HashSet<Name> = HashSet::new();
    let mut timers: BTreeMap<Name, Millis> = BTreeMap::new();
    let mut leading = false;
    loop {
        if !app.node.is_leader() {
            leading = false;
            timers.clear();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = app.stopping() => return,
            }
            continue;
        }
        let now = Millis::now();
        let wait = timers
            .values()
            .min()
            .map_or(Duration::from_secs(1), |at| {
                Duration::from_millis(at.0.saturating_sub(now.0).max(0) as u64)
            })
            .min(Duration::from_secs(1));
        let state = tokio::select! {
            s = app.node.wait_beyond(seen, wait) => s,
            _ = app.stopping() => return,
        };
        if !leading {
            // A new leader looks at every queue once.
            leading = true;
            dirty.extend(with_queues(&state));
        }
        if state.index() > seen {
            match state.changes_since(seen) {
                Some(changes) => {
                    dirty.extend(changes.iter().filter_map(|(_, k)| touched(&state, k)))
                }
                None => dirty.extend(with_queues(&state)),
            }
            seen = state.index();
        }
        let now = Millis::now();
        let due: Vec<Name> = timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for c in due {
            timers.remove(&c);
            dirty.insert(c);
        }
        let clusters: Vec<Name> = dirty
            .drain()
            .filter(|c| state.queued(c).next().is_some())
            .collect();
        if clusters.is_empty() {
            continue;
        }
        let decided = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                clusters
                    .into_iter()
                    .map(|c| {
                        let d = decide(&state, &c, now, rand::random());
                        (c, d)
                    })
                    .collect::<Vec<_>>()
            })
            .await
        };
        let decided = match decided {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "a queue decision panicked");
                continue;
            }
        };
        let mut commits = Vec::new();
        for (cluster, decision) in decided {
            app.metrics.preemption(
                Preemptor::Queue,
                Preemption::NoSet {
                    searches: decision.preemption_misses,
                },
            );
            match decision.wake_at {
                Some(at) => timers.insert(cluster.clone(), at),
                None => timers.remove(&cluster),
            };
            if !decision.is_empty() {
                commits.push(commit(&app, cluster, decision));
            }
        }
        dirty.extend(join_all(commits).await.into_iter().flatten());
    }
}

/// Commits one cluster's decision: placements, then expiries. Returns the cluster when it
/// must be decided again (a placement refused at commit, a write that failed).
async fn commit(app: &App, cluster: Name, decision: Decision) -> Option<Name> {
    let mut again = false;
    if let Some(command) = decision.place {
        match app.node.write(command).await {
            Ok(w) => match w.result {
                Ok(Placed { tasks, rejected }) => {
                    tracing::debug!(%cluster, placed = tasks.len(), rejected = rejected.len(), "queued tasks placed");
                    again |= !rejected.is_empty();
                }
                Err(e) => {
                    tracing::debug!(%cluster, error = %e, "placing queued tasks refused");
                }
            },
            Err(e) => {
                tracing::warn!(%cluster, error = %e, "placing queued tasks failed");
                again = true;
            }
        }
    }
    for command in decision.preempt {
        match app.node.write(command).await {
            Ok(w) => match w.result {
                Ok(Preempted { task, evicted }) => {
                    tracing::info!(%cluster, task = %task.id, evicted = evicted.len(), "queued task placed by preemption");
                    app.metrics.preemption(
                        Preemptor::Queue,
                        Preemption::Committed {
                            evicted: evicted.len(),
                        },
                    );
                }
                Err(e) => {
                    tracing::debug!(%cluster, error = %e, "preemption refused at commit; deciding again");
                    app.metrics
                        .preemption(Preemptor::Queue, Preemption::Refused);
                    again = true;
                }
            },
            Err(e) => {
                tracing::warn!(%cluster, error = %e, "preemption failed");
                again = true;
            }
        }
    }
    if let Some(command) = decision.expire {
        match app.node.write(command).await {
            Ok(w) => {
                if let Err(e) = w.result {
                    tracing::debug!(%cluster, error = %e, "ending queued waits refused");
                }
            }
            Err(e) => {
                tracing::warn!(%cluster, error = %e, "ending queued waits failed");
                again = true;
            }
        }
    }
    again.then_some(cluster)
}
