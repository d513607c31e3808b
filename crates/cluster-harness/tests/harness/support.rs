//! The load every scenario runs and the common ending.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use berth_cluster_harness::client::{RecordingClient, WatchRecord, random_load, record_watch};
use berth_cluster_harness::lincheck::{Clock, History, Operation};
use berth_cluster_harness::scenario::{Berth, Cluster, Etcd, MemberCommand, PREFIX, Report};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Members per cluster, unless a scenario says otherwise.
pub const MEMBERS: usize = 3;
/// Recording clients per scenario; client i talks to member i % members only.
pub const CLIENTS: usize = 4;
/// Each request's time limit; past it the outcome is unknown.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(1);

/// Which store a scenario runs against.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    Etcd,
    Berth,
}

/// The `berth` binary of this build: next to the test binary's `deps/` directory. `cargo test
/// --workspace` builds it; `cargo test -p berth-cluster-harness` alone needs `cargo build -p
/// berth` first.
fn berth_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join("berth");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p berth` first",
        binary.display()
    );
    binary
}

/// How `store`'s members are started.
pub fn command(store: Store) -> Box<dyn MemberCommand> {
    match store {
        Store::Etcd => Box::new(Etcd),
        Store::Berth => Box::new(Berth {
            binary: berth_binary(),
        }),
    }
}

pub async fn start_cluster(store: Store, members: usize) -> Cluster {
    let cluster = Cluster::start(members, command(store).as_ref()).expect("start members");
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
}

/// Recording clients running random operations on a few keys for `length`.
pub struct Load {
    history: History,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub async fn start(cluster: &Cluster, length: Duration, seed: u64) -> Load {
        let history = History::new();
        let clock = Clock::new();
        let keys: Vec<String> = (0..4).map(|k| format!("{PREFIX}k{k}")).collect();
        let deadline = Instant::now() + length;
        let mut tasks = Vec::new();
        let members = cluster.endpoints.len();
        let clients = CLIENTS.max(members);
        for id in 0..clients {
            let endpoint = [cluster.endpoints[id % members].clone()];
            let mut client =
                RecordingClient::connect(id, &endpoint, history.clone(), clock, REQUEST_LIMIT)
                    .await
                    .expect("connect a recording client");
            let keys = keys.clone();
            tasks.push(tokio::spawn(async move {
                random_load(&mut client, &keys, deadline, seed + id as u64).await
            }));
        }
        Load { history, tasks }
    }

    pub async fn finish(self) -> Vec<Operation> {
        for task in self.tasks {
            task.await.expect("load task");
        }
        self.history.operations()
    }
}

/// A watcher on every key of the scenario from `start`, preferring member `first` and moving
/// to the others when its stream breaks. It runs until `until` (`i64::MAX` while the load
/// runs; the test sets the final revision after it).
pub fn spawn_watcher(
    cluster: &Cluster,
    first: usize,
    start: i64,
    until: Arc<AtomicI64>,
) -> JoinHandle<WatchRecord> {
    let mut endpoints = cluster.endpoints.clone();
    endpoints.rotate_left(first);
    let deadline = Instant::now() + Duration::from_secs(90);
    tokio::spawn(async move { record_watch(&endpoints, PREFIX, start, &until, deadline).await })
}

/// Verifies and prints the report; panics with the checker's explanation on failure.
pub async fn verify(cluster: &Cluster, ops: &[Operation], watchers: &[WatchRecord]) -> Report {
    let report = cluster
        .verify(ops, watchers)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{report:?}");
    assert!(
        report.operations > report.unknown,
        "no operation completed: {report:?}"
    );
    report
}
