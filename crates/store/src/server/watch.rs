//! The Watch service: many watchers multiplexed on each bidirectional stream.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::mvcc::KeyRange;
use crate::node::Node;
use crate::watch::WatchSpec;

/// etcd's default interval of progress notifications.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(600);
/// etcd's error text for a watch on an empty (inverted) range.
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";
/// etcd's error text for a watch id already in use on the stream.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// etcd's Watch service.
#[derive(Debug)]
pub struct WatchService {
    node: Arc<Node>,
    next_stream: AtomicU64,
}

impl WatchService {
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            node,
            next_stream: AtomicU64::new(1),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

/// One client stream: its watch ids and where its responses go.
struct StreamState {
    node: Arc<Node>,
    id: u64,
    next_watch: i64,
    ids: HashSet<i64>,
    tx: mpsc::UnboundedSender<PbWatchResponse>,
}

impl StreamState {
    fn handle(&mut self, req: PbWatchRequest) {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let range = KeyRange::new(&c.key, &c.range_end);
                let spec = WatchSpec {
                    range,
                    start_revision: c.start_revision,
                    filters: c.filters,
                    prev_kv: c.prev_kv,
                    progress_notify: c.progress_notify,
                };
                self.create(c.watch_id, spec);
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) if self.ids.remove(&c.watch_id) => {
                self.node.hub().cancel(self.id, c.watch_id);
                let _ = self.tx.send(PbWatchResponse {
                    canceled: true,
                    ..self.node.hub().progress(c.watch_id)
                });
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                let _ = self.tx.send(self.node.hub().progress(-1));
            }
            Some(PbWatchRequestUnion::CancelRequest(_)) | None => {}
        }
    }

    fn create(&mut self, requested: i64, spec: WatchSpec) {
        let refuse = |reason: &str| PbWatchResponse {
            created: true,
            canceled: true,
            cancel_reason: reason.to_owned(),
            ..self.node.hub().progress(-1)
        };
        if spec.range.bounds().is_none() {
            let _ = self.tx.send(refuse(EMPTY_RANGE));
            return;
        }
        let id = if requested == 0 {
            while self.ids.contains(&self.next_watch) {
                self.next_watch += 1;
            }
            self.next_watch
        } else {
            requested
        };
        if self.ids.contains(&id) {
            let _ = self.tx.send(refuse(DUPLICATE_ID));
            return;
        }
        if self.node.watch(self.id, id, spec, self.tx.clone()) {
            self.ids.insert(id);
            if requested == 0 {
                self.next_watch += 1;
            }
        }
    }

    fn progress_notify(&self) {
        for id in self.node.hub().progress_watchers(self.id) {
            let _ = self.tx.send(self.node.hub().progress(id));
        }
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        self.node.hub().close_stream(self.id);
    }
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stream = StreamState {
            node: Arc::clone(&self.node),
            id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            next_watch: 0,
            ids: HashSet::new(),
            tx,
        };
        tokio::spawn(async move {
            let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
            progress.tick().await;
            loop {
                tokio::select! {
                    msg = inbound.next() => match msg {
                        Some(Ok(req)) => stream.handle(req),
                        _ => break,
                    },
                    _ = progress.tick() => stream.progress_notify(),
                    () = stream.tx.closed() => break,
                }
            }
        });
        Ok(Response::new(Box::pin(
            UnboundedReceiverStream::new(rx).map(Ok),
        )))
    }
}
