//! Which daemon a client talks to: `--host` / `BERTH_HOST`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::DEFAULT_SOCKET;

/// The daemon's address: a unix socket, named `unix:///PATH` or by its absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    socket: PathBuf,
}

/// Why a `--host` value is not an address berth can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid host {0:?}: expected unix:///PATH or an absolute path to the daemon's socket (TCP is not supported)"
)]
pub struct HostError(String);

impl Host {
    /// The daemon listening on `socket`.
    pub fn unix(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::unix(DEFAULT_SOCKET)
    }
}

impl FromStr for Host {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = s.strip_prefix("unix://").unwrap_or(s);
        if !path.starts_with('/') || path.contains('\0') {
            return Err(HostError(s.to_owned()));
        }
        Ok(Self::unix(path))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix://{}", self.socket.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_unix_urls_or_absolute_paths() {
        let host: Host = "unix:///tmp/r/run/berth.sock".parse().unwrap();
        assert_eq!(host.socket(), Path::new("/tmp/r/run/berth.sock"));
        assert_eq!(host.to_string(), "unix:///tmp/r/run/berth.sock");
        let host: Host = "/run/b.sock".parse().unwrap();
        assert_eq!(host.to_string(), "unix:///run/b.sock");
        assert_eq!(Host::default().to_string(), "unix:///run/berth/berth.sock");
        for bad in ["tcp://127.0.0.1:2375", "unix://relative", "berth.sock", ""] {
            assert_eq!(bad.parse::<Host>(), Err(HostError(bad.to_owned())), "{bad}");
        }
    }
}
