//! Transactions: compares over keys and ranges, then one branch of nested operations, all at one
//! revision.

use etcd_client::proto::{
    PbCompare, PbKeyValue, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnResponse,
};

use super::machine::{Write, read_failed};
use crate::error::EtcdError;
use crate::mvcc::KeyRange;

// etcd's enum values on the wire (`Compare.CompareResult`, `Compare.CompareTarget`).
const RESULT_EQUAL: i32 = 0;
const RESULT_GREATER: i32 = 1;
const RESULT_LESS: i32 = 2;
const RESULT_NOT_EQUAL: i32 = 3;
const TARGET_VERSION: i32 = 0;
const TARGET_CREATE: i32 = 1;
const TARGET_MOD: i32 = 2;
const TARGET_VALUE: i32 = 3;
const TARGET_LEASE: i32 = 4;

/// Which of etcd's two pre-checks of a txn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Puts,
    Ranges,
}

impl Write<'_> {
    /// Runs a txn as etcd does: every compare on the taken path (nested ones too) is decided
    /// against the state before the txn, then the branch is checked, then run.
    pub(super) fn txn(&mut self, req: &PbTxnRequest) -> Result<PbTxnResponse, EtcdError> {
        let mut path = Vec::new();
        self.decide(req, &mut path);
        self.check_branch(req, &path, &mut 0, Check::Puts)?;
        self.check_branch(req, &path, &mut 0, Check::Ranges)?;
        let mut resp = self.run_txn(req, &path, &mut 0)?;
        resp.header = self.header();
        Ok(resp)
    }

    /// The outcome of each txn's compares on the taken path, in the order the ops run.
    fn decide(&self, req: &PbTxnRequest, path: &mut Vec<bool>) {
        let succeeded = req.compare.iter().all(|c| self.compare(c));
        path.push(succeeded);
        for op in if succeeded {
            &req.success
        } else {
            &req.failure
        } {
            if let Some(PbTxnOpRequest::RequestTxn(t)) = &op.request {
                self.decide(t, path);
            }
        }
    }

    /// Checks the taken branches against the state before anything is written, so a txn either
    /// runs whole or fails without effect. etcd checks all puts first, then all ranges.
    fn check_branch(
        &self,
        req: &PbTxnRequest,
        path: &[bool],
        at: &mut usize,
        check: Check,
    ) -> Result<(), EtcdError> {
        let succeeded = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        let index = self.sm.index();
        for op in if succeeded {
            &req.success
        } else {
            &req.failure
        } {
            match &op.request {
                Some(PbTxnOpRequest::RequestPut(p)) if check == Check::Puts => {
                    self.check_put_state(p)?
                }
                Some(PbTxnOpRequest::RequestRange(r))
                    if check == Check::Ranges && r.revision > 0 =>
                {
                    if r.revision > self.read_revision() {
                        return Err(EtcdError::FutureRev);
                    }
                    if r.revision < index.compact_revision() {
                        return Err(EtcdError::Compacted);
                    }
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => self.check_branch(t, path, at, check)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn run_txn(
        &mut self,
        req: &PbTxnRequest,
        path: &[bool],
        at: &mut usize,
    ) -> Result<PbTxnResponse, EtcdError> {
        let succeeded = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    Some(PbTxnOpResponse::ResponseRange(self.range(r)?))
                }
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    Some(PbTxnOpResponse::ResponsePut(self.put(p)?))
                }
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                    Some(PbTxnOpResponse::ResponseDeleteRange(self.delete(d)))
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => {
                    Some(PbTxnOpResponse::ResponseTxn(self.run_txn(t, path, at)?))
                }
                None => None,
            };
            responses.push(PbResponseOp { response });
        }
        // etcd leaves the header of a nested txn empty; the outer one is set by `txn`.
        Ok(PbTxnResponse {
            header: Some(PbResponseHeader::default()),
            succeeded,
            responses,
        })
    }

    /// Whether one compare holds: over a range, it must hold for every key in it; a missing key
    /// compares as zeroes, except that a value compare on a missing key fails.
    fn compare(&self, c: &PbCompare) -> bool {
        let index = self.sm.index();
        let range = KeyRange::new(&c.key, &c.range_end);
        let mut any = false;
        let mut all = true;
        for kv in index.range_at(&range, self.read_revision()) {
            any = true;
            // Only a value compare needs the value, which may be on disk.
            let kv = if c.target == TARGET_VALUE {
                index.load_one(kv).unwrap_or_else(|err| read_failed(&err))
            } else {
                kv.without_value()
            };
            all &= compare_kv(c, &kv);
        }
        if any {
            all
        } else {
            c.target != TARGET_VALUE && compare_kv(c, &PbKeyValue::default())
        }
    }
}

