//! The narrow boundary between berth and the kernel for one container's life: create, start,
//! signal, wait, account, delete. [`crate::LibcontainerDriver`] is the real one,
//! [`crate::FakeDriver`] a fake for logic that runs without root.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use nix::sys::signal::Signal;

use crate::cgroup_stats::ContainerStats;
use crate::exec::ExecOptions;

/// Where the container's process reads and writes; `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// For a container whose spec asks for a terminal (`RunOptions::tty`): a unix socket the
    /// caller listens on; the container's pty master arrives on it (`SCM_RIGHTS`) during
    /// `create`, and the three fds above are then not used.
    pub console_socket: Option<PathBuf>,
}

/// How a container's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal number when a signal killed it (as shells report).
    pub code: i32,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// Why a driver operation failed; `reason` carries the underlying error chain.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("container {id}: cannot create from bundle {bundle}: {reason}")]
    Create {
        id: ContainerId,
        bundle: PathBuf,
        reason: String,
    },
    #[error("container {id}: cannot start: {reason}")]
    Start { id: ContainerId, reason: String },
    #[error("container {id}: cannot send {signal}: {reason}")]
    Kill {
        id: ContainerId,
        signal: Signal,
        reason: String,
    },
    #[error("container {id}: cannot exec {command:?}: {reason}")]
    Exec {
        id: ContainerId,
        command: Vec<String>,
        reason: String,
    },
    #[error("container {id}: cannot wait for its exit: {reason}")]
    Wait { id: ContainerId, reason: String },
    #[error("container {id}: cannot read its statistics: {reason}")]
    Stats { id: ContainerId, reason: String },
    #[error("container {id}: cannot delete: {reason}")]
    Delete { id: ContainerId, reason: String },
    #[error("container {id}: cannot load its state: {reason}")]
    Load { id: ContainerId, reason: String },
    #[error("container {id}: no such container")]
    NotFound { id: ContainerId },
}

/// One container's lifecycle, as an OCI runtime offers it.
///
/// Contract (both implementations keep it):
/// - `create` sets up namespaces, cgroup and rootfs and leaves the init process waiting;
///   nothing of the user's command runs before `start`.
/// - `wait` returns once the init process has exited and reports whether the OOM killer
///   struck; it must be called by the process that called `create` (likewise `wait_exec`
///   by the caller of `exec`).
/// - `delete` kills whatever still runs and removes the cgroup and state; it is idempotent,
///   so it is safe in cleanup paths, and leaves nothing behind when it returns `Ok`.
pub trait ContainerDriver {
    /// Creates the container from `bundle`; returns the host pid of its init process.
    fn create(&self, id: &ContainerId, bundle: &Path, stdio: Stdio) -> Result<i32, DriverError>;
    /// Runs the user's command in the created container.
    fn start(&self, id: &ContainerId) -> Result<(), DriverError>;
    /// Sends `signal` to the container's init process.
    fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), DriverError>;
    /// Blocks until the init process exits.
    fn wait(&self, id: &ContainerId) -> Result<ExitStatus, DriverError>;
    /// Runs another process in the running container, with its namespaces, cgroup,
    /// capabilities, no_new_privs and seccomp filter; returns its host pid.
    fn exec(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        stdio: Stdio,
    ) -> Result<i32, DriverError>;
    /// Blocks until the process `pid` started by [`ContainerDriver::exec`] exits; returns its
    /// exit code (128 + signal when killed).
    fn wait_exec(&self, id: &ContainerId, pid: i32) -> Result<i32, DriverError>;
    /// The container's cgroup accounting so far.
    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, DriverError>;
    /// Removes the container, killing it first if it still runs.
    fn delete(&self, id: &ContainerId) -> Result<(), DriverError>;
}

/// Runs a container to its end: create, start, wait, delete. The container is deleted on
/// every path once created, so a failure leaves nothing behind; a failed delete after a
/// successful run is reported as the error.
pub fn run_to_exit(
    driver: &dyn ContainerDriver,
    id: &ContainerId,
    bundle: &Path,
    stdio: Stdio,
) -> Result<ExitStatus, DriverError> {
    driver.create(id, bundle, stdio)?;
    let outcome = driver.start(id).and_then(|()| driver.wait(id));
    let deleted = driver.delete(id);
    let status = outcome?;
    deleted?;
    Ok(status)
}
