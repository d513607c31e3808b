//! Bridged networking in `berth run` (issue #5): containers on the test daemon's own bridge
//! and subnet (support/daemon.rs) talk TCP by address and by name through berth's DNS,
//! publish ports on the host's loopback, and leave no veth, namespace, lease or record
//! behind; bad network input is refused with nothing left. No traffic leaves loopback and
//! the test's own namespaces.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::{code, eventually, inspect, run_detached, stderr, stdout};
use crate::support::daemon::{Daemon, IMAGE};
use crate::support::ports::free_port;

/// Retries `nc TARGET PORT` inside a throwaway container until it prints something.
fn nc_until_answered(daemon: &Daemon, target: &str, port: &str) -> String {
    let script = format!(
        "for i in $(seq 100); do out=$(nc {target} {port} </dev/null 2>/dev/null) && [ -n \"$out\" ] && echo \"$out\" && exit 0; sleep 0.1; done; exit 1"
    );
    let out = daemon.run(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(code(&out), 0, "nc {target} {port}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// A server answering `word` to every TCP connection on `port`.
fn serve(word: &str, port: &str) -> String {
    format!("while :; do echo {word} | nc -l -p {port}; done")
}

/// Veths enslaved to the daemon's bridge.
fn bridge_ports(daemon: &Daemon) -> String {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &daemon.bridge()])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Leases of the default network (host-local's files other than its cursor and lock).
fn leases(daemon: &Daemon) -> Vec<String> {
    let dir = daemon.root().join("cni/ipam/berth");
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn assert_no_network_left(daemon: &Daemon, id: &str) {
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

#[test]
fn network_none_and_the_default_have_only_loopback() {
    let daemon = Daemon::start();
    for args in [&["--network", "none"][..], &[][..]] {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[IMAGE, "sh", "-c", "ls /sys/class/net"]);
        let out = daemon.ok(&all);
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["lo"],
            "{args:?}"
        );
    }
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
