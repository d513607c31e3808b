//! Service registration (issue #6, docs/adr/0602-services.md): a container run with
//! `--service NAME[:PORT]` is an [`Endpoint`] at `/berth/services/NAME/<id>` in the store
//! while it may take traffic — it runs and, when it has a health check, its last check
//! passed — and its key is deleted at once otherwise.
//!
//! - One lease per daemon ([`Services`]), granted with the daemon's `--service-ttl` and
//!   renewed every third of it by the keeper task. Every endpoint is put with that lease, so
//!   a dead daemon's (or host's) endpoints vanish when the lease expires. A lease the store
//!   no longer has (it expired while the store or the daemon was away) is replaced, and every
//!   endpoint wanted is put again with the new one.
//! - One monitor task per running container with services or a health check: it follows
//!   the container's `state.json` (restarts under a restart policy included), runs the
//!   health checks ([`crate::health`]) and registers or deregisters.
//! - Stop, kill, exit and removal deregister through [`Services::retire`] before anything
//!   else, and a retired container cannot be registered again until it starts again: no
//!   check finishing late can put a stopped container back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_client::api::{ContainerStatus, Health, HealthStatus};
use berth_config::{Endpoint, EndpointHealth, Kv, KvError, LeaseId, ServiceSpec};
use berth_runtime::supervisor::{ContainerState, Status};
use berth_types::ContainerId;

use crate::health::{HealthCheck, HealthState, Target, probe};
use crate::manager::ContainerManager;

/// The daemon's default `--service-ttl` (the 10 s).
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// How often a monitor reads its container's state between checks when inotify does not
/// tell it of a change (with inotify, this is only a safety net).
const POLL: Duration = Duration::from_millis(200);
const POLL_WATCHED: Duration = Duration::from_secs(1);
/// The shortest pause of the keeper (a tiny TTL must not spin).
const MIN_KEEP_ALIVE: Duration = Duration::from_millis(200);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The endpoints the daemon wants in the store, and its lease.
#[derive(Debug, Default)]
struct Registry {
    lease: Option<LeaseId>,
    /// Every wanted key and its value.
    wanted: BTreeMap<String, Vec<u8>>,
    /// The keys of each container.
    keys: HashMap<ContainerId, Vec<String>>,
    /// Keys whose delete failed (the store was away); retried by the keeper, since the
    /// lease would keep them alive.
    undeleted: HashSet<String>,
    /// A put failed: the keeper puts everything again.
    dirty: bool,
    /// The supervisor pid each monitored container may register under; a retired container
    /// is not here.
    allowed: HashMap<ContainerId, i32>,
}

/// The daemon's registrations and health checks.
#[derive(Debug)]
pub struct Services {
    kv: Kv,
    ttl: Duration,
    host: String,
    registry: tokio::sync::Mutex<Registry>,
    health: Mutex<HashMap<ContainerId, HealthState>>,
}

