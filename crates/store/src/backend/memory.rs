//! A backend that keeps nothing: for tests of the node shell that need no disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Backend, Loaded};
use crate::apply::{StateMachine, WriteSet};
use crate::error::StoreError;

/// Commits succeed after an optional delay (a stand-in for fsync) and are forgotten; every
/// start is an empty store. The commit count is shared so a test can read it while the node
/// owns the backend.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    commits: Arc<AtomicU64>,
    delay: Duration,
}

impl MemoryBackend {
    /// A backend whose commits take `delay`, counting them into `commits`.
    pub fn new(commits: Arc<AtomicU64>, delay: Duration) -> Self {
        Self { commits, delay }
    }
}

impl Backend for MemoryBackend {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            state: StateMachine::default(),
            member_id: 1,
            cluster_id: 1,
            raft_applied: None,
        })
    }

    fn commit(&mut self, _sets: &[WriteSet]) -> Result<(), StoreError> {
        std::thread::sleep(self.delay);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn replace(&mut self, _state: &StateMachine, _raft_applied: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        0
    }

    fn defragment(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
