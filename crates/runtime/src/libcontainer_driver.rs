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

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::cgroup_stats::{ContainerStats, oom_kill_count};
use crate::driver::{ContainerDriver, DriverError, ExitStatus, Stdio};
use crate::exec::{ExecOptions, SeccompExecutor};
use crate::reap::{PidFile, is_our_child, reap, reap_failed_build, wait_for_child};

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

/// The reason of a failed libcontainer build, after reaping what it left: the process it
/// cloned (whose pid it wrote to the pid file) and its intermediate process. Unreaped, the
/// first would keep a container's init from ever finishing its exit (a pid namespace's init
/// waits for every process of the namespace to be reaped).
fn failed_build(err: &dyn Error, written_pid: Option<Pid>) -> String {
    let mut reason = chain(err);
    if let Err(reap_error) = reap_failed_build(written_pid) {
        reason.push_str("; ");
        reason.push_str(&reap_error);
    }
    reason
}

/// Hands the given stdio fds to the process libcontainer will clone.
/// The process.json of one exec with a terminal, removed when dropped.
struct ProcessFile(PathBuf);

impl ProcessFile {
    fn write(
        state_root: &Path,
        id: &ContainerId,
        process: &oci_spec::runtime::Process,
    ) -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = state_root.join(format!("exec-{id}-{}-{n}.json", std::process::id()));
        let json = serde_json::to_vec(process).map_err(|err| err.to_string())?;
        std::fs::write(&path, json)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ProcessFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_stdio(mut builder: ContainerBuilder, stdio: Stdio) -> ContainerBuilder {
    if let Some(fd) = stdio.stdin {
        builder = builder.with_stdin(fd);
    }
    if let Some(fd) = stdio.stdout {
        builder = builder.with_stdout(fd);
    }
    if let Some(fd) = stdio.stderr {
        builder = builder.with_stderr(fd);
    }
    builder.with_console_socket(stdio.console_socket)
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

    fn cgroup_path(&self, container: &Container) -> Result<PathBuf, String> {
        container
            .spec()
            .map(|config| config.cgroup_path)
            .map_err(|err| format!("cannot read its config: {}", chain(&err)))
    }
}

impl ContainerDriver for LibcontainerDriver {
    fn create(&self, id: &ContainerId, bundle: &Path, stdio: Stdio) -> Result<i32, DriverError> {
        let error = |reason: String| DriverError::Create {
            id: id.clone(),
            bundle: bundle.to_owned(),
            reason,
        };
        let pid_file = PidFile::new(&self.state_root, id);
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.state_root)
            .and_then(|b| b.with_pid_file(Some(pid_file.path())))
            .map_err(|err| error(chain(&err)))?;
        let built = with_stdio(builder, stdio)
            .validate_id()
            .map_err(|err| error(chain(&err)))?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build();
        let written_pid = pid_file.take();
        let container = built.map_err(|err| error(failed_build(&err, written_pid)))?;
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
        let code = wait_for_child(pid).map_err(error)?;
        let cgroup = self.cgroup_path(&container).map_err(error)?;
        let oom_kills = oom_kill_count(&cgroup).map_err(|err| error(chain(&err)))?;
        Ok(ExitStatus {
            code,
            oom_killed: oom_kills > 0,
        })
    }

    fn exec(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        stdio: Stdio,
    ) -> Result<i32, DriverError> {
        let error = |reason: String| DriverError::Exec {
            id: id.clone(),
            command: options.args.clone(),
            reason,
        };
        let container = self.load(id)?;
        let spec = Spec::load(container.bundle().join("config.json"))
            .map_err(|err| error(format!("cannot read its bundle: {}", chain(&err))))?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| error("its spec has no process".into()))?;
        let (uid, gid, additional_gids) = match &options.user {
            Some(user) => (user.uid, user.gid, user.additional_gids.clone()),
            None => (
                process.user().uid(),
                process.user().gid(),
                process.user().additional_gids().clone().unwrap_or_default(),
            ),
        };
        let cwd = options
            .workdir
            .as_ref()
            .map_or_else(|| process.cwd().clone(), |dir| dir.as_path().to_owned());
        let env: HashMap<String, String> = options
            .env
            .iter()
            .map(|var| (var.name().to_owned(), var.value().to_owned()))
            .collect();
        let executor = SeccompExecutor {
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        };
        let pid_file = PidFile::new(&self.state_root, id);
        // With a terminal, the process is given whole as a process.json (libcontainer's
        // tenant builder takes `terminal` only from there): the container's process with this
        // exec's command, environment, directory and user.
        let process_file = if options.tty {
            let mut exec_process = process.clone();
            let mut merged: Vec<String> = process.env().clone().unwrap_or_default();
            for (name, value) in &env {
                merged.retain(|entry| entry.split_once('=').map(|(n, _)| n) != Some(name));
                merged.push(format!("{name}={value}"));
            }
            let mut user = process.user().clone();
            user.set_uid(uid);
            user.set_gid(gid);
            user.set_additional_gids(Some(additional_gids.clone()));
            exec_process
                .set_args(Some(options.args.clone()))
                .set_env(Some(merged))
                .set_cwd(cwd.clone())
                .set_user(user)
                .set_terminal(Some(true));
            Some(ProcessFile::write(&self.state_root, id, &exec_process).map_err(error)?)
        } else {
            None
        };
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.state_root)
            .and_then(|b| b.with_pid_file(Some(pid_file.path())))
            .map_err(|err| error(chain(&err)))?
            .with_executor(executor);
        let built = with_stdio(builder, stdio)
            .as_tenant()
            .with_process(process_file.as_ref().map(ProcessFile::path))
            .with_container_args(options.args.clone())
            .with_env(env)
            .with_cwd(Some(cwd))
            .with_user(Some(uid))
            .with_group(Some(gid))
            .with_additional_gids(additional_gids)
            .with_detach(true)
            .build();
        let written_pid = pid_file.take();
        built
            .map(Pid::as_raw)
            .map_err(|err| error(failed_build(&err, written_pid)))
    }

    fn wait_exec(&self, id: &ContainerId, pid: i32) -> Result<i32, DriverError> {
        wait_for_child(Pid::from_raw(pid)).map_err(|reason| DriverError::Wait {
            id: id.clone(),
            reason,
        })
    }

    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, DriverError> {
        let error = |reason: String| DriverError::Stats {
            id: id.clone(),
            reason,
        };
        let container = self.load(id)?;
        let cgroup = self.cgroup_path(&container).map_err(error)?;
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
            reap(pid).map_err(|reason| DriverError::Delete {
                id: id.clone(),
                reason,
            })?;
        }
        Ok(())
    }
}
