//! The Lease service: grant and revoke through the log; keep-alive and time-to-live on this
//! node's lease clock.

use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::check_size;
use crate::apply::{Applied, Command};
use crate::error::EtcdError;
use crate::lease::MAX_TTL;
use crate::node::Node;

/// etcd's Lease service.
#[derive(Debug)]
pub struct LeaseService {
    node: Arc<Node>,
}

impl LeaseService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Answers one keep-alive: the full TTL again, or a TTL of 0 for a lease that is gone or has
/// expired (and is about to be revoked): an expired lease is never brought back. The leader's
/// lease clock decides (a follower asks it).
async fn keep_alive(node: &Node, id: i64) -> Result<PbLeaseKeepAliveResponse, Status> {
    let ttl = node.keep_alive(id).await?;
    Ok(PbLeaseKeepAliveResponse {
        header: node.header(node.durable_revision()),
        id,
        ttl,
    })
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.into_inner();
        check_size(&self.node, &req)?;
        if req.ttl > MAX_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        if self.node.no_space() {
            return Err(EtcdError::NoSpace.into());
        }
        let id = if req.id == 0 {
            // etcd generates positive ids; a clash is refused by the state machine.
            rand::random::<i64>() & i64::MAX | 1
        } else {
            req.id
        };
        let out = self
            .node
            .propose(Command::LeaseGrant { id, ttl: req.ttl })
            .await?;
        match out.result? {
            Applied::LeaseGrant { id, ttl } => Ok(Response::new(PbLeaseGrantResponse {
                header: self.node.header(out.revision),
                id,
                ttl,
                error: String::new(),
            })),
            _ => Err(Status::internal("lease grant applied as another command")),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        let out = self
            .node
            .propose(Command::LeaseRevoke { id: req.id })
            .await?;
        out.result?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: self.node.header(out.revision),
        }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let node = Arc::clone(&self.node);
        tokio::spawn(async move {
            while let Some(Ok(req)) = inbound.next().await {
                if tx.send(keep_alive(&node, req.id).await).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let node = &self.node;
        let (granted, keys, rev) = node.read(|state, rev| {
            let leases = state.leases();
            (
                leases.ttl(req.id),
                if req.keys {
                    leases.keys(req.id)
                } else {
                    Vec::new()
                },
                rev,
            )
        });
        // The leader's clock: a follower's knows the grant but none of the keep-alives.
        let remaining = node.lease_remaining(req.id).await?;
        let resp = match (granted, remaining) {
            (Some(granted_ttl), Some(ttl)) => PbLeaseTimeToLiveResponse {
                header: node.header(rev),
                id: req.id,
                ttl,
                granted_ttl,
                keys,
            },
            _ => PbLeaseTimeToLiveResponse {
                header: node.header(rev),
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let (leases, rev) = self.node.read(|state, rev| (state.leases().all(), rev));
        Ok(Response::new(PbLeaseLeasesResponse {
            header: self.node.header(rev),
            leases: leases
                .into_iter()
                .map(|(id, _)| PbLeaseStatus { id })
                .collect(),
        }))
    }
}
