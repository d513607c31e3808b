//! A daemon on a temp root with a busybox image, and a small HTTP client for its socket.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_agent::{ContainerManager, Daemon, Launcher, Paths};
use berth_client::frame::{Frame, FrameDecoder, StreamId};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{REQUEST_ENV, STATE_DIR_ENV};

/// The longest any wait of these tests takes before it fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Runs the helper processes from this test binary.
#[derive(Debug)]
struct TestLauncher;

fn helper(name: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", name, "--ignored", "--quiet", "--test-threads=1"])
        .env(STATE_DIR_ENV, dir);
    command
}

impl Launcher for TestLauncher {
    fn supervisor(&self, state_dir: &Path) -> Command {
        helper("daemon::helpers::supervise", state_dir)
    }

    fn exec_shim(&self, state_dir: &Path, request: &str) -> Command {
        let mut command = helper("daemon::helpers::exec_shim", state_dir);
        command.env(REQUEST_ENV, request);
        command
    }
}

/// A temp root and run dir with a busybox image named `busybox`.
#[derive(Debug)]
pub struct Host {
    pub dir: tempfile::TempDir,
    pub paths: Paths,
}

impl Host {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bt")
            .tempdir_in("/tmp")
            .expect("temp dir");
        // Short: `<root>/containers/<64 hex>/control.sock` must fit a unix socket address.
        let paths = Paths::new(dir.path(), &dir.path().join("run"));
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let store = berth_image::Store::open(&paths.images()).expect("image store");
        store
            .import_rootfs(
                &rootfs,
                &berth_image::RootfsOptions {
                    name: "busybox".parse().expect("name"),
                    cmd: vec!["sh".into()],
                    entrypoint: vec![],
                    env: vec![],
                    workdir: None,
                    exposed_ports: vec![],
                    policy: Default::default(),
                },
                &berth_image::NoProgress,
            )
            .expect("import busybox");
        std::fs::remove_dir_all(&rootfs).expect("remove rootfs source");
        Self { dir, paths }
    }

    /// Starts a daemon on this host.
    pub fn daemon(&self) -> TestDaemon {
        TestDaemon::start(self.paths.clone()).expect("daemon starts")
    }

    pub fn socket(&self) -> PathBuf {
        self.paths.socket()
    }

    /// Container state directories left under the root.
    pub fn state_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.paths.containers())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that no container of this host left anything: state dir, libcontainer state,
    /// rootfs snapshot or mount, cgroup.
    pub fn assert_nothing_left(&self, ids: &[String]) {
        assert_eq!(self.state_dirs(), Vec::<String>::new(), "state dirs left");
        let runtime: Vec<_> = std::fs::read_dir(self.paths.runtime_root())
            .map(|e| e.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(runtime.is_empty(), "libcontainer state left: {runtime:?}");
        let snapshots: Vec<_> = std::fs::read_dir(self.paths.images().join("snapshots"))
            .map(|e| e.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(snapshots.is_empty(), "snapshots left: {snapshots:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let root = self.dir.path().display().to_string();
        assert!(!mounts.contains(&root), "mounts left under {root}");
        for id in ids {
            for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
                .expect("cgroupfs")
                .flatten()
            {
                let cgroup = hierarchy.path().join("berth").join(id);
                assert!(!cgroup.exists(), "cgroup left: {}", cgroup.display());
            }
        }
    }

    /// Every state directory's cgroups, mounts and files are gone once `ids` are; for
    /// cleanup after a failed test, best effort.
    fn force_clean(&self) {
        for id in self.state_dirs() {
            let dir = self.paths.containers().join(&id);
            let _ = berth_runtime::supervisor::request(
                &dir,
                &berth_runtime::supervisor::Request::Stop { timeout_secs: 0 },
                Duration::from_secs(10),
            );
            let _ = berth_image::Store::open(&self.paths.images()).map(|s| s.remove_rootfs(&id));
        }
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.force_clean();
    }
}

/// busybox-static as /bin/busybox plus a symlink per applet, and a passwd/group.
fn busybox_rootfs(rootfs: &Path) {
    for dir in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static)");
    for applet in ["sh", "echo", "cat", "sleep", "true", "false", "ls"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("applet");
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
}

/// The real daemon, serving on its own runtime in a thread.
#[derive(Debug)]
pub struct TestDaemon {
    pub manager: Arc<ContainerManager>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestDaemon {
    pub fn start(paths: Paths) -> Result<Self, berth_agent::DaemonError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                match Daemon::start(paths, Arc::new(TestLauncher)).await {
                    Ok(daemon) => {
                        let _ = ready_tx.send(Ok(Arc::clone(daemon.manager())));
                        let _ = daemon
                            .serve(async move {
                                let _ = stop_rx.await;
                            })
                            .await;
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
            });
            // Ending the runtime ends every task of the daemon, as a kill would; a blocking
            // task (a log follower whose client does not read) is left behind.
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let manager = ready_rx.recv().expect("daemon thread")?;
        Ok(Self {
            manager,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops serving and drops the daemon's runtime (its tasks die; containers live on).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("daemon thread");
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// NDJSON lines, parsed.
    pub fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

async fn connect(socket: &Path) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the daemon");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection.with_upgrades());
    sender
}

/// One request to the daemon at `socket`.
pub fn call(socket: &Path, method: Method, path: &str, body: Option<Value>) -> Answer {
    runtime().block_on(async {
        let mut sender = connect(socket).await;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://berth{path}"))
            .header("host", "berth")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("answer");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer { status, body }
    })
}

pub fn get(socket: &Path, path: &str) -> Answer {
    call(socket, Method::GET, path, None)
}

pub fn post(socket: &Path, path: &str, body: Option<Value>) -> Answer {
    call(
        socket,
        Method::POST,
        path,
        body.map(|b| without_network(path, b)),
    )
}

/// A create without `NetworkMode` gets `none`: the API's default is `bridge` (docker's),
/// and these daemons have no bridge of their own (the e2e tests' daemons do).
fn without_network(path: &str, mut body: Value) -> Value {
    if path == "/v1/containers"
        && let Some(body) = body.as_object_mut()
    {
        let host = body.entry("HostConfig").or_insert_with(|| json!({}));
        if let Some(host) = host.as_object_mut() {
            host.entry("NetworkMode").or_insert_with(|| json!("none"));
        }
    }
    body
}

pub fn delete(socket: &Path, path: &str) -> Answer {
    call(socket, Method::DELETE, path, None)
}

/// Creates a container from `body`; its id.
pub fn create(socket: &Path, body: Value) -> String {
    let answer = post(socket, "/v1/containers", Some(body));
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.message());
    answer.json()["Id"].as_str().expect("Id").to_owned()
}

/// Creates and starts `cmd` in busybox; its id.
pub fn run(socket: &Path, cmd: &[&str], extra: Value) -> String {
    let mut body = json!({ "Image": "busybox", "Cmd": cmd });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let id = create(socket, body);
    let started = post(socket, &format!("/v1/containers/{id}/start"), None);
    assert_eq!(
        started.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    id
}

/// Polls `check` until it is true or [`WAIT_LIMIT`] passes.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `log` texts of a container's records.
pub fn logged(socket: &Path, id: &str) -> Vec<String> {
    get(socket, &format!("/v1/containers/{id}/logs"))
        .lines()
        .iter()
        .map(|r| r["log"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// What an upgraded stream gave back: output per stream and the exit code.
#[derive(Debug, Default)]
pub struct StreamResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
}

/// Upgrades `path` with `body`, sends `stdin` then end of input, and reads frames until the
/// daemon closes the connection.
pub fn stream(socket: &Path, path: &str, body: Value, stdin: &[u8]) -> StreamResult {
    stream_frames(socket, path, body, &[], stdin)
}

/// As [`stream`], with `first` sent before the input (a terminal's size, say).
pub fn stream_frames(
    socket: &Path,
    path: &str,
    body: Value,
    first: &[Frame],
    stdin: &[u8],
) -> StreamResult {
    runtime().block_on(async {
        let mut sender = connect(socket).await;
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://berth{path}"))
            .header("host", "berth")
            .header("connection", "Upgrade")
            .header("upgrade", berth_client::frame::UPGRADE_PROTOCOL)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = sender.send_request(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let upgraded = hyper::upgrade::on(response).await.expect("upgrade");
        let mut io = TokioIo::new(upgraded);
        for frame in first {
            io.write_all(&frame.encode()).await.expect("first frames");
        }
        if !stdin.is_empty() {
            io.write_all(&Frame::new(StreamId::Stdin, stdin.to_vec()).encode())
                .await
                .expect("stdin");
        }
        io.write_all(&Frame::new(StreamId::Stdin, Vec::new()).encode())
            .await
            .expect("eof");
        let mut decoder = FrameDecoder::new();
        let mut result = StreamResult::default();
        let mut buffer = vec![0u8; 65536];
        loop {
            let n = tokio::time::timeout(WAIT_LIMIT, io.read(&mut buffer))
                .await
                .expect("frames in time")
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            decoder.push(&buffer[..n]);
            while let Some(frame) = decoder.next_frame().expect("valid frames") {
                let text = String::from_utf8_lossy(&frame.payload).into_owned();
                match frame.stream {
                    StreamId::Stdout => result.stdout.push_str(&text),
                    StreamId::Stderr => result.stderr.push_str(&text),
                    StreamId::Exit => {
                        let exit: Value = serde_json::from_str(&text).expect("exit frame");
                        result.exit_code = exit["ExitCode"].as_i64();
                    }
                    other => panic!("unexpected frame {other:?}"),
                }
            }
        }
        result
    })
}
