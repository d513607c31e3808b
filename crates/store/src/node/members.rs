//! Membership changes at run time (etcd's MemberAdd, MemberRemove, MemberPromote; ADR 0703):
//! made by the leader through openraft's joint consensus, handed to it by any other member.

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::{Leader, Node};
use crate::config::{listen_addr, member_id};
use crate::error::EtcdError;

/// A change of the membership a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// A new member at this peer URL, as a learner (no vote) or a voter.
    Add {
        peer_url: String,
        is_learner: bool,
    },
    Remove {
        id: u64,
    },
    /// A learner becomes a voter.
    Promote {
        id: u64,
    },
}

/// What a change did: the member it concerned and the log index of the membership that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberChanged {
    pub id: u64,
    pub index: u64,
}

/// Why a membership change was refused; the messages and codes are etcd's where etcd has the
/// same refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    #[error("etcdserver: member not found")]
    NotFound,
    #[error("etcdserver: member ID already exist")]
    IdExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
    #[error("etcdserver: can only promote a learner member")]
    NotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// A refusal of berth's own (no etcd equivalent), with what to do instead.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

impl From<MemberError> for tonic::Status {
    fn from(err: MemberError) -> Self {
        use tonic::Code;
        let code = match &err {
            MemberError::NotFound => Code::NotFound,
            MemberError::BadUrls => Code::InvalidArgument,
            MemberError::Etcd(e) => return (*e).into(),
            _ => Code::FailedPrecondition,
        };
        tonic::Status::new(code, err.to_string())
    }
}

/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;

impl Node {
    /// Makes `change`, on the leader (handed to it if this member does not lead), and waits
    /// until this member has the resulting membership.
    pub async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<MemberChanged, tonic::Status> {
        let changed = match self.leader().await? {
            Leader::ThisMember => self.change_members_as_leader(change).await?,
            Leader::Other(url) => self.peers.change_members(&url, &change).await?,
        };
        // The answer lists the members as this member knows them: wait for the change here.
        let _ = self
            .raft
            .wait(Some(crate::peer::FORWARD_TIMEOUT))
            .metrics(
                |m| {
                    m.membership_config
                        .log_id()
                        .is_some_and(|id| id.index >= changed.index)
                },
                "membership change seen",
            )
            .await;
        Ok(changed)
    }

    /// Makes `change` on this member; refused unless it leads. One change at a time.
    pub(crate) async fn change_members_as_leader(
        &self,
        change: MemberChange,
    ) -> Result<MemberChanged, MemberError> {
        let _one_at_a_time = self.membership_lock.lock().await;
        if !self.is_leader() {
            return Err(EtcdError::LeaderChanged.into());
        }
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let nodes: BTreeMap<u64, String> = membership
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let learners = nodes.keys().filter(|id| !voters.contains(id)).count();
        match change {
            MemberChange::Add {
                peer_url,
                is_learner,
            } => {
                let Some(cluster) = &self.config.cluster else {
                    return Err(MemberError::Refused(
                        "this store runs alone (no --initial-cluster): start it as a cluster \
                         member to add members"
                            .to_owned(),
                    ));
                };
                let peer_url = peer_url.trim_end_matches('/').to_owned();
                if listen_addr(&peer_url).is_err() {
                    return Err(MemberError::BadUrls);
                }
                if nodes
                    .values()
                    .any(|url| url.trim_end_matches('/') == peer_url)
                {
                    return Err(MemberError::PeerUrlExists);
                }
                // The id the new member derives from its own flags (ADR 0702).
                let id = member_id(&peer_url, &cluster.token);
                if nodes.contains_key(&id) {
                    return Err(MemberError::IdExists);
                }
                if is_learner && learners >= MAX_LEARNERS {
                    return Err(MemberError::TooManyLearners);
                }
                let added = self
                    .raft
                    .add_learner(id, BasicNode::new(peer_url), false)
                    .await
                    .map_err(change_error)?;
                let mut index = added.log_id.index;
                if !is_learner {
                    let voted = self
                        .raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(change_error)?;
                    index = voted.log_id.index;
                }
                Ok(MemberChanged { id, index })
            }
            MemberChange::Remove { id } => {
                if !nodes.contains_key(&id) {
                    return Err(MemberError::NotFound);
                }
                let changes = if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(MemberError::NotEnoughStarted);
                    }
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                let removed = self
                    .raft
                    .change_membership(changes, false)
                    .await
                    .map_err(change_error)?;
                Ok(MemberChanged {
                    id,
                    index: removed.log_id.index,
                })
            }
            MemberChange::Promote { id } => {
                if !nodes.contains_key(&id) {
                    return Err(MemberError::NotFound);
                }
                if voters.contains(&id) {
                    return Err(MemberError::NotLearner);
                }
                // etcd's rule: the learner has at least 90% of the leader's log.
                let last = metrics.last_log_index.unwrap_or(0);
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).copied().flatten())
                    .map_or(0, |log_id| log_id.index);
                if matched < last.saturating_mul(9) / 10 || matched == 0 {
                    return Err(MemberError::LearnerNotReady);
                }
                let promoted = self
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(change_error)?;
                Ok(MemberChanged {
                    id,
                    index: promoted.log_id.index,
                })
            }
        }
    }
}

fn change_error(err: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> MemberError {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            EtcdError::LeaderChanged.into()
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => match e {
            ChangeMembershipError::InProgress(_) => MemberError::Refused(
                "etcdserver: another membership change is in progress; try again".to_owned(),
            ),
            ChangeMembershipError::EmptyMembership(_) => MemberError::NotEnoughStarted,
            ChangeMembershipError::LearnerNotFound(_) => MemberError::NotFound,
        },
        RaftError::Fatal(_) => EtcdError::Stopped.into(),
    }
}
