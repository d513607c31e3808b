//! Issue #6, services: containers run with `--service NAME[:PORT]` are registered under
//! `/berth/services/NAME/<id>` while they run and pass their health checks, under a lease
//! the daemon keeps alive. The same suite runs against the daemon's embedded store, a
//! standalone `berth store` and Debian's etcd (the last two through `--store-endpoints`,
//! which outlive a killed daemon, so its lease is seen to expire).

use std::net::Ipv4Addr;
use std::process::Output;
use std::time::Duration;

use crate::service_dns::until_resolves;
use crate::support::daemon::{Daemon, IMAGE};
use crate::support::store::Server;
use crate::support::within;

/// The daemons' `--service-ttl` here.
const TTL: Duration = Duration::from_secs(2);
/// How long a health transition may take with checks every 300 ms (plus a loaded machine).
const HEALTH_LIMIT: Duration = Duration::from_secs(10);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The endpoints of service `name` in the store, read with `berth service inspect --format
/// json` (none when the service has none).
fn endpoints(daemon: &Daemon, name: &str) -> Vec<serde_json::Value> {
    let out = daemon.run(&["service", "inspect", name, "--format", "json"]);
    if !out.status.success() {
        assert!(
            stderr(&out).contains("no such service"),
            "service inspect {name}: {}",
            stderr(&out)
        );
        return Vec::new();
    }
    let services: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    services[0]["endpoints"].as_array().unwrap().clone()
}

/// The raw keys under `/berth/services/`.
fn service_keys(daemon: &Daemon) -> Vec<String> {
    daemon
        .ok(&[
            "kv",
            "get",
            "/berth/services/",
            "--prefix",
            "--format",
            "json",
        ])
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            json["key"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Container `name`'s address on its (one) network.
fn container_address(daemon: &Daemon, name: &str) -> Ipv4Addr {
    inspect(daemon, name)["NetworkSettings"]["Networks"]
        .as_object()
        .and_then(|networks| networks.values().next())
        .and_then(|network| network["IPAddress"].as_str())
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("{name} has no address"))
}

fn inspect(daemon: &Daemon, name: &str) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&daemon.ok(&["inspect", name])).unwrap();
    json[0].clone()
}

