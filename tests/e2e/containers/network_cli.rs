//! `berth network create/ls/inspect/rm` (issue #5): a user network is made, listed (as a
//! table and as JSON), inspected, used, refused removal while in use, removed with its
//! bridge; bad input (an invalid or overlapping subnet, an unknown network, a host port in
//! use) is refused with a clear error and leaves no container, veth, namespace, lease,
//! iptables rule or nftables element.

use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;

use super::network::{assert_no_network_state, nat_table, subnet_prefix};
use super::{code, run_detached, stderr};
use crate::support::daemon::{Daemon, IMAGE};

fn inspect_network(daemon: &Daemon, name: &str) -> Value {
    let out = daemon.ok(&["network", "inspect", name]);
    let array: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    assert_eq!(array.as_array().map(Vec::len), Some(1), "{out}");
    array[0].clone()
}

fn listed_json(daemon: &Daemon) -> Vec<Value> {
    daemon
        .ok(&["network", "ls", "--format", "json"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[test]
fn a_user_network_is_created_listed_inspected_used_and_removed_with_its_bridge() {
    let daemon = Daemon::start();
    let (subnet, bridge) = (daemon.user_subnet(1), daemon.user_bridge(1));
    let out = daemon.ok(&[
        "network", "create", "--subnet", &subnet, "--bridge", &bridge, "front",
    ]);
    assert_eq!(out.trim(), "front");

    let table = daemon.ok(&["network", "ls"]);
    let mut lines = table.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "DRIVER", "BRIDGE", "SUBNET"])
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let default_subnet = daemon.subnet();
    let default_bridge = daemon.bridge();
    assert!(
        rows.contains(&vec!["berth", "bridge", &default_bridge, &default_subnet]),
        "{table}"
    );
    assert!(
        rows.contains(&vec!["front", "bridge", &bridge, &subnet]),
        "{table}"
    );

    let listed = listed_json(&daemon);
    let names: Vec<&str> = listed.iter().filter_map(|n| n["Name"].as_str()).collect();
    assert_eq!(names, ["berth", "front"], "{listed:?}");
    let front = inspect_network(&daemon, "front");
    assert_eq!(front, listed[1]);
    assert_eq!(front["Subnet"], subnet.as_str());
    assert_eq!(front["Bridge"], bridge.as_str());
    assert_eq!(front["Driver"], "bridge");
    assert_eq!(
        front["Gateway"],
        format!("{}1", subnet_prefix(&subnet)).as_str()
    );
    assert_eq!(front["Containers"], serde_json::json!([]));

    let id = run_detached(&daemon, &["--network", "front", IMAGE, "sleep", "1000"]);
    let front = inspect_network(&daemon, "front");
    assert_eq!(front["Containers"], serde_json::json!([id]));
    let out = daemon.run(&["network", "rm", "front"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    let out = daemon.run(&["network", "rm", "berth"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("default"), "{}", stderr(&out));

    daemon.ok(&["rm", "-f", &id]);
    assert_eq!(daemon.ok(&["network", "rm", "front"]).trim(), "front");
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} left"
    );
    let table = nat_table();
    assert!(
        !table.contains(&format!("\"{bridge}\"")) && !table.contains(&subnet),
        "berth-nat elements of {bridge} {subnet} left: {table}"
    );
    let names: Vec<String> = listed_json(&daemon)
        .iter()
        .filter_map(|n| n["Name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["berth"]);
    let out = daemon.run(&["network", "inspect", "front"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("front"), "{}", stderr(&out));
    daemon.assert_empty();
    assert_no_network_state(&daemon, &[id], &[daemon.subnet(), subnet]);
}

#[test]
fn invalid_and_overlapping_subnets_and_unknown_networks_are_refused_clearly() {
    let daemon = Daemon::start();
    for (cidr, says) in [
        ("10.0.0.0/33", "--subnet"),
        ("300.1.0.0/16", "--subnet"),
        ("10.1.2.3/24", "--subnet"),
        ("fe80::/64", "--subnet"),
    ] {
        let out = daemon.run(&["network", "create", "--subnet", cidr, "bad"]);
        assert_ne!(code(&out), 0, "{cidr}");
        assert!(stderr(&out).contains(says), "{cidr}: {}", stderr(&out));
    }
    let out = daemon.run(&[
        "network",
        "create",
        "--subnet",
        &daemon.subnet(),
        "--bridge",
        &daemon.user_bridge(1),
        "twin",
    ]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("overlap"), "{}", stderr(&out));
    let out = daemon.run(&["network", "create", "bad name!"]);
    assert_ne!(code(&out), 0);
    let names: Vec<String> = listed_json(&daemon)
        .iter()
        .filter_map(|n| n["Name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["berth"]);
    assert!(
        !Path::new("/sys/class/net")
            .join(daemon.user_bridge(1))
            .exists()
    );

    for network in ["nosuchnet", "other"] {
        let out = daemon.run(&["run", "-d", "--network", network, IMAGE, "true"]);
        assert_ne!(code(&out), 0);
        assert!(stderr(&out).contains(network), "{}", stderr(&out));
    }
    let out = daemon.run(&["create", "--network", "nosuchnet", IMAGE, "true"]);
    assert_ne!(code(&out), 0);
    daemon.assert_empty();
    assert_no_network_state(&daemon, &[], &[daemon.subnet()]);
}

#[test]
fn a_host_port_in_use_is_refused_and_nothing_is_left() {
    let daemon = Daemon::start();
    let taken = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    for publish in [format!("{port}:80"), format!("127.0.0.1:{port}:80")] {
        let out = daemon.run(&["run", "-d", "-p", &publish, IMAGE, "sleep", "100"]);
        assert_ne!(code(&out), 0, "{publish}");
        assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
        assert!(stderr(&out).contains(&port.to_string()), "{}", stderr(&out));
    }
    let id = run_detached(&daemon, &["-p", "80", IMAGE, "sleep", "100"]);
    let listed = daemon.ok(&["port", &id]);
    let held: u16 = listed
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let out = daemon.run(&["run", "-d", "-p", &format!("{held}:80"), IMAGE, "true"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    daemon.ok(&["rm", "-f", &id]);
    daemon.assert_empty();
    assert_no_network_state(&daemon, &[id], &[daemon.subnet()]);
}
