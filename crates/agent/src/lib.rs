//! The host daemon (issue #3; decisions in docs/adr/0014-daemon-api.md): containers made
//! from the image store, each owned by its own supervisor process, served over the
//! HTTP/JSON API of `berth_client::api` on a unix socket.
//!
//! - [`options`] parses a create request into the runtime's validated types (pure).
//! - [`ContainerManager`] is the daemon's state: create with full cleanup on every error,
//!   unique names, start/stop/kill/remove through the supervisors' control sockets, wait
//!   and auto-remove on pidfd-watched supervisor exits, re-adoption on start.
//! - [`logs`] reads and follows json-file logs across rotation; [`stats`] reads cgroups.
//! - [`network`] wires berth-net in: a sandbox per bridged container, its hosts and
//!   resolv.conf, a DNS server per network, GC at start, `/v1/networks`.
//! - [`server`] holds the thin axum routes, [`Daemon`] the lock, socket and adoption.
//! - [`config_sync`] watches the store's config keys and has the manager place changed
//!   values in containers (issue #6).
//! - [`services`] registers containers run with `--service` in the store under the
//!   daemon's lease, and runs their [`health`] checks (issue #6).
//! - [`service_dns`] watches the store's service endpoints into the table the DNS servers
//!   answer `NAME.service.berth` from (issue #6).
//! - [`Launcher`] is the boundary to the single-threaded helper processes the daemon
//!   starts (supervisor, exec shim), since it must never call libcontainer itself.
//!
//! Not done yet: output frames on attach (output is read with `logs --follow`), remounting
//! rootfs overlays after a reboot.

pub mod config_sync;
pub mod daemon;
pub mod error;
pub mod exec_shim;
pub mod health;
pub mod launcher;
pub mod logs;
pub mod manager;
mod names;
pub mod network;
pub mod options;
pub mod paths;
pub mod record;
pub mod server;
pub mod service_dns;
pub mod services;
pub mod stats;

pub use daemon::{Daemon, DaemonError};
pub use error::AgentError;
pub use launcher::{BerthBinary, Launcher};
pub use manager::ContainerManager;
pub use paths::Paths;
