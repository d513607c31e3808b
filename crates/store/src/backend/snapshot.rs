//! The snapshot stream of the Maintenance service (see docs/formats/store.md): every revision up
//! to a cut, the leases, an end mark, zero padding to a multiple of 512 bytes, then a SHA-256 of
//! all that comes before (etcd's layout: `etcdctl snapshot save` checks both).

use sha2::{Digest, Sha256};

use super::{assemble, record};
use crate::apply::StateMachine;
use crate::error::StoreError;
use crate::lease::LeaseTable;
use crate::mvcc::{KeyIndex, Revision};

/// First bytes of a berth snapshot.
pub const SNAPSHOT_MAGIC: &[u8] = b"berth-store-snapshot v1\n";
/// The main revision that ends the records.
const END_MARK: i64 = -1;
/// etcd's snapshot body is a whole number of these; clients check it.
const PAGE: usize = 512;

/// How many changes a snapshot, a hash or an install reads from the data file at a time.
pub const CHANGES_PER_READ: usize = 1024;

/// The snapshot of `state` as of revision `cut`.
pub fn snapshot_bytes(state: &StateMachine, cut: i64) -> Result<Vec<u8>, StoreError> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    out.extend_from_slice(&cut.to_be_bytes());
    out.extend_from_slice(&state.index().compact_revision().to_be_bytes());
    let leases = state.leases().all();
    out.extend_from_slice(&u64::try_from(leases.len()).unwrap_or(0).to_be_bytes());
    for (id, ttl) in leases {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
    }
    state
        .index()
        .for_each_change(cut, CHANGES_PER_READ, |changes| {
            for (rev, key, kv) in changes {
                let rec = record::encode(key, kv.as_ref());
                out.extend_from_slice(&rev.main.to_be_bytes());
                out.extend_from_slice(&rev.sub.to_be_bytes());
                out.extend_from_slice(&u32::try_from(rec.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(&rec);
            }
            Ok(())
        })?;
    out.extend_from_slice(&END_MARK.to_be_bytes());
    out.resize(out.len().div_ceil(PAGE) * PAGE, 0);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Reads a snapshot made by [`snapshot_bytes`] back into a state machine that has applied the
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
        let bytes = snapshot_bytes(&state, state.index().current_revision()).unwrap();
        let back = parse_snapshot(&bytes, 4).unwrap();
        assert_eq!(back.applied_index(), 4);
        assert_eq!(back.index().current_revision(), 3);
        assert_eq!(back.index().compact_revision(), 2);
        assert_eq!(back.leases().keys(7), vec![b"a".to_vec()]);
        assert_eq!(snapshot_bytes(&back, 3).unwrap(), bytes);
        let mut corrupt = bytes.clone();
        corrupt[30] ^= 1;
        assert!(parse_snapshot(&corrupt, 4).is_none());
    }
}
