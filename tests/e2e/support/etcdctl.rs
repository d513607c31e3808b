//! Running Debian's `etcdctl` (API v3) against an endpoint.

use std::process::{Command, Output};

/// Runs `etcdctl --endpoints ENDPOINT ARGS…` with a short command timeout.
pub fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoint,
            "--command-timeout",
            "5s",
            "--dial-timeout",
            "3s",
        ])
        .args(args)
        .output()
        .expect("run etcdctl")
}

/// Runs etcdctl, asserts success and returns its standard output.
pub fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoint, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
