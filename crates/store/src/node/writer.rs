//! The writer thread: the only place the state machine changes and the backend is written.
//!
//! Group commit: the thread takes every write waiting in its queue (up to [`MAX_BATCH`]), applies
//! them in order as consecutive log entries, persists their combined write set in one backend
//! commit (one fsync), and only then makes them visible, publishes their events and answers.
//! While one commit is on disk, new writes queue up and form the next group.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use etcd_client::proto::PbEvent;
use tokio::sync::{mpsc, oneshot};

use super::{MAX_BATCH, Node};
use crate::apply::{Applied, ApplyOutput, Command, LogEntry, WriteSet};
use crate::backend::Backend;
use crate::error::EtcdError;

/// Work for the writer thread.
#[derive(Debug)]
pub enum Job {
    Write {
        command: Command,
        reply: oneshot::Sender<Result<ApplyOutput, EtcdError>>,
    },
    Defragment {
        reply: oneshot::Sender<Result<(), EtcdError>>,
    },
}

pub fn spawn(node: Arc<Node>, backend: Box<dyn Backend>, rx: mpsc::Receiver<Job>) {
    let spawned = std::thread::Builder::new()
        .name("store-writer".to_owned())
        .spawn(move || run(&node, backend, rx));
    if let Err(err) = spawned {
        tracing::error!(%err, "cannot start the store writer thread");
    }
}

type Reply = oneshot::Sender<Result<ApplyOutput, EtcdError>>;

fn run(node: &Node, mut backend: Box<dyn Backend>, mut rx: mpsc::Receiver<Job>) {
    let mut next_index = node.applied_index() + 1;
    while let Some(first) = rx.blocking_recv() {
        let mut commands: Vec<Command> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut job = Some(first);
        while let Some(j) = job.take() {
            match j {
                Job::Write { command, reply } => {
                    commands.push(command);
                    replies.push(reply);
                }
                Job::Defragment { reply } => {
                    let result = backend.defragment().map_err(|err| {
                        tracing::error!(%err, "defragment failed");
                        EtcdError::Stopped
                    });
                    node.check_quota(backend.size_bytes());
                    let _ = reply.send(result);
                }
            }
            if commands.len() < MAX_BATCH {
                job = rx.try_recv().ok();
            }
        }
        if commands.is_empty() {
            continue;
        }
        let mut ws = WriteSet::default();
        let outputs: Vec<ApplyOutput> = {
            let mut state = node
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            commands
                .into_iter()
                .map(|command| {
                    let entry = LogEntry {
                        index: next_index,
                        command,
                    };
                    next_index += 1;
                    state.apply(&entry, &mut ws)
                })
                .collect()
        };
        if !ws.is_empty() {
            if let Err(err) = backend.commit(&ws) {
                tracing::error!(%err, "store commit failed; the store stops accepting writes");
                node.failed.store(true, Ordering::Release);
                for reply in replies {
                    let _ = reply.send(Err(EtcdError::Stopped));
                }
                return;
            }
            node.check_quota(backend.size_bytes());
        }
        let mut outputs = outputs;
        let events: Vec<(i64, Vec<PbEvent>)> = outputs
            .iter_mut()
            .map(|o| (o.revision, std::mem::take(&mut o.events)))
            .collect();
        let last_revision = outputs.last().map_or(0, |o| o.revision);
        node.publish(last_revision, next_index - 1, &events);
        update_lease_clock(node, &outputs);
        for (reply, output) in replies.into_iter().zip(outputs) {
            let _ = reply.send(Ok(output));
        }
    }
}

fn update_lease_clock(node: &Node, outputs: &[ApplyOutput]) {
    let now = Instant::now();
    let mut clock = node
        .lease_clock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for o in outputs {
        match &o.result {
            Ok(Applied::LeaseGrant { id, ttl }) => clock.renew(*id, *ttl, now),
            Ok(Applied::LeaseRevoke { id }) => clock.forget(*id),
            _ => {}
        }
    }
}
