//! The crate's error: every variant carries what a user needs to act on it.

use std::io;
use std::path::PathBuf;

use crate::cni::CniError;
use crate::{NetworkName, PortMapping, Subnet};

/// What went wrong in a network operation.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("network configuration {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("network {0} not found")]
    NotFound(NetworkName),
    #[error("network {0} already exists")]
    Exists(NetworkName),
    #[error("subnet {subnet} overlaps subnet {other_subnet} of network {other}")]
    Overlap {
        subnet: Subnet,
        other: NetworkName,
        other_subnet: Subnet,
    },
    #[error("subnet {subnet} overlaps the host's route to {destination}/{prefix} on {iface}")]
    HostRouteOverlap {
        subnet: Subnet,
        iface: String,
        destination: std::net::Ipv4Addr,
        prefix: u8,
    },
    #[error("no free subnet left in berth's pool for a new network; pass --subnet")]
    PoolExhausted,
    #[error("invalid bridge name {0:?}: expected 1-15 characters of [a-zA-Z0-9_.-]")]
    InvalidBridge(String),
    #[error("bridge {bridge} is already used by network {other}")]
    BridgeTaken { bridge: String, other: NetworkName },
    #[error("network {0} is berth's default network and cannot be removed")]
    DefaultNetwork(NetworkName),
    #[error("network {name} is in use by {}", users.join(", "))]
    InUse {
        name: NetworkName,
        users: Vec<String>,
    },
    #[error("address {ip} is not assignable in subnet {subnet} of network {network}")]
    IpNotInSubnet {
        ip: std::net::Ipv4Addr,
        subnet: Subnet,
        network: NetworkName,
    },
    #[error("host port {mapping} is already in use{}", by.as_ref().map(|c| format!(" by container {c}")).unwrap_or_default())]
    PortInUse {
        mapping: PortMapping,
        by: Option<String>,
    },
    #[error("no free host port for {0}")]
    NoFreePort(PortMapping),
    #[error("container {container} is already attached to network {network}")]
    AlreadyAttached {
        container: String,
        network: NetworkName,
    },
    #[error("container {container} is not attached to network {network}")]
    NotAttached {
        container: String,
        network: NetworkName,
    },
    #[error("network namespace {path}: {reason}")]
    Netns { path: PathBuf, reason: String },
    #[error("removing what network plugins left ({what}): {reason}")]
    Teardown { what: String, reason: String },
    #[error("network {network}: {source}")]
    Cni {
        network: NetworkName,
        #[source]
        source: CniError,
    },
}

impl NetError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| NetError::Io {
            action,
            path,
            source,
        }
    }
}
