//! Content digests (`sha256:<hex>`), the address of every blob berth stores.

use std::fmt;
use std::io;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Length of a sha256 digest in hex characters.
const SHA256_HEX_LEN: usize = 64;

/// A sha256 content digest, `sha256:` followed by 64 lowercase hex characters.
///
/// Only sha256 is accepted: it is the only algorithm OCI registries and runtimes are required
/// to support, and accepting others would let two digests name the same content.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX")]
    Malformed(String),
    #[error("unsupported digest algorithm {algorithm:?} in {digest:?}: only sha256 is supported")]
    UnsupportedAlgorithm { digest: String, algorithm: String },
    #[error("invalid sha256 digest {0:?}: expected 64 lowercase hex characters")]
    BadHex(String),
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(bytes).into())
    }

    /// The digest whose raw sha256 value is `raw`.
    pub fn from_sha256(raw: [u8; 32]) -> Self {
        Self {
            hex: hex::encode(raw),
        }
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 lowercase hex characters, used as a file name in content-addressed directories.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as docker shows image ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_owned()))?;
        if algorithm != "sha256" {
            let valid_algorithm = !algorithm.is_empty()
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
            if !valid_algorithm {
                return Err(DigestError::Malformed(s.to_owned()));
            }
            return Err(DigestError::UnsupportedAlgorithm {
                digest: s.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        }
        let well_formed = hex.len() == SHA256_HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(DigestError::BadHex(s.to_owned()));
        }
        Ok(Self {
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_as_string!(Digest);

/// An [`io::Write`] that hashes and counts everything written through it to an inner writer.
#[derive(Debug)]
pub struct Sha256Writer<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W> Sha256Writer<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, W) {
        (
            Digest::from_sha256(self.hasher.finalize().into()),
            self.inner,
        )
    }
}

impl<W: io::Write> io::Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips() {
        let d = Digest::of(b"berth");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
    }

    #[test]
    fn rejects_what_is_not_a_sha256_digest() {
        let upper = format!("sha256:{}", "A".repeat(64));
        let short = format!("sha256:{}", "a".repeat(63));
        let other = format!("sha512:{}", "a".repeat(128));
        assert!(matches!(
            upper.parse::<Digest>(),
            Err(DigestError::BadHex(_))
        ));
        assert!(matches!(
            short.parse::<Digest>(),
            Err(DigestError::BadHex(_))
        ));
        assert!(matches!(
            other.parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            "nope".parse::<Digest>(),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            "../x:y".parse::<Digest>(),
            Err(DigestError::Malformed(_))
        ));
    }

    #[test]
    fn writer_hashes_what_it_passes_through() {
        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"ber").unwrap();
        w.write_all(b"th").unwrap();
        assert_eq!(w.written(), 5);
        let (digest, inner) = w.finish();
        assert_eq!(digest, Digest::of(b"berth"));
        assert_eq!(inner, b"berth");
    }

    proptest::proptest! {
        #[test]
        fn any_sha256_hex_parses(raw in proptest::array::uniform32(0u8..)) {
            let d = Digest::from_sha256(raw);
            proptest::prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        }
    }
}
