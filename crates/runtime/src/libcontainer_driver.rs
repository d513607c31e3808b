//! The real [`ContainerDriver`]: youki's libcontainer, with its state under a directory of
//! berth's, and cgroups through libcgroups (cgroupfs, no systemd).
//!
//! Process model: libcontainer does not exec a runtime binary. `create` clones the calling
//! process twice (an intermediate process that joins or creates the namespaces, then the
//! container's init as a sibling via `CLONE_PARENT`), so the init is a child of the caller,
//! which must reap it — [`ContainerDriver::wait`] does. The clones run Rust code of the
//! caller's image before they exec the user's command, so the caller should be
//! single-threaded (berth's future per-container supervisor is); see
//! docs/adr/0010-runtime-libcontainer.md.

use std::error::Error;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::cgroup_stats::{ContainerStats, oom_kill_count};
use crate::driver::{ContainerDriver, DriverError, ExitStatus, Stdio};

/// Drives containers with libcontainer, keeping their state in `state_root/<id>`.
#[derive(Debug, Clone)]
pub struct LibcontainerDriver {
    state_root: PathBuf,
}

/// Why the driver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the container state directory {path}: {reason}")]
pub struct StateRootError {
    pub path: PathBuf,
    pub reason: String,
}

/// An error and its sources, joined with ": " (libcontainer's top-level messages alone are
/// often just "oci spec error").
fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let message = inner.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = inner.source();
    }
    text
}

impl LibcontainerDriver {
    /// A driver keeping container state under `state_root` (created if missing; berth uses
    /// `/run/berth/runtime`, on tmpfs, so state does not outlive a reboot).
    pub fn new(state_root: &Path) -> Result<Self, StateRootError> {
        let error = |err: std::io::Error| StateRootError {
            path: state_root.to_owned(),
            reason: err.to_string(),
        };
        std::fs::create_dir_all(state_root).map_err(error)?;
        let state_root = state_root.canonicalize().map_err(error)?;
        Ok(Self { state_root })
    }

    /// The directory holding libcontainer's state of `id`.
    pub fn state_dir(&self, id: &ContainerId) -> PathBuf {
        self.state_root.join(id.as_str())
    }

    fn load(&self, id: &ContainerId) -> Result<Container, DriverError> {
        let dir = self.state_dir(id);
        if !dir.exists() {
            return Err(DriverError::NotFound { id: id.clone() });
        }
        Container::load(dir).map_err(|err| DriverError::Load {
            id: id.clone(),
            reason: chain(&err),
        })
    }

    fn cgroup_path(&self, container: &Container, id: &ContainerId) -> Result<PathBuf, String> {
        container
            .spec()
            .map(|config| config.cgroup_path)
            .map_err(|err| format!("container {id}: cannot read its config: {}", chain(&err)))
    }
}

/// Whether `pid` is a child of this process (and so ours to reap).
fn is_our_child(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The fields after the command name (which may hold spaces and parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let parent = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
    parent == Some(nix::unistd::getpid().as_raw())
}

impl ContainerDriver for LibcontainerDriver {
    fn create(&self, id: &ContainerId, bundle: &Path, stdio: Stdio) -> Result<i32, DriverError> {
        let error = |reason: String| DriverError::Create {
            id: id.clone(),
            bundle: bundle.to_owned(),
            reason,
        };
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.state_root)
            .map_err(|err| error(chain(&err)))?;
        if let Some(fd) = stdio.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdio.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stdio.stderr {
            builder = builder.with_stderr(fd);
        }
        let container = builder
            .validate_id()
            .map_err(|err| error(chain(&err)))?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|err| error(chain(&err)))?;
        container
            .pid()
            .map(Pid::as_raw)
            .ok_or_else(|| error("libcontainer recorded no init pid".into()))
    }

    fn start(&self, id: &ContainerId) -> Result<(), DriverError> {
        self.load(id)?.start().map_err(|err| DriverError::Start {
            id: id.clone(),
            reason: chain(&err),
        })
    }

    fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), DriverError> {
        self.load(id)?
            .kill(signal, false)
            .map_err(|err| DriverError::Kill {
                id: id.clone(),
                signal,
                reason: chain(&err),
            })
    }

    fn wait(&self, id: &ContainerId) -> Result<ExitStatus, DriverError> {
        let error = |reason: String| DriverError::Wait {
            id: id.clone(),
            reason,
        };
        let container = self.load(id)?;
        let pid = container
            .pid()
            .ok_or_else(|| error("libcontainer recorded no init pid".into()))?;
        let code = loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => break code,
                Ok(WaitStatus::Signaled(_, signal, _)) => break 128 + signal as i32,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => {
                    return Err(error(format!(
                        "init process {pid} is not a child of this process"
                    )));
                }
                Err(err) => return Err(error(format!("waitpid({pid}): {err}"))),
            }
        };
        let cgroup = self.cgroup_path(&container, id).map_err(error)?;
        let oom_kills = oom_kill_count(&cgroup).map_err(|err| error(chain(&err)))?;
        Ok(ExitStatus {
            code,
            oom_killed: oom_kills > 0,
        })
    }

    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, DriverError> {
        let error = |reason: String| DriverError::Stats {
            id: id.clone(),
            reason,
        };
        let container = self.load(id)?;
        let cgroup = self.cgroup_path(&container, id).map_err(error)?;
        ContainerStats::read(&cgroup).map_err(|err| error(chain(&err)))
    }

    fn delete(&self, id: &ContainerId) -> Result<(), DriverError> {
        let mut container = match self.load(id) {
            Ok(container) => container,
            Err(DriverError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        let pid = container.pid();
        container.delete(true).map_err(|err| DriverError::Delete {
            id: id.clone(),
            reason: chain(&err),
        })?;
        // A killed init stays a zombie until its parent reaps it.
        if let Some(pid) = pid
            && is_our_child(pid)
        {
            let _ = waitpid(pid, None);
        }
        Ok(())
    }
}
