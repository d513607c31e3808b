//! The daemon's shell: one daemon per root (a flock), re-adoption of the containers found
//! there, and the API served on `<run-dir>/berth.sock` (mode 0600) until shutdown.
//! Containers keep running when the daemon stops: they belong to their supervisors.

use std::fs::{File, OpenOptions};
use std::future::{Future, IntoFuture};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;

use crate::launcher::Launcher;
use crate::manager::ContainerManager;
use crate::network::NetOptions;
use crate::paths::Paths;
use crate::server::router;

/// How long requests under way may take to finish once shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The longest path a unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// What a supervisor's socket path adds to the root: `/containers/<64 hex>/control.sock`.
const SOCKET_SUFFIX: usize = "/containers/".len() + 64 + "/control.sock".len();

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another berth daemon is running with root {root} (it holds {lock}); stop it first, or use another --root"
    )]
    AlreadyRunning { root: PathBuf, lock: PathBuf },
    #[error(
        "root {root} is too long ({len} bytes): the supervisors' sockets under it would not fit a unix socket address; use a root of at most {max} bytes"
    )]
    RootTooLong {
        root: PathBuf,
        len: usize,
        max: usize,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Agent(#[from] crate::error::AgentError),
}

fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_owned();
    move |source| DaemonError::Io {
        action,
        path,
        source,
    }
}

/// A daemon that owns its root and has adopted its containers, ready to serve.
#[derive(Debug)]
pub struct Daemon {
    manager: Arc<ContainerManager>,
    listener: UnixListener,
    _lock: Flock<File>,
}

impl Daemon {
    /// Takes the root's lock, adopts every container (docs/adr/0013) and binds the socket
    /// (replacing a stale one). Call within a tokio runtime.
    pub async fn start(paths: Paths, launcher: Arc<dyn Launcher>) -> Result<Self, DaemonError> {
        Self::start_with_network(paths, launcher, NetOptions::default()).await
    }

    /// [`Daemon::start`] with the daemon's network settings (`--subnet`, `--bridge`,
    /// `--cni-path`); after adoption, the network state of containers that no longer exist
    /// is released and the DNS servers of networks in use are started.
    pub async fn start_with_network(
        paths: Paths,
        launcher: Arc<dyn Launcher>,
        net: NetOptions,
    ) -> Result<Self, DaemonError> {
        std::fs::create_dir_all(&paths.root).map_err(io("create", &paths.root))?;
        let root = paths
            .root
            .canonicalize()
            .map_err(io("resolve", &paths.root))?;
        let len = root.as_os_str().len();
        if len + SOCKET_SUFFIX > MAX_SOCKET_PATH {
            return Err(DaemonError::RootTooLong {
                root,
                len,
                max: MAX_SOCKET_PATH - SOCKET_SUFFIX,
            });
        }
        let lock_path = paths.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            DaemonError::AlreadyRunning {
                root: paths.root.clone(),
                lock: lock_path.clone(),
            }
        })?;
        std::fs::create_dir_all(&paths.run_dir).map_err(io("create", &paths.run_dir))?;
        let manager = ContainerManager::with_network(paths.clone(), launcher, &net)?;
        let adopting = Arc::clone(&manager);
        tokio::task::spawn_blocking(move || {
            adopting.adopt_all()?;
            let containers = adopting.paths().containers();
            adopting
                .networks()
                .gc(&|id| containers.join(id.as_str()).exists());
            adopting.networks().start_dns();
            Ok::<_, crate::error::AgentError>(())
        })
        .await
        .map_err(|err| crate::error::AgentError::Internal(err.to_string()))??;
        std::fs::create_dir_all(&paths.run_dir).map_err(io("create", &paths.run_dir))?;
        let socket = paths.socket();
        // We hold the root's lock, so a socket left here is a killed daemon's.
        match std::fs::remove_file(&socket) {
            Ok(()) => tracing::info!(socket = %socket.display(), "replaced a stale socket"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io("remove", &socket)(err)),
        }
        let listener = UnixListener::bind(&socket).map_err(io("bind", &socket))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod", &socket))?;
        Ok(Self {
            manager,
            listener,
            _lock: lock,
        })
    }

    /// Shares configuration through the store at `endpoints` (issue #6): creates read config
    /// keys from it, a task keeps the containers' config files in sync with it, and another
    /// keeps the DNS servers' service table (`NAME.service.berth`) in sync with its endpoints.
    pub async fn share_config(&self, endpoints: &[String]) -> Result<(), DaemonError> {
        let kv = berth_config::Kv::connect(endpoints)
            .await
            .map_err(|e| crate::error::AgentError::Internal(e.to_string()))?;
        self.manager.set_config_store(kv.clone());
        crate::config_sync::spawn(Arc::clone(&self.manager), kv.clone());
        crate::service_dns::spawn(self.manager.networks().services(), kv);
        Ok(())
    }

    /// Registers the containers run with `--service` in the store at `endpoints` under a
    /// lease of `ttl`, and runs health checks (issue #6, docs/adr/0602-services.md). The
    /// running containers are registered again (under this daemon's lease); the endpoints a
    /// killed daemon left for containers that no longer run are deleted.
    pub async fn register_services(
        &self,
        endpoints: &[String],
        ttl: Duration,
    ) -> Result<(), DaemonError> {
        let kv = berth_config::Kv::connect(endpoints)
            .await
            .map_err(|e| crate::error::AgentError::Internal(e.to_string()))?;
        let services = crate::services::Services::start(kv, ttl, crate::services::host_name());
        self.manager.set_services(Arc::clone(&services));
        let stale: Vec<String> = self
            .manager
            .records()
            .into_iter()
            .filter(|(_, supervisor)| supervisor.is_none())
            .flat_map(|(record, _)| {
                let id = record.id.as_str().to_owned();
                record
                    .request
                    .services
                    .iter()
                    .filter_map(|s| s.parse::<berth_config::ServiceSpec>().ok())
                    .map(|spec| spec.name.endpoint_key(&id))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !stale.is_empty() {
            tokio::spawn(async move { services.delete_stale(stale).await });
        }
        Ok(())
    }

    pub fn manager(&self) -> &Arc<ContainerManager> {
        &self.manager
    }

    /// Serves the API until `shutdown` completes, then stops accepting and returns once the
    /// requests under way have finished, or after [`SHUTDOWN_GRACE`] at the latest: a
    /// `logs --follow` or `wait` client never finishes by itself and must not keep the daemon
    /// up. The socket file is removed; containers keep running.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        let socket = self.manager.paths().socket();
        let (asked_tx, asked_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = asked_tx.send(());
        };
        let server = axum::serve(self.listener, router(Arc::clone(&self.manager)))
            .with_graceful_shutdown(signal)
            .into_future();
        let grace_over = async move {
            match asked_rx.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                // The signal future is gone only with the server, which has returned.
                Err(_) => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            served = server => served.map_err(io("serve on", &socket)),
            () = grace_over => {
                tracing::info!("requests still under way after {SHUTDOWN_GRACE:?}; leaving them");
                Ok(())
            }
        };
        let _ = std::fs::remove_file(&socket);
        result
    }
}
