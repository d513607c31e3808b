//! The flags `berth run` and `berth create` share, parsed into berth-runtime's validated
//! types, and their conversion into the API's [`CreateRequest`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_client::api::{CreateRequest, DeviceRate as ApiDeviceRate, HealthConfig, HostConfig};
use berth_config::{ConfigEnv, ConfigFile, ServiceSpec};
use berth_runtime::{
    BlkioWeight, ContainerPath, CpuShares, Cpus, DeviceRate, EnvVar, Hostname, LimitError,
    MemoryLimit, NetworkMode, PidsLimit, RestartPolicy, TmpfsMount, UserSpec, Volume,
};
use berth_types::ContainerName;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<ContainerName>,
    /// Keep the container's STDIN open (`run` passes this terminal's input to it).
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Set an environment variable: NAME=VALUE, or NAME to pass this shell's value.
    #[arg(short, long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file (NAME=VALUE lines; # comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<ContainerPath>,
    /// User to run as: USER[:GROUP], names or numbers.
    #[arg(short, long, value_name = "USER[:GROUP]", value_parser = parse_user)]
    pub user: Option<String>,
    /// The container's hostname.
    #[arg(long)]
    pub hostname: Option<Hostname>,
    /// Overwrite the image's entrypoint ("" clears it).
    #[arg(long, value_name = "COMMAND", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 32m, 1.5g).
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<MemoryLimit>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<Cpus>,
    /// CPU shares (relative weight, 2-262144).
    #[arg(short = 'c', long, value_name = "SHARES")]
    pub cpu_shares: Option<CpuShares>,
    /// Maximum number of processes (-1 or 0: unlimited).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_pids_limit)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10-1000).
    #[arg(long, value_name = "WEIGHT")]
    pub blkio_weight: Option<BlkioWeight>,
    /// Limit read rate from a device: DEVICE_PATH:RATE (e.g. /dev/sda:1mb).
    #[arg(long, value_name = "DEVICE:RATE", value_parser = DeviceRate::resolve)]
    pub device_read_bps: Vec<DeviceRate>,
    /// Limit write rate to a device: DEVICE_PATH:RATE.
    #[arg(long, value_name = "DEVICE:RATE", value_parser = DeviceRate::resolve)]
    pub device_write_bps: Vec<DeviceRate>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Mount a tmpfs: PATH[:OPTIONS].
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<TmpfsMount>,
    /// Bind-mount a host path: HOST_PATH:CONTAINER_PATH[:ro].
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volume: Vec<Volume>,
    /// Restart policy: no, on-failure[:MAX_RETRIES], always, unless-stopped.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<RestartPolicy>,
    /// Network: bridge (the default network `berth`, docker's default), none (only
    /// loopback), host, or the name of a network made with `berth network create`.
    #[arg(
        long,
        visible_alias = "net",
        value_name = "NETWORK",
        default_value = "bridge",
        value_parser = parse_network
    )]
    pub network: String,
    /// Publish a container's port on the host: [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish", value_name = "PORTS", value_parser = parse_publish)]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// A fixed IPv4 address on the container's network.
    #[arg(long, value_name = "ADDRESS")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Another name the container's network peers resolve it by.
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_alias: Vec<Hostname>,
    /// Place a config value (`berth config set KEY …`) as a file in the container, replaced
    /// atomically whenever the value changes; MODE is octal (default 0444).
    #[arg(long = "config", value_name = "KEY:/PATH[:MODE]")]
    pub config: Vec<ConfigFile>,
    /// Set an environment variable to a config value (read when the container is created).
    #[arg(long = "config-env", value_name = "KEY=VARIABLE")]
    pub config_env: Vec<ConfigEnv>,
    /// Send this signal to the container's main process after a --config file changed.
    #[arg(long = "config-signal", value_name = "SIGNAL", value_parser = parse_signal)]
    pub config_signal: Option<String>,
    /// Register the container as an endpoint of service NAME (at its port PORT) while it
    /// runs and is healthy: `/berth/services/NAME/<id>` in the store, NAME.service.berth in
    /// DNS. Repeatable.
    #[arg(long = "service", value_name = "NAME[:PORT]")]
    pub service: Vec<ServiceSpec>,
    #[command(flatten)]
    pub health: HealthArgs,
    /// The image: a name, an id or a unique id prefix.
    pub image: String,
    /// The command and its arguments, instead of the image's.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// The health check flags: docker's, plus TCP and HTTP checks made from the host.
