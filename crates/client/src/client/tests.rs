//! The client against a small real HTTP server (hyper's) on a temp unix socket.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::api::{ExitFrame, WaitResponse};
use crate::frame::{Frame, FrameDecoder, StreamId};
use crate::testing::{answer, serve};

fn client_at(dir: &tempfile::TempDir) -> (Client, std::path::PathBuf) {
    let socket = dir.path().join("berth.sock");
    (Client::new(Host::unix(&socket)), socket)
}

#[tokio::test]
async fn a_missing_daemon_is_reported_with_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    let err = client.list(false).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "cannot reach the berth daemon at unix://{}: no such file (is it running? start it \
             with `berth daemon`, or point --host/BERTH_HOST at its socket)",
            socket.display()
        )
    );

    // A socket file left behind by a daemon that died: nobody accepts on it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let err = client.version().await.unwrap_err().to_string();
    assert!(
        err.contains("connection refused") && err.contains("start it with `berth daemon`"),
        "{err}"
    );
}

#[tokio::test]
async fn error_answers_carry_the_daemons_message_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    serve(&socket, |request| async move {
        match request.uri().path() {
            "/v1/containers/nope" => answer(
                StatusCode::NOT_FOUND,
                r#"{"message":"no such container: nope"}"#,
            ),
            _ => answer(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        }
    });
    let err = client.inspect("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "no such container: nope");
    assert_eq!(err.status(), Some(404));
    assert!(err.is_not_found());

    let err = client.start("x").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the daemon answered 500 Internal Server Error: boom"
    );
}

