//! openraft's log storage on TiKV's raft-engine (ADR 0407): one raft group in `<data-dir>/log/`,
//! entries as berth's own encoding, and the vote, committed and purged log ids as keys of the
//! group (see docs/formats/store.md).
//!
//! Writing: `append` makes the entries readable at once (a pending map) and queues them for the
//! log thread, which takes every queued operation, writes them in one engine batch with one
//! fsync, and only then reports each append flushed to openraft. openraft 0.9 waits for that
//! report before its next append, so one entry is written per fsync; group commit of client
//! writes therefore happens before raft, in the node's proposer, which puts every waiting write
//! into that one entry (ADR 0403).
//!
//! Correctness (what openraft requires of `RaftLogStorage`): an entry is reported flushed only
//! once it is on disk; operations reach the disk in the order they were called; `save_vote`,
//! `truncate` and `purge` return only once on disk; reads see every appended entry and none
//! truncated. The engine cannot drop a log's tail, so a truncation is a durable mark that the
//! next append (which overwrites the tail) removes. The committed log id is kept in memory and
//! written with the next batch.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use protobuf::well_known_types::BytesValue;
use raft_engine::{Command as EngineCommand, Config as EngineConfig, Engine, LogBatch, MessageExt};
use redb::{Durability, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::oneshot;

use super::codec;
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::backend::{RAFT_META, SharedDb};
use crate::error::StoreError;

/// Where berth kept the log before ADR 0407 (data format 2): a table of the state database, and the
/// vote, committed and purged ids under these names in its `raft_meta` table.
const LEGACY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const LEGACY_META: [(&str, &[u8]); 3] = [
    ("vote", META_VOTE),
    ("committed", META_COMMITTED),
    ("last_purged", META_PURGED),
];

/// The one raft group in the engine.
const GROUP: u64 = 1;
const META_VOTE: &[u8] = b"vote";
const META_COMMITTED: &[u8] = b"committed";
const META_PURGED: &[u8] = b"last_purged";
/// Set by a truncation, removed by the next append: entries from this index on are gone, even
/// though the engine (which cannot drop a log's tail) still holds them until overwritten.
const META_TRUNCATED: &[u8] = b"truncated_from";

/// Entries go to the engine as protobuf `BytesValue`s holding berth's own encoding.
struct Entries;

impl MessageExt for Entries {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        codec::entry_index(&e.value).unwrap_or(0)
    }
}

/// How many queued operations one write takes at most.
const MAX_OPS_PER_COMMIT: usize = 4096;
/// How many bytes of entries one write takes at most, well inside the engine's limit for one
/// batch (2 GiB); an entry larger than this alone still goes, in a write of its own.
const MAX_BYTES_PER_COMMIT: usize = 64 * 1024 * 1024;