#[derive(Debug, Clone, Default, Args)]
pub struct HealthArgs {
    /// Command to run in the container to check its health (`/bin/sh -c CMD`; exit 0 is
    /// healthy).
    #[arg(long = "health-cmd", value_name = "CMD", conflicts_with_all = ["health_tcp", "health_http"])]
    pub health_cmd: Option<String>,
    /// Check health by connecting to this TCP port of the container (from the host).
    #[arg(long = "health-tcp", value_name = "PORT", value_parser = parse_health_port, conflicts_with = "health_http")]
    pub health_tcp: Option<u16>,
    /// Check health by GET of PATH on this port of the container; a 2xx or 3xx status is
    /// healthy (e.g. 8080/healthz; PATH defaults to /).
    #[arg(long = "health-http", value_name = "PORT[/PATH]", value_parser = parse_health_http)]
    pub health_http: Option<(u16, String)>,
    /// Time between checks (e.g. 30s, 1m30s, 500ms) [default: 30s].
    #[arg(long = "health-interval", value_name = "DURATION", value_parser = parse_duration)]
    pub health_interval: Option<std::time::Duration>,
    /// Longest time one check may take [default: 30s].
    #[arg(long = "health-timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub health_timeout: Option<std::time::Duration>,
    /// Failures in a row that make the container unhealthy [default: 3].
    #[arg(long = "health-retries", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub health_retries: Option<u32>,
    /// Time after each start during which failures do not count [default: 0s].
    #[arg(long = "health-start-period", value_name = "DURATION", value_parser = parse_duration)]
    pub health_start_period: Option<std::time::Duration>,
    /// Disable any health check.
    #[arg(long = "no-healthcheck", conflicts_with_all = ["health_cmd", "health_tcp", "health_http", "health_interval", "health_timeout", "health_retries", "health_start_period"])]
    pub no_healthcheck: bool,
}

fn parse_health_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err("expected a port number 1-65535".into()),
    }
}

/// `PORT[/PATH]`.
fn parse_health_http(s: &str) -> Result<(u16, String), String> {
    let (port, path) = match s.find('/') {
        Some(slash) => (&s[..slash], &s[slash..]),
        None => (s, "/"),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the path may not have spaces".into());
    }
    Ok((
        parse_health_port(port).map_err(|e| format!("{e}, then an optional /PATH"))?,
        path.to_owned(),
    ))
}

/// Go's durations, as docker takes them: `1h30m`, `1.5s`, `500ms`, `10us`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 1m30s or 500ms");
    let mut rest = s;
    let mut nanos: f64 = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    if nanos > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_nanos(nanos as u64))
}

impl HealthArgs {
    /// The API's `Healthcheck`; `None` when no flag is given (no check).
    pub fn to_config(&self) -> anyhow::Result<Option<HealthConfig>> {
        if self.no_healthcheck {
            return Ok(Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            }));
        }
        let test = match (&self.health_cmd, self.health_tcp, &self.health_http) {
            (Some(cmd), _, _) => vec!["CMD-SHELL".to_owned(), cmd.clone()],
            (_, Some(port), _) => vec!["TCP".to_owned(), port.to_string()],
            (_, _, Some((port, path))) => vec!["HTTP".to_owned(), port.to_string(), path.clone()],
            (None, None, None) => {
                let timing = self.health_interval.is_some()
                    || self.health_timeout.is_some()
                    || self.health_retries.is_some()
                    || self.health_start_period.is_some();
                if timing {
                    anyhow::bail!(
                        "--health-interval, --health-timeout, --health-retries and --health-start-period need a check: --health-cmd, --health-tcp or --health-http"
                    );
                }
                return Ok(None);
            }
        };
        let nanos = |d: Option<std::time::Duration>| {
            d.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        for (flag, value) in [
            ("--health-interval", self.health_interval),
            ("--health-timeout", self.health_timeout),
        ] {
            if value.is_some_and(|v| v.is_zero()) {
                anyhow::bail!("{flag} must be longer than 0s");
            }
        }
        Ok(Some(HealthConfig {
            test,
            interval: nanos(self.health_interval),
            timeout: nanos(self.health_timeout),
            start_period: nanos(self.health_start_period),
            retries: self.health_retries.unwrap_or(0),
        }))
    }
}

fn parse_signal(s: &str) -> Result<String, String> {
    berth_runtime::supervisor::parse_signal(s).map(|_| s.to_owned())
}

