//! Background duties of a node: revoking expired leases and compacting old history. Both go
//! through the log like any client write, so every member of a cluster applies them alike.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Node;
use crate::apply::Command;
use crate::config::AutoCompaction;
use crate::error::EtcdError;

/// How often expired leases are looked for.
const LEASE_TICK: Duration = Duration::from_millis(250);
/// etcd's interval for revision-mode auto-compaction.
const REVISION_COMPACTION_TICK: Duration = Duration::from_secs(300);

/// Starts the lease reaper and, if configured, the auto-compactor.
pub fn spawn_background(node: &Arc<Node>) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(reap_leases(Arc::clone(node)))];
    match node.config.auto_compaction {
        AutoCompaction::Off => {}
        AutoCompaction::Periodic(keep) => {
            tasks.push(tokio::spawn(compact_periodic(Arc::clone(node), keep)))
        }
        AutoCompaction::Revision(keep) => {
            tasks.push(tokio::spawn(compact_revisions(Arc::clone(node), keep)))
        }
    }
    tasks
}

/// Revokes expired leases, on the leader only: followers' clocks are not renewed by
/// keep-alives. A member that becomes leader first gives every lease its full TTL again
/// ([`Node::leader_clock`]).
async fn reap_leases(node: Arc<Node>) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    loop {
        tick.tick().await;
        let expired = {
            let Some(mut clock) = node.leader_clock() else {
                continue;
            };
            let ids = clock.expired(Instant::now());
            for id in &ids {
                clock.forget(*id);
            }
            ids
        };
        for id in expired {
            match node.propose(Command::LeaseRevoke { id }).await {
                Ok(_) | Err(EtcdError::LeaseNotFound | EtcdError::LeaderChanged) => {}
                Err(EtcdError::Stopped) => return,
                Err(err) => tracing::warn!(id, %err, "revoking an expired lease failed"),
            }
        }
    }
}

async fn compact(node: &Node, revision: i64) {
    if revision <= 0 {
        return;
    }
    match node.propose(Command::Compact { revision }).await {
        Ok(_) | Err(EtcdError::Compacted) => {}
        Err(err) => tracing::warn!(revision, %err, "auto-compaction failed"),
    }
}

/// Keeps `keep` of history: samples the revision every tenth of it and compacts to the sample
/// that is `keep` old.
async fn compact_periodic(node: Arc<Node>, keep: Duration) {
    let step = (keep / 10).max(Duration::from_secs(1));
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut tick = tokio::time::interval(step);
    loop {
        tick.tick().await;
        let now = Instant::now();
        samples.push_back((now, node.durable_revision()));
        let mut target = None;
        while let Some((at, rev)) = samples.front().copied() {
            if now.duration_since(at) < keep {
                break;
            }
            target = Some(rev);
            samples.pop_front();
        }
        if let Some(rev) = target {
            compact(&node, rev).await;
        }
    }
}

/// Keeps the last `keep` revisions.
async fn compact_revisions(node: Arc<Node>, keep: i64) {
    let mut tick = tokio::time::interval(REVISION_COMPACTION_TICK);
    loop {
        tick.tick().await;
        compact(&node, node.durable_revision() - keep).await;
    }
}
