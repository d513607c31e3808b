//! The deterministic byte encoding of what the raft log and its metadata store (see
//! docs/formats/store.md, "Raft tables"). Every member encodes the same entry to the same bytes:
//! integers are big-endian, protobuf messages are encoded by prost (fields in number order), and
//! maps are written in key order.

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::proto::{
    PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse,
    PbTxnRequest, PbTxnResponse,
};
use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership, SnapshotMeta};
use prost::Message;

use super::types::{Batch, Entry, LogId, StoredMembership, Vote};
use crate::apply::{Applied, ApplyOutput, Command};
use crate::error::EtcdError;

const CMD_PUT: u8 = 1;
const CMD_DELETE_RANGE: u8 = 2;
const CMD_TXN: u8 = 3;
const CMD_COMPACT: u8 = 4;
const CMD_LEASE_GRANT: u8 = 5;
const CMD_LEASE_REVOKE: u8 = 6;

const PAYLOAD_BLANK: u8 = 0;
const PAYLOAD_NORMAL: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;

/// Bytes that do not decode: a corrupt or foreign record.
#[derive(Debug, thiserror::Error)]
#[error("malformed raft record: {what}")]
pub struct DecodeError {
    pub what: &'static str,
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError { what }
}

/// Encodes a command: one tag byte, then its request as protobuf or its integers.
pub fn encode_command(command: &Command, out: &mut Vec<u8>) {
    match command {
        Command::Put(req) => {
            out.push(CMD_PUT);
            req.encode_raw(out);
        }
        Command::DeleteRange(req) => {
            out.push(CMD_DELETE_RANGE);
            req.encode_raw(out);
        }
        Command::Txn(req) => {
            out.push(CMD_TXN);
            req.encode_raw(out);
        }
        Command::Compact { revision } => {
            out.push(CMD_COMPACT);
            out.extend_from_slice(&revision.to_be_bytes());
        }
        Command::LeaseGrant { id, ttl } => {
            out.push(CMD_LEASE_GRANT);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
        }
        Command::LeaseRevoke { id } => {
            out.push(CMD_LEASE_REVOKE);
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
}

pub fn decode_command(bytes: &[u8]) -> Result<Command, DecodeError> {
    let (&tag, rest) = bytes.split_first().ok_or(bad("empty command"))?;
    let mut r = Reader(rest);
    let command = match tag {
        CMD_PUT => Command::Put(PbPutRequest::decode(rest).map_err(|_| bad("put"))?),
        CMD_DELETE_RANGE => {
            Command::DeleteRange(PbDeleteRequest::decode(rest).map_err(|_| bad("delete"))?)
        }
        CMD_TXN => Command::Txn(PbTxnRequest::decode(rest).map_err(|_| bad("txn"))?),
        CMD_COMPACT => Command::Compact { revision: r.i64()? },
        CMD_LEASE_GRANT => Command::LeaseGrant {
            id: r.i64()?,
            ttl: r.i64()?,
        },
        CMD_LEASE_REVOKE => Command::LeaseRevoke { id: r.i64()? },
        _ => return Err(bad("unknown command tag")),
    };
    Ok(command)
}

/// Bytes [`encode_command`] writes for `command`, without writing them.
pub fn command_len(command: &Command) -> usize {
    1 + match command {
        Command::Put(req) => req.encoded_len(),
        Command::DeleteRange(req) => req.encoded_len(),
        Command::Txn(req) => req.encoded_len(),
        Command::Compact { .. } | Command::LeaseRevoke { .. } => 8,
        Command::LeaseGrant { .. } => 16,
    }
}

/// A batch: the number of commands, then each with its length.
fn put_batch(batch: &Batch, out: &mut Vec<u8>) {
    put_len(batch.0.len(), out);
    for command in &batch.0 {
        put_len(command_len(command), out);
        encode_command(command, out);
    }
}

/// Encodes a log entry: its log id, a payload tag, then the payload.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let payload = match &entry.payload {
        EntryPayload::Normal(batch) => batch.0.iter().map(|c| 4 + command_len(c)).sum(),
        _ => 64,
    };
    let mut out = Vec::with_capacity(32 + payload);
    put_log_id(&entry.log_id, &mut out);
    match &entry.payload {
        EntryPayload::Blank => out.push(PAYLOAD_BLANK),
        EntryPayload::Normal(batch) => {
            out.push(PAYLOAD_NORMAL);
            put_batch(batch, &mut out);
        }
        EntryPayload::Membership(m) => {
            out.push(PAYLOAD_MEMBERSHIP);
            put_membership(m, &mut out);
        }
    }
    out
}

