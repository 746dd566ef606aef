//! berth's replicated, durable log: openraft with its log and snapshots on redb, berth's state
//! machine, HTTP transport between servers, and group commit.
//!
//! ```text
//!  write(cmd) ─► queue ─► batcher ──one Raft entry per batch──► openraft ─► LogStore (redb, fsync)
//!      ▲                                                           │ committed
//!      └──── cmd's Output | Error ◄── Outcome | Error ◄── StateMachine::apply ─► Published state
//! ```
//! A write is acknowledged only after its entry is durable on a quorum and applied. Many
//! concurrent writes share one entry (and one fsync): the batcher takes everything queued while
//! the previous entry was in flight. One node is a single-voter Raft group; adding voters is a
//! membership change on the same code path.
//!
//! [`Node::write`] takes any typed command and answers with its output (a `PlaceTasks` with
//! `Placed`); the untyped [`Outcome`] is only the Raft response, and what a forwarded write
//! carries back from the leader.

// openraft's storage traits return its `StorageError` (large); the helpers that build one share
// its type rather than boxing it at every boundary.
#![allow(clippy::result_large_err)]

mod batcher;
mod election;
mod lease;
mod log_store;
pub mod membership;
pub mod metrics;
pub mod network;
mod reach;
pub mod rpc;
pub mod rpc_check;
mod state_machine;
pub mod transfer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_model::command::UnexpectedOutcome;
use berth_model::{Command, CommandResult, Millis, Outcome, Stamped, TypedCommand};
use berth_state::State;
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, ChangeMembers, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

pub use log_store::LogStore;
pub use membership::{Member, MembershipChange, MembershipError};
pub use reach::QuietRetries;
pub use state_machine::{Published, StateMachine};
pub use transfer::{TransferError, Transferred};

/// The commands of one Raft entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub commands: Vec<Stamped>,
}

openraft::declare_raft_types!(
    /// berth's Raft types: entries carry a [`Batch`], responses one result per command.
    pub TypeConfig:
        D = Batch,
        R = Vec<CommandResult>,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// The Raft handle, for serving RPCs from peers.
pub type BerthRaft = Raft<TypeConfig>;

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's Raft id (stable across restarts).
    pub id: u64,
    /// The address peers reach this node's HTTP server at (`host:port`).
    pub addr: String,
    /// Where the log and snapshots live.
    pub data_dir: PathBuf,
    /// History retention and change-log length.
    pub state: berth_state::Config,
    /// Build a snapshot after this many log entries.
    pub snapshot_every: u64,
    /// Most commands in one Raft entry.
    pub max_batch: usize,
    /// Raft entries in flight at once.
    pub max_inflight: usize,
    /// The voters a fresh cluster starts with (id → address), this node included. When the log
    /// is empty, the member with the lowest id forms the group; the others wait to be
    /// contacted. Ignored once the log holds a membership.
    pub initial_members: BTreeMap<u64, String>,
    /// How this node reaches and signs for its peers.
    pub peers: network::PeerAccess,
    /// Heartbeats, elections and how long a write may wait.
    pub timing: Timing,
}

/// How fast a group notices a lost leader, and how long a client waits for an answer.
///
/// A follower that heard from a leader waits out the leader's lease (twice the election
/// timeout: voters refuse candidates until it runs out) and then a random election timeout
/// (one to two times it), drawn afresh for every wait (`election`), before it stands; a
/// split vote is retried after a new draw. The defaults put a lost leader's successor in
/// office 300–400 ms after its last heartbeat: far above an fsync (0.24 ms median, 2.4 ms max
/// on the development VM) and a loopback round trip, so a busy leader is not deposed by
/// accident, and below the half second a failover may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often a leader reminds its followers that it leads.
    pub heartbeat: Duration,
    /// The shortest election timeout; each election draws one up to twice this.
    pub election_timeout: Duration,
    /// How long a write waits to be acknowledged before its caller is told the outcome is
    /// unknown (it may still be applied later; callers retry with an idempotency token).
    pub write_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(50),
            election_timeout: Duration::from_millis(100),
            write_timeout: Duration::from_secs(5),
        }
    }
}

