//! Container names (`--name`), with docker's grammar.

use std::fmt;
use std::str::FromStr;

/// Longest name berth accepts (docker has no limit; berth keeps names usable as DNS labels
/// and file names).
const MAX_NAME_LEN: usize = 63;

/// A container's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, as docker accepts, at most 63 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerName(String);

/// Why a string is not a [`ContainerName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerNameError {
    #[error(
        "invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"
    )]
    Malformed(String),
    #[error("invalid container name {0:?}: at most 63 characters")]
    TooLong(String),
}

impl ContainerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerName {
    type Err = ContainerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = s.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !first_ok || !rest_ok || s.len() < 2 {
            return Err(ContainerNameError::Malformed(s.to_owned()));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(ContainerNameError::TooLong(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

serde_as_string!(ContainerName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_style_names_are_accepted() {
        for good in ["web", "web-1", "my_app.v2", "A1", "0x"] {
            assert_eq!(good.parse::<ContainerName>().unwrap().as_str(), good);
        }
        let name: ContainerName = "web".parse().unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"web\"");
    }

    #[test]
    fn names_that_docker_refuses_are_refused() {
        for bad in ["", "a", "-web", ".web", "_web", "we b", "web/1", "wéb"] {
            assert_eq!(
                bad.parse::<ContainerName>(),
                Err(ContainerNameError::Malformed(bad.to_owned())),
                "{bad:?}"
            );
        }
        let long = "a".repeat(64);
        assert_eq!(
            long.parse::<ContainerName>(),
            Err(ContainerNameError::TooLong(long.clone()))
        );
    }
}
