//! A network definition and its CNI configuration list.
//!
//! Every berth network is the same chain: `berth-bridge` (berth's own, in process,
//! [`crate::cni::bridge`]: the host bridge is the gateway, addresses leased in host-local's
//! layout under berth's root) and `berth-nat`
//! (berth's own plugin, [`crate::cni::nat`]: outbound masquerade, published ports from the
//! `portMappings` capability, isolation between networks, all in nftables in one
//! transaction). Networks written by earlier versions chain Debian's `bridge` (with
//! `host-local`), and before that `portmap` and `firewall` (and `ipMasq` on the bridge);
//! they keep working, as would any chain a user writes. The conflist on disk is the source of truth: [`Network::from_conflist`]
//! reads back what [`Network::to_conflist`] wrote.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{Value, json};

use crate::{NetworkName, Subnet};

/// The CNI version berth's configurations and results speak.
pub const CNI_VERSION: &str = "1.0.0";

/// A berth network: its name, host bridge and subnet (the gateway is the subnet's first host).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Network {
    pub name: NetworkName,
    pub bridge: String,
    pub subnet: Subnet,
}

impl Network {
    /// The bridge's address, the containers' default route.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }

    /// The CNI conflist for this network; host-local keeps its leases in
    /// `<ipam_dir>/<network name>/`.
    pub fn to_conflist(&self, ipam_dir: &Path) -> Value {
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.name.as_str(),
            "plugins": [
                {
                    "type": crate::cni::bridge::PLUGIN,
                    "bridge": self.bridge,
                    "hairpinMode": true,
                    "capabilities": { "ips": true },
                    "ipam": {
                        "ranges": [[{
                            "subnet": self.subnet.to_string(),
                            "gateway": self.gateway().to_string(),
                        }]],
                        "dataDir": ipam_dir.to_string_lossy(),
                    },
                },
                {
                    "type": crate::cni::nat::PLUGIN,
                    "capabilities": { "portMappings": true },
                    "bridge": self.bridge,
                    "subnet": self.subnet.to_string(),
                },
            ],
        })
    }

    /// Reads a network back from a conflist berth wrote; `Err` says what is missing.
    pub fn from_conflist(conflist: &Value) -> Result<Self, String> {
        let name: NetworkName = conflist["name"]
            .as_str()
            .ok_or("no \"name\"")?
            .parse()
            .map_err(|e| format!("{e}"))?;
        let bridge_plugin = conflist["plugins"]
            .as_array()
            .and_then(|plugins| {
                plugins
                    .iter()
                    .find(|p| p["type"] == "bridge" || p["type"] == crate::cni::bridge::PLUGIN)
            })
            .ok_or("no bridge plugin")?;
        let bridge = bridge_plugin["bridge"]
            .as_str()
            .ok_or("bridge plugin has no \"bridge\"")?;
        let subnet: Subnet = bridge_plugin["ipam"]["ranges"][0][0]["subnet"]
            .as_str()
            .ok_or("bridge plugin has no ipam subnet")?
            .parse()
            .map_err(|e| format!("{e}"))?;
        Ok(Self {
            name,
            bridge: bridge.to_owned(),
            subnet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_round_trips_and_names_the_plugin_chain() {
        let net = Network {
            name: NetworkName::default_network(),
            bridge: "berth0".to_owned(),
            subnet: "10.88.0.0/16".parse().expect("subnet"),
        };
        let conflist = net.to_conflist(Path::new("/var/lib/berth/cni/ipam"));
        let types: Vec<_> = conflist["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .map(|p| p["type"].as_str().expect("type"))
            .collect();
        assert_eq!(types, ["berth-bridge", "berth-nat"]);
        assert_eq!(
            conflist["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.88.0.1"
        );
        assert_eq!(
            conflist["plugins"][0]["ipam"]["dataDir"],
            "/var/lib/berth/cni/ipam"
        );
        assert_eq!(Network::from_conflist(&conflist), Ok(net));
    }

    #[test]
    fn a_foreign_conflist_is_refused_with_the_reason() {
        let err = Network::from_conflist(&json!({"name": "x", "plugins": []})).unwrap_err();
        assert_eq!(err, "no bridge plugin");
    }
}
