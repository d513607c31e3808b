//! A container's config bindings: `--config KEY:/path[:mode]` ([`ConfigFile`]) and
//! `--config-env KEY=VAR` ([`ConfigEnv`]).

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::key::{ConfigKey, KeyError};

/// The mode of a placed file unless the binding says otherwise (docker's for configs).
pub const DEFAULT_MODE: u32 = 0o444;

/// Why a binding is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid config binding {0:?}: expected KEY:/PATH/IN/CONTAINER[:MODE]")]
    FileShape(String),
    #[error(
        "invalid config binding {binding:?}: the container path {path:?} must be absolute, without '.' or '..', and not /"
    )]
    Path { binding: String, path: String },
    #[error(
        "invalid config binding {binding:?}: mode {mode:?} is not an octal file mode (0000-7777, e.g. 0440)"
    )]
    Mode { binding: String, mode: String },
    #[error("invalid config environment binding {0:?}: expected KEY=VARIABLE")]
    EnvShape(String),
    #[error(
        "invalid config environment binding {binding:?}: {var:?} is not a variable name (letters, digits and '_', not starting with a digit)"
    )]
    EnvName { binding: String, var: String },
}

/// A config key placed as a file in the container, replaced atomically when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub key: ConfigKey,
    /// Absolute and normal (no `.`, `..` or repeated `/`), never `/` itself.
    pub target: PathBuf,
    pub mode: u32,
}

impl FromStr for ConfigFile {
    type Err = BindingError;

    fn from_str(binding: &str) -> Result<Self, BindingError> {
        let mut parts = binding.splitn(3, ':');
        let (Some(key), Some(path)) = (parts.next(), parts.next()) else {
            return Err(BindingError::FileShape(binding.to_owned()));
        };
        let key: ConfigKey = key.parse()?;
        let target = Path::new(path);
        let normal = target.is_absolute()
            && target.components().count() > 1
            && target
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)))
            && !path.contains("//")
            && !path.ends_with('/');
        if !normal {
            return Err(BindingError::Path {
                binding: binding.to_owned(),
                path: path.to_owned(),
            });
        }
        let mode = match parts.next() {
            None => DEFAULT_MODE,
            Some(mode) => parse_mode(mode).ok_or_else(|| BindingError::Mode {
                binding: binding.to_owned(),
                mode: mode.to_owned(),
            })?,
        };
        Ok(Self {
            key,
            target: target.to_owned(),
            mode,
        })
    }
}

fn parse_mode(mode: &str) -> Option<u32> {
    if mode.is_empty() || mode.len() > 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(mode, 8).ok()
}

impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{:04o}",
            self.key,
            self.target.display(),
            self.mode
        )
    }
}

/// A config key's value as an environment variable, set when the container is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEnv {
    pub key: ConfigKey,
    pub var: String,
}

impl FromStr for ConfigEnv {
    type Err = BindingError;

    fn from_str(binding: &str) -> Result<Self, BindingError> {
        let Some((key, var)) = binding.split_once('=') else {
            return Err(BindingError::EnvShape(binding.to_owned()));
        };
        let key: ConfigKey = key.parse()?;
        let valid = var
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(BindingError::EnvName {
                binding: binding.to_owned(),
                var: var.to_owned(),
            });
        }
        Ok(Self {
            key,
            var: var.to_owned(),
        })
    }
}

impl fmt::Display for ConfigEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_bindings_parse_with_a_default_mode() {
        let file: ConfigFile = "app/db.conf:/etc/app/db.conf".parse().unwrap();
        assert_eq!(file.key.as_str(), "app/db.conf");
        assert_eq!(file.target, Path::new("/etc/app/db.conf"));
        assert_eq!(file.mode, DEFAULT_MODE);
        let file: ConfigFile = "k:/x:0600".parse().unwrap();
        assert_eq!(file.mode, 0o600);
        assert_eq!(file.to_string(), "k:/x:0600");
        assert_eq!("k:/x:755".parse::<ConfigFile>().unwrap().mode, 0o755);
    }

    #[test]
    fn bad_file_bindings_say_what_is_wrong() {
        let cases = [
            ("k", "expected KEY:"),
            ("k:etc/x", "must be absolute"),
            ("k:/", "must be absolute"),
            ("k:/a/../b", "must be absolute"),
            ("k:/a/", "must be absolute"),
            ("k:/x:0999", "not an octal"),
            ("k:/x:rw", "not an octal"),
            ("k:/x:17777", "not an octal"),
            ("/k:/x", "invalid config key"),
        ];
        for (binding, expected) in cases {
            let err = binding.parse::<ConfigFile>().unwrap_err().to_string();
            assert!(err.contains(expected), "{binding}: {err}");
        }
    }

    #[test]
    fn env_bindings_name_a_variable() {
        let env: ConfigEnv = "app/level=LOG_LEVEL".parse().unwrap();
        assert_eq!(
            (env.key.as_str(), env.var.as_str()),
            ("app/level", "LOG_LEVEL")
        );
        for bad in ["k", "k=", "k=1A", "k=A-B", "a b=X"] {
            assert!(bad.parse::<ConfigEnv>().is_err(), "{bad}");
        }
    }
}
