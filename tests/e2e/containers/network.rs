//! Bridged networking in `berth run` (issue #5): containers on the test daemon's own bridge
//! and subnet (support/daemon.rs) talk TCP by address and by name through berth's DNS,
//! publish ports on the host's loopback, and leave no veth, namespace, lease or record
//! behind; bad network input is refused with nothing left. No traffic leaves loopback and
//! the test's own namespaces.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use super::{code, eventually, inspect, run_detached, stderr, stdout};
use crate::support::daemon::{Daemon, IMAGE};
use crate::support::ports::free_port;

/// Retries `nc TARGET PORT` inside a throwaway container until it prints something.
fn nc_until_answered(daemon: &Daemon, target: &str, port: &str) -> String {
    nc_on(daemon, "bridge", target, port, 100).expect("an answer")
}

/// `nc TARGET PORT` from a throwaway container on `network`, tried `tries` times (each
/// waits two seconds at most to connect): what it printed, or `None` when nothing answered.
pub(super) fn nc_on(
    daemon: &Daemon,
    network: &str,
    target: &str,
    port: &str,
    tries: u32,
) -> Option<String> {
    let script = format!(
        "for i in $(seq {tries}); do out=$(nc -w 2 {target} {port} </dev/null 2>/dev/null) && [ -n \"$out\" ] && echo \"$out\" && exit 0; sleep 0.1; done; exit 1"
    );
    let out = daemon.run(&[
        "run",
        "--rm",
        "--network",
        network,
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    (code(&out) == 0).then(|| stdout(&out).trim().to_owned())
}

/// A server answering `word` to every TCP connection on `port`.
pub(super) fn serve(word: &str, port: &str) -> String {
    format!("while :; do echo {word} | nc -l -p {port}; done")
}

/// Veths enslaved to the daemon's bridge.
pub(super) fn bridge_ports(daemon: &Daemon) -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &daemon.bridge()])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// berth-nat's nftables table, as `nft list` prints it (empty when it does not exist).
pub(super) fn nat_table() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", "berth"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Leases of every network (host-local's files other than its cursor and lock), as
/// `network/ip`.
pub(super) fn leases(daemon: &Daemon) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(networks) = std::fs::read_dir(daemon.root().join("cni/ipam")) else {
        return found;
    };
    for network in networks.flatten() {
        let name = network.file_name().to_string_lossy().into_owned();
        for entry in std::fs::read_dir(network.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.parse::<Ipv4Addr>().is_ok() {
                found.push(format!("{name}/{file}"));
            }
        }
    }
    found
}

