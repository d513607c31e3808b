//! The wire model of the daemon's API (`/v1/…`, described in `docs/api/openapi.yaml`).
//!
//! Field names are docker's where docker has the same thing (`PascalCase`, `Id`, `State`,
//! `ExitCode`, `OOMKilled`, `RestartCount`…), so `jq` filters and habits carry over.
//! Values are plain data: the daemon validates every field again (the API is an input
//! boundary of its own), and answers a bad one with 400 and an [`ErrorBody`] naming it.
//!
//! Endpoints (all JSON unless said otherwise):
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/version` | | [`Version`] |
//! | `GET /v1/containers?all=BOOL` | | `[`[`ContainerSummary`]`]` |
//! | `POST /v1/containers` | [`CreateRequest`] | 201 [`CreateResponse`] |
//! | `GET /v1/containers/{id}` | | [`ContainerInspect`] |
//! | `POST /v1/containers/{id}/start` | | 204; 304 when already running |
//! | `POST /v1/containers/{id}/stop?t=SECS` | | 204; 304 when not running |
//! | `POST /v1/containers/{id}/restart?t=SECS` | | 204 |
//! | `POST /v1/containers/{id}/kill?signal=SIG` | | 204; 409 when not running |
//! | `DELETE /v1/containers/{id}?force=BOOL` | | 204; 409 when running and not forced |
//! | `POST /v1/containers/{id}/wait` | | [`WaitResponse`], once the container is exited for good |
//! | `GET /v1/containers/{id}/logs?follow&tail=N&since=RFC3339&timestamps` | | `application/x-ndjson`: one [`LogRecord`] per line; with `follow`, until the container is exited for good |
//! | `GET /v1/containers/{id}/stats?stream=BOOL` | | [`Stats`]; with `stream`, `application/x-ndjson`, one per second |
//! | `POST /v1/containers/{id}/attach` (upgrade) | | 101, then [`crate::frame`]s: the client's stdin frames reach the container's stdin |
//! | `POST /v1/containers/{id}/exec` (upgrade) | [`ExecRequest`] | 101, then [`crate::frame`]s both ways, ending with an exit frame |
//!
//! | `GET /v1/networks` | | `[`[`NetworkInspect`]`]` |
//! | `POST /v1/networks` | [`NetworkCreateRequest`] | 201 [`NetworkInspect`]; 409 name or subnet taken |
//! | `GET /v1/networks/{name}` | | [`NetworkInspect`] |
//! | `DELETE /v1/networks/{name}` | | 204; 409 when in use or the default network |
//!
//! `{id}` is a full id, a unique id prefix, or a name. Every error is an [`ErrorBody`]:
//! 400 bad input, 404 no such container or image, 409 a conflict (name in use, container
//! running), 500 anything else.

use serde::{Deserialize, Serialize};

/// Every non-2xx answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A sentence for a person: what was wrong and, where it helps, how to fix it.
    pub message: String,
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    /// berth's version (the crate version).
    pub version: String,
    /// `v1`.
    pub api_version: String,
    pub os: String,
    pub arch: String,
    /// `1` or `2`: the cgroup hierarchy containers are placed in.
    pub cgroup_version: u8,
}

/// `POST /v1/containers`: what `berth run` / `berth create` ask for. Every limit is optional
/// ("none"); strings are parsed by the daemon with the same rules as the CLI's flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    /// An image reference, id or unique id prefix in the host's image store.
    pub image: String,
    /// `--name`; the daemon generates one (`adjective_noun`) when absent.
    pub name: Option<String>,
    /// The command after the image; empty means the image's `Cmd`.
    pub cmd: Vec<String>,
    /// `--entrypoint`: `Some(vec![])` clears the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// `-e` and `--env-file` entries, `NAME=VALUE`, applied in order over the image's.
    pub env: Vec<String>,
    /// `-w`.
    pub working_dir: Option<String>,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`: the container's stdin stays open for `attach`.
    pub open_stdin: bool,
    /// `--rm`: the daemon removes the container when it has exited for good.
    pub auto_remove: bool,
    /// `--config KEY:/PATH[:MODE]`: config values (`berth config`, stored under
    /// `/berth/config/KEY`) placed as files in the container, mode 0444 unless given in
    /// octal, replaced atomically when the value changes. Every key must exist at create.
    pub configs: Vec<String>,
    /// `--config-env KEY=VARIABLE`: config values as environment variables, read at create.
    pub config_env: Vec<String>,
    /// `--config-signal SIGNAL`: sent to the container's main process after one of its
    /// config files changed.
    pub config_signal: Option<String>,
    /// `--service NAME[:PORT]`: while the container runs (and, with a health check, is
    /// healthy) its endpoint is registered under `/berth/services/NAME/<id>` in the store.
    pub services: Vec<String>,
    /// `--health-*` and `--no-healthcheck`: how the daemon checks the container's health.
    pub healthcheck: Option<HealthConfig>,
    pub host_config: HostConfig,
}

