//! The snapshot stream of the Maintenance service (see docs/formats/store.md): every revision up
//! to a cut, the leases, an end mark, zero padding to a multiple of 512 bytes, then a SHA-256 of
//! all that comes before (etcd's layout: `etcdctl snapshot save` checks both).

use sha2::{Digest, Sha256};

use super::{assemble, record};
use crate::apply::StateMachine;
use crate::error::StoreError;
use crate::lease::LeaseTable;
use crate::mvcc::{FrozenChanges, KeyIndex, Revision};

/// First bytes of a berth snapshot.
pub const SNAPSHOT_MAGIC: &[u8] = b"berth-store-snapshot v1\n";
/// The main revision that ends the records.
const END_MARK: i64 = -1;
/// etcd's snapshot body is a whole number of these; clients check it.
const PAGE: usize = 512;

/// How many changes a snapshot, a hash or an install reads from the data file at a time.
pub const CHANGES_PER_READ: usize = 1024;

/// A snapshot taken at one cut and written out later, piece by piece, while the store goes on
/// applying: capturing copies keys and revisions under the state's lock; values are read when
/// written, from a view of the data file pinned at the capture ([`KeyIndex::freeze`]).
#[derive(Debug)]
pub struct SnapshotSource {
    /// Magic, cut, compact revision and the leases: everything before the records.
    head: Vec<u8>,
    changes: FrozenChanges,
}

impl SnapshotSource {
    /// `state` as of revision `cut`.
    pub fn capture(state: &StateMachine, cut: i64) -> Result<Self, StoreError> {
        let mut head = SNAPSHOT_MAGIC.to_vec();
        head.extend_from_slice(&cut.to_be_bytes());
        head.extend_from_slice(&state.index().compact_revision().to_be_bytes());
        let leases = state.leases().all();
        head.extend_from_slice(&u64::try_from(leases.len()).unwrap_or(0).to_be_bytes());
        for (id, ttl) in leases {
            head.extend_from_slice(&id.to_be_bytes());
            head.extend_from_slice(&ttl.to_be_bytes());
        }
        Ok(Self {
            head,
            changes: state.index().freeze(cut)?,
        })
    }

    /// The number of bytes [`SnapshotSource::write_to`] writes (the records are encoded once
    /// more to count them: the Maintenance stream tells the client what remains).
    pub fn byte_len(&self) -> Result<u64, StoreError> {
        let mut body = 0u64;
        self.body(|bytes| {
            body += bytes.len() as u64;
            Ok(())
        })?;
        Ok(body.div_ceil(PAGE as u64) * PAGE as u64 + 32)
    }

    /// Writes the whole snapshot to `sink`, in pieces of any size.
    pub fn write_to(
        &self,
        mut sink: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut hash = Sha256::new();
        let body = self.body(|bytes| {
            hash.update(bytes);
            sink(bytes)
        })?;
        let padding = vec![0; (body.div_ceil(PAGE as u64) * PAGE as u64 - body) as usize];
        hash.update(&padding);
        sink(&padding)?;
        sink(&hash.finalize())
    }

    /// The snapshot in memory.
    pub fn to_vec(&self) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.write_to(|bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        })?;
        Ok(out)
    }

    /// Writes everything before the padding to `sink`; returns its length.
    fn body(
        &self,
        mut sink: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut written = self.head.len() as u64;
        sink(&self.head)?;
        let mut out = Vec::new();
        self.changes.for_each(CHANGES_PER_READ, |changes| {
            out.clear();
            for (rev, key, kv) in changes {
                let rec = record::encode(key, kv.as_ref());
                out.extend_from_slice(&rev.main.to_be_bytes());
                out.extend_from_slice(&rev.sub.to_be_bytes());
                out.extend_from_slice(&u32::try_from(rec.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(&rec);
            }
            written += out.len() as u64;
            sink(&out)
        })?;
        sink(&END_MARK.to_be_bytes())?;
        Ok(written + END_MARK.to_be_bytes().len() as u64)
    }
}

/// Reads a snapshot written by [`SnapshotSource`] back into a state machine that has applied the
/// log up to `applied`. `None` if the bytes are not a whole, unaltered berth snapshot.
pub fn parse_snapshot(bytes: &[u8], applied: u64) -> Option<StateMachine> {
    let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != digest || body.len() % PAGE != 0 {
        return None;
    }
    let mut r = body.strip_prefix(SNAPSHOT_MAGIC)?;
    let i64_at = |r: &mut &[u8]| -> Option<i64> {
        let (head, rest) = r.split_first_chunk::<8>()?;
        *r = rest;
        Some(i64::from_be_bytes(*head))
    };
    let cut = i64_at(&mut r)?;
    let compact = i64_at(&mut r)?;
    let lease_count = i64_at(&mut r)?;
    let mut leases = LeaseTable::default();
    for _ in 0..lease_count {
        let (id, ttl) = (i64_at(&mut r)?, i64_at(&mut r)?);
        leases.grant(id, ttl);
    }
    let mut index = KeyIndex::default();
    loop {
        let main = i64_at(&mut r)?;
        if main == END_MARK {
            break;
        }
        let sub = i64_at(&mut r)?;
        let (len, rest) = r.split_first_chunk::<4>()?;
        let (rec, rest) = rest.split_at_checked(usize::try_from(u32::from_be_bytes(*len)).ok()?)?;
        r = rest;
        let (key, meta, value) = record::decode_parts(rec)?;
        index.restore(&key, Revision { main, sub }, meta, meta.map(|_| value));
    }
    Some(assemble(index, leases, cut, compact, applied))
}

#[cfg(test)]
mod tests {
    use etcd_client::proto::PbPutRequest;

    use super::*;
    use crate::apply::{Command, LogEntry, WriteSet};

    #[test]
    fn a_snapshot_reads_back_into_the_same_state() {
        let mut state = StateMachine::default();
        let commands = [
            Command::LeaseGrant { id: 7, ttl: 30 },
            Command::Put(PbPutRequest {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                lease: 7,
                ..PbPutRequest::default()
            }),
            Command::Put(PbPutRequest {
                key: b"b".to_vec(),
                value: b"2".to_vec(),
                ..PbPutRequest::default()
            }),
            Command::Compact { revision: 2 },
        ];
        for (index, command) in (1..).zip(commands) {
            state.apply(&LogEntry { index, command }, &mut WriteSet::default());
        }
        let bytes = SnapshotSource::capture(&state, state.index().current_revision())
            .and_then(|s| s.to_vec())
            .unwrap();
        let back = parse_snapshot(&bytes, 4).unwrap();
        assert_eq!(back.applied_index(), 4);
        assert_eq!(back.index().current_revision(), 3);
        assert_eq!(back.index().compact_revision(), 2);
        assert_eq!(back.leases().keys(7), vec![b"a".to_vec()]);
        assert_eq!(
            SnapshotSource::capture(&back, 3)
                .and_then(|s| s.to_vec())
                .unwrap(),
            bytes
        );
        let mut corrupt = bytes.clone();
        corrupt[30] ^= 1;
        assert!(parse_snapshot(&corrupt, 4).is_none());
    }
}
