//! Forwarding a follower's writes to the leader in batches (ADR 0704): the writes waiting to be
//! forwarded go to the leader as one `ProposeBatch` peer RPC; the leader puts them all into its
//! proposer (so they join its group commit together) and answers each. A follower no longer
//! pays one RPC, with its framing, encoding and task wake-ups on both sides, per write.
//!
//! A write that finds no sender gathering starts one. The sender first lets the runtime run
//! the other tasks already woken (up to [`GATHER_ROUNDS`] times, while each round brings more
//! writes): clients answered together send their next writes together, and those join the
//! batch instead of each starting an RPC of its own. Then it takes every waiting write for the
//! same leader (up to the proposer's [`MAX_BATCH`] commands or [`MAX_BATCH_BYTES`]) and sends
//! them; writes arriving meanwhile start the next sender, up to [`IN_FLIGHT`] batches on their
//! way per follower. Each write keeps etcd's answer of its own: the leader's refusal of it
//! (not leading: "leader changed") or its outcome; a batch that fails on the way (the leader
//! gone, the deadline passed) fails each of its writes as a lone forwarded write failing so
//! would (see `peer::client::forward_error`).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::proposer::{MAX_BATCH, MAX_BATCH_BYTES};
use crate::apply::{ApplyOutput, Command};
use crate::error::EtcdError;
use crate::peer::Peers;
use crate::raft::codec::command_len;

/// Batches on their way to the leader at once, per follower. Measured (bench/cluster/RESULTS.md,
/// 2026-11-29 05:20): with 1 or 2 a follower's writes answered together came back together,
/// the first was sent alone and the rest waited for it, missing the leader's next log entry
/// (puts 0.62–0.63× etcd); with 64 each send takes whatever gathered while the previous one
/// was being sent, and puts were 0.72–0.84×. With gathering (2026-11-29 17:00), 2 was still
/// slower than 64, and 6 no different.
const IN_FLIGHT: usize = 64;

/// How many times at most a sender lets the runtime run other tasks (and poll the sockets)
/// before it takes its batch. It stops as soon as a round brings no new write, so a lone write
/// waits one round. Measured at 64 clients over 3 members: ~4.5 writes per batch with one
/// round, ~6 with up to 8.
const GATHER_ROUNDS: usize = 8;

type Reply = oneshot::Sender<Result<ApplyOutput, EtcdError>>;

#[derive(Debug)]
struct Waiting {
    /// The leader's peer URL when the write was taken.
    url: String,
    command: Command,
    reply: Reply,
}

#[derive(Debug, Default)]
struct Queue {
    /// Senders started and not yet finished.
    in_flight: usize,
    /// Whether a sender has started and not yet taken its batch: a write arriving meanwhile
    /// joins that batch instead of starting a sender of its own.
    gathering: bool,
    waiting: Vec<Waiting>,
}

/// A follower's forwarding queue; see the module documentation.
#[derive(Debug, Clone)]
pub struct Forwarder {
    peers: Peers,
    queue: Arc<Mutex<Queue>>,
}

impl Forwarder {
    pub fn new(peers: Peers) -> Self {
        Self {
            peers,
            queue: Arc::default(),
        }
    }

    /// Hands `command` to the leader at `url`, in the next batch, and returns its answer.
    pub async fn propose(&self, url: String, command: Command) -> Result<ApplyOutput, EtcdError> {
        let (reply, rx) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push(Waiting {
                url,
                command,
                reply,
            });
            let start = !queue.gathering && queue.in_flight < IN_FLIGHT;
            if start {
                queue.in_flight += 1;
                queue.gathering = true;
            }
            start
        };
        if start {
            // Its own task: a client that gives up must not strand the writes behind it.
            tokio::spawn(self.clone().send_batches());
        }
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Gathers and sends batches, starting as the sender gathering, until no write waits for
    /// it: it stops once the queue is empty or another sender is gathering.
    async fn send_batches(self) {
        loop {
            // Clients answered together send their next writes together: let the tasks already
            // woken with them run first, so those writes go in this batch rather than each in
            // an RPC of its own.
            let mut seen = self.lock().waiting.len();
            for _ in 0..GATHER_ROUNDS {
                tokio::task::yield_now().await;
                let waiting = self.lock().waiting.len();
                if waiting == seen {
                    break;
                }
                seen = waiting;
            }
            let Some((url, batch)) = self.take_batch() else {
                return;
            };
            let commands: Vec<&Command> = batch.iter().map(|w| &w.command).collect();
            match self.peers.propose_batch(&url, &commands).await {
                Ok(outcomes) => {
                    for (waiting, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = waiting.reply.send(outcome);
                    }
                }
                Err(err) => {
                    for waiting in batch {
                        let _ = waiting.reply.send(Err(err));
                    }
                }
            }
            let mut queue = self.lock();
            if queue.waiting.is_empty() || queue.gathering {
                queue.in_flight -= 1;
                return;
            }
            queue.gathering = true;
        }
    }

    /// Called by the sender gathering: ends the gathering and takes the next batch, the oldest
    /// waiting write and every later one for the same leader, up to the proposer's limits;
    /// `None` (and one sender fewer) if nothing waits.
    fn take_batch(&self) -> Option<(String, Vec<Waiting>)> {
        let mut queue = self.lock();
        queue.gathering = false;
        let Some(first) = queue.waiting.first() else {
            queue.in_flight -= 1;
            return None;
        };
        let url = first.url.clone();
        let mut batch = Vec::new();
        let mut rest = Vec::new();
        let mut bytes = 0;
        for waiting in std::mem::take(&mut queue.waiting) {
            let fits = batch.is_empty() || (batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES);
            if waiting.url == url && fits {
                bytes += command_len(&waiting.command);
                batch.push(waiting);
            } else {
                rest.push(waiting);
            }
        }
        queue.waiting = rest;
        Some((url, batch))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
