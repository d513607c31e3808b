//! The server side of the peer transport: answers other members on the peer URL.

use std::net::SocketAddr;
use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::AppendEntriesResponse;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::proto::peer_server::{Peer, PeerServer};
use super::{MAX_PEER_MESSAGE, proto, wire};
use crate::error::StoreError;
use crate::node::Node;
use crate::raft::codec::{self, DecodeError};

/// The peer service of one member.
#[derive(Debug)]
pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn bad_request(err: DecodeError) -> Status {
    Status::invalid_argument(err.to_string())
}

fn raft_failed(err: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft: {err}"))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        request: Request<proto::AppendEntriesRequest>,
    ) -> Result<Response<proto::AppendEntriesReply>, Status> {
        let rpc = wire::append_request_back(request.get_ref()).map_err(bad_request)?;
        let vote = rpc.vote;
        let resp = self
            .node
            .raft()
            .append_entries(rpc)
            .await
            .map_err(raft_failed)?;
        if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
            self.node.leader_heard(&vote);
        }
        Ok(Response::new(wire::append_reply(&resp)))
    }

    async fn vote(
        &self,
        request: Request<proto::VoteRequest>,
    ) -> Result<Response<proto::VoteReply>, Status> {
        let rpc = wire::vote_request_back(request.get_ref()).map_err(bad_request)?;
        let resp = self.node.raft().vote(rpc).await.map_err(raft_failed)?;
        Ok(Response::new(wire::vote_reply(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<proto::InstallSnapshotRequest>,
    ) -> Result<Response<proto::InstallSnapshotReply>, Status> {
        let rpc = wire::snapshot_request_back(request.into_inner()).map_err(bad_request)?;
        let vote = rpc.vote;
        match self.node.raft().install_snapshot(rpc).await {
            Ok(resp) => {
                // A leader streaming a snapshot may send no AppendEntries meanwhile: its
                // accepted chunks keep this member from standing for election.
                if vote >= resp.vote {
                    self.node.leader_heard(&vote);
                }
                Ok(Response::new(wire::snapshot_reply(&resp)))
            }
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                Err(Status::failed_precondition(m.to_string()))
            }
            Err(err) => Err(raft_failed(err)),
        }
    }

    async fn propose(
        &self,
        request: Request<proto::ProposeRequest>,
    ) -> Result<Response<proto::ProposeReply>, Status> {
        let command = codec::decode_command(&request.get_ref().command).map_err(bad_request)?;
        // Answered by this member only: a member that no longer leads says so, and the
        // follower that forwarded tells its client (no second hop, no loop).
        let output = self.node.propose_as_leader(command).await?;
        Ok(Response::new(proto::ProposeReply {
            output: codec::encode_output(&output),
        }))
    }

    async fn propose_batch(
        &self,
        request: Request<proto::ProposeBatchRequest>,
    ) -> Result<Response<proto::ProposeBatchReply>, Status> {
        let commands = request
            .get_ref()
            .commands
            .iter()
            .map(|bytes| codec::decode_command(bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_request)?;
        // Answered by this member only, as a lone Propose; each write gets its own answer.
        let results = self.node.propose_batch_as_leader(commands).await?;
        Ok(Response::new(proto::ProposeBatchReply {
            outcomes: results
                .iter()
                .map(|result| wire::propose_outcome(result.as_ref().map_err(|e| *e)))
                .collect(),
        }))
    }

    async fn read_index(
        &self,
        _: Request<proto::ReadIndexRequest>,
    ) -> Result<Response<proto::ReadIndexReply>, Status> {
        let index = self.node.read_index_as_leader().await?;
        Ok(Response::new(proto::ReadIndexReply { index }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<proto::LeaseKeepAliveRequest>,
    ) -> Result<Response<proto::LeaseKeepAliveReply>, Status> {
        let ttl = self.node.keep_alive_here(request.get_ref().id)?;
        Ok(Response::new(proto::LeaseKeepAliveReply { ttl }))
    }

    async fn lease_remaining(
        &self,
        request: Request<proto::LeaseRemainingRequest>,
    ) -> Result<Response<proto::LeaseRemainingReply>, Status> {
        let ttl = self
            .node
            .lease_remaining_here(request.get_ref().id)?
            .unwrap_or(-1);
        Ok(Response::new(proto::LeaseRemainingReply { ttl }))
    }

    async fn describe(
        &self,
        _: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::DescribeReply>, Status> {
        Ok(Response::new(proto::DescribeReply {
            name: self.node.config.name.clone(),
            client_urls: self.node.config.advertise_client_urls.clone(),
            cluster_id: self.node.cluster_id,
        }))
    }

    async fn change_members(
        &self,
        request: Request<proto::ChangeMembersRequest>,
    ) -> Result<Response<proto::ChangeMembersReply>, Status> {
        let change = wire::member_change_back(request.get_ref())?;
        // Answered by this member only, as a forwarded write.
        let changed = self.node.change_members_as_leader(change).await?;
        Ok(Response::new(proto::ChangeMembersReply {
            id: changed.id,
            index: changed.index,
        }))
    }
}

/// Binds every peer listen address, then serves the peer service on them until `stop` turns
/// true. Binding happens before this returns, so an address in use is an error at start.
pub fn serve_peers(
    node: &Arc<Node>,
    addrs: &[SocketAddr],
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, StoreError> {
    let mut tasks = Vec::new();
    for &addr in addrs {
        let incoming = TcpIncoming::bind(addr)
            .map_err(|source| StoreError::Listen { addr, source })?
            .with_nodelay(Some(true));
        let service = PeerServer::new(PeerService::new(Arc::clone(node)))
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let router = Server::builder().add_service(service);
        tracing::info!(%addr, "store serving peers");
        let mut stop = stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tasks.push(tokio::spawn(async move {
            if let Err(err) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                tracing::error!(%addr, %err, "peer server failed");
            }
        }));
    }
    Ok(tasks)
}
