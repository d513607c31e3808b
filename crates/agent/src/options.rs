//! A [`CreateRequest`] parsed into the runtime's validated types, before anything is made.
//! Pure: no file is touched here (volume sources are checked in [`crate::create`]).

use berth_client::api::CreateRequest;
use berth_config::{ConfigEnv, ConfigFile, ServiceSpec};
use berth_runtime::{
    BlkioWeight, ByteSize, CpuShares, Cpus, DeviceRate, EnvVar, Hostname, MemoryLimit, NetworkMode,
    PidsLimit, RestartPolicy, RunOptions, TmpfsMount, UserSpec, Volume,
};
use berth_types::ContainerName;

use crate::error::{AgentError, Result};
use crate::health::HealthCheck;
use crate::network::BridgeRequest;

/// What a create request asks for, every field validated.
#[derive(Debug, Clone)]
pub struct ParsedCreate {
    pub options: RunOptions,
    pub restart: RestartPolicy,
    pub name: Option<ContainerName>,
    /// A bridged network (`bridge` or a network's name), set up by the daemon at create;
    /// `None` for `none` and `host` (in `options.network`).
    pub bridge: Option<BridgeRequest>,
    /// `Configs`: config values placed as files.
    pub configs: Vec<ConfigFile>,
    /// `ConfigEnv`: config values as environment variables.
    pub config_env: Vec<ConfigEnv>,
    /// `ConfigSignal`, validated.
    pub config_signal: Option<String>,
    /// `Services`: the services the container is an endpoint of.
    pub services: Vec<ServiceSpec>,
    /// `Healthcheck`, validated; `None` for no check.
    pub health: Option<HealthCheck>,
}

fn bad(field: &str) -> impl Fn(String) -> AgentError + '_ {
    move |reason| AgentError::BadRequest(format!("invalid {field}: {reason}"))
}

fn parse<T: std::str::FromStr>(field: &str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|err: T::Err| bad(field)(err.to_string()))
}

/// Parses every field of `request` with the CLI's rules; the first invalid one is a 400.
pub fn parse_create(request: &CreateRequest) -> Result<ParsedCreate> {
    if request.image.is_empty() {
        return Err(AgentError::BadRequest("Image is required".into()));
    }
    let host = &request.host_config;
    let mut options = RunOptions {
        cmd: request.cmd.clone(),
        entrypoint: request.entrypoint.clone(),
        tty: request.tty,
        read_only: host.readonly_rootfs,
        ..RunOptions::default()
    };
    options.env = request
        .env
        .iter()
        .map(|e| parse::<EnvVar>("Env", e))
        .collect::<Result<_>>()?;
    options.workdir = request
        .working_dir
        .as_deref()
        .map(|w| parse("WorkingDir", w))
        .transpose()?;
    options.user = request
        .user
        .as_deref()
        .map(|u| parse::<UserSpec>("User", u))
        .transpose()?;
    options.hostname = request
        .hostname
        .as_deref()
        .map(|h| parse::<Hostname>("Hostname", h))
        .transpose()?;
    options.memory = host
        .memory
        .map(|m| {
            MemoryLimit::new(ByteSize::from_bytes(m)).map_err(|e| bad("Memory")(e.to_string()))
        })
        .transpose()?;
    options.cpus = host
        .nano_cpus
        .map(|n| {
            parse::<Cpus>(
                "NanoCpus",
                &format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000),
            )
        })
        .transpose()?;
    options.cpu_shares = host
        .cpu_shares
        .map(|s| parse::<CpuShares>("CpuShares", &s.to_string()))
        .transpose()?;
    options.pids_limit = match host.pids_limit {
        None | Some(-1) => None,
        Some(n) => Some(parse::<PidsLimit>("PidsLimit", &n.to_string())?),
    };
    options.blkio_weight = host
        .blkio_weight
        .map(|w| parse::<BlkioWeight>("BlkioWeight", &w.to_string()))
        .transpose()?;
    let rate = |field: &'static str, rate: &berth_client::api::DeviceRate| {
        DeviceRate::resolve(&format!("{}:{}", rate.path, rate.rate))
            .map_err(|e| bad(field)(e.to_string()))
    };
    options.device_read_bps = host
        .blkio_device_read_bps
        .iter()
        .map(|r| rate("BlkioDeviceReadBps", r))
        .collect::<Result<_>>()?;
    options.device_write_bps = host
        .blkio_device_write_bps
        .iter()
        .map(|r| rate("BlkioDeviceWriteBps", r))
        .collect::<Result<_>>()?;
    options.tmpfs = host
        .tmpfs
        .iter()
        .map(|t| parse::<TmpfsMount>("Tmpfs", t))
        .collect::<Result<_>>()?;
    options.volumes = host
        .binds
        .iter()
        .map(|b| parse::<Volume>("Binds", b))
        .collect::<Result<_>>()?;
    let bridge = parse_network(host, &mut options)?;
    let restart = host
        .restart_policy
        .as_deref()
        .map(|r| parse::<RestartPolicy>("RestartPolicy", r))
        .transpose()?
        .unwrap_or_default();
    if restart != RestartPolicy::No && request.auto_remove {
        return Err(AgentError::BadRequest(
            "conflicting options: a restart policy and AutoRemove (--rm)".into(),
        ));
    }
    let name = request
        .name
        .as_deref()
        .map(|n| parse::<ContainerName>("Name", n))
        .transpose()?;
    let configs = request
        .configs
        .iter()
        .map(|c| parse::<ConfigFile>("Configs", c))
        .collect::<Result<Vec<_>>>()?;
    check_config_targets(&configs, &options)?;
    let config_env = request
        .config_env
        .iter()
        .map(|c| parse::<ConfigEnv>("ConfigEnv", c))
        .collect::<Result<_>>()?;
    let config_signal = request
        .config_signal
        .as_deref()
        .map(|s| {
            berth_runtime::supervisor::parse_signal(s)
                .map(|_| s.to_owned())
                .map_err(bad("ConfigSignal"))
        })
        .transpose()?;
    if config_signal.is_some() && configs.is_empty() {
        return Err(AgentError::BadRequest(
            "ConfigSignal (--config-signal) needs at least one Configs (--config) file".into(),
        ));
    }
    let services = parse_services(request)?;
    let health = HealthCheck::from_config(request.healthcheck.as_ref(), &request.host_config)
        .map_err(AgentError::BadRequest)?;
    Ok(ParsedCreate {
        services,
        health,
        options,
        restart,
        name,
        bridge,
        configs,
        config_env,
        config_signal,
    })
}

