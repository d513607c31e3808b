//! The redb backend: one database file holding the state tables and the raft log tables (see
//! docs/formats/store.md). The raft log store (`crate::raft::LogStore`) shares the database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Builder, Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, CHANGES_PER_READ, Loaded, assemble, record};
use crate::apply::{StateMachine, WriteSet};
use crate::error::StoreError;
use crate::lease::LeaseTable;
use crate::mvcc::{KeyIndex, Revision, ValueSource};

/// redb's page cache: the pages of recently written and read values. Values are read back from
/// the file (the index in memory holds keys and revisions only, ADR 0401); pages beyond the
/// cache come from the kernel's page cache, which is not the store's memory.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The version of the on-disk layout this code reads and writes. Version 1 had no raft log:
/// its `applied_index` counted writes, not raft log entries, so it is refused, not migrated.
/// Version 2 kept the raft log in this database; opening the log moves it out (ADR 0407) and
/// marks the database version 3, which berth before that refuses.
pub const FORMAT_VERSION: u64 = 3;
const FORMAT_LOG_INSIDE: u64 = 2;

/// The name of the `meta` table (format version, ids, revisions), which only a database that
/// has been initialised holds.
pub(crate) const META_TABLE: &str = "meta";

/// Marks a database whose raft log has been moved out (or had none) as the current version;
/// the caller commits `txn`. Any other version is left for `load` to refuse.
pub(crate) fn mark_log_moved(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    let found = meta.get(META_FORMAT)?.map(|v| v.value());
    if found == Some(FORMAT_LOG_INSIDE) {
        meta.insert(META_FORMAT, FORMAT_VERSION)?;
    }
    Ok(())
}

/// The database, shared by the state backend and the raft log store. Transactions take the lock
/// shared; only defragmenting (which needs the database alone) takes it exclusively.
pub type SharedDb = Arc<RwLock<Database>>;

/// Raft's own records: the vote, the committed and purged log ids (written by the log store)
/// and what the state machine has applied (written with each state commit).
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
pub const RAFT_APPLIED: &str = "applied";

const REVISIONS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("revisions");
const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
const META: TableDefinition<&str, u64> = TableDefinition::new(META_TABLE);

const META_FORMAT: &str = "format_version";
const META_APPLIED: &str = "applied_index";
const META_REVISION: &str = "revision";
const META_COMPACT: &str = "compact_revision";
const META_MEMBER: &str = "member_id";
const META_CLUSTER: &str = "cluster_id";

/// The store's data in `<data-dir>/store.redb`.
#[derive(Debug)]
pub struct RedbBackend {
    db: SharedDb,
    path: PathBuf,
}

impl RedbBackend {
    /// Opens (or creates) the database in `dir`. A database left by a crash is repaired by redb
    /// on open, back to its last completed commit.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("store.redb");
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source: Box::new(source),
            })?;
        Ok(Self {
            db: Arc::new(RwLock::new(db)),
            path,
        })
    }

    /// The database, for the raft log store.
    pub fn database(&self) -> SharedDb {
        Arc::clone(&self.db)
    }

    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the meta table of a new database: format version and ids.
    fn initialise(&self) -> Result<(u64, u64), StoreError> {
        let member_id = rand::random::<u64>() | 1;
        let cluster_id = rand::random::<u64>() | 1;
        let txn = self
            .db()
            .begin_write()
            .map_err(|e| StoreError::engine("initialise", e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::engine("initialise", e))?;
            for (k, v) in [
                (META_FORMAT, FORMAT_VERSION),
                (META_MEMBER, member_id),
                (META_CLUSTER, cluster_id),
            ] {
                meta.insert(k, v)
                    .map_err(|e| StoreError::engine("initialise", e))?;
            }
            txn.open_table(REVISIONS)
                .map_err(|e| StoreError::engine("initialise", e))?;
            txn.open_table(LEASES)
                .map_err(|e| StoreError::engine("initialise", e))?;
            txn.open_table(RAFT_META)
                .map_err(|e| StoreError::engine("initialise", e))?;
        }
        txn.commit()
            .map_err(|e| StoreError::engine("initialise", e))?;
        Ok((member_id, cluster_id))
    }
}

impl RedbBackend {
    fn values(&self) -> Arc<dyn ValueSource> {
        Arc::new(RedbValues {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
        })
    }
}

/// The values of committed puts, read back from the `revisions` table: the index keeps only
/// keys and revisions in memory (ADR 0401).
#[derive(Debug)]
struct RedbValues {
    db: SharedDb,
    path: PathBuf,
}

