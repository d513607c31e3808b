//! The peer transport (issue #7, ADR 0702): what members of one store cluster say to each other
//! on the peer URL, a gRPC service of berth's own (`proto/peer.proto`), separate from the client
//! port.
//!
//! - [`PeerNetwork`]: openraft's `RaftNetworkFactory`: AppendEntries, Vote and InstallSnapshot
//!   (openraft's chunks) to a member's peer URL, carrying raft values in the store's
//!   deterministic encoding ([`crate::raft::codec`]).
//! - [`Peers`]: one lazily connected channel per peer URL, shared by raft and by forwarding.
//! - [`PeerService`]: the server side, over a [`crate::node::Node`]: raft's RPCs go to openraft,
//!   forwarded writes (`ProposeBatch`: a follower's waiting writes at once, ADR 0704; the lone
//!   `Propose` is still served) to the node's proposer (only if it leads), read-index
//!   requests to the leader's shared leadership-check rounds, lease keep-alives and
//!   time-to-live questions (`LeaseRemaining`) to the leader's lease clock.
//!
//! What it does not do yet: TLS between peers, streaming a snapshot instead of openraft's
//! chunked RPCs (each chunk is one message), back-pressure beyond openraft's own.

mod client;
mod server;
mod wire;

pub use client::{FORWARD_TIMEOUT, PeerNetwork, Peers};
pub use server::{PeerService, serve_peers};

/// The code generated from `proto/peer.proto`.
pub mod proto {
    #![allow(clippy::all, missing_debug_implementations, unused_qualifications)]
    tonic::include_proto!("berth.store.peer.v1");
}

/// Largest peer message (a snapshot chunk, an AppendEntries with a full batch).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;
