//! Health checks (issue #6, docs/adr/0602-services.md): docker's `HEALTHCHECK` semantics
//! (interval, timeout, retries, start period; `starting`/`healthy`/`unhealthy`; a failing
//! streak; the last five results), with three kinds of check:
//!
//! - `CMD`/`CMD-SHELL`: a process in the container through the exec shim (as `berth exec`),
//!   healthy on exit 0;
//! - `TCP PORT`: a TCP connection from the host to the container's address (127.0.0.1 for
//!   `--network host`);
//! - `HTTP PORT PATH`: a GET of PATH there, healthy on a 2xx or 3xx status.
//!
//! [`HealthCheck`] is the validated configuration; [`HealthState`] the state machine the
//! daemon's monitor feeds with each [`Probe`] result.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use berth_client::api::{ExecRequest, Health, HealthConfig, HealthLog, HealthStatus, HostConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::launcher::Launcher;

/// docker's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;
/// The shortest interval and timeout accepted (docker's minimum is 1 ms; a check more often
/// than this would only load the machine).
pub const MIN_PERIOD: Duration = Duration::from_millis(100);
/// How many results the log keeps (docker's).
pub const LOG_LEN: usize = 5;
/// How much of a check's output is kept (docker's 4 KiB).
pub const MAX_OUTPUT: usize = 4096;

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// A process in the container (`CMD` as given; `CMD-SHELL` as `/bin/sh -c`).
    Exec(Vec<String>),
    /// A TCP connection to this port of the container.
    Tcp(u16),
    /// A GET of `path` on this port of the container.
    Http { port: u16, path: String },
}

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub test: Test,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

fn bad(reason: String) -> String {
    format!("invalid Healthcheck: {reason}")
}

/// A port of a `TCP`/`HTTP` check: 1-65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(format!(
            "port {text:?} is not a port number (write a number 1-65535)"
        )),
    }
}

