//! A backend that keeps nothing: for tests of the node shell that need no disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
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
    gate: Option<Mutex<Gate>>,
    failing: bool,
}

/// Where a test holds commits: each says it has begun on `entered`, then waits for a message
/// on `open` (or for its sender to be dropped).
#[derive(Debug)]
struct Gate {
    entered: mpsc::Sender<()>,
    open: mpsc::Receiver<()>,
}

impl MemoryBackend {
    /// A backend whose commits take `delay`, counting them into `commits`.
    pub fn new(commits: Arc<AtomicU64>, delay: Duration) -> Self {
        Self {
            commits,
            delay,
            ..Self::default()
        }
    }

    /// Each commit first sends on `entered`, then waits for a message on `open` or for its
    /// sender to be dropped.
    pub fn with_gate(mut self, entered: mpsc::Sender<()>, open: mpsc::Receiver<()>) -> Self {
        self.gate = Some(Mutex::new(Gate { entered, open }));
        self
    }

    /// Every commit fails, as a full or broken disk would make it.
    pub fn failing(mut self) -> Self {
        self.failing = true;
        self
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
        if let Some(gate) = &self.gate {
            let gate = gate.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = gate.entered.send(());
            let _ = gate.open.recv();
        }
        std::thread::sleep(self.delay);
        if self.failing {
            return Err(StoreError::Engine {
                during: "commit",
                source: Box::new(redb::Error::Io(std::io::Error::other("the disk is broken"))),
            });
        }
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
