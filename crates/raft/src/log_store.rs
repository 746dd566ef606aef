//! The Raft log and vote on redb, written by one thread in order, with group commit.
//!
//! ```text
//!  openraft ──append/vote/truncate/purge──► channel ──► writer thread ──► redb (fsync)
//!                 │                                          │
//!                 └─► cache (readable at once)               └─► LogFlushed callbacks
//! ```
//! openraft requires log I/O to happen in order and an appended entry to be readable as soon
//! as `append` returns, while the fsync may complete later. One writer thread owns every write
//! transaction, so order is the channel's order; it drains whatever appends have queued and
//! commits them in a single durable transaction (group commit), then fires their callbacks.
//! Appended entries sit in an in-memory cache until they are purged, so readers (replication,
//! apply) rarely touch the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::TypeConfig;
use crate::metrics::RaftMetrics;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type NodeId = u64;
type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// Most entries a cache keeps once they are durable; older ones are read back from redb.
const CACHE_LIMIT: usize = 8192;

/// Encoded entries (index, bytes) of one `append` call, and the callback to fire when durable.
type Append = (Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>);

enum Op {
    Append(Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>),
    SaveVote(Vec<u8>, oneshot::Sender<std::io::Result<()>>),
    SaveCommitted(Vec<u8>),
    Truncate(u64, oneshot::Sender<std::io::Result<()>>),
    Purge(u64, Vec<u8>, oneshot::Sender<std::io::Result<()>>),
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Entries appended but possibly not yet durable, plus a window of recent durable ones.
#[derive(Default)]
struct Cache {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    durable_upto: u64,
}

/// The log store: cheap to clone, shared by openraft's core and its log readers.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    cache: Arc<Mutex<Cache>>,
    tx: std_mpsc::Sender<Op>,
    last_purged: Arc<Mutex<Option<LogId<NodeId>>>>,
}

impl LogStore {
    /// Opens (creating if needed) the log database at `path` and starts its writer thread,
    /// which records each durable transaction in `metrics`.
    pub fn open(path: &Path, metrics: RaftMetrics) -> Result<Self, redb::Error> {
        let db = Arc::new(Database::create(path)?);
        {
            let txn = db.begin_write()?;
            txn.open_table(LOGS)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        let last_purged = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            meta.get(LAST_PURGED)?
                .and_then(|v| serde_json::from_slice(v.value()).ok())
        };
        let cache = Arc::new(Mutex::new(Cache::default()));
        let (tx, rx) = std_mpsc::channel();
        let writer_db = db.clone();
        let writer_cache = cache.clone();
        std::thread::Builder::new()
            .name("berth-raft-log".into())
            .spawn(move || writer(writer_db, writer_cache, rx, metrics))
            .map_err(redb::Error::Io)?;
        Ok(Self {
            db,
            cache,
            tx,
            last_purged: Arc::new(Mutex::new(last_purged)),
        })
    }

    fn send(&self, op: Op) -> StorageResult<()> {
        self.tx.send(op).map_err(|_| {
            StorageIOError::write_logs(AnyError::error("log writer thread is gone")).into()
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ReadError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let meta = txn.open_table(META).map_err(redb::Error::from)?;
        let Some(v) = meta.get(key).map_err(redb::Error::from)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(v.value())?))
    }