impl Timing {
    /// Refuses timings openraft cannot keep: a heartbeat must come well within an election
    /// timeout, or followers stand against a healthy leader.
    pub fn check(&self) -> Result<(), TimingError> {
        if self.heartbeat.is_zero() || self.write_timeout.is_zero() {
            return Err(TimingError::NotPositive);
        }
        if self.election_timeout < self.heartbeat * 2 {
            return Err(TimingError::ElectionTimeoutTooShort {
                election_timeout: self.election_timeout,
                heartbeat: self.heartbeat,
            });
        }
        Ok(())
    }
}

/// Timings openraft cannot keep (see [`Timing::check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A zero heartbeat interval or write timeout.
    #[error("the heartbeat interval and the write timeout must be positive")]
    NotPositive,
    /// An election timeout under two heartbeats: followers would stand against a healthy
    /// leader whose heartbeat is a little late.
    #[error(
        "the election timeout ({election_timeout:?}) must be at least twice the heartbeat interval ({heartbeat:?})"
    )]
    ElectionTimeoutTooShort {
        election_timeout: Duration,
        heartbeat: Duration,
    },
}

impl NodeOptions {
    /// A single-voter group: node 1 at `addr`.
    pub fn single(
        data_dir: impl Into<PathBuf>,
        addr: impl Into<String>,
        peers: network::PeerAccess,
    ) -> Self {
        let addr = addr.into();
        Self {
            id: 1,
            addr: addr.clone(),
            data_dir: data_dir.into(),
            state: berth_state::Config::default(),
            snapshot_every: 20_000,
            max_batch: 1024,
            max_inflight: 2,
            initial_members: BTreeMap::from([(1, addr)]),
            peers,
            timing: Timing::default(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory or its databases could not be opened.
    #[error("cannot open the data directory {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A database's pages fail their checksums: the file was altered since redb wrote it
    /// (a disk fault, a partial copy). Nothing of it is served.
    #[error(
        "{path} is corrupt ({reason}); this server will not serve from it. Move its data \
         directory aside and replace the server: start a fresh one that joins the group \
         (README: replacing a server), or restore the directory from a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    /// openraft refused to start or initialize.
    #[error("raft failed to start: {0}")]
    Raft(String),
    /// The timings given cannot be kept (said as openraft's own refusals are).
    #[error("raft failed to start: {0}")]
    Timing(TimingError),
    /// The node did not become ready in time.
    #[error("the node did not elect a leader and catch up within {0:?}")]
    NotReady(Duration),
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    /// This node is not the leader; the leader, if known, is named.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(u64, String)> },
    /// The node is shutting down or its storage failed.
    #[error("the write could not be committed: {0}")]
    Unavailable(String),
    /// No quorum acknowledged the write in time. It may still take effect later (when a
    /// quorum is back); a retry with the operation's idempotency token is safe.
    #[error(
        "no quorum acknowledged the write within {waited:?}; it may or may not take effect: \
         retry, with the same clientToken where the operation takes one"
    )]
    Unacknowledged { waited: Duration },
    /// The command was committed and applied, but answered with an outcome of another kind
    /// than its type names: a bug, or a leader running a version that answers it differently.
    #[error(transparent)]
    UnexpectedOutcome(#[from] UnexpectedOutcome),
}

/// Longest a joining server may take to catch up before it is promoted.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// A node's view of its group (see [`Node::standing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The leader this node knows, if any.
    pub leader: Option<u64>,
    pub term: u64,
    /// Whether a write sent here can commit now: this node leads and heard from a quorum
    /// recently, or follows a leader it hears from.
    pub quorum: bool,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The last index in this node's log, the last one a snapshot holds, and the last one
    /// purged from the log.
    pub last_log_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
}

/// The result of an acknowledged write: the command's output (`Written<Placed>` for a
/// `PlaceTasks`), or its refusal. `Written<Outcome>` is the untyped form a forwarded write
/// travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written<T = Outcome> {
    /// The log index of the entry that carried the command.
    pub index: u64,
    pub result: Result<T, berth_model::Error>,
}

impl Written {
    /// The answer as the output type `T` of the command it answers.
    fn typed<T>(self) -> Result<Written<T>, UnexpectedOutcome>
    where
        T: TryFrom<Outcome, Error = UnexpectedOutcome>,
    {
        let result = match self.result {
            Ok(outcome) => Ok(T::try_from(outcome)?),
            Err(refused) => Err(refused),
        };
        Ok(Written {
            index: self.index,
            result,
        })
    }
}

