//! `berth-bridge`: berth's own CNI plugin for a container's place on a bridge, done in
//! process with rtnetlink ([`crate::rtnl`]) instead of exec'ing Debian's `bridge` plugin,
//! which execs `host-local` in turn (docs/adr/0503-in-process-bridge-plugin.md).
//!
//! ADD: the bridge (made if missing, with the gateway's address, up; IPv4 forwarding on),
//! an address leased in host-local's on-disk layout ([`super::ipam`]), a veth pair whose
//! host end `bv<hash of container id and ifname>` is enslaved to the bridge with hairpin
//! mode and whose peer is made directly in the container's namespace as `CNI_IFNAME`, the
//! address and the default route through the gateway on it (unless the container already has
//! one, from its first network). The result has the same shape
//! as `bridge`'s (interfaces bridge, host veth, container interface; the address on the
//! last), so `berth-nat` and berth's records read it alike.
//!
//! DEL: the host end of the veth is deleted by its name (derived, so it needs neither the
//! namespace nor a result; deleting one end deletes both), then the lease is released, in
//! that order, so an address is never free while an interface still holds it. What is
//! already gone is not an error.
//!
//! Config: `bridge`, `hairpinMode`, `mtu` (optional), and `ipam` with host-local's
//! `ranges` (the first range's `subnet` and `gateway`) and `dataDir`; `runtimeConfig.ips`
//! (capability `ips`) asks for a fixed address.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Invocation;
use super::ipam::{LeaseError, Leases};
use super::nat::Failure;
use crate::rtnl::Rtnl;

/// The plugin's `type`.
pub const PLUGIN: &str = "berth-bridge";
const SUPPORTED_VERSIONS: [&str; 2] = ["0.4.0", "1.0.0"];
const CODE_VERSION: u64 = 1;
const CODE_ENV: u64 = 4;
const CODE_DECODE: u64 = 6;
const CODE_CONFIG: u64 = 7;
/// berth-bridge's own codes (the spec leaves 100 and up to plugins): the kernel or the
/// lease directory refused a step.
pub const CODE_KERNEL: u64 = 101;
/// No address could be leased: a wanted one outside the range or taken, or none left.
const CODE_IPAM: u64 = 102;

/// What one invocation is about.
#[derive(Debug)]
struct Request {
    cni_version: String,
    name: String,
    bridge: String,
    subnet: (Ipv4Addr, u8),
    gateway: Ipv4Addr,
    hairpin: bool,
    data_dir: PathBuf,
    wanted: Option<Ipv4Addr>,
    container_id: String,
    ifname: String,
    netns: Option<PathBuf>,
}

fn failure(code: u64, msg: impl Into<String>) -> Failure {
    Failure {
        code,
        msg: msg.into(),
        details: String::new(),
    }
}

fn kernel(what: &str, e: impl std::fmt::Display) -> Failure {
    failure(CODE_KERNEL, format!("{what}: {e}"))
}

fn lease_failure(e: LeaseError) -> Failure {
    match e {
        LeaseError::Io(..) => failure(CODE_KERNEL, e.to_string()),
        other => failure(CODE_IPAM, other.to_string()),
    }
}

/// Runs the plugin for `command` (`ADD`, `DEL`, `CHECK`, `VERSION`): returns its stdout.
pub fn invoke(command: &str, inv: &Invocation, config: &[u8]) -> Result<Vec<u8>, Failure> {
    if command == "VERSION" {
        return Ok(serde_json::to_vec(&json!({
            "cniVersion": "1.0.0",
            "supportedVersions": SUPPORTED_VERSIONS,
        }))
        .unwrap_or_default());
    }
    let req = parse(inv, config)?;
    match command {
        "ADD" => add(&req),
        "DEL" => del(&req).map(|()| Vec::new()),
        "CHECK" => check(&req).map(|()| Vec::new()),
        other => Err(failure(
            CODE_ENV,
            format!("unknown CNI_COMMAND {other:?} (ADD, DEL, CHECK or VERSION)"),
        )),
    }
}

/// Runs the plugin as a process (the `berth` binary invoked as `berth-bridge`).
pub fn main_from_env() -> i32 {
    super::nat::run_as_process(invoke)
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| (8..=30).contains(p))?;
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(ip) & mask), prefix))
}

