//! The daemon's side of bridged networking (issue #5, docs/adr/0501-networking-cni.md):
//! berth-net's [`Networks`] opened under the daemon's root and run dir, one sandbox per
//! bridged container made at create and removed with the container, the `/etc/hosts` and
//! `/etc/resolv.conf` files bind-mounted into it, and one DNS server per network on its
//! gateway, fed with the names and aliases of the network's containers and sharing the
//! daemon's service table (`NAME.service.berth`, kept by [`crate::service_dns`]).
//!
//! Blocking: every method runs CNI plugins or touches files; callers on the async runtime
//! use `spawn_blocking`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_client::api::{EndpointSettings, NetworkInspect, NetworkSettings, PortBinding};
use berth_net::cni::PluginExec;
use berth_net::dns::{DnsServer, Services, SharedServices};
use berth_net::{
    AttachOptions, Attachment, CreateNetwork, NetConfig, NetError, Network, NetworkName, Networks,
    PortMapping, Subnet,
};
use berth_types::ContainerId;

use crate::error::{AgentError, Result};

/// How the daemon's networking is set up (`berth daemon --subnet --bridge --cni-path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// The default network's subnet when it is first created.
    pub default_subnet: Subnet,
    /// The default network's bridge when it is first created.
    pub bridge: String,
    /// Where the CNI plugins are.
    pub cni_path: PathBuf,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            default_subnet: berth_net::DEFAULT_SUBNET
                .parse()
                .unwrap_or_else(|_| unreachable!("the default subnet parses")),
            bridge: berth_net::DEFAULT_BRIDGE.to_owned(),
            cni_path: PathBuf::from("/usr/lib/cni"),
        }
    }
}

/// What a create asks of a bridged network, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRequest {
    pub network: NetworkName,
    pub ports: Vec<PortMapping>,
    /// `-P`: the image's exposed ports are added to `ports` (on free host ports) at create.
    pub publish_all: bool,
    pub ip: Option<Ipv4Addr>,
    /// `--network-alias`; the container's name is added at create.
    pub aliases: Vec<String>,
}

/// The files a bridged container gets, in its state directory.
pub const HOSTS_FILE: &str = "hosts";
pub const RESOLV_FILE: &str = "resolv.conf";

/// The daemon's networks and the DNS servers of those in use.
#[derive(Debug)]
pub struct DaemonNetworks {
    nets: Networks<PluginExec>,
    dns: Mutex<HashMap<NetworkName, DnsServer>>,
    /// The services every DNS server answers, written by the store watch.
    services: SharedServices,
}

pub fn net_error(err: NetError) -> AgentError {
    match err {
        NetError::NotFound(_) => AgentError::NotFound(err.to_string()),
        NetError::Exists(_)
        | NetError::Overlap { .. }
        | NetError::HostRouteOverlap { .. }
        | NetError::BridgeTaken { .. }
        | NetError::DefaultNetwork(_)
        | NetError::InUse { .. }
        | NetError::PortInUse { .. }
        | NetError::AlreadyAttached { .. } => AgentError::Conflict(err.to_string()),
        NetError::IpNotInSubnet { .. } | NetError::InvalidBridge(_) | NetError::PoolExhausted => {
            AgentError::BadRequest(err.to_string())
        }
        other => AgentError::Internal(other.to_string()),
    }
}

impl DaemonNetworks {
    /// Opens the network state under the daemon's root and run dir (making the default
    /// network's definition if it is missing).
    pub fn open(root: &Path, run_dir: &Path, options: &NetOptions) -> Result<Self> {
        let config = NetConfig {
            root: root.to_owned(),
            run_dir: run_dir.to_owned(),
            default_subnet: options.default_subnet,
            default_bridge: options.bridge.clone(),
        };
        let nets = Networks::open(&config, PluginExec::new(vec![options.cni_path.clone()]))
            .map_err(|e| AgentError::Internal(format!("cannot open the networks: {e}")))?;
        Ok(Self {
            nets,
            dns: Mutex::default(),
            services: Services::new(berth_config::SERVICE_DOMAIN).shared(),
        })
    }

