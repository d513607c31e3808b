//! Issue #6, configuration sharing, through the real CLI: `berth kv` and `berth config`
//! against the daemon's embedded store and against Debian's etcd 3.4 (the daemon started
//! with `--store-endpoints`), and config values delivered into containers as files that
//! change atomically and live, as environment variables, and as a signal.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, IMAGE};
use crate::support::store::Server;
use crate::support::within;

/// A generous bound for a change to reach a container (the issue asks for 1 s; a loaded CI
/// machine gets slack, and the time seen is printed).
const DELIVERY_LIMIT: Duration = Duration::from_secs(5);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `berth ARGS` must fail with `expected` in its error.
fn refused(daemon: &Daemon, args: &[&str], expected: &str) {
    let out = daemon.run(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(expected),
        "{args:?}: expected {expected:?} in {}",
        stderr(&out)
    );
}

/// `berth exec NAME cat PATH`, or `None` when it fails.
fn cat(daemon: &Daemon, name: &str, path: &str) -> Option<String> {
    let out = daemon.run(&["exec", name, "cat", path]);
    out.status.success().then(|| stdout(&out))
}

/// The raw commands and the config commands, against whatever store `daemon` uses.
fn kv_and_config_commands(daemon: &Daemon) {
    assert_eq!(daemon.ok(&["kv", "put", "/t/a", "one"]), "OK\n");
    assert_eq!(daemon.ok(&["kv", "put", "/t/b", "two"]), "OK\n");
    assert_eq!(daemon.ok(&["kv", "get", "/t/a"]), "/t/a\none\n");
    assert_eq!(
        daemon.ok(&["kv", "get", "/t/", "--prefix"]),
        "/t/a\none\n/t/b\ntwo\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&daemon.ok(&["kv", "get", "/t/a", "--format", "json"])).unwrap();
    assert_eq!(json["value"], "one");
    let revision = json["mod_revision"].as_i64().unwrap();

    // A watch from a past revision replays it, then follows live changes.
    let mut watch = daemon
        .cli()
        .args(["kv", "watch", "/t/", "--prefix", "--rev"])
        .arg(revision.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(watch.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut expect = |wanted: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.len() < wanted.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("watch printed {seen:?}, expected {wanted:?}"),
            }
        }
        assert_eq!(seen, wanted);
        seen.clear();
    };
    expect(&["PUT", "/t/a", "one", "PUT", "/t/b", "two"]);
    daemon.ok(&["kv", "put", "/t/c", "three"]);
    expect(&["PUT", "/t/c", "three"]);
    assert_eq!(daemon.ok(&["kv", "del", "/t/", "--prefix"]), "3\n");
    expect(&["DELETE", "/t/a", "DELETE", "/t/b", "DELETE", "/t/c"]);
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(daemon.ok(&["kv", "get", "/t/", "--prefix"]), "");

    // config: set/get/ls/history/rm.
    daemon.ok(&["config", "set", "app/greeting", "hello"]);
    daemon.ok(&["config", "set", "app/greeting", "hello again"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "line 1\nline 2\n").unwrap();
    daemon.ok(&["config", "set", "app/multi", "a\nb"]);
    daemon.ok(&[
        "config",
        "set",
        "other/x",
        "--file",
        file.path().to_str().unwrap(),
    ]);
    assert_eq!(daemon.ok(&["config", "get", "app/greeting"]), "hello again");
    assert_eq!(daemon.ok(&["config", "get", "other/x"]), "line 1\nline 2\n");
    assert_eq!(
        daemon.ok(&["kv", "get", "/berth/config/app/greeting"]),
        "/berth/config/app/greeting\nhello again\n",
        "config keys are plain store keys"
    );
    assert_eq!(
        daemon.ok(&["config", "ls", "-q"]),
        "app/greeting\napp/multi\nother/x\n"
    );
    assert_eq!(
        daemon.ok(&["config", "ls", "-q", "app/"]),
        "app/greeting\napp/multi\n"
    );
    let table = daemon.ok(&["config", "ls"]);
    assert!(table.starts_with("KEY"), "{table}");
    assert!(table.contains("hello again"), "{table}");
    let history: Vec<serde_json::Value> = daemon
        .ok(&["config", "history", "app/greeting", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values: Vec<&str> = history
        .iter()
        .map(|h| h["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["hello again", "hello"]);
    let older = history[1]["mod_revision"].as_i64().unwrap().to_string();
    assert_eq!(
        daemon.ok(&["config", "get", "app/greeting", "--rev", &older]),
        "hello"
    );
    let table = daemon.ok(&["config", "history", "app/greeting"]);
    assert_eq!(table.lines().count(), 3, "{table}");

    // Bad keys and values.
    refused(
        daemon,
        &["config", "set", "/app/x", "v"],
        "invalid config key",
    );
    refused(daemon, &["config", "set", "a b", "v"], "invalid config key");
    refused(daemon, &["config", "get", "a//b"], "invalid config key");
    refused(
        daemon,
        &["config", "get", "app/none"],
        "no such config key: app/none",
    );
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), vec![b'x'; 3 << 20]).unwrap();
    refused(
        daemon,
        &[
            "config",
            "set",
            "app/big",
            "--file",
            big.path().to_str().unwrap(),
        ],
        "too large",
    );
    // Just under etcd's default limit of 1.5 MiB is taken.
    std::fs::write(big.path(), vec![b'y'; 1 << 20]).unwrap();
    daemon.ok(&[
        "config",
        "set",
        "app/big",
        "--file",
        big.path().to_str().unwrap(),
    ]);
    assert_eq!(daemon.ok(&["config", "get", "app/big"]).len(), 1 << 20);

    daemon.ok(&["config", "rm", "app/big", "app/multi", "other/x"]);
    refused(
        daemon,
        &["config", "rm", "app/big"],
        "no such config key: app/big",
    );
    assert_eq!(daemon.ok(&["config", "ls", "-q"]), "app/greeting\n");
}

/// A container with a config file, env and signal; one change reaches it.
fn a_change_reaches_a_container(daemon: &Daemon) {
    daemon.ok(&["config", "set", "svc/conf", "first"]);
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--config",
        "svc/conf:/etc/svc/conf",
        "--config-env",
        "app/greeting=GREETING",
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(
        cat(daemon, "svc", "/etc/svc/conf").as_deref(),
        Some("first")
    );
    let env = daemon.ok(&["exec", "svc", "sh", "-c", "echo \"$GREETING\""]);
    assert_eq!(env, "hello again\n");
    daemon.ok(&["config", "set", "svc/conf", "second"]);
    let took = within(DELIVERY_LIMIT, "the change in the container", || {
        cat(daemon, "svc", "/etc/svc/conf").as_deref() == Some("second")
    });
    eprintln!("a config change reached the container in {took:?}");
    daemon.ok(&["rm", "-f", "svc"]);
}

#[test]
fn kv_and_config_against_the_embedded_store_and_bad_input_creates_nothing() {
    let daemon = Daemon::start();
    kv_and_config_commands(&daemon);
    a_change_reaches_a_container(&daemon);

    // Bad bindings: refused before anything is made.
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "true"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let cases: [(&[&str], &str); 7] = [
        (
            &["--config", "no/such:/etc/x"],
            "config key no/such does not exist",
        ),
        (
            &["--config-env", "no/such=X"],
            "config key no/such does not exist",
        ),
        (&["--config", "app/greeting:etc/x"], "must be absolute"),
        (
            &["--config", "app/greeting:/etc/x:rw"],
            "not an octal file mode",
        ),
        (
            &["--config", "app/greeting:/etc/x:0800"],
            "not an octal file mode",
        ),
        (&["--config", "/app/greeting:/etc/x"], "invalid config key"),
        (
            &["-v", "/tmp:/data", "--config", "app/greeting:/data/x"],
            "would hide it",
        ),
    ];
    for (extra, expected) in cases {
        let args = run(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&daemon, &args, expected);
    }
    daemon.assert_empty();
}

#[test]
fn kv_and_config_against_etcd_through_the_daemon() {
    let data = tempfile::tempdir().unwrap();
    let etcd = Server::etcd(&data.path().join("etcd"), &[]);
    let daemon = Daemon::start_with_store(Some(&etcd.endpoint));
    kv_and_config_commands(&daemon);
    a_change_reaches_a_container(&daemon);

    // A change made while the daemon is down (the store is not) arrives when it is back.
    let mut daemon = daemon;
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "later",
        "--config",
        "app/greeting:/greeting",
        IMAGE,
        "sleep",
        "600",
    ]);
    daemon.kill();
    daemon.ok(&["config", "set", "app/greeting", "changed while down"]);
    daemon.spawn();
    let took = within(
        DELIVERY_LIMIT,
        "the change made while the daemon was down",
        || cat(&daemon, "later", "/greeting").as_deref() == Some("changed while down"),
    );
    eprintln!("caught up {took:?} after the daemon answered");
    daemon.ok(&["config", "set", "app/greeting", "hello again"]);
    daemon.ok(&["rm", "-f", "later"]);

    // The values are etcd's: etcdctl sees them.
    let out = crate::support::etcdctl::etcdctl(
        &etcd.endpoint,
        &["get", "/berth/config/app/greeting", "--print-value-only"],
    );
    assert_eq!(stdout(&out), "hello again\n");
    daemon.assert_empty();
}

/// The reader in the container: records any content that is not a whole written value, and
/// counts SIGHUPs.
const READER: &str = r#"
trap 'echo hup >> /tmp/hups' HUP
trap 'exit 0' TERM
echo "$LEVEL" > /tmp/env
( while :; do
    v=$(cat /etc/app/conf)
    case "$v" in value-*-end) ;; *) echo "[$v]" | head -c 200 >> /tmp/bad; echo >> /tmp/bad ;; esac
  done ) &
