//! `Networks` over the fake CNI executor: what it asks the plugins and what it records.
//! The sandboxes are real pinned namespaces, so these tests need root (as the suite does).

use std::net::Ipv4Addr;

use serde_json::json;

use super::*;
use crate::Protocol;
use crate::cni::FakeExec;

struct Fixture {
    _root: tempfile::TempDir,
    _run: tempfile::TempDir,
    fake: FakeExec,
    nets: Networks<FakeExec>,
    net: Network,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("root");
    let run = tempfile::tempdir().expect("run");
    let fake = FakeExec::default();
    let config = NetConfig {
        root: root.path().to_owned(),
        run_dir: run.path().to_owned(),
        default_subnet: "10.88.0.0/16".parse().expect("subnet"),
        default_bridge: crate::DEFAULT_BRIDGE.to_owned(),
    };
    let nets = Networks::open(&config, fake.clone()).expect("open");
    let net = nets
        .store()
        .inspect(&NetworkName::default_network())
        .expect("default network");
    Fixture {
        _root: root,
        _run: run,
        fake,
        nets,
        net,
    }
}

fn id(byte: u8) -> ContainerId {
    ContainerId::from_random_bytes([byte; 32])
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.nets.netns_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            // Best effort: the temporary directory goes anyway.
            let _ = netns::remove(&entry.path());
        }
    }
}

#[test]
fn attach_runs_the_stored_conflist_and_records_its_result() {
    let f = fixture();
    let a = id(1);
    f.nets.create_sandbox(&a).expect("sandbox");
    let options = AttachOptions {
        ip: Some(Ipv4Addr::new(10, 88, 0, 9)),
        ports: PortMapping::parse_spec("127.0.0.1::80/udp").expect("ports"),
        aliases: vec!["web".to_owned()],
    };
    let attached = f.nets.attach(&a, &f.net.name, &options).expect("attach");
    assert_eq!(
        (attached.ip, attached.prefix, attached.ifname.as_str()),
        (Ipv4Addr::new(10, 0, 0, 2), 24, "eth0")
    );
    assert_eq!(attached.aliases, ["web"]);
    let published = attached.ports[0];
    assert_eq!(
        (published.protocol, published.container_port),
        (Protocol::Udp, 80)
    );
    assert_ne!(published.host_port, 0);

    let calls = f.fake.calls();
    let order: Vec<_> = calls
        .iter()
        .map(|c| (c.plugin.as_str(), c.command))
        .collect();
    assert_eq!(
        order,
        [("berth-bridge", Command::Add), ("berth-nat", Command::Add)],
        "loopback is brought up in process, not by the plugin"
    );
    assert_eq!(
        calls[0].config["runtimeConfig"],
        json!({"ips": ["10.88.0.9/16"]})
    );
    assert_eq!(calls[0].config["bridge"], "berth0");
    assert_eq!(calls[0].config["hairpinMode"], true);
    assert_eq!(
        calls[1].config["runtimeConfig"]["portMappings"][0]["hostPort"],
        published.host_port
    );
    assert_eq!(calls[0].invocation.container_id, a.as_str());
    assert_eq!(
        calls[0].invocation.netns.as_deref(),
        Some(f.nets.netns_path(&a).as_path())
    );
    assert_eq!(f.nets.attachments(&a).expect("attachments"), [attached]);
    assert_eq!(f.nets.users(&f.net.name).expect("users"), [a]);
}

#[test]
fn a_failed_add_leaves_no_record() {
    let f = fixture();
    let a = id(2);
    f.nets.create_sandbox(&a).expect("sandbox");
    f.fake.fail("berth-nat", Command::Add, 100, "nft refused");
    let err = f
        .nets
        .attach(&a, &f.net.name, &AttachOptions::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "network berth: CNI plugin berth-nat ADD failed (code 100): nft refused"
    );
    assert!(f.nets.attachments(&a).expect("attachments").is_empty());
    assert!(f.nets.users(&f.net.name).expect("users").is_empty());
    let dels = f
        .fake
        .calls()
        .iter()
        .filter(|c| c.command == Command::Del)
        .count();
    assert_eq!(dels, 2, "the chain was undone");
}

#[test]
fn a_failed_del_keeps_the_record_for_a_retry() {
    let f = fixture();
    let a = id(3);
    f.nets.create_sandbox(&a).expect("sandbox");
    let attached = f
        .nets
        .attach(&a, &f.net.name, &AttachOptions::default())
        .expect("attach");
    f.fake.fail("berth-bridge", Command::Del, 11, "busy");
    assert!(f.nets.detach(&a, &f.net.name).is_err());
    assert_eq!(f.nets.attachments(&a).expect("attachments"), [attached]);
    f.fake.succeed("berth-bridge", Command::Del);
    f.nets.detach(&a, &f.net.name).expect("retry");
    assert!(f.nets.attachments(&a).expect("attachments").is_empty());
    // berth's own plugins' DELs run at once: the bridge's is one of the last two calls.
    let calls = f.fake.calls();
    let last = calls
        .iter()
        .rev()
        .take(2)
        .find(|c| c.plugin == "berth-bridge")
        .expect("the bridge's DEL");
    assert_eq!(last.command, Command::Del);
    assert_eq!(
        last.config["prevResult"]["ips"][0]["address"], "10.0.0.2/24",
        "DEL gets the ADD result"
    );
}

