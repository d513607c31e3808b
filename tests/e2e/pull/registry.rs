//! Debian's `docker-registry` on a loopback port, with an image pushed by skopeo, and a slow
//! TCP proxy in front of it to interrupt pulls mid-download.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::tool;

/// How long the registry may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running registry; killed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Registry {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(fs::File::create(dir.path().join("access.log")).unwrap())
            .stderr(fs::File::create(dir.path().join("registry.log")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("/usr/bin/docker-registry (Debian docker-registry) is needed");
        let registry = Self { child, port, dir };
        wait_for_port(port);
        registry
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pushes the image tagged `tag` in the OCI layout `layout` as `NAME:TAG` (`name`), as is.
    pub fn push(&self, layout: &Path, tag: &str, name: &str) {
        self.push_with(layout, tag, name, &["--all"]);
    }

    /// Pushes like [`Registry::push`], converted to docker's v2 schema 2 manifest format.
    pub fn push_as_docker(&self, layout: &Path, tag: &str, name: &str) {
        self.push_with(layout, tag, name, &["--format", "v2s2"]);
    }

    fn push_with(&self, layout: &Path, tag: &str, name: &str, options: &[&str]) {
        let from = format!("oci:{}:{tag}", layout.display());
        let to = format!("docker://{}/{name}", self.host());
        let mut args = vec!["copy", "-q", "--dest-tls-verify=false"];
        args.extend_from_slice(options);
        args.extend_from_slice(&[&from, &to]);
        tool("skopeo", &args);
    }

    /// The file holding blob `hex` in the registry's storage.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Status and body size of each GET of blob `hex`, from the access log.
    pub fn blob_gets(&self, hex: &str) -> Vec<(u16, u64)> {
        let log = fs::read_to_string(self.dir.path().join("access.log")).unwrap();
        let wanted = format!("/blobs/sha256:{hex} ");
        log.lines()
            .filter(|line| line.contains("\"GET /v2/") && line.contains(&wanted))
            .map(|line| {
                // `... "GET /v2/... HTTP/1.1" 206 1234 "" "berth/0.1.0"`
                let after = line.split("HTTP/1.1\" ").nth(1).unwrap();
                let mut fields = after.split(' ');
                let status = fields.next().unwrap().parse().unwrap();
                let bytes = fields.next().unwrap().parse().unwrap();
                (status, bytes)
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "registry did not listen on {port}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP proxy to `upstream` that sends responses at most `bytes_per_sec`; stops on drop.
pub struct SlowProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    pub fn start(upstream: u16, bytes_per_sec: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (client_in, server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || pump(client_in, server_out, usize::MAX));
                thread::spawn(move || pump(server, client, bytes_per_sec));
            }
        });
        Self { port, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` in 64 KiB steps, pausing so that at most `bytes_per_sec` pass.
fn pump(mut from: TcpStream, mut to: TcpStream, bytes_per_sec: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    let pause = Duration::from_secs_f64(buf.len() as f64 / bytes_per_sec as f64);
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if bytes_per_sec != usize::MAX {
                    thread::sleep(pause);
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
