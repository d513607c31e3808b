//! Debian's `etcdctl` (API v3) against `berth store`: the commands users type.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::etcdctl::{etcdctl, ok};
use crate::support::store::Server;

fn berth() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::berth(&dir.path().join("data"), &[]);
    (dir, server)
}

/// Runs `etcdctl watch …` for `secs` seconds and returns what it printed.
fn watch_for(endpoint: &str, secs: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/timeout")
        .args([secs, "/usr/bin/etcdctl", "--endpoints", endpoint, "watch"])
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("run etcdctl watch");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn etcdctl_put_and_get_with_prefix_limit_rev_sort_keys_only_and_count() {
    let (_dir, s) = berth();
    let e = s.endpoint.as_str();
    for (k, v) in [
        ("/app/b", "2"),
        ("/app/a", "1"),
        ("/app/c", "3"),
        ("/other", "x"),
    ] {
        assert_eq!(ok(e, &["put", k, v]).trim(), "OK");
    }
    ok(e, &["put", "/app/a", "1b"]);
    assert_eq!(ok(e, &["get", "/app/a"]), "/app/a\n1b\n");
    assert_eq!(
        ok(e, &["get", "/app/", "--prefix", "--keys-only"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/app/a", "/app/b", "/app/c"]
    );
    assert_eq!(
        ok(
            e,
            &[
                "get",
                "/app/",
                "--prefix",
                "--limit",
                "2",
                "--print-value-only"
            ]
        ),
        "1b\n2\n"
    );
    assert_eq!(ok(e, &["get", "/app/a", "--rev", "3"]), "/app/a\n1\n");
    assert_eq!(
        ok(
            e,
            &[
                "get",
                "/app/",
                "--prefix",
                "--sort-by",
                "MODIFY",
                "--order",
                "DESCEND",
                "--keys-only"
            ]
        )
        .split_whitespace()
        .next(),
        Some("/app/a")
    );
    // etcdctl 3.4 has no --count-only; the conformance suite covers it through the client.
    let json = ok(
        e,
        &["get", "/app/", "--prefix", "--limit", "1", "-w", "json"],
    );
    assert!(
        json.contains("\"more\":true") && json.contains("\"count\":3"),
        "{json}"
    );
}

#[test]
fn etcdctl_del_and_txn_change_keys_at_one_revision() {
    let (_dir, s) = berth();
    let e = s.endpoint.as_str();
    ok(e, &["put", "k1", "a"]);
    ok(e, &["put", "k2", "b"]);
    assert_eq!(ok(e, &["del", "k", "--prefix"]).trim(), "2");
    ok(e, &["put", "flag", "on"]);
    let out = Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", e, "txn"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"value(\"flag\") = \"on\"\n\nput x 1\nput y 2\n\nput z 3\n\n")?;
            child.wait_with_output()
        })
        .expect("etcdctl txn");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "SUCCESS\n\nOK\n\nOK\n"
    );
    let x = ok(e, &["get", "x", "-w", "json"]);
    let y = ok(e, &["get", "y", "-w", "json"]);
    assert!(
        x.contains("\"mod_revision\":6") && y.contains("\"mod_revision\":6"),
        "{x} {y}"
    );
    assert!(ok(e, &["get", "z"]).is_empty());
}

#[test]
fn etcdctl_watch_replays_history_with_prefix_rev_and_prev_kv() {
    let (_dir, s) = berth();
    let e = s.endpoint.as_str();
    ok(e, &["put", "w/a", "1"]);
    ok(e, &["put", "other", "1"]);
    ok(e, &["put", "w/a", "2"]);
    ok(e, &["del", "w/a"]);
    let out = watch_for(e, "2", &["--prefix", "w/", "--rev", "1", "--prev-kv"]);
    assert_eq!(
        out,
        "PUT\nw/a\n1\nPUT\nw/a\n1\nw/a\n2\nDELETE\nw/a\n2\nw/a\n\n"
    );
}

#[test]
fn etcdctl_watch_sees_live_puts() {
    let (_dir, s) = berth();
    let e = s.endpoint.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        ok(&e, &["put", "live", "v"]);
    });
    let out = watch_for(&s.endpoint, "2", &["live"]);
    writer.join().expect("writer");
    assert_eq!(out, "PUT\nlive\nv\n");
}

