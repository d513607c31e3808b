//! openraft's messages to and from the peer protocol's: raft values as the store's codec bytes.

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::proto;
use super::proto::append_entries_reply::Outcome;
use crate::apply::ApplyOutput;
use crate::error::EtcdError;
use crate::node::MemberChange;
use crate::raft::TypeConfig;
use crate::raft::codec::{self, DecodeError};

pub fn member_change(change: &MemberChange) -> proto::ChangeMembersRequest {
    use proto::change_members_request::Kind;
    let mut msg = proto::ChangeMembersRequest::default();
    match change {
        MemberChange::Add {
            peer_url,
            is_learner,
        } => {
            msg.set_kind(Kind::Add);
            msg.peer_url.clone_from(peer_url);
            msg.is_learner = *is_learner;
        }
        MemberChange::Remove { id } => {
            msg.set_kind(Kind::Remove);
            msg.id = *id;
        }
        MemberChange::Promote { id } => {
            msg.set_kind(Kind::Promote);
            msg.id = *id;
        }
    }
    msg
}

pub fn member_change_back(
    msg: &proto::ChangeMembersRequest,
) -> Result<MemberChange, tonic::Status> {
    use proto::change_members_request::Kind;
    match Kind::try_from(msg.kind) {
        Ok(Kind::Add) => Ok(MemberChange::Add {
            peer_url: msg.peer_url.clone(),
            is_learner: msg.is_learner,
        }),
        Ok(Kind::Remove) => Ok(MemberChange::Remove { id: msg.id }),
        Ok(Kind::Promote) => Ok(MemberChange::Promote { id: msg.id }),
        Err(_) => Err(tonic::Status::invalid_argument(format!(
            "unknown membership change kind {}",
            msg.kind
        ))),
    }
}

/// A leader's answer to one command of a forwarded batch: its output, or the refusal it would
/// have answered a lone Propose of it with.
pub fn propose_outcome(result: Result<&ApplyOutput, EtcdError>) -> proto::ProposeOutcome {
    match result {
        Ok(output) => proto::ProposeOutcome {
            output: codec::encode_output(output),
            ..proto::ProposeOutcome::default()
        },
        Err(err) => proto::ProposeOutcome {
            output: Vec::new(),
            code: err.code() as i32,
            message: err.to_string(),
        },
    }
}

/// The follower's side of [`propose_outcome`]: a refusal means what the same status on a lone
/// Propose means.
pub fn propose_outcome_back(
    outcome: proto::ProposeOutcome,
    url: &str,
) -> Result<ApplyOutput, EtcdError> {
    if outcome.code != 0 {
        let status = tonic::Status::new(tonic::Code::from(outcome.code), outcome.message);
        return Err(super::client::forward_error(status));
    }
    codec::decode_output(&outcome.output).map_err(|err| {
        tracing::warn!(%err, url, "leader answered a forwarded write with bad bytes");
        EtcdError::LeaderChanged
    })
}

pub fn append_request(rpc: &AppendEntriesRequest<TypeConfig>) -> proto::AppendEntriesRequest {
    append_request_from(rpc, None)
}

/// `rpc` as sent to a follower known to hold its entries through `rpc.entries[through]`: the
/// request those entries' last is the previous log id of, with only the entries after it.
/// The follower's answer means the same as its answer to `rpc` would: by raft's log
/// matching, holding that entry means holding every one before it.
pub fn append_request_from(
    rpc: &AppendEntriesRequest<TypeConfig>,
    through: Option<usize>,
) -> proto::AppendEntriesRequest {
    let (prev, entries) = match through {
        Some(k) => (Some(&rpc.entries[k].log_id), &rpc.entries[k + 1..]),
        None => (rpc.prev_log_id.as_ref(), &rpc.entries[..]),
    };
    proto::AppendEntriesRequest {
        vote: codec::encode_vote(&rpc.vote),
        prev_log_id: codec::encode_log_id(prev),
        entries: entries.iter().map(codec::encode_entry).collect(),
        leader_commit: codec::encode_log_id(rpc.leader_commit.as_ref()),
    }
}