/// A running berth Raft node.
pub struct Node {
    id: u64,
    raft: BerthRaft,
    published: Arc<Published>,
    queue: mpsc::UnboundedSender<batcher::Pending>,
    peers: network::Network,
    /// When this node stands for leader; the peer calls it serves move it.
    election: Arc<election::ElectionTimer>,
    timing: Timing,
    /// Where peers reach this node.
    addr: String,
    metrics: metrics::RaftMetrics,
    data_dir: PathBuf,
    /// Every write and read index passes it (shared); a leadership transfer closes it
    /// (exclusive) so that the log stops growing while the target catches up and no
    /// heartbeat round renews the followers' leases before it stands (`transfer`).
    gate: tokio::sync::RwLock<()>,
}

/// Opens the database at `path` once with redb's full integrity check, which verifies the
/// checksum of every committed page. A crash mid-write needs no check: redb's two-phase
/// commit falls back to the last complete transaction by itself (the torn tail is dropped;
/// it was never acknowledged, since entries are acknowledged after their commit's fsync). A
/// file altered afterwards is a different matter: a plain open trusts it and may serve its
/// garbage or panic on it, so the node refuses to start instead.
fn verify(path: &Path) -> Result<(), OpenError> {
    match redb::Builder::new()
        .set_check_integrity_on_open(true)
        .create(path)
    {
        Ok(_) => Ok(()),
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason))) => {
            Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason,
            })
        }
        Err(e) => Err(OpenError::Storage {
            path: path.to_owned(),
            source: Box::new(e),
        }),
    }
}

/// Counts every change of the leader this node knows (a new one, or none), until Raft stops.
async fn count_leader_changes(raft: BerthRaft, metrics: metrics::RaftMetrics) {
    let mut watch = raft.metrics();
    let mut leader = watch.borrow().current_leader;
    while watch.changed().await.is_ok() {
        let now = watch.borrow().current_leader;
        if now != leader {
            leader = now;
            metrics.leader_changed();
        }
    }
}

