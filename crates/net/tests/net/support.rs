//! A test host: a state root, one network in its own slot, sandboxes, traffic helpers and
//! a list of everything a container could leave behind.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_net::cni::PluginExec;
use berth_net::{CreateNetwork, NetConfig, Network, NetworkName, Networks, netns};
use berth_types::ContainerId;

/// How long a connection that should work may take on a loaded machine.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection that should fail is given before it counts as blocked.
pub const BLOCKED_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Host {
    pub nets: Networks<PluginExec>,
    pub network: Network,
    root: tempfile::TempDir,
    _run: tempfile::TempDir,
    networks: Vec<NetworkName>,
    extra_netns: Vec<PathBuf>,
    extra_links: Vec<String>,
}

/// A random container id.
pub fn container_id() -> ContainerId {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("urandom");
    ContainerId::from_random_bytes(bytes)
}

pub fn slot_network(slot: u8) -> CreateNetwork {
    CreateNetwork {
        name: format!("t{slot}").parse().expect("name"),
        subnet: Some(format!("10.200.{slot}.0/24").parse().expect("subnet")),
        bridge: Some(format!("bt{slot}")),
    }
}

impl Host {
    /// A host whose network is slot `slot`.
    pub fn new(slot: u8) -> Self {
        let root = tempfile::tempdir().expect("root");
        let run = tempfile::tempdir().expect("run");
        let config = NetConfig {
            root: root.path().to_owned(),
            run_dir: run.path().to_owned(),
            default_subnet: berth_net::DEFAULT_SUBNET.parse().expect("subnet"),
            default_bridge: berth_net::DEFAULT_BRIDGE.to_owned(),
        };
        let nets = Networks::open(&config, PluginExec::default()).expect("open");
        let network = nets
            .store()
            .create(slot_network(slot))
            .expect("create network");
        Self {
            nets,
            networks: vec![network.name.clone()],
            network,
            root,
            _run: run,
            extra_netns: Vec::new(),
            extra_links: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Turns this host's network into the chain earlier berth versions wrote (and users may
    /// write): Debian's `bridge` (with `ipMasq`, exec'ing `host-local`), `portmap` and
    /// `firewall`.
    pub fn use_debian_plugins(&self) {
        let path = self
            .root()
            .join("networks")
            .join(format!("{}.conflist", self.network.name));
        let mut conflist: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("conflist")).expect("json");
        let own = conflist["plugins"][0].clone();
        let mut ipam = own["ipam"].clone();
        ipam["type"] = serde_json::json!("host-local");
        ipam["routes"] = serde_json::json!([{"dst": "0.0.0.0/0"}]);
        conflist["plugins"] = serde_json::json!([
            {
                "type": "bridge",
                "bridge": own["bridge"],
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "capabilities": {"ips": true},
                "ipam": ipam,
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            {"type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge"},
        ]);
        std::fs::write(&path, serde_json::to_vec_pretty(&conflist).expect("json"))
            .expect("write conflist");
    }

    /// Another network in slot `slot`, cleaned up with the host.
    pub fn add_network(&mut self, slot: u8) -> Network {
        let network = self
            .nets
            .store()
            .create(slot_network(slot))
            .expect("create network");
        self.networks.push(network.name.clone());
        network
    }

    /// A new container sandbox.
    pub fn sandbox(&self) -> ContainerId {
        let id = container_id();
        self.nets.create_sandbox(&id).expect("sandbox");
        id
    }

    /// A namespace standing for another machine, linked to this one by a veth pair:
    /// the host side is 10.201.SLOT.1/30, the other machine 10.201.SLOT.2/30 with its
    /// default route through the host. Returns (namespace, host address).
    pub fn other_machine(&mut self, slot: u8) -> (PathBuf, Ipv4Addr) {
        let ns = self._run.path().join(format!("machine{slot}"));
        netns::create(&ns).expect("other machine netns");
        self.extra_netns.push(ns.clone());
        let host_if = format!("vo{slot}");
        let peer_if = format!("vp{slot}");
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ],
        );
        self.extra_links.push(host_if.clone());
        run(
            "ip",
            &["link", "set", &peer_if, "netns", ns.to_str().expect("path")],
        );
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.201.{slot}.1/30"),
                "dev",
                &host_if,
            ],
        );
        run("ip", &["link", "set", &host_if, "up"]);
        let in_ns = |args: &[&str]| {
            // `ip -n` takes only names under /run/netns, so enter the namespace by path.
            let mut cmd = vec![
                "--net=".to_owned() + ns.to_str().expect("path"),
                "ip".to_owned(),
            ];
            cmd.extend(args.iter().map(|s| (*s).to_owned()));
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            run("nsenter", &cmd);
        };
        in_ns(&[
            "addr",
            "add",
            &format!("10.201.{slot}.2/30"),
            "dev",
            &peer_if,
        ]);
        in_ns(&["link", "set", &peer_if, "up"]);
        in_ns(&["link", "set", "lo", "up"]);
        in_ns(&[
            "route",
            "add",
            "default",
            "via",
            &format!("10.201.{slot}.1"),
        ]);
        (ns, Ipv4Addr::new(10, 201, slot, 1))
    }

    /// An interface `name` holding `cidr`: a network the host already reaches. (A veth
    /// pair, since the dummy module cannot be loaded here; its peer is `<name>p`.)
    pub fn routed_link(&mut self, name: &str, cidr: &str) {
        let peer = format!("{name}p");
        run(
            "ip",
            &["link", "add", name, "type", "veth", "peer", "name", &peer],
        );
        self.extra_links.push(name.to_owned());
        run("ip", &["addr", "add", cidr, "dev", name]);
        run("ip", &["link", "set", &peer, "up"]);
        run("ip", &["link", "set", name, "up"]);
    }

    /// Everything `id` could have left on this host: a record, a lease, an iptables rule
    /// or a line of berth-nat's nftables table naming it, its namespace. Empty when it left
    /// nothing.
    pub fn leftovers(&self, id: &ContainerId) -> Vec<String> {
        let mut out = Vec::new();
        let record_dir = self.root().join("attachments").join(id.as_str());
        if record_dir.exists() {
            out.push(format!("record directory {}", record_dir.display()));
        }
        for lease in self.leases() {
            if lease.1.starts_with(id.as_str()) {
                out.push(format!("lease {}", lease.0.display()));
            }
        }
        let rules = output("iptables-save", &[]);
        for line in rules.lines().filter(|l| l.contains(id.as_str())) {
            out.push(format!("iptables: {line}"));
        }
        for line in nat_table().lines().filter(|l| l.contains(id.as_str())) {
            out.push(format!("nft: {}", line.trim()));
        }
        let ns = self.nets.netns_path(id);
        if ns.exists() {
            out.push(format!("netns {}", ns.display()));
        }
        out
    }

    /// Lease files of every network: (path, content).
    pub fn leases(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let ipam = self.root().join("cni").join("ipam");
        for net in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
            for lease in std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = lease.file_name();
                if name.to_str().is_some_and(|n| n.parse::<Ipv4Addr>().is_ok()) {
                    let content = std::fs::read_to_string(lease.path()).unwrap_or_default();
                    out.push((lease.path(), content));
                }
            }
        }
        out
    }

    /// The veths enslaved to this host's first bridge.
    pub fn veths(&self) -> Vec<String> {
        bridge_ports(&self.network.bridge)
    }
}

