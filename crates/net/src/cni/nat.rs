//! `berth-nat`: berth's own CNI plugin, chained after `bridge`, that programs nftables in
//! one atomic transaction per ADD and per DEL (docs/adr/0502-nftables-nat-plugin.md).
//!
//! It does what `bridge`'s `ipMasq`, `portmap` (`snat: true`) and `firewall`
//! (`ingressPolicy: same-bridge`) do in berth's default chain, in a table of its own
//! (`ip berth` unless the config says `"table"`):
//!
//! - outbound masquerade: traffic from a network's subnet leaving through an interface that
//!   is not a berth bridge (multicast excepted);
//! - published ports: `fib daddr type local` in prerouting and output jumps to `hostports`,
//!   which looks the packet's protocol, (address,) port up in the verdict maps `ports` and
//!   `ports_ip`; each points to the container's own chain `c-<id>-<ifname>` holding its
//!   DNAT rules. DNAT'd traffic from 127.0.0.0/8 and from the same bridge (hairpin) is
//!   masqueraded and the bridge gets `route_localnet=1`, as portmap's `snat` does;
//! - isolation: forwarding between two different berth bridges is dropped.
//!
//! A network's part is three set elements (`bridges`, `same_bridge`, `subnets`); adding an
//! element that exists is a no-op, so every ADD re-adds them. The table's chains and rules
//! are made once, by the first ADD that finds the table missing. A container without
//! published ports has nothing of its own, so its DEL runs nothing at all.
//!
//! The plugin speaks CNI 1.0: it must follow a plugin that made the interface (its
//! `prevResult` names the bridge and the container's address) and passes that result on.
//! [`invoke`] is the whole plugin over an [`Nft`]; the `berth` binary runs it when called
//! as `berth-nat` (a symlink in a CNI plugin directory), and berth's daemon calls it in
//! process instead of exec'ing itself.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use super::Invocation;
use crate::{Protocol, PublishedPort};

/// The plugin's `type`.
pub const PLUGIN: &str = "berth-nat";
/// The nftables table (family `ip`) used when the config names none.
pub const DEFAULT_TABLE: &str = "berth";
/// CNI versions whose configs and results this plugin accepts (the result is passed on
/// unchanged, so the 0.4.0 result format is fine too).
const SUPPORTED_VERSIONS: [&str; 2] = ["0.4.0", "1.0.0"];
/// CNI error codes (spec 1.0, "Error").
const CODE_VERSION: u64 = 1;
const CODE_ENV: u64 = 4;
const CODE_DECODE: u64 = 6;
const CODE_CONFIG: u64 = 7;
/// berth-nat's own code: nft refused or failed a transaction.
pub const CODE_NFT: u64 = 100;
const MULTICAST: &str = "224.0.0.0/4";

/// A failed invocation: the CNI error object's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u64,
    pub msg: String,
    pub details: String,
}

impl Failure {
    fn new(code: u64, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The CNI error object, as a plugin writes it on stdout.
    pub fn to_json(&self, cni_version: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        }))
        .unwrap_or_default()
    }
}

/// The host as the plugin changes it: nftables (apply one batch atomically, list one
/// object) and the one sysctl published ports need.
pub trait Nft {
    /// Sets `net.ipv4.conf.<bridge>.route_localnet` to 1, so DNAT'd traffic from the host's
    /// loopback may be routed out through the bridge.
    fn route_localnet(&self, bridge: &str) -> Result<(), String>;
    /// Applies `script` (nft's `-f` syntax) as one transaction; `Err` is nft's message.
    fn apply(&self, script: &str) -> Result<(), String>;
    /// `nft list <what>`'s output; `Err` when the object does not exist.
    fn list(&self, what: &str) -> Result<String, String>;
}

/// The real [`Nft`]: the `nft` binary (Debian's `nftables` package), one exec per call.
#[derive(Debug, Clone, Copy, Default)]
pub struct NftExec;

const NFT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

impl Nft for NftExec {
    fn route_localnet(&self, bridge: &str) -> Result<(), String> {
        let knob = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
        std::fs::write(&knob, "1")
            .map_err(|e| format!("cannot enable route_localnet ({knob}): {e}"))
    }

