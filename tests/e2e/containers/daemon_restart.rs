//! Containers outlive the daemon (docs/adr/0013): a kill -9 of `berth daemon` loses no
//! container, no log line and no exit; a new daemon re-adopts them all.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{eventually, inspect, ps_json, run_detached};
use crate::support::daemon::{Daemon, IMAGE};

/// Prints a numbered line every 100 ms until stopped.
const TICK: &str = "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done";

fn ticks(daemon: &Daemon, name: &str) -> usize {
    daemon
        .ok(&["logs", name])
        .lines()
        .filter(|l| l.starts_with("tick "))
        .count()
}

#[test]
fn containers_survive_kill_9_of_the_daemon_and_are_readopted() {
    let mut daemon = Daemon::start();
    let names = ["one", "two", "three"];
    let ids: Vec<String> = names
        .iter()
        .map(|name| run_detached(&daemon, &["--name", name, IMAGE, "sh", "-c", TICK]))
        .collect();
    let before: Vec<usize> = names.iter().map(|n| ticks(&daemon, n)).collect();

    daemon.kill();
    std::thread::sleep(Duration::from_secs(2));
    daemon.spawn();

    let listed = ps_json(&daemon, false);
    let mut listed_ids: Vec<&str> = listed.iter().map(|c| c["Id"].as_str().unwrap()).collect();
    listed_ids.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed_ids, expected, "every container is listed as running");
    for (name, before) in names.iter().zip(&before) {
        // 2 s at 10 lines a second, all written while no daemon ran.
        let after = ticks(&daemon, name);
        assert!(after >= before + 15, "{name}: {before} lines, then {after}");
        let numbers: Vec<u32> = daemon
            .ok(&["logs", name])
            .lines()
            .map(|l| l.trim_start_matches("tick ").parse().unwrap())
            .collect();
        let consecutive = numbers.windows(2).all(|w| w[1] == w[0] + 1);
        assert!(consecutive && numbers[0] == 1, "{name}: a line was lost");
    }
    for name in names {
        assert_eq!(daemon.ok(&["stop", name]).trim(), name);
        assert_eq!(inspect(&daemon, name)["State"]["ExitCode"], 0);
    }
    daemon.ok(&["rm", "one", "two", "three"]);
    daemon.assert_empty();
    for id in &ids {
        daemon.assert_nothing_left(id);
    }
}

#[test]
fn an_exit_while_the_daemon_is_down_is_recorded() {
    let mut daemon = Daemon::start();
    run_detached(
        &daemon,
        &["--name", "brief", IMAGE, "sh", "-c", "sleep 1; exit 9"],
    );
    daemon.kill();
    std::thread::sleep(Duration::from_secs(2));
    daemon.spawn();
    assert_eq!(daemon.ok(&["wait", "brief"]).trim(), "9");
    assert_eq!(inspect(&daemon, "brief")["State"]["Status"], "exited");
}

#[test]
fn on_failure_3_restarts_exactly_three_times() {
    let daemon = Daemon::start();
    run_detached(
        &daemon,
        &[
            "--name",
            "flaky",
            "--restart",
            "on-failure:3",
            IMAGE,
            "sh",
            "-c",
            "echo run; exit 1",
        ],
    );
    assert_eq!(daemon.ok(&["wait", "flaky"]).trim(), "1");
    let state = inspect(&daemon, "flaky");
    assert_eq!(state["RestartCount"], 3, "{state}");
    assert_eq!(state["State"]["Status"], "exited");
    assert_eq!(daemon.ok(&["logs", "flaky"]), "run\n".repeat(4));
    daemon.ok(&["rm", "flaky"]);
}

#[test]
fn always_survives_a_daemon_restart_and_even_its_supervisors_death() {
    let mut daemon = Daemon::start();
    let id = run_detached(
        &daemon,
        &[
            "--name",
            "keeper",
            "--restart",
            "always",
            IMAGE,
            "sleep",
            "1000",
        ],
    );
    // The daemon goes; the supervisor stays and keeps the container running.
    daemon.kill();
    std::thread::sleep(Duration::from_millis(500));
    daemon.spawn();
    let state = inspect(&daemon, "keeper");
    assert_eq!(state["State"]["Running"], true, "{state}");
    let pid = state["State"]["Pid"].as_i64().unwrap();

    // Now the daemon and the supervisor die: the next daemon starts the container again.
    daemon.kill();
    let supervisors = daemon.supervisor_pids();
    assert_eq!(supervisors.len(), 1, "one supervisor: {supervisors:?}");
    kill(Pid::from_raw(supervisors[0]), Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    daemon.spawn();
    let state = eventually(Duration::from_secs(15), "keeper running again", || {
        let state = inspect(&daemon, "keeper");
        (state["State"]["Running"] == true).then_some(state)
    });
    assert_ne!(state["State"]["Pid"].as_i64().unwrap(), pid);
    assert_eq!(ps_json(&daemon, false).len(), 1);
    daemon.ok(&["rm", "-f", "keeper"]);
    daemon.assert_nothing_left(&id);
}
