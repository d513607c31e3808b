//! Running store servers: berth's (`berth store`) and Debian's etcd, on free loopback ports.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::process::ProcessGuard;

/// A running server and the address its clients use.
#[derive(Debug)]
pub struct Server {
    pub guard: ProcessGuard,
    pub endpoint: String,
    port: u16,
}

impl Server {
    /// `berth store` on a free port, data in `data_dir`, with extra flags.
    pub fn berth(data_dir: &Path, extra: &[&str]) -> Self {
        Self::berth_on(data_dir, free_port(), extra)
    }

    /// `berth store` on a given port (to restart on the same address).
    pub fn berth_on(data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(["--log-level", "warn", "store", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &endpoint])
            .args(extra);
        let log = data_dir.with_extension("log");
        let guard = ProcessGuard::spawn(cmd, Some(&log));
        let server = Self {
            guard,
            endpoint,
            port,
        };
        server.wait_ready();
        server
    }

    /// Debian's etcd 3.4 on free ports, data in `data_dir`.
    pub fn etcd(data_dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let peer = free_port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new("/usr/bin/etcd");
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .args(["--log-level", "error", "--logger", "zap"])
            .args(extra);
        let guard = ProcessGuard::spawn(cmd, None);
        let server = Self {
            guard,
            endpoint,
            port,
        };
        server.wait_ready();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits (at most 60 s) until the port accepts connections and a client gets an answer.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let out = super::etcdctl::etcdctl(&self.endpoint, &["endpoint", "health"]);
                if out.status.success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server on {} did not become ready", self.endpoint);
    }
}