/// A change to the log, in call order.
enum Op {
    Append {
        /// The entries as the engine takes them, and their log ids, in the same order.
        values: Vec<BytesValue>,
        ids: Vec<LogId>,
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

struct Shared {
    engine: Engine,
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

impl Op {
    /// The bytes of entries it writes.
    fn bytes(&self) -> usize {
        match self {
            Op::Append { values, .. } => values.iter().map(|v| v.value.len()).sum(),
            _ => 0,
        }
    }
}

impl Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore")
    }
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
    /// Opens the log in the directory `dir` (creating it) and starts its writer thread. A log
    /// that an earlier berth kept in the state database `legacy` is moved into it first.
    pub fn open(dir: &Path, legacy: &SharedDb) -> Result<Self, StoreError> {
        Self::open_inner(dir, legacy).map_err(|e| StoreError::Raft {
            during: "opening the log",
            reason: e.to_string(),
        })
    }

    fn open_inner(dir: &Path, legacy: &SharedDb) -> Result<Self, Box<StorageError>> {
        let config = EngineConfig {
            dir: dir.to_string_lossy().into_owned(),
            // Entries are written as they are: compressing them costs CPU on every append.
            batch_compression_threshold: raft_engine::ReadableSize::gb(1),
            ..EngineConfig::default()
        };
        let engine = Engine::open(config).map_err(write_err)?;
        migrate(&engine, legacy)?;
        let get = |key: &[u8]| -> Result<Option<LogId>, Box<StorageError>> {
            match engine.get(GROUP, key) {
                Some(v) => Ok(codec::decode_log_id(&v).map_err(read_err)?),
                None => Ok(None),
            }
        };
        let last_purged = get(META_PURGED)?;
        let committed = get(META_COMMITTED)?;
        let mut last_index = engine.last_index(GROUP);
        if let Some(from) = engine.get(GROUP, META_TRUNCATED) {
            let from =
                u64::from_be_bytes(from.try_into().map_err(|_| read_err("truncation mark"))?);
            last_index = last_index.map(|l| l.min(from.saturating_sub(1)));
        }
        let first_index = engine.first_index(GROUP);
        let last_entry = match (first_index, last_index) {
            (Some(first), Some(last)) if last >= first => {
                let e = engine
                    .get_entry::<Entries>(GROUP, last)
                    .map_err(read_err)?
                    .ok_or_else(|| read_err("the last entry is missing"))?;
                Some(codec::decode_entry(&e.value).map_err(read_err)?.log_id)
            }
            _ => None,
        };
        let shared = Arc::new(Shared {
            engine,
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

    fn meta(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.shared.engine.get(GROUP, key)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        // Pending first: an entry leaves the pending map only after its batch was written, so
        // one not found there is in the engine, read below.
        let mut found: BTreeMap<u64, Entry> = self
            .tail()
            .pending
            .range(range.clone())
            .map(|(i, e)| (*i, e.clone()))
            .collect();
        // Replication asks for entries just appended: when the pending map holds them all,
        // the engine (a file read and a decode per entry) is not needed.
        if let Some(wanted) = bounded_len(&range)
            && found.len() as u64 == wanted
        {
            return Ok(found.into_values().collect());
        }
        // The engine, within the log's ends as this store knows them (a truncated tail may
        // still be in the engine).
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let (first, last) = {
            let tail = self.tail();
            let first = tail.last_purged.map_or(0, |p| p.index + 1);
            (first, tail.last_log_id.map(|l| l.index))
        };
        let Some(last) = last else {
            return Ok(found.into_values().collect());
        };
        let start = match range.start_bound() {
            Included(s) => *s,
            Excluded(s) => s.saturating_add(1),
            Unbounded => 0,
        }
        .max(first)
        .max(self.shared.engine.first_index(GROUP).unwrap_or(u64::MAX));
        let end = match range.end_bound() {
            Included(e) => e.saturating_add(1),
            Excluded(e) => *e,
            Unbounded => u64::MAX,
        }
        .min(last + 1)
        .min(self.shared.engine.last_index(GROUP).map_or(0, |l| l + 1));
        if start < end {
            let mut rows = Vec::new();
            self.shared
                .engine
                .fetch_entries_to::<Entries>(GROUP, start, end, None, &mut rows)
                .map_err(read_err)?;
            for row in rows {
                let entry = codec::decode_entry(&row.value).map_err(read_err)?;
                found.entry(entry.log_id.index).or_insert(entry);
            }
        }
        let out: Vec<Entry> = found.into_values().collect();
        Ok(out)
    }
}

/// Moves a log kept in the state database by an earlier berth into the engine: written there
/// (with an fsync) before it is removed from the database, so a crash in between leaves it in
/// both, and the next open only removes it. An engine that already holds a log keeps it.
fn migrate(engine: &Engine, legacy: &SharedDb) -> Result<(), Box<StorageError>> {
    let db = legacy
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut txn = db.begin_write().map_err(write_err)?;
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(read_err)?
        .map(|t| t.name().to_owned())
        .collect();
    let exists = |name: &str| tables.iter().any(|t| t == name);
    let (has_log, has_raft_meta) = (exists(LEGACY_LOG.name()), exists(RAFT_META.name()));
    if !has_log && !has_raft_meta && !exists(crate::backend::META_TABLE) {
        // A new database: nothing to move, and its tables are the backend's to create.
        return Ok(());
    }
    let mut meta: Vec<(&[u8], Vec<u8>)> = Vec::new();
    if has_raft_meta {
        let table = txn.open_table(RAFT_META).map_err(read_err)?;
        for (name, key) in LEGACY_META {
            if let Some(v) = table.get(name).map_err(read_err)? {
                meta.push((key, v.value().to_vec()));
            }
        }
    }
    let engine_empty = engine.get(GROUP, META_VOTE).is_none() && engine.last_index(GROUP).is_none();
    if engine_empty && (has_log || !meta.is_empty()) {
        let mut batch = LogBatch::default();
        for (key, value) in &meta {
            batch
                .put(GROUP, key.to_vec(), value.clone())
                .map_err(write_err)?;
        }
        if has_log {
            let log = txn.open_table(LEGACY_LOG).map_err(read_err)?;
            let mut entries = Vec::new();
            for row in log.iter().map_err(read_err)? {
                let (_, bytes) = row.map_err(read_err)?;
                entries.push(wrap(bytes.value().to_vec()));
            }
            // In bounded batches: a log may hold up to `--snapshot-count` entries of up to
            // 4 MiB each, and the engine refuses a batch over 2 GiB.
            for chunk in entries.chunks(256) {
                batch
                    .add_entries::<Entries>(GROUP, chunk)
                    .map_err(write_err)?;
                engine.write(&mut batch, false).map_err(write_err)?;
            }
        }
        engine.write(&mut batch, true).map_err(write_err)?;
        engine.sync().map_err(write_err)?;
        tracing::info!(
            "moved the raft log out of the state database into {}",
            engine.path()
        );
    }
    if has_raft_meta {
        let mut table = txn.open_table(RAFT_META).map_err(write_err)?;
        for (name, _) in LEGACY_META {
            table.remove(name).map_err(write_err)?;
        }
    }
    if has_log {
        txn.delete_table(LEGACY_LOG).map_err(write_err)?;
    }
    if exists(crate::backend::META_TABLE) {
        crate::backend::mark_log_moved(&txn).map_err(write_err)?;
    }
    txn.set_durability(Durability::Immediate)
        .map_err(write_err)?;
    txn.commit().map_err(write_err)?;
    Ok(())
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
        match self.meta(META_VOTE) {
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
        let (mut values, mut ids) = (Vec::new(), Vec::new());
        {
            let mut tail = self.tail();
            for entry in entries {
                values.push(encode(&entry));
                ids.push(entry.log_id);
                tail.last_log_id = Some(entry.log_id);
                tail.pending.insert(entry.log_id.index, entry);
            }
        }
        if values.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.ops
            .send(Op::Append {
                values,
                ids,
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
        let mut bytes: usize = ops.iter().map(Op::bytes).sum();
        while ops.len() < MAX_OPS_PER_COMMIT && bytes < MAX_BYTES_PER_COMMIT {
            match rx.try_recv() {
                Ok(op) => {
                    bytes += op.bytes();
                    ops.push(op);
                }
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
        let mut done: Vec<LogId> = Vec::new();
        for op in ops {
            let reply = result.clone();
            match op {
                Op::Append { ids, flushed, .. } => {
                    done.extend(ids);
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
            for log_id in done {
                if tail
                    .pending
                    .get(&log_id.index)
                    .is_some_and(|e| e.log_id == log_id)
                {
                    tail.pending.remove(&log_id.index);
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

/// An entry as the engine stores it: berth's own encoding in a `BytesValue`.
fn encode(entry: &Entry) -> BytesValue {
    wrap(codec::encode_entry(entry))
}

fn wrap(encoded: Vec<u8>) -> BytesValue {
    let mut value = BytesValue::new();
    value.value = encoded;
    value
}

/// Adds appended entries to `batch`; they overwrite any the engine holds from their first
/// index on, so a truncation before them is complete once they are written.
fn add_appended(batch: &mut LogBatch, values: &[BytesValue]) -> Result<(), raft_engine::Error> {
    batch.add_entries::<Entries>(GROUP, values)?;
    batch.delete(GROUP, META_TRUNCATED.to_vec());
    Ok(())
}

fn write_ops(shared: &Shared, ops: &[Op]) -> Result<(), raft_engine::Error> {
    let mut batch = LogBatch::default();
    let mut purged = false;
    for op in ops {
        match op {
            Op::Append { values, .. } => add_appended(&mut batch, values)?,
            Op::Vote(bytes, _) => batch.put(GROUP, META_VOTE.to_vec(), bytes.clone())?,
            Op::Committed(bytes) => batch.put(GROUP, META_COMMITTED.to_vec(), bytes.clone())?,
            Op::Truncate(from, _) => {
                batch.put(GROUP, META_TRUNCATED.to_vec(), from.to_be_bytes().to_vec())?;
            }
            Op::Purge(upto, _) => {
                batch.add_command(
                    GROUP,
                    EngineCommand::Compact {
                        index: upto.index + 1,
                    },
                );
                batch.put(
                    GROUP,
                    META_PURGED.to_vec(),
                    codec::encode_log_id(Some(upto)),
                )?;
                purged = true;
            }
        }
    }
    shared.engine.write(&mut batch, true)?;
    shared.durable_commits.fetch_add(1, Ordering::Relaxed);
    if purged {
        shared.engine.purge_expired_files()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use redb::ReadableDatabase;

    use super::*;
    use crate::backend::RedbBackend;

    const FORMAT: TableDefinition<&str, u64> = TableDefinition::new("meta");

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// Writes entries as an append does, without openraft's flush callback (which only openraft
    /// can make).
    fn write_entries(store: &LogStore, entries: &[Entry]) {
        let values: Vec<BytesValue> = entries.iter().map(encode).collect();
        let mut batch = LogBatch::default();
        add_appended(&mut batch, &values).unwrap();
        store.shared.engine.write(&mut batch, true).unwrap();
        store.tail().last_log_id = entries.last().map(|e| e.log_id);
    }

    fn open(dir: &Path, db: &SharedDb) -> LogStore {
        // The previous handle's writer thread lets go of the engine's lock as it ends.
        for _ in 0..100 {
            if let Ok(store) = LogStore::open(&dir.join("log"), db) {
                return store;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        LogStore::open(&dir.join("log"), db).unwrap()
    }

    async fn indexes(store: &mut LogStore) -> Vec<(u64, u64)> {
        let state = store.get_log_state().await.unwrap();
        let entries = store.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(
            state.last_log_id,
            entries.last().map(|e| e.log_id),
            "the log's end as reported and as read"
        );
        entries
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[tokio::test]
    async fn a_truncated_tail_stays_gone_after_a_restart_until_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbBackend::open(dir.path()).unwrap().database();
        let mut store = open(dir.path(), &db);
        write_entries(&store, &(1..=5).map(|i| entry(1, i)).collect::<Vec<_>>());
        store.truncate(entry(1, 3).log_id).await.unwrap();
        assert_eq!(indexes(&mut store).await, [(1, 1), (1, 2)]);
        drop(store);

        // The engine cannot drop a tail: the mark written with the truncation hides it.
        let mut store = open(dir.path(), &db);
        assert_eq!(indexes(&mut store).await, [(1, 1), (1, 2)]);

        // A leader's entries replace the old tail, and the mark goes with them.
        write_entries(&store, &[entry(2, 3)]);
        drop(store);
        let mut store = open(dir.path(), &db);
        assert_eq!(indexes(&mut store).await, [(1, 1), (1, 2), (2, 3)]);
        assert!(store.shared.engine.get(GROUP, META_TRUNCATED).is_none());
    }

    #[tokio::test]
    async fn a_log_kept_in_the_state_database_moves_into_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbBackend::open(dir.path()).unwrap().database();
        let vote = Vote::new_committed(3, 1);
        let purged = entry(2, 4).log_id;
        {
            // What berth before ADR 0407 wrote: the log in `raft_log`, raft's records in
            // `raft_meta`.
            let guard = db.read().unwrap();
            let txn = guard.begin_write().unwrap();
            {
                let mut log = txn.open_table(LEGACY_LOG).unwrap();
                for e in (5..=7).map(|i| entry(3, i)) {
                    log.insert(e.log_id.index, codec::encode_entry(&e).as_slice())
                        .unwrap();
                }
                let mut meta = txn.open_table(RAFT_META).unwrap();
                meta.insert("vote", codec::encode_vote(&vote).as_slice())
                    .unwrap();
                meta.insert(
                    "last_purged",
                    codec::encode_log_id(Some(&purged)).as_slice(),
                )
                .unwrap();
                meta.insert(
                    "committed",
                    codec::encode_log_id(Some(&entry(3, 6).log_id)).as_slice(),
                )
                .unwrap();
                txn.open_table(FORMAT)
                    .unwrap()
                    .insert("format_version", 2)
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let mut store = open(dir.path(), &db);
        assert_eq!(indexes(&mut store).await, [(3, 5), (3, 6), (3, 7)]);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(entry(3, 6).log_id)
        );
        {
            let guard = db.read().unwrap();
            let txn = guard.begin_read().unwrap();
            assert!(
                txn.open_table(LEGACY_LOG).is_err(),
                "the old table is dropped"
            );
            let meta = txn.open_table(RAFT_META).unwrap();
            assert!(meta.get("vote").unwrap().is_none());
        }
        // The database is marked as the layout that berth reads now, which older berth refuses.
        let format = db
            .read()
            .unwrap()
            .begin_read()
            .unwrap()
            .open_table(FORMAT)
            .unwrap()
            .get("format_version")
            .unwrap()
            .map(|v| v.value());
        assert_eq!(format, Some(3));
        drop(store);
        // Opening again finds the log in the engine only.
        let mut store = open(dir.path(), &db);
        assert_eq!(indexes(&mut store).await, [(3, 5), (3, 6), (3, 7)]);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    }
}