pub fn append_request_back(
    msg: &proto::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, DecodeError> {
    Ok(AppendEntriesRequest {
        vote: codec::decode_vote(&msg.vote)?,
        prev_log_id: codec::decode_log_id(&msg.prev_log_id)?,
        entries: msg
            .entries
            .iter()
            .map(|e| codec::decode_entry(e))
            .collect::<Result<_, _>>()?,
        leader_commit: codec::decode_log_id(&msg.leader_commit)?,
    })
}

pub fn append_reply(resp: &AppendEntriesResponse<u64>) -> proto::AppendEntriesReply {
    let mut reply = proto::AppendEntriesReply::default();
    match resp {
        AppendEntriesResponse::Success => reply.set_outcome(Outcome::Success),
        AppendEntriesResponse::PartialSuccess(matching) => {
            reply.set_outcome(Outcome::PartialSuccess);
            reply.matching = codec::encode_log_id(matching.as_ref());
        }
        AppendEntriesResponse::Conflict => reply.set_outcome(Outcome::Conflict),
        AppendEntriesResponse::HigherVote(vote) => {
            reply.set_outcome(Outcome::HigherVote);
            reply.vote = codec::encode_vote(vote);
        }
    }
    reply
}

pub fn append_reply_back(
    msg: &proto::AppendEntriesReply,
) -> Result<AppendEntriesResponse<u64>, DecodeError> {
    let outcome = Outcome::try_from(msg.outcome).map_err(|_| DecodeError {
        what: "append entries outcome",
    })?;
    Ok(match outcome {
        Outcome::Success => AppendEntriesResponse::Success,
        Outcome::PartialSuccess => {
            AppendEntriesResponse::PartialSuccess(codec::decode_log_id(&msg.matching)?)
        }
        Outcome::Conflict => AppendEntriesResponse::Conflict,
        Outcome::HigherVote => AppendEntriesResponse::HigherVote(codec::decode_vote(&msg.vote)?),
    })
}

pub fn vote_request(rpc: &VoteRequest<u64>) -> proto::VoteRequest {
    proto::VoteRequest {
        vote: codec::encode_vote(&rpc.vote),
        last_log_id: codec::encode_log_id(rpc.last_log_id.as_ref()),
    }
}

pub fn vote_request_back(msg: &proto::VoteRequest) -> Result<VoteRequest<u64>, DecodeError> {
    Ok(VoteRequest {
        vote: codec::decode_vote(&msg.vote)?,
        last_log_id: codec::decode_log_id(&msg.last_log_id)?,
    })
}

pub fn vote_reply(resp: &VoteResponse<u64>) -> proto::VoteReply {
    proto::VoteReply {
        vote: codec::encode_vote(&resp.vote),
        granted: resp.vote_granted,
        last_log_id: codec::encode_log_id(resp.last_log_id.as_ref()),
    }
}

pub fn vote_reply_back(msg: &proto::VoteReply) -> Result<VoteResponse<u64>, DecodeError> {
    Ok(VoteResponse {
        vote: codec::decode_vote(&msg.vote)?,
        vote_granted: msg.granted,
        last_log_id: codec::decode_log_id(&msg.last_log_id)?,
    })
}

pub fn snapshot_request(rpc: InstallSnapshotRequest<TypeConfig>) -> proto::InstallSnapshotRequest {
    proto::InstallSnapshotRequest {
        vote: codec::encode_vote(&rpc.vote),
        meta: codec::encode_snapshot_meta(&rpc.meta),
        offset: rpc.offset,
        data: rpc.data,
        done: rpc.done,
    }
}

pub fn snapshot_request_back(
    msg: proto::InstallSnapshotRequest,
) -> Result<InstallSnapshotRequest<TypeConfig>, DecodeError> {
    Ok(InstallSnapshotRequest {
        vote: codec::decode_vote(&msg.vote)?,
        meta: codec::decode_snapshot_meta(&msg.meta)?,
        offset: msg.offset,
        data: msg.data,
        done: msg.done,
    })
}

pub fn snapshot_reply(resp: &InstallSnapshotResponse<u64>) -> proto::InstallSnapshotReply {
    proto::InstallSnapshotReply {
        vote: codec::encode_vote(&resp.vote),
    }
}

pub fn snapshot_reply_back(
    msg: &proto::InstallSnapshotReply,
) -> Result<InstallSnapshotResponse<u64>, DecodeError> {
    Ok(InstallSnapshotResponse {
        vote: codec::decode_vote(&msg.vote)?,
    })
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, LogId, Vote};

    use super::*;
    use crate::raft::types::{Batch, Entry};

    #[test]
    fn raft_messages_survive_the_peer_encoding() {
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 7);
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id),
            entries: vec![Entry {
                log_id: LogId::new(CommittedLeaderId::new(3, 1), 8),
                payload: EntryPayload::Normal(Batch(Vec::new())),
            }],
            leader_commit: None,
        };
        let back = append_request_back(&append_request(&rpc)).unwrap();
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);
        assert_eq!(back.entries, rpc.entries);
        assert_eq!(back.leader_commit, None);
        for resp in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id)),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(4, 2)),
        ] {
            assert_eq!(append_reply_back(&append_reply(&resp)).unwrap(), resp);
        }
        let vote = VoteResponse {
            vote: Vote::new(5, 2),
            vote_granted: true,
            last_log_id: Some(log_id),
        };
        assert_eq!(vote_reply_back(&vote_reply(&vote)).unwrap(), vote);
    }
}