    fn apply(&self, script: &str) -> Result<(), String> {
        let mut child = Process::new("nft")
            .env("PATH", NFT_PATH)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run nft (install the nftables package): {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| format!("writing nft's input: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for nft: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn list(&self, what: &str) -> Result<String, String> {
        let mut args = vec!["list"];
        args.extend(what.split_whitespace());
        let out = Process::new("nft")
            .env("PATH", NFT_PATH)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run nft (install the nftables package): {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

/// A network's part: its bridge and subnet (network address, prefix length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPart {
    pub bridge: String,
    pub subnet: (Ipv4Addr, u8),
}

/// What one invocation is about, parsed from the config and the environment.
#[derive(Debug)]
struct Request {
    cni_version: String,
    table: String,
    chain: String,
    net: Option<NetPart>,
    ip: Option<Ipv4Addr>,
    ports: Vec<PublishedPort>,
    prev: Option<Value>,
}

/// Runs the plugin for `command` (`ADD`, `DEL`, `CHECK`, `VERSION`): returns its stdout.
pub fn invoke(
    command: &str,
    inv: &Invocation,
    config: &[u8],
    nft: &dyn Nft,
) -> Result<Vec<u8>, Failure> {
    if command == "VERSION" {
        return Ok(version_json());
    }
    let req = parse(inv, config)?;
    match command {
        "ADD" => add(&req, nft),
        "DEL" => del(&req, nft).map(|()| Vec::new()),
        "CHECK" => check(&req, nft).map(|()| Vec::new()),
        other => Err(Failure::new(
            CODE_ENV,
            format!("unknown CNI_COMMAND {other:?} (ADD, DEL, CHECK or VERSION)"),
        )),
    }
}

fn version_json() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "cniVersion": "1.0.0",
        "supportedVersions": SUPPORTED_VERSIONS,
    }))
    .unwrap_or_default()
}

/// Runs the plugin as a process: the `CNI_*` environment, the config on stdin, the result
/// or error object on stdout. Returns the exit status.
pub fn main_from_env() -> i32 {
    run_as_process(|command, inv, config| invoke(command, inv, config, &NftExec))
}

/// Runs one of berth's plugins (`plugin` is its [`invoke`]) as a process: the `CNI_*`
/// environment, the config on stdin, the result or error object on stdout. Returns the
/// exit status.
pub fn run_as_process(
    plugin: impl Fn(&str, &Invocation, &[u8]) -> Result<Vec<u8>, Failure>,
) -> i32 {
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    let command = env("CNI_COMMAND");
    let mut config = Vec::new();
    if command != "VERSION"
        && let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut config)
    {
        let failure = Failure::new(CODE_DECODE, format!("reading the config: {e}"));
        print_out(&failure.to_json("1.0.0"));
        return 1;
    }
    let inv = Invocation {
        container_id: env("CNI_CONTAINERID"),
        netns: Some(env("CNI_NETNS"))
            .filter(|n| !n.is_empty())
            .map(Into::into),
        ifname: env("CNI_IFNAME"),
        args: env("CNI_ARGS"),
    };
    match plugin(&command, &inv, &config) {
        Ok(out) => {
            print_out(&out);
            0
        }
        Err(failure) => {
            let version = serde_json::from_slice::<Value>(&config)
                .ok()
                .and_then(|c| c["cniVersion"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "1.0.0".to_owned());
            print_out(&failure.to_json(&version));
            1
        }
    }
}

fn print_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    // Nothing to do if stdout is gone: the runtime that reads it is gone too.
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// A name nft accepts unquoted as part of a chain name: what CNI allows for container ids
/// (alphanumerics, `_`, `.`, `-`), starting with an alphanumeric.
fn is_plain_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn parse(inv: &Invocation, config: &[u8]) -> Result<Request, Failure> {
    let conf: Value = serde_json::from_slice(config)
        .map_err(|e| Failure::new(CODE_DECODE, format!("the config is not JSON: {e}")))?;
    let cni_version = conf["cniVersion"].as_str().unwrap_or_default().to_owned();
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(Failure::new(
            CODE_VERSION,
            format!(
                "cniVersion {cni_version:?} is not supported (use one of {SUPPORTED_VERSIONS:?})"
            ),
        ));
    }
    let table = conf["table"].as_str().unwrap_or(DEFAULT_TABLE).to_owned();
    if !is_plain_name(&table) {
        return Err(Failure::new(
            CODE_CONFIG,
            format!("\"table\" {table:?} must be letters, digits, '_', '.' or '-'"),
        ));
    }
    for (what, value) in [
        ("CNI_CONTAINERID", &inv.container_id),
        ("CNI_IFNAME", &inv.ifname),
    ] {
        if !is_plain_name(value) {
            return Err(Failure::new(
                CODE_ENV,
                format!("{what} {value:?} must be letters, digits, '_', '.' or '-'"),
            ));
        }
    }
    let prev = conf.get("prevResult").filter(|p| !p.is_null()).cloned();
    let ports = conf["runtimeConfig"]["portMappings"]
        .as_array()
        .map(|list| list.iter().map(port_mapping).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    let (ip, prefix) = prev
        .as_ref()
        .and_then(|p| container_address(p, &inv.ifname))
        .unzip();
    let bridge = conf["bridge"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| prev.as_ref().and_then(bridge_of));
    let subnet = match conf["subnet"].as_str() {
        Some(s) => Some(parse_cidr(s).ok_or_else(|| {
            Failure::new(
                CODE_CONFIG,
                format!("\"subnet\" {s:?} is not an IPv4 CIDR such as 10.88.0.0/16"),
            )
        })?),
        None => ip.zip(prefix).map(|(ip, p)| (mask(ip, p), p)),
    };
    if let Some(bridge) = &bridge
        && (bridge.is_empty() || bridge.len() > 15 || bridge.contains(['"', '\\', '/']))
    {
        return Err(Failure::new(
            CODE_CONFIG,
            format!("bridge name {bridge:?} is not an interface name"),
        ));
    }
    Ok(Request {
        cni_version,
        chain: format!("c-{}-{}", inv.container_id, inv.ifname),
        table,
        net: bridge
            .zip(subnet)
            .map(|(bridge, subnet)| NetPart { bridge, subnet }),
        ip,
        ports,
        prev,
    })
}

