//! Adoption at daemon start (docs/adr/0013): every container directory is loaded, its live
//! supervisor adopted, a vanished one's container recorded dead or restarted by its policy.

use std::sync::Arc;
use std::time::Duration;

use berth_runtime::supervisor::{
    ContainerState, Request, Response, StateDir, Status, SupervisorConfig, request,
};
use berth_runtime::{ContainerDriver, LibcontainerDriver};
use berth_types::ContainerId;

use super::{ContainerManager, Entry, lock, now};
use crate::error::{AgentError, Result};
use crate::record::ContainerRecord;

impl ContainerManager {
    /// Loads every container under `<root>/containers/` as docs/adr/0013 says: a live
    /// supervisor is adopted; none with `exited` is an exited container; none with
    /// `running`/`restarting` is a dead container, deleted and restarted when its policy
    /// says so. Half-made creates (no record) are removed; exited `AutoRemove` containers too.
    pub fn adopt_all(self: &Arc<Self>) -> Result<()> {
        let dir = self.paths.containers();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| AgentError::Internal(format!("{}: {e}", dir.display())))?;
        let mut to_start = Vec::new();
        for dir_entry in entries.flatten() {
            let Ok(id) = dir_entry
                .file_name()
                .to_string_lossy()
                .parse::<ContainerId>()
            else {
                continue;
            };
            match self.adopt(&id) {
                Ok(true) => to_start.push(id),
                Ok(false) => {}
                Err(err) => tracing::warn!(%id, %err, "cannot adopt container"),
            }
        }
        for id in to_start {
            if let Err(err) = self.start(id.as_str()) {
                tracing::warn!(%id, %err, "cannot restart container under its restart policy");
            }
        }
        Ok(())
    }

    /// Adopts one container; `Ok(true)` when its restart policy wants it started.
    fn adopt(self: &Arc<Self>, id: &ContainerId) -> Result<bool> {
        let dir = self.state_dir(id);
        let Ok(record) = ContainerRecord::read(dir.path()) else {
            tracing::info!(%id, "removing a container whose create did not finish");
            self.remove_files(id);
            return Ok(false);
        };
        let supervisor = live_supervisor(&dir);
        let state = ContainerState::read(&dir.state()).ok();
        let mut dead = false;
        let mut start = false;
        if supervisor.is_none()
            && let Some(mut state) = state
            && state.status != Status::Exited
        {
            // The supervisor was killed: delete what it left (forced kill of the cgroup).
            let runtime_root = self.paths.runtime_root();
            if let Ok(driver) = LibcontainerDriver::new(&runtime_root)
                && runtime_root.join(id.as_str()).exists()
                && let Err(err) = driver.delete(id)
            {
                tracing::warn!(%id, %err, "cannot delete the container of a vanished supervisor");
            }
            let restart = SupervisorConfig::load(&dir)
                .map(|c| c.restart)
                .unwrap_or_default();
            start = restart.start_when_berth_starts(state.stopped_by_user);
            state.status = Status::Exited;
            state.pid = None;
            state.exit_code = None;
            state.finished_at = Some(now());
            state.error = Some("its supervisor vanished; the exit code is unknown".into());
            if let Err(err) = state.write(&dir.state()) {
                tracing::warn!(%id, %err, "cannot record the dead container");
            }
            dead = !start;
        }
        let exited_for_good = supervisor.is_none() && !start && state_exists(&dir);
        if exited_for_good && record.request.auto_remove {
            self.remove_files(id);
            return Ok(false);
        }
        {
            let mut index = lock(&self.index);
            index.names.insert(record.name.clone(), Some(id.clone()));
            index.containers.insert(
                id.clone(),
                Entry {
                    record,
                    supervisor,
                    dead,
                    removing: false,
                    ops: Arc::default(),
                },
            );
        }
        if let Some(pid) = supervisor {
            self.watch(id.clone(), pid);
        }
        Ok(start)
    }
}

fn state_exists(dir: &StateDir) -> bool {
    dir.state().exists()
}

/// The pid of the container's supervisor when it lives and answers (ADR 13, case 1).
fn live_supervisor(dir: &StateDir) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if !String::from_utf8_lossy(&cmdline).contains("supervise") {
        return None;
    }
    match request(dir.path(), &Request::Status, Duration::from_secs(5)) {
        Ok(Response::State(_)) => Some(pid),
        _ => None,
    }
}
