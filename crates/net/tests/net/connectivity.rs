//! Containers on one network reach each other; networks are isolated from each other.

use std::net::SocketAddrV4;

use berth_net::AttachOptions;

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