pub fn bridge_ports(bridge: &str) -> Vec<String> {
    output("ip", &["-o", "link", "show", "master", bridge])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

impl Drop for Host {
    fn drop(&mut self) {
        // Best effort throughout: a failing cleanup must not hide the test's own failure.
        let _ = self.nets.gc(&|_| false);
        for ns in &self.extra_netns {
            let _ = netns::remove(ns);
        }
        for link in &self.extra_links {
            let _ = Command::new("ip").args(["link", "del", link]).status();
        }
        for network in &self.networks {
            let _ = self.nets.remove_network(network);
        }
    }
}

/// berth-nat's table as `nft list` prints it (empty when it does not exist).
pub fn nat_table() -> String {
    output(
        "nft",
        &["list", "table", "ip", berth_net::cni::nat::DEFAULT_TABLE],
    )
}

pub fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

pub fn output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP server in the namespace `ns` on `0.0.0.0:port` answering one connection:
/// it reads a line and answers `pong <line>`. Returns its thread.
pub fn tcp_server(ns: &Path, port: u16) -> JoinHandle<io::Result<()>> {
    let listener = netns::run_in(ns, move || TcpListener::bind(("0.0.0.0", port)))
        .expect("netns")
        .expect("bind in netns");
    std::thread::spawn(move || {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut conn, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf)?;
        conn.write_all(format!("pong {}", String::from_utf8_lossy(&buf[..n])).as_bytes())
    })
}

/// Connects to `addr` (from namespace `ns`, or the host), sends `ping`, returns the answer.
pub fn tcp_ping(ns: Option<&Path>, addr: SocketAddrV4, timeout: Duration) -> io::Result<String> {
    let ping = move || -> io::Result<String> {
        let mut conn = TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout)?;
        conn.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        conn.write_all(b"ping")?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok(answer)
    };
    match ns {
        Some(ns) => netns::run_in(ns, ping).expect("netns"),
        None => ping(),
    }
}

/// A UDP server in `ns` on `0.0.0.0:port` answering one datagram with `pong <datagram>`.
pub fn udp_server(ns: &Path, port: u16) -> JoinHandle<io::Result<()>> {
    let socket = netns::run_in(ns, move || UdpSocket::bind(("0.0.0.0", port)))
        .expect("netns")
        .expect("bind in netns");
    std::thread::spawn(move || {
        socket.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut buf = [0u8; 64];
        let (n, from) = socket.recv_from(&mut buf)?;
        socket.send_to(
            format!("pong {}", String::from_utf8_lossy(&buf[..n])).as_bytes(),
            from,
        )?;
        Ok(())
    })
}

/// Sends `ping` to `addr` from the host, retrying a few times (the first datagram can
/// race the conntrack entry), and returns the answer.
pub fn udp_ping(addr: SocketAddrV4) -> io::Result<String> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut last = io::Error::other("no attempt");
    for _ in 0..5 {
        socket.send_to(b"ping", addr)?;
        let mut buf = [0u8; 64];
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A port free on the host's every address for TCP and UDP right now.
pub fn free_host_port() -> u16 {
    loop {
        let port = TcpListener::bind("0.0.0.0:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

pub fn name(s: &str) -> NetworkName {
    s.parse().expect("network name")
}