fn lease_lost(err: &KvError) -> bool {
    matches!(err, KvError::Store(message) if message.contains("lease not found"))
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Services {
    /// Registrations in the store of `kv` under a lease of `ttl`, naming `host`; the keeper
    /// task starts on the current runtime.
    pub fn start(kv: Kv, ttl: Duration, host: String) -> Arc<Self> {
        let services = Arc::new(Self {
            kv,
            ttl,
            host,
            registry: tokio::sync::Mutex::default(),
            health: Mutex::default(),
        });
        let keeper = Arc::clone(&services);
        tokio::spawn(async move { keeper.keep().await });
        services
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The health of container `id`, when it has a check that has started.
    pub fn health(&self, id: &ContainerId) -> Option<Health> {
        lock(&self.health).get(id).map(HealthState::to_api)
    }

    fn set_health(&self, id: &ContainerId, state: HealthState) {
        lock(&self.health).insert(id.clone(), state);
    }

    /// Forgets container `id`'s health (it was removed).
    pub fn forget(&self, id: &ContainerId) {
        lock(&self.health).remove(id);
    }

    /// The keeper: grants the lease, renews it, replaces it when lost, and puts again what
    /// could not be put.
    async fn keep(self: Arc<Self>) {
        let pause = (self.ttl / 3).max(MIN_KEEP_ALIVE);
        let mut last_error = String::new();
        loop {
            let lease = self.registry.lock().await.lease;
            let outcome = match lease {
                None => match self.kv.grant_lease(self.ttl).await {
                    Ok(lease) => {
                        tracing::info!(lease, ttl = ?self.ttl, "service lease granted");
                        let mut registry = self.registry.lock().await;
                        registry.lease = Some(lease);
                        registry.dirty = true;
                        Ok(())
                    }
                    Err(err) => Err(err),
                },
                Some(lease) => match self.kv.keep_alive(lease).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(KvError::Store("lease not found".into())),
                    Err(err) => Err(err),
                },
            };
            match outcome {
                Ok(()) => {
                    last_error.clear();
                    self.flush().await;
                }
                Err(err) if lease_lost(&err) => {
                    tracing::warn!(
                        "the service lease expired; granting a new one and registering again"
                    );
                    let mut registry = self.registry.lock().await;
                    if registry.lease == lease {
                        registry.lease = None;
                    }
                    continue;
                }
                Err(err) => {
                    let text = err.to_string();
                    if text != last_error {
                        tracing::warn!(%err, "service lease: the store did not answer");
                        last_error = text;
                    }
                }
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Puts every wanted endpoint again when a put failed or the lease is new, and retries
    /// failed deletes.
    async fn flush(&self) {
        let mut registry = self.registry.lock().await;
        let Some(lease) = registry.lease else { return };
        if registry.dirty {
            let mut failed = false;
            for (key, value) in &registry.wanted {
                if let Err(err) = self.kv.put_with_lease(key.as_bytes(), value, lease).await {
                    tracing::warn!(%key, %err, "cannot register a service endpoint");
                    failed = true;
                    if lease_lost(&err) {
                        registry.lease = None;
                        break;
                    }
                }
            }
            registry.dirty = failed;
        }
        let undeleted: Vec<String> = registry.undeleted.iter().cloned().collect();
        for key in undeleted {
            if self.kv.delete(key.as_bytes(), false).await.is_ok() {
                registry.undeleted.remove(&key);
            }
        }
    }

    /// Lets container `id` register while supervisor `pid` runs it.
    async fn allow(&self, id: &ContainerId, pid: i32) -> bool {
        let mut registry = self.registry.lock().await;
        match registry.allowed.get(id) {
            Some(current) if *current == pid => false,
            _ => {
                registry.allowed.insert(id.clone(), pid);
                true
            }
        }
    }

    /// Puts container `id`'s endpoints (replacing what it had), unless it was retired since
    /// supervisor `pid` started it.
    async fn register(&self, id: &ContainerId, pid: i32, endpoints: Vec<Endpoint>) {
        let mut registry = self.registry.lock().await;
        if registry.allowed.get(id) != Some(&pid) {
            return;
        }
        let keys: Vec<String> = endpoints.iter().map(Endpoint::store_key).collect();
        for old in registry.keys.remove(id).unwrap_or_default() {
            if !keys.contains(&old) {
                registry.wanted.remove(&old);
                if self.kv.delete(old.as_bytes(), false).await.is_err() {
                    registry.undeleted.insert(old);
                }
            }
        }
        for endpoint in &endpoints {
            let key = endpoint.store_key();
            let value = endpoint.to_json();
            registry.undeleted.remove(&key);
            registry.wanted.insert(key.clone(), value.clone());
            match registry.lease {
                Some(lease) => {
                    if let Err(err) = self.kv.put_with_lease(key.as_bytes(), &value, lease).await {
                        tracing::warn!(%key, %err, "cannot register a service endpoint; retrying");
                        registry.dirty = true;
                        if lease_lost(&err) {
                            registry.lease = None;
                        }
                    }
                }
                // The keeper puts it with the lease once it has one.
                None => registry.dirty = true,
            }
        }
        registry.keys.insert(id.clone(), keys);
    }

    /// Deletes container `id`'s endpoints; with `retire`, it may not register again until a
    /// new supervisor runs it.
    async fn unregister(&self, id: &ContainerId, retire: bool) {
        let mut registry = self.registry.lock().await;
        if retire {
            registry.allowed.remove(id);
        }
        for key in registry.keys.remove(id).unwrap_or_default() {
            registry.wanted.remove(&key);
            if let Err(err) = self.kv.delete(key.as_bytes(), false).await {
                tracing::warn!(%key, %err, "cannot delete a service endpoint; retrying");
                registry.undeleted.insert(key);
            }
        }
    }

    /// Deletes the endpoints of container `id`, which is stopping, exiting or being removed;
    /// nothing registers it again until it starts again.
    pub async fn retire(&self, id: &ContainerId) {
        self.unregister(id, true).await;
    }

    /// Deletes endpoints `keys` left by an earlier daemon for a container that does not run
    /// now (they would otherwise live until that daemon's lease expires).
    pub async fn delete_stale(&self, keys: Vec<String>) {
        let mut registry = self.registry.lock().await;
        for key in keys {
            if registry.wanted.contains_key(&key) {
                continue;
            }
            if self.kv.delete(key.as_bytes(), false).await.is_err() {
                registry.undeleted.insert(key);
            }
        }
    }

    /// Starts the monitor of container `id` run by supervisor `pid`, when it has services
    /// or a health check (once per supervisor). `adopted`: the container ran before this
    /// daemon started, so its first check runs at once.
    pub fn monitor(
        self: &Arc<Self>,
        manager: &Arc<ContainerManager>,
        id: ContainerId,
        pid: i32,
        adopted: bool,
    ) {
        let Ok(view) = manager.view(id.as_str()) else {
            return;
        };
        let request = &view.record.request;
        let specs: Vec<ServiceSpec> = request
            .services
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let check =
            match HealthCheck::from_config(request.healthcheck.as_ref(), &request.host_config) {
                Ok(check) => check,
                Err(err) => {
                    tracing::warn!(%id, %err, "ignoring the container's health check");
                    None
                }
            };
        if specs.is_empty() && check.is_none() {
            return;
        }
        if check.is_some() && !adopted {
            // `starting` from the moment it runs, before the monitor's first look.
            self.set_health(&id, HealthState::default());
        }
        let services = Arc::clone(self);
        let manager = Arc::clone(manager);
        tokio::spawn(async move {
            if !services.allow(&id, pid).await {
                return;
            }
            let monitor = Monitor {
                services: Arc::clone(&services),
                manager,
                id: id.clone(),
                pid,
                specs,
                check,
            };
            monitor.run(adopted).await;
            services.unregister(&id, false).await;
            let mut registry = services.registry.lock().await;
            if registry.allowed.get(&id) == Some(&pid) {
                registry.allowed.remove(&id);
            }
        });
    }
}

/// Wakes a monitor when the supervisor replaces `state.json` (a rename into the state
/// directory), so an exit under a restart policy deregisters at once, not at the next poll.
struct StateChanges(tokio::io::unix::AsyncFd<InotifyFd>);

/// An inotify instance as tokio's `AsyncFd` wants it.
struct InotifyFd(nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.0))
    }
}

impl StateChanges {
    /// `None` when inotify is not available (the monitor then polls).
    fn watch(dir: &std::path::Path) -> Option<Self> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        inotify.add_watch(dir, AddWatchFlags::IN_MOVED_TO).ok()?;
        // SAFETY: the `Inotify` owns its fd, which stays open and the same until the
        // AsyncFd (which owns the `Inotify`) is dropped.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(inotify),
                tokio::io::Interest::READABLE,
            )
        };
        registered.ok().map(Self)
    }

    /// Waits until the directory changed or `limit` passed, and forgets the events.
    async fn wait(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            if let Ok(mut guard) = self.0.readable().await {
                while matches!(self.0.get_ref().0.read_events(), Ok(events) if !events.is_empty()) {
                }
                guard.clear_ready();
            }
        })
        .await;
    }
}

