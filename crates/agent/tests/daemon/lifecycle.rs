//! A container's life through the API: run, logs, wait, stop, kill, exec, remove,
//! auto-remove, and many at once.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use berth_client::frame::{Frame, StreamId};

use crate::support::{Host, delete, eventually, get, logged, post, run, stream, stream_frames};

#[test]
fn a_container_runs_logs_and_reports_its_exit_code() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let version = get(&socket, "/v1/version").json();
    assert_eq!(version["ApiVersion"], "v1");
    let id = run(
        &socket,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        json!({"Name": "three"}),
    );
    let waited = post(&socket, "/v1/containers/three/wait", None).json();
    assert_eq!(waited["StatusCode"], 3);
    assert_eq!(waited["OOMKilled"], false);
    let records = get(&socket, &format!("/v1/containers/{}/logs", &id[..12])).lines();
    let by_stream = |stream: &str| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["stream"] == stream)
            .map(|r| r["log"].clone())
            .collect()
    };
    assert_eq!(by_stream("stdout"), [json!("out\n")]);
    assert_eq!(by_stream("stderr"), [json!("err\n")]);
    let inspect = get(&socket, "/v1/containers/three").json();
    assert_eq!(inspect["State"]["Status"], "exited");
    assert_eq!(inspect["State"]["ExitCode"], 3);
    assert_eq!(inspect["Path"], "sh");
    let running = get(&socket, "/v1/containers").json();
    assert_eq!(running, json!([]));
    let all = get(&socket, "/v1/containers?all=true").json();
    assert_eq!(all[0]["Id"], id.as_str());
    assert!(
        all[0]["Status"].as_str().unwrap().starts_with("Exited (3)"),
        "{all}"
    );
    assert_eq!(
        delete(&socket, &format!("/v1/containers/{id}")).status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&socket, &format!("/v1/containers/{id}")).status,
        StatusCode::NOT_FOUND
    );
    host.assert_nothing_left(&[id]);
}

#[test]
fn stop_kill_restart_and_forced_removal_follow_docker() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let id = run(&socket, &["sleep", "1000"], json!({}));
    let path = |op: &str| format!("/v1/containers/{id}{op}");
    assert_eq!(
        post(&socket, &path("/start"), None).status,
        StatusCode::NOT_MODIFIED
    );
    let refused = delete(&socket, &path(""));
    assert_eq!(
        refused.status,
        StatusCode::CONFLICT,
        "{}",
        refused.message()
    );
    assert_eq!(
        post(&socket, &path("/stop?t=1"), None).status,
        StatusCode::NO_CONTENT
    );
    let state = get(&socket, &path("")).json()["State"].clone();
    assert_eq!(state["Status"], "exited");
    assert_eq!(
        state["ExitCode"], 137,
        "sleep as pid 1 ignores SIGTERM: {state}"
    );
    assert_eq!(
        post(&socket, &path("/stop"), None).status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(
        post(&socket, &path("/kill"), None).status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post(&socket, &path("/restart?t=0"), None).status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(&socket, &path("")).json()["State"]["Status"], "running");
    let bad_signal = post(&socket, &path("/kill?signal=NOPE"), None);
    assert_eq!(bad_signal.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(&socket, &path("/kill?signal=KILL"), None).status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(&socket, &path("/wait"), None).json()["StatusCode"],
        137
    );
    assert_eq!(
        post(&socket, &path("/start"), None).status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&socket, &path("?force=true")).status,
        StatusCode::NO_CONTENT
    );
    host.assert_nothing_left(&[id]);
}

#[test]
fn exec_runs_a_process_in_the_container_with_stdin_and_its_exit_code() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let id = run(&socket, &["sleep", "1000"], json!({}));
    let result = stream(
        &socket,
        &format!("/v1/containers/{id}/exec"),
        json!({"Cmd": ["sh", "-c", "echo in-$(hostname); cat; echo oops >&2; exit 5"], "AttachStdin": true}),
        b"from-stdin\n",
    );
    assert_eq!(result.exit_code, Some(5), "{result:?}");
    assert!(
        result.stdout.contains(&format!("in-{}", &id[..12])),
        "{result:?}"
    );
    assert!(result.stdout.contains("from-stdin"), "{result:?}");
    assert!(result.stderr.contains("oops"), "{result:?}");
    let missing = stream(
        &socket,
        &format!("/v1/containers/{id}/exec"),
        json!({"Cmd": ["/nonexistent"]}),
        b"",
    );
    assert_ne!(missing.exit_code, Some(0), "{missing:?}");
    assert_eq!(
        delete(&socket, &format!("/v1/containers/{id}?force=1")).status,
        StatusCode::NO_CONTENT
    );
    host.assert_nothing_left(&[id]);
}

