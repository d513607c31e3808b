//! The processes the daemon starts: a container's supervisor and an exec shim. Both are
//! single-threaded processes that call libcontainer, which the multi-threaded daemon must not
//! do itself (libcontainer clones its caller; docs/adr/0010).

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::Pid;

/// How to start the helper processes; the real one runs the `berth` binary, tests run their
/// own test binary.
pub trait Launcher: Send + Sync + std::fmt::Debug {
    /// A command that ends in `berth_runtime::supervisor::supervise(state_dir)` and exits
    /// once the supervisor runs (as `berth supervise --state-dir DIR`).
    fn supervisor(&self, state_dir: &Path) -> Command;
    /// A command that ends in [`crate::exec_shim::run`] for `state_dir` and `request` (the
    /// JSON of an `ExecRequest`), with the caller's stdio as the process's stdio.
    fn exec_shim(&self, state_dir: &Path, request: &str) -> Command;
}

/// The `berth` binary: `berth supervise` and `berth exec-shim`.
#[derive(Debug, Clone)]
pub struct BerthBinary {
    pub exe: PathBuf,
}

impl Launcher for BerthBinary {
    fn supervisor(&self, state_dir: &Path) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("supervise").arg("--state-dir").arg(state_dir);
        command
    }

    fn exec_shim(&self, state_dir: &Path, request: &str) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .arg("exec-shim")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--request")
            .arg(request);
        command
    }
}

/// Runs `launcher`'s supervisor command for `state_dir` and returns the supervisor's pid once
/// the container runs, or the command's own words when it failed to start it. A pid that is
/// gone by the time the caller watches it is seen as an exit at once.
pub fn spawn_supervisor(launcher: &dyn Launcher, state_dir: &Path) -> Result<i32, String> {
    berth_runtime::supervisor::spawn_supervisor_command(launcher.supervisor(state_dir), state_dir)
        .map(Pid::as_raw)
        .map_err(|err| err.to_string())
}