/// The filter and nat tables' rules, as `iptables -S` prints them.
pub(super) fn iptables_rules() -> String {
    let mut rules = String::new();
    for table in ["filter", "nat"] {
        let out = std::process::Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .expect("iptables");
        assert!(out.status.success(), "iptables -t {table} -S: {out:?}");
        rules.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    rules
}

/// `10.128.5.` of `10.128.5.0/24`: what every address of a test daemon's subnet starts with.
pub(super) fn subnet_prefix(cidr: &str) -> String {
    let net = cidr.split('/').next().expect("a CIDR");
    let cut = net.rfind('.').expect("an IPv4 address");
    net[..=cut].to_owned()
}

/// Asserts that the daemon's networks hold nothing of any container: no pinned namespace,
/// no record, no lease, no veth on its bridge, no iptables rule naming one of `ids` or an
/// address of its subnets, no nft chain or DNAT of one in berth-nat's table.
pub(super) fn assert_no_network_state(daemon: &Daemon, ids: &[String], subnets: &[String]) {
    let netns = daemon.root().join("run/netns");
    let pinned: Vec<_> = std::fs::read_dir(&netns)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(pinned.is_empty(), "namespaces left: {pinned:?}");
    let records: Vec<_> = std::fs::read_dir(daemon.root().join("attachments"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect();
    assert!(records.is_empty(), "attachment records left: {records:?}");
    assert_eq!(leases(daemon), Vec::<String>::new(), "leases left");
    assert_eq!(bridge_ports(daemon).trim(), "", "veths left on the bridge");
    let rules = iptables_rules();
    let prefixes: Vec<String> = subnets.iter().map(|s| subnet_prefix(s)).collect();
    let left: Vec<&str> = rules
        .lines()
        .filter(|rule| {
            ids.iter().any(|id| rule.contains(id.as_str()))
                || prefixes.iter().any(|p| rule.contains(p.as_str()))
        })
        .collect();
    assert!(left.is_empty(), "iptables rules left: {left:#?}");
    // berth-nat's table keeps the network's own elements (its bridge and subnet) while the
    // network exists; nothing of a container may be left: no chain named after it, no DNAT
    // to an address of the subnets.
    let table = nat_table();
    let left: Vec<&str> = table
        .lines()
        .filter(|line| {
            ids.iter().any(|id| line.contains(id.as_str()))
                || prefixes
                    .iter()
                    .any(|p| line.contains(&format!("dnat to {p}")))
        })
        .collect();
    assert!(left.is_empty(), "nft rules left: {left:#?}");
}

pub(super) fn assert_no_network_left(daemon: &Daemon, id: &str) {
    assert!(
        !daemon.root().join("run/netns").join(id).exists(),
        "netns left"
    );
    assert!(
        !daemon.root().join("attachments").join(id).exists(),
        "attachment records left"
    );
    assert_eq!(leases(daemon), Vec::<String>::new(), "leases left");
    assert_eq!(bridge_ports(daemon).trim(), "", "veths left on the bridge");
}

#[test]
fn two_containers_talk_tcp_by_address_and_by_name() {
    let daemon = Daemon::start();
    let id = run_detached(
        &daemon,
        &[
            "--network",
            "bridge",
            "--name",
            "srv",
            "--network-alias",
            "web",
            IMAGE,
            "sh",
            "-c",
            &serve("hello", "8000"),
        ],
    );
    let info = inspect(&daemon, "srv");
    let ip = info["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
        .as_str()
        .expect("an address")
        .to_owned();
    assert!(!ip.is_empty(), "{info}");
    assert_eq!(nc_until_answered(&daemon, &ip, "8000"), "hello");
    assert_eq!(nc_until_answered(&daemon, "srv", "8000"), "hello");
    assert_eq!(nc_until_answered(&daemon, "web", "8000"), "hello");
    let hosts = std::fs::read_to_string(daemon.state_dir(&id).join("hosts")).expect("hosts");
    assert!(hosts.contains(&ip), "{hosts}");
    daemon.ok(&["rm", "-f", "srv"]);
    daemon.assert_nothing_left(&id);
    assert_no_network_left(&daemon, &id);
}

#[test]
fn a_published_port_serves_the_hosts_loopback_and_port_lists_it() {
    let daemon = Daemon::start();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = run_detached(
        &daemon,
        &[
            "-p",
            &publish,
            "--network",
            "bridge",
            IMAGE,
            "sh",
            "-c",
            &serve("published", "80"),
        ],
    );
    let listed = daemon.ok(&["port", &id]);
    assert_eq!(listed.trim(), format!("80/tcp -> 127.0.0.1:{port}"));
    let answer = eventually(Duration::from_secs(20), "the published port", || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(answer.trim(), "published");
    daemon.ok(&["rm", "-f", &id]);
    daemon.assert_nothing_left(&id);
    assert_no_network_left(&daemon, &id);
}

/// The interfaces a container sees (`ls /sys/class/net`) with `args` before the image.
fn interfaces(daemon: &Daemon, args: &[&str]) -> Vec<String> {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[IMAGE, "sh", "-c", "ls /sys/class/net"]);
    let out = daemon.ok(&all);
    out.split_whitespace().map(str::to_owned).collect()
}

/// A veth pair on the host, deleted on drop.
struct HostLink(String);

impl HostLink {
    fn new(name: &str) -> Self {
        let peer = format!("{name}p");
        let out = std::process::Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
            .output()
            .expect("ip link add");
        assert!(out.status.success(), "ip link add {name}: {out:?}");
        Self(name.to_owned())
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

#[test]
fn bridge_is_the_default_none_has_only_loopback_and_host_sees_the_hosts_links() {
    let daemon = Daemon::start();
    assert_eq!(interfaces(&daemon, &["--network", "none"]), ["lo"]);
    assert_eq!(interfaces(&daemon, &[]), ["eth0", "lo"]);
    assert_eq!(
        interfaces(&daemon, &["--network", "bridge"]),
        ["eth0", "lo"]
    );
    let link = HostLink::new(&format!("bt{}h", std::process::id()));
    let host = interfaces(&daemon, &["--network", "host"]);
    assert!(host.contains(&link.0), "{host:?}");
    assert!(host.contains(&daemon.bridge()), "{host:?}");
    drop(link);
    daemon.assert_empty();
    assert_no_network_state(&daemon, &[], &[daemon.subnet()]);
}

#[test]
fn a_container_on_another_network_cannot_reach_them() {
    let daemon = Daemon::start();
    let other = "other";
    daemon.ok(&[
        "network",
        "create",
        "--subnet",
        &daemon.user_subnet(1),
        "--bridge",
        &daemon.user_bridge(1),
        other,
    ]);
    let id = run_detached(
        &daemon,
        &["--name", "srv", IMAGE, "sh", "-c", &serve("hello", "8000")],
    );
    let info = inspect(&daemon, "srv");
    let ip = info["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
        .as_str()
        .expect("an address")
        .to_owned();
    assert_eq!(nc_until_answered(&daemon, &ip, "8000"), "hello");
    assert_eq!(nc_on(&daemon, other, &ip, "8000", 3), None);
    assert_eq!(nc_on(&daemon, other, "srv", "8000", 1), None);
    daemon.ok(&["rm", "-f", &id]);
    daemon.ok(&["network", "rm", other]);
    daemon.assert_empty();
    assert_no_network_state(&daemon, &[id], &[daemon.subnet(), daemon.user_subnet(1)]);
}

/// A namespace standing for a second machine, linked to the host by a veth pair
/// (`bt<pid>o` on the host, with the first address of the test's second user subnet; the
/// namespace has the second and a default route through the host). Removed on drop.
struct OtherHost {
    _dir: tempfile::TempDir,
    ns: std::path::PathBuf,
    link: HostLink,
    host_ip: Ipv4Addr,
}

impl OtherHost {
    fn new(daemon: &Daemon) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ns = dir.path().join("host2");
        berth_net::netns::create(&ns).expect("a namespace");
        let name = format!("bt{}o", std::process::id());
        let link = HostLink::new(&name);
        let subnet = daemon.user_subnet(2);
        let prefix = subnet_prefix(&subnet);
        let first: u8 = subnet
            .split(['.', '/'])
            .nth(3)
            .and_then(|o| o.parse().ok())
            .expect("octet");
        let host_ip: Ipv4Addr = format!("{prefix}{}", first + 1).parse().expect("ip");
        let peer_ip = format!("{prefix}{}", first + 2);
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        let nsenter = |args: &[&str]| {
            let out = std::process::Command::new("nsenter")
                .arg(format!("--net={}", ns.display()))
                .arg("ip")
                .args(args)
                .output()
                .expect("nsenter");
            assert!(
                out.status.success(),
                "ip {args:?} in the namespace: {out:?}"
            );
        };
        let peer = format!("{name}p");
        ip(&["link", "set", &peer, "netns", &ns.display().to_string()]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &name]);
        ip(&["link", "set", &name, "up"]);
        nsenter(&["addr", "add", &format!("{peer_ip}/30"), "dev", &peer]);
        nsenter(&["link", "set", &peer, "up"]);
        nsenter(&["link", "set", "lo", "up"]);
        nsenter(&["route", "add", "default", "via", &host_ip.to_string()]);
        Self {
            _dir: dir,
            ns,
            link,
            host_ip,
        }
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.link.0])
            .output();
        let _ = berth_net::netns::remove(&self.ns);
    }
}

/// Reads what a TCP server at `addr` says, made in namespace `ns` (the host's when `None`).
fn tcp_read(ns: Option<&Path>, addr: SocketAddrV4) -> Option<String> {
    let connect = move || -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        (!text.is_empty()).then(|| text.trim().to_owned())
    };
    match ns {
        Some(ns) => berth_net::netns::run_in(ns, connect).expect("enter the namespace"),
        None => connect(),
    }
}

/// Sends `ping` to `addr` from a UDP socket made in `ns` (the host's when `None`) and
/// returns the answer.
fn udp_ping(ns: Option<&Path>, addr: SocketAddrV4) -> Option<String> {
    let bind = || UdpSocket::bind("0.0.0.0:0");
    let socket = match ns {
        Some(ns) => berth_net::netns::run_in(ns, bind).expect("enter the namespace"),
        None => bind(),
    }
    .expect("a UDP socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut buf = [0u8; 64];
    socket.send_to(b"ping", addr).ok()?;
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A UDP server in the container's network namespace answering `pong` to every datagram
/// until the container goes (busybox's nc has no UDP mode).
fn udp_echo_in(daemon: &Daemon, id: &str, port: u16) {
    let ns = daemon.root().join("run/netns").join(id);
    let socket = berth_net::netns::run_in(&ns, move || UdpSocket::bind(("0.0.0.0", port)))
        .expect("enter the container's namespace")
        .expect("bind in the container's namespace");
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(b"pong", from);
        }
    });
}

#[test]
fn published_tcp_and_udp_ports_serve_the_hosts_loopback_and_a_second_host() {
    let daemon = Daemon::start();
    let other = OtherHost::new(&daemon);
    let (tcp, udp) = (free_port(), free_port());
    let id = run_detached(
        &daemon,
        &[
            "-p",
            &format!("{tcp}:80"),
            "-p",
            &format!("{udp}:5353/udp"),
            IMAGE,
            "sh",
            "-c",
            &serve("published", "80"),
        ],
    );
    udp_echo_in(&daemon, &id, 5353);
    let listed = daemon.ok(&["port", &id]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            format!("80/tcp -> 0.0.0.0:{tcp}"),
            format!("5353/udp -> 0.0.0.0:{udp}")
        ]
    );
    let loopback = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let remote = |port| SocketAddrV4::new(other.host_ip, port);
    let wait = Duration::from_secs(20);
    let answer = eventually(wait, "TCP on loopback", || tcp_read(None, loopback(tcp)));
    assert_eq!(answer, "published");
    let answer = eventually(wait, "TCP from the second host", || {
        tcp_read(Some(&other.ns), remote(tcp))
    });
    assert_eq!(answer, "published");
    let answer = eventually(wait, "UDP on loopback", || udp_ping(None, loopback(udp)));
    assert_eq!(answer, "pong");
    let answer = eventually(wait, "UDP from the second host", || {
        udp_ping(Some(&other.ns), remote(udp))
    });
    assert_eq!(answer, "pong");
    daemon.ok(&["rm", "-f", &id]);
    daemon.assert_nothing_left(&id);
    assert_no_network_state(&daemon, &[id], &[daemon.subnet()]);
}