#[test]
fn exec_with_a_terminal_runs_on_a_pty_and_takes_stdin_through_it() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let id = run(&socket, &["sleep", "1000"], json!({}));
    let result = stream(
        &socket,
        &format!("/v1/containers/{id}/exec"),
        json!({
            "Cmd": ["sh", "-c", "tty; read line; echo \"got $line\"; exit 3"],
            "Tty": true,
            "AttachStdin": true,
        }),
        b"typed\n",
    );
    assert_eq!(result.exit_code, Some(3), "{result:?}");
    // The terminal echoes what was typed (whenever it arrives, even before `tty` answers);
    // the shell reads it as a line. (The test's exec shim is this test binary, which prints
    // a line of its own first.)
    let lines: Vec<&str> = result.stdout.split("\r\n").collect();
    assert!(
        lines.iter().any(|line| line.contains("/dev/pts/")),
        "{result:?}"
    );
    assert!(lines.contains(&"got typed"), "{result:?}");
    assert!(
        lines
            .iter()
            .any(|line| line.ends_with("typed") && !line.starts_with("got")),
        "the terminal echoes the input: {result:?}"
    );
    assert_eq!(result.stderr, "", "a terminal is one stream: {result:?}");
    assert_eq!(
        delete(&socket, &format!("/v1/containers/{id}?force=1")).status,
        StatusCode::NO_CONTENT
    );
    host.assert_nothing_left(&[id]);
}

/// A shell loop that waits (up to 30 s) for its terminal to be 40 rows by 100 columns, then
/// prints the size and exits 0.
const AWAIT_40_BY_100: &str = "i=0; until [ \"$(stty size)\" = '40 100' ]; do \
     i=$((i+1)); [ $i -gt 600 ] && { stty size; exit 1; }; sleep 0.05; done; stty size";

fn resize_to_40_by_100() -> Frame {
    Frame::new(
        StreamId::Resize,
        json!({"Height": 40, "Width": 100}).to_string().into_bytes(),
    )
}

#[test]
fn terminals_take_the_clients_size_for_exec_and_for_the_container() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let id = run(&socket, &["sleep", "1000"], json!({}));
    let exec = stream_frames(
        &socket,
        &format!("/v1/containers/{id}/exec"),
        json!({"Cmd": ["sh", "-c", AWAIT_40_BY_100], "Tty": true}),
        &[resize_to_40_by_100()],
        b"",
    );
    assert_eq!(exec.exit_code, Some(0), "{exec:?}");
    assert!(exec.stdout.contains("40 100"), "{exec:?}");

    let tty = run(
        &socket,
        &["sh", "-c", AWAIT_40_BY_100],
        json!({"Tty": true, "OpenStdin": true}),
    );
    let attached = stream_frames(
        &socket,
        &format!("/v1/containers/{tty}/attach"),
        json!({}),
        &[resize_to_40_by_100()],
        b"",
    );
    assert_eq!(attached.exit_code, Some(0), "{attached:?}");
    assert!(
        logged(&socket, &tty)
            .iter()
            .any(|line| line.contains("40 100")),
        "{:?}",
        logged(&socket, &tty)
    );
    // Without -i there is no attach: docker's resize request does it.
    let plain_tty = run(
        &socket,
        &["sh", "-c", AWAIT_40_BY_100],
        json!({"Tty": true}),
    );
    let resize = |id: &str, query: &str| {
        post(
            &socket,
            &format!("/v1/containers/{id}/resize?{query}"),
            None,
        )
    };
    let refused = resize(&plain_tty, "h=0&w=100");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.message().contains("h must be"),
        "{}",
        refused.message()
    );
    let no_terminal = resize(&id, "h=40&w=100");
    assert_eq!(no_terminal.status, StatusCode::CONFLICT);
    assert!(
        no_terminal.message().contains("no terminal"),
        "{}",
        no_terminal.message()
    );
    assert_eq!(
        resize(&plain_tty, "h=40&w=100").status,
        StatusCode::NO_CONTENT
    );
    eventually("the resized container to see its new size", || {
        logged(&socket, &plain_tty)
            .iter()
            .any(|line| line.contains("40 100"))
    });
    for id in [&id, &tty, &plain_tty] {
        assert_eq!(
            delete(&socket, &format!("/v1/containers/{id}?force=1")).status,
            StatusCode::NO_CONTENT
        );
    }
    host.assert_nothing_left(&[id, tty, plain_tty]);
}

