//! The store's log is openraft's: this module adapts openraft's storage traits to the store.
//!
//! - [`types`]: the type configuration (a log entry carries an [`crate::apply::Command`]).
//! - [`codec`]: the deterministic byte encoding of entries, votes and log ids.
//! - [`LogStore`]: `RaftLogStorage` on redb, one fsync per transaction of queued log operations.
//! - [`StateMachineStore`]: `RaftStateMachine` over the pure [`crate::apply::StateMachine`].
//!
//! The peer transport is [`crate::peer`]. A single store is a one-member cluster: its member id
//! is its raft node id, and it elects itself on start. Writes go through `Raft::client_write`, linearizable reads through
//! `Raft::ensure_linearizable` (read index).

pub mod codec;
mod log_store;
mod state_machine;
pub mod types;

#[cfg(test)]
mod suite;

pub use log_store::LogStore;
pub use state_machine::StateMachineStore;
pub use types::{Raft, Response, TypeConfig};

use std::time::Duration;

/// A snapshot is built after `--snapshot-count` applied entries; the log before it is then
/// purged, keeping a tenth of that (at most [`LOGS_KEPT_AFTER_SNAPSHOT`]) for lagging
/// followers; one further behind is sent the snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// Bytes of a snapshot sent in one InstallSnapshot RPC.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// openraft's configuration for the store: etcd's `--heartbeat-interval` and
/// `--election-timeout` `t` (defaults 100 ms and 1 s).
///
/// openraft 0.9 makes a follower of a known leader wait `election_timeout_max` (its leader
/// lease, during which it also refuses votes) plus a random time in
/// `[election_timeout_min, election_timeout_max)` after it last heard the leader before it
/// stands. With min = 0.4t and max = 0.6t that is `[t, 1.2t)`: a new leader is elected about
/// as soon as etcd's fastest (`[t, 2t)`), where taking etcd's `[t, 2t)` as openraft's bounds
/// made it `[3t, 4t)` (ADR 0702). A member with no known leader stands after `[0.4t, 0.6t)`.
/// A one-member cluster elects itself at once and never waits for them.
///
/// openraft looks at these only on its tick (every 1.5 heartbeat intervals), so in a cluster
/// a follower of a known leader is stood for election earlier, after `[t, 1.1t)`, by berth's
/// own timer (`node::election`, ADR 0705); openraft's timer is the fallback.
pub fn raft_config(heartbeat_ms: u64, election_ms: u64, snapshot_count: u64) -> openraft::Config {
    openraft::Config {
        cluster_name: "berth-store".to_owned(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_ms * 2 / 5,
        election_timeout_max: election_ms * 3 / 5,
        install_snapshot_timeout: election_ms.max(1000) * 5,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_count.max(1)),
        max_in_snapshot_log_to_keep: (snapshot_count / 10).min(LOGS_KEPT_AFTER_SNAPSHOT),
        ..openraft::Config::default()
    }
}

/// How long a starting member waits to become leader of its one-member cluster.
pub const ELECTION_WAIT: Duration = Duration::from_secs(10);
