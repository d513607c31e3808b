//! The store's settings, named and defaulted as etcd's flags are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// etcd's default `--quota-backend-bytes`: 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Applied entries between raft snapshots (etcd 3.4's default is 100,000; berth's snapshot is
/// its in-memory state, cheap to build, so it snapshots more often and keeps a shorter log).
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 10_000;
/// etcd's default `--backend-batch-interval`.
pub const DEFAULT_BACKEND_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// etcd's default `--backend-batch-limit`.
pub const DEFAULT_BACKEND_BATCH_LIMIT: usize = 10_000;
/// Bytes of keys and values waiting for the backend at which it is committed, whatever the
/// other two limits say: they bound the memory held twice meanwhile.
pub const BACKEND_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Room etcd's gRPC server allows above the request limit, so the limit's own error is sent.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// How old history is dropped automatically (`--auto-compaction-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Off (etcd's default retention of 0).
    Off,
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions of history.
    Revision(i64),
}

impl AutoCompaction {
    /// Parses etcd's pair of flags: mode `periodic` or `revision`, and a retention that is a
    /// duration (`1h`, `30m`, `10s`) or a bare number (hours in periodic mode).
    pub fn parse(mode: &str, retention: &str) -> Result<Self, String> {
        let retention = retention.trim();
        if retention.is_empty() || retention == "0" {
            return Ok(Self::Off);
        }
        match mode {
            "revision" => retention
                .parse::<i64>()
                .map(Self::Revision)
                .map_err(|_| format!("invalid revision retention {retention:?}")),
            "periodic" => parse_duration(retention)
                .map(Self::Periodic)
                .ok_or_else(|| format!("invalid periodic retention {retention:?}")),
            other => Err(format!("unknown auto-compaction mode {other:?}")),
        }
    }
}

/// A retention: a duration, or a bare number of hours.
fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(hours) = s.parse::<u64>() {
        return Some(Duration::from_secs(hours * 3600));
    }
    parse_unit_duration(s)
}

/// A whole number with a unit: `250ms`, `10s`, `30m`, `1h`.
fn parse_unit_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// When the applied state is committed to the data file (etcd's `--backend-batch-interval`
/// and `--backend-batch-limit`): once `limit` changes (or [`BACKEND_BATCH_BYTES`]) wait, or
/// `interval` after the first of them was applied. Until then the durable raft log holds
/// them (ADR 0401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendBatch {
    pub interval: Duration,
    pub limit: usize,
}

impl Default for BackendBatch {
    fn default() -> Self {
        Self {
            interval: DEFAULT_BACKEND_BATCH_INTERVAL,
            limit: DEFAULT_BACKEND_BATCH_LIMIT,
        }
    }
}

impl BackendBatch {
    /// Parses etcd's `--backend-batch-interval` (`100ms`, `1s`; empty or `0` is the default,
    /// as in etcd).
    pub fn parse_interval(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        if s.is_empty() || s == "0" {
            return Ok(DEFAULT_BACKEND_BATCH_INTERVAL);
        }
        parse_unit_duration(s).ok_or_else(|| {
            format!(
                "invalid --backend-batch-interval {s:?}: expected a duration such as 100ms or 1s"
            )
        })
    }

    /// etcd's `--backend-batch-limit` (0 is the default, as in etcd; 1 commits every batch).
    pub fn limit_or_default(limit: usize) -> usize {
        if limit == 0 {
            DEFAULT_BACKEND_BATCH_LIMIT
        } else {
            limit
        }
    }
}

/// Everything `berth store` and `berth daemon` configure.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub max_request_bytes: usize,
    pub quota_backend_bytes: u64,
    pub auto_compaction: AutoCompaction,
    /// etcd's `--heartbeat-interval` (ms).
    pub heartbeat_interval_ms: u64,
    /// etcd's `--election-timeout` (ms): a follower hearing no leader for this long (randomised
    /// up to twice it) starts an election.
    pub election_timeout_ms: u64,
    /// etcd's `--snapshot-count`: applied entries between raft snapshots; the log before a
    /// snapshot is then purged but for a tail kept for lagging members.
    pub snapshot_count: u64,
    /// When applied changes are committed to the data file.
    pub backend_batch: BackendBatch,
    /// The cluster this member belongs to; `None` is a one-member store with no peer port.
    pub cluster: Option<ClusterConfig>,
}

/// etcd's `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Every member of `--initial-cluster` starts together and forms the cluster.
    New,
    /// This member joins a running cluster that already lists it (`member add`).
    Existing,
}

impl ClusterState {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "new" => Ok(Self::New),
            "existing" => Ok(Self::Existing),
            other => Err(format!(
                "invalid --initial-cluster-state {other:?}: expected new or existing"
            )),
        }
    }
}

/// A member of a replicated store: etcd's peer flags.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `--initial-cluster`: every member as (name, peer URL), in the order given.
    pub initial_cluster: Vec<(String, String)>,
    pub state: ClusterState,
    /// `--initial-cluster-token`: distinguishes clusters made from the same URLs.
    pub token: String,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<String>,
    /// `--initial-advertise-peer-urls`: this member's peer URL in the membership (the first).
    pub advertise_peer_urls: Vec<String>,
}

