//! Persistence of the state machine: a narrow trait, the redb implementation, and an in-memory
//! fake for tests of the node shell.

mod memory;
mod record;
mod redb_backend;
mod snapshot;

pub use memory::MemoryBackend;
pub use redb_backend::RedbBackend;
pub use snapshot::{SNAPSHOT_MAGIC, snapshot_bytes};

use crate::apply::{StateMachine, WriteSet};
use crate::error::StoreError;

/// What a backend hands back on start: the state machine as of its last commit.
#[derive(Debug)]
pub struct Loaded {
    pub state: StateMachine,
    /// This member's id and its cluster's id, chosen when the data directory was created.
    pub member_id: u64,
    pub cluster_id: u64,
}

/// Durable storage for the state machine.
///
/// Correctness requires: `commit` returns only once the whole write set is on stable storage,
/// and a crash at any moment leaves either all of a write set or none of it; `load` returns the
/// state of the last completed commit.
pub trait Backend: Send + 'static {
    fn load(&mut self) -> Result<Loaded, StoreError>;
    fn commit(&mut self, ws: &WriteSet) -> Result<(), StoreError>;
    /// Bytes the backend occupies on disk (checked against the space quota).
    fn size_bytes(&self) -> u64;
    /// Gives back unused space to the file system.
    fn defragment(&mut self) -> Result<(), StoreError>;
}