pub(super) fn parse_user(s: &str) -> Result<String, berth_runtime::UserError> {
    s.parse::<UserSpec>().map(|_| s.to_owned())
}

/// docker's `--pids-limit`: a positive limit, or -1/0 for none.
fn parse_pids_limit(s: &str) -> Result<i64, LimitError> {
    match s {
        "-1" | "0" => Ok(-1),
        _ => s.parse::<PidsLimit>().map(PidsLimit::get),
    }
}

/// `--network`: none, host, bridge or a network's name (checked by the daemon to exist).
fn parse_network(s: &str) -> Result<String, String> {
    if s.parse::<NetworkMode>().is_ok() || s == "bridge" {
        return Ok(s.to_owned());
    }
    s.parse::<berth_net::NetworkName>()
        .map(|_| s.to_owned())
        .map_err(|e| format!("expected none, host, bridge or a network name: {e}"))
}

/// `-p`: docker's grammar, checked here and sent as given.
fn parse_publish(s: &str) -> Result<String, String> {
    berth_net::PortMapping::parse_spec(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

impl CreateArgs {
    /// The API request, with the environment files read; `auto_remove` is the daemon's
    /// `--rm` (detached runs and `create`), which a foreground `run` does itself instead.
    pub fn to_request(&self, auto_remove: bool) -> anyhow::Result<CreateRequest> {
        let restart = self.restart.unwrap_or_default();
        if self.rm && restart != RestartPolicy::No {
            anyhow::bail!("conflicting options: --restart and --rm");
        }
        let env = environment(&self.env_file, &self.env, |name| std::env::var(name).ok())?;
        let host_config = HostConfig {
            memory: self.memory.map(MemoryLimit::bytes),
            nano_cpus: self.cpus.map(Cpus::nano_cpus),
            cpu_shares: self.cpu_shares.map(CpuShares::get),
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight.map(BlkioWeight::get),
            blkio_device_read_bps: device_rates(&self.device_read_bps),
            blkio_device_write_bps: device_rates(&self.device_write_bps),
            readonly_rootfs: self.read_only,
            tmpfs: self
                .tmpfs
                .iter()
                .map(|t| format!("{}:{}", t.container(), t.options().join(",")))
                .collect(),
            binds: self.volume.iter().map(bind).collect(),
            restart_policy: self.restart.map(|r| r.to_string()),
            network_mode: Some(self.network.clone()),
            port_bindings: self.publish.clone(),
            publish_all_ports: self.publish_all,
            ip: self.ip.map(|ip| ip.to_string()),
            network_aliases: self
                .network_alias
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
        };
        Ok(CreateRequest {
            image: self.image.clone(),
            name: self.name.as_ref().map(ToString::to_string),
            cmd: self.command.clone(),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env,
            working_dir: self.workdir.as_ref().map(ToString::to_string),
            user: self.user.clone(),
            hostname: self.hostname.as_ref().map(|h| h.as_str().to_owned()),
            tty: self.tty,
            open_stdin: self.interactive,
            auto_remove: auto_remove && self.rm,
            configs: self.config.iter().map(ToString::to_string).collect(),
            config_env: self.config_env.iter().map(ToString::to_string).collect(),
            config_signal: self.config_signal.clone(),
            services: self.service.iter().map(ToString::to_string).collect(),
            healthcheck: self.health.to_config()?,
            host_config,
        })
    }
}

fn device_rates(rates: &[DeviceRate]) -> Vec<ApiDeviceRate> {
    rates
        .iter()
        .map(|r| ApiDeviceRate {
            path: r.path().display().to_string(),
            rate: r.rate().bytes(),
        })
        .collect()
}

fn bind(volume: &Volume) -> String {
    let mode = if volume.read_only() { ":ro" } else { "" };
    format!("{}:{}{mode}", volume.host().display(), volume.container())
}

/// docker's order: the files' entries, then `-e`'s; `NAME` alone takes this process's value
/// and is left out when it has none.
pub(super) fn environment(
    files: &[PathBuf],
    flags: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let mut entries = Vec::new();
    for file in files {
        entries.extend(read_env_file(file)?);
    }
    entries.extend(flags.iter().cloned());
    let mut env = Vec::new();
    for entry in entries {
        let entry = if entry.contains('=') {
            entry
        } else {
            match lookup(&entry) {
                Some(value) => format!("{entry}={value}"),
                None => continue,
            }
        };
        let var: EnvVar = entry.parse()?;
        env.push(var.to_string());
    }
    Ok(env)
}

/// The entries of a docker env file: one per line, blank lines and `#` comments skipped,
/// values taken verbatim.
fn read_env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.trim_start())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn parse(args: &[&str]) -> Result<CreateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("create").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn flags_become_the_api_request() {
        let args = parse(&[
            "--name",
            "web",
            "-e",
            "A=1",
            "-w",
            "/srv",
            "-u",
            "1000:1000",
            "--hostname",
            "box",
            "--memory",
            "32m",
            "--cpus",
            "0.5",
            "-c",
            "512",
            "--pids-limit",
            "64",
            "--blkio-weight",
            "300",
            "--read-only",
            "--tmpfs",
            "/run:size=1m",
            "-v",
            "/tmp:/data:ro",
            "--restart",
            "on-failure:3",
            "--network",
            "host",
            "-i",
            "-t",
            "busybox",
            "sh",
            "-c",
            "echo hi",
        ])
        .unwrap();
        let request = args.to_request(true).unwrap();
        assert_eq!(request.image, "busybox");
        assert_eq!(request.name.as_deref(), Some("web"));
        assert_eq!(request.cmd, ["sh", "-c", "echo hi"]);
        assert_eq!(request.env, ["A=1"]);
        assert_eq!(request.working_dir.as_deref(), Some("/srv"));
        assert_eq!(request.user.as_deref(), Some("1000:1000"));
        assert_eq!(request.hostname.as_deref(), Some("box"));
        assert!(request.tty && request.open_stdin && !request.auto_remove);
        let host = &request.host_config;
        assert_eq!(host.memory, Some(32 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.cpu_shares, Some(512));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.blkio_weight, Some(300));
        assert!(host.readonly_rootfs);
        assert_eq!(host.tmpfs, ["/run:noexec,nosuid,nodev,size=1m"]);
        assert_eq!(host.binds, ["/tmp:/data:ro"]);
        assert_eq!(host.restart_policy.as_deref(), Some("on-failure:3"));
        assert_eq!(host.network_mode.as_deref(), Some("host"));
    }

    #[test]
    fn nothing_given_means_the_images_defaults() {
        let request = parse(&["busybox"]).unwrap().to_request(false).unwrap();
        assert_eq!(
            request,
            CreateRequest {
                image: "busybox".into(),
                host_config: HostConfig {
                    network_mode: Some("bridge".into()),
                    ..HostConfig::default()
                },
                ..CreateRequest::default()
            }
        );
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let args = parse(&["busybox", "ls", "-l", "--memory", "x"]).unwrap();
        assert_eq!(args.command, ["ls", "-l", "--memory", "x"]);
        assert_eq!(args.memory, None);
    }

    #[test]
    fn invalid_values_fail_naming_the_flag() {
        for (flag, value) in [
            ("--memory", "12zz"),
            ("--memory", "1m"),
            ("--cpus", "half"),
            ("--pids-limit", "-5"),
            ("--blkio-weight", "5"),
            ("--restart", "sometimes"),
            ("--network", "no/such net"),
            ("--name", "/bad"),
            ("--volume", "relative:/data"),
            ("--tmpfs", "/run:bogus"),
            ("--device-read-bps", "/dev/null:1mb"),
            ("--user", "a:b:c"),
            ("--hostname", "under_score"),
            ("--config", "app/a:etc/a"),
            ("--config", "app/a:/etc/a:rw"),
            ("--config", "/app:/etc/a"),
            ("--config-env", "app/a=1X"),
            ("--config-signal", "SIGNOPE"),
            ("--service", "Web"),
            ("--service", "web:0"),
            ("--service", "web:65536"),
            ("--health-tcp", "0"),
            ("--health-http", "x/up"),
            ("--health-interval", "5"),
            ("--health-retries", "0"),
        ] {
            let err = parse(&[flag, value, "busybox"]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("invalid value '{value}' for '{flag}")),
                "{flag} {value}: {err}"
            );
        }
        let err = parse(&["--memory", "12zz", "busybox"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid size \"12zz\""), "{err}");
    }

    #[test]
    fn config_flags_become_the_requests_config_fields() {
        let request = parse(&[
            "--config",
            "app/a:/etc/a",
            "--config",
            "app/b:/etc/b:600",
            "--config-env",
            "app/c=C",
            "--config-signal",
            "HUP",
            "busybox",
        ])
        .unwrap()
        .to_request(false)
        .unwrap();
        assert_eq!(request.configs, ["app/a:/etc/a:0444", "app/b:/etc/b:0600"]);
        assert_eq!(request.config_env, ["app/c=C"]);
        assert_eq!(request.config_signal.as_deref(), Some("HUP"));
    }

    #[test]
    fn service_and_health_flags_become_the_request() {
        let request = parse(&[
            "--service",
            "web:8080",
            "--service",
            "api",
            "--health-http",
            "8080/healthz",
            "--health-interval",
            "1m30s",
            "--health-timeout",
            "500ms",
            "--health-retries",
            "2",
            "--health-start-period",
            "1.5s",
            "busybox",
        ])
        .unwrap()
        .to_request(false)
        .unwrap();
        assert_eq!(request.services, ["web:8080", "api"]);
        assert_eq!(
            request.healthcheck,
            Some(HealthConfig {
                test: vec!["HTTP".into(), "8080".into(), "/healthz".into()],
                interval: 90_000_000_000,
                timeout: 500_000_000,
                start_period: 1_500_000_000,
                retries: 2,
            })
        );
        let cmd = parse(&["--health-cmd", "test -f /ok", "busybox"]).unwrap();
        assert_eq!(
            cmd.to_request(false).unwrap().healthcheck.unwrap().test,
            ["CMD-SHELL", "test -f /ok"]
        );
        let tcp = parse(&["--health-tcp", "80", "busybox"]).unwrap();
        assert_eq!(
            tcp.to_request(false).unwrap().healthcheck.unwrap().test,
            ["TCP", "80"]
        );
        let none = parse(&["--no-healthcheck", "busybox"]).unwrap();
        assert_eq!(
            none.to_request(false).unwrap().healthcheck.unwrap().test,
            ["NONE"]
        );
        assert!(parse(&["--no-healthcheck", "--health-tcp", "80", "busybox"]).is_err());
        assert!(parse(&["--health-cmd", "true", "--health-tcp", "80", "busybox"]).is_err());
        let timing_only = parse(&["--health-interval", "1s", "busybox"]).unwrap();
        let err = timing_only.to_request(false).unwrap_err().to_string();
        assert!(err.contains("need a check"), "{err}");
    }

    #[test]
    fn durations_are_gos() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "5", "s", "1x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rm_conflicts_with_a_restart_policy_as_in_docker() {
        let err = parse(&["--rm", "--restart", "always", "busybox"])
            .unwrap()
            .to_request(false)
            .unwrap_err();
        assert_eq!(err.to_string(), "conflicting options: --restart and --rm");
        let ok = parse(&["--rm", "--restart", "no", "busybox"]).unwrap();
        assert!(ok.to_request(true).unwrap().auto_remove);
    }

    #[test]
    fn pids_limit_minus_one_or_zero_is_unlimited() {
        for value in ["-1", "0"] {
            let args = parse(&["--pids-limit", value, "busybox"]).unwrap();
            assert_eq!(args.pids_limit, Some(-1));
        }
    }

    #[test]
    fn entrypoint_empty_clears_it() {
        let args = parse(&["--entrypoint", "", "busybox"]).unwrap();
        assert_eq!(args.to_request(false).unwrap().entrypoint, Some(vec![]));
        let args = parse(&["--entrypoint", "/bin/sh", "busybox"]).unwrap();
        assert_eq!(
            args.to_request(false).unwrap().entrypoint,
            Some(vec!["/bin/sh".to_owned()])
        );
    }

    #[test]
    fn env_files_come_first_and_bare_names_take_this_shells_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# comment\n\nA=from file\n  B=2\nHOME\nUNSET\n").unwrap();
        let lookup = |name: &str| (name == "HOME").then(|| "/root".to_owned());
        let env = environment(
            std::slice::from_ref(&file),
            &["A=flag".to_owned(), "C=x=y".to_owned()],
            lookup,
        )
        .unwrap();
        assert_eq!(env, ["A=from file", "B=2", "HOME=/root", "A=flag", "C=x=y"]);

        let err = environment(&[dir.path().join("missing")], &[], lookup).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        let err = environment(&[], &["=x".to_owned()], lookup).unwrap_err();
        assert!(err.to_string().contains("expected NAME=VALUE"), "{err}");
    }
}
