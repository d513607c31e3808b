//! The CLI's own checks, which need no daemon: bad flags fail before any connection, and a
//! missing daemon is reported with how to start one.

use std::os::unix::net::UnixListener;
use std::process::Command;

use super::{code, stderr};
use crate::support::berth;

/// `berth --host unix://SOCKET ARGS…` on a root of its own.
fn cli(dir: &std::path::Path, socket: &std::path::Path) -> Command {
    let mut command = berth(&dir.join("root"));
    command
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .env_remove("BERTH_HOST");
    command
}

#[test]
fn no_daemon_is_reported_with_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    for args in [
        &["ps"][..],
        &["run", "busybox", "true"],
        &["run", "-d", "busybox"],
        &["logs", "x"],
        &["exec", "x", "true"],
        &["stats", "--no-stream"],
    ] {
        let out = cli(dir.path(), &socket).args(args).output().unwrap();
        assert_ne!(code(&out), 0);
        let err = stderr(&out);
        assert_eq!(
            err.trim_end(),
            format!(
                "berth: error: cannot reach the berth daemon at unix://{}: no such file (is it \
                 running? start it with `berth daemon`, or point --host/BERTH_HOST at its socket)",
                socket.display()
            ),
            "{args:?}"
        );
    }
}

#[test]
fn the_host_comes_from_berth_host_when_no_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("elsewhere.sock");
    let out = berth(&dir.path().join("root"))
        .env("BERTH_HOST", &socket)
        .args(["ps"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains(&format!("unix://{}: no such file", socket.display())),
        "{err}"
    );
    let out = berth(&dir.path().join("root"))
        .env("BERTH_HOST", "tcp://127.0.0.1:2375")
        .args(["ps"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("invalid host"), "{out:?}");
}

#[test]
fn invalid_flags_fail_before_contacting_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    // A listener that nothing should connect to.
    let listener = UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    for (args, says) in [
        (
            &["run", "--memory", "12zz", "busybox"][..],
            "invalid value '12zz' for '--memory <BYTES>': invalid memory limit: invalid size \"12zz\"",
        ),
        (&["run", "--cpus", "lots", "busybox"], "for '--cpus"),
        (
            &["create", "--pids-limit", "-7", "busybox"],
            "for '--pids-limit",
        ),
        (&["run", "-v", "data:/data", "busybox"], "for '--volume"),
        (
            &["run", "--restart", "sometimes", "busybox"],
            "for '--restart",
        ),
        (
            &["run", "--network", "no such net", "busybox"],
            "for '--network",
        ),
        (&["run", "--name", "no/slash", "busybox"], "for '--name"),
        (
            &["run", "--no-such-flag", "busybox"],
            "unexpected argument '--no-such-flag'",
        ),
        (&["exec", "-w", "relative", "x", "true"], "for '--workdir"),
        (&["logs", "--tail", "some", "x"], "for '--tail"),
    ] {
        let out = cli(dir.path(), &socket).args(args).output().unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = cli(dir.path(), &socket)
        .args(["run", "--rm", "--restart", "on-failure", "busybox"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 125);
    assert_eq!(
        stderr(&out),
        "berth: error: conflicting options: --restart and --rm\n"
    );
    let env_file = dir.path().join("missing.env");
    let out = cli(dir.path(), &socket)
        .args(["run", "--env-file"])
        .arg(&env_file)
        .arg("busybox")
        .output()
        .unwrap();
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("missing.env"), "{out:?}");
    assert!(
        listener.accept().is_err(),
        "the CLI connected to the daemon despite invalid input"
    );
}
