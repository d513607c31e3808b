//! The openraft type configuration of the store: what a log entry carries and what applying one
//! answers.
//!
//! An entry carries a [`Batch`] of commands, not one: openraft 0.9 writes each `client_write` as
//! its own append and waits for its fsync before taking the next, so group commit is done by
//! the node, which proposes every write waiting at that moment as one entry.

use std::io::Cursor;

use openraft::{BasicNode, TokioRuntime};

use crate::apply::{ApplyOutput, Command};

/// The commands of one log entry, applied in order, each as its own write request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch(pub Vec<Command>);

openraft::declare_raft_types!(
    /// The store's raft: entries carry [`Batch`]es of commands, node ids are etcd member ids, a node's
    /// address is its peer URL (the client URL for a one-member store, which has no peers).
    pub TypeConfig:
        D = Batch,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// What applying one log entry answers: one output per command of its batch, none for the
/// entries openraft writes itself (blank entries of a new leader, membership changes).
#[derive(Debug, Default)]
pub struct Response(pub Vec<ApplyOutput>);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, BasicNode>;
pub type Raft = openraft::Raft<TypeConfig>;