/// The STATUS column of `berth ps` for container `name`.
fn ps_status(daemon: &Daemon, name: &str) -> String {
    daemon
        .ok(&["ps", "--format", "json"])
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|c| c["Name"] == name)
        .map(|c| c["Status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Bad `--service` and health values: a clear error, no container, no key.
fn bad_input_creates_and_registers_nothing(daemon: &Daemon) {
    let cases: [(&[&str], &str); 7] = [
        (&["--service", "Web"], "invalid service name"),
        (&["--service", "web_1"], "invalid service name"),
        (&["--service", "web:70000"], "above 65535"),
        (&["--service", "web:0"], "0 is not a port"),
        (
            &["--service", "web", "--network", "none"],
            "needs an address",
        ),
        (&["--service", "web", "--service", "web:80"], "given twice"),
        (&["--health-tcp", "0"], "1-65535"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[IMAGE, "sleep", "60"]);
        let out = daemon.run(&args);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(
            stderr(&out).contains(expected),
            "{flags:?}: expected {expected:?} in {}",
            stderr(&out)
        );
    }
    assert_eq!(daemon.ok(&["ps", "-a", "-q"]), "", "a container was made");
    assert_eq!(service_keys(daemon), Vec::<String>::new());
}

/// Three `web` containers are three endpoints; a stopped one is gone at once.
fn scale_and_stop(daemon: &Daemon) {
    for i in 1..=3 {
        let name = format!("web{i}");
        let mut args = vec!["run", "-d", "--name", &name, "--service", "web:80"];
        if i == 1 {
            args.extend_from_slice(&["-p", "80"]);
        }
        args.extend_from_slice(&[IMAGE, "httpd", "-f", "-p", "80"]);
        daemon.ok(&args);
    }
    within(HEALTH_LIMIT, "three web endpoints", || {
        endpoints(daemon, "web").len() == 3
    });
    let listed = daemon.ok(&["service", "ls"]);
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("web") && l.contains(" 3 ")),
        "{listed}"
    );
    assert_eq!(daemon.ok(&["service", "ls", "-q"]), "web\n");
    let inspect1 = inspect(daemon, "web1");
    let web1 = inspect1["Id"].as_str().unwrap().to_owned();
    let address = inspect1["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    let published = inspect1["NetworkSettings"]["Ports"][0]["HostPort"]
        .as_u64()
        .unwrap();
    let all = endpoints(daemon, "web");
    let mine = all
        .iter()
        .find(|e| e["container_id"] == web1.as_str())
        .expect("web1's endpoint");
    assert_eq!(mine["container_name"], "web1");
    assert_eq!(mine["address"], address.as_str());
    assert_eq!(mine["port"], 80);
    assert_eq!(mine["host_port"], published);
    assert_eq!(mine["health"], "none");
    assert_eq!(mine["service"], "web");
    assert!(!mine["host"].as_str().unwrap().is_empty());
    // The endpoint answers on its address and port.
    // The endpoint answers HTTP on its address and port (from the host, over the bridge).
    let mut stream =
        std::net::TcpStream::connect((address.as_str(), 80)).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(&mut stream, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    assert!(answer.starts_with("HTTP/1."), "{answer:?}");
    let table = daemon.ok(&["service", "inspect", "web"]);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.contains(&address), "{table}");

    // The name: a client container resolves web.service.berth to the three addresses and
    // connects to the service by it.
    let addresses: Vec<Ipv4Addr> = (1..=3)
        .map(|i| container_address(daemon, &format!("web{i}")))
        .collect();
    daemon.ok(&["run", "-d", "--name", "client", IMAGE, "sleep", "600"]);
    let took = until_resolves(daemon, "client", "web.service.berth", Some(&addresses));
    eprintln!("web.service.berth resolved to three endpoints {took:?} after registration");
    let answer = daemon.ok(&[
        "exec",
        "client",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web.service.berth 80",
    ]);
    assert!(answer.starts_with("HTTP/1."), "{answer:?}");

    // Stop: the key is gone when stop returns, and the address leaves the name.
    daemon.ok(&["stop", "-t", "1", "web2"]);
    let took = until_resolves(
        daemon,
        "client",
        "web.service.berth",
        Some(&[addresses[0], addresses[2]]),
    );
    eprintln!("a stopped endpoint left web.service.berth {took:?} after stop returned");
    let left: Vec<String> = endpoints(daemon, "web")
        .iter()
        .map(|e| e["container_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&"web2".to_owned()), "{left:?}");
    // Start: back.
    daemon.ok(&["start", "web2"]);
    within(HEALTH_LIMIT, "web2 back", || {
        endpoints(daemon, "web").len() == 3
    });
    // kill: the container exits and its key goes at once with the supervisor.
    daemon.ok(&["kill", "web3"]);
    within(HEALTH_LIMIT, "web3 gone after kill", || {
        endpoints(daemon, "web").len() == 2
    });
    daemon.ok(&["rm", "-f", "web1", "web2", "web3"]);
    assert_eq!(endpoints(daemon, "web"), Vec::<serde_json::Value>::new());
    until_resolves(daemon, "client", "web.service.berth", None);
    daemon.ok(&["rm", "-f", "client"]);
    assert_eq!(service_keys(daemon), Vec::<String>::new());
}

/// A failing check removes the endpoint, a passing one puts it back; `ps` and `inspect`
/// show the health. Command, HTTP and TCP checks.
fn health_checks_drive_registration(daemon: &Daemon) {
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "api",
        "--service",
        "api:8080",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        IMAGE,
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 600",
    ]);
    // A check not run yet: starting, and not registered.
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--service",
        "slow",
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(
        ps_status(daemon, "slow").ends_with("(health: starting)"),
        "{}",
        ps_status(daemon, "slow")
    );
    assert_eq!(
        inspect(daemon, "slow")["State"]["Health"]["Status"],
        "starting"
    );
    assert!(
        endpoints(daemon, "slow").is_empty(),
        "registered before a check passed"
    );
    daemon.ok(&["rm", "-f", "slow"]);
    assert!(
        inspect(daemon, "api")["State"]["Health"].is_object(),
        "a container with a check has State.Health"
    );
    let took = within(HEALTH_LIMIT, "api healthy and registered", || {
        endpoints(daemon, "api").len() == 1
    });
    eprintln!("registered {took:?} after run returned (checks every 300 ms)");
    let endpoint = &endpoints(daemon, "api")[0];
    assert_eq!(endpoint["health"], "healthy");
    assert_eq!(endpoint["port"], 8080);
    assert!(ps_status(daemon, "api").ends_with("(healthy)"));
    let health = &inspect(daemon, "api")["State"]["Health"];
    assert_eq!(health["Status"], "healthy");
    assert_eq!(health["FailingStreak"], 0);
    assert_eq!(
        health["Log"].as_array().unwrap().last().unwrap()["ExitCode"],
        0
    );

    // Failing: unhealthy after two failures, and out of the service.
    daemon.ok(&["exec", "api", "rm", "/tmp/ok"]);
    let took = within(HEALTH_LIMIT, "api deregistered", || {
        endpoints(daemon, "api").is_empty()
    });
    eprintln!("deregistered {took:?} after the check began failing");
    assert!(ps_status(daemon, "api").ends_with("(unhealthy)"));
    let health = &inspect(daemon, "api")["State"]["Health"];
    assert_eq!(health["Status"], "unhealthy");
    assert!(health["FailingStreak"].as_u64().unwrap() >= 2, "{health}");
    let log = health["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "{log:?}");
    assert_eq!(log.last().unwrap()["ExitCode"], 1);

    // Recovered: back in.
    daemon.ok(&["exec", "api", "touch", "/tmp/ok"]);
    within(HEALTH_LIMIT, "api registered again", || {
        endpoints(daemon, "api").len() == 1
    });
    assert_eq!(
        inspect(daemon, "api")["State"]["Health"]["FailingStreak"],
        0
    );

    // HTTP: 2xx healthy, 404 not; TCP: a listener healthy.
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "www",
        "--service",
        "www:8080",
        "--health-http",
        "8080/up",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo ok > /www/up && exec httpd -f -p 8080 -h /www",
    ]);
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "tcp",
        "--service",
        "tcp:9000",
        "--health-tcp",
        "9000",
        "--health-interval",
        "300ms",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "9000",
    ]);
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "closed",
        "--service",
        "closed",
        "--health-tcp",
        "9001",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        IMAGE,
        "sleep",
        "600",
    ]);
    within(HEALTH_LIMIT, "www and tcp registered", || {
        endpoints(daemon, "www").len() == 1 && endpoints(daemon, "tcp").len() == 1
    });
    within(HEALTH_LIMIT, "closed unhealthy", || {
        ps_status(daemon, "closed").ends_with("(unhealthy)")
    });
    assert!(
        endpoints(daemon, "closed").is_empty(),
        "an unhealthy endpoint"
    );
    daemon.ok(&["exec", "www", "rm", "/www/up"]);
    within(HEALTH_LIMIT, "www deregistered on 404", || {
        endpoints(daemon, "www").is_empty()
    });
    let log = inspect(daemon, "www")["State"]["Health"]["Log"].clone();
    assert!(
        log.as_array().unwrap().last().unwrap()["Output"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{log}"
    );
    daemon.ok(&["rm", "-f", "api", "www", "tcp", "closed"]);
    assert_eq!(service_keys(daemon), Vec::<String>::new());
}

