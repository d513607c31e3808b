//! The Cluster service: the members of raft's membership, and changing it at run time
//! (ADR 0703): add (as a voter or a learner), remove, promote a learner. A member's peer URL
//! cannot be updated: its id derives from it.

use std::sync::Arc;

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::node::{MemberChange, MemberError, MemberInfo, Node};

/// etcd's Cluster service.
#[derive(Debug)]
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn pb_member(m: MemberInfo) -> PbMember {
    PbMember {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

impl ClusterService {
    /// Every member, as this member knows them.
    async fn members(&self) -> Vec<PbMember> {
        self.node
            .member_list()
            .await
            .into_iter()
            .map(pb_member)
            .collect()
    }

    fn header(&self) -> Option<etcd_client::proto::PbResponseHeader> {
        self.node.header(self.node.durable_revision())
    }
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        let request = request.into_inner();
        let peer_url = match request.peer_ur_ls.as_slice() {
            [url] => url.clone(),
            [] => return Err(MemberError::BadUrls.into()),
            _ => {
                return Err(MemberError::Refused(
                    "berth: a member has exactly one peer URL; give one".to_owned(),
                )
                .into());
            }
        };
        let is_learner = request.is_learner;
        let changed = self
            .node
            .change_members(MemberChange::Add {
                peer_url: peer_url.clone(),
                is_learner,
            })
            .await?;
        let members = self.members().await;
        let member = members
            .iter()
            .find(|m| m.id == changed.id)
            .cloned()
            .unwrap_or(PbMember {
                id: changed.id,
                name: String::new(),
                peer_ur_ls: vec![peer_url],
                client_ur_ls: Vec::new(),
                is_learner,
            });
        Ok(Response::new(PbMemberAddResponse {
            header: self.header(),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        let id = request.get_ref().id;
        self.node
            .change_members(MemberChange::Remove { id })
            .await?;
        Ok(Response::new(PbMemberRemoveResponse {
            header: self.header(),
            members: self.members().await,
        }))
    }

    /// A member's peer URL is where its id comes from (ADR 0702): changing it is refused;
    /// naming the URL it already has succeeds and changes nothing.
    async fn member_update(
        &self,
        request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        let request = request.into_inner();
        let members = self.node.members();
        let Some((_, url)) = members.iter().find(|(id, _)| *id == request.id) else {
            return Err(MemberError::NotFound.into());
        };
        let wanted: Vec<&str> = request
            .peer_ur_ls
            .iter()
            .map(|u| u.trim_end_matches('/'))
            .collect();
        if wanted != [url.trim_end_matches('/')] {
            return Err(MemberError::Refused(format!(
                "berth: a member's peer URL cannot change (its member id derives from it): \
                 remove member {:x} and add it again with the new peer URL and a fresh data \
                 directory",
                request.id
            ))
            .into());
        }
        Ok(Response::new(PbMemberUpdateResponse {
            header: self.header(),
            members: self.members().await,
        }))
    }

    async fn member_list(
        &self,
        _: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        Ok(Response::new(PbMemberListResponse {
            header: self.header(),
            members: self.members().await,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        let id = request.get_ref().id;
        self.node
            .change_members(MemberChange::Promote { id })
            .await?;
        Ok(Response::new(PbMemberPromoteResponse {
            header: self.header(),
            members: self.members().await,
        }))
    }
}