/// docker's `Healthcheck`, with two checks of berth's own that run from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// The check: `["NONE"]` (none), `["CMD", ARG…]` (a process in the container, healthy on
    /// exit 0), `["CMD-SHELL", COMMAND]` (`/bin/sh -c COMMAND` in the container),
    /// `["TCP", PORT]` (a TCP connection to the container's address), `["HTTP", PORT, PATH]`
    /// (a GET of PATH on the container's address, healthy on 2xx and 3xx).
    pub test: Vec<String>,
    /// Time between checks, in nanoseconds (0: 30 s).
    pub interval: u64,
    /// How long one check may take, in nanoseconds (0: 30 s).
    pub timeout: u64,
    /// Time after each start when failures do not count, in nanoseconds (0: none).
    pub start_period: u64,
    /// Failures in a row that make the container unhealthy (0: 3).
    pub retries: u32,
}

/// A container's health (docker's `State.Health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    /// Failed checks in a row.
    pub failing_streak: u32,
    /// The last checks, oldest first (at most 5).
    pub log: Vec<HealthLog>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No check has passed yet since the container started (and it has not failed enough).
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// One health check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    /// RFC 3339.
    pub start: String,
    pub end: String,
    /// 0 passed, 1 failed (docker's), -1 the check could not run or timed out.
    pub exit_code: i32,
    /// What the check printed or why it failed, at most 4 KiB.
    pub output: String,
}

/// The limits and mounts of [`CreateRequest`], as docker's `HostConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `--memory`, in bytes.
    pub memory: Option<u64>,
    /// `--cpus`, in billionths of a CPU.
    pub nano_cpus: Option<u64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--pids-limit`; -1 or absent: unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` (10–1000).
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps`.
    pub blkio_device_read_bps: Vec<DeviceRate>,
    /// `--device-write-bps`.
    pub blkio_device_write_bps: Vec<DeviceRate>,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--tmpfs PATH[:OPTIONS]`, as given.
    pub tmpfs: Vec<String>,
    /// `-v HOST:CONTAINER[:ro]`, as given (docker's `Binds`).
    pub binds: Vec<String>,
    /// `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub restart_policy: Option<String>,
    /// `--network`: `bridge` (the default network `berth`; also when absent, as in
    /// docker's API), `none`, `host` or the name of a network made with
    /// `berth network create`.
    pub network_mode: Option<String>,
    /// `-p`, each in docker's grammar `[HOSTIP:][HOSTPORT:]CTRPORT[/tcp|udp]` (a range is
    /// one entry); only with a bridged network.
    pub port_bindings: Vec<String>,
    /// `-P`: publish every port of the image's `ExposedPorts` on a free host port; only
    /// with a bridged network.
    pub publish_all_ports: bool,
    /// `--ip`: a fixed IPv4 address in the network's subnet.
    pub ip: Option<String>,
    /// `--network-alias`: more names the container's peers resolve it by (its name always).
    pub network_aliases: Vec<String>,
}

/// A per-device rate limit (`--device-read-bps /dev/sda:1mb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceRate {
    /// The device node on the host.
    pub path: String,
    /// Bytes per second.
    pub rate: u64,
}

/// Answer to `POST /v1/containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    pub id: String,
    pub name: String,
}

/// Where a container is in its life (docker's `State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Created, never started.
    Created,
    Running,
    /// Exited, and its restart policy starts it again after a backoff.
    Restarting,
    /// Exited for good (until `start`).
    Exited,
    /// `rm` is under way.
    Removing,
    /// Its supervisor vanished while it ran (killed); the exit code is unknown.
    Dead,
}

