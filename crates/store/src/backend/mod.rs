//! Persistence of the state machine: a narrow trait, the redb implementation, and an in-memory
//! fake for tests of the node shell.

mod memory;
mod record;
mod redb_backend;
mod snapshot;

use std::sync::Arc;

pub use memory::MemoryBackend;
pub(crate) use redb_backend::{META_TABLE, mark_log_moved};
pub use redb_backend::{RAFT_APPLIED, RAFT_META, RedbBackend, SharedDb};
pub use snapshot::{CHANGES_PER_READ, SNAPSHOT_MAGIC, SnapshotSource, parse_snapshot};

use crate::apply::{StateMachine, WriteSet};
use crate::error::StoreError;
use crate::lease::LeaseTable;
use crate::mvcc::{KeyIndex, KeyRange, ValueSource};

/// What a backend hands back on start: the state machine as of its last commit.
#[derive(Debug)]
pub struct Loaded {
    pub state: StateMachine,
    /// This member's id and its cluster's id, chosen when the data directory was created.
    pub member_id: u64,
    pub cluster_id: u64,
    /// What the raft adapter recorded with the last commit (`WriteSet::raft_applied`).
    pub raft_applied: Option<Vec<u8>>,
}

/// Durable storage for the state machine.
///
/// Correctness requires: a crash at any moment leaves either all of a commit or none of it;
/// `load` returns the state of the last commit that reached the disk, and commits reach the disk
/// in order. A commit need not be on disk when `commit` returns: the raft log, which is, can
/// replay what a crash took (redb: the log's fsync also persists every earlier state commit).
/// One commit carries the write sets of several applied batches, in the order applied.
/// `replace` is on disk when it returns (the log before it may be purged right after).
pub trait Backend: std::fmt::Debug + Send + Sync + 'static {
    fn load(&mut self) -> Result<Loaded, StoreError>;
    fn commit(&mut self, sets: &[WriteSet]) -> Result<(), StoreError>;
    /// Replaces the whole state with `state` (a snapshot was installed).
    fn replace(&mut self, state: &StateMachine, raft_applied: &[u8]) -> Result<(), StoreError>;
    /// Bytes the backend occupies on disk (checked against the space quota).
    fn size_bytes(&self) -> u64;
    /// Gives back unused space to the file system.
    fn defragment(&mut self) -> Result<(), StoreError>;
    /// Where the index reads committed values from; `None` keeps every value in memory.
    fn value_source(&self) -> Option<Arc<dyn ValueSource>> {
        None
    }
}

/// Finishes a state rebuilt from stored records: sets its revisions and attaches every lease to
/// the keys whose newest record names it.
pub fn assemble(
    mut index: KeyIndex,
    mut leases: LeaseTable,
    revision: i64,
    compact_revision: i64,
    applied: u64,
) -> StateMachine {
    index.set_current_revision(index.current_revision().max(revision));
    index.set_compact_revision(compact_revision);
    for kv in index.range_at(&KeyRange::From(Vec::new()), i64::MAX) {
        if kv.meta.lease != 0 {
            leases.attach(kv.meta.lease, kv.key);
        }
    }
    StateMachine::from_parts(index, leases, applied)
}
