//! The etcd v3 gRPC services over a [`Node`]: KV, Watch, Lease, Maintenance and Cluster.

mod authority;
mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::backend::RedbBackend;
use crate::config::{Config, GRPC_OVERHEAD_BYTES, listen_addr};
use crate::error::{EtcdError, StoreError};
use crate::node::{self, Node};
use crate::raft::LogStore;
use authority::AuthorityFix;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::MaintenanceService;
pub use watch::WatchService;

/// The etcd version berth's store reports (the API level it implements).
pub const ETCD_VERSION: &str = "3.4.0";

/// Refuses a request larger than `--max-request-bytes`, as etcd does before proposing it.
fn check_size(node: &Node, msg: &impl Message) -> Result<(), EtcdError> {
    if msg.encoded_len() > node.config.max_request_bytes {
        return Err(EtcdError::RequestTooLarge);
    }
    Ok(())
}

/// Opens the store in `config.data_dir` and serves it on the listen URLs until `shutdown`
/// completes; then stops accepting requests and returns once in-flight ones are answered.
/// The listen URLs are checked before the data directory is touched.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let addrs = config
        .listen_client_urls
        .iter()
        .map(|url| listen_addr(url))
        .collect::<Result<Vec<_>, _>>()?;
    let backend = RedbBackend::open(&config.data_dir)?;
    let log = LogStore::open(&config.data_dir.join("log"), &backend.database()).map_err(|e| {
        StoreError::Raft {
            during: "opening the log",
            reason: e.to_string(),
        }
    })?;
    let node = Node::start(config, Box::new(backend), log).await?;
    serve_node(node, &addrs, shutdown).await
}

/// Serves an already started node on `addrs`.
async fn serve_node(
    node: Arc<Node>,
    addrs: &[SocketAddr],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let limit = node.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let background = node::spawn_background(&node);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for &addr in addrs {
        let incoming = TcpIncoming::bind(addr)
            .map_err(|source| StoreError::Listen { addr, source })?
            .with_nodelay(Some(true))
            // etcdctl may send `http://host:port` as :authority, which h2 refuses (ADR 0405).
            .map(|conn| conn.map(AuthorityFix::new));
        let router = Server::builder()
            .add_service(
                PbKvServer::new(KvService::new(Arc::clone(&node))).max_decoding_message_size(limit),
            )
            .add_service(
                PbWatchServer::new(WatchService::new(Arc::clone(&node)))
                    .max_decoding_message_size(limit),
            )
            .add_service(
                PbLeaseServer::new(LeaseService::new(Arc::clone(&node)))
                    .max_decoding_message_size(limit),
            )
            .add_service(
                PbMaintenanceServer::new(MaintenanceService::new(Arc::clone(&node)))
                    .max_decoding_message_size(limit),
            )
            .add_service(
                PbClusterServer::new(ClusterService::new(Arc::clone(&node)))
                    .max_decoding_message_size(limit),
            );
        let mut stop = stop_rx.clone();
        tracing::info!(%addr, "store serving etcd v3 clients");
        servers.push(tokio::spawn(router.serve_with_incoming_shutdown(
            incoming,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    let mut result = Ok(());
    for s in servers {
        if let Ok(Err(err)) = s.await {
            result = Err(StoreError::Serve(err));
        }
    }
    for t in background {
        t.abort();
    }
    node.shutdown().await;
    result
}
