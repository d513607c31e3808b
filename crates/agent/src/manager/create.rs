//! Creating a container: its name reserved first, then its network and rootfs (made at once),
//! spec, bundle, supervisor config and record; any error after the name is reserved removes
//! everything made.

use std::collections::HashMap;
use std::sync::Arc;

use berth_client::api::{CreateRequest, CreateResponse};
use berth_config::ConfigKey;
use berth_runtime::supervisor::SupervisorConfig;
use berth_runtime::{Bundle, BundleError, SpecError, SpecInput, UserDb, build_spec};
use berth_types::ContainerId;

use super::{ContainerManager, Entry, lock, now};
use crate::error::{AgentError, Result};
use crate::names::generate_name;
use crate::network::{HOSTS_FILE, RESOLV_FILE};
use crate::options::parse_create;
use crate::record::{BUNDLE_DIR, ContainerRecord};

impl ContainerManager {
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
}