#[test]
fn publish_all_publishes_the_images_exposed_ports_on_free_host_ports() {
    let daemon = Daemon::start();
    daemon.import_image("exposing", &["--expose", "80", "--expose", "5353/udp"]);
    let id = run_detached(
        &daemon,
        &["-P", "exposing", "sh", "-c", &serve("all", "80")],
    );
    let listed = daemon.ok(&["port", &id]);
    let mut ports: Vec<(String, u16)> = listed
        .lines()
        .map(|line| {
            let (container, host) = line.split_once(" -> ").expect("CTR -> HOST");
            let (ip, port) = host.rsplit_once(':').expect("IP:PORT");
            assert_eq!(ip, "0.0.0.0", "{listed}");
            (container.to_owned(), port.parse().expect("a port"))
        })
        .collect();
    ports.sort();
    assert_eq!(
        ports.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["5353/udp", "80/tcp"],
        "{listed}"
    );
    assert!(ports.iter().all(|(_, p)| *p != 0), "{listed}");
    let tcp = ports[1].1;
    let answer = eventually(Duration::from_secs(20), "the -P port", || {
        tcp_read(None, SocketAddrV4::new(Ipv4Addr::LOCALHOST, tcp))
    });
    assert_eq!(answer, "all");
    daemon.ok(&["rm", "-f", &id]);
    assert_no_network_state(&daemon, &[id], &[daemon.subnet()]);

    let out = daemon.run(&["run", "-d", "-P", "--network", "none", "exposing", "true"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("PublishAllPorts"), "{}", stderr(&out));
    daemon.assert_empty();
}

#[test]
fn bad_network_input_is_refused_with_nothing_left() {
    let daemon = Daemon::start();
    let out = daemon.run(&["run", "-d", "-p", "80:99999", IMAGE, "true"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("--publish"), "{}", stderr(&out));

    let out = daemon.run(&["run", "-d", "--network", "nosuchnet", IMAGE, "true"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("nosuchnet"), "{}", stderr(&out));
    daemon.assert_empty();

    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let publish = format!("127.0.0.1:{port}:80");
    let out = daemon.run(&[
        "run",
        "-d",
        "--network",
        "bridge",
        "-p",
        &publish,
        IMAGE,
        "true",
    ]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    daemon.assert_empty();
    let netns = daemon.root().join("run/netns");
    let pinned = std::fs::read_dir(&netns).map(|d| d.count()).unwrap_or(0);
    assert_eq!(pinned, 0, "namespaces left in {}", netns.display());
    assert_eq!(leases(&daemon), Vec::<String>::new());
    assert!(
        !Path::new(&daemon.root().join("attachments"))
            .read_dir()
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir())))),
        "attachment records left"
    );
}