fn is_plain_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn parse(inv: &Invocation, config: &[u8]) -> Result<Request, Failure> {
    let conf: Value = serde_json::from_slice(config)
        .map_err(|e| failure(CODE_DECODE, format!("the config is not JSON: {e}")))?;
    let cni_version = conf["cniVersion"].as_str().unwrap_or_default().to_owned();
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(failure(
            CODE_VERSION,
            format!(
                "cniVersion {cni_version:?} is not supported (use one of {SUPPORTED_VERSIONS:?})"
            ),
        ));
    }
    let name = conf["name"].as_str().unwrap_or_default().to_owned();
    if !is_plain_name(&name, 128) {
        return Err(failure(
            CODE_CONFIG,
            format!("network \"name\" {name:?} must be letters, digits, '_', '.' or '-'"),
        ));
    }
    let bridge = conf["bridge"].as_str().unwrap_or_default().to_owned();
    if !is_plain_name(&bridge, 15) {
        return Err(failure(
            CODE_CONFIG,
            format!(
                "\"bridge\" {bridge:?} is not an interface name (1-15 letters, digits, '_', '.', '-')"
            ),
        ));
    }
    let range = &conf["ipam"]["ranges"][0][0];
    let subnet_text = range["subnet"].as_str().unwrap_or_default();
    let subnet = parse_cidr(subnet_text).ok_or_else(|| {
        failure(
            CODE_CONFIG,
            format!(
                "ipam.ranges[0][0].subnet {subnet_text:?} is not an IPv4 CIDR with a prefix of 8 to 30, such as 10.88.0.0/16"
            ),
        )
    })?;
    let first_host = Ipv4Addr::from(u32::from(subnet.0) + 1);
    let gateway = match range["gateway"].as_str() {
        None => first_host,
        Some(g) => g.parse().map_err(|_| {
            failure(
                CODE_CONFIG,
                format!("ipam.ranges[0][0].gateway {g:?} is not an IPv4 address"),
            )
        })?,
    };
    let data_dir = conf["ipam"]["dataDir"]
        .as_str()
        .filter(|d| d.starts_with('/'))
        .ok_or_else(|| {
            failure(
                CODE_CONFIG,
                "ipam.dataDir must be an absolute directory for the address leases",
            )
        })?
        .into();
    let wanted = match conf["runtimeConfig"]["ips"]
        .as_array()
        .and_then(|a| a.first())
    {
        None => None,
        Some(ip) => {
            let text = ip.as_str().unwrap_or_default();
            let addr = text.split_once('/').map_or(text, |(a, _)| a);
            Some(addr.parse::<Ipv4Addr>().map_err(|_| {
                failure(
                    CODE_CONFIG,
                    format!("runtimeConfig.ips entry {ip} is not an IPv4 address"),
                )
            })?)
        }
    };
    for (what, value, max) in [
        ("CNI_CONTAINERID", &inv.container_id, 128),
        ("CNI_IFNAME", &inv.ifname, 15),
    ] {
        if !is_plain_name(value, max) {
            return Err(failure(
                CODE_ENV,
                format!("{what} {value:?} must be 1-{max} letters, digits, '_', '.' or '-'"),
            ));
        }
    }
    Ok(Request {
        cni_version,
        name,
        bridge,
        subnet,
        gateway,
        hairpin: conf["hairpinMode"].as_bool().unwrap_or(false),
        data_dir,
        wanted,
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
        netns: inv.netns.clone(),
    })
}

impl Request {
    /// The range addresses are leased from: the subnet's hosts but the gateway (which is
    /// skipped when met, as it is usually the first).
    fn range(&self) -> (Ipv4Addr, Ipv4Addr) {
        let network = u32::from(self.subnet.0);
        let broadcast = network | (u32::MAX >> self.subnet.1);
        let first = if network + 1 == u32::from(self.gateway) {
            network + 2
        } else {
            network + 1
        };
        (Ipv4Addr::from(first), Ipv4Addr::from(broadcast - 1))
    }

    fn leases(&self) -> Leases {
        Leases::new(&self.data_dir, &self.name)
    }

    /// The host end of the container's veth: `bv` and 12 hex digits of a hash of the
    /// container id and interface name (FNV-1a), so DEL finds it without any result.
    fn host_veth(&self) -> String {
        let hash = fnv1a(
            self.container_id
                .bytes()
                .chain([0])
                .chain(self.ifname.bytes()),
        );
        format!("bv{:012x}", hash >> 16)
    }