fn port_mapping(m: &Value) -> Result<PublishedPort, Failure> {
    let bad = |why: String| Failure::new(CODE_CONFIG, format!("portMappings entry {m}: {why}"));
    let port = |key: &str| -> Result<u16, Failure> {
        m[key]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(format!("{key} must be a port number (1-65535)")))
    };
    let protocol = match m["protocol"].as_str().unwrap_or("tcp") {
        p if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        p if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
        other => return Err(bad(format!("protocol {other:?} is not tcp or udp"))),
    };
    let host_ip = match m["hostIP"].as_str().unwrap_or_default() {
        "" | "0.0.0.0" => None,
        ip => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
            bad(format!(
                "hostIP {ip:?} is not an IPv4 address (berth-nat publishes IPv4 only)"
            ))
        })?),
    };
    Ok(PublishedPort {
        host_ip,
        host_port: port("hostPort")?,
        container_port: port("containerPort")?,
        protocol,
    })
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((mask(ip, prefix), prefix))
}

fn mask(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

/// The container's IPv4 address and prefix in a CNI result: the first one on `ifname`, or
/// the first one at all.
fn container_address(result: &Value, ifname: &str) -> Option<(Ipv4Addr, u8)> {
    let ips = result["ips"].as_array()?;
    let parsed = |entry: &Value| -> Option<(Ipv4Addr, u8)> {
        let (ip, prefix) = entry["address"].as_str()?.split_once('/')?;
        Some((ip.parse().ok()?, prefix.parse().ok()?))
    };
    let on_ifname = |entry: &&Value| {
        entry["interface"]
            .as_u64()
            .and_then(|i| result["interfaces"].get(usize::try_from(i).ok()?))
            .is_some_and(|iface| iface["name"] == ifname)
    };
    ips.iter()
        .filter(on_ifname)
        .find_map(parsed)
        .or_else(|| ips.iter().find_map(parsed))
}

/// The bridge in a `bridge` plugin's result: its first interface outside any sandbox.
fn bridge_of(result: &Value) -> Option<String> {
    result["interfaces"]
        .as_array()?
        .iter()
        .find(|iface| iface["sandbox"].as_str().unwrap_or_default().is_empty())
        .and_then(|iface| iface["name"].as_str())
        .map(str::to_owned)
}

fn need_net(req: &Request) -> Result<&NetPart, Failure> {
    req.net.as_ref().ok_or_else(|| {
        Failure::new(
            CODE_CONFIG,
            "berth-nat needs the bridge and the container's address: chain it after the \
             bridge plugin (prevResult) or set \"bridge\" and \"subnet\"",
        )
    })
}

fn add(req: &Request, nft: &dyn Nft) -> Result<Vec<u8>, Failure> {
    let net = need_net(req)?;
    let Some(prev) = &req.prev else {
        return Err(Failure::new(
            CODE_CONFIG,
            "berth-nat must follow a plugin that makes the interface (no prevResult)",
        ));
    };
    let container = if req.ports.is_empty() {
        None
    } else {
        let ip = req.ip.ok_or_else(|| {
            Failure::new(
                CODE_CONFIG,
                "prevResult holds no IPv4 address to publish to",
            )
        })?;
        // Host loopback reaches published ports only if the bridge routes 127.0.0.0/8.
        nft.route_localnet(&net.bridge)
            .map_err(|e| Failure::new(CODE_NFT, e))?;
        Some((req.chain.as_str(), ip, req.ports.as_slice()))
    };
    let script = add_script(&req.table, net, container);
    if nft.apply(&script).is_err() {
        // Most likely the table does not exist yet (first use on this host, or flushed):
        // make it, then try once more. A concurrent maker wins and this one fails harmlessly.
        let _ = nft.apply(&skeleton_script(&req.table));
        nft.apply(&script)
            .map_err(|e| Failure::new(CODE_NFT, "nft refused berth-nat's rules").with_details(e))?;
    }
    let mut result = prev.clone();
    result["cniVersion"] = Value::String(req.cni_version.clone());
    Ok(serde_json::to_vec(&result).unwrap_or_default())
}

fn del(req: &Request, nft: &dyn Nft) -> Result<(), Failure> {
    if req.ports.is_empty() {
        // Nothing of a container without published ports is in the table.
        return Ok(());
    }
    if nft
        .apply(&del_script(&req.table, &req.chain, &req.ports))
        .is_ok()
    {
        return Ok(());
    }
    // The ports given are not (all) the ones published (a DEL rebuilt without them), or the
    // table is gone: find what points to the container's chain.
    let mut keys = Vec::new();
    for map in ["ports", "ports_ip"] {
        match nft.list(&format!("map ip {} {map}", req.table)) {
            Ok(listing) => keys.extend(
                jumps_to(&listing, &req.chain)
                    .into_iter()
                    .map(|key| (map, key)),
            ),
            // No table, no map: nothing left to delete.
            Err(_) => return Ok(()),
        }
    }
    nft.apply(&del_listed_script(&req.table, &req.chain, &keys))
        .map_err(|e| Failure::new(CODE_NFT, "nft refused berth-nat's DEL").with_details(e))
}

fn check(req: &Request, nft: &dyn Nft) -> Result<(), Failure> {
    let net = need_net(req)?;
    let missing = |what: String| Failure::new(CODE_NFT, format!("{what} is missing"));
    let bridges = nft
        .list(&format!("set ip {} bridges", req.table))
        .map_err(|_| missing(format!("table ip {}", req.table)))?;
    if !bridges.contains(&format!("\"{}\"", net.bridge)) {
        return Err(missing(format!("bridge {} in set bridges", net.bridge)));
    }
    if req.ports.is_empty() {
        return Ok(());
    }
    let chain = nft
        .list(&format!("chain ip {} {}", req.table, req.chain))
        .map_err(|_| missing(format!("chain {}", req.chain)))?;
    for port in &req.ports {
        if !chain.contains(&format!("dport {} dnat", port.host_port)) {
            return Err(missing(format!(
                "the DNAT of {}/{}",
                port.host_port, port.protocol
            )));
        }
    }
    Ok(())
}

impl Failure {
    fn with_details(mut self, details: String) -> Self {
        self.details = details;
        self
    }
}

/// The table's chains, sets, maps and rules; made once (`create table` fails if it exists,
/// and with it the whole batch).
pub fn skeleton_script(table: &str) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("create table {t}"));
    line(format!(
        "add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"
    ));
    line(format!(
        "add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"
    ));
    line(format!(
        "add chain {t} output {{ type nat hook output priority -100; policy accept; }}"
    ));
    line(format!(
        "add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}"
    ));
    line(format!("add chain {t} hostports"));
    line(format!("add set {t} bridges {{ type ifname; }}"));
    line(format!(
        "add set {t} same_bridge {{ type ifname . ifname; }}"
    ));
    line(format!(
        "add set {t} subnets {{ type ipv4_addr; flags interval; }}"
    ));
    line(format!(
        "add map {t} ports {{ type inet_proto . inet_service : verdict; }}"
    ));
    line(format!(
        "add map {t} ports_ip {{ type inet_proto . ipv4_addr . inet_service : verdict; }}"
    ));
    // Outbound: masquerade what leaves a berth subnet through a non-berth interface.
    line(format!(
        "add rule {t} postrouting ip saddr @subnets oifname != @bridges ip daddr != {MULTICAST} masquerade"
    ));
    // Published ports reached from a container of the same bridge (hairpin) or from the
    // host's loopback: the reply must come back through the host, so the source goes.
    line(format!(
        "add rule {t} postrouting ct status dnat oifname @bridges ip saddr @subnets masquerade"
    ));
    line(format!(
        "add rule {t} postrouting ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade"
    ));
    line(format!(
        "add rule {t} prerouting fib daddr type local jump hostports"
    ));
    line(format!(
        "add rule {t} output fib daddr type local jump hostports"
    ));
    line(format!(
        "add rule {t} hostports meta l4proto . ip daddr . th dport vmap @ports_ip"
    ));
    line(format!(
        "add rule {t} hostports meta l4proto . th dport vmap @ports"
    ));
    // Isolation: nothing is forwarded from one berth bridge to another.
    line(format!(
        "add rule {t} forward iifname @bridges oifname @bridges iifname . oifname != @same_bridge drop"
    ));
    s
}

