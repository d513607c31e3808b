//! The state machine: the MVCC index and the lease table, changed only by log entries.

use etcd_client::proto::{
    PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbResponseHeader,
};

use super::{Applied, ApplyOutput, Command, LogEntry, WriteSet};
use crate::error::EtcdError;
use crate::lease::{LeaseTable, MIN_TTL};
use crate::mvcc::{self, EVENT_PUT, KeyIndex, KeyRange, Revision};

/// The store's replicated state: every key revision and every lease, plus the position in the
/// log up to which it has applied.
#[derive(Debug, Default)]
pub struct StateMachine {
    index: KeyIndex,
    leases: LeaseTable,
    applied: u64,
}

impl StateMachine {
    /// A state machine holding what the backend loaded.
    pub fn from_parts(index: KeyIndex, leases: LeaseTable, applied: u64) -> Self {
        Self {
            index,
            leases,
            applied,
        }
    }

    pub fn index(&self) -> &KeyIndex {
        &self.index
    }

    /// Everything applied so far is committed: values are read from the backend from now on.
    pub fn persisted(&mut self) {
        self.index.persisted();
    }

    /// Reads committed values from `source` (see [`KeyIndex::set_value_source`]).
    pub fn set_value_source(&mut self, source: std::sync::Arc<dyn mvcc::ValueSource>) {
        self.index.set_value_source(source);
    }

    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// The index of the last log entry applied.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Applies one log entry. Entries must come in log order; one already applied (a replay
    /// after restart) changes nothing: its output has no events and the error `Stopped`.
    pub fn apply(&mut self, entry: &LogEntry, ws: &mut WriteSet) -> ApplyOutput {
        if !self.advance(entry.index, ws) {
            return self.stopped();
        }
        self.apply_command(&entry.command, ws)
    }

    /// Applies the commands one log entry carries (a batch proposed together), in order, each as
    /// its own write request with its own revision. An entry already applied changes nothing.
    pub fn apply_batch(
        &mut self,
        index: u64,
        commands: &[Command],
        ws: &mut WriteSet,
    ) -> Vec<ApplyOutput> {
        if !self.advance(index, ws) {
            return commands.iter().map(|_| self.stopped()).collect();
        }
        commands
            .iter()
            .map(|command| self.apply_command(command, ws))
            .collect()
    }

    /// Moves the applied position to `index`; false if that entry was applied already.
    fn advance(&mut self, index: u64, ws: &mut WriteSet) -> bool {
        if index != 0 && index <= self.applied {
            return false;
        }
        self.applied = self.applied.max(index);
        ws.applied_index = self.applied;
        true
    }

    fn stopped(&self) -> ApplyOutput {
        ApplyOutput {
            result: Err(EtcdError::Stopped),
            revision: self.index.current_revision(),
            events: Vec::new(),
        }
    }

    fn apply_command(&mut self, command: &Command, ws: &mut WriteSet) -> ApplyOutput {
        let mut w = Write::new(self, ws);
        let result = match command {
            Command::Put(req) => w.put(req).map(Applied::Put),
            Command::DeleteRange(req) => Ok(Applied::DeleteRange(w.delete(req))),
            Command::Txn(req) => w.txn(req).map(Applied::Txn),
            Command::Compact { revision } => w.compact(*revision).map(Applied::Compact),
            Command::LeaseGrant { id, ttl } => w.lease_grant(*id, *ttl),
            Command::LeaseRevoke { id } => w
                .lease_revoke(*id)
                .map(|()| Applied::LeaseRevoke { id: *id }),
        };
        let (revision, events) = w.finish();
        ApplyOutput {
            result,
            revision,
            events,
        }
    }
}

/// One write request in progress: its main revision and the changes made so far.
pub(super) struct Write<'a> {
    pub(super) sm: &'a mut StateMachine,
    ws: &'a mut WriteSet,
    main: i64,
    sub: i64,
    events: Vec<PbEvent>,
}

impl<'a> Write<'a> {
    fn new(sm: &'a mut StateMachine, ws: &'a mut WriteSet) -> Self {
        let main = sm.index.current_revision() + 1;
        Self {
            sm,
            ws,
            main,
            sub: 0,
            events: Vec::new(),
        }
    }