/// The `create_revision` of key `key` (a key deleted and put again has a new one).
fn create_revision(daemon: &Daemon, key: &str) -> Option<i64> {
    let out = daemon.ok(&["kv", "get", key, "--format", "json"]);
    let line = out.lines().next()?;
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    json["create_revision"].as_i64()
}

/// A restart by policy takes the endpoint out while the container is down and puts it back.
fn restart_policy_reregisters(daemon: &Daemon) {
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "always",
        "--service",
        "phoenix",
        IMAGE,
        "sh",
        "-c",
        "rm -f /tmp/die; while [ ! -f /tmp/die ]; do sleep 0.1; done; exit 3",
    ]);
    within(HEALTH_LIMIT, "phoenix registered", || {
        endpoints(daemon, "phoenix").len() == 1
    });
    let id = inspect(daemon, "phoenix")["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = format!("/berth/services/phoenix/{id}");
    let first = create_revision(daemon, &key).expect("phoenix's key");
    let started = inspect(daemon, "phoenix")["State"]["StartedAt"].clone();
    daemon.ok(&["exec", "phoenix", "touch", "/tmp/die"]);
    within(HEALTH_LIMIT, "phoenix restarted", || {
        let state = &inspect(daemon, "phoenix")["State"];
        state["StartedAt"] != started && state["Running"] == true
    });
    within(HEALTH_LIMIT, "phoenix registered again", || {
        create_revision(daemon, &key).is_some_and(|r| r != first)
    });
    assert_eq!(inspect(daemon, "phoenix")["RestartCount"], 1);
    daemon.ok(&["rm", "-f", "phoenix"]);
}