impl RedbValues {
    /// The `revisions` table in a read transaction begun now.
    fn table(&self) -> Result<Revisions, StoreError> {
        let db = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = db
            .begin_read()
            .map_err(|e| StoreError::engine("read values", e))?;
        txn.open_table(REVISIONS)
            .map_err(|e| StoreError::engine("read values", e))
    }
}

type Revisions = redb::ReadOnlyTable<(i64, i64), &'static [u8]>;

impl ValueSource for RedbValues {
    fn values(&self, revs: &[Revision]) -> Result<Vec<Vec<u8>>, StoreError> {
        values_in(&self.table()?, &self.path, revs)
    }

    fn pinned(&self) -> Result<Arc<dyn ValueSource>, StoreError> {
        Ok(Arc::new(PinnedValues {
            table: Arc::new(self.table()?),
            path: self.path.clone(),
        }))
    }
}

/// The values as one read transaction sees them. While it lives, redb keeps the pages it
/// reads, and defragmenting fails (`TransactionInProgress`) instead of waiting.
struct PinnedValues {
    table: Arc<Revisions>,
    path: PathBuf,
}

impl std::fmt::Debug for PinnedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedValues")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ValueSource for PinnedValues {
    fn values(&self, revs: &[Revision]) -> Result<Vec<Vec<u8>>, StoreError> {
        values_in(&self.table, &self.path, revs)
    }

    /// Already pinned: the same view.
    fn pinned(&self) -> Result<Arc<dyn ValueSource>, StoreError> {
        Ok(Arc::new(Self {
            table: Arc::clone(&self.table),
            path: self.path.clone(),
        }))
    }
}

/// The values of the puts at `revs` in `table` (records of the data file at `path`).
fn values_in(
    table: &Revisions,
    path: &Path,
    revs: &[Revision],
) -> Result<Vec<Vec<u8>>, StoreError> {
    revs.iter()
        .map(|rev| {
            let row = table
                .get((rev.main, rev.sub))
                .map_err(|e| StoreError::engine("read values", e))?
                .ok_or_else(|| StoreError::MissingRecord {
                    path: path.to_owned(),
                    main: rev.main,
                    sub: rev.sub,
                })?;
            record::decode_parts(row.value())
                .map(|(_, _, value)| value)
                .ok_or_else(|| StoreError::CorruptRecord {
                    path: path.to_owned(),
                    revision: rev.main,
                })
        })
        .collect()
}

fn meta_get(
    table: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(table
        .get(key)
        .map_err(|e| StoreError::engine("load meta", e))?
        .map(|g| g.value()))
}

fn as_i64(v: Option<u64>) -> i64 {
    v.and_then(|v| i64::try_from(v).ok()).unwrap_or(0)
}