impl Node {
    /// Opens the data directory, starts Raft, forms a single-voter group if asked and the log
    /// is empty, and waits until a leader is known and this node has applied its whole log.
    pub async fn open(options: NodeOptions) -> Result<Arc<Node>, OpenError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| OpenError::Storage {
            path: options.data_dir.clone(),
            source: Box::new(e),
        })?;
        let log_path = options.data_dir.join("raft-log.redb");
        let sm_path = options.data_dir.join("raft-snapshot.redb");
        for path in [&log_path, &sm_path] {
            verify(path)?;
        }
        let metrics = metrics::RaftMetrics::default();
        let log = LogStore::open(&log_path, metrics.clone()).map_err(|e| OpenError::Storage {
            path: log_path,
            source: Box::new(e),
        })?;
        let sm = StateMachine::open(&sm_path, options.state.clone()).map_err(|e| {
            OpenError::Storage {
                path: sm_path,
                source: Box::new(e),
            }
        })?;
        let published = sm.published();
        let timing = options.timing;
        timing.check().map_err(OpenError::Timing)?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "berth".into(),
            heartbeat_interval: millis(timing.heartbeat),
            election_timeout_min: millis(timing.election_timeout),
            election_timeout_max: millis(timing.election_timeout) * 2,
            // berth's own timer decides when to stand (`election`): openraft's draws one
            // timeout per process, so split votes repeat.
            enable_elect: false,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_every),
            // Keep a tail of the log after each snapshot for followers that lag a little.
            max_in_snapshot_log_to_keep: options.snapshot_every.min(1000),
            // One chunk: a follower checks a snapshot whole before installing it
            // (rpc_check), so it must arrive whole.
            snapshot_max_chunk_size: rpc_check::MAX_SNAPSHOT_BYTES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| OpenError::Raft(e.to_string()))?;
        let election = Arc::new(election::ElectionTimer::new(timing));
        let network =
            network::Network::new(options.peers.clone(), timing.heartbeat, election.clone());
        let raft = Raft::new(options.id, Arc::new(config), network.clone(), log, sm)
            .await
            .map_err(|e| OpenError::Raft(e.to_string()))?;

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| OpenError::Raft(e.to_string()))?;
        let first = options.initial_members.keys().next().copied();
        if !initialized && first == Some(options.id) {
            let members: BTreeMap<u64, BasicNode> = options
                .initial_members
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            raft.initialize(members)
                .await
                .map_err(|e| OpenError::Raft(e.to_string()))?;
        }
        tokio::spawn(election::run(
            raft.clone(),
            election.clone(),
            metrics.clone(),
        ));

        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batcher::run(
            raft.clone(),
            rx,
            options.max_batch.max(1),
            options.max_inflight.max(1),
            metrics.clone(),
        ));
        tokio::spawn(count_leader_changes(raft.clone(), metrics.clone()));
        Ok(Arc::new(Node {
            id: options.id,
            raft,
            published,
            queue: tx,
            peers: network,
            election,
            timing,
            addr: options.addr.clone(),
            metrics,
            data_dir: options.data_dir.clone(),
            gate: tokio::sync::RwLock::new(()),
        }))
    }

    /// Adds this node's log metrics (commit latency, group commit, term, leadership, log and
    /// snapshot sizes; placements and offers as the leader commits them) to `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        metrics::register(
            &self.metrics,
            self.raft.clone(),
            self.data_dir.clone(),
            registry,
        );
    }

    /// Waits until a leader is known and this node has applied every entry it holds. Serve the
    /// Raft RPC endpoints first: in a multi-voter group the election needs them.
    pub async fn ready(&self, within: Duration) -> Result<(), OpenError> {
        self.raft
            .wait(Some(within))
            .metrics(
                |m| {
                    m.current_leader.is_some()
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                },
                "leader known and log applied",
            )
            .await
            .map(|_| ())
            .map_err(|_| OpenError::NotReady(within))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The newest applied state (an O(1) immutable snapshot).
    pub fn state(&self) -> Arc<State> {
        self.published.load()
    }

    /// Waits until the applied index exceeds `index` or `timeout` passes; returns the state
    /// then current.
    pub async fn wait_beyond(&self, index: u64, timeout: Duration) -> Arc<State> {
        let mut rx: watch::Receiver<u64> = self.published.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|i| *i > index)).await;
        self.published.load()
    }

    /// Proposes one command; returns its output once it is durable, committed and applied. On
    /// a follower the command is forwarded to the leader, and the answer waits until this node
    /// has applied it too, so the caller's next read here sees its write.
    pub async fn write<C: TypedCommand>(
        &self,
        command: C,
    ) -> Result<Written<C::Output>, WriteError> {
        Ok(self.write_command(command.into(), None).await?.typed()?)
    }

    /// [`Node::write`] on behalf of `actor` (`user/alice`, ...), whom history will name.
    pub async fn write_by<C: TypedCommand>(
        &self,
        actor: &str,
        command: C,
    ) -> Result<Written<C::Output>, WriteError> {
        Ok(self
            .write_command(command.into(), Some(actor.to_owned()))
            .await?
            .typed()?)
    }

    /// [`Node::write`], untyped: the answer as the Raft response carries it. Bounded by the
    /// write timeout: a group without a quorum answers `Unacknowledged` rather than hold the
    /// caller until the quorum is back.
    async fn write_command(
        &self,
        command: Command,
        by: Option<String>,
    ) -> Result<Written, WriteError> {
        let stamped = Stamped {
            at: Millis::now(),
            command,
            by,
        };
        let waited = self.timing.write_timeout;
        tokio::time::timeout(waited, self.write_until_answered(stamped))
            .await
            .unwrap_or(Err(WriteError::Unacknowledged { waited }))
    }

    /// Proposes here, or at the leader this node knows, until one answers. A write is tried
    /// again only where it certainly was not appended: refused by a node that does not lead,
    /// truncated by a new leader (openraft answers those `ForwardToLeader`), or never sent
    /// because the leader's port was closed. Between attempts it waits for the group to name
    /// another leader, so a failover costs one election, not a backoff schedule.
    async fn write_until_answered(&self, stamped: Stamped) -> Result<Written, WriteError> {
        loop {
            let leader = match self.write_local(stamped.clone()).await {
                Err(WriteError::NotLeader { leader }) => leader,
                answered => return answered,
            };
            if let Some((_, addr)) = &leader {
                match network::forward(&self.peers, addr, &stamped).await {
                    Ok(Ok(written)) => {
                        // The caller's next read here must see its write.
                        self.wait_beyond(
                            written.index.saturating_sub(1),
                            self.timing.write_timeout,
                        )
                        .await;
                        return Ok(written);
                    }
                    Ok(Err(WriteError::NotLeader { .. })) | Err(network::Forwarded::Unsent(_)) => {}
                    Ok(Err(refused)) => return Err(refused),
                    Err(network::Forwarded::Unanswered(why)) => {
                        return Err(WriteError::Unavailable(format!(
                            "the leader at {addr} did not answer ({why}); the write may or may not \
                             take effect"
                        )));
                    }
                }
            }
            self.leader_change(leader.map(|(id, _)| id)).await;
        }
    }

    /// Waits until this node knows a leader other than `previous` (or any leader, when
    /// `previous` is `None`), for at most one election timeout: a leader that is merely slow
    /// to answer is tried again after that.
    async fn leader_change(&self, previous: Option<u64>) {
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout(
            self.timing.election_timeout,
            metrics.wait_for(|m| m.current_leader.is_some() && m.current_leader != previous),
        )
        .await;
    }

    /// Where this node stands in its group: what `/v1/health` reports. A leader proves its
    /// quorum with one heartbeat round; a follower asks its leader for that proof (a read
    /// index), since a leader that lost its quorum keeps leading the followers it still
    /// reaches. Both are bounded by two election timeouts. openraft's own quorum-ack metric is
    /// only refreshed when something else changes, so it cannot be used.
    pub async fn standing(&self) -> Standing {
        let m = self.raft.metrics().borrow().clone();
        let bound = self.timing.election_timeout * 2;
        let quorum = match m.current_leader {
            None => false,
            Some(leader) if leader == self.id => matches!(
                tokio::time::timeout(bound, self.leader_read_index()).await,
                Ok(Ok(_))
            ),
            Some(_) => match self.leader() {
                Some((_, addr)) => matches!(
                    tokio::time::timeout(bound, network::read_index(&self.peers, &addr)).await,
                    Ok(Ok(Ok(_)))
                ),
                None => false,
            },
        };
        let membership = m.membership_config.membership();
        Standing {
            leader: m.current_leader,
            term: m.current_term,
            quorum,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            last_log_index: m.last_log_index,
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
        }
    }

    /// Changes who is in the group: here when this node leads, else at the leader it knows.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<Vec<Member>, MembershipError> {
        if self.is_leader() {
            return self.change_membership_here(change).await;
        }
        let Some((_, addr)) = self.leader() else {
            return Err(MembershipError::NoLeader);
        };
        network::change_membership(&self.peers, &addr, network::MEMBERSHIP_PATH, &change)
            .await
            .map_err(|e| MembershipError::Failed(format!("the leader at {addr}: {}", e.reason())))?
    }

    /// A read barrier (Raft's read-index): waits until this node has applied everything the
    /// group had committed when it was called, as the leader confirms with a heartbeat round
    /// to a quorum. A read of this node's state afterwards sees every write acknowledged
    /// before the call, on any server. Bounded by the write timeout; without a quorum it
    /// fails rather than serve what may be stale.
    pub async fn read_barrier(&self) -> Result<(), WriteError> {
        let waited = self.timing.write_timeout;
        let barrier = async {
            let index = if self.is_leader() {
                self.leader_read_index().await?
            } else {
                let Some((_, addr)) = self.leader() else {
                    return Err(WriteError::NotLeader { leader: None });
                };
                network::read_index(&self.peers, &addr)
                    .await
                    .map_err(|e| WriteError::Unavailable(format!("{addr}: {}", e.reason())))??
            };
            if index > 0 {
                let mut applied = self.published.subscribe();
                let _ = applied.wait_for(|i| *i >= index).await;
            }
            Ok(())
        };
        tokio::time::timeout(waited, barrier)
            .await
            .unwrap_or(Err(WriteError::Unacknowledged { waited }))
    }

    /// The leader's side of a read barrier: the commit index a quorum confirms this node
    /// still leads at (0 for an empty log). It waits at the gate during a leadership
    /// transfer, as writes do: the heartbeat round that confirms leadership renews every
    /// follower's lease, and followers refuse the target's vote while theirs runs.
    pub async fn leader_read_index(&self) -> Result<u64, WriteError> {
        let _pass = self.gate.read().await;
        match self.raft.ensure_linearizable().await {
            Ok(read) => Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(WriteError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                })
            }
            Err(other) => Err(WriteError::Unavailable(other.to_string())),
        }
    }

    /// Asks the group that the server at `via` (`host:port`) belongs to to take this node as
    /// a voter, unless it already is one. Retried while the group has no leader or the server
    /// cannot be reached; a refusal is final.
    pub async fn join(&self, via: &str) -> Result<Vec<Member>, MembershipError> {
        if self.configuration().voters.contains(&self.id) {
            return Ok(self.members());
        }
        let change = MembershipChange::AddVoter {
            id: self.id,
            addr: self.addr.clone(),
        };
        let mut delay = Duration::from_millis(200);
        loop {
            let failure =
                match network::change_membership(&self.peers, via, network::JOIN_PATH, &change)
                    .await
                {
                    Ok(Ok(members)) => return Ok(members),
                    Ok(Err(refused @ MembershipError::Refused(_))) => return Err(refused),
                    Ok(Err(other)) => other,
                    Err(unreached) => {
                        MembershipError::Failed(format!("{via}: {}", unreached.reason()))
                    }
                };
            if delay > Duration::from_secs(5) {
                return Err(failure);
            }
            tracing::warn!(error = %failure, "joining through {via} failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// Changes the membership on this node, which must lead (the leader's side of a
    /// forwarded change: never forwarded again). The rules are `membership::check`'s; a new
    /// server is a learner until it has caught up, so it never holds back a quorum.
    pub async fn change_membership_here(
        &self,
        change: MembershipChange,
    ) -> Result<Vec<Member>, MembershipError> {
        if !self.is_leader() {
            return Err(MembershipError::NoLeader);
        }
        let caught_up = match &change {
            MembershipChange::RemoveVoter { .. } => self.caught_up_voters().await,
            MembershipChange::AddVoter { .. } => BTreeSet::new(),
        };
        if !membership::check(&self.configuration(), &caught_up, &change)? {
            return Ok(self.members());
        }
        let failed = |e: String| MembershipError::Failed(e);
        let bound = |what: &'static str, within: Duration| {
            move |_| MembershipError::Failed(format!("{what} did not finish within {within:?}"))
        };
        let commit = self.timing.write_timeout;
        match change {
            MembershipChange::AddVoter { id, addr } => {
                tokio::time::timeout(
                    CATCH_UP_TIMEOUT,
                    self.raft.add_learner(id, BasicNode { addr }, true),
                )
                .await
                .map_err(bound("catching the new server up", CATCH_UP_TIMEOUT))?
                .map_err(|e| failed(e.to_string()))?;
                tokio::time::timeout(
                    commit,
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false),
                )
                .await
                .map_err(bound("promoting the new server", commit))?
                .map_err(|e| failed(e.to_string()))?;
            }
            MembershipChange::RemoveVoter { id, .. } => {
                tokio::time::timeout(
                    commit,
                    self.raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                        false,
                    ),
                )
                .await
                .map_err(bound("removing the voter", commit))?
                .map_err(|e| failed(e.to_string()))?;
            }
        }
        Ok(self.members())
    }

    /// The voters holding a fresh entry: the leader appends an empty one and gives the
    /// followers two election timeouts to acknowledge it. One that is down or cut off does
    /// not; one that merely was not written to lately does.
    async fn caught_up_voters(&self) -> BTreeSet<u64> {
        let voters = self.configuration().voters;
        let probe = tokio::time::timeout(
            self.timing.write_timeout,
            self.raft.client_write(Batch {
                commands: Vec::new(),
            }),
        )
        .await;
        let Ok(Ok(written)) = probe else {
            // Not even a quorum holds it: only this node is known to be current.
            return BTreeSet::from([self.id]);
        };
        let index = written.log_id.index;
        let holds = |m: &openraft::RaftMetrics<u64, BasicNode>, voter: u64| {
            voter == self.id
                || m.replication
                    .as_ref()
                    .and_then(|r| r.get(&voter).copied().flatten())
                    .is_some_and(|matched| matched.index >= index)
        };
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout(
            self.timing.election_timeout * 2,
            metrics.wait_for(|m| voters.iter().all(|v| holds(m, *v))),
        )
        .await;
        let m = metrics.borrow().clone();
        voters.into_iter().filter(|v| holds(&m, *v)).collect()
    }

    /// The current configuration: every member's address, and which are voters.
    pub fn configuration(&self) -> membership::Configuration {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        membership::Configuration {
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
            voters: membership.voter_ids().collect(),
        }
    }

    /// Every member as this node sees it; how far each has replicated only on the leader.
    pub fn members(&self) -> Vec<Member> {
        let m = self.raft.metrics().borrow().clone();
        let config = self.configuration();
        config
            .nodes
            .into_iter()
            .map(|(id, addr)| Member {
                id,
                addr,
                voter: config.voters.contains(&id),
                leader: m.current_leader == Some(id),
                matched: match &m.replication {
                    Some(_) if id == self.id => m.last_log_index,
                    Some(r) => r.get(&id).copied().flatten().map(|l| l.index),
                    None => None,
                },
            })
            .collect()
    }

    /// Proposes a command on this node only (the leader's side of a forwarded write).
    /// During a leadership transfer the write waits at the gate until the transfer ends, then
    /// is proposed (and refused with the new leader's name if leadership moved).
    pub async fn write_local(&self, command: Stamped) -> Result<Written, WriteError> {
        let _pass = self.gate.read().await;
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(batcher::Pending { command, reply })
            .map_err(|_| WriteError::Unavailable("the node is shutting down".into()))?;
        rx.await
            .map_err(|_| WriteError::Unavailable("the node is shutting down".into()))?
    }

    /// Resolves if openraft stops this node's Raft core for good — a storage error such as a
    /// full disk — with the reason. The node can then neither lead nor follow nor recover by
    /// itself; its process should exit, so that a supervisor restarts it once the cause is
    /// fixed (the log on disk is intact: a failed append was never acknowledged).
    pub async fn stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        let reason = match metrics.wait_for(|m| m.running_state.is_err()).await {
            Ok(m) => m.running_state.clone().err().map(|e| e.to_string()),
            Err(_) => None,
        };
        reason.unwrap_or_else(|| "the Raft core is gone".into())
    }

    /// Whether this node leads now: the one question every leader-only loop asks, asked here.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// A signed client of the peer at `addr` (`host:port`), as this node's Raft RPCs use.
    pub fn peer(&self, addr: &str) -> berth_client::Client {
        self.peers.access().client(addr)
    }

    /// The leader this node knows of, with its address.
    pub fn leader(&self) -> Option<(u64, String)> {
        let metrics = self.raft.metrics().borrow().clone();
        let id = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&id)?
            .addr
            .clone();
        Some((id, addr))
    }

    /// Checks a vote request from a peer before it reaches openraft.
    fn check_vote(&self, req: &VoteRequest<u64>) -> Result<(), rpc_check::RpcRefused> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        rpc_check::check_vote(req, &rpc_check::Members(m.membership()))
    }

    /// Checks an append-entries request from a peer before it reaches openraft.
    fn check_append(
        &self,
        req: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<(), rpc_check::RpcRefused> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        rpc_check::check_append(req, &rpc_check::Members(m.membership()))
    }

    /// Stops Raft. Pending writes fail with `Unavailable`.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_that_would_depose_a_healthy_leader_are_refused() {
        assert_eq!(Timing::default().check(), Ok(()));
        let ms = Duration::from_millis;
        let fast_heartbeat = Timing {
            heartbeat: ms(60),
            election_timeout: ms(100),
            ..Timing::default()
        };
        let err = fast_heartbeat.check().unwrap_err();
        assert!(err.to_string().contains("twice the heartbeat"), "{err}");
        for zero in [
            Timing {
                heartbeat: Duration::ZERO,
                ..Timing::default()
            },
            Timing {
                write_timeout: Duration::ZERO,
                ..Timing::default()
            },
        ] {
            assert!(zero.check().is_err(), "{zero:?}");
        }
    }
}
