//! [`Networks`]: the API the daemon calls. Sandboxes (a pinned network namespace per
//! container), attaching a container to a network and detaching it, with a record per
//! attachment so that [`Networks::gc`] can release what a killed daemon left behind.
//!
//! Every attach and detach holds a flock on the records directory, so port conflicts and
//! interface names are decided against a stable view. Plugins run under that lock, so
//! attachments happen one at a time per host.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use serde_json::{Value, json};

use crate::cni::{Chain, CniError, CniExec, Command, Invocation, RuntimeConfig};
use crate::dns::Zone;
use crate::fsutil::lock_dir;
use crate::portcheck::{conflicts, free_port, port_is_free};
use crate::record::{Record, Records};
use crate::{
    NetError, Network, NetworkName, NetworkStore, PortMapping, PublishedPort, Subnet, netns,
};

/// Where berth keeps its network state.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// berth's state root: `networks/`, `cni/ipam/`, `attachments/` live under it.
    pub root: PathBuf,
    /// berth's runtime directory (tmpfs): pinned namespaces live in `netns/` under it.
    pub run_dir: PathBuf,
    /// The default network's subnet when it is first created.
    pub default_subnet: Subnet,
    /// The default network's bridge when it is first created ([`crate::DEFAULT_BRIDGE`]).
    pub default_bridge: String,
}

/// What `berth run` asks of one network.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// `--ip`: a fixed address in the network's subnet.
    pub ip: Option<Ipv4Addr>,
    /// `-p`/`-P`: ports to publish; a missing host port is chosen by berth.
    pub ports: Vec<PortMapping>,
    /// `--network-alias` and the container's name: names other containers resolve it by.
    pub aliases: Vec<String>,
}

/// A container's place on one network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub container: ContainerId,
    pub network: NetworkName,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub ports: Vec<PublishedPort>,
    pub aliases: Vec<String>,
}

/// CNI_ARGS given to every plugin.
const CNI_ARGS: &str = "IgnoreUnknown=1";
/// Most networks one container may join (interfaces eth0..eth15).
const MAX_INTERFACES: usize = 16;

/// Networks, sandboxes and attachments over one CNI executor.
#[derive(Debug)]
pub struct Networks<E> {
    store: NetworkStore,
    chain: Chain<E>,
    records: Records,
    netns_dir: PathBuf,
}

impl<E: CniExec> Networks<E> {
    /// Opens the state under `config` (creating it and the default network).
    pub fn open(config: &NetConfig, exec: E) -> Result<Self, NetError> {
        Ok(Self {
            store: NetworkStore::open_with_bridge(
                &config.root,
                config.default_subnet,
                &config.default_bridge,
            )?,
            chain: Chain::new(exec),
            records: Records::open(config.root.join("attachments"))?,
            netns_dir: config.run_dir.join("netns"),
        })
    }

    /// The network definitions.
    pub fn store(&self) -> &NetworkStore {
        &self.store
    }

    /// Where a container's network namespace is pinned.
    pub fn netns_path(&self, container: &ContainerId) -> PathBuf {
        self.netns_dir.join(container.as_str())
    }

    /// Creates the container's network namespace with its loopback up; returns its path,
    /// which the runtime joins instead of creating a namespace of its own.
    pub fn create_sandbox(&self, container: &ContainerId) -> Result<PathBuf, NetError> {
        let path = self.netns_path(container);
        netns::create(&path)?;
        Ok(path)
    }

    /// Detaches the container from every network and removes its namespace.
    ///
    /// DEL runs while the namespace still exists, so the bridge plugin deletes the veth
    /// itself. (Unpinning first and letting the veth go with the namespace is faster, but
    /// anything still holding the namespace, a socket made in it for one, then keeps the
    /// veth and its address on the bridge after the lease is released: ADR 0502.)
    pub fn remove_sandbox(&self, container: &ContainerId) -> Result<(), NetError> {
        for record in self.records.of(container)? {
            self.detach(container, &record.network)?;
        }
        // No lock: nothing else writes this container's records while it is removed.
        self.records.remove_leftovers(container)?;
        netns::remove(&self.netns_path(container))
    }

