//! The Maintenance service: status, hashes, snapshots, defragmentation and the NOSPACE alarm.

use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbAlarmMember, PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse,
    PbSnapshotRequest, PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::ETCD_VERSION;
use crate::apply::StateMachine;
use crate::backend::{CHANGES_PER_READ, SnapshotSource};
use crate::error::{EtcdError, StoreError};
use crate::node::Node;

/// etcd's alarm actions and types on the wire.
const ACTION_GET: i32 = 0;
const ACTION_ACTIVATE: i32 = 1;
const ACTION_DEACTIVATE: i32 = 2;
const ALARM_NONE: i32 = 0;
const ALARM_NOSPACE: i32 = 1;

/// Size of one snapshot message.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// Cuts a snapshot's bytes into Maintenance messages of [`SNAPSHOT_CHUNK`] bytes.
struct Chunks {
    chunk: Vec<u8>,
    /// Bytes of the snapshot not yet sent.
    remaining: u64,
    header: Option<etcd_client::proto::PbResponseHeader>,
}

type SendFn<'a> = dyn Fn(Result<PbSnapshotResponse, Status>) -> Result<(), StoreError> + 'a;

impl Chunks {
    fn push(&mut self, mut bytes: &[u8], send: &SendFn<'_>) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            let take = (SNAPSHOT_CHUNK - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.chunk.len() == SNAPSHOT_CHUNK {
                self.flush(send)?;
            }
        }
        Ok(())
    }

    fn finish(mut self, send: &SendFn<'_>) -> Result<(), StoreError> {
        if self.chunk.is_empty() {
            Ok(())
        } else {
            self.flush(send)
        }
    }

    fn flush(&mut self, send: &SendFn<'_>) -> Result<(), StoreError> {
        let blob = std::mem::replace(&mut self.chunk, Vec::with_capacity(SNAPSHOT_CHUNK));
        self.remaining = self.remaining.saturating_sub(blob.len() as u64);
        send(Ok(PbSnapshotResponse {
            header: self.header,
            remaining_bytes: self.remaining,
            blob,
            version: ETCD_VERSION.to_owned(),
        }))
    }
}

/// etcd's Maintenance service.
#[derive(Debug)]
pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn alarms(&self) -> Vec<PbAlarmMember> {
        if self.node.no_space() {
            vec![PbAlarmMember {
                member_id: self.node.member_id,
                alarm: ALARM_NOSPACE,
            }]
        } else {
            Vec::new()
        }
    }
}

/// A CRC-32 of every change up to `rev`: equal stores give equal hashes.
fn hash_up_to(state: &StateMachine, rev: i64) -> Result<u32, StoreError> {
    let mut h = crc32fast::Hasher::new();
    state
        .index()
        .for_each_change(rev, CHANGES_PER_READ, |changes| {
            for (r, key, kv) in changes {
                h.update(&r.main.to_be_bytes());
                h.update(&r.sub.to_be_bytes());
                h.update(key);
                if let Some(kv) = kv {
                    h.update(&kv.value);
                    h.update(&kv.lease.to_be_bytes());
                }
            }
            Ok(())
        })?;
    Ok(h.finalize())
}

/// The data file failed a read: logged here, and answered as a store that cannot serve.
fn read_failed(err: StoreError) -> Status {
    tracing::error!(%err, "reading the store's data file failed");
    EtcdError::Stopped.into()
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        let req = request.into_inner();
        match (req.action, req.alarm) {
            (ACTION_GET, _) => {}
            (ACTION_ACTIVATE, ALARM_NOSPACE) => self.node.set_no_space(true),
            (ACTION_DEACTIVATE, ALARM_NOSPACE | ALARM_NONE) => self.node.set_no_space(false),
            (ACTION_ACTIVATE | ACTION_DEACTIVATE, _) => {}
            _ => return Err(Status::invalid_argument("unknown alarm action")),
        }
        Ok(Response::new(PbAlarmResponse {
            header: self.node.header(self.node.durable_revision()),
            alarms: self.alarms(),
        }))
    }

    async fn status(
        &self,
        _: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let node = &self.node;
        let size = i64::try_from(node.db_size()).unwrap_or(i64::MAX);
        let errors = if node.no_space() {
            vec!["memberID:".to_owned() + &node.member_id.to_string() + " alarm:NOSPACE "]
        } else {
            Vec::new()
        };
        Ok(Response::new(PbStatusResponse {
            header: node.header(node.durable_revision()),
            version: ETCD_VERSION.to_owned(),
            db_size: size,
            leader: node.leader_id().unwrap_or(0),
            raft_index: node.applied_index(),
            raft_term: node.raft_term(),
            raft_applied_index: node.applied_index(),
            errors,
            db_size_in_use: size,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: i64::try_from(node.config.quota_backend_bytes).unwrap_or(i64::MAX),
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        _: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        self.node.defragment().await?;
        Ok(Response::new(PbDefragmentResponse {
            header: self.node.header(self.node.durable_revision()),
        }))
    }

    async fn hash(&self, _: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        let (hash, rev) = self.node.read(|state, rev| (hash_up_to(state, rev), rev));
        let hash = hash.map_err(read_failed)?;
        Ok(Response::new(PbHashResponse {
            header: self.node.header(rev),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let req = request.into_inner();
        let (hash, rev, compacted, current) = self.node.read(|state, current| {
            let rev = if req.revision <= 0 {
                current
            } else {
                req.revision
            };
            (
                hash_up_to(state, rev),
                rev,
                state.index().compact_revision(),
                current,
            )
        });
        if rev > current {
            return Err(EtcdError::FutureRev.into());
        }
        if rev < compacted {
            return Err(EtcdError::Compacted.into());
        }
        let hash = hash.map_err(read_failed)?;
        Ok(Response::new(PbHashKvResponse {
            header: self.node.header(current),
            hash,
            compact_revision: compacted,
            hash_revision: rev,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<PbSnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        // Only the capture holds the state's lock: values are read and the messages made on a
        // blocking thread, at most two messages ahead of a slow client, while writes go on.
        let (source, rev) = self
            .node
            .read(|state, rev| (SnapshotSource::capture(state, rev), rev));
        let source = source.map_err(read_failed)?;
        let header = self.node.header(rev);
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::task::spawn_blocking(move || {
            let send = |message| {
                tx.blocking_send(message)
                    .map_err(|_| StoreError::ClientGone)
            };
            let streamed = source.byte_len().and_then(|total| {
                let mut chunks = Chunks {
                    chunk: Vec::with_capacity(SNAPSHOT_CHUNK),
                    remaining: total,
                    header,
                };
                source.write_to(|bytes| chunks.push(bytes, &send))?;
                chunks.finish(&send)
            });
            match streamed {
                // The client went away: nobody to tell.
                Ok(()) | Err(StoreError::ClientGone) => {}
                Err(err) => {
                    let _ = send(Err(read_failed(err)));
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn move_leader(
        &self,
        _: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "berth's store cannot move its leader (openraft 0.9 has no leadership transfer; \
             ADR 0404): restart the leading member instead, and another takes over within one \
             election timeout",
        ))
    }

    async fn downgrade(
        &self,
        _: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented("berth's store has no downgrade path"))
    }
}