#[tokio::test]
async fn requests_carry_their_body_and_query_and_304_means_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    serve(&socket, |request| async move {
        let target = request.uri().to_string();
        let method = request.method().clone();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        match (method.as_str(), target.as_str()) {
            ("POST", "/v1/containers") => {
                let create: CreateRequest = serde_json::from_slice(&body).unwrap();
                let answer_body = format!(r#"{{"Id":"abc123","Name":"{}"}}"#, create.image);
                answer(StatusCode::CREATED, &answer_body)
            }
            ("POST", "/v1/containers/web/start") => answer(StatusCode::NO_CONTENT, ""),
            ("POST", "/v1/containers/web/stop?t=3") => answer(StatusCode::NOT_MODIFIED, ""),
            ("POST", "/v1/containers/a%2Fb%20c/kill?signal=SIGHUP") => {
                answer(StatusCode::NO_CONTENT, "")
            }
            ("DELETE", "/v1/containers/web?force=true") => answer(StatusCode::NO_CONTENT, ""),
            ("POST", "/v1/containers/web/wait") => {
                answer(StatusCode::OK, r#"{"StatusCode":137,"OOMKilled":true}"#)
            }
            _ => answer(
                StatusCode::BAD_REQUEST,
                &format!("unexpected {method} {target}"),
            ),
        }
    });
    let created = client
        .create(&CreateRequest {
            image: "busybox".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.name.as_str()),
        ("abc123", "busybox")
    );
    assert_eq!(client.start("web").await.unwrap(), Changed::Yes);
    assert_eq!(
        client.stop("web", Some(3)).await.unwrap(),
        Changed::AlreadyThere
    );
    client.kill("a/b c", Some("SIGHUP")).await.unwrap();
    client.remove("web", true).await.unwrap();
    assert_eq!(
        client.wait("web").await.unwrap(),
        WaitResponse {
            status_code: 137,
            oom_killed: true
        }
    );
}

#[tokio::test]
async fn ndjson_records_cut_across_chunks_arrive_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    let wire = concat!(
        r#"{"stream":"stdout","time":"2026-11-28T00:00:00.000000001Z","log":"one\n"}"#,
        "\n\n",
        r#"{"stream":"stderr","time":"2026-11-28T00:00:01Z","log":"two é\n"}"#,
        "\n",
        r#"{"stream":"stdout","time":"2026-11-28T00:00:02Z","log":"partial"}"#,
    );
    serve(&socket, move |request| async move {
        assert_eq!(
            request.uri().to_string(),
            "/v1/containers/web/logs?follow=true&tail=10&since=2026-11-28T00%3A00%3A00Z"
        );
        // Seven-byte chunks, each sent on its own after a pause: lines and even UTF-8
        // characters are cut.
        let chunks: Vec<Bytes> = wire
            .as_bytes()
            .chunks(7)
            .map(Bytes::copy_from_slice)
            .collect();
        let stream = futures_util::stream::unfold(chunks.into_iter(), |mut chunks| async move {
            let chunk = chunks.next()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((Ok::<_, Infallible>(BodyFrame::data(chunk)), chunks))
        });
        Response::new(StreamBody::new(stream).boxed())
    });
    let options = LogsOptions {
        follow: true,
        tail: Some(10),
        since: Some("2026-11-28T00:00:00Z".into()),
    };
    let mut logs = client.logs("web", &options).await.unwrap();
    let mut got = Vec::new();
    while let Some(record) = logs.next().await {
        let record = record.unwrap();
        got.push((record.stream, record.log));
    }
    assert_eq!(
        got,
        [
            ("stdout".to_owned(), "one\n".to_owned()),
            ("stderr".to_owned(), "two é\n".to_owned()),
            ("stdout".to_owned(), "partial".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_line_that_is_not_json_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    serve(&socket, |_| async {
        answer(StatusCode::OK, "{\"Id\":1}\nnot json\n")
    });
    let mut stats = client.stats_stream("web").await.unwrap();
    let err = stats.next().await.unwrap().unwrap_err().to_string();
    assert!(err.contains("/containers/web/stats?stream=true"), "{err}");
}

#[tokio::test]
async fn exec_upgrades_to_frames_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    serve(&socket, |request| async move {
        assert_eq!(request.headers()["upgrade"], "berth-stream");
        assert_eq!(request.headers()["connection"], "Upgrade");
        let (parts, body) = request.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let exec: ExecRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(exec.cmd, ["cat"]);
        let request = Request::from_parts(parts, Full::new(Bytes::new()));
        tokio::spawn(async move {
            let upgraded = hyper::upgrade::on(request).await.unwrap();
            let mut io = TokioIo::new(upgraded);
            // Echo stdin frames as stdout until the empty one, then exit with 7.
            let mut decoder = FrameDecoder::new();
            let mut buffer = [0u8; 3];
            'read: loop {
                let n = io.read(&mut buffer).await.unwrap();
                assert_ne!(n, 0, "stdin ended without an empty frame");
                decoder.push(&buffer[..n]);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    assert_eq!(frame.stream, StreamId::Stdin);
                    if frame.payload.is_empty() {
                        break 'read;
                    }
                    let echo = Frame::new(StreamId::Stdout, frame.payload);
                    io.write_all(&echo.encode()).await.unwrap();
                }
            }
            let exit = serde_json::to_vec(&ExitFrame { exit_code: 7 }).unwrap();
            io.write_all(&Frame::new(StreamId::Exit, exit).encode())
                .await
                .unwrap();
            io.shutdown().await.unwrap();
        });
        let mut response = answer(StatusCode::SWITCHING_PROTOCOLS, "");
        response
            .headers_mut()
            .insert("upgrade", "berth-stream".parse().unwrap());
        response
            .headers_mut()
            .insert("connection", "Upgrade".parse().unwrap());
        response
    });
    let request = ExecRequest {
        cmd: vec!["cat".into()],
        attach_stdin: true,
        ..ExecRequest::default()
    };
    let (mut reader, mut writer) = client.exec("web", &request).await.unwrap().split();
    writer.stdin(b"hello").await.unwrap();
    writer.stdin(b" world").await.unwrap();
    writer.close_stdin().await.unwrap();
    let mut stdout = Vec::new();
    let mut exit = None;
    while let Some(frame) = reader.next().await.unwrap() {
        match frame.stream {
            StreamId::Stdout => stdout.extend_from_slice(&frame.payload),
            StreamId::Exit => {
                exit = Some(serde_json::from_slice::<ExitFrame>(&frame.payload).unwrap())
            }
            other => panic!("unexpected {other:?} frame"),
        }
    }
    assert_eq!(stdout, b"hello world");
    assert_eq!(exit, Some(ExitFrame { exit_code: 7 }));
}

#[tokio::test]
async fn an_upgrade_refused_with_an_error_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let (client, socket) = client_at(&dir);
    serve(&socket, |_| async {
        answer(
            StatusCode::CONFLICT,
            r#"{"message":"container web is not running"}"#,
        )
    });
    let err = client.attach("web").await.unwrap_err();
    assert_eq!(err.to_string(), "container web is not running");
    assert_eq!(err.status(), Some(409));
}
