//! The Cluster service: one member, this node, until replication (issue #7).

use std::sync::Arc;

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::node::Node;

/// etcd's Cluster service for a one-member cluster.
#[derive(Debug)]
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

const SINGLE_MEMBER: &str = "membership changes need a replicated store (issue #7)";

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        _: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(Status::unimplemented(SINGLE_MEMBER))
    }

    async fn member_remove(
        &self,
        _: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(Status::unimplemented(SINGLE_MEMBER))
    }

    async fn member_update(
        &self,
        _: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(Status::unimplemented(SINGLE_MEMBER))
    }

    async fn member_list(
        &self,
        _: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        // Members come from raft's membership; only this one's name and URLs are known here.
        let node = &self.node;
        let members = node
            .members()
            .into_iter()
            .map(|(id, _)| PbMember {
                id,
                name: if id == node.member_id {
                    node.config.name.clone()
                } else {
                    String::new()
                },
                peer_ur_ls: Vec::new(),
                client_ur_ls: if id == node.member_id {
                    node.config.advertise_client_urls.clone()
                } else {
                    Vec::new()
                },
                is_learner: false,
            })
            .collect();
        Ok(Response::new(PbMemberListResponse {
            header: node.header(node.durable_revision()),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(Status::unimplemented(SINGLE_MEMBER))
    }
}
