//! The hosts themselves: reachability, partitions, cleanup.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_cluster_harness::hosts::{Hosts, HostsError, ROOT, gc_stale};

/// busybox ping from host `from` to `to` with `args` before the address.
fn ping(hosts: &Hosts, from: usize, to: usize, args: &[&str]) -> std::process::Output {
    let netns = hosts.netns(from);
    let addr = hosts.addr(to).to_string();
    let mut full = vec!["netns", "exec", &netns, "busybox", "ping"];
    full.extend_from_slice(args);
    full.push(&addr);
    Command::new("ip").args(full).output().expect("run ping")
}

/// Whether host `from` can ping `to` (one packet, one second).
fn reaches(hosts: &Hosts, from: usize, to: usize) -> bool {
    ping(hosts, from, to, &["-c1", "-W1"]).status.success()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn hosts_reach_each_other_until_partitioned_and_again_after_heal() {
    let mut hosts = Hosts::new(3).expect("make hosts");
    assert!(reaches(&hosts, 0, 1) && reaches(&hosts, 1, 2) && reaches(&hosts, 2, 0));

    hosts.isolate(2).expect("isolate");
    assert!(reaches(&hosts, 0, 1), "the majority still talks");
    assert!(
        !reaches(&hosts, 0, 2) && !reaches(&hosts, 2, 1),
        "the isolated host is cut off both ways"
    );

    hosts.partition(&[&[0], &[1, 2]]).expect("partition");
    assert!(reaches(&hosts, 1, 2));
    assert!(!reaches(&hosts, 0, 1) && !reaches(&hosts, 2, 0));

    hosts.heal().expect("heal");
    assert!(reaches(&hosts, 0, 1) && reaches(&hosts, 1, 2) && reaches(&hosts, 2, 0));
}

#[test]
fn dropping_the_hosts_removes_processes_namespaces_links_and_data() {
    let mut hosts = Hosts::new(2).expect("make hosts");
    hosts
        .start(0, &["sleep".into(), "600".into()])
        .expect("start");
    hosts
        .start(1, &["sleep".into(), "600".into()])
        .expect("start");
    hosts.pause(1).expect("a paused process is killed too");
    std::fs::write(hosts.data_dir(0).join("f"), "x").expect("write data");
    let names = [hosts.netns(0), hosts.netns(1)];
    let dir = hosts.dir().to_owned();
    let tag = names[0].trim_end_matches("-0").to_owned();
    // `ip netns exec` enters the namespace after it was spawned: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Command::new("ip")
        .args(["netns", "pids", &names[0]])
        .output()
        .expect("pids")
        .stdout
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep never ran inside the namespace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(hosts);
    assert!(!netns_exists(&names[0]) && !netns_exists(&names[1]));
    assert!(!link_exists(&format!("{tag}b")));
    // A veth goes with its namespace, but the kernel removes it a moment later (a work queue
    // does it), longer on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while link_exists(&format!("{tag}v0")) {
        assert!(
            std::time::Instant::now() < deadline,
            "{tag}v0 outlived its namespace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists());
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let mut names = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut hosts = Hosts::new(1).expect("make hosts");
        hosts
            .start(0, &["sleep".into(), "600".into()])
            .expect("start");
        names = Some((hosts.netns(0), hosts.dir().to_owned()));
        panic!("the test fails while the hosts exist");
    }));
    assert!(outcome.is_err());
    let (ns, dir) = names.expect("hosts were made");
    assert!(!netns_exists(&ns) && !dir.exists());
}

#[test]
fn kill9_and_restart_run_the_same_command_again() {
    let mut hosts = Hosts::new(1).expect("make hosts");
    let argv = [
        "sh".into(),
        "-c".into(),
        "echo started; exec sleep 600".into(),
    ];
    hosts.start(0, &argv).expect("start");
    assert!(matches!(
        hosts.start(0, &argv),
        Err(HostsError::AlreadyRunning { index: 0 })
    ));
    wait_for_starts(&hosts, 1);
    hosts.kill9(0).expect("kill -9");
    assert!(!hosts.is_running(0));
    assert!(matches!(
        hosts.kill9(0),
        Err(HostsError::NotRunning { index: 0 })
    ));
    hosts.restart(0).expect("restart");
    assert!(hosts.is_running(0));
    wait_for_starts(&hosts, 2);
}