    /// The service table all of the daemon's DNS servers answer from.
    pub fn services(&self) -> SharedServices {
        std::sync::Arc::clone(&self.services)
    }

    /// Releases what containers that no longer exist left: records, leases, veths, rules,
    /// namespaces (after a daemon kill -9). Errors are logged.
    pub fn gc(&self, exists: &dyn Fn(&ContainerId) -> bool) {
        match self.nets.gc(exists) {
            Ok(report) => {
                for (id, network) in &report.detached {
                    tracing::info!(%id, %network, "released a removed container's attachment");
                }
                for error in &report.errors {
                    tracing::warn!(%error, "network gc");
                }
            }
            Err(err) => tracing::warn!(%err, "network gc failed"),
        }
    }

    /// Makes `id`'s sandbox, attaches it and writes its hosts and resolv.conf files into
    /// `dir`; returns the namespace path. On error nothing is left (the caller's cleanup
    /// calls [`DaemonNetworks::release`] too, which is idempotent).
    pub fn setup(
        &self,
        id: &ContainerId,
        hostname: &str,
        request: &BridgeRequest,
        dir: &Path,
    ) -> Result<PathBuf> {
        let made = self.setup_inner(id, hostname, request, dir);
        if made.is_err() {
            self.release(id);
        }
        made
    }

    fn setup_inner(
        &self,
        id: &ContainerId,
        hostname: &str,
        request: &BridgeRequest,
        dir: &Path,
    ) -> Result<PathBuf> {
        // Refuse an unknown network before any namespace is made.
        self.nets
            .store()
            .inspect(&request.network)
            .map_err(net_error)?;
        let netns = self.nets.create_sandbox(id).map_err(net_error)?;
        let attachment = self
            .nets
            .attach(
                id,
                &request.network,
                &AttachOptions {
                    ip: request.ip,
                    ports: request.ports.clone(),
                    aliases: request.aliases.clone(),
                },
            )
            .map_err(net_error)?;
        let hosts = berth_net::hosts::hosts_for(hostname, std::slice::from_ref(&attachment), &[]);
        let resolv = berth_net::hosts::resolv_conf(&[attachment.gateway], &[], &[]);
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .map_err(|e| AgentError::Internal(format!("cannot write {name}: {e}")))
        };
        write(HOSTS_FILE, &hosts)?;
        write(RESOLV_FILE, &resolv)?;
        self.refresh_dns(&attachment.network, Some(attachment.gateway));
        Ok(netns)
    }

    /// Detaches `id` from its networks and removes its sandbox; errors are logged (this runs
    /// on cleanup paths, and GC retries at the next start).
    pub fn release(&self, id: &ContainerId) {
        let networks: Vec<NetworkName> = self
            .nets
            .attachments(id)
            .map(|a| a.into_iter().map(|a| a.network).collect())
            .unwrap_or_default();
        if let Err(err) = self.nets.remove_sandbox(id) {
            tracing::warn!(%id, %err, "cannot release the container's network");
        }
        for network in networks {
            self.refresh_dns(&network, None);
        }
    }

    /// Rebuilds `network`'s DNS zone from its attachments; starts its server on the gateway
    /// when there is none yet and a container is attached. An idle server keeps running
    /// until `network rm` (or the daemon's end).
    fn refresh_dns(&self, network: &NetworkName, gateway: Option<Ipv4Addr>) {
        let zone = match self.nets.zone(network, None) {
            Ok(zone) => zone,
            Err(err) => {
                tracing::warn!(%network, %err, "cannot read the network's names");
                return;
            }
        };
        let users = self.nets.users(network).unwrap_or_default();
        let mut servers = self.dns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = servers.get(network) {
            server.update(|z| *z = zone);
            return;
        }
        // A server stays when its network's last container leaves (stopping one waits for
        // its thread's poll, on every `rm`); `network rm` stops it.
        if users.is_empty() {
            return;
        }
        let Some(gateway) =
            gateway.or_else(|| self.nets.store().inspect(network).ok().map(|n| n.gateway()))
        else {
            return;
        };
        let addr = SocketAddrV4::new(gateway, 53);
        match DnsServer::bind_with_services(addr, zone, self.services()) {
            Ok(server) => {
                servers.insert(network.clone(), server);
            }
            Err(err) => tracing::warn!(%network, %gateway, %err, "cannot serve DNS"),
        }
    }

    /// Starts the DNS servers of the networks containers are attached to (daemon start).
    pub fn start_dns(&self) {
        if let Ok(networks) = self.nets.store().list() {
            for network in networks {
                self.refresh_dns(&network.name, None);
            }
        }
    }

    /// `inspect`'s `NetworkSettings` of `id`.
    pub fn settings(&self, id: &ContainerId) -> NetworkSettings {
        let mut settings = NetworkSettings::default();
        for attachment in self.nets.attachments(id).unwrap_or_default() {
            settings.ports.extend(ports_of(&attachment));
            settings.networks.insert(
                attachment.network.to_string(),
                EndpointSettings {
                    ip_address: attachment.ip.to_string(),
                    ip_prefix_len: attachment.prefix,
                    gateway: attachment.gateway.to_string(),
                    mac_address: attachment.mac.clone(),
                    aliases: attachment.aliases.clone(),
                },
            );
        }
        settings
    }

    pub fn list(&self) -> Result<Vec<NetworkInspect>> {
        let networks = self.nets.store().list().map_err(net_error)?;
        networks.iter().map(|n| self.describe(n)).collect()
    }

    pub fn inspect(&self, name: &str) -> Result<NetworkInspect> {
        let name = parse_name(name)?;
        let network = self.nets.store().inspect(&name).map_err(net_error)?;
        self.describe(&network)
    }

    pub fn create(
        &self,
        name: &str,
        subnet: Option<&str>,
        bridge: Option<&str>,
    ) -> Result<NetworkInspect> {
        let name = parse_name(name)?;
        let subnet = subnet
            .map(|s| {
                s.parse::<Subnet>()
                    .map_err(|e| AgentError::BadRequest(format!("invalid Subnet: {e}")))
            })
            .transpose()?;
        let network = self
            .nets
            .create_network(CreateNetwork {
                name,
                subnet,
                bridge: bridge.map(str::to_owned),
            })
            .map_err(net_error)?;
        self.describe(&network)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        let name = parse_name(name)?;
        self.nets.remove_network(&name).map_err(net_error)?;
        let server = self
            .dns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        drop(server);
        Ok(())
    }

    fn describe(&self, network: &Network) -> Result<NetworkInspect> {
        let containers = self.nets.users(&network.name).map_err(net_error)?;
        Ok(NetworkInspect {
            name: network.name.to_string(),
            driver: "bridge".into(),
            bridge: network.bridge.clone(),
            subnet: network.subnet.to_string(),
            gateway: network.gateway().to_string(),
            containers: containers.iter().map(|c| c.as_str().to_owned()).collect(),
        })
    }
}

