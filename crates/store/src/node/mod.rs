//! The node: the thin shell around the pure parts and openraft. Writes are proposed to raft;
//! raft appends them to its log (one fsync per batch), commits them, and hands them to the state
//! machine adapter, which applies them, commits their state and publishes them here. Only then
//! are clients answered and watch events sent. Reads see only applied (hence durable) revisions.

mod proposer;
mod tasks;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use etcd_client::proto::{PbEvent, PbResponseHeader};
use openraft::BasicNode;
use tokio::sync::{mpsc, oneshot};

use crate::apply::{Applied, ApplyOutput, Command, StateMachine, WriteSet};
use crate::backend::Backend;
use crate::config::Config;
use crate::error::{EtcdError, StoreError};
use crate::lease::LeaseClock;
use crate::mvcc::KeyRange;
use crate::raft::{self, LogStore, NoNetwork, Raft, Response, StateMachineStore};
use crate::watch::{History, WatchHub};

pub use proposer::{MAX_BATCH, MAX_BATCH_BYTES};
pub use tasks::spawn_background;

/// The state that raft's state machine changes and that clients read: the in-memory state, its
/// backend, and what has been published of it.
#[derive(Debug)]
pub struct Shared {
    state: RwLock<StateMachine>,
    backend: Mutex<Box<dyn Backend>>,
    /// The newest revision applied (hence in the durable log); reads never see past it.
    durable: AtomicI64,
    hub: WatchHub,
    lease_clock: Mutex<LeaseClock>,
    applied: AtomicU64,
    db_size: AtomicU64,
    no_space: AtomicBool,
    quota: u64,
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
    /// Loads the state from `backend`; `quota` is the space quota (bytes) for the NOSPACE alarm.
    pub fn load(
        mut backend: Box<dyn Backend>,
        quota: u64,
    ) -> Result<(Arc<Self>, Identity), StoreError> {
        let loaded = backend.load()?;
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
        let shared = Arc::new(Self {
            applied: AtomicU64::new(loaded.state.applied_index()),
            state: RwLock::new(loaded.state),
            backend: Mutex::new(backend),
            durable: AtomicI64::new(revision),
            hub: WatchHub::new(header, revision),
            lease_clock: Mutex::new(clock),
            db_size: AtomicU64::new(size),
            no_space: AtomicBool::new(false),
            quota,
        });
        shared.check_quota(size);
        let identity = Identity {
            member_id: loaded.member_id,
            cluster_id: loaded.cluster_id,
            raft_applied: loaded.raft_applied,
        };
        Ok((shared, identity))
    }

