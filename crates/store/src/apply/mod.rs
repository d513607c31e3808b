//! The apply path: a pure state machine fed by an ordered log of write commands.
//!
//! [`StateMachine::apply`] takes one [`LogEntry`] at a time, in log order, and returns the
//! response, the watch events and — in a [`WriteSet`] — exactly what must be persisted. It does
//! no I/O and reads no clock, so the same sequence of entries always yields the same state: the
//! property a replicated log (openraft's `RaftStateMachine`, issue #7) relies on. The node shell
//! batches entries, persists their write sets in one commit and only then answers clients.

mod check;
mod machine;
mod txn;
mod write_set;

pub use check::{check_put, check_txn};
pub use machine::StateMachine;
pub use write_set::WriteSet;

use etcd_client::proto::{
    PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbEvent, PbPutRequest, PbPutResponse,
    PbTxnRequest, PbTxnResponse,
};

use crate::error::EtcdError;

/// A write the store has agreed to apply, in the order the log gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Put(PbPutRequest),
    DeleteRange(PbDeleteRequest),
    Txn(PbTxnRequest),
    Compact { revision: i64 },
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke { id: i64 },
}

/// One entry of the log: its position and its command.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub index: u64,
    pub command: Command,
}

/// What applying a command answers (headers are the server's to fill).
#[derive(Debug, Clone)]
pub enum Applied {
    Put(PbPutResponse),
    DeleteRange(PbDeleteResponse),
    Txn(PbTxnResponse),
    Compact(PbCompactionResponse),
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke { id: i64 },
}

/// The outcome of one entry: the answer, the store revision after it, and its watch events
/// (all at that revision, in change order).
#[derive(Debug, Clone)]
pub struct ApplyOutput {
    pub result: Result<Applied, EtcdError>,
    pub revision: i64,
    pub events: Vec<PbEvent>,
}
