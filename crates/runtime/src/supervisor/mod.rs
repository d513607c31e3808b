//! The per-container supervisor (docs/adr/0013-runtime-supervisor.md): one small,
//! single-threaded process per container that outlives the daemon.
//!
//! Given a container's state directory ([`StateDir`], holding [`SupervisorConfig`] as
//! `config.json`), [`supervise`] detaches a process into its own session which creates and
//! starts the container through [`crate::LibcontainerDriver`] (so the container's init is its
//! child), logs its stdout and stderr to `container.log` as docker's json-file records with
//! size-based rotation, reaps it, records each exit in `state.json` ([`ContainerState`])
//! atomically, restarts it under its [`crate::RestartPolicy`] with capped exponential backoff,
//! and answers `status`, `stop` and `kill` on `control.sock` ([`Request`], [`request`]).
//! When the container is done for good, the supervisor deletes it (no cgroup, libcontainer
//! state or process is left), removes its socket and pid file, and exits.
//!
//! What it guarantees: the container and its logging survive the death of whoever spawned
//! the supervisor (even SIGKILL of its process group); the exit record is on disk before the
//! container is deleted. A container with a terminal (`-t`) has its pty master logged as
//! `stdout`. With [`SupervisorConfig::stdin`] (`-i`) the container's stdin is fed from
//! `attach.sock`. What it does not do yet: exec through the control socket, and a
//! per-container stop signal.

mod config;
mod control;
mod input;
mod log;
mod output;
mod process;
mod run;
mod state;

use std::path::PathBuf;

pub use config::{
    DEFAULT_LOG_MAX_FILE, DEFAULT_LOG_MAX_SIZE, DEFAULT_STOP_TIMEOUT, LogLimits, StateDir,
    SupervisorConfig,
};
pub use control::{Request, Response, parse_signal, request};
pub use log::{MAX_LINE, Stream};
pub use output::{ConsoleSocket, WindowSize, resize_terminal};
pub use process::{spawn_supervisor, spawn_supervisor_command, supervise};
pub use state::{ContainerState, Status};

use crate::driver::DriverError;

/// Why supervising a container failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("supervisor config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("container state record {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("control socket {socket}: {reason}")]
    Control { socket: PathBuf, reason: String },
    #[error("supervisor of {dir}: cannot {action}: {reason}")]
    Io {
        dir: PathBuf,
        action: &'static str,
        reason: String,
    },
    #[error("supervisor of {dir} did not start the container: {reason}")]
    Spawn { dir: PathBuf, reason: String },
    #[error(transparent)]
    Driver(#[from] DriverError),
}
