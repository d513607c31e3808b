//! The network store: one CNI conflist per network under `<root>/networks/<name>.conflist`.
//!
//! Writes are atomic (temporary file, fsync, rename) and serialized by a flock on
//! `<root>/networks/.lock`, so two `network create` calls cannot both take one subnet. The
//! default network `berth` (bridge `berth0`, 10.88.0.0/16 unless configured otherwise) is
//! created on open and cannot be removed. The store does not know which containers use a
//! network: [`NetworkStore::remove`] asks its caller.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fsutil::{ensure_dir, lock_dir, write_atomic};
use crate::routes::HostRoute;
use crate::{NetError, Network, NetworkName, Subnet};

/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// The default network's subnet unless the daemon is configured with another.
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";
/// Subnets for networks created without `--subnet`: 10.89.N.0/24, the first free N.
const POOL_FIRST: Ipv4Octets = [10, 89, 0, 0];
const POOL_SIZE: u8 = 255;
/// Longest Linux interface name.
const IFNAME_MAX: usize = 15;

type Ipv4Octets = [u8; 4];

/// What `berth network create` asks for; unset fields are chosen by the store.
#[derive(Debug, Clone)]
pub struct CreateNetwork {
    pub name: NetworkName,
    pub subnet: Option<Subnet>,
    pub bridge: Option<String>,
}

/// The directory of network definitions.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
    ipam_dir: PathBuf,
}

impl NetworkStore {
    /// Opens the store under `root` (creating it) and makes sure the default network exists,
    /// with `default_subnet` if it is created now.
    pub fn open(root: &Path, default_subnet: Subnet) -> Result<Self, NetError> {
        Self::open_with_bridge(root, default_subnet, DEFAULT_BRIDGE)
    }