/// One running container's follower.
struct Monitor {
    services: Arc<Services>,
    manager: Arc<ContainerManager>,
    id: ContainerId,
    pid: i32,
    specs: Vec<ServiceSpec>,
    check: Option<HealthCheck>,
}

impl Monitor {
    fn still_ours(&self) -> bool {
        self.manager.supervisor_of(&self.id) == Some(self.pid)
    }

    fn state(&self) -> Option<ContainerState> {
        let dir =
            berth_runtime::supervisor::StateDir::new(&self.manager.paths().container(&self.id));
        ContainerState::read(&dir.state()).ok()
    }

    async fn run(&self, adopted: bool) {
        let mut run: Option<String> = None;
        let mut run_start = Instant::now();
        let mut next_check = Instant::now();
        let mut first = adopted;
        let mut health = HealthState::default();
        let changes = StateChanges::watch(&self.manager.paths().container(&self.id));
        let poll = if changes.is_some() {
            POLL_WATCHED
        } else {
            POLL
        };
        let changes = changes.as_ref();
        let pause = |limit: Duration| async move {
            match changes {
                Some(changes) => changes.wait(limit).await,
                None => tokio::time::sleep(limit).await,
            }
        };
        loop {
            if !self.still_ours() {
                return;
            }
            let state = self.state();
            let running = state
                .as_ref()
                .is_some_and(|s| s.status == Status::Running && s.pid.is_some());
            if !running {
                if run.take().is_some() {
                    self.services.unregister(&self.id, false).await;
                    if self.check.is_some() {
                        health = HealthState::default();
                        self.services.set_health(&self.id, health.clone());
                    }
                }
                pause(poll).await;
                continue;
            }
            let started_at = state.and_then(|s| s.started_at).unwrap_or_default();
            if run.as_ref() != Some(&started_at) {
                // A new run: the first, or a restart under the restart policy.
                run = Some(started_at);
                run_start = Instant::now();
                match &self.check {
                    Some(check) => {
                        health = HealthState::default();
                        self.services.set_health(&self.id, health.clone());
                        next_check = if first {
                            Instant::now()
                        } else {
                            Instant::now() + check.interval
                        };
                    }
                    None => self.register(EndpointHealth::None).await,
                }
                first = false;
            }
            if let Some(check) = &self.check
                && Instant::now() >= next_check
            {
                let dir = self.manager.paths().container(&self.id);
                let target = self.target();
                let result = probe(check, self.manager.launcher(), &dir, target).await;
                next_check = Instant::now() + check.interval;
                let in_start_period = run_start.elapsed() < check.start_period;
                let before = health.status;
                health.record(result, check.retries, in_start_period);
                self.services.set_health(&self.id, health.clone());
                if !self.still_ours() {
                    return;
                }
                match health.status {
                    HealthStatus::Healthy if before != HealthStatus::Healthy => {
                        self.register(EndpointHealth::Healthy).await;
                    }
                    HealthStatus::Unhealthy if before != HealthStatus::Unhealthy => {
                        tracing::info!(id = %self.id, "container is unhealthy; deregistered");
                        self.services.unregister(&self.id, false).await;
                    }
                    _ => {}
                }
            }
            let wait = match &self.check {
                Some(_) => next_check
                    .saturating_duration_since(Instant::now())
                    .min(poll),
                None => poll,
            };
            pause(wait).await;
        }
    }