    pub(crate) fn state_read(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn state_write(&self) -> RwLockWriteGuard<'_, StateMachine> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn backend(&self) -> std::sync::MutexGuard<'_, Box<dyn Backend>> {
        self.backend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Persists the write set of a batch of applied entries.
    pub(crate) fn commit(&self, ws: &WriteSet) -> Result<(), StoreError> {
        let mut backend = self.backend();
        backend.commit(ws)?;
        self.check_quota(backend.size_bytes());
        Ok(())
    }

    /// Replaces the state with an installed snapshot, on disk and in memory.
    pub(crate) fn install(
        &self,
        state: StateMachine,
        raft_applied: &[u8],
    ) -> Result<(), StoreError> {
        let mut current = self.state_write();
        self.backend().replace(&state, raft_applied)?;
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
        self.hub.publish(revision, &[]);
        Ok(())
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, LeaseClock> {
        self.lease_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn no_space(&self) -> bool {
        self.no_space.load(Ordering::Acquire)
    }

    fn check_quota(&self, size: u64) {
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
        let mut clock = self.clock();
        for output in responses.iter_mut().flat_map(|r| r.0.iter_mut()) {
            let events: Vec<PbEvent> = std::mem::take(&mut output.events);
            self.hub.publish(output.revision, &events);
            match &output.result {
                Ok(Applied::LeaseGrant { id, ttl }) => clock.renew(*id, *ttl, now),
                Ok(Applied::LeaseRevoke { id }) => clock.forget(*id),
                _ => {}
            }
        }
        drop(clock);
        self.hub.publish(revision, &[]);
    }
}

/// One running store member: a one-member raft cluster (issue #7 adds members).
pub struct Node {
    shared: Arc<Shared>,
    raft: Raft,
    proposals: mpsc::Sender<proposer::Proposal>,
    pub config: Config,
    /// This member's id: its raft node id.
    pub member_id: u64,
    pub cluster_id: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("member_id", &self.member_id)
            .field("cluster_id", &self.cluster_id)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Loads the backend, starts raft over `log` and waits until this member leads.
    pub async fn start(
        config: Config,
        backend: Box<dyn Backend>,
        log: LogStore,
    ) -> Result<Arc<Self>, StoreError> {
        let (shared, loaded) = Shared::load(backend, config.quota_backend_bytes)?;
        let sm = StateMachineStore::new(Arc::clone(&shared), loaded.raft_applied.as_deref())?;
        let raft_config = raft::raft_config()
            .validate()
            .map_err(|e| raft_error("configuring", &e))?;
        let member_id = loaded.member_id;
        let raft = Raft::new(member_id, Arc::new(raft_config), NoNetwork, log, sm)
            .await
            .map_err(|e| raft_error("starting", &e))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| raft_error("starting", &e))?;
        if !initialized {
            let addr = config
                .advertise_client_urls
                .first()
                .cloned()
                .unwrap_or_default();
            raft.initialize(BTreeMap::from([(member_id, BasicNode::new(addr))]))
                .await
                .map_err(|e| raft_error("initializing the one-member cluster", &e))?;
        }
        raft.wait(Some(raft::ELECTION_WAIT))
            .current_leader(member_id, "the one member leads")
            .await
            .map_err(|e| raft_error("electing the one member", &e))?;
        let proposals = proposer::spawn(raft.clone());
        Ok(Arc::new(Self {
            shared,
            raft,
            proposals,
            config,
            member_id,
            cluster_id: loaded.cluster_id,
        }))
    }

    /// Proposes a write through raft and waits until it is committed, applied and durable.
    pub async fn propose(&self, command: Command) -> Result<ApplyOutput, EtcdError> {
        let (reply, rx) = oneshot::channel();
        self.proposals
            .send(proposer::Proposal { command, reply })
            .await
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Waits until this member has applied everything committed before the call, as confirmed
    /// by its leadership (raft's read index): a read after it is linearizable.
    pub async fn linearize(&self) -> Result<(), EtcdError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(drop)
            .map_err(|err| {
                tracing::warn!(%err, "read index failed");
                EtcdError::Stopped
            })
    }

    /// Stops raft (its log and state machine tasks).
    pub async fn shutdown(&self) {
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(%err, "raft did not stop cleanly");
        }
    }

    /// Rewrites the backend file to give back free space.
    pub async fn defragment(&self) -> Result<(), EtcdError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut backend = shared.backend();
            let result = backend.defragment();
            shared.check_quota(backend.size_bytes());
            result
        })
        .await
        .map_err(|_| EtcdError::Stopped)?
        .map_err(|err| {
            tracing::error!(%err, "defragment failed");
            EtcdError::Stopped
        })
    }

    /// Reads the state at the newest applied revision.
    pub fn read<T>(&self, f: impl FnOnce(&StateMachine, i64) -> T) -> T {
        let state = self.shared.state_read();
        f(&state, self.durable_revision())
    }

    pub fn durable_revision(&self) -> i64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    pub fn applied_index(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    pub fn db_size(&self) -> u64 {
        self.shared.db_size.load(Ordering::Acquire)
    }

    pub fn hub(&self) -> &WatchHub {
        &self.shared.hub
    }

    pub fn lease_clock(&self) -> std::sync::MutexGuard<'_, LeaseClock> {
        self.shared.clock()
    }

    /// The raft term this member leads in.
    pub fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The members of the cluster, from raft's membership: id and peer address.
    pub fn members(&self) -> Vec<(u64, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term(),
        })
    }

    /// Whether the NOSPACE alarm is raised: writes that grow the store are refused.
    pub fn no_space(&self) -> bool {
        self.shared.no_space()
    }

    pub fn set_no_space(&self, raised: bool) {
        self.shared.no_space.store(raised, Ordering::Release);
    }

    /// Registers a watcher; history comes from the state at the newest published revision.
    pub fn watch(
        &self,
        stream: u64,
        id: i64,
        spec: crate::watch::WatchSpec,
        tx: mpsc::UnboundedSender<etcd_client::proto::PbWatchResponse>,
    ) -> bool {
        let state = self.shared.state_read();
        let view = StateView { state: &state };
        self.shared.hub.watch(stream, id, spec, &view, tx)
    }
}

