//! openraft's state machine: committed entries go through the pure [`StateMachine::apply`], their
//! combined write set goes to the backend in one commit, and only then are they published
//! (readable, watched, answered). Snapshots are the Maintenance snapshot stream
//! (docs/formats/store.md), made from the state only when one is sent, and installed by
//! replacing the state.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError};

use super::codec;
use super::types::{Entry, LogId, Response, StorageError, StoredMembership, TypeConfig};
use crate::apply::WriteSet;
use crate::backend::{SnapshotSource, parse_snapshot};
use crate::error::StoreError;
use crate::node::Shared;

type Snapshot = openraft::Snapshot<TypeConfig>;
type Meta = SnapshotMeta<u64, openraft::BasicNode>;

/// What this state machine has applied, as openraft sees it.
#[derive(Debug, Default, Clone)]
struct Applied {
    last: Option<LogId>,
    membership: StoredMembership,
}

#[derive(Debug)]
struct Inner {
    node: Arc<Shared>,
    applied: Mutex<Applied>,
    /// The description of the newest snapshot built or installed. Its bytes are not kept: the
    /// state itself is the snapshot, and they are made again from it when asked for.
    snapshot: Mutex<Option<Meta>>,
    snapshots_built: AtomicU64,
}

/// The store's state machine as openraft drives it. Cloning gives another handle on the same one
/// (the snapshot builder).
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(openraft::AnyError::error(e.to_string())).into()
}

fn snapshot_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(None, openraft::AnyError::error(e.to_string())).into()
}

impl StateMachineStore {
    /// Adapts the node's state; `raft_applied` is what the backend loaded
    /// (`Loaded::raft_applied`), `None` for a new store.
    pub fn new(node: Arc<Shared>, raft_applied: Option<&[u8]>) -> Result<Self, StoreError> {
        let applied = match raft_applied {
            Some(bytes) => {
                let (last, membership) =
                    codec::decode_applied(bytes).map_err(|e| StoreError::Raft {
                        during: "loading the applied state",
                        reason: e.to_string(),
                    })?;
                Applied { last, membership }
            }
            None => Applied::default(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                node,
                applied: Mutex::new(applied),
                snapshot: Mutex::new(None),
                snapshots_built: AtomicU64::new(0),
            }),
        })
    }

    fn applied(&self) -> MutexGuard<'_, Applied> {
        self.inner
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self) -> MutexGuard<'_, Option<Meta>> {
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateMachineStore {
    /// Describes a snapshot of what is applied now: its log id, membership and a new id.
    fn describe(&self, applied: Applied) -> Meta {
        let n = self.inner.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &applied.last {
            Some(id) => format!(
                "{}-{}-{}-{n}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last,
            last_membership: applied.membership,
            snapshot_id,
        };
        *self.current() = Some(meta.clone());
        meta
    }

    /// A whole snapshot of what is applied now, bytes and all; it is made only to be sent to a
    /// member that needs it. Applies wait only while it is captured (under the state's read
    /// lock, so that the bytes and the log id describe one cut): the values are read after.
    fn snapshot_now(&self) -> Result<Snapshot, StoreError> {
        let (source, applied) = {
            let state = self.inner.node.state_read();
            let applied = self.applied().clone();
            (
                SnapshotSource::capture(&state, state.index().current_revision())?,
                applied,
            )
        };
        let bytes = source.to_vec()?;
        // What was described at this very log id keeps its id: it is the same snapshot.
        let described = self
            .current()
            .clone()
            .filter(|meta| meta.last_log_id == applied.last);
        Ok(Snapshot {
            meta: described.unwrap_or_else(|| self.describe(applied)),
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    /// openraft builds a snapshot every `--snapshot-count` entries to purge the log behind it,
    /// and keeps only its description. The state on disk is that snapshot once what waits for
    /// the backend is committed (the log's purge is then fsynced in the same file after the
    /// state's commits), so no bytes are made here:
    /// making them read every value under the state's lock, stalling applies for hundreds of
    /// milliseconds at 100k keys, and doubled the RSS with a buffer thrown away at once.
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let applied = {
            let _state = self.inner.node.state_read();
            self.inner.node.flush().map_err(sm_err)?;
            self.applied().clone()
        };
        Ok(Snapshot {
            meta: self.describe(applied),
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.applied();
        Ok((applied.last, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let node = &self.inner.node;
        let mut ws = WriteSet::default();
        let mut responses = Vec::new();
        let (revision, applied_index) = {
            let mut state = node.state_write();
            // Once every earlier batch is in the backend, the values held for them can be read
            // back from it, and leave memory.
            if node.all_flushed() {
                state.persisted();
            }
            let mut applied = self.applied();
            for entry in entries {
                applied.last = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(batch) => {
                        state.apply_batch(entry.log_id.index, &batch.0, &mut ws)
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                };
                responses.push(Response(response));
            }
            ws.applied_index = applied.last.map_or(0, |id| id.index);
            ws.revision = state.index().current_revision();
            ws.raft_applied = codec::encode_applied(applied.last.as_ref(), &applied.membership);
            let done = (ws.revision, ws.applied_index);
            node.stage(ws);
            done
        };
        if let Err(err) = node.flush_if_due() {
            tracing::error!(%err, "store commit failed; the store stops accepting writes");
            return Err(sm_err(err));
        }
        node.publish(revision, applied_index, &mut responses);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let index = meta.last_log_id.map_or(0, |id| id.index);
        let state = parse_snapshot(&bytes, index)
            .ok_or_else(|| snapshot_err("the snapshot is not a whole berth snapshot"))?;
        let raft_applied = codec::encode_applied(meta.last_log_id.as_ref(), &meta.last_membership);
        {
            let mut applied = self.applied();
            self.inner
                .node
                .install(state, &raft_applied)
                .map_err(sm_err)?;
            *applied = Applied {
                last: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
        }
        *self.current() = Some(meta.clone());
        Ok(())
    }

    /// The newest snapshot with its bytes, made now from the state (a described snapshot has no
    /// bytes); it keeps the described one's id if nothing was applied since.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        if self.current().is_none() {
            return Ok(None);
        }
        self.snapshot_now().map(Some).map_err(snapshot_err)
    }
}