    /// A bridge's own MAC address: locally administered, unicast, from a hash of its name.
    fn bridge_mac(&self) -> [u8; 6] {
        let hash = fnv1a(self.bridge.bytes()).to_be_bytes();
        [0x02, hash[0], hash[1], hash[2], hash[3], hash[4]]
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bridge, made and addressed if needed, up; returns its index and MAC.
fn ensure_bridge(rtnl: &mut Rtnl, req: &Request) -> Result<(u32, String), Failure> {
    let (index, mac) = match rtnl
        .link(&req.bridge)
        .map_err(|e| kernel("looking up the bridge", e))?
    {
        Some(found) => found,
        None => {
            match rtnl.add_bridge(&req.bridge, req.bridge_mac()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(kernel(&format!("creating bridge {}", req.bridge), e)),
            }
            rtnl.link(&req.bridge)
                .map_err(|e| kernel("looking up the bridge", e))?
                .ok_or_else(|| kernel("creating the bridge", "it vanished"))?
        }
    };
    let addresses = rtnl
        .addresses(index)
        .map_err(|e| kernel("listing the bridge's addresses", e))?;
    if !addresses.iter().any(|(ip, _)| *ip == req.gateway) {
        match rtnl.add_address(index, req.gateway, req.subnet.1) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(kernel(
                    &format!("adding the gateway {} to {}", req.gateway, req.bridge),
                    e,
                ));
            }
        }
    }
    rtnl.set_up(index, None)
        .map_err(|e| kernel("setting the bridge up", e))?;
    let forward = Path::new("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read_to_string(forward)
        .map(|s| s.trim() != "1")
        .unwrap_or(true)
    {
        std::fs::write(forward, "1").map_err(|e| kernel("enabling IPv4 forwarding", e))?;
    }
    Ok((index, mac))
}

fn add(req: &Request) -> Result<Vec<u8>, Failure> {
    let netns = req
        .netns
        .clone()
        .ok_or_else(|| failure(CODE_ENV, "ADD needs CNI_NETNS, the container's namespace"))?;
    let ns_file = File::open(&netns)
        .map_err(|e| failure(CODE_ENV, format!("CNI_NETNS {}: {e}", netns.display())))?;
    let mut rtnl = Rtnl::open().map_err(|e| kernel("opening rtnetlink", e))?;
    let (bridge_index, bridge_mac) = ensure_bridge(&mut rtnl, req)?;
    let ip = req
        .leases()
        .lease(req.range(), &req.container_id, &req.ifname, req.wanted)
        .map_err(lease_failure)?;
    let host = req.host_veth();
    let made = (|| -> Result<(String, String), Failure> {
        match rtnl.add_veth(&host, &req.ifname, ns_file.as_raw_fd()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Left by an ADD that never finished (or the name is in the namespace):
                // start over once.
                rtnl.del_link(&host)
                    .map_err(|e| kernel(&format!("deleting the stale {host}"), e))?;
                rtnl.add_veth(&host, &req.ifname, ns_file.as_raw_fd())
                    .map_err(|e| kernel(&format!("creating veth {host}/{}", req.ifname), e))?;
            }
            Err(e) => return Err(kernel(&format!("creating veth {host}/{}", req.ifname), e)),
        }
        let (host_index, host_mac) = rtnl
            .link(&host)
            .map_err(|e| kernel("looking up the veth", e))?
            .ok_or_else(|| kernel("creating the veth", "it vanished"))?;
        rtnl.set_up(host_index, Some(bridge_index))
            .map_err(|e| kernel(&format!("attaching {host} to {}", req.bridge), e))?;
        if req.hairpin {
            let knob = format!("/sys/class/net/{host}/brport/hairpin_mode");
            std::fs::write(&knob, "1").map_err(|e| kernel(&format!("writing {knob}"), e))?;
        }
        let (ifname, gateway, prefix) = (req.ifname.clone(), req.gateway, req.subnet.1);
        let mac = crate::netns::run_in(&netns, move || -> std::io::Result<String> {
            let mut rtnl = Rtnl::open()?;
            let (index, mac) = rtnl
                .link(&ifname)?
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENODEV))?;
            rtnl.add_address(index, ip, prefix)?;
            rtnl.set_up(index, None)?;
            match rtnl.add_default_route(gateway) {
                // A container on a second network keeps the first one's default route
                // (as docker does); this network's subnet is reached through its own link.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => other?,
            }
            Ok(mac)
        })
        .map_err(|e| kernel("entering the namespace", e))?
        .map_err(|e| {
            kernel(
                &format!(
                    "configuring {} ({ip}/{prefix}) in the namespace",
                    req.ifname
                ),
                e,
            )
        })?;
        Ok((host_mac, mac))
    })();
    let (host_mac, mac) = match made {
        Ok(macs) => macs,
        Err(e) => {
            // Best effort; the failure that matters is `e`, and DEL/GC retry the rest.
            let _ = rtnl.del_link(&host);
            let _ = req.leases().release(&req.container_id, &req.ifname);
            return Err(e);
        }
    };
    let result = json!({
        "cniVersion": req.cni_version,
        "interfaces": [
            {"name": req.bridge, "mac": bridge_mac},
            {"name": host, "mac": host_mac},
            {"name": req.ifname, "mac": mac, "sandbox": netns.to_string_lossy()},
        ],
        "ips": [{
            "address": format!("{ip}/{}", req.subnet.1),
            "gateway": req.gateway.to_string(),
            "interface": 2,
        }],
        "routes": [{"dst": "0.0.0.0/0", "gw": req.gateway.to_string()}],
        "dns": {},
    });
    serde_json::to_vec(&result).map_err(|e| failure(CODE_KERNEL, e.to_string()))
}

