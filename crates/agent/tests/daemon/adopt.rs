//! A new daemon re-adopts the containers of the one before (docs/adr/0013).

use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use crate::support::{Host, WAIT_LIMIT, delete, eventually, get, logged, post, run};

const TICKER: &[&str] = &["sh", "-c", "while true; do echo tick; sleep 0.2; done"];

#[test]
fn running_containers_survive_the_daemon_and_are_adopted() {
    let host = Host::new();
    let socket = host.socket();
    let daemon = host.daemon();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let policy = if n == 0 { "always" } else { "no" };
            run(
                &socket,
                TICKER,
                json!({"HostConfig": {"RestartPolicy": policy}}),
            )
        })
        .collect();
    for id in &ids {
        eventually("a first tick", || !logged(&socket, id).is_empty());
    }
    // A follower that never hangs up does not keep the daemon from stopping.
    let mut follower = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    let follow = format!(
        "GET /v1/containers/{}/logs?follow=1 HTTP/1.1\r\nHost: berth\r\n\r\n",
        ids[1]
    );
    std::io::Write::write_all(&mut follower, follow.as_bytes()).expect("request");
    // Stop only once the answer is streaming: a request not yet read would simply be dropped.
    follower.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut follower, &mut byte).expect("the follower's answer");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    daemon.stop();
    let log = host.paths.containers().join(&ids[1]).join("container.log");
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    eventually("ticks while no daemon runs", || {
        std::fs::read_to_string(&log).unwrap().lines().count() > before + 2
    });
    // A socket left behind is replaced.
    assert!(!socket.exists() || std::fs::remove_file(&socket).is_ok());
    std::os::unix::net::UnixListener::bind(&socket).expect("stale socket");
    let _daemon = host.daemon();
    let listed = get(&socket, "/v1/containers").json();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert!(logged(&socket, &ids[1]).len() > before + 2);
    assert_eq!(
        post(
            &socket,
            &format!("/v1/containers/{}/stop?t=0", ids[1]),
            None
        )
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&socket, &format!("/v1/containers/{}", ids[1])).json()["State"]["Status"],
        "exited"
    );
    for id in &ids {
        assert_eq!(
            delete(&socket, &format!("/v1/containers/{id}?force=1")).status,
            StatusCode::NO_CONTENT
        );
    }
    host.assert_nothing_left(&ids);
}

#[test]
fn a_killed_supervisor_is_reported_dead_and_always_restarts() {
    let host = Host::new();
    let socket = host.socket();
    let daemon = host.daemon();
    let always = run(
        &socket,
        TICKER,
        json!({"HostConfig": {"RestartPolicy": "always"}}),
    );
    let plain = run(&socket, TICKER, json!({}));
    let supervisor = |id: &str| -> i32 {
        let text = std::fs::read_to_string(host.paths.containers().join(id).join("supervisor.pid"))
            .unwrap();
        text.trim().parse().unwrap()
    };
    daemon.stop();
    for id in [&always, &plain] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(supervisor(id)),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let _daemon = host.daemon();
    let state = |id: &str| get(&socket, &format!("/v1/containers/{id}")).json()["State"].clone();
    assert_eq!(state(&plain)["Status"], "dead", "{}", state(&plain));
    assert_eq!(state(&always)["Status"], "running", "{}", state(&always));
    let before = logged(&socket, &always).len();
    eventually("the restarted container ticks", || {
        logged(&socket, &always).len() > before
    });
    for id in [&always, &plain] {
        assert_eq!(
            delete(&socket, &format!("/v1/containers/{id}?force=1")).status,
            StatusCode::NO_CONTENT
        );
    }
    host.assert_nothing_left(&[always, plain]);
}