impl ClusterConfig {
    /// Parses `--initial-cluster` (`n1=http://a:2380,n2=http://b:2380`).
    pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>, String> {
        let mut members: Vec<(String, String)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster entry {part:?} is not NAME=PEER_URL"))?;
            listen_addr(url).map_err(|e| e.to_string())?;
            if members.iter().any(|(_, u)| u == url) {
                return Err(format!("--initial-cluster names peer URL {url} twice"));
            }
            members.push((name.to_owned(), url.to_owned()));
        }
        if members.is_empty() {
            return Err("--initial-cluster is empty".to_owned());
        }
        Ok(members)
    }

    /// This member's peer URL.
    pub fn peer_url(&self) -> &str {
        self.advertise_peer_urls
            .first()
            .or_else(|| self.listen_peer_urls.first())
            .map_or("", String::as_str)
    }

    /// Every initial member as (member id, name, peer URL).
    pub fn members(&self) -> Vec<(u64, String, String)> {
        self.initial_cluster
            .iter()
            .map(|(name, url)| (member_id(url, &self.token), name.clone(), url.clone()))
            .collect()
    }

    /// This member's id: derived from its peer URL and the token, as every other member
    /// derives it from `--initial-cluster`.
    pub fn own_id(&self) -> u64 {
        member_id(self.peer_url(), &self.token)
    }

    /// The cluster's id: derived from the initial members' ids and the token.
    pub fn cluster_id(&self) -> u64 {
        let mut ids: Vec<u64> = self.members().into_iter().map(|(id, _, _)| id).collect();
        ids.sort_unstable();
        let mut bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
        bytes.extend_from_slice(self.token.as_bytes());
        hash_id(&bytes)
    }
}

/// A member id: the first 8 bytes of SHA-256 over the peer URL, a 0 byte and the cluster
/// token (as etcd, which hashes peer URLs and token, so ids agree without talking).
pub fn member_id(peer_url: &str, token: &str) -> u64 {
    let mut bytes = peer_url.trim_end_matches('/').as_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(token.as_bytes());
    hash_id(&bytes)
}

fn hash_id(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 0 means "no member" on etcd's wire.
    u64::from_be_bytes(first).max(1)
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            name: "default".to_owned(),
            data_dir,
            listen_client_urls: vec!["http://127.0.0.1:2379".to_owned()],
            advertise_client_urls: vec!["http://127.0.0.1:2379".to_owned()],
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
            auto_compaction: AutoCompaction::Off,
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            backend_batch: BackendBatch::default(),
            cluster: None,
        }
    }
}

/// The socket address of a client URL (`http://HOST:PORT`; only plain HTTP/2 is served).
pub fn listen_addr(url: &str) -> Result<SocketAddr, StoreError> {
    let rest = url.strip_prefix("http://").ok_or(StoreError::ListenUrl {
        url: url.to_owned(),
        reason: "only http:// URLs are served (no TLS yet)",
    })?;
    let hostport = rest.trim_end_matches('/');
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().map_err(|_| StoreError::ListenUrl {
        url: url.to_owned(),
        reason: "expected http://IP:PORT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_compaction_flags_parse_like_etcd() {
        assert_eq!(
            AutoCompaction::parse("periodic", "0"),
            Ok(AutoCompaction::Off)
        );
        assert_eq!(
            AutoCompaction::parse("periodic", "1"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            AutoCompaction::parse("periodic", "30m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(1800)))
        );
        assert_eq!(
            AutoCompaction::parse("revision", "100"),
            Ok(AutoCompaction::Revision(100))
        );
        assert!(AutoCompaction::parse("weekly", "1").is_err());
    }

    #[test]
    fn backend_batch_flags_parse_like_etcd() {
        let interval = BackendBatch::parse_interval;
        assert_eq!(interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(interval("2s"), Ok(Duration::from_secs(2)));
        // etcd reads an unset or zero interval and limit as its defaults.
        assert_eq!(interval(""), Ok(DEFAULT_BACKEND_BATCH_INTERVAL));
        assert_eq!(interval("0"), Ok(DEFAULT_BACKEND_BATCH_INTERVAL));
        assert_eq!(
            BackendBatch::limit_or_default(0),
            DEFAULT_BACKEND_BATCH_LIMIT
        );
        assert_eq!(BackendBatch::limit_or_default(1), 1);
        let err = interval("100").unwrap_err();
        assert!(
            err.contains("--backend-batch-interval") && err.contains("100ms"),
            "{err}"
        );
        assert!(interval("1.5s").is_err());
        assert!(interval("99999999999999999999h").is_err());
    }

    #[test]
    fn member_ids_follow_from_peer_urls_and_token_alone() {
        let cluster = |own: &str| ClusterConfig {
            initial_cluster: ClusterConfig::parse_initial_cluster(
                "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381",
            )
            .unwrap(),
            state: ClusterState::New,
            token: "t".into(),
            listen_peer_urls: vec![own.into()],
            advertise_peer_urls: vec![own.into()],
        };
        let (a, b) = (
            cluster("http://127.0.0.1:2380"),
            cluster("http://127.0.0.1:2381"),
        );
        assert_eq!(a.members(), b.members());
        assert_eq!(a.cluster_id(), b.cluster_id());
        assert_eq!(a.own_id(), a.members()[0].0);
        assert_eq!(b.own_id(), b.members()[1].0);
        assert_ne!(a.own_id(), b.own_id());
        assert_ne!(member_id("http://127.0.0.1:2380", "other"), a.own_id());
        assert!(ClusterConfig::parse_initial_cluster("n1").is_err());
        assert!(
            ClusterConfig::parse_initial_cluster("a=http://1.2.3.4:1,b=http://1.2.3.4:1").is_err()
        );
    }

    #[test]
    fn client_urls_become_socket_addresses() {
        assert_eq!(
            listen_addr("http://127.0.0.1:2379").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 2379)))
        );
        assert!(listen_addr("https://127.0.0.1:2379").is_err());
    }
}
