//! The snapshot stream of the Maintenance service (see docs/formats/store.md): every revision up
//! to a cut, the leases, an end mark, zero padding to a multiple of 512 bytes, then a SHA-256 of
//! all that comes before (etcd's layout: `etcdctl snapshot save` checks both).

use sha2::{Digest, Sha256};

use super::record;
use crate::apply::StateMachine;

/// First bytes of a berth snapshot.
pub const SNAPSHOT_MAGIC: &[u8] = b"berth-store-snapshot v1\n";
/// The main revision that ends the records.
const END_MARK: i64 = -1;
/// etcd's snapshot body is a whole number of these; clients check it.
const PAGE: usize = 512;

/// The snapshot of `state` as of revision `cut`.
pub fn snapshot_bytes(state: &StateMachine, cut: i64) -> Vec<u8> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    out.extend_from_slice(&cut.to_be_bytes());
    out.extend_from_slice(&state.index().compact_revision().to_be_bytes());
    let leases = state.leases().all();
    out.extend_from_slice(&u64::try_from(leases.len()).unwrap_or(0).to_be_bytes());
    for (id, ttl) in leases {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
    }
    for (rev, key, kv) in state.index().changes_up_to(cut) {
        let rec = record::encode(key, kv);
        out.extend_from_slice(&rev.main.to_be_bytes());
        out.extend_from_slice(&rev.sub.to_be_bytes());
        out.extend_from_slice(&u32::try_from(rec.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&rec);
    }
    out.extend_from_slice(&END_MARK.to_be_bytes());
    out.resize(out.len().div_ceil(PAGE) * PAGE, 0);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}
