//! Resource limits hold, by the kernel's own accounting, and the accounting reads back.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_runtime::{
    ContainerDriver, ExitStatus, HostFacts, RunOptions, SpecInput, UserDb, build_spec,
};
use nix::sys::signal::Signal;

use crate::sandbox::{Sandbox, host_disk, options};

#[test]
fn oom_kill_is_reported() {
    let sandbox = Sandbox::new();
    let limited = RunOptions {
        memory: Some("32m".parse().expect("memory")),
        ..options()
    };
    // awk doubles a string until the 32 MiB limit is hit.
    let (exit, out) = sandbox.run(limited, &["awk", "BEGIN { s = \"x\"; while (1) s = s s }"]);
    assert_eq!(
        exit,
        ExitStatus {
            code: 137,
            oom_killed: true
        },
        "{out}"
    );
    sandbox.assert_nothing_left();
}

#[test]
fn fork_bomb_is_contained_by_the_pids_limit() {
    let sandbox = Sandbox::new();
    let limited = RunOptions {
        pids_limit: Some("64".parse().expect("pids")),
        ..options()
    };
    sandbox.start(
        limited,
        &["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 60"],
    );
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        let stats = sandbox.driver.stats(&sandbox.id).expect("stats");
        assert_eq!(stats.pids_limit, Some(64));
        most = most.max(stats.pids);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most > 16 && most <= 64, "pids in the container: {most}");
    let host_still_forks = Command::new("true").status().expect("host fork");
    assert!(host_still_forks.success());
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}

#[test]
fn cpu_quota_holds_a_busy_loop_to_half_a_cpu() {
    let sandbox = Sandbox::new();
    let limited = RunOptions {
        cpus: Some("0.5".parse().expect("cpus")),
        ..options()
    };
    sandbox.start(limited, &["sh", "-c", "while :; do :; done"]);
    std::thread::sleep(Duration::from_millis(300));
    let used = || {
        sandbox
            .driver
            .stats(&sandbox.id)
            .expect("stats")
            .cpu_usage_ns
    };
    let (start, first) = (Instant::now(), used());
    std::thread::sleep(Duration::from_millis(2500));
    let (elapsed, last) = (start.elapsed(), used());
    let cpus = (last - first) as f64 / elapsed.as_nanos() as f64;
    assert!(
        (0.4..=0.6).contains(&cpus),
        "busy loop got {cpus:.3} CPU-s/s"
    );
    sandbox
        .driver
        .kill(&sandbox.id, Signal::SIGKILL)
        .expect("kill");
    assert_eq!(sandbox.driver.wait(&sandbox.id).expect("wait").code, 137);
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}

#[test]
fn stats_report_memory_usage_and_limit() {
    let sandbox = Sandbox::new();
    let limited = RunOptions {
        memory: Some("64m".parse().expect("memory")),
        ..options()
    };
    sandbox.start(limited, &["sleep", "30"]);
    let stats = sandbox.driver.stats(&sandbox.id).expect("stats");
    assert_eq!(stats.memory_limit, Some(64 << 20));
    assert!(stats.memory_usage > 0, "{stats:?}");
    assert!(stats.pids >= 1, "{stats:?}");
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}

#[test]
fn device_read_and_write_bps_are_applied_to_the_cgroup() {
    let Some((disk, number)) = host_disk() else {
        eprintln!("no block device on this host; nothing to throttle");
        return;
    };
    let sandbox = Sandbox::new();
    let rate = |r: &str| {
        berth_runtime::DeviceRate::resolve(&format!("{}:{r}", disk.display())).expect("rate")
    };
    let throttled = RunOptions {
        device_read_bps: vec![rate("1mb")],
        device_write_bps: vec![rate("2mb")],
        ..options()
    };
    sandbox.start(throttled, &["sleep", "30"]);
    let dirs = sandbox.cgroup_dirs();
    let read_file = |file: &str| std::fs::read_to_string(file).expect("cgroup throttle file");
    let (read, write) = match dirs.iter().find(|d| d.starts_with("/sys/fs/cgroup/blkio")) {
        Some(blkio) => (
            read_file(&format!(
                "{}/blkio.throttle.read_bps_device",
                blkio.display()
            )),
            read_file(&format!(
                "{}/blkio.throttle.write_bps_device",
                blkio.display()
            )),
        ),
        None => {
            let max = read_file(&format!("{}/io.max", dirs[0].display()));
            (max.clone(), max)
        }
    };
    assert!(
        read.contains(&format!("{number} 1048576"))
            || read.contains(&format!("{number} rbps=1048576")),
        "{read}"
    );
    assert!(
        write.contains(&format!("{number} 2097152")) || write.contains("wbps=2097152"),
        "{write}"
    );
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}

#[test]
fn blkio_weight_is_applied_or_refused_with_a_clear_error() {
    let sandbox = Sandbox::new();
    let weighted = RunOptions {
        blkio_weight: Some("300".parse().expect("weight")),
        ..options()
    };
    let host = HostFacts::detect().expect("host facts");
    if host.blkio_weight {
        let (exit, out) = sandbox.run(weighted, &["true"]);
        assert_eq!(exit.code, 0, "{out}");
    } else {
        let rootfs = sandbox.rootfs();
        let err = build_spec(&SpecInput {
            id: &sandbox.id,
            rootfs: &rootfs,
            image: None,
            options: &RunOptions {
                cmd: vec!["true".into()],
                ..weighted
            },
            users: &UserDb::default(),
            host: &host,
        })
        .expect_err("no weight policy on this host");
        assert!(
            err.to_string().contains("--blkio-weight is not supported"),
            "{err}"
        );
    }
    sandbox.assert_nothing_left();
}

#[test]
fn stats_count_block_io_written_to_disk() {
    let sandbox = Sandbox::new();
    let on_tmpfs = nix::sys::statfs::statfs(sandbox.dir.path())
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .expect("statfs of the test dir");
    if on_tmpfs {
        eprintln!("the test dir is on tmpfs; no block device to account writes to");
        return;
    }
    sandbox.start(
        options(),
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/root/blob bs=1M count=4 oflag=direct 2>/dev/null; sleep 30",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stats = sandbox.driver.stats(&sandbox.id).expect("stats");
    while stats.block_write_bytes < 4 << 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stats = sandbox.driver.stats(&sandbox.id).expect("stats");
    }
    assert!(stats.block_write_bytes >= 4 << 20, "{stats:?}");
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}