/// The index of an encoded entry, read without decoding the rest.
pub fn entry_index(bytes: &[u8]) -> Result<u64, DecodeError> {
    Ok(Reader(bytes).log_id()?.index)
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader(bytes);
    let log_id = r.log_id()?;
    let payload = match r.u8()? {
        PAYLOAD_BLANK => EntryPayload::Blank,
        PAYLOAD_NORMAL => EntryPayload::Normal(r.batch()?),
        PAYLOAD_MEMBERSHIP => EntryPayload::Membership(r.membership()?),
        _ => return Err(bad("unknown payload tag")),
    };
    Ok(Entry { log_id, payload })
}

pub fn encode_vote(vote: &Vote) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.extend_from_slice(&vote.leader_id.term.to_be_bytes());
    out.extend_from_slice(&vote.leader_id.node_id.to_be_bytes());
    out.push(u8::from(vote.committed));
    out
}

pub fn decode_vote(bytes: &[u8]) -> Result<Vote, DecodeError> {
    let mut r = Reader(bytes);
    let (term, node_id) = (r.u64()?, r.u64()?);
    Ok(match r.u8()? {
        0 => Vote::new(term, node_id),
        _ => Vote::new_committed(term, node_id),
    })
}

/// An optional log id: a presence byte, then term, node id and index.
pub fn encode_log_id(log_id: Option<&LogId>) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    put_opt_log_id(log_id, &mut out);
    out
}

pub fn decode_log_id(bytes: &[u8]) -> Result<Option<LogId>, DecodeError> {
    Reader(bytes).opt_log_id()
}

/// What the state machine has applied: the last log id and the membership in force.
pub fn encode_applied(last: Option<&LogId>, membership: &StoredMembership) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    put_opt_log_id(last, &mut out);
    put_opt_log_id(membership.log_id().as_ref(), &mut out);
    put_membership(membership.membership(), &mut out);
    out
}

pub fn decode_applied(bytes: &[u8]) -> Result<(Option<LogId>, StoredMembership), DecodeError> {
    let mut r = Reader(bytes);
    let last = r.opt_log_id()?;
    let at = r.opt_log_id()?;
    let membership = r.membership()?;
    Ok((last, StoredMembership::new(at, membership)))
}

/// A snapshot's metadata (for the peer transport): what was applied as [`encode_applied`], then
/// the snapshot id's bytes.
pub fn encode_snapshot_meta(meta: &SnapshotMeta<u64, BasicNode>) -> Vec<u8> {
    let mut out = encode_applied(meta.last_log_id.as_ref(), &meta.last_membership);
    put_len(meta.snapshot_id.len(), &mut out);
    out.extend_from_slice(meta.snapshot_id.as_bytes());
    out
}

pub fn decode_snapshot_meta(bytes: &[u8]) -> Result<SnapshotMeta<u64, BasicNode>, DecodeError> {
    let mut r = Reader(bytes);
    let last_log_id = r.opt_log_id()?;
    let at = r.opt_log_id()?;
    let membership = r.membership()?;
    let len = r.u32()?;
    let snapshot_id = String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| bad("snapshot id"))?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(at, membership),
        snapshot_id,
    })
}

const OUT_PUT: u8 = 1;
const OUT_DELETE_RANGE: u8 = 2;
const OUT_TXN: u8 = 3;
const OUT_COMPACT: u8 = 4;
const OUT_LEASE_GRANT: u8 = 5;
const OUT_LEASE_REVOKE: u8 = 6;