#[test]
fn etcdctl_lease_keys_expire_keepalive_extends_and_revoke_deletes() {
    let (_dir, s) = berth();
    let e = s.endpoint.as_str();
    let granted = ok(e, &["lease", "grant", "2"]);
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_owned();
    ok(e, &["put", "--lease", &id, "eph", "1"]);
    let ttl = ok(e, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(2s)") && ttl.contains("attached keys([eph])"),
        "{ttl}"
    );
    ok(e, &["lease", "keep-alive", "--once", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(e, &["get", "eph"]).is_empty() {
        assert!(Instant::now() < deadline, "leased key never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok(e, &["lease", "timetolive", &id]).contains("already expired"));

    let id2 = ok(e, &["lease", "grant", "60"])
        .split_whitespace()
        .nth(1)
        .expect("id")
        .to_owned();
    ok(e, &["put", "--lease", &id2, "held", "1"]);
    assert!(ok(e, &["lease", "list"]).contains(&id2));
    ok(e, &["lease", "revoke", &id2]);
    assert!(ok(e, &["get", "held"]).is_empty());
}

#[test]
fn etcdctl_compaction_snapshot_status_and_member_list() {
    let (dir, s) = berth();
    let e = s.endpoint.as_str();
    for i in 0..5 {
        ok(e, &["put", "c", &i.to_string()]);
    }
    assert_eq!(ok(e, &["compact", "4"]).trim(), "compacted revision 4");
    let old = etcdctl(e, &["get", "c", "--rev", "2"]);
    assert!(String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"));
    let snap = dir.path().join("snap.db");
    assert!(
        ok(e, &["snapshot", "save", snap.to_str().expect("utf-8 path")]).contains("Snapshot saved")
    );
    assert!(std::fs::metadata(&snap).map(|m| m.len()).unwrap_or(0) > 0);
    // Per-endpoint commands with host:port (the http:// form: crates/store/tests/cluster.rs).
    let hostport = format!("127.0.0.1:{}", s.port());
    let status = ok(&hostport, &["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains("\"revision\":6") && status.contains("\"version\":\"3.4.0\""),
        "{status}"
    );
    assert!(ok(e, &["member", "list"]).contains(", started, default, , http://127.0.0.1:"));
    ok(&hostport, &["defrag"]);
    assert!(ok(&hostport, &["endpoint", "hashkv"]).contains(", "));
}

#[test]
fn store_stops_cleanly_on_sigterm_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut s = Server::berth(&data, &[]);
    ok(&s.endpoint, &["put", "kept", "yes"]);
    assert!(s.guard.terminate(), "berth store did not exit 0 on SIGTERM");
    let s = Server::berth(&data, &[]);
    assert_eq!(
        ok(&s.endpoint, &["get", "kept", "--print-value-only"]),
        "yes\n"
    );
}

#[test]
fn writes_past_the_space_quota_raise_nospace_and_reads_still_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Server::berth(
        &dir.path().join("data"),
        &["--quota-backend-bytes", "300000"],
    );
    let e = s.endpoint.as_str();
    let value = "x".repeat(50_000);
    let mut refused = None;
    for i in 0..40 {
        let out = etcdctl(e, &["put", &format!("k{i}"), &value]);
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("the quota was never enforced");
    assert!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    assert!(ok(e, &["alarm", "list"]).contains("alarm:NOSPACE"));
    assert_eq!(ok(e, &["get", "k0", "--keys-only"]).trim(), "k0");
}

#[test]
fn daemon_serves_the_embedded_store_on_store_listen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::support::ports::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("--root")
        .arg(dir.path())
        .args(["daemon", "--store-listen", &url]);
    let _daemon = crate::support::process::ProcessGuard::spawn(cmd, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !etcdctl(&url, &["put", "from", "daemon"]).status.success() {
        assert!(Instant::now() < deadline, "daemon's store never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok(&url, &["get", "from", "--print-value-only"]), "daemon\n");
    assert!(
        dir.path().join("store").join("store.redb").exists(),
        "data not under <--root>/store"
    );
}

#[test]
fn periodic_auto_compaction_drops_old_revisions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = [
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "1s",
    ];
    let s = Server::berth(&dir.path().join("data"), &flags);
    let e = s.endpoint.as_str();
    ok(e, &["put", "a", "1"]);
    ok(e, &["put", "a", "2"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        ok(e, &["put", "tick", "x"]);
        let old = etcdctl(e, &["get", "a", "--rev", "2"]);
        if String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted") {
            break;
        }
        assert!(Instant::now() < deadline, "history was never compacted");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(ok(e, &["get", "a", "--print-value-only"]), "2\n");
}
