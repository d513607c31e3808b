//! Limits given as `berth run` flags hold, by the kernel's own accounting as `berth stats`
//! reads it. The fork bomb and the CPU quota run alone (.config/nextest.toml).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{code, inspect, run_detached};
use crate::support::daemon::{Daemon, IMAGE};

fn stats(daemon: &Daemon, name: &str) -> Value {
    let out = daemon.ok(&["stats", "--no-stream", "--format", "json", name]);
    serde_json::from_str(out.trim()).expect("one JSON object")
}

#[test]
fn memory_limit_oom_kills_with_137_and_inspect_says_so() {
    let daemon = Daemon::start();
    // awk doubles a string until the 32 MiB limit is hit.
    let out = daemon.run(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        IMAGE,
        "awk",
        "BEGIN { s = \"x\"; while (1) s = s s }",
    ]);
    assert_eq!(code(&out), 137, "{out:?}");
    let state = &inspect(&daemon, "hog")["State"];
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137);
    assert_eq!(daemon.ok(&["wait", "hog"]).trim(), "137");
    daemon.ok(&["rm", "hog"]);
}

#[test]
fn fork_bomb_is_contained_by_the_pids_limit() {
    let daemon = Daemon::start();
    run_detached(
        &daemon,
        &[
            "--name",
            "bomb",
            "--pids-limit",
            "64",
            IMAGE,
            "sh",
            "-c",
            "bomb() { bomb | bomb & }; bomb; sleep 60",
        ],
    );
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < deadline {
        most = most.max(stats(&daemon, "bomb")["Pids"].as_u64().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most > 16 && most <= 64, "pids in the container: {most}");
    let host_still_forks = Command::new("true").status().expect("host fork");
    assert!(host_still_forks.success());
    daemon.ok(&["rm", "-f", "bomb"]);
    daemon.assert_empty();
}

#[test]
fn cpu_quota_holds_a_busy_loop_to_half_a_cpu() {
    let daemon = Daemon::start();
    run_detached(
        &daemon,
        &[
            "--name",
            "busy",
            "--cpus",
            "0.5",
            IMAGE,
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let used = || stats(&daemon, "busy")["CpuUsageNs"].as_u64().unwrap();
    let (start, first) = (Instant::now(), used());
    std::thread::sleep(Duration::from_millis(3000));
    let (last, elapsed) = (used(), start.elapsed());
    let cpus = (last - first) as f64 / elapsed.as_nanos() as f64;
    assert!(
        (0.4..=0.6).contains(&cpus),
        "busy loop got {cpus:.3} CPU-s/s"
    );
    daemon.ok(&["rm", "-f", "busy"]);
}
