//! [`ContainerManager`]: the daemon's containers, each a state directory under
//! `<root>/containers/<id>/` owned by its own supervisor process (docs/adr/0013).
//!
//! What it guarantees:
//! - A create either leaves a complete container (record, bundle, supervisor config, mounted
//!   rootfs) or nothing at all: every input is validated before anything is made, and every
//!   error after that removes what was made.
//! - Names are unique: a name is reserved in the index before anything is made.
//! - The state it reports is read from the supervisor's `state.json`, so it is the same
//!   before and after a daemon restart; the daemon keeps only which supervisors live.
//! - Supervisor exits are seen through pidfds; `wait`, `AutoRemove` and `logs --follow` act
//!   on them.
//!
//! Blocking work (files, the control socket, spawning a supervisor) happens in the calling
//! thread: callers on the async runtime use `spawn_blocking`.
//!
//! This file holds the types, construction, lookups and the shared cleanup; the rest is along
//! its seams: `create` (a new container), `config` (config keys in containers), `lifecycle`
//! (start, watch, control requests, removal, `wait`), `adopt` (loading at daemon start) and
//! `view` (how a container looks from outside).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_client::api::{ContainerInspect, ContainerStatus, ContainerSummary};
use berth_config::Kv;
use berth_image::Store;
use berth_runtime::supervisor::{ContainerState, StateDir, Status};
use berth_runtime::{ContainerDriver, HostFacts, LibcontainerDriver};
use berth_types::ContainerId;
use tokio::sync::watch;

use crate::error::{AgentError, Result};
use crate::launcher::Launcher;
use crate::network::{DaemonNetworks, NetOptions};
use crate::paths::Paths;
use crate::record::ContainerRecord;

mod adopt;
mod config;
mod create;
mod lifecycle;
mod view;

use view::{inspect, summary};

/// docker's zero time, for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The exit code reported when a supervisor vanished and the real code is unknown.
pub const UNKNOWN_EXIT: i32 = -1;
/// How long a control request may take beyond the stop timeout it carries.
const CONTROL_SLACK: Duration = Duration::from_secs(15);

/// What the daemon keeps in memory for one container.
#[derive(Debug, Clone)]
struct Entry {
    record: ContainerRecord,
    /// The pid of its live supervisor.
    supervisor: Option<i32>,
    /// Its supervisor vanished while it ran (found on adoption).
    dead: bool,
    removing: bool,
    /// Serializes start/stop/kill/remove of this container.
    ops: Arc<Mutex<()>>,
}

#[derive(Debug, Default)]
struct Index {
    containers: HashMap<ContainerId, Entry>,
    /// Every name in use or reserved by a create under way.
    names: HashMap<String, Option<ContainerId>>,
}

/// One container as the API shows it, read at one instant.
#[derive(Debug, Clone)]
pub struct View {
    pub record: ContainerRecord,
    pub dir: StateDir,
    pub supervisor: Option<i32>,
    pub status: ContainerStatus,
    pub state: Option<ContainerState>,
    /// Its health check's state, when it has one.
    pub health: Option<berth_client::api::Health>,
}