    /// Attaches a container's sandbox to `network`: an address (`options.ip` or the next
    /// free one), the default route through the bridge, its published ports. Refuses an
    /// unknown network, an address outside the subnet, a host port in use; on any failure
    /// nothing is left attached.
    pub fn attach(
        &self,
        container: &ContainerId,
        network: &NetworkName,
        options: &AttachOptions,
    ) -> Result<Attachment, NetError> {
        let _lock = lock_dir(self.records.dir())?;
        let net = self.store.inspect(network)?;
        let conflist = self.store.conflist(network)?;
        match self.records.read(container, network)? {
            Some(record) if record.result.is_some() => {
                return Err(NetError::AlreadyAttached {
                    container: container.to_string(),
                    network: network.clone(),
                });
            }
            Some(stale) => {
                // An ADD that never completed (the daemon died during it): undo it first.
                self.release(&stale)?;
                self.records.remove(container, network)?;
            }
            None => {}
        }
        if let Some(ip) = options.ip
            && !net.subnet.is_assignable(ip)
        {
            return Err(NetError::IpNotInSubnet {
                ip,
                subnet: net.subnet,
                network: network.clone(),
            });
        }
        let netns = self.netns_path(container);
        if !netns::is_pinned(&netns) {
            return Err(NetError::Netns {
                path: netns,
                reason: "no sandbox for this container; create_sandbox first".to_owned(),
            });
        }
        let ports = self.publishable(&options.ports)?;
        let own = self.records.of(container)?;
        let ifname = (0..MAX_INTERFACES)
            .map(|n| format!("eth{n}"))
            .find(|name| own.iter().all(|r| r.ifname != *name))
            .ok_or_else(|| NetError::Netns {
                path: netns.clone(),
                reason: format!("already on {MAX_INTERFACES} networks"),
            })?;
        let mut record = Record::new(
            container.clone(),
            network.clone(),
            ifname,
            netns,
            options.ip,
            ports,
            options.aliases.clone(),
        );
        self.records.write(&record)?;
        let inv = self.invocation(container, Some(&record.netns), &record.ifname);
        let added = self
            .chain
            .add(&conflist, &inv, &runtime_config(&record, &net));
        let result =
            match added.and_then(|result| attachment(&record, &result, &net).map(|_| result)) {
                Ok(result) => result,
                Err(source) => {
                    // The chain has DEL'd what it added; the intent record goes too.
                    self.records.remove(container, network)?;
                    return Err(NetError::Cni {
                        network: network.clone(),
                        source,
                    });
                }
            };
        record.result = Some(result.clone());
        self.records.write(&record)?;
        let attached = attachment(&record, &result, &net).map_err(|source| NetError::Cni {
            network: network.clone(),
            source,
        })?;
        tracing::info!(container = %container.short(), network = %network, ip = %attached.ip, "attached");
        Ok(attached)
    }

    /// Detaches a container from `network`: CNI DEL of the whole chain (address lease,
    /// veth, port and firewall rules), then the record. If DEL fails the record stays, so
    /// a later detach or GC tries again.
    pub fn detach(&self, container: &ContainerId, network: &NetworkName) -> Result<(), NetError> {
        let _lock = lock_dir(self.records.dir())?;
        let record =
            self.records
                .read(container, network)?
                .ok_or_else(|| NetError::NotAttached {
                    container: container.to_string(),
                    network: network.clone(),
                })?;
        self.release(&record)?;
        self.records.remove(container, network)
    }

    /// CNI CHECK of an attachment: the plugins confirm the interface, address, routes and
    /// rules are still as ADD left them.
    pub fn check(&self, container: &ContainerId, network: &NetworkName) -> Result<(), NetError> {
        let record =
            self.records
                .read(container, network)?
                .ok_or_else(|| NetError::NotAttached {
                    container: container.to_string(),
                    network: network.clone(),
                })?;
        let net = self.store.inspect(network)?;
        let conflist = self.store.conflist(network)?;
        let prev = record.result.clone().unwrap_or(Value::Null);
        let inv = self.invocation(container, Some(&record.netns), &record.ifname);
        self.chain
            .check(&conflist, &inv, &runtime_config(&record, &net), &prev)
            .map_err(|source| NetError::Cni {
                network: network.clone(),
                source,
            })
    }