fn del(req: &Request) -> Result<(), Failure> {
    let mut rtnl = Rtnl::open().map_err(|e| kernel("opening rtnetlink", e))?;
    let host = req.host_veth();
    rtnl.del_link(&host)
        .map_err(|e| kernel(&format!("deleting veth {host}"), e))?;
    req.leases()
        .release(&req.container_id, &req.ifname)
        .map_err(lease_failure)?;
    Ok(())
}

fn check(req: &Request) -> Result<(), Failure> {
    let Some(ip) = req
        .leases()
        .of(&req.container_id, &req.ifname)
        .map_err(lease_failure)?
    else {
        return Err(failure(
            CODE_IPAM,
            format!(
                "no address is leased to {} on {}",
                req.container_id, req.ifname
            ),
        ));
    };
    let netns = req
        .netns
        .clone()
        .ok_or_else(|| failure(CODE_ENV, "CHECK needs CNI_NETNS, the container's namespace"))?;
    let ifname = req.ifname.clone();
    let addresses =
        crate::netns::run_in(&netns, move || -> std::io::Result<Vec<(Ipv4Addr, u8)>> {
            let mut rtnl = Rtnl::open()?;
            match rtnl.link(&ifname)? {
                Some((index, _)) => rtnl.addresses(index),
                None => Ok(Vec::new()),
            }
        })
        .map_err(|e| kernel("entering the namespace", e))?
        .map_err(|e| kernel("listing the container's addresses", e))?;
    if !addresses.contains(&(ip, req.subnet.1)) {
        return Err(failure(
            CODE_KERNEL,
            format!(
                "{} in the namespace does not have {ip}/{}",
                req.ifname, req.subnet.1
            ),
        ));
    }
    let mut rtnl = Rtnl::open().map_err(|e| kernel("opening rtnetlink", e))?;
    if rtnl
        .link(&req.host_veth())
        .map_err(|e| kernel("looking up the veth", e))?
        .is_none()
    {
        return Err(failure(
            CODE_KERNEL,
            format!("the host end {} of the veth is missing", req.host_veth()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Invocation {
        Invocation {
            container_id: "c0ffee".to_owned(),
            netns: None,
            ifname: "eth0".to_owned(),
            args: String::new(),
        }
    }

    fn config(subnet: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "cniVersion": "1.0.0",
            "name": "net1",
            "type": PLUGIN,
            "bridge": "bt1",
            "hairpinMode": true,
            "ipam": {"ranges": [[{"subnet": subnet, "gateway": "10.5.0.1"}]], "dataDir": "/tmp/x"},
            "runtimeConfig": {"ips": ["10.5.0.9/24"]},
        }))
        .expect("json")
    }

    #[test]
    fn a_config_is_read_into_the_range_the_gateway_and_the_wanted_address() {
        let req = parse(&inv(), &config("10.5.0.0/24")).expect("parse");
        assert_eq!(
            req.range(),
            (Ipv4Addr::new(10, 5, 0, 2), Ipv4Addr::new(10, 5, 0, 254))
        );
        assert_eq!(req.gateway, Ipv4Addr::new(10, 5, 0, 1));
        assert_eq!(req.wanted, Some(Ipv4Addr::new(10, 5, 0, 9)));
        assert!(req.hairpin);
        let veth = req.host_veth();
        assert_eq!(veth.len(), 14);
        assert!(veth.starts_with("bv"));
        let other = Invocation {
            ifname: "eth1".to_owned(),
            ..inv()
        };
        assert_ne!(
            parse(&other, &config("10.5.0.0/24"))
                .expect("parse")
                .host_veth(),
            veth
        );
        let mac = req.bridge_mac();
        assert_eq!(mac[0], 0x02, "locally administered unicast");
    }

    #[test]
    fn bad_input_is_refused_with_what_to_fix() {
        let err = parse(&inv(), &config("10.5.0.0/31")).unwrap_err();
        assert_eq!(err.code, CODE_CONFIG);
        assert!(err.msg.contains("prefix of 8 to 30"), "{}", err.msg);
        let bad_if = Invocation {
            ifname: "a/b".to_owned(),
            ..inv()
        };
        let err = parse(&bad_if, &config("10.5.0.0/24")).unwrap_err();
        assert_eq!(err.code, CODE_ENV);
        assert!(err.msg.contains("CNI_IFNAME"), "{}", err.msg);
        let err = invoke("ADD", &inv(), b"{").unwrap_err();
        assert_eq!(err.code, CODE_DECODE);
        let err = invoke("ADD", &inv(), &config("10.5.0.0/24")).unwrap_err();
        assert!(err.msg.contains("CNI_NETNS"), "{}", err.msg);
    }
}
