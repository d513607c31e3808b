//! openraft's log storage on redb: the `raft_log` table (index → encoded entry) and the vote,
//! committed and purged log ids in `raft_meta` (see docs/formats/store.md).
//!
//! Writing: `append` makes the entries readable at once (a pending map) and queues them for the
//! log thread, which takes every queued operation, writes them in one redb transaction with one
//! fsync, and only then reports each append flushed to openraft. openraft 0.9 waits for that
//! report before its next append, so one entry is written per fsync; group commit of client
//! writes therefore happens before raft, in the node's proposer, which puts every waiting write
//! into that one entry (ADR 0403).
//!
//! Correctness (what openraft requires of `RaftLogStorage`): an entry is reported flushed only
//! once it is on disk; operations reach the disk in the order they were called; `save_vote`,
//! `truncate` and `purge` return only once on disk; reads see every appended entry. The
//! committed log id is kept in memory and written with the next transaction.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::codec;
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::backend::{RAFT_META, SharedDb};
use crate::error::StoreError;

/// The log entries, by index.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
const META_PURGED: &str = "last_purged";

/// How many queued operations one transaction takes at most.
const MAX_OPS_PER_COMMIT: usize = 4096;

/// A change to the log, in call order.
enum Op {
    Append {
        entries: Vec<(u64, Vec<u8>, LogId)>,
        flushed: LogFlushed<TypeConfig>,
    },
    Vote(Vec<u8>, oneshot::Sender<Result<(), String>>),
    Committed(Vec<u8>),
    Truncate(u64, oneshot::Sender<Result<(), String>>),
    Purge(LogId, oneshot::Sender<Result<(), String>>),
}

/// What readers see beyond the database: entries queued but maybe not yet written, and the
/// log's ends.
#[derive(Debug, Default)]
struct Tail {
    pending: BTreeMap<u64, Entry>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    /// The newest committed log id saved (on disk with the next fsync).
    committed: Option<LogId>,
}

#[derive(Debug)]
struct Shared {
    db: SharedDb,
    tail: Mutex<Tail>,
    /// Transactions written with an fsync (a measure of grouping).
    durable_commits: AtomicU64,
}

/// The raft log on redb. Cloning gives another handle on the same log (openraft's log reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
}

impl Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(openraft::AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into()
}

impl LogStore {
    /// Opens the log in `db` (creating its table) and starts its writer thread.
    pub fn open(db: SharedDb) -> Result<Self, StoreError> {
        Self::open_inner(db).map_err(|e| StoreError::Raft {
            during: "opening the log",
            reason: e.to_string(),
        })
    }

    fn open_inner(db: SharedDb) -> Result<Self, Box<StorageError>> {
        let (last_purged, last_entry, committed) = {
            let guard = db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let txn = guard.begin_write().map_err(write_err)?;
            let found = {
                let log = txn.open_table(LOG).map_err(write_err)?;
                let meta = txn.open_table(RAFT_META).map_err(write_err)?;
                let purged = match meta.get(META_PURGED).map_err(read_err)? {
                    Some(v) => codec::decode_log_id(v.value()).map_err(read_err)?,
                    None => None,
                };
                let last = match log.last().map_err(read_err)? {
                    Some((_, v)) => Some(codec::decode_entry(v.value()).map_err(read_err)?.log_id),
                    None => None,
                };
                let committed = match meta.get(META_COMMITTED).map_err(read_err)? {
                    Some(v) => codec::decode_log_id(v.value()).map_err(read_err)?,
                    None => None,
                };
                (purged, last, committed)
            };
            txn.commit().map_err(write_err)?;
            found
        };
        let shared = Arc::new(Shared {
            db,
            tail: Mutex::new(Tail {
                pending: BTreeMap::new(),
                last_log_id: last_entry.or(last_purged),
                last_purged,
                committed,
            }),
            durable_commits: AtomicU64::new(0),
        });
        let (ops, rx) = mpsc::channel();
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("store-log".to_owned())
            .spawn(move || run_writer(&writer, &rx))
            .map_err(write_err)?;
        Ok(Self { shared, ops })
    }

