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

mod log_store;
pub mod network;
pub mod rpc_check;
mod state_machine;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_model::command::UnexpectedOutcome;
use berth_model::{Command, CommandResult, Millis, Outcome, Stamped, TypedCommand};
use berth_state::State;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use log_store::LogStore;
pub use state_machine::{Published, StateMachine};

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
    /// openraft refused to start or initialize.
    #[error("raft failed to start: {0}")]
    Raft(String),
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
    /// The command was committed and applied, but answered with an outcome of another kind
    /// than its type names: a bug, or a leader running a version that answers it differently.
    #[error(transparent)]
    UnexpectedOutcome(#[from] UnexpectedOutcome),
}

/// How many times a write is tried (locally, then at the leader) across an election.
const FORWARD_ATTEMPTS: usize = 6;

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

struct Pending {
    command: Stamped,
    reply: oneshot::Sender<Result<Written, WriteError>>,
}

/// A running berth Raft node.
pub struct Node {
    id: u64,
    raft: BerthRaft,
    published: Arc<Published>,
    queue: mpsc::UnboundedSender<Pending>,
    peers: network::Network,
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
        let log = LogStore::open(&log_path).map_err(|e| OpenError::Storage {
            path: log_path,
            source: Box::new(e),
        })?;
        let sm_path = options.data_dir.join("raft-snapshot.redb");
        let sm = StateMachine::open(&sm_path, options.state.clone()).map_err(|e| {
            OpenError::Storage {
                path: sm_path,
                source: Box::new(e),
            }
        })?;
        let published = sm.published();
        let config = openraft::Config {
            cluster_name: "berth".into(),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
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
        let raft = Raft::new(
            options.id,
            Arc::new(config),
            network::Network::new(options.peers.clone()),
            log,
            sm,
        )
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
        } else if initialized {
            // A lone voter need not wait out an election timeout after a restart.
            let m = raft.metrics().borrow().clone();
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            if voters == [options.id] {
                let _ = raft.trigger().elect().await;
            }
        }

        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batcher(
            raft.clone(),
            rx,
            options.max_batch.max(1),
            options.max_inflight.max(1),
        ));
        Ok(Arc::new(Node {
            id: options.id,
            raft,
            published,
            queue: tx,
            peers: network::Network::new(options.peers.clone()),
        }))
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

    /// [`Node::write`], untyped: the answer as the Raft response carries it.
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
        let mut delay = Duration::from_millis(50);
        for attempt in 0..FORWARD_ATTEMPTS {
            match self.write_local(stamped.clone()).await {
                Err(WriteError::NotLeader { leader }) => {
                    if let Some((_, addr)) = &leader {
                        match network::forward(&self.peers, addr, &stamped).await {
                            Ok(Ok(written)) => {
                                self.wait_beyond(
                                    written.index.saturating_sub(1),
                                    Duration::from_secs(5),
                                )
                                .await;
                                return Ok(written);
                            }
                            Ok(Err(WriteError::NotLeader { .. })) | Err(_) => {}
                            Ok(Err(other)) => return Err(other),
                        }
                    }
                    if attempt + 1 == FORWARD_ATTEMPTS {
                        return Err(WriteError::NotLeader { leader });
                    }
                    // An election may be under way: give it time.
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Proposes a command on this node only (the leader's side of a forwarded write).
    pub async fn write_local(&self, command: Stamped) -> Result<Written, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| WriteError::Unavailable("the node is shutting down".into()))?;
        rx.await
            .map_err(|_| WriteError::Unavailable("the node is shutting down".into()))?
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
    pub fn check_vote(&self, req: &VoteRequest<u64>) -> Result<(), rpc_check::RpcRefused> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        rpc_check::check_vote(req, &rpc_check::Members(m.membership()))
    }

    /// Checks an append-entries request from a peer before it reaches openraft.
    pub fn check_append(
        &self,
        req: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<(), rpc_check::RpcRefused> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        rpc_check::check_append(req, &rpc_check::Members(m.membership()))
    }

    /// The Raft handle (for serving peer RPCs and membership changes).
    pub fn raft(&self) -> &BerthRaft {
        &self.raft
    }

    /// Stops Raft. Pending writes fail with `Unavailable`.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// Collects queued writes into Raft entries: while up to `max_inflight` entries are being
/// committed, new writes queue; each entry takes everything queued (up to `max_batch`).
async fn batcher(
    raft: BerthRaft,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    max_batch: usize,
    max_inflight: usize,
) {
    let inflight = Arc::new(Semaphore::new(max_inflight));
    loop {
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut commands = Vec::with_capacity(16);
        let mut replies = Vec::with_capacity(16);
        commands.push(first.command);
        replies.push(first.reply);
        while commands.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => {
                    commands.push(p.command);
                    replies.push(p.reply);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let outcome = raft.client_write(Batch { commands }).await;
            drop(permit);
            match outcome {
                Ok(resp) => {
                    let index = resp.log_id.index;
                    for (reply, result) in replies.into_iter().zip(resp.data) {
                        let _ = reply.send(Ok(Written { index, result }));
                    }
                }
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            WriteError::NotLeader {
                                leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                            }
                        }
                        other => WriteError::Unavailable(other.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}