    /// The container's attachments, by network name.
    pub fn attachments(&self, container: &ContainerId) -> Result<Vec<Attachment>, NetError> {
        let mut out = Vec::new();
        for record in self.records.of(container)? {
            if let (Some(result), Ok(net)) = (&record.result, self.store.inspect(&record.network))
                && let Ok(a) = attachment(&record, result, &net)
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Containers with a record on `network`: what `network rm` must wait for.
    pub fn users(&self, network: &NetworkName) -> Result<Vec<ContainerId>, NetError> {
        Ok(self
            .records
            .all()?
            .into_iter()
            .filter(|r| r.network == *network)
            .map(|r| r.container)
            .collect())
    }

    /// Creates a network whose subnet overlaps neither another network nor a route of the
    /// host (`berth network create`).
    pub fn create_network(&self, req: crate::CreateNetwork) -> Result<Network, NetError> {
        self.store
            .create_beside(req, &crate::routes::host_routes()?)
    }

    /// The DNS zone of `network`: every attached container's aliases answer its address.
    pub fn zone(&self, network: &NetworkName, domain: Option<&str>) -> Result<Zone, NetError> {
        let mut zone = Zone::new(domain);
        for record in self.records.all()? {
            if record.network == *network {
                for attachment in self.attachments(&record.container)? {
                    if attachment.network == *network {
                        zone.add_attachment(&attachment);
                    }
                }
            }
        }
        Ok(zone)
    }

    /// Removes a network that no container is attached to, with its bridge and the
    /// firewall plugin's isolation rules for it.
    pub fn remove_network(&self, network: &NetworkName) -> Result<(), NetError> {
        let _lock = lock_dir(self.records.dir())?;
        let net = self.store.inspect(network)?;
        let users: Vec<String> = self
            .users(network)?
            .iter()
            .map(|c| c.short().to_owned())
            .collect();
        self.store.remove(network, &users)?;
        crate::teardown::remove_bridge(&net)
    }

    /// CNI DEL for a record: the result it holds, or one rebuilt from the host-local lease
    /// when the daemon died before recording it.
    pub(crate) fn release(&self, record: &Record) -> Result<(), NetError> {
        let net = match self.store.inspect(&record.network) {
            Ok(net) => net,
            Err(NetError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let conflist = self.store.conflist(&record.network)?;
        let netns = netns::is_pinned(&record.netns).then_some(record.netns.as_path());
        let inv = self.invocation(&record.container, netns, &record.ifname);
        let prev = record.result.clone().or_else(|| {
            self.leased_ip(&net, record.container.as_str())
                .map(|ip| rebuilt_result(&net, ip, &record.ifname, netns))
        });
        let mut rt = runtime_config(record, &net);
        if record.result.is_none() && rt.port_mappings.is_empty() {
            // The ports were never recorded (or the record is lost). portmap's DEL does
            // nothing without a mapping, yet removes its rules by container id whatever
            // the mapping says, so any one mapping makes it clean up.
            rt.port_mappings.push(PublishedPort {
                host_ip: None,
                host_port: 1,
                container_port: 1,
                protocol: crate::Protocol::Tcp,
            });
        }
        let own = conflist["plugins"].as_array().is_some_and(|plugins| {
            plugins.iter().all(|p| {
                p["type"] == crate::cni::bridge::PLUGIN || p["type"] == crate::cni::nat::PLUGIN
            })
        });
        let deleted = if own {
            // berth's own plugins' DELs need nothing of each other: their kernel waits
            // (the veth's teardown, the nftables commit) overlap.
            self.chain
                .del_concurrently(&conflist, &inv, &rt, prev.as_ref())
        } else {
            self.chain.del(&conflist, &inv, &rt, prev.as_ref())
        };
        deleted.map_err(|source| NetError::Cni {
            network: record.network.clone(),
            source,
        })?;
        tracing::info!(container = %record.container.short(), network = %record.network, "detached");
        Ok(())
    }

    pub(crate) fn records(&self) -> &Records {
        &self.records
    }

    pub(crate) fn netns_dir(&self) -> &Path {
        &self.netns_dir
    }

    /// The address host-local leased to `container_id` on `net`, if any.
    pub(crate) fn leased_ip(&self, net: &Network, container_id: &str) -> Option<Ipv4Addr> {
        crate::gc::leases(&self.store, net)
            .ok()?
            .into_iter()
            .find(|(_, owner)| owner == container_id)
            .map(|(ip, _)| ip)
    }

    pub(crate) fn invocation(
        &self,
        container: &ContainerId,
        netns: Option<&Path>,
        ifname: &str,
    ) -> Invocation {
        Invocation {
            container_id: container.to_string(),
            netns: netns.map(Path::to_owned),
            ifname: ifname.to_owned(),
            args: CNI_ARGS.to_owned(),
        }
    }

    /// Resolves missing host ports and refuses ports taken by another attachment or by a
    /// host socket.
    fn publishable(&self, mappings: &[PortMapping]) -> Result<Vec<PublishedPort>, NetError> {
        let taken: Vec<(PublishedPort, ContainerId)> = self
            .records
            .all()?
            .into_iter()
            .flat_map(|r| r.ports.into_iter().map(move |p| (p, r.container.clone())))
            .collect();
        let mut out: Vec<PublishedPort> = Vec::new();
        for mapping in mappings {
            let host_port = match mapping.host_port {
                Some(port) => port,
                None => free_port(mapping.host_ip, mapping.protocol)
                    .map_err(|_| NetError::NoFreePort(*mapping))?,
            };
            let port = PublishedPort {
                host_ip: mapping.host_ip,
                host_port,
                container_port: mapping.container_port,
                protocol: mapping.protocol,
            };
            if let Some((_, by)) = taken.iter().find(|(p, _)| conflicts(p, &port)) {
                return Err(NetError::PortInUse {
                    mapping: *mapping,
                    by: Some(by.short().to_owned()),
                });
            }
            let free = port_is_free(port.host_ip, port.host_port, port.protocol).unwrap_or(false);
            if !free || out.iter().any(|p| conflicts(p, &port)) {
                return Err(NetError::PortInUse {
                    mapping: port.mapping(),
                    by: None,
                });
            }
            out.push(port);
        }
        Ok(out)
    }
}

fn runtime_config(record: &Record, net: &Network) -> RuntimeConfig {
    RuntimeConfig {
        port_mappings: record.ports.clone(),
        ips: record
            .requested_ip
            .map(|ip| vec![format!("{ip}/{}", net.subnet.prefix())])
            .unwrap_or_default(),
    }
}

/// A minimal CNI result for DEL when the ADD result was never recorded: the address the
/// lease names, on the container's interface, behind the network's bridge.
fn rebuilt_result(net: &Network, ip: Ipv4Addr, ifname: &str, netns: Option<&Path>) -> Value {
    let sandbox = netns
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "cniVersion": crate::network::CNI_VERSION,
        "interfaces": [
            {"name": net.bridge},
            {"name": ifname, "sandbox": sandbox},
        ],
        "ips": [{
            "address": format!("{ip}/{}", net.subnet.prefix()),
            "gateway": net.gateway().to_string(),
            "interface": 1,
        }],
    })
}

/// The attachment a CNI ADD result describes: its first IPv4 address and that interface.
fn attachment(record: &Record, result: &Value, net: &Network) -> Result<Attachment, CniError> {
    let bad = |reason: &str| CniError::BadResult {
        plugin: "bridge".to_owned(),
        command: Command::Add,
        reason: reason.to_owned(),
    };
    let ips = result["ips"].as_array().ok_or_else(|| bad("no ips"))?;
    let (ip, prefix, entry) = ips
        .iter()
        .find_map(|entry| {
            let (ip, prefix) = entry["address"].as_str()?.split_once('/')?;
            Some((
                ip.parse::<Ipv4Addr>().ok()?,
                prefix.parse::<u8>().ok()?,
                entry,
            ))
        })
        .ok_or_else(|| bad("no IPv4 address"))?;
    let gateway = entry["gateway"]
        .as_str()
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| net.gateway());
    let mac = entry["interface"]
        .as_u64()
        .and_then(|i| result["interfaces"].get(usize::try_from(i).ok()?))
        .and_then(|iface| iface["mac"].as_str())
        .unwrap_or_default()
        .to_owned();
    Ok(Attachment {
        container: record.container.clone(),
        network: record.network.clone(),
        ifname: record.ifname.clone(),
        ip,
        prefix,
        gateway,
        mac,
        ports: record.ports.clone(),
        aliases: record.aliases.clone(),
    })
}

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
