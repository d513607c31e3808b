//! The user's run options (`berth run` flags), each already parsed into a validated type.

use std::fmt;
use std::str::FromStr;

use crate::cpus::Cpus;
use crate::limits::{BlkioWeight, CpuShares, DeviceRate, MemoryLimit, PidsLimit};
use crate::mounts::{ContainerPath, TmpfsMount, Volume};
use crate::user::UserSpec;

/// Why an option other than a limit or a mount is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("invalid environment variable {0:?}: expected NAME=VALUE")]
    Env(String),
    #[error(
        "invalid hostname {0:?}: expected 1 to 63 letters, digits, '-' or '.', not starting with '-' or '.'"
    )]
    Hostname(String),
    #[error("invalid network {0:?}: expected none or host")]
    Network(String),
}

/// `NAME=VALUE` for the container's environment (`-e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    name: String,
    value: String,
}

impl EnvVar {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl FromStr for EnvVar {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, value)) if !name.is_empty() && !s.contains('\0') => Ok(Self {
                name: name.to_owned(),
                value: value.to_owned(),
            }),
            _ => Err(OptionError::Env(s.to_owned())),
        }
    }
}

impl fmt::Display for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// The container's hostname (`--hostname`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&s.len())
            && !s.starts_with(['-', '.'])
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(OptionError::Hostname(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Which network namespace the container gets (`--network`).
///
/// `none` and `host` are parsed from the flag; [`NetworkMode::Join`] is set by the daemon
/// after it made the container's sandbox (a pinned namespace) with berth-net, so bridged
/// networking never needs the runtime to know about networks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A network namespace of its own with only the loopback interface.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// The existing network namespace pinned at this path (the spec's namespace `path`).
    Join(std::path::PathBuf),
}

impl FromStr for NetworkMode {
    type Err = OptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "host" => Ok(Self::Host),
            _ => Err(OptionError::Network(s.to_owned())),
        }
    }
}

/// Everything `berth run` can set about a container beyond its image.
///
/// Each field is already validated; [`crate::build_spec`] combines them with the image's
/// config. `None` and empty mean "as the image says" (or no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `-e NAME=VALUE`, applied over the image's environment in order.
    pub env: Vec<EnvVar>,
    /// `-w`: the working directory, instead of the image's.
    pub workdir: Option<ContainerPath>,
    /// `-u USER[:GROUP]`, instead of the image's user.
    pub user: Option<UserSpec>,
    /// `--hostname`; the short container id otherwise.
    pub hostname: Option<Hostname>,
    /// `--entrypoint`: replaces the image's entrypoint and drops its command; an empty
    /// vector clears the entrypoint (docker's `--entrypoint ""`).
    pub entrypoint: Option<Vec<String>>,
    /// The command after the image name, replacing the image's `Cmd`.
    pub cmd: Vec<String>,
    pub memory: Option<MemoryLimit>,
    pub cpus: Option<Cpus>,
    pub cpu_shares: Option<CpuShares>,
    pub pids_limit: Option<PidsLimit>,
    pub blkio_weight: Option<BlkioWeight>,
    pub device_read_bps: Vec<DeviceRate>,
    pub device_write_bps: Vec<DeviceRate>,
    /// `-t`: the process gets a pseudo-terminal (and `TERM=xterm` unless set); the driver's
    /// caller then receives the terminal's master through [`crate::Stdio::console_socket`].
    pub tty: bool,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
    pub tmpfs: Vec<TmpfsMount>,
    pub volumes: Vec<Volume>,
    pub network: NetworkMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_needs_a_name_and_keeps_equals_signs_in_the_value() {
        let var: EnvVar = "A=b=c".parse().unwrap();
        assert_eq!((var.name(), var.value()), ("A", "b=c"));
        assert_eq!("EMPTY=".parse::<EnvVar>().unwrap().value(), "");
        for bad in ["A", "=x", ""] {
            assert_eq!(bad.parse::<EnvVar>(), Err(OptionError::Env(bad.into())));
        }
    }

    #[test]
    fn hostnames_follow_dns_label_rules() {
        assert_eq!(
            "web-1.local".parse::<Hostname>().unwrap().as_str(),
            "web-1.local"
        );
        for bad in ["", "-x", ".x", "a_b", &"a".repeat(64)] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_none_and_host_are_parsed_joining_is_set_by_the_daemon() {
        assert_eq!("none".parse(), Ok(NetworkMode::None));
        assert_eq!("host".parse(), Ok(NetworkMode::Host));
        let err = "bridge".parse::<NetworkMode>().unwrap_err().to_string();
        assert!(err.contains("none or host"), "{err}");
        assert!("/run/berth/netns/x".parse::<NetworkMode>().is_err());
    }
}
