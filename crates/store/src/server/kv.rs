//! The KV service: reads answered from the state at the newest durable revision, writes through
//! the log.

use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse,
    PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::check_size;
use crate::apply::{Applied, Command, check_put, check_txn};
use crate::error::EtcdError;
use crate::mvcc;
use crate::node::Node;

/// etcd's KV service.
#[derive(Debug)]
pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    async fn write(&self, command: Command) -> Result<(Applied, i64), Status> {
        let out = self.node.propose(command).await?;
        Ok((out.result?, out.revision))
    }
}

/// Whether a txn branch writes anything (refused while the NOSPACE alarm is raised).
fn txn_puts(ops: &[PbTxnRequestOp]) -> bool {
    ops.iter().any(|op| match &op.request {
        Some(PbTxnOpRequest::RequestPut(_)) => true,
        Some(PbTxnOpRequest::RequestTxn(t)) => txn_puts(&t.success) || txn_puts(&t.failure),
        _ => false,
    })
}

type RangeStream = Pin<Box<dyn Stream<Item = Result<PbRangeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let req = request.into_inner();
        if req.key.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        if !req.serializable {
            self.node.linearize().await?;
        }
        let resp = self.node.read(|state, rev| {
            mvcc::range(state.index(), &req, rev).map(|mut r| {
                r.header = self.node.header(rev);
                r
            })
        })?;
        Ok(Response::new(resp))
    }

    type RangeStreamStream = RangeStream;

    async fn range_stream(
        &self,
        _: Request<PbRangeRequest>,
    ) -> Result<Response<RangeStream>, Status> {
        Err(Status::unimplemented(
            "RangeStream is not part of etcd 3.4's API",
        ))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let req = request.into_inner();
        check_size(&self.node, &req)?;
        check_put(&req)?;
        if self.node.no_space() {
            return Err(EtcdError::NoSpace.into());
        }
        match self.write(Command::Put(req)).await? {
            (Applied::Put(mut r), rev) => {
                r.header = self.node.header(rev);
                Ok(Response::new(r))
            }
            _ => Err(Status::internal("put applied as another command")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let req = request.into_inner();
        check_size(&self.node, &req)?;
        if req.key.is_empty() {
            return Err(EtcdError::EmptyKey.into());
        }
        match self.write(Command::DeleteRange(req)).await? {
            (Applied::DeleteRange(mut r), rev) => {
                r.header = self.node.header(rev);
                Ok(Response::new(r))
            }
            _ => Err(Status::internal("delete applied as another command")),
        }
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let req = request.into_inner();
        check_size(&self.node, &req)?;
        check_txn(&req)?;
        if self.node.no_space() && (txn_puts(&req.success) || txn_puts(&req.failure)) {
            return Err(EtcdError::NoSpace.into());
        }
        match self.write(Command::Txn(req)).await? {
            (Applied::Txn(mut r), rev) => {
                r.header = self.node.header(rev);
                Ok(Response::new(r))
            }
            _ => Err(Status::internal("txn applied as another command")),
        }
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let req = request.into_inner();
        match self
            .write(Command::Compact {
                revision: req.revision,
            })
            .await?
        {
            (Applied::Compact(mut r), rev) => {
                r.header = self.node.header(rev);
                Ok(Response::new(r))
            }
            _ => Err(Status::internal("compaction applied as another command")),
        }
    }
}
