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
    start_with(dir, Config::new("unused".into())).await
}

/// A config whose applied state reaches the data file only when a snapshot is described or the
/// node stops cleanly: what is in the file then tells which of the two happened.
fn never_batch_committed() -> Config {
    let mut config = Config::new("unused".into());
    config.backend_batch = crate::config::BackendBatch {
        interval: Duration::from_secs(3600),
        limit: usize::MAX,
    };
    config
}

/// Stops raft as a crash would leave the data file: without the clean stop's commit of the
/// applied state.
async fn crash(node: Arc<Node>, log: LogStore) {
    node.raft.shutdown().await.unwrap();
    drop((node, log));
}

async fn start_with(dir: &std::path::Path, config: Config) -> (Arc<Node>, LogStore) {
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
    // The stopped node's log thread lets go of the log's lock as it ends.
    let mut log = LogStore::open(&dir.join("log"), &backend.database());
    for _ in 0..100 {
        if log.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = LogStore::open(&dir.join("log"), &backend.database());
    }
    let log = log.unwrap();
    let node = Node::start(config, Box::new(backend), log.clone())
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
    let log = LogStore::open(&dir.path().join("log"), &backend.database()).unwrap();
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
    let seen = node.read(|state, at| state.index().get_at(b"k1", at).map(|kv| kv.mod_revision()));
    assert_eq!(seen, Some(rev));
    assert_eq!(
        node.members(),
        vec![(node.member_id, "http://127.0.0.1:2379".to_owned())]
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_replayed_from_the_log_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    // None of the writes reaches the state in the data file: only the log has them.
    let (node, log) = start_with(dir.path(), never_batch_committed()).await;
    let member = node.member_id;
    for i in 0..50 {
        node.propose(put(i)).await.unwrap();
    }
    crash(node, log).await;
    let (node, _log) = start(dir.path()).await;
    node.linearize().await.unwrap();
    assert_eq!(node.member_id, member, "the member id survives a restart");
    assert_eq!(node.durable_revision(), 51);
    let value = node.read(|state, at| state.index().get_kv_at(b"k49", at).unwrap().unwrap().value);
    assert_eq!(value, b"v");
    node.shutdown().await;
}

/// A node on a [`MemoryBackend`] whose applied state is committed every 10 changes, and the
/// directory of its log.
async fn start_batching(backend: MemoryBackend) -> (Arc<Node>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = RedbBackend::open(dir.path()).unwrap();
    let log = LogStore::open(&dir.path().join("log"), &db.database()).unwrap();
    let mut config = never_batch_committed();
    config.backend_batch.limit = 10;
    let node = Node::start(config, Box::new(backend), log).await.unwrap();
    (node, dir)
}

/// Waits (a bounded while) until `commits` reaches `n`; commits happen on their own thread.
async fn commits_reach(commits: &std::sync::atomic::AtomicU64, n: u64) {
    for _ in 0..500 {
        if commits.load(Ordering::Relaxed) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} backend commits after 5 s, expected {n}",
        commits.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_writes_reach_the_data_file_in_batches_of_the_backend_batch_limit() {
    let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (node, _dir) =
        start_batching(MemoryBackend::new(Arc::clone(&commits), Duration::ZERO)).await;
    // One write at a time: each its own log entry and its own apply.
    for i in 0..9 {
        node.propose(put(i)).await.unwrap();
    }
    let seen = || commits.load(Ordering::Relaxed);
    assert_eq!(seen(), 0, "nine changes wait for the tenth");
    node.propose(put(9)).await.unwrap();
    commits_reach(&commits, 1).await;
    for i in 10..19 {
        node.propose(put(i)).await.unwrap();
    }
    assert_eq!(seen(), 1, "the commit took the ten; nine more wait");
    node.shutdown().await;
    assert_eq!(seen(), 2, "a clean stop commits what waits");
}

/// A node whose backend commits wait at a gate, after ten writes whose commit has begun and
/// is held there; the sender lets commits through (dropping it opens the gate for good).
async fn start_with_a_held_commit(
    commits: &Arc<std::sync::atomic::AtomicU64>,
) -> (Arc<Node>, tempfile::TempDir, std::sync::mpsc::Sender<()>) {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (open, open_rx) = std::sync::mpsc::channel();
    let backend =
        MemoryBackend::new(Arc::clone(commits), Duration::ZERO).with_gate(entered_tx, open_rx);
    let (node, dir) = start_batching(backend).await;
    for i in 0..10 {
        node.propose(put(i)).await.unwrap();
    }
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("a backend commit began");
    (node, dir, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_acknowledged_while_a_backend_commit_is_under_way() {
    let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (node, _dir, open) = start_with_a_held_commit(&commits).await;
    // The commit of the first ten cannot finish while the gate is shut. Were it on the apply
    // path, no write after the tenth would be acknowledged.
    let writes = async {
        for i in 10..35 {
            node.propose(put(i)).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), writes)
        .await
        .expect("writes wait for the backend's commit");
    assert_eq!(commits.load(Ordering::Relaxed), 0, "the commit still waits");
    drop(open);
    node.shutdown().await;
    assert_eq!(
        commits.load(Ordering::Relaxed),
        2,
        "the held commit took the first ten; the other 25 went in one more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_the_backend_commit_under_way() {
    let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (node, _dir, open) = start_with_a_held_commit(&commits).await;
    // Nothing is queued now: the commit thread holds all ten. A flush (what a snapshot does
    // before the log is purged behind it) must still not return before they are committed.
    let shared = Arc::clone(&node.shared);
    let flushing = tokio::task::spawn_blocking(move || shared.flush());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !flushing.is_finished(),
        "a flush returned while a commit was under way"
    );
    drop(open);
    flushing.await.unwrap().unwrap();
    assert_eq!(commits.load(Ordering::Relaxed), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backend_commit_stops_writes_and_no_flush_claims_the_state_committed() {
    let backend = MemoryBackend::new(Arc::default(), Duration::ZERO).failing();
    let (node, _dir) = start_batching(backend).await;
    for i in 0..10 {
        node.propose(put(i)).await.unwrap();
    }
    // The commit fails on its own thread; the next apply after that refuses to go on.
    let mut refused = false;
    for i in 10..1000 {
        if node.propose(put(i)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "writes go on after a failed commit");
    assert!(
        matches!(node.shared.flush(), Err(StoreError::WriterStopped)),
        "a flush (before a snapshot purges the log) must not report the failed sets committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_captured_before_overwrites_and_a_compaction_is_written_as_of_its_cut() {
    use crate::backend::{SnapshotSource, parse_snapshot};
    let put_value = |i: usize, value: &str| {
        Command::Put(PbPutRequest {
            key: format!("k{i}").into_bytes(),
            value: value.as_bytes().to_vec(),
            ..PbPutRequest::default()
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let (node, _log) = start(dir.path()).await;
    for i in 0..50 {
        node.propose(put_value(i, "old")).await.unwrap();
    }
    let (source, cut) = node.read(|state, rev| (SnapshotSource::capture(state, rev), rev));
    let source = source.unwrap();
    // Every value the snapshot holds is overwritten, and the compaction deletes the old
    // revisions from the data file: only the view pinned at the capture still has them.
    for i in 0..50 {
        node.propose(put_value(i, "new")).await.unwrap();
    }
    let now = node.durable_revision();
    node.propose(Command::Compact { revision: now })
        .await
        .unwrap();
    let reread = node.read(|state, _| {
        let kv = state.index().get_at(b"k7", now).unwrap();
        state.index().load_one(kv).unwrap().value
    });
    assert_eq!(reread, b"new");

    let bytes = source.to_vec().unwrap();
    assert_eq!(bytes.len() as u64, source.byte_len().unwrap());
    let back = parse_snapshot(&bytes, 0).expect("a whole snapshot");
    assert_eq!(back.index().current_revision(), cut);
    for i in 0..50 {
        let key = format!("k{i}");
        let kv = back
            .index()
            .get_kv_at(key.as_bytes(), cut)
            .unwrap()
            .unwrap();
        assert_eq!(kv.value, b"old", "{key}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_crash_after_the_log_was_snapshotted_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    // The purged entries' writes are nowhere but in the state the snapshot described.
    let (node, log) = start_with(dir.path(), never_batch_committed()).await;
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
    crash(node, log).await;
    let (node, _log) = start(dir.path()).await;
    node.linearize().await.unwrap();
    assert_eq!(node.durable_revision(), 32);
    let found = node.read(|state, at| {
        [&b"k0"[..], b"k29", b"k100"].map(|k| state.index().get_at(k, at).is_some())
    });
    assert_eq!(found, [true; 3]);
    node.shutdown().await;
}
