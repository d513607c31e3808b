//! Container ids: 64 lowercase hex characters, as docker names its containers.

use std::fmt;
use std::str::FromStr;

/// Length of a container id in hex characters.
const ID_HEX_LEN: usize = 64;
/// Length of the short form shown by `ps` and used as the default hostname.
const SHORT_LEN: usize = 12;

/// A container's id: 64 lowercase hex characters (256 random bits).
///
/// The id names the container's state directory and cgroup, so it never contains a path
/// separator or a character a cgroup or file name could not hold.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    hex: String,
}

/// Why a string is not a [`ContainerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerIdError {
    #[error("invalid container id {0:?}: expected 64 lowercase hex characters")]
    Malformed(String),
}

impl ContainerId {
    /// The id made of `random` bytes; callers pass 32 bytes from a CSPRNG.
    pub fn from_random_bytes(random: [u8; 32]) -> Self {
        Self {
            hex: hex::encode(random),
        }
    }

    /// The full 64-character id.
    pub fn as_str(&self) -> &str {
        &self.hex
    }

    /// The first 12 characters, as docker shows container ids and sets default hostnames.
    pub fn short(&self) -> &str {
        &self.hex[..SHORT_LEN]
    }
}

impl FromStr for ContainerId {
    type Err = ContainerIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let well_formed = s.len() == ID_HEX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(ContainerIdError::Malformed(s.to_owned()));
        }
        Ok(Self { hex: s.to_owned() })
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex)
    }
}

impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_as_string!(ContainerId);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_bytes_make_a_parseable_id_with_a_short_form() {
        let id = ContainerId::from_random_bytes([0xab; 32]);
        assert_eq!(id.as_str(), "ab".repeat(32));
        assert_eq!(id.short(), "abababababab");
        assert_eq!(id.to_string().parse::<ContainerId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }

    #[test]
    fn rejects_ids_that_could_escape_a_directory_or_cgroup() {
        for bad in [
            "",
            "../etc",
            &"A".repeat(64),
            &"a".repeat(63),
            &format!("{}/", "a".repeat(63)),
        ] {
            assert_eq!(
                bad.parse::<ContainerId>(),
                Err(ContainerIdError::Malformed(bad.to_owned()))
            );
        }
    }

    proptest! {
        #[test]
        fn every_random_id_round_trips(bytes in any::<[u8; 32]>()) {
            let id = ContainerId::from_random_bytes(bytes);
            prop_assert_eq!(id.as_str().parse::<ContainerId>().unwrap(), id);
        }
    }
}
