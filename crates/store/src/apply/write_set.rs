//! What one batch of applied entries asks the backend to persist, atomically.

use etcd_client::proto::PbKeyValue;

use crate::mvcc::Revision;

/// Everything a batch of log entries changed, for one backend commit.
#[derive(Debug, Default)]
pub struct WriteSet {
    /// New key changes: the key-value written, or `None` for a deletion.
    pub changes: Vec<(Revision, Vec<u8>, Option<PbKeyValue>)>,
    /// Revisions dropped by compaction.
    pub removed: Vec<Revision>,
    pub leases_granted: Vec<(i64, i64)>,
    pub leases_revoked: Vec<i64>,
    /// The store revision after the batch.
    pub revision: i64,
    /// The compaction revision after the batch, if a compaction was applied.
    pub compact_revision: Option<i64>,
    /// The index of the last log entry applied.
    pub applied_index: u64,
    /// What the raft adapter records with this commit (its last applied log id and membership,
    /// encoded by `raft::codec`); empty when there is nothing to record.
    pub raft_applied: Vec<u8>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.removed.is_empty()
            && self.leases_granted.is_empty()
            && self.leases_revoked.is_empty()
            && self.compact_revision.is_none()
    }
}
