//! The HTTP routes of `/v1/…` (the table in `berth_client::api`), thin: each parses its
//! input, calls [`ContainerManager`] (blocking work in `spawn_blocking`) and maps
//! [`AgentError`] to a status and an [`ErrorBody`].
//!
//! Request bodies are limited to [`MAX_BODY`] bytes (413 beyond). Unknown JSON fields are
//! ignored, so older daemons accept newer clients' requests.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_client::api::{
    ErrorBody, ExecRequest, ExitFrame, NetworkCreateRequest, ResizeFrame, Version,
};
use berth_client::frame::{Frame, FrameDecoder, MAX_PAYLOAD, StreamId, UPGRADE_PROTOCOL};
use berth_runtime::CgroupVersion;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{AgentError, Result};
use crate::logs::{LogQuery, stream_logs};
use crate::manager::ContainerManager;
use crate::{exec_shim, stats};

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

type Manager = State<Arc<ContainerManager>>;

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response();
        }
        (
            status,
            Json(ErrorBody {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

/// The API's routes over `manager`.
pub fn router(manager: Arc<ContainerManager>) -> Router {
    Router::new()
        .route("/v1/version", get(version))
        .route("/v1/containers", get(list).post(create))
        .route("/v1/containers/{id}", get(inspect).delete(remove))
        .route("/v1/containers/{id}/start", post(start))
        .route("/v1/containers/{id}/stop", post(stop))
        .route("/v1/containers/{id}/restart", post(restart))
        .route("/v1/containers/{id}/kill", post(kill))
        .route("/v1/containers/{id}/resize", post(resize))
        .route("/v1/containers/{id}/wait", post(wait))
        .route("/v1/containers/{id}/logs", get(logs))
        .route("/v1/containers/{id}/stats", get(stats_route))
        .route("/v1/containers/{id}/attach", post(attach))
        .route("/v1/containers/{id}/exec", post(exec))
        .route("/v1/networks", get(network_list).post(network_create))
        .route(
            "/v1/networks/{name}",
            get(network_inspect).delete(network_remove),
        )
        .fallback(|| async {
            AgentError::NotFound(
                "no such endpoint; the API is described in docs/api/openapi.yaml".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(manager)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| AgentError::Internal(err.to_string()))?
}

fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T> {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(AgentError::TooLarge(format!(
                "request body larger than {MAX_BODY} bytes"
            )));
        }
        Err(err) => return Err(AgentError::BadRequest(err.body_text())),
    };
    serde_json::from_slice(&bytes)
        .map_err(|err| AgentError::BadRequest(format!("invalid JSON body: {err}")))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T> {
    query
        .map(|Query(q)| q)
        .map_err(|err| AgentError::BadRequest(err.body_text()))
}

/// `?flag`, `?flag=1`, `?flag=true` are true.
fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("" | "1" | "true" | "True" | "yes"))
}

async fn version(State(manager): Manager) -> Json<Version> {
    Json(Version {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: "v1".into(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cgroup_version: match manager.host().cgroup {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
        },
    })
}

#[derive(Debug, Deserialize)]
struct AllQuery {
    all: Option<String>,
}

async fn list(
    State(manager): Manager,
    q: Result<Query<AllQuery>, QueryRejection>,
) -> Result<Response> {
    let all = flag(query(q)?.all.as_deref());
    let list = blocking(move || Ok(manager.list(all))).await?;
    Ok(Json(list).into_response())
}

async fn create(State(manager): Manager, body: Result<Bytes, BytesRejection>) -> Result<Response> {
    let request = json_body(body)?;
    let created = blocking(move || manager.create(request)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn inspect(State(manager): Manager, Path(id): Path<String>) -> Result<Response> {
    let inspect = blocking(move || manager.inspect(&id)).await?;
    Ok(Json(inspect).into_response())
}

async fn start(State(manager): Manager, Path(id): Path<String>) -> Result<StatusCode> {
    blocking(move || manager.start(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct StopQuery {
    t: Option<u64>,
}

async fn stop(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<StopQuery>, QueryRejection>,
) -> Result<StatusCode> {
    let t = query(q)?.t;
    blocking(move || manager.stop(&id, t)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<StopQuery>, QueryRejection>,
) -> Result<StatusCode> {
    let t = query(q)?.t;
    blocking(move || manager.restart(&id, t)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct KillQuery {
    signal: Option<String>,
}

async fn kill(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<KillQuery>, QueryRejection>,
) -> Result<StatusCode> {
    let signal = query(q)?.signal.unwrap_or_else(|| "KILL".into());
    blocking(move || manager.kill(&id, &signal)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ResizeQuery {
    h: Option<String>,
    w: Option<String>,
}

/// docker's `resize`: the size of the terminal of a container created with `Tty`.
async fn resize(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<ResizeQuery>, QueryRejection>,
) -> Result<StatusCode> {
    let q = query(q)?;
    let dimension = |name: &str, value: Option<String>| -> Result<u16> {
        value
            .as_deref()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                AgentError::BadRequest(format!(
                    "{name} must be a number of characters from 1 to 65535, got {value:?}"
                ))
            })
    };
    let (rows, columns) = (dimension("h", q.h)?, dimension("w", q.w)?);
    blocking(move || manager.resize(&id, rows, columns)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ForceQuery {
    force: Option<String>,
}

async fn remove(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<ForceQuery>, QueryRejection>,
) -> Result<StatusCode> {
    let force = flag(query(q)?.force.as_deref());
    blocking(move || manager.remove(&id, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn network_list(State(manager): Manager) -> Result<Response> {
    let list = blocking(move || manager.networks().list()).await?;
    Ok(Json(list).into_response())
}

async fn network_create(
    State(manager): Manager,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let request: NetworkCreateRequest = json_body(body)?;
    let network = blocking(move || {
        manager.networks().create(
            &request.name,
            request.subnet.as_deref(),
            request.bridge.as_deref(),
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(network)).into_response())
}

async fn network_inspect(State(manager): Manager, Path(name): Path<String>) -> Result<Response> {
    let network = blocking(move || manager.networks().inspect(&name)).await?;
    Ok(Json(network).into_response())
}

async fn network_remove(State(manager): Manager, Path(name): Path<String>) -> Result<StatusCode> {
    blocking(move || manager.networks().remove(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn wait(State(manager): Manager, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(manager.wait(&id).await?).into_response())
}

fn ndjson(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let mut response = Body::from_stream(ReceiverStream::new(rx)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

fn line<T: serde::Serialize>(value: &T) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    follow: Option<String>,
    tail: Option<String>,
    since: Option<String>,
    /// Accepted for docker's habit; records always carry their time.
    #[allow(dead_code)]
    timestamps: Option<String>,
}

fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    text.parse::<i64>()
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .ok_or_else(|| {
            AgentError::BadRequest(format!(
                "invalid since {text:?}: expected RFC 3339 or unix seconds"
            ))
        })
}

async fn logs(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response> {
    let q = query(q)?;
    let tail = match q.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            AgentError::BadRequest(format!("invalid tail {n:?}: expected a number or all"))
        })?),
    };
    let log_query = LogQuery {
        tail,
        since: q.since.as_deref().map(parse_since).transpose()?,
    };
    let follow = flag(q.follow.as_deref());
    let view = manager.view(&id)?;
    let (tx, rx) = mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        let id = view.record.id.clone();
        // The supervisor removes its pid file when it is done, after the last record; that
        // is seen before the daemon's pidfd watch marks the container unsupervised.
        let pid_file = view.dir.pid_file();
        let finished = || !manager.is_supervised(&id) || !pid_file.exists();
        let result = stream_logs(&view.dir, &log_query, follow, &finished, &mut |record| {
            tx.blocking_send(Ok(line(&record))).is_ok()
        });
        if let Err(err) = result {
            tracing::warn!(%id, %err, "cannot read the log");
        }
        // Following ends once the daemon has recorded the exit too, not only when the
        // supervisor removed its pid file: what a client does next (rm, inspect) must find the
        // container stopped, as after `docker logs --follow`. A client gone needs no wait.
        if follow {
            let deadline = std::time::Instant::now() + EXIT_RECORDED_WITHIN;
            while !tx.is_closed()
                && manager.is_supervised(&id)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    Ok(ndjson(rx))
}

/// How long a finished `logs --follow` waits at most for the daemon to record the exit that
/// its supervisor's pidfd reports (normally within milliseconds).
const EXIT_RECORDED_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct StatsQuery {
    stream: Option<String>,
}

async fn stats_route(
    State(manager): Manager,
    Path(id): Path<String>,
    q: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response> {
    let stream = flag(query(q)?.stream.as_deref());
    let view = manager.view(&id)?;
    let id = view.record.id.clone();
    let name = view.record.name.clone();
    let first = {
        let id = id.clone();
        blocking(move || stats::sample(&id)).await?
    };
    tokio::time::sleep(stats::FIRST_SAMPLE_GAP).await;
    let second = {
        let id = id.clone();
        blocking(move || stats::sample(&id)).await?
    };
    let record = stats::to_api(&id, &name, &first, &second);
    if !stream {
        return Ok(Json(record).into_response());
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut before = second;
        if tx.send(Ok(line(&record))).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let sample_id = id.clone();
            let Ok(Ok(after)) =
                tokio::task::spawn_blocking(move || stats::sample(&sample_id)).await
            else {
                return;
            };
            if tx
                .send(Ok(line(&stats::to_api(&id, &name, &before, &after))))
                .await
                .is_err()
            {
                return;
            }
            before = after;
        }
    });
    Ok(ndjson(rx))
}

/// The 101 answer that switches the connection to frames.
fn switching() -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Reads frames from `reader` and sends each stdin payload to `stdin`, and each terminal
/// size to `sizes` (the latest wins); an empty payload (end of input) is sent at the end of
/// the connection or on a protocol error too.
async fn read_stdin_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    stdin: mpsc::Sender<Vec<u8>>,
    sizes: watch::Sender<Option<ResizeFrame>>,
) {
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.push(&buffer[..read]);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) if frame.stream == StreamId::Stdin => {
                    if stdin.send(frame.payload).await.is_err() {
                        return;
                    }
                }
                Ok(Some(frame)) if frame.stream == StreamId::Resize => {
                    match serde_json::from_slice::<ResizeFrame>(&frame.payload) {
                        Ok(size) if size.height > 0 && size.width > 0 => {
                            sizes.send_replace(Some(size));
                        }
                        _ => tracing::debug!("bad resize frame from client"),
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!(%err, "bad frame from client");
                    let _ = stdin.send(Vec::new()).await;
                    return;
                }
            }
        }
    }
    let _ = stdin.send(Vec::new()).await;
}

/// The next new terminal size from `sizes`; `None` once the sender is gone.
async fn next_size(sizes: &mut watch::Receiver<Option<ResizeFrame>>) -> Option<ResizeFrame> {
    loop {
        sizes.changed().await.ok()?;
        if let Some(size) = *sizes.borrow_and_update() {
            return Some(size);
        }
    }
}

/// Writes payloads from `rx` to `target` until an empty one (end of input), then shuts
/// `target`'s write side down.
async fn feed<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Vec<u8>>, mut target: W) {
    while let Some(payload) = rx.recv().await {
        if payload.is_empty() || target.write_all(&payload).await.is_err() {
            break;
        }
    }
    let _ = target.shutdown().await;
}

async fn write_exit<W: AsyncWrite + Unpin>(writer: &mut W, exit_code: i32) {
    let payload = serde_json::to_vec(&ExitFrame { exit_code }).unwrap_or_default();
    let _ = writer
        .write_all(&Frame::new(StreamId::Exit, payload).encode())
        .await;
    let _ = writer.shutdown().await;
}

/// Forwards stdin frames to the container's `attach.sock`; ends with an exit frame when the
/// container has exited for good. Output is read with `logs --follow`.
async fn attach(
    State(manager): Manager,
    Path(id): Path<String>,
    mut request: Request,
) -> Result<Response> {
    let view = manager.view(&id)?;
    if !view.record.request.open_stdin {
        return Err(AgentError::Conflict(format!(
            "container {} was not created with OpenStdin (-i): it has no stdin to attach to",
            view.record.id.short()
        )));
    }
    if !manager.is_supervised(&view.record.id) {
        return Err(AgentError::Conflict(format!(
            "container {} is not running",
            view.record.id.short()
        )));
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let socket = view.dir.path().join("attach.sock");
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let (reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
        let (tx, rx) = mpsc::channel(8);
        let (sizes_tx, mut sizes_rx) = watch::channel(None);
        let (sizer, container) = (Arc::clone(&manager), id.clone());
        // A container run with -t takes its terminal's size from the client's resize frames.
        let resize = async move {
            while let Some(size) = next_size(&mut sizes_rx).await {
                let (manager, id) = (Arc::clone(&sizer), container.clone());
                let resized = tokio::task::spawn_blocking(move || {
                    manager.resize(&id, size.height, size.width)
                })
                .await;
                if let Ok(Err(err)) = resized {
                    tracing::debug!(%err, "resize refused");
                }
            }
        };
        let forward = async move {
            match tokio::net::UnixStream::connect(&socket).await {
                Ok(sock) => {
                    tokio::join!(
                        read_stdin_frames(reader, tx, sizes_tx),
                        feed(rx, sock),
                        resize
                    );
                }
                Err(err) => tracing::warn!(socket = %socket.display(), %err, "cannot attach"),
            }
        };
        let waited = manager.wait(&id);
        tokio::pin!(waited);
        let early = tokio::select! {
            () = forward => None,
            result = &mut waited => Some(result),
        };
        let result = match early {
            Some(result) => result,
            None => waited.await,
        };
        let exit = result.map_or(crate::manager::UNKNOWN_EXIT, |w| w.status_code);
        write_exit(&mut writer, exit).await;
    });
    Ok(switching())
}

/// Makes a pipe whose read end the shim `command` starts will have as
/// [`exec_shim::RESIZE_FD`], named in its environment; returns both ends (the caller drops
/// the read end once the shim is spawned).
fn give_resize_pipe(command: &mut tokio::process::Command) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let raw = read.as_raw_fd();
    command.env(exec_shim::RESIZE_FD_ENV, exec_shim::RESIZE_FD.to_string());
    // SAFETY: the closure runs in the forked child before exec and calls only dup2 and fcntl,
    // which are async-signal-safe; `raw` stays open in the parent until after the spawn.
    unsafe {
        command.pre_exec(move || {
            let target = exec_shim::RESIZE_FD;
            let result = if raw == target {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                libc::fcntl(raw, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, target)
            };
            if result == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok((read, write))
}

/// Runs a process in the container through an exec shim child (never libcontainer in this
/// process); pumps its stdio to and from frames, then sends one exit frame.
async fn exec(
    State(manager): Manager,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response> {
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|err| AgentError::BadRequest(format!("cannot read the body: {err}")))?;
    let exec_request: ExecRequest = json_body(Ok(bytes))?;
    let Some(upgrade) = upgrade else {
        return Err(AgentError::BadRequest(format!(
            "exec needs an upgrade to the stream protocol (Connection: Upgrade, Upgrade: {UPGRADE_PROTOCOL})"
        )));
    };
    if exec_request.cmd.is_empty() {
        return Err(AgentError::BadRequest("Cmd is required".into()));
    }
    let view = manager.view(&id)?;
    if view.status != berth_client::api::ContainerStatus::Running {
        return Err(AgentError::Conflict(format!(
            "container {} is not running",
            view.record.id.short()
        )));
    }
    exec_shim::exec_options(view.dir.path(), &exec_request).map_err(AgentError::BadRequest)?;
    let json =
        serde_json::to_string(&exec_request).map_err(|e| AgentError::Internal(e.to_string()))?;
    let mut command =
        tokio::process::Command::from(manager.launcher().exec_shim(view.dir.path(), &json));
    command
        .stdin(if exec_request.attach_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let resize_pipe = if exec_request.tty {
        Some(give_resize_pipe(&mut command).map_err(|err| {
            AgentError::Internal(format!("cannot make the exec's resize pipe: {err}"))
        })?)
    } else {
        None
    };
    let mut child = command
        .spawn()
        .map_err(|err| AgentError::Internal(format!("cannot start the exec shim: {err}")))?;
    // The shim has its read end now; this process keeps the write end only.
    let resize_pipe = resize_pipe
        .map(|(read, write)| {
            drop(read);
            tokio::net::unix::pipe::Sender::from_owned_fd(write)
        })
        .transpose()
        .map_err(|err| AgentError::Internal(format!("cannot use the resize pipe: {err}")))?;
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            let _ = child.kill().await;
            return;
        };
        let (reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
        let (tx, mut rx) = mpsc::channel::<Frame>(16);
        let pumps: Vec<_> = [
            child.stdout.take().map(|out| {
                (
                    Box::new(out) as Box<dyn AsyncRead + Send + Unpin>,
                    StreamId::Stdout,
                )
            }),
            child.stderr.take().map(|err| {
                (
                    Box::new(err) as Box<dyn AsyncRead + Send + Unpin>,
                    StreamId::Stderr,
                )
            }),
        ]
        .into_iter()
        .flatten()
        .map(|(mut pipe, stream)| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 32 * 1024];
                while let Ok(n) = pipe.read(&mut buffer).await {
                    if n == 0
                        || tx
                            .send(Frame::new(stream, buffer[..n].to_vec()))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            })
        })
        .collect();
        drop(tx);
        let stdin = child.stdin.take();
        let input = tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(8);
            let (sizes_tx, mut sizes_rx) = watch::channel(None);
            // An exec with a terminal takes its size from the client's resize frames.
            let resize = async move {
                let Some(mut pipe) = resize_pipe else { return };
                while let Some(size) = next_size(&mut sizes_rx).await {
                    let mut message = [0u8; 4];
                    message[..2].copy_from_slice(&size.height.to_le_bytes());
                    message[2..].copy_from_slice(&size.width.to_le_bytes());
                    // Four bytes are under PIPE_BUF: each size arrives whole.
                    if pipe.write_all(&message).await.is_err() {
                        return;
                    }
                }
            };
            match stdin {
                Some(pipe) => {
                    tokio::join!(
                        read_stdin_frames(reader, tx, sizes_tx),
                        feed(rx, pipe),
                        resize
                    );
                }
                None => {
                    drop(rx);
                    tokio::join!(read_stdin_frames(reader, tx, sizes_tx), resize);
                }
            }
        });
        let output = async {
            while let Some(frame) = rx.recv().await {
                for piece in frame.payload.chunks(MAX_PAYLOAD) {
                    if writer
                        .write_all(&Frame::new(frame.stream, piece.to_vec()).encode())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        };
        output.await;
        for pump in pumps {
            let _ = pump.await;
        }
        let code = match child.wait().await {
            Ok(status) => status
                .code()
                .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s))
                .unwrap_or(crate::manager::UNKNOWN_EXIT),
            Err(_) => crate::manager::UNKNOWN_EXIT,
        };
        input.abort();
        write_exit(&mut writer, code).await;
    });
    Ok(switching())
}
