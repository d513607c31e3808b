//! The processes the daemon starts: a container's supervisor and an exec shim. Both are
//! single-threaded processes that call libcontainer, which the multi-threaded daemon must not
//! do itself (libcontainer clones its caller; docs/adr/0010).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::supervisor::{ContainerState, StateDir};

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
/// the container runs, or the command's own words when it failed to start it.
///
/// The pid is read from `supervisor.pid`, or, when a short-lived container's supervisor has
/// already exited and removed that file, from `SupervisorPid` in `state.json` (the exit is
/// recorded there before the supervisor exits). A pid that is gone by the time the caller
/// watches it is seen as an exit at once.
pub fn spawn_supervisor(launcher: &dyn Launcher, state_dir: &Path) -> Result<i32, String> {
    let mut command = launcher.supervisor(state_dir);
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| format!("cannot run the supervisor {command:?}: {err}"))?;
    if !output.status.success() {
        let said = [&output.stderr, &output.stdout]
            .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
            .join(" ");
        return Err(format!("{} ({})", said.trim(), output.status));
    }
    let dir = StateDir::new(state_dir);
    std::fs::read_to_string(dir.pid_file())
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .or_else(|| {
            ContainerState::read(&dir.state())
                .ok()
                .map(|state| state.supervisor_pid)
        })
        .ok_or_else(|| format!("the supervisor in {} left no pid", state_dir.display()))
}
