//! Containers on one network reach each other, by address and by name through berth's
//! DNS server; networks are isolated from each other.

use std::net::{SocketAddrV4, UdpSocket};

use berth_net::AttachOptions;
use berth_net::dns::{self, DnsServer, Zone};
use berth_net::hosts::resolv_conf;
use berth_net::netns;

use crate::support::{BLOCKED_TIMEOUT, CONNECT_TIMEOUT, Host, tcp_ping, tcp_server};

#[test]
fn two_containers_on_one_network_talk_tcp_by_address() {
    let host = Host::new(1);
    let (a, b) = (host.sandbox(), host.sandbox());
    let net = &host.network.name;
    let at_a = host
        .nets
        .attach(&a, net, &AttachOptions::default())
        .expect("attach a");
    let at_b = host
        .nets
        .attach(&b, net, &AttachOptions::default())
        .expect("attach b");
    assert!(host.network.subnet.is_assignable(at_a.ip), "{at_a:?}");
    assert_ne!(at_a.ip, at_b.ip);
    assert_eq!(at_a.gateway, host.network.gateway());
    assert_eq!((at_a.ifname.as_str(), at_a.prefix), ("eth0", 24));
    assert_eq!(at_a.mac.len(), 17, "{at_a:?}");
    assert_eq!(
        host.nets.attachments(&a).expect("attachments"),
        std::slice::from_ref(&at_a)
    );
    host.nets
        .check(&a, net)
        .expect("CNI CHECK of a fresh attachment");

    let server = tcp_server(&host.nets.netns_path(&a), 8080);
    let answer = tcp_ping(
        Some(&host.nets.netns_path(&b)),
        SocketAddrV4::new(at_a.ip, 8080),
        CONNECT_TIMEOUT,
    );
    assert_eq!(answer.expect("b reaches a"), "pong ping");
    server.join().expect("server thread").expect("server");
}

#[test]
fn a_container_on_another_network_cannot_reach_them() {
    let mut host = Host::new(2);
    let other = host.add_network(3);
    let (a, b, c) = (host.sandbox(), host.sandbox(), host.sandbox());
    let at_a = host
        .nets
        .attach(&a, &host.network.name, &AttachOptions::default())
        .expect("a");
    host.nets
        .attach(&b, &host.network.name, &AttachOptions::default())
        .expect("b");
    host.nets
        .attach(&c, &other.name, &AttachOptions::default())
        .expect("c");

    let server = tcp_server(&host.nets.netns_path(&a), 8080);
    let target = SocketAddrV4::new(at_a.ip, 8080);
    let from_c = tcp_ping(Some(&host.nets.netns_path(&c)), target, BLOCKED_TIMEOUT);
    assert!(from_c.is_err(), "another network reached a: {from_c:?}");
    let from_b = tcp_ping(Some(&host.nets.netns_path(&b)), target, CONNECT_TIMEOUT);
    assert_eq!(from_b.expect("same network still reaches a"), "pong ping");
    server.join().expect("server thread").expect("server");
}

#[test]
fn containers_resolve_each_other_by_alias_through_berths_dns_on_the_gateway() {
    let host = Host::new(4);
    let (a, b) = (host.sandbox(), host.sandbox());
    let net = &host.network.name;
    let web = AttachOptions {
        aliases: vec!["web".to_owned(), "www".to_owned()],
        ..AttachOptions::default()
    };
    let at_a = host.nets.attach(&a, net, &web).expect("attach a");
    host.nets
        .attach(&b, net, &AttachOptions::default())
        .expect("attach b");
    let mut zone = Zone::new(Some("berth"));
    zone.add_attachment(&at_a);
    let server = DnsServer::bind(SocketAddrV4::new(host.network.gateway(), 53), zone)
        .expect("dns on the gateway");
    assert_eq!(
        resolv_conf(&[host.network.gateway()], &["berth".to_owned()], &[]),
        format!("nameserver {}\nsearch berth\n", host.network.gateway())
    );

    let gateway = server.local_addr();
    let ask = move |name: &'static str| {
        move || -> std::io::Result<Option<(u16, u8, Vec<std::net::Ipv4Addr>)>> {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.set_read_timeout(Some(CONNECT_TIMEOUT))?;
            socket.send_to(&dns::a_query(3, name).unwrap_or_default(), gateway)?;
            let mut buf = [0u8; 512];
            let n = socket.recv(&mut buf)?;
            Ok(dns::parse_a_reply(&buf[..n]))
        }
    };
    let in_b = host.nets.netns_path(&b);
    let www = netns::run_in(&in_b, ask("www.berth"))
        .expect("netns")
        .expect("query www");
    assert_eq!(www, Some((3, 0, vec![at_a.ip])));
    let unknown = netns::run_in(&in_b, ask("nope"))
        .expect("netns")
        .expect("query nope");
    assert_eq!(unknown, Some((3, 3, vec![])), "NXDOMAIN, not forwarded");

    let server_task = tcp_server(&host.nets.netns_path(&a), 8080);
    let answer = tcp_ping(
        Some(&in_b),
        SocketAddrV4::new(www.map(|w| w.2[0]).expect("ip"), 8080),
        CONNECT_TIMEOUT,
    );
    assert_eq!(answer.expect("b reaches www"), "pong ping");
    server_task.join().expect("server thread").expect("server");
}

#[test]
fn a_container_on_two_networks_reaches_both() {
    let mut host = Host::new(5);
    let second = host.add_network(6);
    let (a, b, c) = (host.sandbox(), host.sandbox(), host.sandbox());
    let first = host
        .nets
        .attach(&a, &host.network.name, &AttachOptions::default())
        .expect("a on first");
    let other = host
        .nets
        .attach(&a, &second.name, &AttachOptions::default())
        .expect("a on second");
    assert_eq!(
        (first.ifname.as_str(), other.ifname.as_str()),
        ("eth0", "eth1")
    );
    host.nets
        .attach(&b, &host.network.name, &AttachOptions::default())
        .expect("b");
    host.nets
        .attach(&c, &second.name, &AttachOptions::default())
        .expect("c");
    for (from, to) in [(&b, first.ip), (&c, other.ip)] {
        let server = tcp_server(&host.nets.netns_path(&a), 8080);
        let answer = tcp_ping(
            Some(&host.nets.netns_path(from)),
            SocketAddrV4::new(to, 8080),
            CONNECT_TIMEOUT,
        );
        assert_eq!(answer.expect("reaches a"), "pong ping");
        server.join().expect("server thread").expect("server");
    }
    host.nets
        .detach(&a, &second.name)
        .expect("detach from second");
    assert_eq!(host.nets.attachments(&a).expect("attachments"), [first]);
}

#[test]
fn concurrent_attaches_get_distinct_addresses() {
    let host = std::sync::Arc::new(Host::new(7));
    let ids: Vec<_> = (0..6).map(|_| host.sandbox()).collect();
    let threads: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let host = std::sync::Arc::clone(&host);
            std::thread::spawn(move || {
                host.nets
                    .attach(&id, &host.network.name, &AttachOptions::default())
                    .map(|a| a.ip)
            })
        })
        .collect();
    let mut ips: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread").expect("attach"))
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), ids.len(), "{ips:?}");
    assert_eq!(host.veths().len(), ids.len());
}