fn compare_kv(c: &PbCompare, kv: &PbKeyValue) -> bool {
    let ordering = match (c.target, &c.target_union) {
        (TARGET_VALUE, Some(PbTargetUnion::Value(v))) => kv.value.as_slice().cmp(v.as_slice()),
        (TARGET_VALUE, _) => kv.value.as_slice().cmp(&[]),
        (target, union) => {
            let want = match union {
                Some(
                    PbTargetUnion::Version(n)
                    | PbTargetUnion::CreateRevision(n)
                    | PbTargetUnion::ModRevision(n)
                    | PbTargetUnion::Lease(n),
                ) => *n,
                _ => 0,
            };
            let have = match target {
                TARGET_VERSION => kv.version,
                TARGET_CREATE => kv.create_revision,
                TARGET_MOD => kv.mod_revision,
                TARGET_LEASE => kv.lease,
                _ => return false,
            };
            have.cmp(&want)
        }
    };
    match c.result {
        RESULT_EQUAL => ordering.is_eq(),
        RESULT_GREATER => ordering.is_gt(),
        RESULT_LESS => ordering.is_lt(),
        RESULT_NOT_EQUAL => ordering.is_ne(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use etcd_client::proto::{PbPutRequest, PbTxnRequestOp};

    use crate::apply::{Applied, Command, LogEntry, StateMachine, WriteSet};

    use super::*;

    fn put_op(k: &str, v: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
                ..PbPutRequest::default()
            })),
        }
    }

    fn cmp(key: &str, end: &str, target: i32, result: i32, union: PbTargetUnion) -> PbCompare {
        PbCompare {
            result,
            target,
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            target_union: Some(union),
        }
    }

    fn run(sm: &mut StateMachine, txn: PbTxnRequest) -> (bool, i64) {
        let index = sm.applied_index() + 1;
        let out = sm.apply(
            &LogEntry {
                index,
                command: Command::Txn(txn),
            },
            &mut WriteSet::default(),
        );
        match out.result {
            Ok(Applied::Txn(t)) => (t.succeeded, out.revision),
            other => panic!("txn failed: {other:?}"),
        }
    }

    #[test]
    fn txn_bumps_the_revision_once_for_all_its_writes() {
        let mut sm = StateMachine::default();
        let txn = PbTxnRequest {
            compare: vec![],
            success: vec![put_op("a", "1"), put_op("b", "1")],
            failure: vec![],
        };
        assert_eq!(run(&mut sm, txn), (true, 2));
        assert_eq!(
            sm.index().get_at(b"b", 2).map(|kv| kv.mod_revision()),
            Some(2)
        );
    }

    #[test]
    fn missing_key_compares_as_version_zero_but_never_by_value() {
        let mut sm = StateMachine::default();
        let version_zero = PbTxnRequest {
            compare: vec![cmp(
                "a",
                "",
                TARGET_VERSION,
                RESULT_EQUAL,
                PbTargetUnion::Version(0),
            )],
            success: vec![],
            failure: vec![],
        };
        assert_eq!(run(&mut sm, version_zero), (true, 1));
        let value = PbTxnRequest {
            compare: vec![cmp(
                "a",
                "",
                TARGET_VALUE,
                RESULT_NOT_EQUAL,
                PbTargetUnion::Value(b"x".to_vec()),
            )],
            success: vec![],
            failure: vec![],
        };
        assert_eq!(run(&mut sm, value), (false, 1));
    }

    #[test]
    fn range_compare_must_hold_for_every_key() {
        let mut sm = StateMachine::default();
        let seed = PbTxnRequest {
            compare: vec![],
            success: vec![put_op("a", "1"), put_op("b", "2")],
            failure: vec![],
        };
        run(&mut sm, seed);
        let less = |v: &str| PbTxnRequest {
            compare: vec![cmp(
                "a",
                "c",
                TARGET_VALUE,
                RESULT_LESS,
                PbTargetUnion::Value(v.as_bytes().to_vec()),
            )],
            success: vec![],
            failure: vec![],
        };
        assert!(run(&mut sm, less("3")).0);
        assert!(!run(&mut sm, less("2")).0);
    }
}
