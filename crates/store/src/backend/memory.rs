//! A backend that keeps nothing: for tests of the node shell that need no disk.

use super::{Backend, Loaded};
use crate::apply::{StateMachine, WriteSet};
use crate::error::StoreError;

/// Commits succeed at once and are forgotten; every start is an empty store.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    commits: u64,
}

impl MemoryBackend {
    /// How many commits the node made (group commit folds concurrent writes into one).
    pub fn commits(&self) -> u64 {
        self.commits
    }
}

impl Backend for MemoryBackend {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            state: StateMachine::default(),
            member_id: 1,
            cluster_id: 1,
        })
    }

    fn commit(&mut self, _ws: &WriteSet) -> Result<(), StoreError> {
        self.commits += 1;
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        0
    }

    fn defragment(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