/// `Services`: each `NAME[:PORT]` once per name, on a network with an address (not `none`).
fn parse_services(request: &CreateRequest) -> Result<Vec<ServiceSpec>> {
    let services = request
        .services
        .iter()
        .map(|s| parse::<ServiceSpec>("Services", s))
        .collect::<Result<Vec<_>>>()?;
    for (i, spec) in services.iter().enumerate() {
        if services[..i].iter().any(|s| s.name == spec.name) {
            return Err(bad("Services")(format!(
                "service {} is given twice; a container is one endpoint of a service",
                spec.name
            )));
        }
    }
    if !services.is_empty() && request.host_config.network_mode.as_deref() == Some("none") {
        return Err(bad("Services")(
            "a service endpoint needs an address: use a bridged network (the default) or --network host, not none".into(),
        ));
    }
    Ok(services)
}

/// `NetworkMode`, `PortBindings`, `Ip` and `NetworkAliases`: `none` and `host` go to the
/// runtime; `bridge` (the default network, also when absent, as docker's API) or a
/// network's name is a bridged network the daemon sets up. Ports, addresses and aliases
/// need a bridged network.
fn parse_network(
    host: &berth_client::api::HostConfig,
    options: &mut RunOptions,
) -> Result<Option<BridgeRequest>> {
    let network = match host.network_mode.as_deref() {
        Some("none" | "host") => None,
        None | Some("bridge" | "default") => Some(berth_net::NetworkName::default_network()),
        Some(name) => Some(
            name.parse::<berth_net::NetworkName>()
                .map_err(|e| bad("NetworkMode")(e.to_string()))?,
        ),
    };
    let Some(network) = network else {
        options.network = host
            .network_mode
            .as_deref()
            .map(|n| parse::<NetworkMode>("NetworkMode", n))
            .transpose()?
            .unwrap_or_default();
        for (field, used) in [
            ("PortBindings", !host.port_bindings.is_empty()),
            ("PublishAllPorts", host.publish_all_ports),
            ("Ip", host.ip.is_some()),
            ("NetworkAliases", !host.network_aliases.is_empty()),
        ] {
            if used {
                return Err(bad(field)(format!(
                    "needs a bridged network (--network bridge or a network's name), not {}",
                    host.network_mode.as_deref().unwrap_or("none")
                )));
            }
        }
        return Ok(None);
    };
    let mut ports = Vec::new();
    for spec in &host.port_bindings {
        ports.extend(
            berth_net::PortMapping::parse_spec(spec)
                .map_err(|e| bad("PortBindings")(format!("{spec:?}: {e}")))?,
        );
    }
    let ip = host
        .ip
        .as_deref()
        .map(|ip| {
            ip.parse::<std::net::Ipv4Addr>()
                .map_err(|e| bad("Ip")(format!("{ip:?}: {e}")))
        })
        .transpose()?;
    for alias in &host.network_aliases {
        parse::<Hostname>("NetworkAliases", alias)?;
    }
    Ok(Some(BridgeRequest {
        network,
        ports,
        publish_all: host.publish_all_ports,
        ip,
        aliases: host.network_aliases.clone(),
    }))
}