fn net_elements(t: &str, net: &NetPart, verb: &str, s: &mut String) {
    let (addr, prefix) = net.subnet;
    let b = &net.bridge;
    let _ = writeln!(s, "{verb} element {t} bridges {{ \"{b}\" }}");
    let _ = writeln!(s, "{verb} element {t} same_bridge {{ \"{b}\" . \"{b}\" }}");
    let _ = writeln!(s, "{verb} element {t} subnets {{ {addr}/{prefix} }}");
}

fn port_key(p: &PublishedPort) -> (&'static str, String) {
    match p.host_ip {
        Some(ip) => (
            "ports_ip",
            format!("{} . {ip} . {}", p.protocol, p.host_port),
        ),
        None => ("ports", format!("{} . {}", p.protocol, p.host_port)),
    }
}

/// ADD's transaction: the network's elements (no-ops when present) and, for a container
/// with published ports, its chain of DNAT rules and the map entries pointing to it.
pub fn add_script(
    table: &str,
    net: &NetPart,
    container: Option<(&str, Ipv4Addr, &[PublishedPort])>,
) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    net_elements(&t, net, "add", &mut s);
    if let Some((chain, ip, ports)) = container {
        let _ = writeln!(s, "add chain {t} {chain}");
        let _ = writeln!(s, "flush chain {t} {chain}");
        for p in ports {
            let daddr = p
                .host_ip
                .map(|h| format!(" ip daddr {h}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "add rule {t} {chain} meta l4proto {}{daddr} th dport {} dnat to {ip}:{}",
                p.protocol, p.host_port, p.container_port
            );
        }
        for p in ports {
            let (map, key) = port_key(p);
            let _ = writeln!(s, "add element {t} {map} {{ {key} : jump {chain} }}");
        }
    }
    s
}