/// kill -9 of the daemon: with a store that outlives it (`external`), its endpoints expire
/// after the TTL; the daemon started again registers the containers still running.
fn a_killed_daemons_endpoints_expire_and_come_back(daemon: &mut Daemon, external: bool) {
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "--service",
        "db:5432",
        IMAGE,
        "sleep",
        "600",
    ]);
    within(HEALTH_LIMIT, "survivor registered", || {
        endpoints(daemon, "db").len() == 1
    });
    daemon.kill();
    if external {
        // The store still answers `berth kv`/`service`; the lease is renewed no more.
        let took = within(TTL * 4, "the dead daemon's endpoint to expire", || {
            endpoints(daemon, "db").is_empty()
        });
        eprintln!("expired {took:?} after kill -9 (TTL {TTL:?})");
    }
    daemon.spawn();
    within(
        HEALTH_LIMIT,
        "survivor registered by the new daemon",
        || endpoints(daemon, "db").len() == 1,
    );
    // Held by the new daemon's lease: still there after the old one's TTL.
    std::thread::sleep(TTL * 2);
    assert_eq!(endpoints(daemon, "db").len(), 1, "the endpoint expired");
    daemon.ok(&["rm", "-f", "survivor"]);
    assert!(endpoints(daemon, "db").is_empty());
}

fn suite(daemon: &mut Daemon, external: bool) {
    bad_input_creates_and_registers_nothing(daemon);
    scale_and_stop(daemon);
    health_checks_drive_registration(daemon);
    restart_policy_reregisters(daemon);
    a_killed_daemons_endpoints_expire_and_come_back(daemon, external);
    daemon.assert_empty();
}

#[test]
fn services_against_the_embedded_store() {
    let mut daemon = Daemon::start_with_flags(None, &["--service-ttl", "2s"]);
    suite(&mut daemon, false);
}

#[test]
fn services_against_etcd() {
    let data = tempfile::tempdir().unwrap();
    let etcd = Server::etcd(&data.path().join("etcd"), &[]);
    let mut daemon = Daemon::start_with_flags(Some(&etcd.endpoint), &["--service-ttl", "2s"]);
    suite(&mut daemon, true);
    // The endpoints are etcd's keys: etcdctl sees none left.
    let out = crate::support::etcdctl::etcdctl(
        &etcd.endpoint,
        &["get", "/berth/services/", "--prefix", "--keys-only"],
    );
    assert_eq!(stdout(&out).trim(), "");
}

#[test]
fn services_against_a_standalone_berth_store() {
    let data = tempfile::tempdir().unwrap();
    let store = Server::berth(&data.path().join("store"), &[]);
    let mut daemon = Daemon::start_with_flags(Some(&store.endpoint), &["--service-ttl", "2s"]);
    suite(&mut daemon, true);
}

/// The store goes away for longer than the TTL and comes back: the running container's
/// endpoint is there again, and the one stopped meanwhile is not. Then a store with no data
/// at all (the lease unknown to it): the daemon takes a new lease and registers again.
#[test]
fn endpoints_survive_a_store_outage_and_a_store_that_lost_everything() {
    let data = tempfile::tempdir().unwrap();
    let mut store = Server::berth(&data.path().join("store"), &[]);
    let port = store.port();
    let daemon = Daemon::start_with_flags(Some(&store.endpoint), &["--service-ttl", "2s"]);
    for name in ["stays", "goes"] {
        daemon.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--service",
            "ha",
            IMAGE,
            "sleep",
            "600",
        ]);
    }
    within(HEALTH_LIMIT, "two ha endpoints", || {
        endpoints(&daemon, "ha").len() == 2
    });

    store.guard.kill();
    // Stopping works without the store; the delete is retried when it is back.
    daemon.ok(&["stop", "-t", "0", "goes"]);
    std::thread::sleep(TTL * 2);
    let store = Server::berth_on(&data.path().join("store"), port, &[]);
    let took = within(
        HEALTH_LIMIT,
        "only stays's endpoint after the outage",
        || {
            let names: Vec<String> = endpoints(&daemon, "ha")
                .iter()
                .map(|e| e["container_name"].as_str().unwrap().to_owned())
                .collect();
            names == ["stays"]
        },
    );
    eprintln!("registrations right {took:?} after the store came back");

    let mut store = store;
    store.guard.kill();
    let _empty = Server::berth_on(&data.path().join("empty"), port, &[]);
    let took = within(HEALTH_LIMIT, "stays registered in the new store", || {
        endpoints(&daemon, "ha").len() == 1
    });
    eprintln!("registered again {took:?} after a store without data came up");
    // Under a live lease: still there after the TTL.
    std::thread::sleep(TTL * 2);
    assert_eq!(endpoints(&daemon, "ha").len(), 1);
    daemon.ok(&["rm", "-f", "stays", "goes"]);
    assert!(endpoints(&daemon, "ha").is_empty());
    daemon.assert_empty();
}
