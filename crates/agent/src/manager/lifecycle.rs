//! A container's life under its supervisor: start (a new supervisor), the pidfd watch that
//! acts on its exit, control requests (stop, restart, kill, resize), removal and `wait`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use berth_client::api::WaitResponse;
use berth_runtime::supervisor::{ContainerState, Request, Response, request};
use berth_types::ContainerId;
use tokio::io::unix::AsyncFd;

use super::{CONTROL_SLACK, ContainerManager, UNKNOWN_EXIT, alive, lock};
use crate::error::{AgentError, Result};

/// How long a supervisor may take to resize its container's terminal.
const RESIZE_LIMIT: Duration = Duration::from_secs(5);
/// How long a supervisor may take to exit once its container is gone.
const SUPERVISOR_EXIT_LIMIT: Duration = Duration::from_secs(20);

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl ContainerManager {
    /// Starts the container under a new supervisor (which creates and starts it, reporting
    /// create errors). 304 when it already runs.
    pub fn start(self: &Arc<Self>, reference: &str) -> Result<()> {
        let (id, entry) = self.find(reference)?;
        let _ops = lock(&entry.ops);
        let (_, entry) = self.find(id.as_str())?;
        if entry.supervisor.is_some_and(alive) {
            return Err(AgentError::NotModified("running"));
        }
        let dir = self.state_dir(&id);
        let pid = crate::launcher::spawn_supervisor(self.launcher.as_ref(), dir.path()).map_err(
            |reason| {
                AgentError::Internal(format!("container {} did not start: {reason}", id.short()))
            },
        )?;
        {
            let mut index = lock(&self.index);
            if let Some(entry) = index.containers.get_mut(&id) {
                entry.supervisor = Some(pid);
                entry.dead = false;
            }
        }
        self.watch(id.clone(), pid);
        if let Some(services) = self.services.get() {
            services.monitor(self, id, pid, false);
        }
        Ok(())
    }

    /// Watches supervisor `pid` of `id` through a pidfd and acts on its exit.
    pub(super) fn watch(self: &Arc<Self>, id: ContainerId, pid: i32) {
        let manager = Arc::clone(self);
        self.runtime.spawn(async move {
            if let Ok(fd) = pidfd_open(pid) {
                // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until
                // the AsyncFd is dropped.
                let registered =
                    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
                if let Ok(fd) = registered {
                    let _ = fd.readable().await;
                }
            }
            let _ = tokio::task::spawn_blocking(move || manager.supervisor_exited(&id, pid)).await;
        });
    }

    fn supervisor_exited(self: &Arc<Self>, id: &ContainerId, pid: i32) {
        let auto_remove = {
            let mut index = lock(&self.index);
            let Some(entry) = index.containers.get_mut(id) else {
                return;
            };
            if entry.supervisor != Some(pid) {
                return;
            }
            entry.supervisor = None;
            entry.record.request.auto_remove && !entry.removing
        };
        self.retire(id);
        self.changes.send_modify(|n| *n += 1);
        if auto_remove && let Err(err) = self.remove(id.as_str(), true) {
            tracing::warn!(%id, %err, "cannot auto-remove");
        }
    }

    /// Waits (blocking) until supervisor `pid` is gone.
    fn wait_supervisor_gone(&self, pid: i32) -> Result<()> {
        let deadline = std::time::Instant::now() + SUPERVISOR_EXIT_LIMIT;
        while alive(pid) {
            if std::time::Instant::now() > deadline {
                return Err(AgentError::Internal(format!(
                    "supervisor {pid} did not exit within {SUPERVISOR_EXIT_LIMIT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub(super) fn control(
        &self,
        id: &ContainerId,
        message: &Request,
        timeout: Duration,
    ) -> Result<ContainerState> {
        match request(self.state_dir(id).path(), message, timeout) {
            Ok(Response::State(state)) => Ok(state),
            Ok(Response::Error(error)) => Err(AgentError::Conflict(error)),
            Err(err) => Err(AgentError::Internal(err.to_string())),
        }
    }

    /// Sets the size of the terminal of a container run with `-t` (blocking: a control
    /// request). 409 when it has no terminal or does not run.
    pub fn resize(&self, reference: &str, rows: u16, columns: u16) -> Result<()> {
        let (id, entry) = self.find(reference)?;
        if !entry.supervisor.is_some_and(alive) {
            return Err(AgentError::Conflict(format!(
                "container {} is not running",
                id.short()
            )));
        }
        self.control(&id, &Request::Resize { rows, columns }, RESIZE_LIMIT)
            .map(drop)
    }

    /// Stops the container (SIGTERM, SIGKILL after `timeout_secs`); returns once its
    /// supervisor is gone. 304 when it does not run.
    pub fn stop(self: &Arc<Self>, reference: &str, timeout_secs: Option<u64>) -> Result<()> {
        let (id, entry) = self.find(reference)?;
        let _ops = lock(&entry.ops);
        self.stop_locked(&id, timeout_secs)
    }

    fn stop_locked(&self, id: &ContainerId, timeout_secs: Option<u64>) -> Result<()> {
        let (_, entry) = self.find(id.as_str())?;
        let Some(pid) = entry.supervisor.filter(|pid| alive(*pid)) else {
            return Err(AgentError::NotModified("stopped"));
        };
        let timeout_secs =
            timeout_secs.unwrap_or(berth_runtime::supervisor::DEFAULT_STOP_TIMEOUT.as_secs());
        // Out of its services before it stops taking traffic.
        self.retire(id);
        self.control(
            id,
            &Request::Stop { timeout_secs },
            Duration::from_secs(timeout_secs) + CONTROL_SLACK,
        )?;
        self.wait_supervisor_gone(pid)
    }

    pub fn restart(self: &Arc<Self>, reference: &str, timeout_secs: Option<u64>) -> Result<()> {
        let (id, entry) = self.find(reference)?;
        {
            let _ops = lock(&entry.ops);
            match self.stop_locked(&id, timeout_secs) {
                Ok(()) | Err(AgentError::NotModified(_)) => {}
                Err(err) => return Err(err),
            }
        }
        self.start(id.as_str())
    }

    /// Sends `signal` to the container's init. 409 when it does not run.
    pub fn kill(self: &Arc<Self>, reference: &str, signal: &str) -> Result<()> {
        berth_runtime::supervisor::parse_signal(signal).map_err(AgentError::BadRequest)?;
        let (id, entry) = self.find(reference)?;
        let _ops = lock(&entry.ops);
        if !entry.supervisor.is_some_and(alive) {
            return Err(AgentError::Conflict(format!(
                "container {} is not running",
                id.short()
            )));
        }
        self.control(
            &id,
            &Request::Kill {
                signal: signal.to_owned(),
            },
            CONTROL_SLACK,
        )
        .map(drop)
    }

    /// Removes the container and everything it had. A running one is stopped first when
    /// `force`, a 409 otherwise.
    pub fn remove(self: &Arc<Self>, reference: &str, force: bool) -> Result<()> {
        let (id, entry) = self.find(reference)?;
        let _ops = lock(&entry.ops);
        let (_, entry) = self.find(id.as_str())?;
        if entry.supervisor.is_some_and(alive) {
            if !force {
                return Err(AgentError::Conflict(format!(
                    "container {} is running: stop it first, or remove it with force",
                    id.short()
                )));
            }
            self.set_removing(&id, true);
            match self.stop_locked(&id, Some(0)) {
                Ok(()) | Err(AgentError::NotModified(_)) => {}
                Err(err) => {
                    self.set_removing(&id, false);
                    return Err(err);
                }
            }
        }
        self.set_removing(&id, true);
        self.retire(&id);
        if let Some(services) = self.services.get() {
            services.forget(&id);
        }
        self.remove_files(&id);
        {
            let mut index = lock(&self.index);
            index.containers.remove(&id);
            index.names.remove(&entry.record.name);
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    fn set_removing(&self, id: &ContainerId, removing: bool) {
        if let Some(entry) = lock(&self.index).containers.get_mut(id) {
            entry.removing = removing;
        }
    }

    /// Waits until the container is exited for good (no live supervisor); its last exit.
    pub async fn wait(self: &Arc<Self>, reference: &str) -> Result<WaitResponse> {
        let mut changes = self.changes();
        let (id, _) = self.find(reference)?;
        loop {
            let (_, entry) = self.find(id.as_str())?;
            if entry.supervisor.is_none() {
                let state = ContainerState::read(&self.state_dir(&id).state()).ok();
                return Ok(WaitResponse {
                    status_code: state
                        .as_ref()
                        .and_then(|s| s.exit_code)
                        .unwrap_or(if entry.dead { UNKNOWN_EXIT } else { 0 }),
                    oom_killed: state.is_some_and(|s| s.oom_killed),
                });
            }
            if changes.changed().await.is_err() {
                return Err(AgentError::Internal("the daemon is shutting down".into()));
            }
        }
    }
}
