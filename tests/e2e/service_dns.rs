//! Issue #6, service names: the daemon's DNS servers answer `NAME.service.berth` from the
//! endpoints in the store, for containers resolving through their resolv.conf (busybox
//! nslookup), against the embedded store and against Debian's etcd. Endpoints are written
//! straight into the store as the contract (crates/config/src/service.rs) says, the way
//! registration writes them; container names keep resolving alongside.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use berth_config::{Endpoint, EndpointHealth};

use crate::support::daemon::{Daemon, IMAGE};
use crate::support::store::Server;

/// A generous bound for a store change to reach the DNS answers (the issue asks for 1 s;
/// a loaded machine gets slack, and the time seen is printed).
const VISIBLE_LIMIT: Duration = Duration::from_secs(10);

/// Endpoint `n` of `service`: container id `nn…` (64 hex digits), address 10.250.0.n.
fn endpoint(service: &str, n: u8, port: Option<u16>) -> Endpoint {
    let id = format!("{n:02x}").repeat(32);
    Endpoint {
        service: service.parse().unwrap(),
        container_name: format!("{service}{n}"),
        container_id: id,
        host: "node1".to_owned(),
        address: Some(address(n)),
        network: Some("berth".to_owned()),
        port,
        host_port: None,
        health: EndpointHealth::None,
    }
}

fn address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, 0, n)
}

fn put(daemon: &Daemon, endpoint: &Endpoint) {
    let json = String::from_utf8(endpoint.to_json()).unwrap();
    daemon.ok(&["kv", "put", &endpoint.store_key(), &json]);
}

fn delete(daemon: &Daemon, endpoint: &Endpoint) {
    assert_eq!(daemon.ok(&["kv", "del", &endpoint.store_key()]), "1\n");
}

