//! berth's built-in key-value store: an etcd v3-compatible gRPC server, durable on redb.
//!
//! What it is for: service discovery and configuration sharing on a berth machine, spoken over
//! etcd's own v3 API so that `etcdctl` and every etcd client work against it unchanged.
//!
//! What it guarantees: etcd's MVCC semantics (one revision per write request, create/mod
//! revision and version per key, reads at past revisions until compacted); a write is
//! answered only after it is on disk, concurrent writes sharing one commit; etcd's errors and
//! limits on the wire.
//!
//! How it is built: the [`apply`] path is a pure state machine fed by an ordered log; [`mvcc`],
//! [`lease`] and [`watch`] are separate modules with no I/O; [`backend`] persists what the state
//! machine hands it; [`raft`] adapts openraft's log storage (redb, group commit) and state machine
//! traits; [`peer`] is the transport between members of a cluster (raft's RPCs and forwarding);
//! [`node`] is the thin shell that proposes writes to raft (or forwards them to the leader) and
//! publishes what it applies; [`server`] maps the gRPC services onto the node.
//!
//! What it does not do yet: membership changes at run time (issue #7), auth, TLS, the gRPC
//! gateway, and etcd's v2 API.

pub mod apply;
pub mod backend;
pub mod config;
pub mod error;
pub mod lease;
pub mod mvcc;
pub mod node;
pub mod peer;
pub mod raft;
pub mod server;
pub mod watch;

pub use config::Config;
pub use error::{EtcdError, StoreError};
pub use server::serve;
