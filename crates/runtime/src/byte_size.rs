//! Sizes given on the command line (`--memory 32m`, `--device-read-bps /dev/sda:1mb`), parsed as
//! docker parses them: a decimal number with an optional binary unit.

use std::fmt;
use std::str::FromStr;

/// A size in bytes parsed from docker's notation: `1024`, `512k`, `32m`, `1.5g`, `2GiB`.
///
/// Units are powers of 1024 (`b`, `k`, `m`, `g`, `t`, `p`), case-insensitive, optionally
/// followed by `b` or `ib`; a number without a unit is bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// Why a string is not a [`ByteSize`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    #[error(
        "invalid size {0:?}: expected a number with an optional unit b, k, m, g, t or p (e.g. 32m)"
    )]
    Malformed(String),
    #[error("invalid size {0:?}: larger than 2^63 bytes")]
    TooLarge(String),
}

impl ByteSize {
    /// `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// `mib` mebibytes.
    pub const fn from_mib(mib: u64) -> Self {
        Self(mib * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

/// The power of 1024 a unit letter stands for.
fn unit_exponent(unit: &str) -> Option<u32> {
    let lower = unit.to_ascii_lowercase();
    let letter = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    match letter {
        "" => Some(0),
        "k" => Some(1),
        "m" => Some(2),
        "g" => Some(3),
        "t" => Some(4),
        "p" => Some(5),
        _ => None,
    }
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || ByteSizeError::Malformed(s.to_owned());
        let number_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(number_len);
        let unit = unit.strip_prefix(' ').unwrap_or(unit);
        // "b" alone is bytes; "ib" alone (no letter) is not a unit.
        if unit.eq_ignore_ascii_case("ib") {
            return Err(malformed());
        }
        let exponent = unit_exponent(unit).ok_or_else(malformed)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) {
            return Err(malformed());
        }
        if number.ends_with('.') {
            return Err(malformed());
        }
        let multiplier = 1024u128.pow(exponent);
        let whole: u128 = whole
            .parse()
            .map_err(|_| ByteSizeError::TooLarge(s.to_owned()))?;
        // Fractions are kept to 9 digits, which is exact for every unit up to p.
        let fraction_digits = &fraction[..fraction.len().min(9)];
        let scale = 10u128.pow(fraction_digits.len() as u32);
        let fraction_value: u128 = if fraction_digits.is_empty() {
            0
        } else {
            fraction_digits.parse().map_err(|_| malformed())?
        };
        let bytes = whole
            .checked_mul(multiplier)
            .and_then(|w| w.checked_add(fraction_value * multiplier / scale))
            .filter(|&b| b <= i64::MAX as u128)
            .ok_or_else(|| ByteSizeError::TooLarge(s.to_owned()))?;
        u64::try_from(bytes)
            .map(Self)
            .map_err(|_| ByteSizeError::TooLarge(s.to_owned()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut unit = 0;
        let mut value = self.0;
        while value >= 1024 && value.is_multiple_of(1024) && unit < UNITS.len() - 1 {
            value /= 1024;
            unit += 1;
        }
        write!(f, "{value}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn size(s: &str) -> Result<u64, ByteSizeError> {
        s.parse::<ByteSize>().map(ByteSize::bytes)
    }

    #[test]
    fn memory_sizes_parse_like_docker() {
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(size("10b"), Ok(10));
        assert_eq!(size("512k"), Ok(512 * 1024));
        assert_eq!(size("32m"), Ok(32 << 20));
        assert_eq!(size("32M"), Ok(32 << 20));
        assert_eq!(size("32mb"), Ok(32 << 20));
        assert_eq!(size("32MiB"), Ok(32 << 20));
        assert_eq!(size("32 m"), Ok(32 << 20));
        assert_eq!(size("1g"), Ok(1 << 30));
        assert_eq!(size("1.5g"), Ok(3 << 29));
        assert_eq!(size("2t"), Ok(2 << 40));
    }

    #[test]
    fn invalid_memory_sizes_say_what_is_expected() {
        for bad in [
            "", "m", "-1m", "32x", "1..5m", "1.m", "ib", "3ib", "32mm", " 32m",
        ] {
            assert_eq!(
                size(bad),
                Err(ByteSizeError::Malformed(bad.to_owned())),
                "{bad:?}"
            );
        }
        let err = "32x".parse::<ByteSize>().unwrap_err().to_string();
        assert!(err.contains("\"32x\"") && err.contains("32m"), "{err}");
    }

    #[test]
    fn sizes_past_i64_are_rejected() {
        assert!(matches!(size("9000000p"), Err(ByteSizeError::TooLarge(_))));
        assert!(matches!(
            size("99999999999999999999999999999999999999999"),
            Err(ByteSizeError::TooLarge(_))
        ));
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(ByteSize::from_mib(32).to_string(), "32MiB");
        assert_eq!(ByteSize::from_bytes(1536).to_string(), "1536B");
    }

    proptest! {
        #[test]
        fn whole_mebibytes_round_trip(n in 0u64..1 << 30) {
            prop_assert_eq!(size(&format!("{n}m")), Ok(n << 20));
        }
    }
}