/// The answer to a forwarded write (for the peer transport): the revision, then an error
/// number ([`EtcdError::wire_code`]) or 0 and the answer (a tag, then protobuf or integers).
/// Watch events are not carried: every member publishes its own when it applies the entry.
pub fn encode_output(output: &ApplyOutput) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&output.revision.to_be_bytes());
    match &output.result {
        Err(err) => out.push(err.wire_code()),
        Ok(applied) => {
            out.push(0);
            match applied {
                Applied::Put(resp) => {
                    out.push(OUT_PUT);
                    resp.encode_raw(&mut out);
                }
                Applied::DeleteRange(resp) => {
                    out.push(OUT_DELETE_RANGE);
                    resp.encode_raw(&mut out);
                }
                Applied::Txn(resp) => {
                    out.push(OUT_TXN);
                    resp.encode_raw(&mut out);
                }
                Applied::Compact(resp) => {
                    out.push(OUT_COMPACT);
                    resp.encode_raw(&mut out);
                }
                Applied::LeaseGrant { id, ttl } => {
                    out.push(OUT_LEASE_GRANT);
                    out.extend_from_slice(&id.to_be_bytes());
                    out.extend_from_slice(&ttl.to_be_bytes());
                }
                Applied::LeaseRevoke { id } => {
                    out.push(OUT_LEASE_REVOKE);
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
        }
    }
    out
}

pub fn decode_output(bytes: &[u8]) -> Result<ApplyOutput, DecodeError> {
    let mut r = Reader(bytes);
    let revision = r.i64()?;
    let code = r.u8()?;
    if code != 0 {
        let err = EtcdError::from_wire_code(code).ok_or(bad("unknown error number"))?;
        return Ok(ApplyOutput {
            result: Err(err),
            revision,
            events: Vec::new(),
        });
    }
    let tag = r.u8()?;
    let rest = r.0;
    let applied = match tag {
        OUT_PUT => Applied::Put(PbPutResponse::decode(rest).map_err(|_| bad("put answer"))?),
        OUT_DELETE_RANGE => {
            Applied::DeleteRange(PbDeleteResponse::decode(rest).map_err(|_| bad("delete answer"))?)
        }
        OUT_TXN => Applied::Txn(PbTxnResponse::decode(rest).map_err(|_| bad("txn answer"))?),
        OUT_COMPACT => {
            Applied::Compact(PbCompactionResponse::decode(rest).map_err(|_| bad("compact answer"))?)
        }
        OUT_LEASE_GRANT => Applied::LeaseGrant {
            id: r.i64()?,
            ttl: r.i64()?,
        },
        OUT_LEASE_REVOKE => Applied::LeaseRevoke { id: r.i64()? },
        _ => return Err(bad("unknown answer tag")),
    };
    Ok(ApplyOutput {
        result: Ok(applied),
        revision,
        events: Vec::new(),
    })
}

fn put_log_id(log_id: &LogId, out: &mut Vec<u8>) {
    out.extend_from_slice(&log_id.leader_id.term.to_be_bytes());
    out.extend_from_slice(&log_id.leader_id.node_id.to_be_bytes());
    out.extend_from_slice(&log_id.index.to_be_bytes());
}

fn put_opt_log_id(log_id: Option<&LogId>, out: &mut Vec<u8>) {
    match log_id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            put_log_id(id, out);
        }
    }
}

