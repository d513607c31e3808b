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

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_client::api::{
    ContainerInspect, ContainerStatus, ContainerSummary, CreateRequest, CreateResponse,
    WaitResponse,
};
use berth_config::{CONFIG_PREFIX, ConfigFile, ConfigKey, Kv};
use berth_image::Store;
use berth_runtime::supervisor::{
    ContainerState, Request, Response, StateDir, Status, SupervisorConfig, request,
};
use berth_runtime::{
    Bundle, BundleError, ContainerDriver, HostFacts, LibcontainerDriver, SpecError, SpecInput,
    UserDb, build_spec,
};
use berth_types::ContainerId;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::error::{AgentError, Result};
use crate::launcher::Launcher;
use crate::names::generate_name;
use crate::network::{DaemonNetworks, HOSTS_FILE, NetOptions, RESOLV_FILE};
use crate::options::parse_create;
use crate::paths::Paths;
use crate::record::{BUNDLE_DIR, ContainerRecord};

mod view;

use view::{inspect, summary};

/// docker's zero time, for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The exit code reported when a supervisor vanished and the real code is unknown.
pub const UNKNOWN_EXIT: i32 = -1;
/// How long a control request may take beyond the stop timeout it carries.
const CONTROL_SLACK: Duration = Duration::from_secs(15);
/// How long a supervisor may take to resize its container's terminal.
const RESIZE_LIMIT: Duration = Duration::from_secs(5);
/// How long a supervisor may take to exit once its container is gone.
const SUPERVISOR_EXIT_LIMIT: Duration = Duration::from_secs(20);

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

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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

    // ---- create ----

    /// Creates a container: validates everything, then makes its rootfs, bundle and state
    /// directory; on any error nothing is left.
    pub fn create(self: &Arc<Self>, request: CreateRequest) -> Result<CreateResponse> {
        let mut parsed = parse_create(&request)?;
        if !parsed.services.is_empty() && self.services.get().is_none() {
            return Err(AgentError::BadRequest(
                "this daemon has no store to register services in".into(),
            ));
        }
        let config_values = self.config_values(&mut parsed)?;
        for volume in &parsed.options.volumes {
            if !volume.host().exists() {
                return Err(AgentError::BadRequest(format!(
                    "volume source {} does not exist on the host",
                    volume.host().display()
                )));
            }
        }
        let image = self
            .images
            .resolve(&request.image)
            .map_err(|err| match err {
                berth_image::Error::ImageNotFound(name) => {
                    AgentError::NotFound(format!("no such image: {name}; pull or import it first"))
                }
                berth_image::Error::AmbiguousImage { .. } => {
                    AgentError::BadRequest(err.to_string())
                }
                other => AgentError::Internal(other.to_string()),
            })?;
        let image_config = self
            .images
            .config(&image)
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let id = ContainerId::from_random_bytes(rand::random());
        let name = self.reserve_name(parsed.name.as_ref().map(|n| n.as_str().to_owned()))?;
        let made = self.make(
            &id,
            &name,
            &request,
            &parsed,
            (&image, &image_config),
            &config_values,
        );
        match made {
            Ok(record) => {
                let mut index = lock(&self.index);
                index.names.insert(name.clone(), Some(id.clone()));
                index.containers.insert(
                    id.clone(),
                    Entry {
                        record,
                        supervisor: None,
                        dead: false,
                        removing: false,
                        ops: Arc::default(),
                    },
                );
                Ok(CreateResponse {
                    id: id.as_str().to_owned(),
                    name,
                })
            }
            Err(err) => {
                self.remove_files(&id);
                lock(&self.index).names.remove(&name);
                Err(err)
            }
        }
    }

    fn reserve_name(&self, wanted: Option<String>) -> Result<String> {
        let mut index = lock(&self.index);
        let name = match wanted {
            Some(name) => {
                if let Some(owner) = index.names.get(&name) {
                    let owner = owner.as_ref().map_or("being created", |id| id.as_str());
                    return Err(AgentError::Conflict(format!(
                        "name {name} is already in use by container {owner}; remove it or pick another --name"
                    )));
                }
                name
            }
            None => {
                let mut attempt = 0;
                loop {
                    let name = generate_name(attempt);
                    if !index.names.contains_key(&name) {
                        break name;
                    }
                    attempt += 1;
                }
            }
        };
        index.names.insert(name.clone(), None);
        Ok(name)
    }

    fn make(
        &self,
        id: &ContainerId,
        name: &str,
        request: &CreateRequest,
        parsed: &crate::options::ParsedCreate,
        (image, image_config): (
            &berth_image::ImageRecord,
            &oci_spec::image::ImageConfiguration,
        ),
        config_values: &HashMap<ConfigKey, Vec<u8>>,
    ) -> Result<ContainerRecord> {
        let internal = |e: &dyn std::fmt::Display| AgentError::Internal(e.to_string());
        let dir = self.state_dir(id);
        std::fs::create_dir(dir.path()).map_err(|e| internal(&e))?;
        let mut options = parsed.options.clone();
        // The network (sandbox, CNI ADD, hosts files) and the rootfs need nothing of each
        // other: both are made at once. Whichever fails, the caller's cleanup
        // (`remove_files`) undoes both.
        let hostname = options
            .hostname
            .as_ref()
            .map_or_else(|| id.short().to_owned(), |h| h.as_str().to_owned());
        let dir_path = dir.path();
        let (made_rootfs, netns) = std::thread::scope(|scope| {
            let network = parsed.bridge.as_ref().map(|bridge| {
                let hostname = &hostname;
                scope.spawn(move || {
                    let mut bridge = bridge.clone();
                    bridge.aliases.insert(0, name.to_owned());
                    if bridge.publish_all {
                        let exposed = crate::network::exposed_ports(image_config, &bridge.ports)?;
                        bridge.ports.extend(exposed);
                    }
                    self.networks.setup(id, hostname, &bridge, dir_path)
                })
            });
            let made_rootfs = (|| -> Result<_> {
                let rootfs = self
                    .images
                    .prepare_rootfs(id.as_str(), image)
                    .map_err(|e| internal(&e))?;
                rootfs.mount().map_err(|e| internal(&e))?;
                for config in &parsed.configs {
                    let value = config_values
                        .get(&config.key)
                        .map_or(&[][..], Vec::as_slice);
                    berth_config::place::write_atomic(
                        &rootfs.target,
                        &config.target,
                        value,
                        config.mode,
                    )
                    .map_err(|e| AgentError::BadRequest(format!("config {}: {e}", config.key)))?;
                }
                let users = UserDb::load(&rootfs.target)
                    .map_err(|e| AgentError::BadRequest(e.to_string()))?;
                Ok((rootfs, users))
            })();
            let netns = network.map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(internal(&"the network setup panicked")))
            });
            (made_rootfs, netns)
        });
        let (rootfs, users) = made_rootfs?;
        if let Some(netns) = netns {
            options.network = berth_runtime::NetworkMode::Join(netns?);
            for (file, target) in [
                (HOSTS_FILE, "/etc/hosts"),
                (RESOLV_FILE, "/etc/resolv.conf"),
            ] {
                let volume = format!("{}:{target}:ro", dir.path().join(file).display());
                options
                    .volumes
                    .push(volume.parse().map_err(|e| internal(&e))?);
            }
        }
        let spec = build_spec(&SpecInput {
            id,
            rootfs: &rootfs.target,
            image: image_config.config().as_ref(),
            options: &options,
            users: &users,
            host: &self.host,
        })
        .map_err(|err| match err {
            SpecError::Oci { .. } => internal(&err),
            other => AgentError::BadRequest(other.to_string()),
        })?;
        let bundle_dir = dir.path().join(BUNDLE_DIR);
        Bundle::write(&bundle_dir, &spec).map_err(|err| match err {
            BundleError::MissingVolumeSource { .. } => AgentError::BadRequest(err.to_string()),
            other => internal(&other),
        })?;
        SupervisorConfig {
            id: id.clone(),
            bundle: bundle_dir,
            runtime_root: self.paths.runtime_root(),
            restart: parsed.restart,
            log: Default::default(),
            stop_timeout_secs: berth_runtime::supervisor::DEFAULT_STOP_TIMEOUT.as_secs(),
            stdin: request.open_stdin,
        }
        .write(&dir)
        .map_err(|e| internal(&e))?;
        let args: Vec<String> = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        let record = ContainerRecord {
            id: id.clone(),
            name: name.to_owned(),
            image: request.image.clone(),
            image_id: image.id.to_string(),
            created: now(),
            rootfs: rootfs.target.clone(),
            path: args.first().cloned().unwrap_or_default(),
            args: args.iter().skip(1).cloned().collect(),
            request: request.clone(),
        };
        record.write(dir.path()).map_err(|e| internal(&e))?;
        Ok(record)
    }

    /// Reads the values of every config key `parsed` binds (one read, so all are of one
    /// revision) and adds the environment variables they define. A missing key is a 404
    /// and nothing is made.
    fn config_values(
        &self,
        parsed: &mut crate::options::ParsedCreate,
    ) -> Result<HashMap<ConfigKey, Vec<u8>>> {
        let keys: Vec<&ConfigKey> = parsed
            .configs
            .iter()
            .map(|c| &c.key)
            .chain(parsed.config_env.iter().map(|e| &e.key))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let Some(kv) = self.config_store.get() else {
            return Err(AgentError::BadRequest(
                "this daemon has no store to read config keys from".into(),
            ));
        };
        let (_, entries) = self
            .runtime
            .block_on(kv.get(CONFIG_PREFIX.as_bytes(), true, 0))
            .map_err(|e| AgentError::Internal(format!("cannot read config keys: {e}")))?;
        let values: HashMap<ConfigKey, Vec<u8>> = entries
            .into_iter()
            .filter_map(|e| Some((ConfigKey::from_store_key(&e.key)?, e.value)))
            .collect();
        if let Some(missing) = keys.iter().find(|k| !values.contains_key(k)) {
            return Err(AgentError::NotFound(format!(
                "config key {missing} does not exist; set it first with `berth config set {missing} VALUE`"
            )));
        }
        for binding in &parsed.config_env {
            let value = std::str::from_utf8(&values[&binding.key])
                .ok()
                .filter(|v| !v.contains('\0'))
                .ok_or_else(|| {
                    AgentError::BadRequest(format!(
                        "config key {} cannot be the environment variable {}: its value is not text (UTF-8 without NUL bytes)",
                        binding.key, binding.var
                    ))
                })?;
            let var = format!("{}={value}", binding.var)
                .parse()
                .map_err(|e: berth_runtime::OptionError| AgentError::BadRequest(e.to_string()))?;
            parsed.options.env.push(var);
        }
        Ok(values)
    }

    /// Places changed config values in the containers that bind them (issue #6): for each
    /// config file whose key is in `values` and whose content differs, the value replaces
    /// the file atomically in the container's rootfs; then a running container with a
    /// `ConfigSignal` gets that signal once. Errors are logged per container.
    pub fn deliver_config(&self, values: &HashMap<ConfigKey, Vec<u8>>) {
        let entries: Vec<(ContainerId, Entry)> = lock(&self.index)
            .containers
            .iter()
            .filter(|(_, e)| !e.removing)
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        for (id, entry) in entries {
            let request = &entry.record.request;
            let mut changed = false;
            for binding in &request.configs {
                let Ok(config) = binding.parse::<ConfigFile>() else {
                    continue;
                };
                let Some(value) = values.get(&config.key) else {
                    continue;
                };
                let rootfs = &entry.record.rootfs;
                match berth_config::place::read(rootfs, &config.target) {
                    Ok(Some(current)) if current == *value => continue,
                    _ => {}
                }
                match berth_config::place::write_atomic(rootfs, &config.target, value, config.mode)
                {
                    Ok(()) => changed = true,
                    Err(err) => tracing::warn!(%id, %err, "cannot place a config value"),
                }
            }
            let Some(signal) = request.config_signal.as_ref().filter(|_| changed) else {
                continue;
            };
            if entry.supervisor.is_some_and(alive) {
                let kill = Request::Kill {
                    signal: signal.clone(),
                };
                if let Err(err) = self.control(&id, &kill, CONTROL_SLACK) {
                    tracing::warn!(%id, %err, "cannot signal a config change");
                }
            }
        }
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

    // ---- lifecycle ----

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
    fn watch(self: &Arc<Self>, id: ContainerId, pid: i32) {
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

    fn control(
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

    // ---- adoption ----

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

/// The cgroup path (relative to each hierarchy) libcontainer gives container `id`.
pub fn cgroup_path(id: &ContainerId) -> PathBuf {
    Path::new(berth_runtime::CGROUP_PARENT).join(id.as_str())
}

#[cfg(test)]
mod tests {
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
