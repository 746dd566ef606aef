//! The Raft state machine: berth's [`State`], published for readers after every apply, with
//! snapshots persisted on redb.
//!
//! ```text
//!  committed entries ──apply──► working State ──publish (O(1) clone)──► ArcSwap<State>
//!                                                  └──► watch: applied index
//! ```
//! Readers (the API, schedulers, watchers) load the published state without locks and never
//! block the writer; a waiter on the watch channel wakes when the index it waits for is applied.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use berth_model::CommandResult;
use berth_state::{Config, Persisted, State};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::TypeConfig;

type NodeId = u64;
type StorageResult<T> = Result<T, StorageError<NodeId>>;

const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");
const SNAPSHOT_META: &str = "meta";
const SNAPSHOT_DATA: &str = "data";

/// What readers share: the newest applied state and the index watch.
pub struct Published {
    state: ArcSwap<State>,
    applied: watch::Sender<u64>,
}

impl Published {
    fn new(state: State) -> Arc<Self> {
        let index = state.index();
        Arc::new(Self {
            state: ArcSwap::from_pointee(state),
            applied: watch::channel(index).0,
        })
    }

    /// The newest applied state: an O(1), immutable snapshot.
    pub fn load(&self) -> Arc<State> {
        self.state.load_full()
    }

    fn publish(&self, state: State) {
        let index = state.index();
        self.state.store(Arc::new(state));
        self.applied.send_replace(index);
    }

    /// A receiver that sees the applied index change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }
}

/// A snapshot as stored: its metadata and its serialized body.
type StoredSnapshot = (SnapshotMeta<NodeId, BasicNode>, Vec<u8>);

/// The snapshot body: the state plus the Raft bookkeeping that goes with it.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotBody {
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, BasicNode>,
    pub state: Persisted,
}

/// Decodes a snapshot completely, and rebuilds the state it holds (indexes included), the way
/// installing it would: a snapshot that passes this installs.
pub(crate) fn decode_snapshot(data: &[u8]) -> Result<SnapshotBody, serde_json::Error> {
    let body: SnapshotBody = serde_json::from_slice(data)?;
    let _ = State::restore(body.state.clone(), berth_state::Config::default());
    Ok(body)
}

/// The state machine openraft drives.
pub struct StateMachine {
    state: State,
    config: Config,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    published: Arc<Published>,
    db: Arc<Database>,
}

fn read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

impl StateMachine {
    /// Opens the snapshot database at `path` and restores the newest snapshot, if any.
    pub fn open(path: &Path, config: Config) -> Result<Self, StorageError<NodeId>> {
        let db = Arc::new(Database::create(path).map_err(read_err)?);
        let txn = db.begin_write().map_err(read_err)?;
        txn.open_table(SNAPSHOT).map_err(read_err)?;
        txn.commit().map_err(read_err)?;
        let mut sm = Self {
            state: State::new(config.clone()),
            config,
            last_applied: None,
            last_membership: StoredMembership::default(),
            published: Published::new(State::default()),
            db,
        };
        if let Some((_, data)) = sm.read_snapshot()? {
            sm.load_body(&data)?;
        }
        sm.published = Published::new(sm.state.clone());
        Ok(sm)
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.clone()
    }

    fn load_body(&mut self, data: &[u8]) -> StorageResult<()> {
        let body: SnapshotBody = serde_json::from_slice(data).map_err(read_err)?;
        self.state = State::restore(body.state, self.config.clone());
        self.last_applied = body.last_applied;
        self.last_membership = body.last_membership;
        Ok(())
    }

    fn read_snapshot(&self) -> StorageResult<Option<StoredSnapshot>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(SNAPSHOT).map_err(read_err)?;
        let meta = table.get(SNAPSHOT_META).map_err(read_err)?;
        let data = table.get(SNAPSHOT_DATA).map_err(read_err)?;
        match (meta, data) {
            (Some(m), Some(d)) => {
                let meta = serde_json::from_slice(m.value()).map_err(read_err)?;
                Ok(Some((meta, d.value().to_vec())))
            }
            _ => Ok(None),
        }
    }
}

fn write_snapshot(
    db: &Database,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> StorageResult<()> {
    let meta = serde_json::to_vec(meta).map_err(snap_err)?;
    let txn = db.begin_write().map_err(snap_err)?;
    {
        let mut table = txn.open_table(SNAPSHOT).map_err(snap_err)?;
        table
            .insert(SNAPSHOT_META, meta.as_slice())
            .map_err(snap_err)?;
        table.insert(SNAPSHOT_DATA, data).map_err(snap_err)?;
    }
    txn.commit().map_err(snap_err)?;
    Ok(())
}

/// Builds a snapshot from an O(1) copy of the state, off the apply path.
pub struct SnapshotBuilder {
    state: State,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    db: Arc<Database>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let state = self.state.clone();
        let last_applied = self.last_applied;
        let last_membership = self.last_membership.clone();
        let db = self.db.clone();
        let built = tokio::task::spawn_blocking(move || {
            let body = SnapshotBody {
                last_applied,
                last_membership: last_membership.clone(),
                state: state.persist(),
            };
            let data = serde_json::to_vec(&body).map_err(snap_err)?;
            let snapshot_id = match last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, state.index()),
                None => "empty".to_owned(),
            };
            let meta = SnapshotMeta {
                last_log_id: last_applied,
                last_membership,
                snapshot_id,
            };
            write_snapshot(&db, &meta, &data)?;
            Ok::<_, StorageError<NodeId>>(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        })
        .await
        .map_err(snap_err)??;
        Ok(built)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Vec<CommandResult>>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {
                    self.state.advance(index);
                    responses.push(Vec::new());
                }
                EntryPayload::Normal(batch) => {
                    let results = batch
                        .commands
                        .iter()
                        .map(|c| self.state.apply(index, c))
                        .collect();
                    responses.push(results);
                }
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    self.state.advance(index);
                    responses.push(Vec::new());
                }
            }
        }
        self.published.publish(self.state.clone());
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            db: self.db.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        self.load_body(&data)?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        write_snapshot(&self.db, meta, &data)?;
        self.published.publish(self.state.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        Ok(self.read_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
