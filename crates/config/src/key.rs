//! [`ConfigKey`]: the name of a configuration value, stored at `/berth/config/<name>`.

use std::fmt;
use std::str::FromStr;

/// Where configuration values live in the store.
pub const CONFIG_PREFIX: &str = "/berth/config/";

/// The longest key name accepted (without the prefix).
pub const MAX_KEY_LEN: usize = 256;

/// Why a key name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid config key {key:?}: {reason} (a key is 1-{MAX_KEY_LEN} characters of letters, digits, '.', '_' and '-', in segments separated by single '/', e.g. app/db.conf)"
)]
pub struct KeyError {
    pub key: String,
    pub reason: &'static str,
}

/// A configuration key name: segments of `[A-Za-z0-9._-]` separated by single `/`, no
/// segment `.` or `..`, at most [`MAX_KEY_LEN`] bytes. `app/db.conf` is stored at
/// `/berth/config/app/db.conf`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigKey(String);

impl ConfigKey {
    /// The name as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key in the store: [`CONFIG_PREFIX`] + the name.
    pub fn store_key(&self) -> String {
        format!("{CONFIG_PREFIX}{}", self.0)
    }

    /// The name of a store key under [`CONFIG_PREFIX`], if it is a valid one.
    pub fn from_store_key(key: &[u8]) -> Option<Self> {
        std::str::from_utf8(key)
            .ok()?
            .strip_prefix(CONFIG_PREFIX)?
            .parse()
            .ok()
    }
}

impl FromStr for ConfigKey {
    type Err = KeyError;

    fn from_str(key: &str) -> Result<Self, KeyError> {
        let refuse = |reason| {
            Err(KeyError {
                key: key.to_owned(),
                reason,
            })
        };
        if key.is_empty() {
            return refuse("it is empty");
        }
        if key.len() > MAX_KEY_LEN {
            return refuse("it is too long");
        }
        if let Some(bad) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
        {
            return refuse(if bad == ':' || bad == '=' {
                "':' and '=' separate a key from what follows it"
            } else {
                "it has a character outside the allowed set"
            });
        }
        for segment in key.split('/') {
            match segment {
                "" => return refuse("it has an empty segment (a leading, trailing or double '/')"),
                "." | ".." => return refuse("'.' and '..' are not segments"),
                _ => {}
            }
        }
        Ok(Self(key.to_owned()))
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_keys_are_stored_under_the_prefix() {
        for good in ["a", "app/db.conf", "A-b_c.1/x", "x/y/z"] {
            let key: ConfigKey = good.parse().unwrap();
            assert_eq!(key.store_key(), format!("/berth/config/{good}"));
            assert_eq!(
                ConfigKey::from_store_key(key.store_key().as_bytes()),
                Some(key)
            );
        }
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", ".", "a b", "a:b", "k=v", "é", &long,
        ] {
            let err = bad.parse::<ConfigKey>().unwrap_err();
            assert!(err.to_string().contains("invalid config key"), "{err}");
        }
        assert_eq!(ConfigKey::from_store_key(b"/other/a"), None);
    }
}
