//! The client side of the peer transport: openraft's network and the forwarding calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LeaderId, LogId};
use tonic::transport::{Channel, Endpoint};

use super::proto::peer_client::PeerClient;
use super::{MAX_PEER_MESSAGE, proto, wire};
use crate::apply::{ApplyOutput, Command};
use crate::error::EtcdError;
use crate::node::{MemberChange, MemberChanged};
use crate::raft::TypeConfig;
use crate::raft::codec;
use crate::raft::types::Entry;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a forwarded request may take on the leader.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// One channel per peer URL, connected on first use and kept (tonic reconnects it).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// The last log id each member reported when it answered this member's vote request, with
    /// the leader id that request was for (see [`held_through`]).
    reported_logs: Arc<Mutex<ReportedLogs>>,
}

/// Member id → (the leader id a vote request was for, the last log id the member answered).
type ReportedLogs = HashMap<u64, (LeaderId<u64>, LogId<u64>)>;

impl Peers {
    /// The client for the member at `url`; an invalid URL is refused.
    pub fn client(&self, url: &str) -> Result<PeerClient<Channel>, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let channel = match channels.get(url) {
            Some(channel) => channel.clone(),
            None => {
                let channel = Endpoint::from_shared(url.to_owned())
                    .map_err(|e| format!("peer URL {url}: {e}"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect_lazy();
                channels.insert(url.to_owned(), channel.clone());
                channel
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    fn reported_logs(&self) -> std::sync::MutexGuard<'_, ReportedLogs> {
        self.reported_logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last log id `member` reported to this member's candidacy as `leader`, if any.
    fn reported_log(&self, member: u64, leader: &LeaderId<u64>) -> Option<LogId<u64>> {
        match self.reported_logs().get(&member) {
            Some((asked_as, last)) if asked_as == leader => Some(*last),
            _ => None,
        }
    }

    /// Hands `commands` to the leader at `url` as one batch and returns its answer to each, in
    /// order. A batch that fails on the way fails as a whole, as one forwarded write would.
    pub async fn propose_batch(
        &self,
        url: &str,
        commands: &[&Command],
    ) -> Result<Vec<Result<ApplyOutput, EtcdError>>, EtcdError> {
        let mut client = self.client(url).map_err(|_| EtcdError::NoLeader)?;
        let commands = commands
            .iter()
            .map(|command| {
                let mut bytes = Vec::with_capacity(codec::command_len(command));
                codec::encode_command(command, &mut bytes);
                bytes
            })
            .collect::<Vec<_>>();
        let sent = commands.len();
        let reply = client
            .propose_batch(request(
                proto::ProposeBatchRequest { commands },
                FORWARD_TIMEOUT,
            ))
            .await
            .map_err(forward_error)?
            .into_inner();
        if reply.outcomes.len() != sent {
            tracing::warn!(
                url,
                sent,
                answered = reply.outcomes.len(),
                "leader answered a forwarded batch with another number of outcomes"
            );
            return Err(EtcdError::LeaderChanged);
        }
        Ok(reply
            .outcomes
            .into_iter()
            .map(|outcome| wire::propose_outcome_back(outcome, url))
            .collect())
    }

    /// Asks the leader at `url` for the index a linearizable read must see applied.
    pub async fn read_index(&self, url: &str) -> Result<u64, EtcdError> {
        let mut client = self.client(url).map_err(|_| EtcdError::NoLeader)?;
        let reply = client
            .read_index(request(proto::ReadIndexRequest {}, FORWARD_TIMEOUT))
            .await
            .map_err(forward_error)?;
        Ok(reply.into_inner().index)
    }

    /// Hands a lease keep-alive to the leader at `url`: the TTL granted again, or 0.
    pub async fn keep_alive(&self, url: &str, id: i64) -> Result<i64, EtcdError> {
        let mut client = self.client(url).map_err(|_| EtcdError::NoLeader)?;
        let reply = client
            .lease_keep_alive(request(
                proto::LeaseKeepAliveRequest { id },
                FORWARD_TIMEOUT,
            ))
            .await
            .map_err(forward_error)?;
        Ok(reply.into_inner().ttl)
    }

    /// Asks the leader at `url` how long lease `id` has left; `None` if it does not know it.
    pub async fn lease_remaining(&self, url: &str, id: i64) -> Result<Option<i64>, EtcdError> {
        let mut client = self.client(url).map_err(|_| EtcdError::NoLeader)?;
        let reply = client
            .lease_remaining(request(
                proto::LeaseRemainingRequest { id },
                FORWARD_TIMEOUT,
            ))
            .await
            .map_err(forward_error)?;
        let ttl = reply.into_inner().ttl;
        Ok((ttl >= 0).then_some(ttl))
    }

    /// Hands a membership change to the leader at `url`. Its refusals (etcd's member errors)
    /// are passed on as it sent them; a failure to reach it is "leader changed".
    pub async fn change_members(
        &self,
        url: &str,
        change: &MemberChange,
    ) -> Result<MemberChanged, tonic::Status> {
        let mut client = self
            .client(url)
            .map_err(|_| tonic::Status::from(EtcdError::NoLeader))?;
        let reply = client
            .change_members(request(wire::member_change(change), FORWARD_TIMEOUT))
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound
                | tonic::Code::FailedPrecondition
                | tonic::Code::InvalidArgument => status,
                _ => forward_error(status).into(),
            })?
            .into_inner();
        Ok(MemberChanged {
            id: reply.id,
            index: reply.index,
        })
    }

    /// The name and client URLs the member at `url` reports, if it answers within `limit`.
    pub async fn describe(&self, url: &str, limit: Duration) -> Option<proto::DescribeReply> {
        let mut client = self.client(url).ok()?;
        let call = client.describe(request(proto::DescribeRequest {}, limit));
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(reply)) => Some(reply.into_inner()),
            _ => None,
        }
    }
}

fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}

/// A failed forward: an etcd error the leader sent is passed on; anything else means the
/// leader is gone or changed, which a client retries (the write's outcome is unknown).
pub(super) fn forward_error(status: tonic::Status) -> EtcdError {
    match status.code() {
        tonic::Code::Unavailable if status.message() == EtcdError::NoLeader.to_string() => {
            EtcdError::NoLeader
        }
        tonic::Code::Unavailable if status.message() == EtcdError::Stopped.to_string() => {
            EtcdError::LeaderChanged
        }
        tonic::Code::DeadlineExceeded => EtcdError::Timeout,
        _ => EtcdError::LeaderChanged,
    }
}

/// openraft's network: a client per peer, over [`Peers`].
#[derive(Debug, Clone, Default)]
pub struct PeerNetwork {
    peers: Peers,
}

impl PeerNetwork {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }
}

/// The connection openraft uses for one peer.
#[derive(Debug)]
pub struct PeerConnection {
    target: u64,
    url: String,
    client: Result<PeerClient<Channel>, String>,
    peers: Peers,
}

/// Where in `entries` a follower that reported `reported` as its last log id holds them
/// through, if it holds any: the position of the entry at `reported`'s index, or of the last
/// entry if the follower's log goes further. A new openraft 0.9 leader knows nothing of its
/// followers' logs and probes each from the middle of its own, walking to its end a few
/// hundred entries per request, every one of them already on a follower that voted for it
/// (ADR 0705). Sending from after the held ones is only a guess: the follower checks it as it
/// checks any previous log id, and a wrong guess costs one refused request.
fn held_through(entries: &[Entry], reported: &LogId<u64>) -> Option<usize> {
    let first = entries.first()?.log_id.index;
    let last = entries.last()?.log_id.index;
    if reported.index < first {
        return None;
    }
    let through = reported.index.min(last);
    let k = usize::try_from(through - first).ok()?;
    let entry = entries.get(k)?;
    // The follower's own last entry: unless it is this very entry, the follower holds another
    // one at this index, and would refuse.
    if reported.index <= last && entry.log_id != *reported {
        return None;
    }
    Some(k)
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            target,
            url: node.addr.clone(),
            client: self.peers.client(&node.addr),
            peers: self.peers.clone(),
        }
    }
}

type RpcErr<E = RaftError<u64>> = RPCError<u64, BasicNode, E>;

fn unreachable<E: std::error::Error>(why: impl std::fmt::Display) -> RpcErr<E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why.to_string())))
}

fn network<E: std::error::Error>(why: impl std::fmt::Display) -> RpcErr<E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(why.to_string())))
}

/// A transport failure: a peer that cannot be reached is backed off by openraft; any other
/// failure is retried at once.
fn status_error<E: std::error::Error>(url: &str, status: &tonic::Status) -> RpcErr<E> {
    let why = format!("peer {url}: {}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => unreachable(why),
        _ => network(why),
    }
}

impl PeerConnection {
    // The error is openraft's own, as its `RaftNetwork` methods return it.
    #[allow(clippy::result_large_err)]
    fn client<E: std::error::Error>(&self) -> Result<PeerClient<Channel>, RpcErr<E>> {
        self.client.clone().map_err(unreachable)
    }

