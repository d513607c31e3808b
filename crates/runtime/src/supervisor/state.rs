//! `state.json`: the container's state and its last exit, as `berth inspect` shows them,
//! written atomically so a reader (the daemon, even one started after the supervisor died)
//! sees either the previous record or the next, never a torn one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SupervisorError;

/// Where the container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The container's command runs.
    Running,
    /// It exited and the restart policy starts it again after a backoff.
    Restarting,
    /// It exited for good; the supervisor has deleted it and exited.
    Exited,
}

/// The record docker's `inspect` calls `State`, kept by the supervisor in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: Status,
    /// Host pid of the container's init while it runs.
    pub pid: Option<i32>,
    /// The supervisor's own pid.
    pub supervisor_pid: i32,
    /// When the current (or last) run started, RFC 3339 with nanoseconds.
    pub started_at: Option<String>,
    /// When the last run ended.
    pub finished_at: Option<String>,
    /// The last run's exit code (128 + signal when a signal killed it).
    pub exit_code: Option<i32>,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Restarts made by the restart policy so far.
    pub restart_count: u32,
    /// The user stopped or killed the container (`stop`, `kill`); `unless-stopped` keeps such
    /// a container stopped when berth starts.
    pub stopped_by_user: bool,
    /// Why the container could not be (re)started, if it could not.
    pub error: Option<String>,
}

impl ContainerState {
    /// Reads `state.json` at `path`.
    pub fn read(path: &Path) -> Result<Self, SupervisorError> {
        let error = |reason: String| SupervisorError::State {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read(path).map_err(|err| error(err.to_string()))?;
        serde_json::from_slice(&text).map_err(|err| error(err.to_string()))
    }

    /// Replaces `state.json` at `path` with this record, atomically and durably.
    pub fn write(&self, path: &Path) -> Result<(), SupervisorError> {
        let json = serde_json::to_vec(self).map_err(|err| SupervisorError::State {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
        write_atomically(path, &json)
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory: write, fsync, rename,
/// fsync the directory. A crash leaves the old file or the new one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SupervisorError> {
    let error = |err: std::io::Error| SupervisorError::State {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&temp).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temp, path).map_err(error)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(error)
}
