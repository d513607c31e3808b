//! Published ports (berth-nat): reachable from the host's loopback and from another
//! machine, TCP and UDP; a port in use is refused. A network chaining Debian's portmap and
//! firewall (earlier berth versions, users' own chains) publishes too.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use berth_net::{AttachOptions, NetError, PortMapping};

use crate::support::{
    CONNECT_TIMEOUT, Host, free_host_port, tcp_ping, tcp_server, udp_ping, udp_server,
};

fn ports(spec: &str) -> Vec<PortMapping> {
    PortMapping::parse_spec(spec).expect(spec)
}

#[test]
fn a_published_tcp_port_serves_the_hosts_loopback() {
    let host = Host::new(10);
    let a = host.sandbox();
    let (on_lo, on_any) = (free_host_port(), free_host_port());
    let spec = [format!("127.0.0.1:{on_lo}:80"), format!("{on_any}:81")];
    let options = AttachOptions {
        ports: spec.iter().flat_map(|s| ports(s)).collect(),
        ..AttachOptions::default()
    };
    let attached = host
        .nets
        .attach(&a, &host.network.name, &options)
        .expect("attach");
    assert_eq!(attached.ports.len(), 2);

    // berth-nat (as portmap with snat: true) lets 127.0.0.1 be routed to the bridge and
    // masquerades it.
    let localnet = std::fs::read_to_string("/proc/sys/net/ipv4/conf/bt10/route_localnet");
    assert_eq!(localnet.expect("sysctl").trim(), "1");
    let server = tcp_server(&host.nets.netns_path(&a), 80);
    let answer = tcp_ping(
        None,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, on_lo),
        CONNECT_TIMEOUT,
    );
    assert_eq!(answer.expect("127.0.0.1 -> container:80"), "pong ping");
    server.join().expect("server thread").expect("server");

    let server = tcp_server(&host.nets.netns_path(&a), 81);
    let answer = tcp_ping(
        None,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, on_any),
        CONNECT_TIMEOUT,
    );
    assert_eq!(
        answer.expect("127.0.0.1 -> container:81 (published on every address)"),
        "pong ping"
    );
    server.join().expect("server thread").expect("server");
}

#[test]
fn a_published_port_serves_another_machine() {
    let mut host = Host::new(11);
    let (machine, host_ip) = host.other_machine(11);
    let a = host.sandbox();
    let port = free_host_port();
    let options = AttachOptions {
        ports: ports(&format!("{port}:80")),
        ..AttachOptions::default()
    };
    host.nets
        .attach(&a, &host.network.name, &options)
        .expect("attach");
    let server = tcp_server(&host.nets.netns_path(&a), 80);
    let answer = tcp_ping(
        Some(&machine),
        SocketAddrV4::new(host_ip, port),
        CONNECT_TIMEOUT,
    );
    assert_eq!(
        answer.expect("other machine -> host:port -> container:80"),
        "pong ping"
    );
    server.join().expect("server thread").expect("server");
}

#[test]
fn a_published_udp_port_answers_on_loopback() {
    let host = Host::new(12);
    let a = host.sandbox();
    let port = free_host_port();
    let options = AttachOptions {
        ports: ports(&format!("127.0.0.1:{port}:53/udp")),
        ..AttachOptions::default()
    };
    host.nets
        .attach(&a, &host.network.name, &options)
        .expect("attach");
    let server = udp_server(&host.nets.netns_path(&a), 53);
    let answer = udp_ping(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    assert_eq!(answer.expect("udp 127.0.0.1 -> container:53"), "pong ping");
    server.join().expect("server thread").expect("server");
}

#[test]
fn a_host_port_picked_by_berth_is_free_and_reported() {
    let host = Host::new(13);
    let a = host.sandbox();
    let options = AttachOptions {
        ports: ports("127.0.0.1::80"),
        ..AttachOptions::default()
    };
    let attached = host
        .nets
        .attach(&a, &host.network.name, &options)
        .expect("attach");
    let published = attached.ports[0];
    host.nets
        .check(&a, &host.network.name)
        .expect("berth-nat CHECK finds the DNAT");
    assert_ne!(published.host_port, 0);
    let server = tcp_server(&host.nets.netns_path(&a), 80);
    let answer = tcp_ping(
        None,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, published.host_port),
        CONNECT_TIMEOUT,
    );
    assert_eq!(answer.expect("picked port serves"), "pong ping");
    server.join().expect("server thread").expect("server");
}

#[test]
fn a_host_port_in_use_is_refused_and_nothing_leaks() {
    let host = Host::new(14);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = listener.local_addr().expect("addr").port();
    let a = host.sandbox();
    let options = AttachOptions {
        ports: ports(&format!("127.0.0.1:{busy}:80")),
        ..AttachOptions::default()
    };
    let err = host
        .nets
        .attach(&a, &host.network.name, &options)
        .unwrap_err();
    assert!(matches!(err, NetError::PortInUse { by: None, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("host port 127.0.0.1:{busy}:80/tcp is already in use")
    );
    assert!(host.leases().is_empty(), "{:?}", host.leases());
    assert!(host.veths().is_empty());

    let port = free_host_port();
    let options = AttachOptions {
        ports: ports(&format!("{port}:80")),
        ..AttachOptions::default()
    };
    host.nets
        .attach(&a, &host.network.name, &options)
        .expect("a publishes");
    let b = host.sandbox();
    let err = host
        .nets
        .attach(&b, &host.network.name, &options)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with(&format!("is already in use by container {}", a.short())),
        "{err}"
    );
    assert_eq!(
        host.leftovers(&b),
        [format!("netns {}", host.nets.netns_path(&b).display())]
    );
    assert_eq!(host.veths().len(), 1);
}

#[test]
fn a_network_chaining_debians_portmap_and_firewall_still_publishes_and_cleans_up() {
    let host = Host::new(15);
    host.use_debian_plugins();
    let a = host.sandbox();
    let port = free_host_port();
    let options = AttachOptions {
        ports: ports(&format!("127.0.0.1:{port}:80")),
        ..AttachOptions::default()
    };
    host.nets
        .attach(&a, &host.network.name, &options)
        .expect("attach");
    let left = host.leftovers(&a);
    assert!(left.iter().any(|l| l.starts_with("iptables")), "{left:?}");
    assert!(!left.iter().any(|l| l.starts_with("nft")), "{left:?}");
    let server = tcp_server(&host.nets.netns_path(&a), 80);
    let answer = tcp_ping(
        None,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        CONNECT_TIMEOUT,
    );
    assert_eq!(
        answer.expect("127.0.0.1 -> portmap -> container:80"),
        "pong ping"
    );
    server.join().expect("server thread").expect("server");
    host.nets.remove_sandbox(&a).expect("remove sandbox");
    assert_eq!(host.leftovers(&a), Vec::<String>::new());
}
