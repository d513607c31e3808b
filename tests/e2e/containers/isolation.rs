//! What a container sees: its own pid namespace, hostname and filesystem, docker's masked
//! paths, and nothing of the host but what is mounted in.

use std::fs;

use super::{code, stdout};
use crate::support::daemon::{Daemon, IMAGE};

/// `berth run --rm ARGS…`: (exit code, stdout, stderr).
fn run(daemon: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    let out = daemon.run(&all);
    (code(&out), stdout(&out), super::stderr(&out))
}

#[test]
fn the_command_is_pid_1_and_sees_only_its_own_processes() {
    let daemon = Daemon::start();
    let (status, out, _) = run(
        &daemon,
        &[IMAGE, "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
    );
    assert_eq!(status, 0);
    // sh itself, and the `ls` of the pipeline (and grep, and maybe a subshell: at most 4).
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    let count: u32 = lines.next().unwrap().parse().unwrap();
    assert!((1..=4).contains(&count), "processes seen: {count}");
}

#[test]
fn hostname_is_the_containers_own() {
    let daemon = Daemon::start();
    let (_, out, _) = run(&daemon, &["--hostname", "box", IMAGE, "hostname"]);
    assert_eq!(out, "box\n");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (_, out, _) = run(&daemon, &[IMAGE, "hostname"]);
    assert_ne!(out.trim(), host.trim());
    assert_eq!(out.trim().len(), 12, "the short id by default: {out}");
}

#[test]
fn kernel_files_are_masked() {
    let daemon = Daemon::start();
    // docker's masked paths: empty in the container where the host has them (this machine's
    // kernel may lack some, e.g. /proc/kcore).
    for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if !std::path::Path::new(path).exists() {
            continue;
        }
        let script = format!("wc -c < {path}");
        let (status, out, err) = run(&daemon, &[IMAGE, "sh", "-c", &script]);
        assert_eq!((status, out.trim()), (0, "0"), "{path}: {err}");
    }
}

#[test]
fn host_files_are_invisible_and_writes_vanish_with_the_container() {
    let daemon = Daemon::start();
    let secret = daemon.root().join("host-secret");
    fs::write(&secret, "secret").unwrap();
    let path = secret.display().to_string();
    let (status, _, _) = run(&daemon, &[IMAGE, "test", "-e", &path]);
    assert_eq!(status, 1, "{path} is visible in the container");

    let out = daemon.run(&[
        "run",
        "--name",
        "writer",
        IMAGE,
        "sh",
        "-c",
        "echo x > /written",
    ]);
    assert_eq!(code(&out), 0);
    let (status, _, _) = run(&daemon, &[IMAGE, "test", "-e", "/written"]);
    assert_eq!(status, 1, "another container sees the first one's write");
    daemon.ok(&["rm", "writer"]);
    let (status, _, _) = run(&daemon, &[IMAGE, "test", "-e", "/written"]);
    assert_eq!(status, 1);
    daemon.assert_empty();
}

#[test]
fn read_only_root_refuses_writes_but_tmpfs_takes_them() {
    let daemon = Daemon::start();
    let (status, _, err) = run(&daemon, &["--read-only", IMAGE, "touch", "/x"]);
    assert_ne!(status, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let (status, _, err) = run(
        &daemon,
        &[
            "--read-only",
            "--tmpfs",
            "/scratch",
            IMAGE,
            "touch",
            "/scratch/x",
        ],
    );
    assert_eq!(status, 0, "{err}");
}

#[test]
fn volumes_show_host_files_and_ro_refuses_writes() {
    let daemon = Daemon::start();
    let shared = daemon.root().join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::write(shared.join("in"), "from the host\n").unwrap();
    let rw = format!("{}:/data", shared.display());
    let (status, out, _) = run(
        &daemon,
        &[
            "-v",
            &rw,
            IMAGE,
            "sh",
            "-c",
            "cat /data/in; echo back > /data/out",
        ],
    );
    assert_eq!((status, out.as_str()), (0, "from the host\n"));
    assert_eq!(fs::read_to_string(shared.join("out")).unwrap(), "back\n");

    let ro = format!("{}:/data:ro", shared.display());
    let (status, _, err) = run(&daemon, &["-v", &ro, IMAGE, "touch", "/data/new"]);
    assert_ne!(status, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!shared.join("new").exists());
}

#[test]
fn env_workdir_and_user_reach_the_process() {
    let daemon = Daemon::start();
    let env_file = daemon.root().join("env");
    fs::write(&env_file, "# a comment\nFROM_FILE=yes\n").unwrap();
    let env_file = env_file.display().to_string();
    let (status, out, err) = run(
        &daemon,
        &[
            "-e",
            "A=1",
            "--env-file",
            &env_file,
            "-w",
            "/tmp",
            "-u",
            "65534:65534",
            IMAGE,
            "sh",
            "-c",
            "echo $A $FROM_FILE $(pwd) $(id -u):$(id -g)",
        ],
    );
    assert_eq!(
        (status, out.as_str()),
        (0, "1 yes /tmp 65534:65534\n"),
        "{err}"
    );
}