/// What `nslookup ARGS` in container `client` printed: `None` when it failed (NXDOMAIN),
/// else the `Address:` values after the first `Name:` line (the lines before are the
/// server's), or the whole output for other record types.
fn nslookup(daemon: &Daemon, client: &str, args: &[&str]) -> Option<String> {
    let mut all = vec!["exec", client, "nslookup"];
    all.extend_from_slice(args);
    let out = daemon.run(&all);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The A records `name` resolves to in `client`; `None` for a name that does not resolve.
pub(crate) fn resolve(daemon: &Daemon, client: &str, name: &str) -> Option<BTreeSet<Ipv4Addr>> {
    let text = nslookup(daemon, client, &["-type=a", name])?;
    let addresses = text
        .lines()
        .skip_while(|line| !line.starts_with("Name:"))
        .filter_map(|line| line.strip_prefix("Address:"))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(addresses)
}

/// Polls until `name` resolves to `expected` (`None`: does not resolve) in `client`; how
/// long that took (panics past [`VISIBLE_LIMIT`]).
pub(crate) fn until_resolves(
    daemon: &Daemon,
    client: &str,
    name: &str,
    expected: Option<&[Ipv4Addr]>,
) -> Duration {
    let expected: Option<BTreeSet<Ipv4Addr>> = expected.map(|e| e.iter().copied().collect());
    let start = Instant::now();
    loop {
        let seen = resolve(daemon, client, name);
        if seen == expected {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < VISIBLE_LIMIT,
            "{name} resolves to {seen:?} in {client}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container to resolve from, on the default bridge network (its resolv.conf names the
/// network's DNS server); its own address.
fn client(daemon: &Daemon, name: &str) -> Ipv4Addr {
    daemon.ok(&["run", "-d", "--name", name, IMAGE, "sleep", "600"]);
    let info: serde_json::Value = serde_json::from_str(&daemon.ok(&["inspect", name])).unwrap();
    info[0]["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no address: {info}"))
}

/// Services appear, grow, shrink and go in a container's DNS as the store changes.
fn services_resolve_as_the_store_changes(daemon: &Daemon) {
    let own = client(daemon, "client");
    let name = "web.service.berth";
    assert_eq!(resolve(daemon, "client", name), None, "no service yet");

    let web: Vec<Endpoint> = (1..=3).map(|n| endpoint("web", n, Some(8080))).collect();
    put(daemon, &web[0]);
    let took = until_resolves(daemon, "client", name, Some(&[address(1)]));
    eprintln!("one endpoint resolvable after {took:?}");
    put(daemon, &web[1]);
    put(daemon, &web[2]);
    let all = [address(1), address(2), address(3)];
    until_resolves(daemon, "client", name, Some(&all));
    // Any case, and with the root's dot.
    assert_eq!(
        resolve(daemon, "client", "Web.Service.Berth."),
        Some(all.into_iter().collect())
    );

    // SRV: each endpoint's port and a target that resolves to it.
    let srv =
        nslookup(daemon, "client", &["-type=srv", "_web._tcp.service.berth"]).expect("SRV records");
    for n in 1..=3u8 {
        let target = format!("{}.web.service.berth", format!("{n:02x}").repeat(6));
        assert!(srv.contains(&format!("8080 {target}")), "{srv}");
        assert_eq!(
            resolve(daemon, "client", &target),
            Some(BTreeSet::from([address(n)]))
        );
    }

    // Deregistration: the address goes.
    delete(daemon, &web[1]);
    let took = until_resolves(daemon, "client", name, Some(&[address(1), address(3)]));
    eprintln!("a deleted endpoint gone after {took:?}");

    // Another service alongside; without a port it has no SRV records.
    let api = endpoint("api", 9, None);
    put(daemon, &api);
    until_resolves(daemon, "client", "api.service.berth", Some(&[address(9)]));
    assert_eq!(
        resolve(daemon, "client", name),
        Some(BTreeSet::from([address(1), address(3)]))
    );
    let no_srv =
        nslookup(daemon, "client", &["-type=srv", "_api._tcp.service.berth"]).unwrap_or_default();
    assert!(!no_srv.contains("service ="), "{no_srv}");

    // The last endpoint gone: the name is gone.
    delete(daemon, &web[0]);
    delete(daemon, &web[2]);
    until_resolves(daemon, "client", name, None);
    delete(daemon, &api);
    until_resolves(daemon, "client", "api.service.berth", None);

    // Container names resolve as before; nothing else does.
    assert_eq!(
        resolve(daemon, "client", "client"),
        Some(BTreeSet::from([own]))
    );
    assert_eq!(resolve(daemon, "client", "example.com"), None);
}

#[test]
fn service_names_resolve_from_the_embedded_store() {
    let daemon = Daemon::start();
    services_resolve_as_the_store_changes(&daemon);
    daemon.ok(&["rm", "-f", "client"]);
    daemon.assert_empty();
}

#[test]
fn service_names_resolve_from_etcd_and_catch_up_after_a_daemon_restart() {
    let data = tempfile::tempdir().unwrap();
    let etcd = Server::etcd(&data.path().join("etcd"), &[]);
    let mut daemon = Daemon::start_with_store(Some(&etcd.endpoint));
    services_resolve_as_the_store_changes(&daemon);

    // Changes made while the daemon is down (the store is not) are answered once it is
    // back: its first read of the store replaces what it knew.
    let before = endpoint("db", 4, Some(5432));
    put(&daemon, &before);
    until_resolves(&daemon, "client", "db.service.berth", Some(&[address(4)]));
    daemon.kill();
    delete(&daemon, &before);
    let after = endpoint("db", 5, Some(5432));
    put(&daemon, &after);
    daemon.spawn();
    let took = until_resolves(&daemon, "client", "db.service.berth", Some(&[address(5)]));
    eprintln!("caught up {took:?} after the daemon answered");
    delete(&daemon, &after);

    // The endpoints are etcd's keys: etcdctl sees what the daemon answered from.
    let out = crate::support::etcdctl::etcdctl(
        &etcd.endpoint,
        &["get", "/berth/services/", "--prefix", "--keys-only"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    daemon.ok(&["rm", "-f", "client"]);
    daemon.assert_empty();
}