    /// Opens the store as [`open`](Self::open) does, creating the default network on
    /// `default_bridge` (test daemons use their own bridge so they never share `berth0`).
    pub fn open_with_bridge(
        root: &Path,
        default_subnet: Subnet,
        default_bridge: &str,
    ) -> Result<Self, NetError> {
        let store = Self {
            dir: root.join("networks"),
            ipam_dir: root.join("cni").join("ipam"),
        };
        ensure_dir(&store.dir)?;
        ensure_dir(&store.ipam_dir)?;
        let name = NetworkName::default_network();
        if !store.path(&name).exists() {
            match store.create(CreateNetwork {
                name,
                subnet: Some(default_subnet),
                bridge: Some(default_bridge.to_owned()),
            }) {
                Ok(_) | Err(NetError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(store)
    }

    /// Where host-local keeps its leases: `<dir>/<network>/<ip>` holds the container id.
    pub fn ipam_dir(&self) -> &Path {
        &self.ipam_dir
    }

    fn path(&self, name: &NetworkName) -> PathBuf {
        self.dir.join(format!("{name}.conflist"))
    }

    /// Creates a network, refusing an existing name, an overlapping subnet or a bridge
    /// another network uses.
    pub fn create(&self, req: CreateNetwork) -> Result<Network, NetError> {
        self.create_beside(req, &[])
    }

    /// Creates a network as [`create`](Self::create) does, also refusing (or, when picking
    /// a subnet, avoiding) the host's own `routes` on interfaces that are not berth bridges.
    pub fn create_beside(
        &self,
        req: CreateNetwork,
        routes: &[HostRoute],
    ) -> Result<Network, NetError> {
        let bridge = req.bridge.as_deref().map(validate_bridge).transpose()?;
        let _lock = lock_dir(&self.dir)?;
        if self.path(&req.name).exists() {
            return Err(NetError::Exists(req.name));
        }
        let existing = self.list()?;
        let routes: Vec<&HostRoute> = routes
            .iter()
            .filter(|r| existing.iter().all(|n| n.bridge != r.iface))
            .collect();
        let subnet = match req.subnet {
            Some(subnet) => {
                if let Some(route) = routes.iter().find(|r| r.overlaps(&subnet)) {
                    return Err(NetError::HostRouteOverlap {
                        subnet,
                        iface: route.iface.clone(),
                        destination: route.destination,
                        prefix: route.prefix,
                    });
                }
                if let Some(other) = existing.iter().find(|n| n.subnet.overlaps(&subnet)) {
                    return Err(NetError::Overlap {
                        subnet,
                        other: other.name.clone(),
                        other_subnet: other.subnet,
                    });
                }
                subnet
            }
            None => free_subnet(&existing, &routes)?,
        };
        let bridge = match bridge {
            Some(bridge) => {
                if let Some(other) = existing.iter().find(|n| n.bridge == bridge) {
                    return Err(NetError::BridgeTaken {
                        bridge,
                        other: other.name.clone(),
                    });
                }
                bridge
            }
            None => free_bridge(&existing),
        };
        let network = Network {
            name: req.name,
            bridge,
            subnet,
        };
        let conflist = network.to_conflist(&self.ipam_dir);
        let bytes = serde_json::to_vec_pretty(&conflist).unwrap_or_default();
        write_atomic(&self.path(&network.name), &bytes)?;
        tracing::info!(network = %network.name, subnet = %network.subnet, bridge = %network.bridge, "network created");
        Ok(network)
    }

    /// Every network, sorted by name.
    pub fn list(&self) -> Result<Vec<Network>, NetError> {
        let entries = fs::read_dir(&self.dir).map_err(NetError::io("read", &self.dir))?;
        let mut networks = Vec::new();
        for entry in entries {
            let path = entry.map_err(NetError::io("read", &self.dir))?.path();
            if path.extension().is_some_and(|e| e == "conflist") {
                networks.push(Network::from_conflist(&read_conflist(&path)?).map_err(
                    |reason| NetError::Corrupt {
                        path: path.clone(),
                        reason,
                    },
                )?);
            }
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    /// One network's definition.
    pub fn inspect(&self, name: &NetworkName) -> Result<Network, NetError> {
        let path = self.path(name);
        Network::from_conflist(&self.conflist(name)?)
            .map_err(|reason| NetError::Corrupt { path, reason })
    }

    /// One network's CNI conflist, as handed to the plugins.
    pub fn conflist(&self, name: &NetworkName) -> Result<Value, NetError> {
        let path = self.path(name);
        if !path.exists() {
            return Err(NetError::NotFound(name.clone()));
        }
        read_conflist(&path)
    }

    /// Removes a network unless it is the default one or `users` (the containers attached to
    /// it, as the caller knows them) is not empty.
    pub fn remove(&self, name: &NetworkName, users: &[String]) -> Result<(), NetError> {
        if *name == NetworkName::default_network() {
            return Err(NetError::DefaultNetwork(name.clone()));
        }
        let _lock = lock_dir(&self.dir)?;
        let path = self.path(name);
        if !path.exists() {
            return Err(NetError::NotFound(name.clone()));
        }
        if !users.is_empty() {
            return Err(NetError::InUse {
                name: name.clone(),
                users: users.to_vec(),
            });
        }
        fs::remove_file(&path).map_err(NetError::io("remove", &path))?;
        let leases = self.ipam_dir.join(name.as_str());
        if leases.exists() {
            fs::remove_dir_all(&leases).map_err(NetError::io("remove", &leases))?;
        }
        tracing::info!(network = %name, "network removed");
        Ok(())
    }
}

fn read_conflist(path: &Path) -> Result<Value, NetError> {
    let bytes = fs::read(path).map_err(NetError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| NetError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn validate_bridge(bridge: &str) -> Result<String, NetError> {
    let ok = !bridge.is_empty()
        && bridge.len() <= IFNAME_MAX
        && bridge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(bridge.to_owned())
    } else {
        Err(NetError::InvalidBridge(bridge.to_owned()))
    }
}

fn free_subnet(existing: &[Network], routes: &[&HostRoute]) -> Result<Subnet, NetError> {
    let [a, b, _, _] = POOL_FIRST;
    (0..POOL_SIZE)
        .filter_map(|c| Subnet::new([a, b, c, 0].into(), 24).ok())
        .find(|s| {
            existing.iter().all(|n| !n.subnet.overlaps(s)) && routes.iter().all(|r| !r.overlaps(s))
        })
        .ok_or(NetError::PoolExhausted)
}

/// The first `berthN` no network of this store uses and no link of the host has (another
/// daemon's bridge, on the same host, is not to be shared).
fn free_bridge(existing: &[Network]) -> String {
    (1u32..)
        .map(|n| format!("berth{n}"))
        .find(|b| {
            existing.iter().all(|n| n.bridge != *b) && !Path::new("/sys/class/net").join(b).exists()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, NetworkStore) {
        let root = tempfile::tempdir().expect("tempdir");
        let store =
            NetworkStore::open(root.path(), DEFAULT_SUBNET.parse().expect("subnet")).expect("open");
        (root, store)
    }

    fn create(store: &NetworkStore, name: &str, subnet: Option<&str>) -> Result<Network, NetError> {
        store.create(CreateNetwork {
            name: name.parse().expect("name"),
            subnet: subnet.map(|s| s.parse().expect("subnet")),
            bridge: None,
        })
    }

    #[test]
    fn the_default_network_exists_and_cannot_be_removed() {
        let (_root, store) = open();
        let default = store
            .inspect(&NetworkName::default_network())
            .expect("default");
        assert_eq!(default.bridge, "berth0");
        assert_eq!(default.subnet.to_string(), "10.88.0.0/16");
        assert!(matches!(
            store.remove(&NetworkName::default_network(), &[]),
            Err(NetError::DefaultNetwork(_))
        ));
    }

    #[test]
    fn create_list_inspect_remove() {
        let (root, store) = open();
        let a = create(&store, "a", Some("10.200.0.0/24")).expect("a");
        let b = create(&store, "b", None).expect("b");
        assert_eq!(b.subnet.to_string(), "10.89.0.0/24");
        assert_eq!((a.bridge.as_str(), b.bridge.as_str()), ("berth1", "berth2"));
        let names: Vec<_> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|n| n.name.to_string())
            .collect();
        assert_eq!(names, ["a", "b", "berth"]);
        assert!(root.path().join("networks/a.conflist").exists());
        store.remove(&a.name, &[]).expect("remove");
        assert!(matches!(store.inspect(&a.name), Err(NetError::NotFound(_))));
        assert!(matches!(
            store.remove(&a.name, &[]),
            Err(NetError::NotFound(_))
        ));
    }

    #[test]
    fn overlapping_subnets_and_taken_names_are_refused_and_leave_nothing() {
        let (_root, store) = open();
        let err = create(&store, "a", Some("10.88.5.0/24")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 10.88.5.0/24 overlaps subnet 10.88.0.0/16 of network berth"
        );
        assert!(matches!(
            store.inspect(&"a".parse().expect("name")),
            Err(NetError::NotFound(_))
        ));
        create(&store, "a", Some("10.200.0.0/24")).expect("a");
        assert!(matches!(
            create(&store, "a", Some("10.201.0.0/24")),
            Err(NetError::Exists(_))
        ));
        let err = store
            .create(CreateNetwork {
                name: "c".parse().expect("name"),
                subnet: None,
                bridge: Some("berth0".to_owned()),
            })
            .unwrap_err();
        assert!(matches!(err, NetError::BridgeTaken { .. }), "{err}");
        let err = store
            .create(CreateNetwork {
                name: "c".parse().expect("name"),
                subnet: None,
                bridge: Some("a-bridge-name-too-long".to_owned()),
            })
            .unwrap_err();
        assert!(matches!(err, NetError::InvalidBridge(_)), "{err}");
        assert_eq!(store.list().expect("list").len(), 2);
    }

    #[test]
    fn host_routes_are_refused_or_avoided_but_berths_own_bridges_are_not_host_routes() {
        let (_root, store) = open();
        let route = |iface: &str, net: [u8; 4], prefix| HostRoute {
            iface: iface.to_owned(),
            destination: net.into(),
            prefix,
        };
        let routes = [
            route("eth0", [10, 89, 0, 0], 24),
            route("berth0", [10, 88, 0, 0], 16),
        ];
        let req = |name: &str, subnet: Option<&str>| CreateNetwork {
            name: name.parse().expect("name"),
            subnet: subnet.map(|s| s.parse().expect("subnet")),
            bridge: None,
        };
        let err = store
            .create_beside(req("a", Some("10.89.0.128/25")), &routes)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 10.89.0.128/25 overlaps the host's route to 10.89.0.0/24 on eth0"
        );
        let picked = store.create_beside(req("b", None), &routes).expect("b");
        assert_eq!(picked.subnet.to_string(), "10.89.1.0/24");
    }

    #[test]
    fn a_network_in_use_is_not_removed() {
        let (_root, store) = open();
        let a = create(&store, "a", None).expect("a");
        let err = store.remove(&a.name, &["web".to_owned()]).unwrap_err();
        assert_eq!(err.to_string(), "network a is in use by web");
        assert!(store.inspect(&a.name).is_ok());
    }
}
