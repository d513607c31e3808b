//! Checks etcd makes on a write request before it enters the log: they depend on the request
//! only, never on the state.

use std::collections::BTreeSet;

use etcd_client::proto::{PbPutRequest, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp};

use crate::error::EtcdError;
use crate::mvcc::KeyRange;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

pub fn check_put(req: &PbPutRequest) -> Result<(), EtcdError> {
    if req.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

/// Checks a txn as etcd does: op counts, keys, and that no key is written twice on one path.
pub fn check_txn(req: &PbTxnRequest) -> Result<(), EtcdError> {
    check_ops(req)?;
    intervals(&req.success)?;
    intervals(&req.failure)?;
    Ok(())
}

fn check_ops(req: &PbTxnRequest) -> Result<(), EtcdError> {
    if req.compare.len() > MAX_TXN_OPS
        || req.success.len() > MAX_TXN_OPS
        || req.failure.len() > MAX_TXN_OPS
    {
        return Err(EtcdError::TooManyOps);
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) if r.key.is_empty() => {
                return Err(EtcdError::EmptyKey);
            }
            Some(PbTxnOpRequest::RequestPut(p)) => check_put(p)?,
            Some(PbTxnOpRequest::RequestDeleteRange(d)) if d.key.is_empty() => {
                return Err(EtcdError::EmptyKey);
            }
            Some(PbTxnOpRequest::RequestTxn(t)) => check_ops(t)?,
            _ => {}
        }
    }
    Ok(())
}

/// The puts and deletes of one branch; a key may not be put twice, nor put and deleted.
/// The two branches of a nested txn exclude each other, so they may write the same key.
fn intervals(ops: &[PbTxnRequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<KeyRange>), EtcdError> {
    let mut dels: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                Some(KeyRange::new(&d.key, &d.range_end))
            }
            _ => None,
        })
        .collect();
    let deleted = |dels: &[KeyRange], key: &[u8]| {
        let point = KeyRange::Single(key.to_vec());
        dels.iter().any(|d| d.overlaps(&point))
    };
    let mut puts = BTreeSet::new();
    for op in ops {
        let Some(PbTxnOpRequest::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = intervals(&t.success)?;
        let (puts_else, dels_else) = intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in puts_else {
            if (puts.contains(&k) && !puts_then.contains(&k)) || deleted(&dels, &k) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(PbTxnOpRequest::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbDeleteRequest;

    fn put(k: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: k.as_bytes().to_vec(),
                ..PbPutRequest::default()
            })),
        }
    }

    fn del(k: &str, end: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
                key: k.as_bytes().to_vec(),
                range_end: end.as_bytes().to_vec(),
                ..PbDeleteRequest::default()
            })),
        }
    }

    fn txn(success: Vec<PbTxnRequestOp>, failure: Vec<PbTxnRequestOp>) -> PbTxnRequest {
        PbTxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    #[test]
    fn txn_writing_one_key_twice_is_a_duplicate_key() {
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![])),
            Err(EtcdError::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![put("b"), del("a", "c")], vec![])),
            Err(EtcdError::DuplicateKey)
        );
    }

    #[test]
    fn success_and_failure_branches_may_write_the_same_key() {
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")])), Ok(()));
        let nested = PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestTxn(txn(
                vec![put("a")],
                vec![put("a")],
            ))),
        };
        assert_eq!(check_txn(&txn(vec![nested.clone()], vec![])), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![nested, put("a")], vec![])),
            Err(EtcdError::DuplicateKey)
        );
    }

    #[test]
    fn overlapping_deletes_are_allowed() {
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), del("b", "d")], vec![])),
            Ok(())
        );
    }

    #[test]
    fn too_many_ops_and_empty_keys_are_refused() {
        let many = (0..=MAX_TXN_OPS).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(check_txn(&txn(many, vec![])), Err(EtcdError::TooManyOps));
        assert_eq!(
            check_txn(&txn(vec![put("")], vec![])),
            Err(EtcdError::EmptyKey)
        );
    }
}
