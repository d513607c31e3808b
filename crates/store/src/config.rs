//! The store's settings, named and defaulted as etcd's flags are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// etcd's default `--quota-backend-bytes`: 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
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
    fn client_urls_become_socket_addresses() {
        assert_eq!(
            listen_addr("http://127.0.0.1:2379").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 2379)))
        );
        assert!(listen_addr("https://127.0.0.1:2379").is_err());
    }
}