fn raft_error(during: &'static str, err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Raft {
        during,
        reason: err.to_string(),
    }
}

/// The state machine seen as watch history.
struct StateView<'a> {
    state: &'a StateMachine,
}

impl History for StateView<'_> {
    fn compact_revision(&self) -> i64 {
        self.state.index().compact_revision()
    }

    fn events(&self, range: &KeyRange, from: i64, to: i64) -> Vec<(i64, PbEvent)> {
        self.state
            .index()
            .events(range, from, to)
            .into_iter()
            .map(|(rev, ev)| (rev.main, ev))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etcd_client::proto::PbPutRequest;

    use super::*;
    use crate::backend::{MemoryBackend, RedbBackend};

    fn put(i: usize) -> Command {
        Command::Put(PbPutRequest {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
            ..PbPutRequest::default()
        })
    }

    async fn start(dir: &std::path::Path) -> (Arc<Node>, LogStore) {
        // A stopped node lets go of the database file once its log thread has ended.
        let mut backend = RedbBackend::open(dir);
        for _ in 0..100 {
            if backend.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            backend = RedbBackend::open(dir);
        }
        let backend = backend.unwrap();
        let log = LogStore::open(backend.database()).unwrap();
        let node = Node::start(Config::new("unused".into()), Box::new(backend), log.clone())
            .await
            .unwrap();
        (node, log)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_log_fsyncs_and_each_gets_its_own_revision() {
        let dir = tempfile::tempdir().unwrap();
        let (node, log) = start(dir.path()).await;
        let before = log.durable_commits();
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let node = Arc::clone(&node);
                tokio::spawn(async move { node.propose(put(i)).await.unwrap().revision })
            })
            .collect();
        let mut revisions = Vec::new();
        for w in writes {
            revisions.push(w.await.unwrap());
        }
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 200, "every write has its own revision");
        let fsyncs = log.durable_commits() - before;
        assert!(fsyncs < 100, "writes were not grouped: {fsyncs} fsyncs");
        assert_eq!(node.durable_revision(), 201);
        node.shutdown().await;
    }

    #[tokio::test]
    async fn reads_see_a_write_once_it_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let backend = RedbBackend::open(dir.path()).unwrap();
        let log = LogStore::open(backend.database()).unwrap();
        // The state may live anywhere; the log alone makes writes durable.
        let node = Node::start(
            Config::new("unused".into()),
            Box::new(MemoryBackend::new(Arc::default(), Duration::ZERO)),
            log,
        )
        .await
        .unwrap();
        let rev = node.propose(put(1)).await.unwrap().revision;
        node.linearize().await.unwrap();
        let seen = node.read(|state, at| state.index().get_at(b"k1", at).map(|kv| kv.mod_revision));
        assert_eq!(seen, Some(rev));
        assert_eq!(
            node.members(),
            vec![(node.member_id, "http://127.0.0.1:2379".to_owned())]
        );
        node.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_writes_are_replayed_from_the_log_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (node, log) = start(dir.path()).await;
        let member = node.member_id;
        for i in 0..50 {
            node.propose(put(i)).await.unwrap();
        }
        node.shutdown().await;
        drop((node, log));
        let (node, _log) = start(dir.path()).await;
        node.linearize().await.unwrap();
        assert_eq!(node.member_id, member, "the member id survives a restart");
        assert_eq!(node.durable_revision(), 51);
        node.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_survive_a_restart_after_the_log_was_snapshotted_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let (node, log) = start(dir.path()).await;
        for i in 0..30 {
            node.propose(put(i)).await.unwrap();
        }
        let applied = node.raft.metrics().borrow().last_applied.unwrap();
        node.raft.trigger().snapshot().await.unwrap();
        let wait = || node.raft.wait(Some(Duration::from_secs(10)));
        wait().snapshot(applied, "snapshot built").await.unwrap();
        node.raft.trigger().purge_log(applied.index).await.unwrap();
        wait().purged(Some(applied), "log purged").await.unwrap();
        node.propose(put(100)).await.unwrap();
        node.shutdown().await;
        drop((node, log));
        let (node, _log) = start(dir.path()).await;
        node.linearize().await.unwrap();
        assert_eq!(node.durable_revision(), 32);
        let found = node.read(|state, at| {
            [&b"k0"[..], b"k29", b"k100"].map(|k| state.index().get_at(k, at).is_some())
        });
        assert_eq!(found, [true; 3]);
        node.shutdown().await;
    }
}
