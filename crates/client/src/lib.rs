//! The berth daemon's API as its clients see it.
//!
//! - [`api`]: the wire model, one serde type per request and response body of
//!   `docs/api/openapi.yaml`. The daemon (`berth-agent`) and every client share these types,
//!   so the two cannot drift apart silently.
//! - [`frame`]: the framing of the bidirectional streams that `exec` and `attach` switch to
//!   after an HTTP upgrade.
//! - [`Client`]: a typed async call per endpoint, over the daemon's unix socket.

pub mod api;
mod client;
pub mod frame;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use client::{
    Changed, Client, ClientError, FrameReader, FrameStream, FrameWriter, Host, HostError,
    LogsOptions, MAX_LINE, NdjsonStream,
};

/// The API's version prefix: every path starts with it.
pub const API_PREFIX: &str = "/v1";

/// The daemon's socket when neither `--host` nor `BERTH_HOST` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";
