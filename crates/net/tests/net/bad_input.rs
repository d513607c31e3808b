//! Bad input: each is refused with a clear error and leaves nothing behind.

use std::net::Ipv4Addr;

use berth_net::{AttachOptions, CreateNetwork, NetError, Subnet};

use crate::support::{Host, name};

#[test]
fn an_unknown_network_is_refused() {
    let host = Host::new(30);
    let a = host.sandbox();
    let err = host
        .nets
        .attach(&a, &name("nope"), &AttachOptions::default())
        .unwrap_err();
    assert_eq!(err.to_string(), "network nope not found");
    assert!(host.leases().is_empty());
    assert_eq!(
        host.leftovers(&a).len(),
        1,
        "only the sandbox: {:?}",
        host.leftovers(&a)
    );
}

#[test]
fn an_address_outside_the_subnet_is_refused() {
    let host = Host::new(31);
    let a = host.sandbox();
    for ip in [
        Ipv4Addr::new(10, 9, 9, 9),
        Ipv4Addr::new(10, 200, 31, 1),
        Ipv4Addr::new(10, 200, 31, 255),
    ] {
        let options = AttachOptions {
            ip: Some(ip),
            ..AttachOptions::default()
        };
        let err = host
            .nets
            .attach(&a, &host.network.name, &options)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("address {ip} is not assignable in subnet 10.200.31.0/24 of network t31")
        );
    }
    assert!(host.leases().is_empty());
}

#[test]
fn a_fixed_address_is_given_once_and_a_taken_one_fails_cleanly() {
    let host = Host::new(32);
    let (a, b) = (host.sandbox(), host.sandbox());
    let options = AttachOptions {
        ip: Some(Ipv4Addr::new(10, 200, 32, 77)),
        ..AttachOptions::default()
    };
    let attached = host
        .nets
        .attach(&a, &host.network.name, &options)
        .expect("a gets .77");
    assert_eq!(attached.ip, Ipv4Addr::new(10, 200, 32, 77));
    let err = host
        .nets
        .attach(&b, &host.network.name, &options)
        .unwrap_err();
    assert!(matches!(err, NetError::Cni { .. }), "{err}");
    assert!(err.to_string().contains("10.200.32.77"), "{err}");
    assert_eq!(
        host.leftovers(&b).len(),
        1,
        "only the sandbox: {:?}",
        host.leftovers(&b)
    );
    assert_eq!(host.veths().len(), 1, "b's veth was removed");
}

#[test]
fn attaching_twice_or_without_a_sandbox_is_refused() {
    let host = Host::new(33);
    let a = host.sandbox();
    host.nets
        .attach(&a, &host.network.name, &AttachOptions::default())
        .expect("attach");
    let err = host
        .nets
        .attach(&a, &host.network.name, &AttachOptions::default())
        .unwrap_err();
    assert!(matches!(err, NetError::AlreadyAttached { .. }), "{err}");
    let ghost = crate::support::container_id();
    let err = host
        .nets
        .attach(&ghost, &host.network.name, &AttachOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("no sandbox for this container"),
        "{err}"
    );
    assert!(host.leftovers(&ghost).is_empty());
    assert_eq!(host.veths().len(), 1);
}

#[test]
fn invalid_and_overlapping_subnets_are_refused() {
    let host = Host::new(34);
    let err = "10.200.34.0/33".parse::<Subnet>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid subnet \"10.200.34.0/33\": prefix length must be between 8 and 30"
    );
    let err = host
        .nets
        .store()
        .create(CreateNetwork {
            name: name("again"),
            subnet: Some("10.200.34.128/25".parse().expect("subnet")),
            bridge: None,
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.200.34.128/25 overlaps subnet 10.200.34.0/24 of network t34"
    );
    assert!(matches!(
        host.nets.store().inspect(&name("again")),
        Err(NetError::NotFound(_))
    ));
}

#[test]
fn a_subnet_the_host_already_routes_is_refused() {
    let mut host = Host::new(35);
    host.routed_link("bd35", "10.202.35.1/24");
    let err = host
        .nets
        .create_network(CreateNetwork {
            name: name("shadow"),
            subnet: Some("10.202.35.0/24".parse().expect("subnet")),
            bridge: None,
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.202.35.0/24 overlaps the host's route to 10.202.35.0/24 on bd35"
    );
    assert!(matches!(
        host.nets.store().inspect(&name("shadow")),
        Err(NetError::NotFound(_))
    ));
    let ok = host.nets.create_network(CreateNetwork {
        name: name("beside"),
        subnet: Some("10.202.36.0/24".parse().expect("subnet")),
        bridge: Some("bt36".to_owned()),
    });
    assert_eq!(
        ok.expect("a free subnet").subnet.to_string(),
        "10.202.36.0/24"
    );
}
