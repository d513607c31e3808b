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

fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(hours) = s.parse::<u64>() {
        return Some(Duration::from_secs(hours * 3600));
    }
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
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
