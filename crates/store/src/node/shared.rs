//! The state side of a member: the state machine raft applies to, its backend, the watch hub
//! and lease clock, and what has been published of them. [`super::Node`] is the raft side.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{
    Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak, mpsc,
};
use std::time::Instant;

use etcd_client::proto::{PbEvent, PbKeyValue, PbResponseHeader};

use crate::apply::{Applied, StateMachine, WriteSet};
use crate::backend::Backend;
use crate::config::{BACKEND_BATCH_BYTES, BackendBatch};
use crate::error::StoreError;
use crate::lease::LeaseClock;
use crate::mvcc::KeyRange;
use crate::raft::Response;
use crate::watch::{History, WatchHub};

/// The state that raft's state machine changes and that clients read: the in-memory state, its
/// backend, and what has been published of it.
#[derive(Debug)]
pub struct Shared {
    state: RwLock<StateMachine>,
    backend: Mutex<Box<dyn Backend>>,
    /// Write sets applied (and published) but not yet committed to the backend.
    unflushed: Mutex<Unflushed>,
    backend_batch: BackendBatch,
    /// Wakes the committer thread when a commit is due ([`Shared::flush_if_due`]).
    committer: mpsc::SyncSender<()>,
    /// Why a commit on the committer thread failed. Once set, the store takes no more writes,
    /// and no flush reports the state committed: the failed sets are in the log only.
    commit_failed: OnceLock<String>,
    /// The newest revision applied (hence in the durable log); reads never see past it.
    pub(super) durable: AtomicI64,
    pub(super) hub: WatchHub,
    lease_clock: Mutex<LeaseClock>,
    pub(super) applied: AtomicU64,
    pub(super) db_size: AtomicU64,
    pub(super) no_space: AtomicBool,
    quota: u64,
}

/// Write sets applied but not yet committed to the backend, oldest first. The backend is
/// committed to as [`BackendBatch`] says, not once per applied batch (ADR 0401): each commit
/// rewrites the B-tree pages it touches and the file's allocator state however little it
/// carries, and the log's next fsync writes them all. Until then the index keeps the values
/// in memory, and the durable raft log holds the writes: after a crash they are applied again
/// from it.
#[derive(Debug, Default)]
struct Unflushed {
    sets: Vec<WriteSet>,
    changes: usize,
    bytes: usize,
    /// When the oldest of `sets` was staged.
    since: Option<Instant>,
    /// Sets the committer thread took and has not yet reported committed.
    committing: usize,
}

impl Unflushed {
    /// Takes the queued sets, oldest first, leaving the count of sets being committed alone.
    fn take(&mut self) -> Vec<WriteSet> {
        self.changes = 0;
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.sets)
    }

    fn due(&self, batch: &BackendBatch, now: Instant) -> bool {
        self.changes >= batch.limit
            || self.bytes >= BACKEND_BATCH_BYTES
            || self
                .since
                .is_some_and(|since| now.duration_since(since) >= batch.interval)
    }
}

/// What the backend loaded besides the state.
#[derive(Debug)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The raft state machine's applied state, as the backend stored it.
    pub raft_applied: Option<Vec<u8>>,
}