    async fn send_append(
        &self,
        msg: proto::AppendEntriesRequest,
        option: &RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let reply = self
            .client()?
            .append_entries(request(msg, option.hard_ttl()))
            .await
            .map_err(|s| status_error(&self.url, &s))?;
        wire::append_reply_back(reply.get_ref()).map_err(network)
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let held = self
            .peers
            .reported_log(self.target, rpc.vote.leader_id())
            .and_then(|reported| held_through(&rpc.entries, &reported));
        if held.is_some() {
            let resp = self
                .send_append(wire::append_request_from(&rpc, held), &option)
                .await?;
            if !matches!(resp, AppendEntriesResponse::Conflict) {
                return Ok(resp);
            }
            // The guess was wrong: from now on this follower is sent whole requests.
            self.peers.reported_logs().remove(&self.target);
        }
        self.send_append(wire::append_request(&rpc), &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<RaftError<u64, InstallSnapshotError>>> {
        let snapshot_id = rpc.meta.snapshot_id.clone();
        let offset = rpc.offset;
        let msg = wire::snapshot_request(rpc);
        let reply = self
            .client()?
            .install_snapshot(request(msg, option.hard_ttl()))
            .await
            .map_err(|s| {
                if s.code() == tonic::Code::FailedPrecondition {
                    // The receiver lost the snapshot's earlier chunks: openraft starts again.
                    let segment = |offset| openraft::SnapshotSegmentId {
                        id: snapshot_id.clone(),
                        offset,
                    };
                    let mismatch = SnapshotMismatch {
                        expect: segment(0),
                        got: segment(offset),
                    };
                    RPCError::RemoteError(RemoteError::new(
                        self.target,
                        RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch)),
                    ))
                } else {
                    status_error(&self.url, &s)
                }
            })?;
        wire::snapshot_reply_back(reply.get_ref()).map_err(network)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        let msg = wire::vote_request(&rpc);
        let reply = self
            .client()?
            .vote(request(msg, option.hard_ttl()))
            .await
            .map_err(|s| status_error(&self.url, &s))?;
        let resp = wire::vote_reply_back(reply.get_ref()).map_err(network)?;
        let mut reported = self.peers.reported_logs();
        match resp.last_log_id {
            Some(last) => reported.insert(self.target, (*rpc.vote.leader_id(), last)),
            None => reported.remove(&self.target),
        };
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn log_id(term: u64, leader: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, leader), index)
    }

    /// Entries 10..=14, the first two written by leader 1 in term 2, the rest by leader 3 in
    /// term 4.
    fn entries() -> Vec<Entry> {
        (10..15)
            .map(|i| Entry {
                log_id: if i < 12 {
                    log_id(2, 1, i)
                } else {
                    log_id(4, 3, i)
                },
                payload: EntryPayload::Blank,
            })
            .collect()
    }

    #[test]
    fn a_follower_is_sent_only_the_entries_after_those_it_reported_holding() {
        let entries = entries();
        // Its last entry is the one at 12, ours: it holds 10..=12.
        assert_eq!(held_through(&entries, &log_id(4, 3, 12)), Some(2));
        // Its log goes past the request: it holds all of it if it holds the last (it checks).
        assert_eq!(held_through(&entries, &log_id(4, 3, 40)), Some(4));
        assert_eq!(held_through(&entries, &log_id(9, 9, 14)), None);
        // Its last entry at 12 is another leader's: it holds something else there.
        assert_eq!(held_through(&entries, &log_id(3, 2, 12)), None);
        // Its log ends before the request: every entry is new to it.
        assert_eq!(held_through(&entries, &log_id(2, 1, 9)), None);
        assert_eq!(held_through(&[], &log_id(4, 3, 12)), None);
    }

    #[test]
    fn a_shortened_request_starts_after_the_held_entry_and_keeps_the_rest() {
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(4, 3),
            prev_log_id: Some(log_id(2, 1, 9)),
            entries: entries(),
            leader_commit: Some(log_id(2, 1, 11)),
        };
        let short = wire::append_request_from(&rpc, Some(2));
        let back = wire::append_request_back(&short).expect("decodes");
        assert_eq!(back.prev_log_id, Some(log_id(4, 3, 12)));
        assert_eq!(
            back.entries.iter().map(|e| e.log_id).collect::<Vec<_>>(),
            vec![log_id(4, 3, 13), log_id(4, 3, 14)]
        );
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.leader_commit, rpc.leader_commit);
        let whole = wire::append_request_back(&wire::append_request(&rpc)).expect("decodes");
        assert_eq!(whole.prev_log_id, rpc.prev_log_id);
        assert_eq!(whole.entries.len(), 5);
    }
}
