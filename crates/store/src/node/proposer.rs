//! The proposer: group commit on top of openraft. It takes every write waiting (up to
//! [`MAX_BATCH`] commands or [`MAX_BATCH_BYTES`]) and proposes them as one log entry, so one
//! log fsync covers them all. openraft 0.9 appends each `client_write` on its own and waits for
//! its fsync before the next, so batching must happen before raft, here.
//!
//! At most [`IN_FLIGHT`] entry is proposed at once; writes arriving meanwhile form the next one.
//! Measured (bench/store/RESULTS.md, run 4): with two in flight the second entry was taken as
//! soon as one write arrived, so entries alternated large and tiny, each paying an fsync, and
//! put throughput at 64 clients halved.

use std::sync::Arc;

use openraft::error::RaftError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::apply::{ApplyOutput, Command};
use crate::error::EtcdError;
use crate::raft::Raft;
use crate::raft::codec::command_len;
use crate::raft::types::Batch;

/// Commands in one log entry at most.
pub const MAX_BATCH: usize = 4096;
/// Encoded bytes of the commands in one log entry at most (one command may exceed it alone).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Entries proposed and not yet applied, at most.
const IN_FLIGHT: usize = 1;

type Reply = oneshot::Sender<Result<ApplyOutput, EtcdError>>;

/// One write waiting to be proposed.
#[derive(Debug)]
pub struct Proposal {
    pub command: Command,
    pub reply: Reply,
}

/// Starts the proposer for `raft`; it stops when every sender is dropped.
pub fn spawn(raft: Raft) -> mpsc::Sender<Proposal> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    tokio::spawn(run(raft, rx));
    tx
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut bytes = command_len(&first.command);
        let mut commands = vec![first.command];
        let mut replies = vec![first.reply];
        while commands.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += command_len(&next.command);
            commands.push(next.command);
            replies.push(next.reply);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (outputs, failure) = match raft.client_write(Batch(commands)).await {
                Ok(written) => (written.data.0, EtcdError::Stopped),
                Err(err) => {
                    tracing::warn!(%err, "raft refused a write");
                    // Not leading (any more): the write may or may not commit under the next
                    // leader, so the client is told the leader changed, as etcd does.
                    let failure = match err {
                        RaftError::APIError(_) => EtcdError::LeaderChanged,
                        RaftError::Fatal(_) => EtcdError::Stopped,
                    };
                    (Vec::new(), failure)
                }
            };
            drop(slot);
            let mut outputs = outputs.into_iter();
            for reply in replies {
                let _ = reply.send(outputs.next().ok_or(failure));
            }
        });
    }
}
