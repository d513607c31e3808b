//! The node: the thin shell around the pure parts. It orders writes into a log, applies them to
//! the state machine, commits each group of them in one backend commit (group commit), and only
//! then answers clients and publishes watch events. Reads see only committed revisions.

mod tasks;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Instant;

use etcd_client::proto::{PbEvent, PbResponseHeader};
use tokio::sync::{mpsc, oneshot};

use crate::apply::{ApplyOutput, Command, StateMachine};
use crate::backend::Backend;
use crate::config::Config;
use crate::error::{EtcdError, StoreError};
use crate::lease::LeaseClock;
use crate::mvcc::KeyRange;
use crate::watch::{History, WatchHub};

pub use tasks::spawn_background;
use writer::Job;

/// How many pending writes one commit takes at most.
pub const MAX_BATCH: usize = 4096;

/// One running store member.
#[derive(Debug)]
pub struct Node {
    state: RwLock<StateMachine>,
    /// The newest revision that is on disk; reads never see past it.
    durable: AtomicI64,
    jobs: mpsc::Sender<Job>,
    pub hub: WatchHub,
    pub lease_clock: Mutex<LeaseClock>,
    pub config: Config,
    pub member_id: u64,
    pub cluster_id: u64,
    applied: AtomicU64,
    db_size: AtomicU64,
    no_space: AtomicBool,
    failed: AtomicBool,
}

impl Node {
    /// Loads the backend and starts the writer thread.
    pub fn start(config: Config, mut backend: Box<dyn Backend>) -> Result<Arc<Self>, StoreError> {
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
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 4);
        let node = Arc::new(Self {
            applied: AtomicU64::new(loaded.state.applied_index()),
            state: RwLock::new(loaded.state),
            durable: AtomicI64::new(revision),
            jobs,
            hub: WatchHub::new(header, revision),
            lease_clock: Mutex::new(clock),
            config,
            member_id: loaded.member_id,
            cluster_id: loaded.cluster_id,
            db_size: AtomicU64::new(backend.size_bytes()),
            no_space: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        });
        node.check_quota(backend.size_bytes());
        writer::spawn(Arc::clone(&node), backend, rx);
        Ok(node)
    }

    /// Proposes a write and waits until it is applied and durable.
    pub async fn propose(&self, command: Command) -> Result<ApplyOutput, EtcdError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(EtcdError::Stopped);
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Write { command, reply })
            .await
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Rewrites the backend file to give back free space.
    pub async fn defragment(&self) -> Result<(), EtcdError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Defragment { reply })
            .await
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Reads the state at the newest durable revision.
    pub fn read<T>(&self, f: impl FnOnce(&StateMachine, i64) -> T) -> T {
        let state = self.state_read();
        f(&state, self.durable_revision())
    }

    fn state_read(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn durable_revision(&self) -> i64 {
        self.durable.load(Ordering::Acquire)
    }

    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn db_size(&self) -> u64 {
        self.db_size.load(Ordering::Acquire)
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: 1,
        })
    }

    /// Whether the NOSPACE alarm is raised: writes that grow the store are refused.
    pub fn no_space(&self) -> bool {
        self.no_space.load(Ordering::Acquire)
    }

    pub fn set_no_space(&self, raised: bool) {
        self.no_space.store(raised, Ordering::Release);
    }

    fn check_quota(&self, size: u64) {
        self.db_size.store(size, Ordering::Release);
        if size > self.config.quota_backend_bytes {
            if !self.no_space() {
                tracing::warn!(
                    size,
                    quota = self.config.quota_backend_bytes,
                    "store over quota: NOSPACE alarm raised"
                );
            }
            self.set_no_space(true);
        }
    }

    /// Called by the writer after a commit: makes the batch visible, then publishes its events.
    fn publish(&self, revision: i64, applied: u64, outputs: &[(i64, Vec<PbEvent>)]) {
        self.applied.store(applied, Ordering::Release);
        self.durable.fetch_max(revision, Ordering::AcqRel);
        for (rev, events) in outputs {
            self.hub.publish(*rev, events);
        }
        self.hub.publish(revision, &[]);
    }

    /// Registers a watcher; history comes from the state at the newest published revision.
    pub fn watch(
        &self,
        stream: u64,
        id: i64,
        spec: crate::watch::WatchSpec,
        tx: mpsc::UnboundedSender<etcd_client::proto::PbWatchResponse>,
    ) -> bool {
        let state = self.state_read();
        let view = StateView { state: &state };
        self.hub.watch(stream, id, spec, &view, tx)
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
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use etcd_client::proto::PbPutRequest;

    use super::*;
    use crate::backend::MemoryBackend;

    fn put(i: usize) -> Command {
        Command::Put(PbPutRequest {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
            ..PbPutRequest::default()
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_each_gets_its_own_revision() {
        let commits = Arc::new(AtomicU64::new(0));
        let backend = MemoryBackend::new(Arc::clone(&commits), Duration::from_millis(5));
        let node = Node::start(Config::new("unused".into()), Box::new(backend)).unwrap();
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
        assert!(
            commits.load(Ordering::Relaxed) < 100,
            "writes were not grouped"
        );
        assert_eq!(node.durable_revision(), 201);
    }

    #[tokio::test]
    async fn reads_see_a_write_once_it_is_acknowledged() {
        let node = Node::start(
            Config::new("unused".into()),
            Box::<MemoryBackend>::default(),
        )
        .unwrap();
        let rev = node.propose(put(1)).await.unwrap().revision;
        let seen = node.read(|state, at| state.index().get_at(b"k1", at).map(|kv| kv.mod_revision));
        assert_eq!(seen, Some(rev));
    }
}