impl Shared {
    /// Loads the state from `backend`; `quota` is the space quota (bytes) for the NOSPACE alarm;
    /// `ids` (member, cluster) replace the ones the backend chose (a cluster member's derive
    /// from its flags).
    pub fn load(
        mut backend: Box<dyn Backend>,
        quota: u64,
        backend_batch: BackendBatch,
        ids: Option<(u64, u64)>,
    ) -> Result<(Arc<Self>, Identity), StoreError> {
        let mut loaded = backend.load()?;
        if let Some((member_id, cluster_id)) = ids {
            loaded.member_id = member_id;
            loaded.cluster_id = cluster_id;
        }
        let revision = loaded.state.index().current_revision();
        let mut clock = LeaseClock::default();
        let now = Instant::now();
        for (id, ttl) in loaded.state.leases().all() {
            clock.renew(id, ttl, now);
        }
        let header = PbResponseHeader {
            cluster_id: loaded.cluster_id,
            member_id: loaded.member_id,
            revision,
            raft_term: 1,
        };
        let size = backend.size_bytes();
        let (committer, wake) = mpsc::sync_channel(1);
        let shared = Arc::new(Self {
            applied: AtomicU64::new(loaded.state.applied_index()),
            state: RwLock::new(loaded.state),
            backend: Mutex::new(backend),
            unflushed: Mutex::new(Unflushed::default()),
            backend_batch,
            committer,
            commit_failed: OnceLock::new(),
            durable: AtomicI64::new(revision),
            hub: WatchHub::new(header, revision),
            lease_clock: Mutex::new(clock),
            db_size: AtomicU64::new(size),
            no_space: AtomicBool::new(false),
            quota,
        });
        shared.check_quota(size);
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("store-commit".to_owned())
            .spawn(move || run_committer(&weak, &wake))
            .map_err(StoreError::CommitterThread)?;
        let identity = Identity {
            member_id: loaded.member_id,
            cluster_id: loaded.cluster_id,
            raft_applied: loaded.raft_applied,
        };
        Ok((shared, identity))
    }