/// DEL's transaction for known ports: each map entry and the chain, each first added so
/// that deleting what is already gone is not an error.
pub fn del_script(table: &str, chain: &str, ports: &[PublishedPort]) -> String {
    let keys: Vec<(&str, String)> = ports.iter().map(port_key).collect();
    del_listed_script(table, chain, &keys)
}

fn del_listed_script(table: &str, chain: &str, keys: &[(&str, String)]) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    let _ = writeln!(s, "add chain {t} {chain}");
    for (map, key) in keys {
        let _ = writeln!(s, "add element {t} {map} {{ {key} : jump {chain} }}");
        let _ = writeln!(s, "delete element {t} {map} {{ {key} }}");
    }
    let _ = writeln!(s, "flush chain {t} {chain}");
    let _ = writeln!(s, "delete chain {t} {chain}");
    s
}

/// The keys of a map listing's elements that jump to `chain`.
fn jumps_to(listing: &str, chain: &str) -> Vec<String> {
    let Some(start) = listing.find("elements = {") else {
        return Vec::new();
    };
    let body = &listing[start + "elements = {".len()..];
    let body = &body[..body.find('}').unwrap_or(body.len())];
    body.split(',')
        .filter_map(|element| {
            let (key, verdict) = element.split_once(':')?;
            let target = verdict.trim().strip_prefix("jump ")?.trim();
            (target == chain).then(|| key.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// Removes a network's elements from berth-nat's table (`network rm`): after it, the
/// network's bridge and subnet are no longer masqueraded or isolated. A missing table is
/// not an error.
pub fn remove_network(nft: &dyn Nft, table: &str, net: &NetPart) -> Result<(), String> {
    let t = format!("ip {table}");
    let mut s = String::new();
    net_elements(&t, net, "add", &mut s);
    net_elements(&t, net, "delete", &mut s);
    match nft.apply(&s) {
        Ok(()) => Ok(()),
        Err(_) if nft.list(&format!("table {t}")).is_err() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "nat_tests.rs"]
mod tests;
