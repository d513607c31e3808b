//! `berth store`: the etcd v3-compatible store on its own, with etcd's flag names.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_store::Config;
use berth_store::config::{
    AutoCompaction, BackendBatch, ClusterConfig, ClusterState, DEFAULT_BACKEND_BATCH_LIMIT,
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_QUOTA_BACKEND_BYTES, DEFAULT_SNAPSHOT_COUNT,
};
use clap::Args;

use crate::Globals;

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Human-readable name of this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Directory of the store's data (default: <--root>/store).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Comma-separated URLs to serve clients on.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    listen_client_urls: Vec<String>,
    /// Comma-separated client URLs to advertise (default: the listen URLs).
    #[arg(long, value_delimiter = ',')]
    advertise_client_urls: Vec<String>,
    /// Largest client request accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// Size of the data file at which the NOSPACE alarm stops writes, in bytes.
    #[arg(long, default_value_t = DEFAULT_QUOTA_BACKEND_BYTES)]
    quota_backend_bytes: u64,
    /// `periodic` (retention is a duration, or hours) or `revision` (a number of revisions).
    #[arg(long, default_value = "periodic")]
    auto_compaction_mode: String,
    /// How much history auto-compaction keeps; 0 turns it off.
    #[arg(long, default_value = "0")]
    auto_compaction_retention: String,
    /// Applied entries between raft snapshots; the log before a snapshot is then purged.
    #[arg(long, default_value_t = DEFAULT_SNAPSHOT_COUNT)]
    snapshot_count: u64,
    /// Longest time applied writes wait to be committed to the data file together (they are
    /// durable in the raft log before that), e.g. 250ms or 1s [default: 100ms].
    #[arg(long)]
    backend_batch_interval: Option<String>,
    /// Most applied changes committed to the data file together; 0 means the default.
    #[arg(long, default_value_t = DEFAULT_BACKEND_BATCH_LIMIT)]
    backend_batch_limit: usize,
    #[command(flatten)]
    peer: PeerArgs,
}

/// etcd's clustering flags. Without `--initial-cluster` the store is a one-member cluster with
/// no peer port.
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// Every member as NAME=PEER_URL, comma separated; makes this store a cluster member.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// `new` (the members of --initial-cluster form the cluster) or `existing`.
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,
    /// Distinguishes clusters made from the same peer URLs (member ids derive from both).
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Comma-separated URLs to serve other members on.
    #[arg(long, default_value = "http://127.0.0.1:2380", value_delimiter = ',')]
    pub listen_peer_urls: Vec<String>,
    /// This member's peer URL as the others reach it (default: the first listen peer URL).
    #[arg(long, value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Time between leader heartbeats, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time a follower waits for a leader before standing for election, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
}

impl PeerArgs {
    /// Sets the clustering part of `config`.
    pub fn apply(self, config: &mut Config) -> anyhow::Result<()> {
        if self.heartbeat_interval == 0 || self.election_timeout < 5 * self.heartbeat_interval {
            anyhow::bail!(
                "--election-timeout ({} ms) must be at least 5 times --heartbeat-interval ({} ms)",
                self.election_timeout,
                self.heartbeat_interval
            );
        }
        config.heartbeat_interval_ms = self.heartbeat_interval;
        config.election_timeout_ms = self.election_timeout;
        let Some(initial) = self.initial_cluster else {
            return Ok(());
        };
        let initial_cluster = ClusterConfig::parse_initial_cluster(&initial)
            .map_err(anyhow::Error::msg)
            .context("--initial-cluster")?;
        let state = ClusterState::parse(&self.initial_cluster_state).map_err(anyhow::Error::msg)?;
        let advertise_peer_urls = if self.initial_advertise_peer_urls.is_empty() {
            self.listen_peer_urls.clone()
        } else {
            self.initial_advertise_peer_urls
        };
        config.cluster = Some(ClusterConfig {
            initial_cluster,
            state,
            token: self.initial_cluster_token,
            listen_peer_urls: self.listen_peer_urls,
            advertise_peer_urls,
        });
        Ok(())
    }
}

impl StoreArgs {
    fn into_config(self, globals: &Globals) -> anyhow::Result<Config> {
        let data_dir = self.data_dir.unwrap_or_else(|| default_data_dir(globals));
        let mut config = Config::new(data_dir);
        config.name = self.name;
        config.advertise_client_urls = if self.advertise_client_urls.is_empty() {
            self.listen_client_urls.clone()
        } else {
            self.advertise_client_urls
        };
        config.listen_client_urls = self.listen_client_urls;
        config.max_request_bytes = self.max_request_bytes;
        config.quota_backend_bytes = self.quota_backend_bytes;
        if self.snapshot_count == 0 {
            anyhow::bail!("--snapshot-count must be at least 1");
        }
        config.snapshot_count = self.snapshot_count;
        config.backend_batch = BackendBatch {
            interval: BackendBatch::parse_interval(
                self.backend_batch_interval.as_deref().unwrap_or_default(),
            )
            .map_err(anyhow::Error::msg)?,
            limit: BackendBatch::limit_or_default(self.backend_batch_limit),
        };
        config.auto_compaction =
            AutoCompaction::parse(&self.auto_compaction_mode, &self.auto_compaction_retention)
                .map_err(anyhow::Error::msg)
                .context("--auto-compaction-mode/--auto-compaction-retention")?;
        self.peer.apply(&mut config)?;
        Ok(config)
    }
}

/// Where the store keeps its data unless told otherwise.
pub fn default_data_dir(globals: &Globals) -> PathBuf {
    globals.root.join("store")
}

pub fn run(globals: &Globals, args: StoreArgs) -> anyhow::Result<ExitCode> {
    let config = args.into_config(globals)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve_until_signal(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the store until SIGTERM or SIGINT, then shuts it down cleanly.
pub async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    berth_store::serve(config, shutdown_signal())
        .await
        .with_context(|| format!("store in {}", data_dir.display()))
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the store with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