    fn read_range(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, ReadError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let logs = txn.open_table(LOGS).map_err(redb::Error::from)?;
        let range = match end {
            Some(end) => logs.range(start..end),
            None => logs.range(start..),
        }
        .map_err(redb::Error::from)?;
        let mut out = Vec::new();
        for item in range {
            let (_, v) = item.map_err(redb::Error::from)?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }
}

/// The writer thread: applies ops in order, committing queued appends together.
fn writer(
    db: Arc<Database>,
    cache: Arc<Mutex<Cache>>,
    rx: std_mpsc::Receiver<Op>,
    metrics: RaftMetrics,
) {
    while let Ok(first) = rx.recv() {
        // Gather consecutive appends (and committed-pointer saves) into one transaction.
        let mut appends = Vec::new();
        let mut committed = None;
        let mut next = Some(first);
        let mut barrier = None;
        while let Some(op) = next.take() {
            match op {
                Op::Append(entries, cb) => appends.push((entries, cb)),
                Op::SaveCommitted(c) => committed = Some(c),
                other => {
                    barrier = Some(other);
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if !appends.is_empty() || committed.is_some() {
            let durable = !appends.is_empty();
            let started = std::time::Instant::now();
            let result = write_batch(&db, &appends, committed.as_deref(), durable);
            if durable && result.is_ok() {
                let entries = appends.iter().map(|(e, _)| e.len()).sum();
                metrics.log_written(entries, started.elapsed().as_secs_f64());
            }
            let last = appends
                .iter()
                .flat_map(|(e, _)| e.last().map(|(i, _)| *i))
                .max();
            if result.is_ok()
                && let Some(last) = last
            {
                let mut c = cache.lock().expect("log cache lock");
                c.durable_upto = c.durable_upto.max(last);
                while c.entries.len() > CACHE_LIMIT {
                    match c.entries.first_key_value() {
                        Some((&k, _)) if k <= c.durable_upto => {
                            c.entries.remove(&k);
                        }
                        _ => break,
                    }
                }
            }
            for (_, cb) in appends {
                cb.log_io_completed(result.as_ref().map(|_| ()).map_err(io_err));
            }
        }
        if let Some(op) = barrier {
            run_barrier(&db, op);
        }
    }
}

fn write_batch(
    db: &Database,
    appends: &[Append],
    committed: Option<&[u8]>,
    durable: bool,
) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })
    .map_err(|e| redb::Error::Io(io_err(e)))?;
    {
        let mut logs = txn.open_table(LOGS)?;
        for (entries, _) in appends {
            for (index, bytes) in entries {
                logs.insert(*index, bytes.as_slice())?;
            }
        }
        if let Some(c) = committed {
            let mut meta = txn.open_table(META)?;
            meta.insert(COMMITTED, c)?;
        }
    }
    txn.commit()?;
    Ok(())
}

fn run_barrier(db: &Database, op: Op) {
    let run = |f: &dyn Fn(&redb::WriteTransaction) -> Result<(), redb::Error>| {
        let txn = db.begin_write()?;
        f(&txn)?;
        txn.commit()?;
        Ok::<(), redb::Error>(())
    };
    match op {
        Op::SaveVote(v, reply) => {
            let r = run(&|txn| {
                txn.open_table(META)?.insert(VOTE, v.as_slice())?;
                Ok(())
            });
            let _ = reply.send(r.map_err(io_err));
        }
        Op::Truncate(from, reply) => {
            let r = run(&|txn| {
                let mut logs = txn.open_table(LOGS)?;
                logs.retain_in(from.., |_, _| false)?;
                Ok(())
            });
            let _ = reply.send(r.map_err(io_err));
        }
        Op::Purge(upto, marker, reply) => {
            let r = run(&|txn| {
                txn.open_table(META)?
                    .insert(LAST_PURGED, marker.as_slice())?;
                let mut logs = txn.open_table(LOGS)?;
                logs.retain_in(..=upto, |_, _| false)?;
                Ok(())
            });
            let _ = reply.send(r.map_err(io_err));
        }
        Op::Append(..) | Op::SaveCommitted(..) => unreachable!("handled by the batch path"),
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => Some(e + 1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = bounds(&range);
        // Whatever the cache holds of the range is newest; the disk supplies what precedes it.
        let (cached, first_cached) = {
            let c = self.cache.lock().expect("log cache lock");
            let cached: Vec<_> = match end {
                Some(end) => c
                    .entries
                    .range(start..end)
                    .map(|(_, e)| e.clone())
                    .collect(),
                None => c.entries.range(start..).map(|(_, e)| e.clone()).collect(),
            };
            let first = cached.first().map(|e| e.log_id.index);
            (cached, first)
        };
        if first_cached == Some(start) {
            return Ok(cached);
        }
        let disk_end = first_cached.or(end);
        let mut out = self
            .read_range(start, disk_end)
            .map_err(|e| StorageIOError::read_logs(AnyError::error(e)))?;
        out.extend(cached);
        Ok(out)
    }
}

/// Why the log or its metadata could not be read back (openraft is told its message).
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The database refused the read.
    #[error(transparent)]
    Db(#[from] redb::Error),
    /// A stored value does not decode.
    #[error(transparent)]
    Decode(#[from] serde_json::Error),
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged = *self.last_purged.lock().expect("purge lock");
        let cached_last = {
            let c = self.cache.lock().expect("log cache lock");
            c.entries.last_key_value().map(|(_, e)| e.log_id)
        };
        let last = match cached_last {
            Some(l) => Some(l),
            None => {
                let txn = self
                    .db
                    .begin_read()
                    .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
                let logs = txn
                    .open_table(LOGS)
                    .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
                let last = logs
                    .last()
                    .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
                match last {
                    Some((_, v)) => {
                        let e: Entry<TypeConfig> = serde_json::from_slice(v.value())
                            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
                        Some(e.log_id)
                    }
                    None => None,
                }
            }
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let bytes =
            serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        let (tx, rx) = oneshot::channel();
        self.send(Op::SaveVote(bytes, tx))?;
        rx.await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.read_meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(AnyError::error(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let bytes =
            serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        self.send(Op::SaveCommitted(bytes))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self
            .read_meta::<Option<LogId<NodeId>>>(COMMITTED)
            .map_err(|e| StorageIOError::read(AnyError::error(e)))?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut c = self.cache.lock().expect("log cache lock");
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(|e| {
                    StorageIOError::write_log_entry(entry.log_id, AnyError::new(&e))
                })?;
                encoded.push((entry.log_id.index, bytes));
                c.entries.insert(entry.log_id.index, entry);
            }
        }
        self.send(Op::Append(encoded, callback))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        {
            let mut c = self.cache.lock().expect("log cache lock");
            let _ = c.entries.split_off(&log_id.index);
            c.durable_upto = c.durable_upto.min(log_id.index.saturating_sub(1));
        }
        let (tx, rx) = oneshot::channel();
        self.send(Op::Truncate(log_id.index, tx))?;
        rx.await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let marker = serde_json::to_vec(&Some(log_id))
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        let (tx, rx) = oneshot::channel();
        self.send(Op::Purge(log_id.index, marker, tx))?;
        rx.await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        {
            let mut c = self.cache.lock().expect("log cache lock");
            let keep = c.entries.split_off(&(log_id.index + 1));
            c.entries = keep;
        }
        *self.last_purged.lock().expect("purge lock") = Some(log_id);
        Ok(())
    }
}