    /// The revision a read inside this request sees: including its own earlier changes.
    pub(super) fn read_revision(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.main - 1
        }
    }

    fn next_rev(&mut self) -> Revision {
        let rev = Revision {
            main: self.main,
            sub: self.sub,
        };
        self.sub += 1;
        rev
    }

    fn finish(self) -> (i64, Vec<PbEvent>) {
        if self.sub > 0 {
            self.sm.index.set_current_revision(self.main);
        }
        let revision = self.sm.index.current_revision();
        self.ws.revision = revision;
        (revision, self.events)
    }

    pub(super) fn header(&self) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            revision: self.read_revision(),
            ..PbResponseHeader::default()
        })
    }

    /// Checks a put against the state, as etcd does before writing anything.
    pub(super) fn check_put_state(&self, req: &PbPutRequest) -> Result<(), EtcdError> {
        if req.lease != 0 && !self.sm.leases.contains(req.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        if (req.ignore_value || req.ignore_lease)
            && self
                .sm
                .index
                .get_at(&req.key, self.read_revision())
                .is_none()
        {
            return Err(EtcdError::KeyNotFound);
        }
        Ok(())
    }

    /// `key` as of `rev`, with its value. The value may have to be read from the data file; if
    /// that fails the store cannot apply the log deterministically and stops (as etcd does).
    pub(super) fn load_at(&self, key: &[u8], rev: i64) -> Option<PbKeyValue> {
        self.sm
            .index
            .get_kv_at(key, rev)
            .unwrap_or_else(|err| read_failed(&err))
    }

    pub(super) fn put(&mut self, req: &PbPutRequest) -> Result<PbPutResponse, EtcdError> {
        self.check_put_state(req)?;
        let at = self.read_revision();
        let prev_meta = self.sm.index.get_at(&req.key, at).map(|kv| kv.meta);
        // The value is read only when the request needs it.
        let prev = if req.prev_kv || req.ignore_value {
            self.load_at(&req.key, at)
        } else {
            None
        };
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (prev_meta, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let rev = self.next_rev();
        let kv = self.sm.index.put(&req.key, value, lease, rev);
        if let Some(p) = prev_meta
            && p.lease != 0
            && p.lease != lease
        {
            self.sm.leases.detach(p.lease, &req.key);
        }
        if lease != 0 {
            self.sm.leases.attach(lease, &req.key);
        }
        self.ws
            .changes
            .push((rev, req.key.clone(), Some(kv.clone())));
        // The previous key-value a watcher may ask for is read when the event is delivered,
        // and only for such a watcher (`WatchHub::publish`), as etcd reads it when it sends.
        self.events.push(PbEvent {
            r#type: EVENT_PUT,
            kv: Some(kv),
            prev_kv: None,
        });
        Ok(PbPutResponse {
            header: self.header(),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    pub(super) fn delete(&mut self, req: &PbDeleteRequest) -> PbDeleteResponse {
        let keys = self
            .sm
            .index
            .live_keys(&KeyRange::new(&req.key, &req.range_end));
        let mut prev_kvs = Vec::new();
        for key in &keys {
            let rev = Revision {
                main: self.main,
                sub: self.sub,
            };
            let prev = req.prev_kv.then(|| self.load_at(key, i64::MAX)).flatten();
            let Some(prev_meta) = self.sm.index.delete(key, rev) else {
                continue;
            };
            self.sub += 1;
            if prev_meta.lease != 0 {
                self.sm.leases.detach(prev_meta.lease, key);
            }
            self.ws.changes.push((rev, key.clone(), None));
            self.events.push(mvcc::delete_event(key, rev.main, None));
            prev_kvs.extend(prev);
        }
        PbDeleteResponse {
            header: self.header(),
            deleted: i64::try_from(keys.len()).unwrap_or(i64::MAX),
            prev_kvs,
        }
    }

    pub(super) fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, EtcdError> {
        let mut resp = match mvcc::range(&self.sm.index, req, self.read_revision()) {
            // Only a failed read of the data file stops a range.
            Err(EtcdError::Stopped) => read_failed(&"a value of the range"),
            other => other?,
        };
        resp.header = self.header();
        Ok(resp)
    }

    fn compact(&mut self, revision: i64) -> Result<PbCompactionResponse, EtcdError> {
        if revision > self.sm.index.current_revision() {
            return Err(EtcdError::FutureRev);
        }
        if revision <= self.sm.index.compact_revision() {
            return Err(EtcdError::Compacted);
        }
        let removed = self.sm.index.compact(revision);
        self.ws.removed.extend(removed);
        self.ws.compact_revision = Some(revision);
        Ok(PbCompactionResponse {
            header: self.header(),
        })
    }

    fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<Applied, EtcdError> {
        let ttl = ttl.max(MIN_TTL);
        if !self.sm.leases.grant(id, ttl) {
            return Err(EtcdError::LeaseExist);
        }
        self.ws.leases_granted.push((id, ttl));
        Ok(Applied::LeaseGrant { id, ttl })
    }

    fn lease_revoke(&mut self, id: i64) -> Result<(), EtcdError> {
        let keys = self.sm.leases.revoke(id).ok_or(EtcdError::LeaseNotFound)?;
        self.ws.leases_revoked.push(id);
        for key in keys {
            self.delete(&PbDeleteRequest {
                key,
                ..PbDeleteRequest::default()
            });
        }
        Ok(())
    }
}

/// The data file cannot give back a value the log's order depends on: applying on would make
/// this member's state differ from the others'. Stop the process, as etcd does; on restart the
/// log is applied again from the last commit.
pub(super) fn read_failed(err: &dyn std::fmt::Display) -> ! {
    tracing::error!(%err, "cannot read a value from the store's data file while applying the log; stopping");
    eprintln!(
        "berth store: cannot read a value from the data file while applying the log ({err}); stopping"
    );
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(sm: &mut StateMachine, command: Command) -> ApplyOutput {
        let index = sm.applied_index() + 1;
        sm.apply(&LogEntry { index, command }, &mut WriteSet::default())
    }

    fn put(key: &str, lease: i64) -> Command {
        Command::Put(PbPutRequest {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            lease,
            ..PbPutRequest::default()
        })
    }

    #[test]
    fn each_write_request_gets_one_revision() {
        let mut sm = StateMachine::default();
        assert_eq!(apply(&mut sm, put("a", 0)).revision, 2);
        assert_eq!(apply(&mut sm, put("b", 0)).revision, 3);
        let del = Command::DeleteRange(PbDeleteRequest {
            key: b"a".to_vec(),
            range_end: b"\0".to_vec(),
            ..PbDeleteRequest::default()
        });
        let out = apply(&mut sm, del.clone());
        assert_eq!((out.revision, out.events.len()), (4, 2));
        assert_eq!(
            apply(&mut sm, del).revision,
            4,
            "deleting nothing changes nothing"
        );
    }

    #[test]
    fn put_with_unknown_lease_is_refused_and_changes_nothing() {
        let mut sm = StateMachine::default();
        let out = apply(&mut sm, put("a", 5));
        assert_eq!(out.result.err(), Some(EtcdError::LeaseNotFound));
        assert_eq!(out.revision, 1);
    }

    #[test]
    fn revoking_a_lease_deletes_its_keys_in_one_revision() {
        let mut sm = StateMachine::default();
        apply(&mut sm, Command::LeaseGrant { id: 5, ttl: 1 });
        apply(&mut sm, put("a", 5));
        apply(&mut sm, put("b", 5));
        apply(&mut sm, put("c", 0));
        let out = apply(&mut sm, Command::LeaseRevoke { id: 5 });
        assert_eq!((out.revision, out.events.len()), (5, 2));
        assert_eq!(sm.index().live_key_count(), 1);
        let again = apply(&mut sm, Command::LeaseRevoke { id: 5 });
        assert_eq!(again.result.err(), Some(EtcdError::LeaseNotFound));
    }

    #[test]
    fn lease_ttl_is_raised_to_the_minimum() {
        let mut sm = StateMachine::default();
        let out = apply(&mut sm, Command::LeaseGrant { id: 1, ttl: 1 });
        assert!(matches!(
            out.result,
            Ok(Applied::LeaseGrant { ttl: MIN_TTL, .. })
        ));
    }

    #[test]
    fn compaction_refuses_future_and_already_compacted_revisions() {
        let mut sm = StateMachine::default();
        apply(&mut sm, put("a", 0));
        apply(&mut sm, put("a", 0));
        let c = |revision| Command::Compact { revision };
        assert_eq!(
            apply(&mut sm, c(5)).result.err(),
            Some(EtcdError::FutureRev)
        );
        assert!(apply(&mut sm, c(2)).result.is_ok());
        assert_eq!(
            apply(&mut sm, c(2)).result.err(),
            Some(EtcdError::Compacted)
        );
    }
}