    /// How many log transactions were fsynced so far.
    pub fn durable_commits(&self) -> u64 {
        self.shared.durable_commits.load(Ordering::Relaxed)
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.shared
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn call(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Op,
    ) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(op(tx)).map_err(write_err)?;
        rx.await.map_err(write_err)?.map_err(write_err)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, redb::Error> {
        let db = self
            .shared
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = db.begin_read()?;
        let meta = txn.open_table(RAFT_META)?;
        Ok(meta.get(key)?.map(|v| v.value().to_vec()))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        // Pending first: an entry leaves the pending map only after its transaction committed,
        // so one not found there is in the database read below.
        let mut found: BTreeMap<u64, Entry> = self
            .tail()
            .pending
            .range(range.clone())
            .map(|(i, e)| (*i, e.clone()))
            .collect();
        // Replication asks for entries just appended: when the pending map holds them all,
        // the database (a read transaction under its lock) is not needed.
        if let Some(wanted) = bounded_len(&range)
            && found.len() as u64 == wanted
        {
            return Ok(found.into_values().collect());
        }
        let db = self
            .shared
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        let rows = log.range::<u64>((start, end)).map_err(read_err)?;
        for row in rows {
            let (index, bytes) = row.map_err(read_err)?;
            let index = index.value();
            if let std::collections::btree_map::Entry::Vacant(slot) = found.entry(index) {
                slot.insert(codec::decode_entry(bytes.value()).map_err(read_err)?);
            }
        }
        let out: Vec<Entry> = found.into_values().collect();
        Ok(out)
    }
}

/// How many indexes `range` spans, if it is bounded at both ends.
fn bounded_len(range: &impl RangeBounds<u64>) -> Option<u64> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let start = match range.start_bound() {
        Included(s) => *s,
        Excluded(s) => s.checked_add(1)?,
        Unbounded => return None,
    };
    let end = match range.end_bound() {
        Included(e) => e.checked_add(1)?,
        Excluded(e) => *e,
        Unbounded => return None,
    };
    Some(end.saturating_sub(start))
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let tail = self.tail();
        Ok(LogState {
            last_purged_log_id: tail.last_purged,
            last_log_id: tail.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = codec::encode_vote(vote);
        self.call(|tx| Op::Vote(bytes, tx)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        match self.meta(META_VOTE).map_err(read_err)? {
            Some(bytes) => Ok(Some(codec::decode_vote(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.tail().committed = committed;
        let bytes = codec::encode_log_id(committed.as_ref());
        self.ops.send(Op::Committed(bytes)).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.tail().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut encoded = Vec::new();
        {
            let mut tail = self.tail();
            for entry in entries {
                encoded.push((
                    entry.log_id.index,
                    codec::encode_entry(&entry),
                    entry.log_id,
                ));
                tail.last_log_id = Some(entry.log_id);
                tail.pending.insert(entry.log_id.index, entry);
            }
        }
        if encoded.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.ops
            .send(Op::Append {
                entries: encoded,
                flushed: callback,
            })
            .map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.tail().pending.split_off(&log_id.index);
        self.call(|tx| Op::Truncate(log_id.index, tx)).await?;
        let before = match log_id.index.checked_sub(1) {
            Some(prev) => self
                .try_get_log_entries(prev..=prev)
                .await?
                .pop()
                .map(|e| e.log_id),
            None => None,
        };
        let mut tail = self.tail();
        tail.last_log_id = before.or(tail.last_purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut tail = self.tail();
            tail.pending = tail.pending.split_off(&(log_id.index + 1));
            tail.last_purged = Some(log_id);
            if tail
                .last_log_id
                .is_none_or(|last| last.index < log_id.index)
            {
                tail.last_log_id = Some(log_id);
            }
        }
        self.call(|tx| Op::Purge(log_id, tx)).await
    }
}

/// The log thread: one transaction, one fsync, for everything queued. A batch holding only
/// `save_committed` calls writes nothing: the newest committed id rides along with the next
/// transaction (losing it costs a re-apply, not a write: openraft finds it again from a quorum,
/// and a one-member cluster commits its whole log on start).
fn run_writer(shared: &Shared, rx: &mpsc::Receiver<Op>) {
    let mut carried: Option<Op> = None;
    while let Ok(first) = rx.recv() {
        let mut ops: Vec<Op> = carried.take().into_iter().collect();
        ops.push(first);
        while ops.len() < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        if ops.iter().all(|op| matches!(op, Op::Committed(_))) {
            carried = ops.pop();
            continue;
        }
        let result = write_ops(shared, &ops).map_err(|e| e.to_string());
        if let Err(err) = &result {
            tracing::error!(%err, "raft log write failed");
        }
        let mut done: Vec<(u64, LogId)> = Vec::new();
        for op in ops {
            let reply = result.clone();
            match op {
                Op::Append { entries, flushed } => {
                    done.extend(entries.iter().map(|(i, _, id)| (*i, *id)));
                    flushed.log_io_completed(reply.map_err(std::io::Error::other));
                }
                Op::Vote(_, tx) | Op::Truncate(_, tx) | Op::Purge(_, tx) => {
                    let _ = tx.send(reply);
                }
                Op::Committed(_) => {}
            }
        }
        if result.is_ok() {
            let mut tail = shared
                .tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (index, log_id) in done {
                if tail.pending.get(&index).is_some_and(|e| e.log_id == log_id) {
                    tail.pending.remove(&index);
                }
            }
        }
    }
    // Every handle is gone (a clean stop): keep the last committed id too.
    if let Some(op) = carried
        && let Err(err) = write_ops(shared, &[op])
    {
        tracing::warn!(%err, "saving the committed log id at stop failed");
    }
}

fn write_ops(shared: &Shared, ops: &[Op]) -> Result<(), redb::Error> {
    let db = shared
        .db
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(RAFT_META)?;
        for op in ops {
            match op {
                Op::Append { entries, .. } => {
                    for (index, bytes, _) in entries {
                        log.insert(index, bytes.as_slice())?;
                    }
                }
                Op::Vote(bytes, _) => {
                    meta.insert(META_VOTE, bytes.as_slice())?;
                }
                Op::Committed(bytes) => {
                    meta.insert(META_COMMITTED, bytes.as_slice())?;
                }
                Op::Truncate(from, _) => {
                    log.retain_in(*from.., |_, _| false)?;
                }
                Op::Purge(upto, _) => {
                    log.retain_in(..=upto.index, |_, _| false)?;
                    meta.insert(META_PURGED, codec::encode_log_id(Some(upto)).as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    shared.durable_commits.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
