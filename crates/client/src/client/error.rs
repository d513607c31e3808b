//! What can go wrong talking to the daemon.

use std::io;

use crate::frame::FrameError;

use super::Host;

/// The hint every "daemon not reachable" message ends with.
const START_HINT: &str =
    "is it running? start it with `berth daemon`, or point --host/BERTH_HOST at its socket";

/// An error of a [`super::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the host's socket (it does not exist, or nobody accepts on it).
    #[error("cannot reach the berth daemon at {host}: {reason} ({START_HINT})")]
    Unreachable { host: String, reason: &'static str },
    /// The socket exists but connecting failed otherwise (permissions, …).
    #[error("cannot connect to the berth daemon at {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: io::Error,
    },
    /// The daemon answered with an error: its [`crate::api::ErrorBody`] message and status.
    #[error("{message}")]
    Api { status: u16, message: String },
    /// The HTTP exchange itself failed (the daemon closed the connection, …).
    #[error("talking to the berth daemon at {host}: {source}")]
    Http {
        host: String,
        #[source]
        source: hyper::Error,
    },
    /// The daemon's answer does not fit the API contract.
    #[error("the berth daemon's answer to {request} is not valid: {reason}")]
    InvalidAnswer { request: String, reason: String },
    /// An upgraded stream carried bytes that are not frames.
    #[error("the berth daemon's stream is broken: {0}")]
    Frame(#[from] FrameError),
    /// Reading or writing an upgraded stream failed.
    #[error("the berth daemon's stream failed: {0}")]
    Stream(#[source] io::Error),
}

impl ClientError {
    /// The error of connecting to `host`'s socket.
    pub(super) fn connect(host: &Host, source: io::Error) -> Self {
        let reason = match source.kind() {
            io::ErrorKind::NotFound => Some("no such file"),
            io::ErrorKind::ConnectionRefused => Some("connection refused (nothing listens on it)"),
            _ => None,
        };
        match reason {
            Some(reason) => Self::Unreachable {
                host: host.to_string(),
                reason,
            },
            None => Self::Connect {
                host: host.to_string(),
                source,
            },
        }
    }

    /// The HTTP status of an error answer from the daemon.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the daemon said "no such container or image" (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