#[test]
fn attach_feeds_the_containers_stdin_and_follow_reads_its_output() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let id = run(&socket, &["cat"], json!({"OpenStdin": true}));
    let result = stream(
        &socket,
        &format!("/v1/containers/{id}/attach"),
        json!({}),
        b"echoed\n",
    );
    assert_eq!(result.exit_code, Some(0), "{result:?}");
    let followed = get(&socket, &format!("/v1/containers/{id}/logs?follow=1")).lines();
    assert_eq!(followed.len(), 1, "{followed:?}");
    assert_eq!(followed[0]["log"], "echoed\n");
    assert_eq!(
        delete(&socket, &format!("/v1/containers/{id}")).status,
        StatusCode::NO_CONTENT
    );
    host.assert_nothing_left(&[id]);
}

#[test]
fn logs_follow_ends_when_the_container_exits_and_stats_read_its_cgroup() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    // Prints 1 2 3 and exits only when told to (SIGTERM), so stats see it running.
    let script =
        "trap 'for i in 1 2 3; do echo $i; done; exit 0' TERM; while :; do sleep 0.1; done";
    let id = run(&socket, &["sh", "-c", script], json!({}));
    let stats = get(&socket, &format!("/v1/containers/{id}/stats"));
    assert_eq!(
        stats.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&stats.body)
    );
    assert!(stats.json()["Pids"].as_u64().unwrap() >= 1);
    let signalled = post(
        &socket,
        &format!("/v1/containers/{id}/kill?signal=TERM"),
        None,
    );
    assert_eq!(signalled.status, StatusCode::NO_CONTENT);
    let followed = logged(&socket, &id);
    let followed_live: Vec<String> = get(
        &socket,
        &format!("/v1/containers/{id}/logs?follow=true&tail=2"),
    )
    .lines()
    .iter()
    .map(|r| r["log"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(
        followed_live.last().map(String::as_str),
        Some("3\n"),
        "{followed:?} {followed_live:?}"
    );
    assert_eq!(logged(&socket, &id), ["1\n", "2\n", "3\n"]);
    assert_eq!(
        delete(&socket, &format!("/v1/containers/{id}")).status,
        StatusCode::NO_CONTENT
    );
    host.assert_nothing_left(&[id]);
}

#[test]
fn an_auto_remove_container_is_removed_when_it_exits() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let id = run(&socket, &["true"], json!({"AutoRemove": true}));
    eventually("auto-removal", || {
        get(&socket, &format!("/v1/containers/{id}")).status == StatusCode::NOT_FOUND
    });
    host.assert_nothing_left(&[id]);
}

#[test]
fn fifty_containers_at_once_leave_nothing_behind() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    let id = run(&socket, &["true"], json!({}));
                    let waited = post(&socket, &format!("/v1/containers/{id}/wait"), None);
                    assert_eq!(waited.json()["StatusCode"], 0);
                    let removed = delete(&socket, &format!("/v1/containers/{id}"));
                    assert_eq!(
                        removed.status,
                        StatusCode::NO_CONTENT,
                        "{}",
                        removed.message()
                    );
                    id
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    assert_eq!(get(&socket, "/v1/containers?all=1").json(), json!([]));
    std::thread::sleep(Duration::from_millis(10));
    host.assert_nothing_left(&ids);
}