/// Config files are written into the rootfs from the host, so none may sit under a mount
/// (volume or tmpfs) that would hide it, and no two may share a path.
fn check_config_targets(configs: &[ConfigFile], options: &RunOptions) -> Result<()> {
    let mounts: Vec<String> = options
        .volumes
        .iter()
        .map(|v| v.container().to_string())
        .chain(options.tmpfs.iter().map(|t| t.container().to_string()))
        .collect();
    for (i, config) in configs.iter().enumerate() {
        if let Some(mount) = mounts
            .iter()
            .find(|m| config.target.starts_with(std::path::Path::new(m)))
        {
            return Err(bad("Configs")(format!(
                "{} is under the mount {mount}, which would hide it",
                config.target.display()
            )));
        }
        if configs[..i].iter().any(|c| c.target == config.target) {
            return Err(bad("Configs")(format!(
                "{} is the target of two config files",
                config.target.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use berth_client::api::HostConfig;

    use super::*;

    fn request(host_config: HostConfig) -> CreateRequest {
        CreateRequest {
            image: "busybox".into(),
            host_config,
            ..CreateRequest::default()
        }
    }

    #[test]
    fn a_create_without_network_mode_is_bridged_as_in_dockers_api() {
        let parsed = parse_create(&request(HostConfig::default())).unwrap();
        let bridge = parsed.bridge.expect("bridged by default");
        assert_eq!(bridge.network, berth_net::NetworkName::default_network());
        let none = parse_create(&request(HostConfig {
            network_mode: Some("none".into()),
            ..HostConfig::default()
        }))
        .unwrap();
        assert!(none.bridge.is_none());
    }

    #[test]
    fn limits_become_validated_options() {
        let parsed = parse_create(&request(HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(-1),
            restart_policy: Some("on-failure:3".into()),
            ..HostConfig::default()
        }))
        .unwrap();
        assert_eq!(parsed.options.memory.unwrap().bytes(), 64 << 20);
        assert_eq!(parsed.options.cpus.unwrap().nano_cpus(), 1_500_000_000);
        assert_eq!(parsed.options.pids_limit, None);
        assert_eq!(parsed.restart.to_string(), "on-failure:3");
    }

    #[test]
    fn each_bad_field_is_a_bad_request_naming_it() {
        let cases = [
            (
                HostConfig {
                    memory: Some(1),
                    ..HostConfig::default()
                },
                "Memory",
            ),
            (
                HostConfig {
                    binds: vec!["relative:/x".into()],
                    ..HostConfig::default()
                },
                "Binds",
            ),
            (
                HostConfig {
                    restart_policy: Some("sometimes".into()),
                    ..HostConfig::default()
                },
                "RestartPolicy",
            ),
            (
                HostConfig {
                    network_mode: Some("Not A Network".into()),
                    ..HostConfig::default()
                },
                "NetworkMode",
            ),
            (
                HostConfig {
                    network_mode: Some("bridge".into()),
                    port_bindings: vec!["80:99999".into()],
                    ..HostConfig::default()
                },
                "PortBindings",
            ),
            (
                HostConfig {
                    network_mode: Some("bridge".into()),
                    ip: Some("10.88.0.300".into()),
                    ..HostConfig::default()
                },
                "Ip",
            ),
            (
                HostConfig {
                    network_mode: Some("bridge".into()),
                    network_aliases: vec!["not_an alias".into()],
                    ..HostConfig::default()
                },
                "NetworkAliases",
            ),
            (
                HostConfig {
                    network_mode: Some("none".into()),
                    port_bindings: vec!["8080:80".into()],
                    ..HostConfig::default()
                },
                "PortBindings",
            ),
        ];
        for (host, field) in cases {
            match parse_create(&request(host)) {
                Err(AgentError::BadRequest(message)) => {
                    assert!(message.contains(field), "{message}")
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut bad_name = request(HostConfig::default());
        bad_name.name = Some("/-x".into());
        assert!(matches!(
            parse_create(&bad_name),
            Err(AgentError::BadRequest(_))
        ));
    }

    #[test]
    fn services_and_health_checks_are_validated() {
        let with = |services: &[&str], network: Option<&str>, test: &[&str]| {
            let mut r = request(HostConfig {
                network_mode: network.map(str::to_owned),
                ..HostConfig::default()
            });
            r.services = services.iter().map(|s| (*s).to_owned()).collect();
            r.healthcheck = (!test.is_empty()).then(|| berth_client::api::HealthConfig {
                test: test.iter().map(|t| (*t).to_owned()).collect(),
                ..Default::default()
            });
            parse_create(&r)
        };
        let parsed = with(&["web:80", "api"], Some("bridge"), &["TCP", "80"]).unwrap();
        assert_eq!(parsed.services.len(), 2);
        assert_eq!(parsed.health.unwrap().port(), Some(80));
        assert!(with(&["web"], Some("host"), &[]).is_ok());
        let cases = [
            (with(&["Web"], Some("bridge"), &[]), "invalid service name"),
            (with(&["web:70000"], Some("bridge"), &[]), "65535"),
            (
                with(&["web:0"], Some("bridge"), &[]),
                "invalid service port",
            ),
            (with(&["web", "web:80"], Some("bridge"), &[]), "twice"),
            (with(&["web"], Some("none"), &[]), "not none"),
            (
                with(&[], Some("bridge"), &["HTTP", "99999", "/"]),
                "Healthcheck",
            ),
        ];
        for (result, expected) in cases {
            match result {
                Err(AgentError::BadRequest(message)) => {
                    assert!(message.contains(expected), "{expected}: {message}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
        // No network mode is the bridge, as in docker's API: it has addresses.
        assert!(with(&["web"], None, &[]).is_ok());
    }

    #[test]
    fn config_bindings_are_validated() {
        let with = |configs: &[&str], env: &[&str], signal: Option<&str>, binds: &[&str]| {
            let mut r = request(HostConfig {
                binds: binds.iter().map(|b| (*b).to_owned()).collect(),
                ..HostConfig::default()
            });
            r.configs = configs.iter().map(|c| (*c).to_owned()).collect();
            r.config_env = env.iter().map(|c| (*c).to_owned()).collect();
            r.config_signal = signal.map(str::to_owned);
            parse_create(&r)
        };
        let parsed = with(&["app/a:/etc/a:0600"], &["app/b=B"], Some("HUP"), &[]).unwrap();
        assert_eq!(parsed.configs[0].mode, 0o600);
        assert_eq!(parsed.config_env[0].var, "B");
        assert_eq!(parsed.config_signal.as_deref(), Some("HUP"));
        let cases = [
            (with(&["app/a:etc/a"], &[], None, &[]), "Configs"),
            (with(&["app/a:/etc/a:9"], &[], None, &[]), "Configs"),
            (with(&["/bad:/etc/a"], &[], None, &[]), "config key"),
            (with(&["a:/x", "b:/x"], &[], None, &[]), "two config files"),
            (with(&["a:/data/x"], &[], None, &["/tmp:/data"]), "hide it"),
            (with(&[], &["a=1X"], None, &[]), "ConfigEnv"),
            (with(&["a:/x"], &[], Some("SIGNOPE"), &[]), "ConfigSignal"),
            (with(&[], &[], Some("HUP"), &[]), "needs at least one"),
        ];
        for (result, expected) in cases {
            match result {
                Err(AgentError::BadRequest(message)) => {
                    assert!(message.contains(expected), "{expected}: {message}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }
}
