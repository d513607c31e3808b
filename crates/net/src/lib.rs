//! berth's container networking, as a library the daemon calls.
//!
//! What it is for: every container gets its own network namespace (a *sandbox*, pinned
//! under berth's run directory) attached to one or more *networks*. A network is a CNI
//! configuration list (berth's own `berth-bridge`, [`cni::bridge`], and `berth-nat`,
//! [`cni::nat`], both run in process; Debian's plugins for chains that name them) stored
//! under berth's root; the CNI plugins do the kernel work. The default network `berth` (bridge `berth0`,
//! 10.88.0.0/16) exists from the first start.
//!
//! What it guarantees:
//! - inputs are parsed into validated types ([`Subnet`], [`PortMapping`], [`NetworkName`])
//!   with errors that say what is wrong;
//! - network subnets never overlap, bridges are never shared, the default network is never
//!   removed and a network in use is not removed;
//! - a failed attach leaves nothing behind (the CNI chain is DEL'd, its record removed);
//! - every attachment has a record written before its CNI ADD, so [`Networks::gc`] can
//!   release addresses, veths, rules and namespaces of containers that no longer exist,
//!   after a daemon crash too;
//! - host ports are checked free before publishing.
//!
//! How the daemon uses it:
//!
//! ```no_run
//! use berth_net::cni::PluginExec;
//! use berth_net::{AttachOptions, NetConfig, NetworkName, Networks, PortMapping};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = NetConfig {
//!     root: "/var/lib/berth".into(),
//!     run_dir: "/run/berth".into(),
//!     default_subnet: berth_net::DEFAULT_SUBNET.parse()?,
//!     default_bridge: berth_net::DEFAULT_BRIDGE.to_owned(),
//! };
//! let nets = Networks::open(&config, PluginExec::default())?;
//! // At start: release what containers that no longer run left behind.
//! nets.gc(&|_id| false)?;
//! // `berth run -p 8080:80 --network-alias web`:
//! let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".parse()?;
//! let netns = nets.create_sandbox(&id)?; // the runtime joins this namespace
//! let options = AttachOptions {
//!     ports: PortMapping::parse_spec("8080:80")?,
//!     aliases: vec!["web".to_owned()],
//!     ..AttachOptions::default()
//! };
//! let attachment = nets.attach(&id, &NetworkName::default_network(), &options)?;
//! println!("{} at {} in {}", id.short(), attachment.ip, netns.display());
//! // `berth rm`:
//! nets.remove_sandbox(&id)?;
//! # Ok(())
//! # }
//! ```
//!
//! The effect boundary is [`cni::CniExec`] (real: [`cni::PluginExec`]; fake:
//! [`cni::FakeExec`]); namespaces are made by [`netns`] with real syscalls.
//!
//! [`dns`] is the per-network DNS server (A records for names and aliases, no forwarding);
//! [`hosts`] writes the `/etc/hosts` and `resolv.conf` that point at it.
//!
//! The daemon's wiring (sandbox at create, DNS server per network, the files bind-mounted
//! into containers, GC at start) is `berth_agent::network`.
//!
//! Not done yet (issue #5): DNS over TCP, AAAA and forwarding, IPv6 networks, cross-host
//! subnets leased from the store.

mod attach;
pub mod cni;
pub mod dns;
mod error;
mod fsutil;
mod gc;
pub mod hosts;
mod name;
pub mod netns;
mod network;
mod port;
pub mod portcheck;
mod record;
pub mod routes;
mod rtnl;
mod store;
mod subnet;
mod teardown;

pub use attach::{AttachOptions, Attachment, NetConfig, Networks};
pub use error::NetError;
pub use gc::GcReport;
pub use name::{NetworkName, NetworkNameError};
pub use network::{CNI_VERSION, Network};
pub use port::{PortError, PortMapping, Protocol, PublishedPort};
pub use store::{CreateNetwork, DEFAULT_BRIDGE, DEFAULT_SUBNET, NetworkStore};
pub use subnet::{Subnet, SubnetError};
