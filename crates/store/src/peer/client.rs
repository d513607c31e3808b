//! The client side of the peer transport: openraft's network and the forwarding calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tonic::transport::{Channel, Endpoint};

use super::proto::peer_client::PeerClient;
use super::{MAX_PEER_MESSAGE, proto, wire};
use crate::apply::{ApplyOutput, Command};
use crate::error::EtcdError;
use crate::node::{MemberChange, MemberChanged};
use crate::raft::TypeConfig;
use crate::raft::codec;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a forwarded request may take on the leader.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// One channel per peer URL, connected on first use and kept (tonic reconnects it).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

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
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            target,
            url: node.addr.clone(),
            client: self.peers.client(&node.addr),
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
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let msg = wire::append_request(&rpc);
        let reply = self
            .client()?
            .append_entries(request(msg, option.hard_ttl()))
            .await
            .map_err(|s| status_error(&self.url, &s))?;
        wire::append_reply_back(reply.get_ref()).map_err(network)
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
        wire::vote_reply_back(reply.get_ref()).map_err(network)
    }
}
