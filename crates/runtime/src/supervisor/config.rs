//! The supervisor's input: `config.json` in the container's state directory, and the names of
//! every file the supervisor keeps there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_types::ContainerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::restart::RestartPolicy;

use super::SupervisorError;

/// docker's `--log-opt max-size` default for berth (docker's own is unlimited).
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// docker's `--log-opt max-file` default for berth: the live file and two rotated ones.
pub const DEFAULT_LOG_MAX_FILE: u32 = 3;
/// How long `stop` (and a SIGTERM to the supervisor) waits before SIGKILL, as docker's.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Size-based rotation of `container.log` (docker's json-file `max-size` and `max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLimits {
    /// A file is rotated before a record would take it past this many bytes.
    pub max_size: u64,
    /// How many files are kept, the live one included (1: the live file is truncated).
    pub max_file: u32,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_LOG_MAX_SIZE,
            max_file: DEFAULT_LOG_MAX_FILE,
        }
    }
}

/// What the supervisor runs and how: written by whoever spawns it, read once at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    pub id: ContainerId,
    /// The OCI bundle (its `config.json` and rootfs), kept across restarts.
    pub bundle: PathBuf,
    /// libcontainer's state root (`/run/berth/runtime` in production).
    pub runtime_root: PathBuf,
    #[serde(
        default,
        serialize_with = "as_text",
        deserialize_with = "policy_from_text"
    )]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub log: LogLimits,
    /// Seconds between SIGTERM and SIGKILL when the supervisor itself is told to stop.
    #[serde(default = "default_stop_timeout_secs")]
    pub stop_timeout_secs: u64,
    /// `-i`: the container's stdin is a pipe (or its terminal) fed by whoever connects to
    /// `attach.sock` in the state directory; the first such connection's end of input closes
    /// it. Otherwise stdin is `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
}

fn default_stop_timeout_secs() -> u64 {
    DEFAULT_STOP_TIMEOUT.as_secs()
}

fn as_text<S: Serializer>(policy: &RestartPolicy, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(policy)
}

fn policy_from_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RestartPolicy, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

impl SupervisorConfig {
    /// Reads `config.json` of `dir`.
    pub fn load(dir: &StateDir) -> Result<Self, SupervisorError> {
        let path = dir.config();
        let error = |reason: String| SupervisorError::Config {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read(&path).map_err(|err| error(err.to_string()))?;
        let config: Self = serde_json::from_slice(&text).map_err(|err| error(err.to_string()))?;
        if config.log.max_file == 0 || config.log.max_size == 0 {
            return Err(error("log max_size and max_file must be at least 1".into()));
        }
        Ok(config)
    }

    /// Writes `config.json` into `dir` (atomically), for a supervisor to be spawned there.
    pub fn write(&self, dir: &StateDir) -> Result<(), SupervisorError> {
        let json = serde_json::to_vec_pretty(self).map_err(|err| SupervisorError::Config {
            path: dir.config(),
            reason: err.to_string(),
        })?;
        super::state::write_atomically(&dir.config(), &json)
    }
}

/// A container's state directory: the supervisor's config, pid file, control socket, state
/// record and logs. Laid out in docs/adr/0013-runtime-supervisor.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.json")
    }

    /// The container's state and exit record ([`super::ContainerState`]).
    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.path.join("supervisor.pid")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.path.join("control.sock")
    }

    /// Where `-i` clients send the container's stdin ([`SupervisorConfig::stdin`]).
    pub fn attach_socket(&self) -> PathBuf {
        self.path.join("attach.sock")
    }

    /// Where a container with a terminal sends its pty master during `create`.
    pub fn console_socket(&self) -> PathBuf {
        self.path.join("console.sock")
    }

    /// The live log file; rotated ones add `.1`, `.2`, … (`.1` the newest).
    pub fn log(&self) -> PathBuf {
        self.path.join("container.log")
    }

    /// The `n`th rotated log file.
    pub fn rotated_log(&self, n: u32) -> PathBuf {
        self.path.join(format!("container.log.{n}"))
    }

    /// The supervisor's own diagnostics (its stderr).
    pub fn supervisor_log(&self) -> PathBuf {
        self.path.join("supervisor.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_restart_policy_as_docker_does_and_defaults_the_rest() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = StateDir::new(temp.path());
        let id = "ab".repeat(32);
        let json = format!(
            r#"{{"id":"{id}","bundle":"/b","runtime_root":"/r","restart":"on-failure:3"}}"#
        );
        std::fs::write(dir.config(), json).expect("config");
        let config = SupervisorConfig::load(&dir).expect("load");
        assert_eq!(
            config.restart,
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            }
        );
        assert_eq!(config.log, LogLimits::default());
        assert_eq!(config.stop_timeout_secs, DEFAULT_STOP_TIMEOUT.as_secs());
        config.write(&dir).expect("write");
        assert_eq!(SupervisorConfig::load(&dir).expect("reload"), config);

        for bad in [
            r#""restart":"sometimes""#,
            r#""log":{"max_size":0,"max_file":3}"#,
            r#""unknown":1"#,
        ] {
            let json = format!(r#"{{"id":"{id}","bundle":"/b","runtime_root":"/r",{bad}}}"#);
            std::fs::write(dir.config(), json).expect("config");
            assert!(SupervisorConfig::load(&dir).is_err(), "{bad}");
        }
    }
}