impl Backend for RedbBackend {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let fresh = {
            let txn = self
                .db()
                .begin_read()
                .map_err(|e| StoreError::engine("load", e))?;
            match txn.open_table(META) {
                Ok(_) => false,
                Err(redb::TableError::TableDoesNotExist(_)) => true,
                Err(e) => return Err(StoreError::engine("load", e)),
            }
        };
        if fresh {
            let (member_id, cluster_id) = self.initialise()?;
            let mut state = StateMachine::default();
            state.set_value_source(self.values());
            return Ok(Loaded {
                state,
                member_id,
                cluster_id,
                raft_applied: None,
            });
        }
        let txn = self
            .db()
            .begin_read()
            .map_err(|e| StoreError::engine("load", e))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| StoreError::engine("load", e))?;
        let found = meta_get(&meta, META_FORMAT)?.unwrap_or(0);
        if found != FORMAT_VERSION {
            return Err(StoreError::FormatVersion {
                path: self.path.clone(),
                found,
                expected: FORMAT_VERSION,
            });
        }
        let mut leases = LeaseTable::default();
        let lease_table = txn
            .open_table(LEASES)
            .map_err(|e| StoreError::engine("load leases", e))?;
        for row in lease_table
            .iter()
            .map_err(|e| StoreError::engine("load leases", e))?
        {
            let (id, ttl) = row.map_err(|e| StoreError::engine("load leases", e))?;
            leases.grant(id.value(), ttl.value());
        }
        let mut index = KeyIndex::default();
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(|e| StoreError::engine("load revisions", e))?;
        for row in revisions
            .iter()
            .map_err(|e| StoreError::engine("load revisions", e))?
        {
            let (rev, bytes) = row.map_err(|e| StoreError::engine("load revisions", e))?;
            let (main, sub) = rev.value();
            let (key, meta, _value) =
                record::decode_parts(bytes.value()).ok_or(StoreError::CorruptRecord {
                    path: self.path.clone(),
                    revision: main,
                })?;
            index.restore(&key, Revision { main, sub }, meta, None);
        }
        // Values stay in the file; the index reads them back when a read returns them.
        index.set_value_source(self.values());
        let revision = as_i64(meta_get(&meta, META_REVISION)?);
        let compact = meta_get(&meta, META_COMPACT)?.map_or(-1, |c| as_i64(Some(c)));
        let applied = meta_get(&meta, META_APPLIED)?.unwrap_or(0);
        let raft_applied = txn
            .open_table(RAFT_META)
            .and_then(|t| Ok(t.get(RAFT_APPLIED)?.map(|g| g.value().to_vec())))
            .map_err(|e| StoreError::engine("load raft state", e))?;
        Ok(Loaded {
            state: assemble(index, leases, revision, compact, applied),
            member_id: meta_get(&meta, META_MEMBER)?.unwrap_or(1),
            cluster_id: meta_get(&meta, META_CLUSTER)?.unwrap_or(1),
            raft_applied,
        })
    }

    fn commit(&mut self, sets: &[WriteSet]) -> Result<(), StoreError> {
        let err = |e: redb::Error| StoreError::Engine {
            during: "commit",
            source: Box::new(e),
        };
        let Some(last) = sets.last() else {
            return Ok(());
        };
        let db = self.db();
        let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        {
            let mut revs = txn.open_table(REVISIONS).map_err(|e| err(e.into()))?;
            let mut leases = txn.open_table(LEASES).map_err(|e| err(e.into()))?;
            // In the order applied: a lease ID may be revoked and granted again.
            for ws in sets {
                for (rev, key, kv) in &ws.changes {
                    let rec = record::encode(key, kv.as_ref());
                    revs.insert((rev.main, rev.sub), rec.as_slice())
                        .map_err(|e| err(e.into()))?;
                }
                for rev in &ws.removed {
                    revs.remove((rev.main, rev.sub))
                        .map_err(|e| err(e.into()))?;
                }
                for (id, ttl) in &ws.leases_granted {
                    leases.insert(id, ttl).map_err(|e| err(e.into()))?;
                }
                for id in &ws.leases_revoked {
                    leases.remove(id).map_err(|e| err(e.into()))?;
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            meta.insert(META_APPLIED, last.applied_index)
                .map_err(|e| err(e.into()))?;
            meta.insert(META_REVISION, u64::try_from(last.revision).unwrap_or(0))
                .map_err(|e| err(e.into()))?;
            if let Some(c) = sets.iter().rev().find_map(|ws| ws.compact_revision) {
                meta.insert(META_COMPACT, u64::try_from(c).unwrap_or(0))
                    .map_err(|e| err(e.into()))?;
            }
            if let Some(ws) = sets.iter().rev().find(|ws| !ws.raft_applied.is_empty()) {
                let mut raft = txn.open_table(RAFT_META).map_err(|e| err(e.into()))?;
                raft.insert(RAFT_APPLIED, ws.raft_applied.as_slice())
                    .map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))
    }

    fn replace(&mut self, state: &StateMachine, raft_applied: &[u8]) -> Result<(), StoreError> {
        let err = |e: redb::Error| StoreError::Engine {
            during: "install snapshot",
            source: Box::new(e),
        };
        let db = self.db();
        let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        {
            txn.delete_table(REVISIONS).map_err(|e| err(e.into()))?;
            txn.delete_table(LEASES).map_err(|e| err(e.into()))?;
            let mut revs = txn.open_table(REVISIONS).map_err(|e| err(e.into()))?;
            state
                .index()
                .for_each_change(i64::MAX, CHANGES_PER_READ, |changes| {
                    for (rev, key, kv) in changes {
                        let rec = record::encode(key, kv.as_ref());
                        revs.insert((rev.main, rev.sub), rec.as_slice())
                            .map_err(|e| err(e.into()))?;
                    }
                    Ok(())
                })?;
            let mut leases = txn.open_table(LEASES).map_err(|e| err(e.into()))?;
            for (id, ttl) in state.leases().all() {
                leases.insert(id, ttl).map_err(|e| err(e.into()))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let revision = state.index().current_revision();
            let compact = state.index().compact_revision();
            meta.insert(META_APPLIED, state.applied_index())
                .map_err(|e| err(e.into()))?;
            meta.insert(META_REVISION, u64::try_from(revision).unwrap_or(0))
                .map_err(|e| err(e.into()))?;
            if compact >= 0 {
                meta.insert(META_COMPACT, u64::try_from(compact).unwrap_or(0))
                    .map_err(|e| err(e.into()))?;
            } else {
                meta.remove(META_COMPACT).map_err(|e| err(e.into()))?;
            }
            let mut raft = txn.open_table(RAFT_META).map_err(|e| err(e.into()))?;
            raft.insert(RAFT_APPLIED, raft_applied)
                .map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))
    }

    fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn value_source(&self) -> Option<Arc<dyn ValueSource>> {
        Some(self.values())
    }

    fn defragment(&mut self) -> Result<(), StoreError> {
        self.db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .compact()
            .map(|_| ())
            .map_err(|e| StoreError::engine("defragment", e))
    }
}

#[cfg(test)]
mod tests {
    use etcd_client::proto::PbPutRequest;

    use super::*;
    use crate::apply::{Command, LogEntry};

    #[test]
    fn committed_writes_and_compaction_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = RedbBackend::open(dir.path()).unwrap();
        let mut state = b.load().unwrap().state;
        for (i, cmd) in [
            Command::LeaseGrant { id: 7, ttl: 30 },
            Command::Put(PbPutRequest {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                lease: 7,
                ..PbPutRequest::default()
            }),
            Command::Put(PbPutRequest {
                key: b"a".to_vec(),
                value: b"2".to_vec(),
                lease: 7,
                ..PbPutRequest::default()
            }),
            Command::Compact { revision: 3 },
        ]
        .into_iter()
        .enumerate()
        {
            let mut ws = WriteSet::default();
            let index = u64::try_from(i).unwrap() + 1;
            assert!(
                state
                    .apply(
                        &LogEntry {
                            index,
                            command: cmd
                        },
                        &mut ws
                    )
                    .result
                    .is_ok()
            );
            b.commit(std::slice::from_ref(&ws)).unwrap();
        }
        // The state reads values through the database: both let go of it before it reopens.
        drop(state);
        drop(b);
        let mut b = RedbBackend::open(dir.path()).unwrap();
        let loaded = b.load().unwrap().state;
        assert_eq!(loaded.index().current_revision(), 3);
        assert_eq!(loaded.index().compact_revision(), 3);
        assert_eq!(loaded.applied_index(), 4);
        assert_eq!(loaded.leases().keys(7), vec![b"a".to_vec()]);
        assert_eq!(
            loaded.index().get_at(b"a", 3).map(|kv| kv.meta.version),
            Some(2)
        );
    }

    #[test]
    fn committed_values_are_read_from_the_file_not_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = RedbBackend::open(dir.path()).unwrap();
        // A new database as much as a reopened one: values leave memory once committed.
        let mut state = b.load().unwrap().state;
        let mut ws = WriteSet::default();
        let put = Command::Put(PbPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..PbPutRequest::default()
        });
        let entry = LogEntry {
            index: 1,
            command: put,
        };
        assert!(state.apply(&entry, &mut ws).result.is_ok());
        b.commit(std::slice::from_ref(&ws)).unwrap();
        state.persisted();
        let read = |state: &StateMachine| {
            state
                .index()
                .get_kv_at(b"k", 2)
                .map(|kv| kv.map(|kv| kv.value))
        };
        assert_eq!(read(&state).unwrap(), Some(b"v".to_vec()));
        // Take the record away behind the index's back: the value must now be missing.
        let db = b.database();
        let txn = db.read().unwrap().begin_write().unwrap();
        txn.open_table(REVISIONS).unwrap().remove((2, 0)).unwrap();
        txn.commit().unwrap();
        assert!(matches!(
            read(&state),
            Err(StoreError::MissingRecord {
                main: 2,
                sub: 0,
                ..
            })
        ));
    }

    #[test]
    fn a_format_1_directory_is_refused_with_a_message_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = RedbBackend::open(dir.path()).unwrap();
        b.load().unwrap();
        {
            let db = b.db();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_FORMAT, 1)
                .unwrap();
            txn.commit().unwrap();
        }
        drop(b);
        let err = RedbBackend::open(dir.path()).unwrap().load().unwrap_err();
        assert!(matches!(
            err,
            StoreError::FormatVersion {
                found: 1,
                expected: 3,
                ..
            }
        ));
        assert!(err.to_string().contains("predates the raft log"), "{err}");
    }
}