/// The daemon's containers.
#[derive(Debug)]
pub struct ContainerManager {
    paths: Paths,
    images: Store,
    launcher: Arc<dyn Launcher>,
    host: HostFacts,
    runtime: tokio::runtime::Handle,
    index: Mutex<Index>,
    /// Bumped at every supervisor exit and removal, for waiters.
    changes: watch::Sender<u64>,
    /// Bridged networking: sandboxes, attachments, DNS.
    networks: DaemonNetworks,
    /// The store config keys are read from (issue #6), once the daemon has one.
    config_store: std::sync::OnceLock<Kv>,
    /// Service registration and health checks (issue #6), once the daemon has a store.
    services: std::sync::OnceLock<Arc<crate::services::Services>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Whether `pid` is alive (not a zombie we would have to reap: supervisors are not our
/// children once detached).
fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn status_of(entry: &Entry, state: Option<&ContainerState>) -> ContainerStatus {
    if entry.removing {
        return ContainerStatus::Removing;
    }
    if entry.dead {
        return ContainerStatus::Dead;
    }
    match (entry.supervisor.is_some(), state.map(|s| s.status)) {
        (_, None) if entry.supervisor.is_some() => ContainerStatus::Running,
        (_, None) => ContainerStatus::Created,
        (true, Some(Status::Running)) => ContainerStatus::Running,
        (true, Some(Status::Restarting)) => ContainerStatus::Restarting,
        (_, Some(Status::Exited)) => ContainerStatus::Exited,
        (false, Some(_)) => ContainerStatus::Dead,
    }
}

impl ContainerManager {
    /// A manager of the containers under `paths`, with no container loaded yet: call
    /// [`ContainerManager::adopt_all`]. Must be called within a tokio runtime.
    pub fn new(paths: Paths, launcher: Arc<dyn Launcher>) -> Result<Arc<Self>> {
        Self::with_network(paths, launcher, &NetOptions::default())
    }

    /// [`ContainerManager::new`] with the daemon's network settings.
    pub fn with_network(
        paths: Paths,
        launcher: Arc<dyn Launcher>,
        net: &NetOptions,
    ) -> Result<Arc<Self>> {
        let internal =
            |what: &str, reason: String| AgentError::Internal(format!("{what}: {reason}"));
        std::fs::create_dir_all(paths.containers())
            .map_err(|e| internal(&paths.containers().display().to_string(), e.to_string()))?;
        let images = Store::open(&paths.images())
            .map_err(|e| internal("cannot open the image store", e.to_string()))?;
        let host =
            HostFacts::detect().map_err(|e| internal("cannot read the host", e.to_string()))?;
        let networks = DaemonNetworks::open(&paths.root, &paths.run_dir, net)?;
        Ok(Arc::new(Self {
            networks,
            paths,
            images,
            launcher,
            host,
            runtime: tokio::runtime::Handle::current(),
            index: Mutex::new(Index::default()),
            changes: watch::Sender::new(0),
            config_store: std::sync::OnceLock::new(),
            services: std::sync::OnceLock::new(),
        }))
    }

    pub fn networks(&self) -> &DaemonNetworks {
        &self.networks
    }

    /// Sets the store config keys are read from (once; later calls are ignored).
    pub fn set_config_store(&self, kv: Kv) {
        let _ = self.config_store.set(kv);
    }

    pub fn config_store(&self) -> Option<&Kv> {
        self.config_store.get()
    }

    /// Sets the service registry (once; later calls are ignored) and starts the monitors of
    /// the containers running now.
    pub fn set_services(self: &Arc<Self>, services: Arc<crate::services::Services>) {
        if self.services.set(Arc::clone(&services)).is_err() {
            return;
        }
        let running: Vec<(ContainerId, i32)> = lock(&self.index)
            .containers
            .iter()
            .filter_map(|(id, e)| Some((id.clone(), e.supervisor?)))
            .collect();
        for (id, pid) in running {
            services.monitor(self, id, pid, true);
        }
    }

    pub fn services(&self) -> Option<&Arc<crate::services::Services>> {
        self.services.get()
    }

    /// Every container's record and its live supervisor's pid.
    pub fn records(&self) -> Vec<(ContainerRecord, Option<i32>)> {
        lock(&self.index)
            .containers
            .values()
            .map(|e| (e.record.clone(), e.supervisor))
            .collect()
    }

    /// The pid of container `id`'s live supervisor.
    pub fn supervisor_of(&self, id: &ContainerId) -> Option<i32> {
        lock(&self.index)
            .containers
            .get(id)
            .and_then(|e| e.supervisor)
    }

    /// Deletes container `id`'s service endpoints now (blocking), before it stops.
    fn retire(&self, id: &ContainerId) {
        if let Some(services) = self.services.get() {
            self.runtime.block_on(services.retire(id));
        }
    }

    pub fn host(&self) -> &HostFacts {
        &self.host
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn launcher(&self) -> &dyn Launcher {
        self.launcher.as_ref()
    }

    /// Whether container `id` has a live supervisor (false once it is removed).
    pub fn is_supervised(&self, id: &ContainerId) -> bool {
        lock(&self.index)
            .containers
            .get(id)
            .is_some_and(|entry| entry.supervisor.is_some())
    }

    fn state_dir(&self, id: &ContainerId) -> StateDir {
        StateDir::new(&self.paths.container(id))
    }

    /// A receiver that changes at every supervisor exit or removal.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Finds a container by full id, name or unique id prefix.
    fn find(&self, reference: &str) -> Result<(ContainerId, Entry)> {
        let index = lock(&self.index);
        if let Some(Some(id)) = index.names.get(reference)
            && let Some(entry) = index.containers.get(id)
        {
            return Ok((id.clone(), entry.clone()));
        }
        let matches: Vec<_> = index
            .containers
            .iter()
            .filter(|(id, _)| !reference.is_empty() && id.as_str().starts_with(reference))
            .collect();
        match matches.as_slice() {
            [(id, entry)] => Ok(((*id).clone(), (*entry).clone())),
            [] => Err(AgentError::NotFound(format!(
                "no such container: {reference}"
            ))),
            _ => Err(AgentError::BadRequest(format!(
                "container reference {reference} is ambiguous: it matches {} containers",
                matches.len()
            ))),
        }
    }

    fn view_of(&self, id: &ContainerId, entry: Entry) -> View {
        let dir = self.state_dir(id);
        let state = ContainerState::read(&dir.state()).ok();
        View {
            health: self.services.get().and_then(|s| s.health(id)),
            status: status_of(&entry, state.as_ref()),
            supervisor: entry.supervisor,
            record: entry.record,
            dir,
            state,
        }
    }

    /// The container `reference` names, as it is now.
    pub fn view(&self, reference: &str) -> Result<View> {
        let (id, entry) = self.find(reference)?;
        Ok(self.view_of(&id, entry))
    }

    /// Every container (with `all`) or the running ones, newest first.
    pub fn list(&self, all: bool) -> Vec<ContainerSummary> {
        let entries: Vec<_> = lock(&self.index)
            .containers
            .iter()
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        let mut views: Vec<View> = entries
            .into_iter()
            .map(|(id, entry)| self.view_of(&id, entry))
            .filter(|v| {
                all || matches!(
                    v.status,
                    ContainerStatus::Running | ContainerStatus::Restarting
                )
            })
            .collect();
        views.sort_by(|a, b| b.record.created.cmp(&a.record.created));
        views.iter().map(summary).collect()
    }

    pub fn inspect(&self, reference: &str) -> Result<ContainerInspect> {
        let view = self.view(reference)?;
        let mut inspect = inspect(&view);
        inspect.network_settings = self.networks.settings(&view.record.id);
        Ok(inspect)
    }

    /// Removes everything a container may have: libcontainer state and cgroup (idempotent
    /// delete), rootfs mount and snapshot, state directory. Errors are logged: this runs on
    /// cleanup paths.
    fn remove_files(&self, id: &ContainerId) {
        let runtime_root = self.paths.runtime_root();
        if runtime_root.join(id.as_str()).exists() {
            match LibcontainerDriver::new(&runtime_root).map(|d| d.delete(id)) {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(%id, %err, "cannot delete the container"),
                Err(err) => tracing::warn!(%id, %err, "cannot open the runtime state"),
            }
        }
        // The network's CNI DEL mostly waits (plugin execs, nftables commits): it runs
        // beside the rootfs removal, which needs nothing of it.
        std::thread::scope(|scope| {
            scope.spawn(|| self.networks.release(id));
            if let Err(err) = self.images.remove_rootfs(id.as_str()) {
                tracing::warn!(%id, %err, "cannot remove the rootfs");
            }
        });
        let dir = self.paths.container(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(dir = %dir.display(), %err, "cannot remove"),
        }
    }
}

/// The cgroup path (relative to each hierarchy) libcontainer gives container `id`.
pub fn cgroup_path(id: &ContainerId) -> PathBuf {
    Path::new(berth_runtime::CGROUP_PARENT).join(id.as_str())
}

#[cfg(test)]
mod tests {
    use berth_client::api::CreateRequest;

    use super::*;

    fn entry(supervisor: Option<i32>) -> Entry {
        Entry {
            record: ContainerRecord {
                id: ContainerId::from_random_bytes([7; 32]),
                name: "n".into(),
                image: "busybox".into(),
                image_id: String::new(),
                created: ZERO_TIME.into(),
                rootfs: PathBuf::new(),
                path: "sh".into(),
                args: vec![],
                request: CreateRequest::default(),
            },
            supervisor,
            dead: false,
            removing: false,
            ops: Arc::default(),
        }
    }

    fn state(status: Status) -> ContainerState {
        ContainerState {
            status,
            pid: None,
            supervisor_pid: 1,
            started_at: None,
            finished_at: None,
            exit_code: None,
            oom_killed: false,
            restart_count: 0,
            stopped_by_user: false,
            error: None,
        }
    }

    #[test]
    fn status_follows_the_supervisor_and_its_record() {
        use ContainerStatus as S;
        assert_eq!(status_of(&entry(None), None), S::Created);
        assert_eq!(status_of(&entry(Some(9)), None), S::Running);
        assert_eq!(
            status_of(&entry(Some(9)), Some(&state(Status::Running))),
            S::Running
        );
        assert_eq!(
            status_of(&entry(Some(9)), Some(&state(Status::Restarting))),
            S::Restarting
        );
        assert_eq!(
            status_of(&entry(None), Some(&state(Status::Exited))),
            S::Exited
        );
        assert_eq!(
            status_of(&entry(None), Some(&state(Status::Running))),
            S::Dead
        );
        let removing = Entry {
            removing: true,
            ..entry(Some(9))
        };
        assert_eq!(status_of(&removing, None), S::Removing);
    }
}