fn put_len(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// Joint configurations in order (each a sorted set of voter ids), then every node (sorted by
/// id) with its address.
fn put_membership(m: &Membership<u64, BasicNode>, out: &mut Vec<u8>) {
    let configs = m.get_joint_config();
    put_len(configs.len(), out);
    for config in configs {
        put_len(config.len(), out);
        for id in config {
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
    let nodes: BTreeMap<u64, &BasicNode> = m.nodes().map(|(id, n)| (*id, n)).collect();
    put_len(nodes.len(), out);
    for (id, node) in nodes {
        out.extend_from_slice(&id.to_be_bytes());
        put_len(node.addr.len(), out);
        out.extend_from_slice(node.addr.as_bytes());
    }
}

/// A cursor over encoded bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(bad("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(u32::from_be_bytes(self.take()?)).map_err(|_| bad("length"))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    fn bytes(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        let (head, rest) = self.0.split_at_checked(len).ok_or(bad("truncated"))?;
        self.0 = rest;
        Ok(head)
    }

    fn batch(&mut self) -> Result<Batch, DecodeError> {
        let n = self.u32()?;
        let mut commands = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let len = self.u32()?;
            commands.push(decode_command(self.bytes(len)?)?);
        }
        Ok(Batch(commands))
    }

    fn log_id(&mut self) -> Result<LogId, DecodeError> {
        let (term, node_id, index) = (self.u64()?, self.u64()?, self.u64()?);
        Ok(LogId::new(CommittedLeaderId::new(term, node_id), index))
    }

    fn opt_log_id(&mut self) -> Result<Option<LogId>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.log_id().map(Some),
            _ => Err(bad("log id presence")),
        }
    }

    fn membership(&mut self) -> Result<Membership<u64, BasicNode>, DecodeError> {
        let n = self.u32()?;
        let mut configs = Vec::new();
        for _ in 0..n {
            let m = self.u32()?;
            let mut set = BTreeSet::new();
            for _ in 0..m {
                set.insert(self.u64()?);
            }
            configs.push(set);
        }
        let n = self.u32()?;
        let mut nodes = BTreeMap::new();
        for _ in 0..n {
            let id = self.u64()?;
            let len = self.u32()?;
            let addr = String::from_utf8(self.bytes(len)?.to_vec()).map_err(|_| bad("address"))?;
            nodes.insert(id, BasicNode { addr });
        }
        Ok(Membership::new(configs, nodes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 7), index)
    }

    #[test]
    fn every_command_round_trips_to_the_same_bytes() {
        let commands = [
            Command::Put(PbPutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                lease: 3,
                ..PbPutRequest::default()
            }),
            Command::DeleteRange(PbDeleteRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                ..PbDeleteRequest::default()
            }),
            Command::Txn(PbTxnRequest::default()),
            Command::Compact { revision: 9 },
            Command::LeaseGrant { id: 5, ttl: 60 },
            Command::LeaseRevoke { id: 5 },
        ];
        for command in &commands {
            let mut one = Vec::new();
            encode_command(command, &mut one);
            assert_eq!(one.len(), command_len(command));
            assert_eq!(&decode_command(&one).unwrap(), command);
        }
        let entry = Entry {
            log_id: log_id(2, 10),
            payload: EntryPayload::Normal(Batch(commands.to_vec())),
        };
        let bytes = encode_entry(&entry);
        let back = decode_entry(&bytes).unwrap();
        assert_eq!(back, entry);
        assert_eq!(encode_entry(&back), bytes);
    }

    #[test]
    fn membership_entries_and_applied_state_round_trip() {
        let m = Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, BasicNode::new("http://a:2380")),
                (2, BasicNode::new("http://b:2380")),
                (3, BasicNode::new("http://c:2380")),
            ]),
        );
        let entry = Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Membership(m.clone()),
        };
        let back = decode_entry(&encode_entry(&entry)).unwrap();
        assert_eq!(back, entry);
        let stored = StoredMembership::new(Some(log_id(1, 1)), m);
        let last = log_id(3, 40);
        assert_eq!(
            decode_applied(&encode_applied(Some(&last), &stored)).unwrap(),
            (Some(last), stored)
        );
        let vote = Vote::new_committed(4, 2);
        assert_eq!(decode_vote(&encode_vote(&vote)).unwrap(), vote);
        assert_eq!(decode_log_id(&encode_log_id(None)).unwrap(), None);
    }

    #[test]
    fn snapshot_metadata_and_forwarded_answers_round_trip() {
        let m = Membership::new(
            vec![BTreeSet::from([1, 2])],
            BTreeMap::from([
                (1, BasicNode::new("http://a:2380")),
                (2, BasicNode::new("http://b:2380")),
            ]),
        );
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(2, 9)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), m),
            snapshot_id: "2-7-9-0".into(),
        };
        assert_eq!(
            decode_snapshot_meta(&encode_snapshot_meta(&meta)).unwrap(),
            meta
        );
        let answers = [
            Ok(Applied::Put(PbPutResponse::default())),
            Ok(Applied::LeaseGrant { id: 5, ttl: 10 }),
            Ok(Applied::LeaseRevoke { id: 5 }),
            Err(EtcdError::LeaseNotFound),
            Err(EtcdError::LeaderChanged),
        ];
        for result in answers {
            let output = ApplyOutput {
                result,
                revision: 42,
                events: Vec::new(),
            };
            let back = decode_output(&encode_output(&output)).unwrap();
            assert_eq!(back.revision, 42);
            assert_eq!(format!("{:?}", back.result), format!("{:?}", output.result));
        }
    }

    #[test]
    fn truncated_bytes_are_refused() {
        assert!(decode_entry(&[0, 1]).is_err());
        assert!(decode_command(&[CMD_COMPACT, 0]).is_err());
        assert!(decode_command(&[99]).is_err());
    }
}
