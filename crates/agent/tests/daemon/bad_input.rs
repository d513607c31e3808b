//! Bad requests are refused with the right status and a message, and leave nothing behind:
//! no state dir, bundle, rootfs mount or cgroup.

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::support::{Host, TestDaemon, post, run};

fn refused(socket: &std::path::Path, body: Value, status: StatusCode, says: &str) {
    let answer = post(socket, "/v1/containers", Some(body.clone()));
    assert_eq!(
        answer.status,
        status,
        "{body}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer.message().contains(says),
        "{body}: {}",
        answer.message()
    );
}

#[test]
fn bad_creates_are_refused_and_leave_nothing_behind() {
    let host = Host::new();
    let _daemon = host.daemon();
    let socket = host.socket();
    refused(
        &socket,
        json!({"Image": "nope"}),
        StatusCode::NOT_FOUND,
        "no such image: nope; pull or import it first",
    );
    refused(
        &socket,
        json!({"Image": "busybox", "HostConfig": {"Memory": 1}}),
        StatusCode::BAD_REQUEST,
        "Memory",
    );
    refused(
        &socket,
        json!({"Image": "busybox", "HostConfig": {"Binds": ["/does/not/exist:/x"]}}),
        StatusCode::BAD_REQUEST,
        "/does/not/exist",
    );
    refused(
        &socket,
        json!({"Image": "busybox", "HostConfig": {"NanoCpus": 1_000_000_000_000u64}}),
        StatusCode::BAD_REQUEST,
        "CPU",
    );
    // Found only once the rootfs is mounted: the cleanup path after making things.
    refused(
        &socket,
        json!({"Image": "busybox", "User": "nosuchuser"}),
        StatusCode::BAD_REQUEST,
        "nosuchuser",
    );
    refused(
        &socket,
        json!({"Image": "busybox", "Name": "bad/name"}),
        StatusCode::BAD_REQUEST,
        "Name",
    );
    refused(
        &socket,
        json!({"Image": 7}),
        StatusCode::BAD_REQUEST,
        "invalid JSON",
    );
    assert_eq!(too_large(&socket), "HTTP/1.1 413 Payload Too Large");
    host.assert_nothing_left(&[]);
    let id = run(&socket, &["true"], json!({"Name": "taken"}));
    refused(
        &socket,
        json!({"Image": "busybox", "Name": "taken"}),
        StatusCode::CONFLICT,
        &format!("name taken is already in use by container {id}"),
    );
    assert_eq!(host.state_dirs(), std::slice::from_ref(&id));
    assert_eq!(
        post(&socket, "/v1/containers/nope/start", None).status,
        StatusCode::NOT_FOUND
    );
    post(&socket, &format!("/v1/containers/{id}/wait"), None);
    crate::support::delete(&socket, "/v1/containers/taken");
    host.assert_nothing_left(&[id]);
}

#[test]
fn a_second_daemon_on_the_same_root_is_refused() {
    let host = Host::new();
    let _daemon = host.daemon();
    let err = TestDaemon::start(host.paths.clone()).expect_err("second daemon refused");
    assert!(
        err.to_string().contains("another berth daemon is running"),
        "{err}"
    );
}

#[test]
fn a_root_too_long_for_socket_addresses_is_refused_up_front() {
    let host = Host::new();
    let long = host.dir.path().join("a-root-whose-path-is-far-too-long");
    let paths = berth_agent::Paths::new(&long, &host.dir.path().join("run2"));
    let err = TestDaemon::start(paths).expect_err("refused");
    assert!(err.to_string().contains("too long"), "{err}");
}

/// The status line answering a create with a 2 MiB body. The daemon may answer and close
/// before the whole body is written (a unix socket keeps its answer readable).
fn too_large(socket: &std::path::Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(crate::support::WAIT_LIMIT))
        .expect("timeout");
    let head = format!(
        "POST /v1/containers HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"Image\":",
        2 << 20
    );
    stream.write_all(head.as_bytes()).expect("request");
    let _ = stream.write_all(&vec![b' '; 2 << 20]);
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .expect("status line");
    status.trim().to_owned()
}
