//! Detach and GC release everything: no veth, no lease, no iptables or nftables rule
//! naming the container, no namespace, no record.

use berth_net::{AttachOptions, PortMapping};

use crate::support::{Host, free_host_port};

fn publishing(port: u16) -> AttachOptions {
    AttachOptions {
        ports: PortMapping::parse_spec(&format!("{port}:80")).expect("ports"),
        ..AttachOptions::default()
    }
}

#[test]
fn detach_and_remove_sandbox_release_everything() {
    let host = Host::new(20);
    let a = host.sandbox();
    host.nets
        .attach(&a, &host.network.name, &publishing(free_host_port()))
        .expect("attach");
    let left = host.leftovers(&a);
    assert!(left.iter().any(|l| l.starts_with("lease")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("nft")), "{left:?}");
    assert_eq!(host.veths().len(), 1);

    host.nets.detach(&a, &host.network.name).expect("detach");
    assert!(host.veths().is_empty(), "veth left: {:?}", host.veths());
    assert_eq!(
        host.leftovers(&a),
        [format!("netns {}", host.nets.netns_path(&a).display())]
    );
    host.nets.remove_sandbox(&a).expect("remove sandbox");
    assert_eq!(host.leftovers(&a), Vec::<String>::new());
}

#[test]
fn gc_after_a_crash_releases_a_dead_containers_leftovers() {
    let host = Host::new(21);
    let (alive, dead) = (host.sandbox(), host.sandbox());
    host.nets
        .attach(&alive, &host.network.name, &publishing(free_host_port()))
        .expect("alive");
    let dead_ip = host
        .nets
        .attach(&dead, &host.network.name, &publishing(free_host_port()))
        .expect("dead")
        .ip;
    let dnat = format!("dnat to {dead_ip}:80");
    // The daemon died before it could record the attachment: only the kernel state, the
    // lease and the namespace are left.
    std::fs::remove_dir_all(host.root().join("attachments").join(dead.as_str()))
        .expect("drop records");
    assert!(!host.leftovers(&dead).is_empty());
    assert!(
        crate::support::nat_table().contains(&dnat),
        "berth-nat publishes the dead container's port"
    );

    let report = host.nets.gc(&|id| *id == alive).expect("gc");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.leases_released.len(), 1, "{report:?}");
    assert_eq!(host.leftovers(&dead), Vec::<String>::new());
    let table = crate::support::nat_table();
    let left: Vec<_> = table.lines().filter(|l| l.contains(&dnat)).collect();
    assert!(left.is_empty(), "nft rules of the dead address: {left:?}");
    assert_eq!(
        host.veths().len(),
        1,
        "only the live container's veth stays"
    );
    assert_eq!(host.nets.attachments(&alive).expect("attachments").len(), 1);
    let kept = host.leftovers(&alive);
    assert!(kept.iter().any(|l| l.starts_with("lease")), "{kept:?}");
    assert!(kept.iter().any(|l| l.starts_with("nft")), "{kept:?}");

    let again = host.nets.gc(&|id| *id == alive).expect("second gc");
    assert_eq!(again, berth_net::GcReport::default(), "GC is idempotent");
}

#[test]
fn gc_releases_dead_containers_that_still_have_records() {
    let host = Host::new(22);
    let dead = host.sandbox();
    host.nets
        .attach(&dead, &host.network.name, &publishing(free_host_port()))
        .expect("attach");
    let report = host.nets.gc(&|_| false).expect("gc");
    assert_eq!(report.detached, [(dead.clone(), host.network.name.clone())]);
    assert_eq!(report.netns_removed.len(), 1);
    assert_eq!(host.leftovers(&dead), Vec::<String>::new());
    assert!(host.veths().is_empty());
}

#[test]
fn a_network_in_use_is_not_removed_and_an_unused_one_goes_with_its_bridge() {
    let host = Host::new(23);
    let a = host.sandbox();
    host.nets
        .attach(&a, &host.network.name, &AttachOptions::default())
        .expect("attach");
    let err = host.nets.remove_network(&host.network.name).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("network t23 is in use by {}", a.short())
    );
    host.nets.remove_sandbox(&a).expect("remove sandbox");
    host.nets
        .remove_network(&host.network.name)
        .expect("remove network");
    assert!(
        !std::path::Path::new("/sys/class/net/bt23").exists(),
        "bridge left"
    );
    let rules = crate::support::output("iptables-save", &[]);
    assert!(
        !rules
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == "bt23")),
        "rules left"
    );
    let table = crate::support::nat_table();
    assert!(
        !table.contains("\"bt23\"") && !table.contains("10.200.23.0/24"),
        "nft elements left: {table}"
    );
}

#[test]
fn remove_sandbox_releases_everything_even_while_something_holds_the_namespace() {
    let host = Host::new(24);
    let a = host.sandbox();
    host.nets
        .attach(&a, &host.network.name, &publishing(free_host_port()))
        .expect("attach");
    assert_eq!(host.veths().len(), 1);
    // A socket made in the namespace keeps it alive after it is unpinned.
    let held = berth_net::netns::run_in(&host.nets.netns_path(&a), || {
        std::net::UdpSocket::bind("0.0.0.0:0")
    })
    .expect("netns")
    .expect("socket");
    host.nets.remove_sandbox(&a).expect("remove sandbox");
    assert_eq!(host.leftovers(&a), Vec::<String>::new());
    assert!(host.veths().is_empty(), "veth left: {:?}", host.veths());
    drop(held);
}
