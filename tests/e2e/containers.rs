//! `berth run`, `ps`, `logs`, `exec`, … through the real CLI against a real `berth daemon`
//! (support/daemon.rs) on a temp root with busybox imported: what issue #3 promises a user.

mod bad_input;
mod cli;
mod concurrency;
mod daemon_restart;
mod isolation;
mod limits;
mod network;
mod network_cli;
mod network_leak;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{Daemon, IMAGE};

/// The process's exit code (panics on death by signal).
fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {output:?}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `berth run -d ARGS…`: the new container's full id.
fn run_detached(daemon: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let id = daemon.ok(&all).trim().to_owned();
    assert_eq!(id.len(), 64, "a full id: {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

/// Runs `count` detached containers from `clients` threads at once, container `n` made with
/// `args(n)`; their ids, in no particular order.
fn run_concurrently(
    daemon: &Daemon,
    count: usize,
    clients: usize,
    args: impl Fn(usize) -> Vec<String> + Sync,
) -> Vec<String> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                let args = &args;
                scope.spawn(move || {
                    (client..count)
                        .step_by(clients)
                        .map(|n| {
                            let args = args(n);
                            let args: Vec<&str> = args.iter().map(String::as_str).collect();
                            run_detached(daemon, &args)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a client"))
            .collect()
    })
}

/// `rm -f` of every one of `ids`, from `clients` threads at once.
fn remove_concurrently(daemon: &Daemon, ids: &[String], clients: usize) {
    std::thread::scope(|scope| {
        for chunk in ids.chunks(ids.len().div_ceil(clients).max(1)) {
            scope.spawn(move || {
                for id in chunk {
                    daemon.ok(&["rm", "-f", id]);
                }
            });
        }
    });
}

/// The ids `ps -a` lists, sorted.
fn all_ids(daemon: &Daemon) -> Vec<String> {
    let mut ids: Vec<String> = daemon
        .ok(&["ps", "-a", "-q", "--no-trunc"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ids.sort_unstable();
    ids
}

/// `berth inspect NAME`, the one object of its array.
fn inspect(daemon: &Daemon, name: &str) -> Value {
    let out = daemon.ok(&["inspect", name]);
    let array: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    assert_eq!(array.as_array().map(Vec::len), Some(1), "{out}");
    array[0].clone()
}

/// `berth ps [-a] --format json`: one object per line.
fn ps_json(daemon: &Daemon, all: bool) -> Vec<Value> {
    let mut args = vec!["ps", "--format", "json"];
    if all {
        args.push("-a");
    }
    daemon
        .ok(&args)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell loop that runs until SIGTERM, after printing `ready`.
const SERVE: &str = "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done";

#[test]
fn run_in_the_foreground_prints_output_and_exits_with_the_code() {
    let daemon = Daemon::start();
    let out = daemon.run(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo to stdout; echo to stderr >&2; exit 3",
    ]);
    assert_eq!(code(&out), 3, "{out:?}");
    assert_eq!(stdout(&out), "to stdout\n");
    assert_eq!(stderr(&out), "to stderr\n");
    daemon.assert_empty();

    let out = daemon.run(&["run", "--rm", IMAGE, "echo", "hello", "world"]);
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "hello world\n"));
}

#[test]
fn fast_output_is_never_lost() {
    let daemon = Daemon::start();
    let out = daemon.run(&["run", "--rm", IMAGE, "seq", "1", "2000"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let expected: String = (1..=2000).map(|n| format!("{n}\n")).collect();
    assert_eq!(stdout(&out), expected);
}

#[test]
fn run_interactive_passes_stdin_to_the_container() {
    let daemon = Daemon::start();
    let mut child = daemon
        .cli()
        .args(["run", "-i", "--rm", IMAGE, "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\nline two\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "line one\nline two\ndone\n");
}

#[test]
fn detached_container_is_listed_logged_stopped_and_removed() {
    let daemon = Daemon::start();
    let id = run_detached(&daemon, &["--name", "web", IMAGE, "sh", "-c", SERVE]);

    let listed = ps_json(&daemon, false);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["Id"], id.as_str());
    assert_eq!(listed[0]["Name"], "web");
    assert_eq!(listed[0]["State"], "running");
    assert!(listed[0]["Status"].as_str().unwrap().starts_with("Up"));

    let table = daemon.ok(&["ps"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&id[..12]) && row.trim_end().ends_with("web"),
        "{table}"
    );
    assert_eq!(daemon.ok(&["ps", "-q"]).trim(), &id[..12]);

    eventually(Duration::from_secs(10), "ready in the logs", || {
        (daemon.ok(&["logs", "web"]) == "ready\n").then_some(())
    });
    let state = inspect(&daemon, "web");
    assert_eq!(state["State"]["Running"], true);
    assert!(state["State"]["Pid"].as_i64().unwrap() > 0);

    assert_eq!(daemon.ok(&["stop", "-t", "5", "web"]).trim(), "web");
    assert!(ps_json(&daemon, false).is_empty());
    let all = ps_json(&daemon, true);
    assert_eq!(all[0]["State"], "exited");
    assert!(
        all[0]["Status"].as_str().unwrap().starts_with("Exited (0)"),
        "{all:?}"
    );
    assert_eq!(inspect(&daemon, &id[..12])["State"]["ExitCode"], 0);

    assert_eq!(daemon.ok(&["rm", "web"]).trim(), "web");
    daemon.assert_empty();
    daemon.assert_nothing_left(&id);
}

#[test]
fn a_running_container_is_removed_only_by_force() {
    let daemon = Daemon::start();
    let id = run_detached(&daemon, &[IMAGE, "sleep", "1000"]);
    let out = daemon.run(&["rm", &id]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).starts_with("berth: error: "), "{out:?}");
    assert_eq!(ps_json(&daemon, false).len(), 1);
    daemon.ok(&["rm", "-f", &id]);
    daemon.assert_empty();
    daemon.assert_nothing_left(&id);
}

#[test]
fn exec_runs_in_the_container_and_returns_its_exit_code() {
    let daemon = Daemon::start();
    run_detached(&daemon, &["--name", "box", IMAGE, "sleep", "1000"]);
    let out = daemon.run(&[
        "exec",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $GREETING from $(pwd); tr '\\000' ' ' < /proc/1/cmdline; echo; echo oops >&2; exit 5",
    ]);
    assert_eq!(code(&out), 5, "{out:?}");
    assert_eq!(stdout(&out), "hi from /tmp\nsleep 1000 \n");
    assert_eq!(stderr(&out), "oops\n");

    // -i passes stdin through to the process, and its end.
    let mut child = daemon
        .cli()
        .args(["exec", "-i", "box", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'x'; 100_000])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!((code(&out), stdout(&out).trim()), (0, "100000"));

    // -t runs the process on a terminal of its own (one stream, CRLF line ends).
    let out = daemon.run(&[
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; echo to-stderr >&2; exit 2",
    ]);
    assert_eq!(code(&out), 2, "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(lines[1], "to-stderr", "{out:?}");

    let out = daemon.run(&["exec", "box", "/no/such/command"]);
    assert_ne!(code(&out), 0, "{out:?}");
    daemon.ok(&["rm", "-f", "box"]);
}

#[test]
fn logs_follow_until_the_container_exits_and_split_the_streams() {
    let daemon = Daemon::start();
    let script = "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done";
    run_detached(&daemon, &["--name", "talk", IMAGE, "sh", "-c", script]);
    let mut follower = daemon
        .cli()
        .args(["logs", "-f", "talk"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line arrives while the container still runs.
    let mut first = String::new();
    BufReader::new(follower.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "out1\n");
    let running = ps_json(&daemon, false);
    assert_eq!(running.len(), 1, "followed while running");
    let out = follower.wait_with_output().unwrap();
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "out2\nout3\n");
    assert_eq!(stderr(&out), "err1\nerr2\nerr3\n");

    // The last two records, whichever of the two pipes the supervisor read first.
    let out = daemon.run(&["logs", "--tail", "2", "talk"]);
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("out3\n", "err3\n")
    );
    let out = daemon.run(&["logs", "-t", "talk"]);
    let line = stdout(&out).lines().next().unwrap().to_owned();
    let (time, text) = line.split_once(' ').unwrap();
    assert!(time.starts_with("20") && time.ends_with('Z'), "{line}");
    assert_eq!(text, "out1");
}

#[test]
fn stats_report_memory_and_pids() {
    let daemon = Daemon::start();
    run_detached(
        &daemon,
        &[
            "--name",
            "counted",
            "--memory",
            "64m",
            IMAGE,
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & wait",
        ],
    );
    let stats = eventually(Duration::from_secs(10), "three processes", || {
        let out = daemon.ok(&["stats", "--no-stream", "--format", "json", "counted"]);
        let stats: Value = serde_json::from_str(out.trim()).unwrap();
        (stats["Pids"] == 3).then_some(stats)
    });
    assert_eq!(stats["Name"], "counted");
    assert_eq!(stats["MemoryLimit"], 64 << 20);
    assert!(stats["MemoryUsage"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["CpuUsageNs"].as_u64().unwrap() > 0, "{stats}");

    let table = daemon.ok(&["stats", "--no-stream"]);
    assert!(
        table.lines().next().unwrap().contains("MEM USAGE / LIMIT"),
        "{table}"
    );
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.contains("counted") && row.contains("/ 64MiB"),
        "{table}"
    );
    daemon.ok(&["rm", "-f", "counted"]);
}

#[test]
fn kill_sends_the_signal_and_wait_prints_the_exit_code() {
    let daemon = Daemon::start();
    let script = "trap 'exit 7' HUP; echo ready; while :; do sleep 0.1; done";
    run_detached(&daemon, &["--name", "hup", IMAGE, "sh", "-c", script]);
    eventually(Duration::from_secs(10), "ready", || {
        daemon.ok(&["logs", "hup"]).contains("ready").then_some(())
    });
    assert_eq!(daemon.ok(&["kill", "-s", "HUP", "hup"]).trim(), "hup");
    assert_eq!(daemon.ok(&["wait", "hup"]).trim(), "7");
    let out = daemon.run(&["kill", "hup"]);
    assert_ne!(code(&out), 0, "killing an exited container is an error");
    daemon.ok(&["rm", "hup"]);
}

#[test]
fn sigint_to_a_foreground_run_reaches_the_container() {
    let daemon = Daemon::start();
    let script = "trap 'echo caught; exit 42' INT; echo ready; while :; do sleep 0.1; done";
    let mut child = daemon
        .cli()
        .args(["run", "--rm", IMAGE, "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    assert_eq!(rest, "caught\n");
    daemon.assert_empty();
}

#[test]
fn create_then_start_runs_the_container() {
    let daemon = Daemon::start();
    let id = daemon
        .ok(&[
            "create",
            "--name",
            "later",
            IMAGE,
            "sh",
            "-c",
            "echo started",
        ])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64);
    let all = ps_json(&daemon, true);
    assert_eq!(all[0]["State"], "created");
    assert_eq!(daemon.ok(&["start", "later"]).trim(), "later");
    assert_eq!(daemon.ok(&["wait", "later"]).trim(), "0");
    assert_eq!(daemon.ok(&["logs", "later"]), "started\n");
    daemon.ok(&["rm", "later"]);
    daemon.assert_nothing_left(&id);
}

#[test]
fn detached_rm_is_left_to_the_daemon() {
    let daemon = Daemon::start();
    let id = run_detached(&daemon, &["--rm", IMAGE, "sh", "-c", "sleep 0.3"]);
    assert_eq!(inspect(&daemon, &id)["Config"]["AutoRemove"], true);
    eventually(Duration::from_secs(15), "the container removed", || {
        daemon
            .ok(&["ps", "-a", "-q", "--no-trunc"])
            .trim()
            .is_empty()
            .then_some(())
    });
    daemon.assert_nothing_left(&id);
}