    /// Where TCP and HTTP checks connect.
    fn target(&self) -> Option<Target> {
        let view = self.manager.view(self.id.as_str()).ok()?;
        if view.record.request.host_config.network_mode.as_deref() == Some("host") {
            return Some(Target {
                address: std::net::Ipv4Addr::LOCALHOST,
            });
        }
        let settings = self.manager.networks().settings(&self.id);
        let address = settings.networks.values().next()?.ip_address.parse().ok()?;
        Some(Target { address })
    }

    async fn register(&self, health: EndpointHealth) {
        if self.specs.is_empty() {
            return;
        }
        let Ok(view) = self.manager.view(self.id.as_str()) else {
            return;
        };
        if view.status != ContainerStatus::Running {
            return;
        }
        let settings = self.manager.networks().settings(&self.id);
        let network = settings.networks.iter().next();
        let endpoints = self
            .specs
            .iter()
            .map(|spec| Endpoint {
                service: spec.name.clone(),
                container_id: self.id.as_str().to_owned(),
                container_name: view.record.name.trim_start_matches('/').to_owned(),
                host: self.services.host.clone(),
                address: network.and_then(|(_, n)| n.ip_address.parse().ok()),
                network: network.map(|(name, _)| name.clone()),
                port: spec.port,
                host_port: spec.port.and_then(|port| {
                    settings
                        .ports
                        .iter()
                        .find(|p| p.container_port == port && p.protocol == "tcp")
                        .map(|p| p.host_port)
                }),
                health,
            })
            .collect();
        self.services.register(&self.id, self.pid, endpoints).await;
    }
}