#[test]
fn a_host_port_published_by_another_container_is_refused() {
    let f = fixture();
    let (a, b) = (id(4), id(5));
    f.nets.create_sandbox(&a).expect("sandbox a");
    f.nets.create_sandbox(&b).expect("sandbox b");
    let port = free_port(None, Protocol::Tcp).expect("port");
    let options = AttachOptions {
        ports: PortMapping::parse_spec(&format!("{port}:80")).expect("ports"),
        ..AttachOptions::default()
    };
    f.nets.attach(&a, &f.net.name, &options).expect("a");
    let on_lo = AttachOptions {
        ports: PortMapping::parse_spec(&format!("127.0.0.1:{port}:8080")).expect("ports"),
        ..AttachOptions::default()
    };
    let err = f.nets.attach(&b, &f.net.name, &on_lo).unwrap_err();
    assert!(
        matches!(&err, NetError::PortInUse { by: Some(by), .. } if by == a.short()),
        "{err}"
    );
    let udp = AttachOptions {
        ports: PortMapping::parse_spec(&format!("{port}:80/udp")).expect("ports"),
        ..AttachOptions::default()
    };
    f.nets
        .attach(&b, &f.net.name, &udp)
        .expect("the same port for udp is free");
}

#[test]
fn gc_deletes_dead_containers_with_their_recorded_result_and_spares_the_living() {
    let f = fixture();
    let (alive, dead) = (id(6), id(7));
    for c in [&alive, &dead] {
        f.nets.create_sandbox(c).expect("sandbox");
        f.nets
            .attach(c, &f.net.name, &AttachOptions::default())
            .expect("attach");
    }
    let report = f.nets.gc(&|c| *c == alive).expect("gc");
    assert_eq!(report.detached, [(dead.clone(), f.net.name.clone())]);
    assert_eq!(report.netns_removed, [f.nets.netns_path(&dead)]);
    assert!(report.errors.is_empty());
    let dels: Vec<_> = f
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.command == Command::Del)
        .collect();
    assert_eq!(dels.len(), 2);
    assert!(
        dels.iter()
            .all(|c| c.invocation.container_id == dead.as_str())
    );
    assert!(
        dels.iter()
            .all(|c| c.config["prevResult"]["ips"][0]["address"] == "10.0.0.2/24")
    );
    assert_eq!(
        f.nets.users(&f.net.name).expect("users"),
        std::slice::from_ref(&alive)
    );
    assert!(netns::is_pinned(&f.nets.netns_path(&alive)));
}

#[test]
fn an_add_the_daemon_died_in_is_undone_before_attaching_again() {
    let f = fixture();
    let a = id(8);
    f.nets.create_sandbox(&a).expect("sandbox");
    let stale = Record::new(
        a.clone(),
        f.net.name.clone(),
        "eth0".to_owned(),
        f.nets.netns_path(&a),
        None,
        Vec::new(),
        Vec::new(),
    );
    f.nets.records().write(&stale).expect("stale record");
    let attached = f
        .nets
        .attach(&a, &f.net.name, &AttachOptions::default())
        .expect("attach");
    assert_eq!(attached.ifname, "eth0");
    let commands: Vec<_> = f.fake.calls().iter().map(|c| c.command).collect();
    assert_eq!(
        commands[..2],
        [Command::Del; 2],
        "the stale chain is DEL'd first"
    );
    let err = f
        .nets
        .attach(&a, &f.net.name, &AttachOptions::default())
        .unwrap_err();
    assert!(matches!(err, NetError::AlreadyAttached { .. }), "{err}");
}

#[test]
fn the_zone_of_a_network_holds_its_containers_aliases() {
    let f = fixture();
    let a = id(9);
    f.nets.create_sandbox(&a).expect("sandbox");
    let options = AttachOptions {
        aliases: vec!["web".to_owned()],
        ..AttachOptions::default()
    };
    let attached = f.nets.attach(&a, &f.net.name, &options).expect("attach");
    let zone = f.nets.zone(&f.net.name, Some("berth")).expect("zone");
    assert_eq!(zone.lookup("web.berth"), Some(&[attached.ip][..]));
    f.nets.detach(&a, &f.net.name).expect("detach");
    assert_eq!(
        f.nets.zone(&f.net.name, None).expect("zone"),
        Zone::new(None)
    );
}
