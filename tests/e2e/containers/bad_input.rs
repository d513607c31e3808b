//! Bad input to `berth run` fails with a clear message and leaves nothing behind: no
//! container listed, no state directory, no mount under the root, no cgroup.

use super::{code, ps_json, run_detached, stderr};
use crate::support::daemon::{Daemon, IMAGE, assert_no_new_empty_cgroup, berth_cgroups};

/// Runs `berth ARGS`, which must fail; returns (exit code, stderr) after checking that the
/// daemon keeps nothing of it.
fn refused(daemon: &Daemon, args: &[&str]) -> (i32, String) {
    let containers_before = ps_json(daemon, true).len();
    let state_before = daemon.state_dirs();
    let mounts_before = daemon.mounts();
    let cgroups_before = berth_cgroups();
    let out = daemon.run(args);
    assert_ne!(code(&out), 0, "{args:?} succeeded: {out:?}");
    let err = stderr(&out);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("berth: error:"))
            .count(),
        1,
        "the error is printed once: {err}"
    );
    assert_eq!(ps_json(daemon, true).len(), containers_before, "{args:?}");
    assert_eq!(daemon.state_dirs(), state_before, "{args:?}");
    assert_eq!(daemon.mounts(), mounts_before, "{args:?}");
    assert_no_new_empty_cgroup(&cgroups_before);
    (code(&out), err)
}

#[test]
fn unknown_image_is_refused() {
    let daemon = Daemon::start();
    let (status, err) = refused(&daemon, &["run", "--rm", "no-such-image", "true"]);
    assert_eq!(status, 125);
    assert!(err.contains("no-such-image"), "{err}");
}

#[test]
fn unknown_flag_is_refused_by_the_parser() {
    let daemon = Daemon::start();
    let out = daemon.run(&["run", "--no-such-flag", IMAGE, "true"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("unexpected argument '--no-such-flag'"),
        "{out:?}"
    );
    daemon.assert_empty();
}

#[test]
fn invalid_memory_size_is_refused_naming_the_flag() {
    let daemon = Daemon::start();
    let out = daemon.run(&["run", "--memory", "12zz", IMAGE, "true"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("invalid value '12zz' for '--memory"), "{err}");
    daemon.assert_empty();
}

#[test]
fn missing_volume_path_is_refused_naming_it() {
    let daemon = Daemon::start();
    let missing = daemon.root().join("no/such/dir");
    let volume = format!("{}:/data", missing.display());
    let (status, err) = refused(&daemon, &["run", "--rm", "-v", &volume, IMAGE, "true"]);
    assert_eq!(status, 125);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let (_, err) = refused(&daemon, &["run", "-d", "-v", &volume, IMAGE, "true"]);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn duplicate_name_is_refused_and_the_first_container_runs_on() {
    let daemon = Daemon::start();
    let id = run_detached(&daemon, &["--name", "dup", IMAGE, "sleep", "1000"]);
    let (status, err) = refused(&daemon, &["run", "-d", "--name", "dup", IMAGE, "true"]);
    assert_eq!(status, 125);
    assert!(err.contains("dup"), "{err}");
    let running = ps_json(&daemon, false);
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["Id"], id.as_str());
    daemon.ok(&["rm", "-f", "dup"]);
    daemon.assert_nothing_left(&id);
}

#[test]
fn unknown_container_is_reported_once() {
    let daemon = Daemon::start();
    for args in [
        &["logs", "ghost"][..],
        &["stop", "ghost"],
        &["rm", "ghost"],
        &["exec", "ghost", "true"],
        &["inspect", "ghost"],
    ] {
        let out = daemon.run(args);
        assert_ne!(code(&out), 0, "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("berth: error: ") && err.contains("ghost") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn rm_with_a_restart_policy_is_refused_before_the_daemon() {
    let daemon = Daemon::start();
    let (status, err) = refused(
        &daemon,
        &["run", "--rm", "--restart", "always", IMAGE, "true"],
    );
    assert_eq!(status, 125);
    assert!(
        err.contains("conflicting options: --restart and --rm"),
        "{err}"
    );
}
