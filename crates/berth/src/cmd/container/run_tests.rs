//! The calls `berth run` makes, in their order, against a scripted HTTP server on a temp
//! socket that records each request (the daemon's side is tested in tests/e2e).

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_client::Host;
use berth_client::api::CreateRequest;
use bytes::Bytes;
use clap::Parser;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Response, StatusCode};

use super::*;
use berth_client::testing::{answer, serve};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: RunArgs,
}

/// What the server saw: "METHOD PATH?QUERY" per request, and the create request's body.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<String>,
    created: Option<CreateRequest>,
}

/// A daemon that creates container `abc`, streams two log records, and reports exit code 3
/// after 100 ms; `start_error` makes start fail with 409 and that message.
fn serve_script(socket: &Path, seen: Arc<Mutex<Seen>>, start_error: Option<&'static str>) {
    serve(
        socket,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let seen = seen.clone();
            async move {
                let line = format!("{} {}", request.method(), request.uri());
                seen.lock().unwrap().requests.push(line.clone());
                let body = request.into_body().collect().await.unwrap().to_bytes();
                match line.as_str() {
                    "POST /v1/containers" => {
                        seen.lock().unwrap().created = serde_json::from_slice(&body).ok();
                        answer(StatusCode::CREATED, r#"{"Id":"abc","Name":"quirky_name"}"#)
                    }
                    "GET /v1/containers/abc/logs?follow=true" => {
                        let records = [
                            r#"{"stream":"stdout","time":"t","log":"out\n"}"#,
                            r#"{"stream":"stderr","time":"t","log":"err\n"}"#,
                        ];
                        Response::new(chunked_body(records.map(|r| format!("{r}\n"))).boxed())
                    }
                    "POST /v1/containers/abc/start" => match start_error {
                        Some(message) => answer(
                            StatusCode::CONFLICT,
                            &format!(r#"{{"message":"{message}"}}"#),
                        ),
                        None => answer(StatusCode::NO_CONTENT, ""),
                    },
                    "POST /v1/containers/abc/wait" => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        answer(StatusCode::OK, r#"{"StatusCode":3,"OOMKilled":false}"#)
                    }
                    "DELETE /v1/containers/abc?force=true" => answer(StatusCode::NO_CONTENT, ""),
                    "POST /v1/containers/abc/attach" => answer(
                        StatusCode::CONFLICT,
                        r#"{"message":"container abc is not running"}"#,
                    ),
                    _ => answer(StatusCode::NOT_FOUND, r#"{"message":"unexpected"}"#),
                }
            }
        },
    );
}

/// Each string as one body chunk, 20 ms apart.
fn chunked_body(
    chunks: [String; 2],
) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    tokio::spawn(async move {
        for chunk in chunks {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = sender.send(Ok(Frame::data(Bytes::from(chunk)))).await;
        }
    });
    ReceiverBody(receiver)
}

/// A body fed by a channel.
struct ReceiverBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl hyper::body::Body for ReceiverBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx)
    }
}

/// Runs `berth run ARGS` against the scripted daemon; returns the outcome and what it saw.
fn run_against_script(
    args: &[&str],
    start_error: Option<&'static str>,
) -> (anyhow::Result<ExitCode>, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let client = Client::new(Host::unix(&socket));
    let result = block_on(async {
        serve_script(&socket, seen.clone(), start_error);
        if cli.args.detach {
            detached(&client, &cli.args.create).await
        } else {
            foreground(&client, &cli.args.create).await
        }
    });
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (result, seen)
}

#[test]
fn foreground_run_starts_then_follows_the_logs_then_waits_then_removes() {
    let (result, seen) = run_against_script(&["--rm", "busybox", "sh"], None);
    assert_eq!(
        format!("{:?}", result.unwrap()),
        format!("{:?}", ExitCode::from(3))
    );
    assert_eq!(
        seen.requests,
        [
            "POST /v1/containers",
            "POST /v1/containers/abc/start",
            "GET /v1/containers/abc/logs?follow=true",
            "POST /v1/containers/abc/wait",
            "DELETE /v1/containers/abc?force=true",
        ]
    );
    let created = seen.created.unwrap();
    assert!(!created.auto_remove, "a foreground --rm is the client's");
    assert_eq!(created.cmd, ["sh"]);
}

#[test]
fn detached_run_leaves_rm_to_the_daemon_and_does_not_wait() {
    let (result, seen) = run_against_script(&["-d", "--rm", "busybox"], None);
    assert!(result.is_ok());
    assert_eq!(
        seen.requests,
        ["POST /v1/containers", "POST /v1/containers/abc/start"]
    );
    assert!(seen.created.unwrap().auto_remove);
}

#[test]
fn a_failed_start_is_the_error_and_rm_still_removes() {
    let (result, seen) = run_against_script(
        &["--rm", "busybox", "nope"],
        Some("exec: \\\"nope\\\": executable file not found"),
    );
    let err = result.unwrap_err().to_string();
    assert_eq!(err, "exec: \"nope\": executable file not found");
    assert_eq!(
        seen.requests.last().map(String::as_str),
        Some("DELETE /v1/containers/abc?force=true")
    );
    assert!(!seen.requests.iter().any(|r| r.ends_with("/wait")));
}

#[test]
fn interactive_run_attaches_once_started_and_goes_on_if_it_already_exited() {
    let (result, seen) = run_against_script(&["-i", "busybox", "cat"], None);
    assert_eq!(
        format!("{:?}", result.unwrap()),
        format!("{:?}", ExitCode::from(3))
    );
    assert_eq!(
        seen.requests,
        [
            "POST /v1/containers",
            "POST /v1/containers/abc/start",
            "GET /v1/containers/abc/logs?follow=true",
            "POST /v1/containers/abc/attach",
            "POST /v1/containers/abc/wait",
        ]
    );
    assert!(seen.created.unwrap().open_stdin);
}