/// Waits until host 0's log says "started" `count` times.
fn wait_for_starts(hosts: &Hosts, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(hosts.log_path(0)).unwrap_or_default();
        if log.matches("started").count() == count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "log: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gc_stale_removes_what_a_dead_harness_left() {
    // A pid above pid_max never runs, and adding ours keeps parallel runs of this test apart.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("read pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number");
    let dead = pid_max + std::process::id();
    let tag = format!("bh{dead}x7");
    let ns = format!("{tag}-0");
    let bridge = format!("{tag}b");
    let dir = Path::new(ROOT).join(&tag);
    std::fs::create_dir_all(&dir).expect("make dir");
    let ok = |args: &[&str]| {
        assert!(
            Command::new("ip")
                .args(args)
                .status()
                .expect("ip")
                .success(),
            "ip {args:?}"
        )
    };
    ok(&["netns", "add", &ns]);
    ok(&["link", "add", &bridge, "type", "bridge"]);
    gc_stale();
    assert!(!netns_exists(&ns) && !link_exists(&bridge) && !dir.exists());
}

/// How many of `count` pings from `from` to `to` are answered (50 ms apart).
fn answered(hosts: &Hosts, from: usize, to: usize, count: u32) -> u32 {
    let count = count.to_string();
    let out = ping(
        hosts,
        from,
        to,
        &["-q", "-i", "0.05", "-W", "2", "-c", &count],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "N packets transmitted, M packets received, …"
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" packets received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ping summary in {text:?}"))
}

#[test]
fn a_lossy_host_loses_some_packets_not_all_until_healed() {
    let mut hosts = Hosts::new(2).expect("make hosts");
    assert_eq!(answered(&hosts, 0, 1, 20), 20, "no loss before");
    // Host 1 drops half of what it receives and half of what it sends: a ping and its answer
    // both get through a quarter of the time.
    hosts.lossy(1, 50.0).expect("lossy");
    let got = answered(&hosts, 0, 1, 60);
    assert!(
        (1..=40).contains(&got),
        "{got} of 60 pings answered through a 50% loss each way"
    );
    assert!(matches!(
        hosts.lossy(1, 150.0),
        Err(HostsError::BadLoss { .. })
    ));
    hosts.heal().expect("heal");
    assert_eq!(answered(&hosts, 0, 1, 20), 20, "no loss after heal");
}

/// The average round trip of 20 pings of 1,000 bytes from `from` to `to`, 20 ms apart (400
/// kbit/s each way), in ms.
fn round_trip_ms(hosts: &Hosts, from: usize, to: usize) -> f64 {
    let out = ping(
        hosts,
        from,
        to,
        &["-q", "-s", "1000", "-i", "0.02", "-c", "20"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // "round-trip min/avg/max = 0.061/0.098/0.165 ms"
    text.lines()
        .find_map(|l| l.strip_prefix("round-trip min/avg/max = "))
        .and_then(|v| v.split('/').nth(1))
        .and_then(|avg| avg.parse().ok())
        .unwrap_or_else(|| panic!("no round trip in {text:?}"))
}

#[test]
fn a_slow_link_delays_what_the_host_sends_until_cleared() {
    let mut hosts = Hosts::new(2).expect("make hosts");
    let before = round_trip_ms(&hosts, 0, 1);
    // 64 kbit/s, a sixth of what the pings need: host 1's answers queue up behind each other.
    hosts.slow_link(1, 64).expect("slow link");
    let slow = round_trip_ms(&hosts, 0, 1);
    assert!(
        slow > 100.0 && slow > 10.0 * before,
        "round trip {slow} ms through the slow link, {before} ms before"
    );
    hosts.clear_qdisc(1).expect("clear");
    let after = round_trip_ms(&hosts, 0, 1);
    assert!(after < 50.0, "round trip {after} ms after clearing");
}

#[test]
fn netem_either_works_or_says_the_kernel_lacks_it() {
    let mut hosts = Hosts::new(2).expect("make hosts");
    match hosts.netem(1, 10.0, Duration::from_millis(20)) {
        Ok(()) => {
            hosts.clear_qdisc(1).expect("clear netem");
            assert!(reaches(&hosts, 0, 1));
        }
        Err(HostsError::NetemUnsupported { detail }) => {
            eprintln!("netem unsupported here: {detail}")
        }
        Err(other) => panic!("netem: {other}"),
    }
}