/// `-P`: a mapping on a free host port for every port of the image's `ExposedPorts`
/// (`80/tcp`, `53/udp`, or `80` for tcp) not already published by `-p`.
pub fn exposed_ports(
    image: &oci_spec::image::ImageConfiguration,
    published: &[PortMapping],
) -> Result<Vec<PortMapping>> {
    let exposed = image
        .config()
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    let mut ports = Vec::new();
    for spec in exposed {
        let mappings = PortMapping::parse_spec(&spec).map_err(|e| {
            AgentError::BadRequest(format!("the image exposes {spec:?}, not a port: {e}"))
        })?;
        for mapping in mappings {
            let taken = published.iter().chain(&ports).any(|p: &PortMapping| {
                p.container_port == mapping.container_port && p.protocol == mapping.protocol
            });
            if !taken {
                ports.push(PortMapping {
                    host_ip: None,
                    host_port: None,
                    ..mapping
                });
            }
        }
    }
    Ok(ports)
}

fn parse_name(name: &str) -> Result<NetworkName> {
    name.parse()
        .map_err(|e| AgentError::BadRequest(format!("invalid network name: {e}")))
}

fn ports_of(attachment: &Attachment) -> Vec<PortBinding> {
    attachment
        .ports
        .iter()
        .map(|p| PortBinding {
            host_ip: p
                .host_ip
                .map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string()),
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: p.protocol.to_string(),
        })
        .collect()
}