impl HealthCheck {
    /// The check `config` describes; `None` for no check (absent, empty test or `NONE`).
    /// TCP and HTTP checks need an address the host reaches: not `--network none`.
    pub fn from_config(
        config: Option<&HealthConfig>,
        host: &HostConfig,
    ) -> Result<Option<Self>, String> {
        let Some(config) = config else {
            return Ok(None);
        };
        let test = match config.test.split_first() {
            None => return Ok(None),
            Some((kind, _)) if kind == "NONE" => return Ok(None),
            Some((kind, args)) if kind == "CMD" => {
                if args.is_empty() || args[0].is_empty() {
                    return Err(bad("CMD needs a command".into()));
                }
                Test::Exec(args.to_vec())
            }
            Some((kind, args)) if kind == "CMD-SHELL" => match args {
                [command] if !command.trim().is_empty() => {
                    Test::Exec(vec!["/bin/sh".into(), "-c".into(), command.clone()])
                }
                _ => return Err(bad("CMD-SHELL needs one non-empty command".into())),
            },
            Some((kind, args)) if kind == "TCP" => match args {
                [port] => Test::Tcp(parse_port(port).map_err(bad)?),
                _ => return Err(bad("TCP needs one port".into())),
            },
            Some((kind, args)) if kind == "HTTP" => match args {
                [port, path] => {
                    if !path.starts_with('/')
                        || path.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        return Err(bad(format!(
                            "HTTP path {path:?} must start with '/' and have no spaces"
                        )));
                    }
                    Test::Http {
                        port: parse_port(port).map_err(bad)?,
                        path: path.clone(),
                    }
                }
                _ => return Err(bad("HTTP needs a port and a path".into())),
            },
            Some((kind, _)) => {
                return Err(bad(format!(
                    "unknown test kind {kind:?} (NONE, CMD, CMD-SHELL, TCP or HTTP)"
                )));
            }
        };
        if matches!(test, Test::Tcp(_) | Test::Http { .. })
            && matches!(host.network_mode.as_deref(), None | Some("none"))
        {
            return Err(bad(
                "a TCP or HTTP check needs a network the host reaches (--network bridge, a network's name, or host), not none".into(),
            ));
        }
        let period = |nanos: u64, default: Duration, what: &str| {
            if nanos == 0 {
                return Ok(default);
            }
            let value = Duration::from_nanos(nanos);
            if value < MIN_PERIOD {
                return Err(bad(format!(
                    "{what} {value:?} is shorter than {MIN_PERIOD:?}"
                )));
            }
            Ok(value)
        };
        Ok(Some(Self {
            test,
            interval: period(config.interval, DEFAULT_INTERVAL, "interval")?,
            timeout: period(config.timeout, DEFAULT_TIMEOUT, "timeout")?,
            start_period: Duration::from_nanos(config.start_period),
            retries: if config.retries == 0 {
                DEFAULT_RETRIES
            } else {
                config.retries
            },
        }))
    }

    /// The port a TCP or HTTP check uses.
    pub fn port(&self) -> Option<u16> {
        match &self.test {
            Test::Tcp(port) | Test::Http { port, .. } => Some(*port),
            Test::Exec(_) => None,
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub start: String,
    pub end: String,
    /// 0 passed; 1 failed; -1 could not run or timed out.
    pub exit_code: i32,
    pub output: String,
}

impl Probe {
    pub fn passed(&self) -> bool {
        self.exit_code == 0
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Where a TCP or HTTP check connects: the container's address, or loopback for host
/// networking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub address: Ipv4Addr,
}

/// Runs `check` once against the container of `state_dir`, within its timeout.
pub async fn probe(
    check: &HealthCheck,
    launcher: &dyn Launcher,
    state_dir: &Path,
    target: Option<Target>,
) -> Probe {
    let start = now();
    let outcome = tokio::time::timeout(check.timeout, run_test(check, launcher, state_dir, target))
        .await
        .unwrap_or_else(|_| {
            (
                -1,
                format!("Health check exceeded timeout ({:?})", check.timeout),
            )
        });
    Probe {
        start,
        end: now(),
        exit_code: outcome.0,
        output: truncate(outcome.1),
    }
}

async fn run_test(
    check: &HealthCheck,
    launcher: &dyn Launcher,
    state_dir: &Path,
    target: Option<Target>,
) -> (i32, String) {
    match &check.test {
        Test::Exec(cmd) => exec(launcher, state_dir, cmd).await,
        Test::Tcp(port) => {
            let Some(target) = target else {
                return (-1, "the container has no address yet".into());
            };
            match tokio::net::TcpStream::connect((target.address, *port)).await {
                Ok(_) => (0, format!("connected to {}:{port}", target.address)),
                Err(err) => (
                    1,
                    format!("cannot connect to {}:{port}: {err}", target.address),
                ),
            }
        }
        Test::Http { port, path } => {
            let Some(target) = target else {
                return (-1, "the container has no address yet".into());
            };
            http_get(target.address, *port, path).await
        }
    }
}

/// The process in the container; its exit code and its output (stdout then stderr).
async fn exec(launcher: &dyn Launcher, state_dir: &Path, cmd: &[String]) -> (i32, String) {
    let request = ExecRequest {
        cmd: cmd.to_vec(),
        ..ExecRequest::default()
    };
    let Ok(json) = serde_json::to_string(&request) else {
        return (-1, "cannot encode the check's exec request".into());
    };
    let mut command = tokio::process::Command::from(launcher.exec_shim(state_dir, &json));
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    match command.output().await {
        Ok(output) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let code = output.status.code().unwrap_or(-1);
            (code, text)
        }
        Err(err) => (-1, format!("cannot start the exec shim: {err}")),
    }
}

/// `GET path` over HTTP/1.0; passes on a 2xx or 3xx status line.
async fn http_get(address: Ipv4Addr, port: u16, path: &str) -> (i32, String) {
    let mut stream = match tokio::net::TcpStream::connect((address, port)).await {
        Ok(stream) => stream,
        Err(err) => return (1, format!("cannot connect to {address}:{port}: {err}")),
    };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\nUser-Agent: berth-health\r\nConnection: close\r\n\r\n"
    );
    if let Err(err) = stream.write_all(request.as_bytes()).await {
        return (1, format!("cannot send the request: {err}"));
    }
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
            Err(err) => return (1, format!("cannot read the answer: {err}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim().to_owned();
    match http_status(&line) {
        Some(status @ 200..=399) => (0, format!("GET {path}: {line} ({status})")),
        Some(_) => (1, format!("GET {path}: {line}")),
        None => (1, format!("GET {path}: not an HTTP answer: {line:?}")),
    }
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`).
pub fn http_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A container's health, as the checks left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    pub status: HealthStatus,
    pub failing_streak: u32,
    pub log: VecDeque<Probe>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
        }
    }
}

impl HealthState {
    /// Takes one result, as docker does: a pass makes the container healthy; a failure
    /// within the start period counts only when the container was healthy before; otherwise
    /// `retries` failures in a row make it unhealthy.
    pub fn record(&mut self, probe: Probe, retries: u32, in_start_period: bool) {
        if probe.passed() {
            self.status = HealthStatus::Healthy;
            self.failing_streak = 0;
        } else if !(in_start_period && self.status == HealthStatus::Starting) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push_back(probe);
        while self.log.len() > LOG_LEN {
            self.log.pop_front();
        }
    }

    /// The API's view.
    pub fn to_api(&self) -> Health {
        Health {
            status: self.status,
            failing_streak: self.failing_streak,
            log: self
                .log
                .iter()
                .map(|p| HealthLog {
                    start: p.start.clone(),
                    end: p.end.clone(),
                    exit_code: p.exit_code,
                    output: p.output.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: test.iter().map(|t| (*t).to_owned()).collect(),
            ..HealthConfig::default()
        }
    }

    fn bridged() -> HostConfig {
        HostConfig {
            network_mode: Some("bridge".into()),
            ..HostConfig::default()
        }
    }

    #[test]
    fn configs_become_checks_with_dockers_defaults() {
        let check = HealthCheck::from_config(Some(&config(&["CMD-SHELL", "true"])), &bridged())
            .unwrap()
            .unwrap();
        assert_eq!(
            check.test,
            Test::Exec(vec!["/bin/sh".into(), "-c".into(), "true".into()])
        );
        assert_eq!(
            (
                check.interval,
                check.timeout,
                check.retries,
                check.start_period
            ),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3, Duration::ZERO)
        );
        let http = HealthCheck::from_config(Some(&config(&["HTTP", "80", "/up"])), &bridged())
            .unwrap()
            .unwrap();
        assert_eq!(http.port(), Some(80));
        for none in [config(&[]), config(&["NONE"])] {
            assert_eq!(HealthCheck::from_config(Some(&none), &bridged()), Ok(None));
        }
        assert_eq!(HealthCheck::from_config(None, &bridged()), Ok(None));
    }

    #[test]
    fn bad_checks_say_what_is_wrong() {
        let cases = [
            (config(&["TCP", "0"]), "port"),
            (config(&["TCP", "65536"]), "port"),
            (config(&["HTTP", "80", "up"]), "must start with '/'"),
            (config(&["CMD"]), "needs a command"),
            (config(&["CMD-SHELL", " "]), "non-empty"),
            (config(&["PING"]), "unknown test kind"),
            (
                HealthConfig {
                    interval: 1_000,
                    ..config(&["CMD", "true"])
                },
                "shorter than",
            ),
        ];
        for (config, expected) in cases {
            let err = HealthCheck::from_config(Some(&config), &bridged()).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let err = HealthCheck::from_config(Some(&config(&["TCP", "80"])), &HostConfig::default())
            .unwrap_err();
        assert!(err.contains("not none"), "{err}");
    }

    fn probe(code: i32) -> Probe {
        Probe {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn the_state_follows_dockers_rules() {
        let mut state = HealthState::default();
        // Failures in the start period do not count while starting.
        state.record(probe(1), 2, true);
        assert_eq!(
            (state.status, state.failing_streak),
            (HealthStatus::Starting, 0)
        );
        state.record(probe(0), 2, true);
        assert_eq!(state.status, HealthStatus::Healthy);
        state.record(probe(1), 2, false);
        assert_eq!(
            (state.status, state.failing_streak),
            (HealthStatus::Healthy, 1)
        );
        state.record(probe(-1), 2, false);
        assert_eq!(
            (state.status, state.failing_streak),
            (HealthStatus::Unhealthy, 2)
        );
        state.record(probe(0), 2, false);
        assert_eq!(
            (state.status, state.failing_streak),
            (HealthStatus::Healthy, 0)
        );
        for _ in 0..10 {
            state.record(probe(0), 2, false);
        }
        assert_eq!(state.log.len(), LOG_LEN);
    }

    #[test]
    fn http_status_lines_are_read() {
        assert_eq!(http_status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(http_status("HTTP/1.0 302 Found"), Some(302));
        assert_eq!(http_status("SSH-2.0-OpenSSH"), None);
    }
}
