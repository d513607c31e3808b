//! CPU quotas given as a number of CPUs (`--cpus 0.5`), as docker takes them.

use std::fmt;
use std::str::FromStr;

/// Nanoseconds of CPU time in one second, the unit docker counts CPUs in.
const NANOS_PER_CPU: u64 = 1_000_000_000;
/// The CFS period berth uses for quotas, as docker does.
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts is 1 ms per period: 0.01 CPUs at a 100 ms period.
const MIN_NANO_CPUS: u64 = NANOS_PER_CPU / 100;

/// A CPU quota in billionths of a CPU, parsed from a decimal like `0.5` or `2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpus {
    nano: u64,
}

/// Why a string is not a [`Cpus`] quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpusError {
    #[error("invalid number of CPUs {0:?}: expected a decimal number such as 0.5 or 2")]
    Malformed(String),
    #[error("invalid number of CPUs {0:?}: at most 9 decimal places")]
    TooPrecise(String),
    #[error("invalid number of CPUs {0:?}: the smallest quota is 0.01")]
    TooSmall(String),
}

impl Cpus {
    /// The quota in billionths of a CPU.
    pub fn nano_cpus(self) -> u64 {
        self.nano
    }

    /// The CFS quota in microseconds per [`CFS_PERIOD_US`].
    pub fn quota_us(self) -> u64 {
        self.nano * CFS_PERIOD_US / NANOS_PER_CPU
    }

    /// Whether the quota asks for more than `online` CPUs.
    pub fn exceeds(self, online: u32) -> bool {
        self.nano > u64::from(online) * NANOS_PER_CPU
    }
}

impl FromStr for Cpus {
    type Err = CpusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || CpusError::Malformed(s.to_owned());
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || s.ends_with('.') {
            return Err(malformed());
        }
        if fraction.len() > 9 {
            return Err(CpusError::TooPrecise(s.to_owned()));
        }
        let whole: u64 = whole.parse().map_err(|_| malformed())?;
        let fraction_nanos = if fraction.is_empty() {
            0
        } else {
            let value: u64 = fraction.parse().map_err(|_| malformed())?;
            value * 10u64.pow(9 - fraction.len() as u32)
        };
        let nano = whole
            .checked_mul(NANOS_PER_CPU)
            .and_then(|n| n.checked_add(fraction_nanos))
            .ok_or_else(malformed)?;
        if nano < MIN_NANO_CPUS {
            return Err(CpusError::TooSmall(s.to_owned()));
        }
        Ok(Self { nano })
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.nano / NANOS_PER_CPU;
        let fraction = self.nano % NANOS_PER_CPU;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_cpu_is_a_50ms_quota_per_100ms() {
        let cpus: Cpus = "0.5".parse().unwrap();
        assert_eq!(cpus.nano_cpus(), 500_000_000);
        assert_eq!(cpus.quota_us(), 50_000);
        assert_eq!(cpus.to_string(), "0.5");
        assert_eq!("2".parse::<Cpus>().unwrap().quota_us(), 200_000);
        assert_eq!("1.25".parse::<Cpus>().unwrap().to_string(), "1.25");
    }

    #[test]
    fn invalid_cpu_quotas_are_rejected_with_the_reason() {
        for bad in ["", ".5", "5.", "-1", "1e3", "half", "0.5.1"] {
            assert_eq!(
                bad.parse::<Cpus>(),
                Err(CpusError::Malformed(bad.to_owned()))
            );
        }
        assert_eq!(
            "0".parse::<Cpus>(),
            Err(CpusError::TooSmall("0".to_owned()))
        );
        assert_eq!(
            "0.009".parse::<Cpus>(),
            Err(CpusError::TooSmall("0.009".to_owned()))
        );
        assert_eq!(
            "0.0000000001".parse::<Cpus>(),
            Err(CpusError::TooPrecise("0.0000000001".to_owned()))
        );
    }

    #[test]
    fn quota_is_compared_with_the_online_cpus() {
        let cpus: Cpus = "2.5".parse().unwrap();
        assert!(cpus.exceeds(2));
        assert!(!cpus.exceeds(3));
    }
}
