//! Network names: what `berth network create NAME` and `--network NAME` accept.

use std::fmt;
use std::str::FromStr;

/// Longest network name: it names a file, a host-local data directory and iptables comments.
const MAX_LEN: usize = 64;
/// Names that `--network` gives another meaning to, so no network may be called that.
const RESERVED: [&str; 4] = ["bridge", "host", "none", "container"];

/// A network's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 characters, not one of the
/// reserved `--network` modes (`bridge`, `host`, `none`, `container`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkName(String);

/// Why a string is not a [`NetworkName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkNameError {
    #[error(
        "invalid network name {0:?}: expected [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_LEN} characters"
    )]
    Malformed(String),
    #[error("invalid network name {0:?}: the name is reserved for a --network mode")]
    Reserved(String),
}

impl NetworkName {
    /// The default network's name: `--network bridge` attaches containers to it.
    pub fn default_network() -> Self {
        Self("berth".to_owned())
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NetworkName {
    type Err = NetworkNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = s.bytes();
        let well_formed = s.len() <= MAX_LEN
            && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !well_formed {
            return Err(NetworkNameError::Malformed(s.to_owned()));
        }
        if RESERVED.contains(&s) {
            return Err(NetworkNameError::Reserved(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

berth_types::serde_as_string!(NetworkName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_grammar() {
        for good in ["berth", "a", "my-net_1.2", &"x".repeat(64)] {
            assert!(good.parse::<NetworkName>().is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", &"x".repeat(65), ".."] {
            assert!(
                matches!(
                    bad.parse::<NetworkName>(),
                    Err(NetworkNameError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn network_modes_are_reserved() {
        for mode in RESERVED {
            assert!(matches!(
                mode.parse::<NetworkName>(),
                Err(NetworkNameError::Reserved(_))
            ));
        }
    }
}