/// One row of `GET /v1/containers` (`berth ps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// The command line the container runs, joined with spaces.
    pub command: String,
    /// When it was created, RFC 3339.
    pub created: String,
    pub state: ContainerStatus,
    /// docker's human status: `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`.
    pub status: String,
}

/// `GET /v1/containers/{id}` (`berth inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    /// The process that runs: entrypoint and command combined.
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub restart_count: u32,
    /// The container's log file (docker json-file format).
    pub log_path: String,
    /// The request it was created from.
    pub config: CreateRequest,
    /// Its networks and published ports; empty for `none` and `host`.
    #[serde(default)]
    pub network_settings: NetworkSettings,
}

/// docker's `NetworkSettings`, reduced to what berth has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// One entry per network, by network name.
    pub networks: std::collections::BTreeMap<String, EndpointSettings>,
    /// Published ports, `HOSTIP:HOSTPORT->CTRPORT/PROTO` as `berth port` prints them.
    pub ports: Vec<PortBinding>,
}

/// A container's place on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    pub gateway: String,
    pub mac_address: String,
    pub aliases: Vec<String>,
}

/// One published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// The host address it listens on; `0.0.0.0` for all.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// `GET /v1/networks` (one entry each) and `GET /v1/networks/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    /// Always `bridge` for now.
    pub driver: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    /// Ids of the containers attached to it.
    pub containers: Vec<String>,
}

/// `POST /v1/networks` (`berth network create`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    pub name: String,
    /// `--subnet CIDR`; the daemon picks a free 10.89.N.0/24 when absent.
    pub subnet: Option<String>,
    /// `--bridge NAME`; the daemon picks a free `berthN` when absent.
    #[serde(default)]
    pub bridge: Option<String>,
}

/// docker's `State` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: ContainerStatus,
    pub running: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    /// Host pid of the container's init; 0 when it does not run.
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` when never (docker's zero time).
    pub started_at: String,
    pub finished_at: String,
    /// Present when the container has a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// Answer to `POST /v1/containers/{id}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitResponse {
    pub status_code: i32,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
}

/// One line of `GET /v1/containers/{id}/logs`: one record of the json-file log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// The text, with its newline when the line was complete.
    pub log: String,
}

/// `GET /v1/containers/{id}/stats`: cgroup accounting at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    pub id: String,
    pub name: String,
    /// When it was read, RFC 3339.
    pub read: String,
    /// CPU used since the last sample as a percentage of one CPU (200.0 = two CPUs busy),
    /// as docker computes it; the first sample of a stream and a one-shot read take two
    /// readings 100 ms apart.
    pub cpu_percent: f64,
    /// Total CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    pub memory_usage: u64,
    /// The limit; the host's memory when there is none.
    pub memory_limit: u64,
    pub pids: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
}

/// `POST /v1/containers/{id}/exec`: a process to run in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// `-e`, over the container's environment.
    pub env: Vec<String>,
    /// `-w`; the container's working directory otherwise.
    pub working_dir: Option<String>,
    /// `-u`; the container's user otherwise.
    pub user: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`: the client's stdin frames reach the process; otherwise its stdin is empty.
    pub attach_stdin: bool,
}

/// The payload of a [`crate::frame::StreamId::Exit`] frame: how an exec'd process (or an
/// attached container) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExitFrame {
    pub exit_code: i32,
}

/// The payload of a [`crate::frame::StreamId::Resize`] frame: the client's terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResizeFrame {
    pub height: u16,
    pub width: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_uses_docker_field_names() {
        let state = ContainerState {
            status: ContainerStatus::Exited,
            running: false,
            restarting: false,
            oom_killed: true,
            dead: false,
            pid: 0,
            exit_code: 137,
            error: String::new(),
            started_at: "2026-11-28T00:00:00Z".into(),
            finished_at: "2026-11-28T00:00:01Z".into(),
            health: None,
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["OOMKilled"], true);
        assert_eq!(json["ExitCode"], 137);
        assert_eq!(json["Status"], "exited");
        assert_eq!(json["StartedAt"], "2026-11-28T00:00:00Z");
    }

    #[test]
    fn a_create_request_may_leave_everything_but_the_image_out() {
        let request: CreateRequest = serde_json::from_str(r#"{"Image":"busybox"}"#).unwrap();
        assert_eq!(request.image, "busybox");
        assert_eq!(request.host_config, HostConfig::default());
    }
}