while :; do sleep 0.05; done
"#;

/// Value `i`: distinct content and length, with its ends marked.
fn value(i: usize) -> String {
    format!("value-{i}-{}-end", "x".repeat(i * 4099 % 20_000))
}

#[test]
fn config_files_change_atomically_and_live_with_a_signal_across_a_daemon_restart() {
    let mut daemon = Daemon::start();
    daemon.ok(&["config", "set", "app/conf", &value(0)]);
    daemon.ok(&["config", "set", "app/level", "debug"]);
    daemon.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--config",
        "app/conf:/etc/app/conf:0640",
        "--config-env",
        "app/level=LEVEL",
        "--config-signal",
        "SIGHUP",
        IMAGE,
        "sh",
        "-c",
        READER,
    ]);
    assert_eq!(
        cat(&daemon, "app", "/etc/app/conf"),
        Some(value(0)),
        "the file is there at start"
    );
    assert_eq!(
        daemon.ok(&["exec", "app", "stat", "-c", "%a %u", "/etc/app/conf"]),
        "640 0\n"
    );
    within(DELIVERY_LIMIT, "the env file", || {
        cat(&daemon, "app", "/tmp/env").as_deref() == Some("debug\n")
    });

    // A change reaches the file, and the signal the process.
    daemon.ok(&["config", "set", "app/conf", &value(1)]);
    let took = within(DELIVERY_LIMIT, "the first change", || {
        cat(&daemon, "app", "/etc/app/conf") == Some(value(1))
    });
    eprintln!("first change visible in the container after {took:?}");
    within(DELIVERY_LIMIT, "SIGHUP", || {
        cat(&daemon, "app", "/tmp/hups").is_some_and(|h| h.lines().count() >= 1)
    });

    // Many quick changes of different lengths while the reader loops: it never sees a
    // partial file, and the last value wins.
    for i in 2..40 {
        daemon.ok(&["config", "set", "app/conf", &value(i)]);
    }
    let took = within(DELIVERY_LIMIT, "the last change", || {
        cat(&daemon, "app", "/etc/app/conf") == Some(value(39))
    });
    eprintln!("last of 38 quick changes visible after {took:?}");

    // A restarted daemon knows the container's bindings from its record.
    daemon.kill();
    daemon.spawn();
    let hups_before = cat(&daemon, "app", "/tmp/hups").unwrap_or_default();
    daemon.ok(&["config", "set", "app/conf", &value(41)]);
    within(DELIVERY_LIMIT, "a change after the restart", || {
        cat(&daemon, "app", "/etc/app/conf") == Some(value(41))
    });
    within(DELIVERY_LIMIT, "another SIGHUP", || {
        cat(&daemon, "app", "/tmp/hups")
            .is_some_and(|h| h.lines().count() > hups_before.lines().count())
    });

    assert_eq!(
        cat(&daemon, "app", "/tmp/bad"),
        None,
        "the reader saw a partial or missing file"
    );
    assert_eq!(
        daemon.ok(&["exec", "app", "ls", "-a", "/etc/app"]),
        ".\n..\nconf\n",
        "no temp file left"
    );
    daemon.ok(&["rm", "-f", "app"]);
    daemon.assert_empty();
}