    pub(crate) fn state_read(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state_write(&self) -> RwLockWriteGuard<'_, StateMachine> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn backend(&self) -> std::sync::MutexGuard<'_, Box<dyn Backend>> {
        self.backend.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unflushed(&self) -> std::sync::MutexGuard<'_, Unflushed> {
        self.unflushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the write set of a batch just applied for the backend. Called under the state's
    /// write lock, so that whoever holds the state's lock sees every applied batch either
    /// committed or queued.
    pub(crate) fn stage(&self, ws: WriteSet) {
        let mut unflushed = self.unflushed();
        unflushed.changes += ws.changes.len() + ws.removed.len();
        unflushed.bytes += ws
            .changes
            .iter()
            .map(|(_, key, kv)| key.len() + kv.as_ref().map_or(0, |kv| kv.value.len()))
            .sum::<usize>();
        unflushed.since.get_or_insert_with(Instant::now);
        unflushed.sets.push(ws);
    }

    /// Whether every applied batch is committed to the backend (then the index may drop the
    /// values it holds: they can be read back from the backend).
    pub(crate) fn all_flushed(&self) -> bool {
        let unflushed = self.unflushed();
        unflushed.sets.is_empty() && unflushed.committing == 0
    }

    /// Called after each apply: wakes the committer thread if enough write sets are waiting,
    /// or long enough. The commit (a redb transaction and its fsync, about a millisecond) runs
    /// there, not here on raft's apply path, where it held every write behind it
    /// (bench/store/RESULTS.md, runs 16-20).
    pub(crate) fn flush_if_due(&self) -> Result<(), StoreError> {
        if self.commit_failed.get().is_some() {
            return Err(StoreError::WriterStopped);
        }
        if self.unflushed().due(&self.backend_batch, Instant::now()) {
            // Full: a wake-up is pending already, and that commit takes every set queued.
            let _ = self.committer.try_send(());
        }
        Ok(())
    }

    /// Commits every queued write set to the backend, in one commit, after the committer's
    /// commit under way if there is one. Before a snapshot is described (the log is purged
    /// behind it) and at a clean stop.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let mut unflushed = self.unflushed();
        // Taken even with nothing queued: it waits out a commit under way on the committer
        // thread, whose sets the caller (a snapshot about to purge the log) counts on.
        let mut backend = self.backend();
        if self.commit_failed.get().is_some() {
            return Err(StoreError::WriterStopped);
        }
        if unflushed.sets.is_empty() {
            return Ok(());
        }
        backend.commit(&unflushed.sets)?;
        unflushed.take();
        self.check_quota(backend.size_bytes());
        Ok(())
    }

    /// The committer thread's commit: every queued set, in one transaction. The backend's
    /// lock is taken before the queue's is let go, so sets reach the backend in the order they
    /// were applied.
    fn commit_queued(&self) {
        let mut unflushed = self.unflushed();
        if unflushed.sets.is_empty() || self.commit_failed.get().is_some() {
            return;
        }
        let sets = unflushed.take();
        unflushed.committing += sets.len();
        let mut backend = self.backend();
        drop(unflushed);
        match backend.commit(&sets) {
            Ok(()) => self.check_quota(backend.size_bytes()),
            Err(err) => {
                // Recorded before the backend is let go: a flush waiting for it must not
                // report the state committed without these sets.
                tracing::error!(%err, "store commit failed; the store stops accepting writes");
                let _ = self.commit_failed.set(err.to_string());
            }
        }
        drop(backend);
        self.unflushed().committing -= sets.len();
    }

    /// Replaces the state with an installed snapshot, on disk and in memory.
    pub(crate) fn install(
        &self,
        state: StateMachine,
        raft_applied: &[u8],
    ) -> Result<(), StoreError> {
        let mut state = state;
        let mut current = self.state_write();
        {
            // What waited for the backend is older than the snapshot, which replaces it all.
            let mut unflushed = self.unflushed();
            unflushed.take();
            let mut backend = self.backend();
            backend.replace(&state, raft_applied)?;
            if let Some(source) = backend.value_source() {
                state.set_value_source(source);
            }
        }
        let revision = state.index().current_revision();
        let applied = state.applied_index();
        let now = Instant::now();
        {
            let mut clock = self.clock();
            *clock = LeaseClock::default();
            for (id, ttl) in state.leases().all() {
                clock.renew(id, ttl, now);
            }
        }
        *current = state;
        drop(current);
        self.applied.store(applied, Ordering::Release);
        self.durable.store(revision, Ordering::Release);
        self.hub.advance(revision);
        Ok(())
    }

    pub(super) fn clock(&self) -> std::sync::MutexGuard<'_, LeaseClock> {
        self.lease_clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn no_space(&self) -> bool {
        self.no_space.load(Ordering::Acquire)
    }

    pub(super) fn check_quota(&self, size: u64) {
        self.db_size.store(size, Ordering::Release);
        if size > self.quota {
            if !self.no_space() {
                tracing::warn!(
                    size,
                    quota = self.quota,
                    "store over quota: NOSPACE alarm raised"
                );
            }
            self.no_space.store(true, Ordering::Release);
        }
    }

    /// Called by the state machine after a commit: makes the batch visible, then publishes its
    /// events and updates the lease clock.
    pub(crate) fn publish(&self, revision: i64, applied: u64, responses: &mut [Response]) {
        self.applied.store(applied, Ordering::Release);
        self.durable.fetch_max(revision, Ordering::AcqRel);
        let now = Instant::now();
        // The state is read before the hub and the clock are locked (the order every path
        // takes): a watcher that asked for previous key-values gets them from it. Nothing
        // applies until this returns, so it is the state the batch left.
        let state = self.state_read();
        let history = StateView { state: &state };
        let mut clock = self.clock();
        for output in responses.iter_mut().flat_map(|r| r.0.iter_mut()) {
            let events: Vec<PbEvent> = std::mem::take(&mut output.events);
            self.hub.publish(output.revision, &events, &history);
            match &output.result {
                Ok(Applied::LeaseGrant { id, ttl }) => clock.renew(*id, *ttl, now),
                Ok(Applied::LeaseRevoke { id }) => clock.forget(*id),
                _ => {}
            }
        }
        drop(clock);
        drop(state);
        self.hub.advance(revision);
    }
}

/// The state machine seen as watch history.
pub(super) struct StateView<'a> {
    pub(super) state: &'a StateMachine,
}

impl History for StateView<'_> {
    fn compact_revision(&self) -> i64 {
        self.state.index().compact_revision()
    }

    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, PbEvent)>, StoreError> {
        Ok(self
            .state
            .index()
            .events(range, from, to)?
            .into_iter()
            .map(|(rev, ev)| (rev.main, ev))
            .collect())
    }

    fn before(&self, key: &[u8], revision: i64) -> Result<Option<PbKeyValue>, StoreError> {
        self.state.index().get_kv_at(key, revision - 1)
    }
}

/// The committer thread: one commit each time [`Shared::flush_if_due`] wakes it. It ends with
/// the state: dropping the last `Shared` drops the sender.
fn run_committer(shared: &Weak<Shared>, wake: &mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.commit_queued();
    }
}
