//! Validated resource limits from the command line: memory, CPU shares, pids, block I/O.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::byte_size::{ByteSize, ByteSizeError};

/// Docker's smallest memory limit; below it a container cannot even start its runtime.
pub const MIN_MEMORY: ByteSize = ByteSize::from_mib(6);

/// Why a resource limit given by the user is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("invalid memory limit: {0}")]
    MemorySize(#[source] ByteSizeError),
    #[error("invalid memory limit {0}: the minimum is {MIN_MEMORY}")]
    MemoryTooSmall(ByteSize),
    #[error("invalid CPU shares {0:?}: expected an integer from 2 to 262144")]
    CpuShares(String),
    #[error("invalid pids limit {0:?}: expected a positive integer (leave it out for no limit)")]
    PidsLimit(String),
    #[error("invalid block I/O weight {0:?}: expected an integer from 10 to 1000")]
    BlkioWeight(String),
    #[error("invalid device rate {0:?}: expected DEVICE_PATH:RATE, e.g. /dev/sda:1mb")]
    DeviceRateFormat(String),
    #[error("invalid device rate {input:?}: {source}")]
    DeviceRateSize {
        input: String,
        source: ByteSizeError,
    },
    #[error("invalid device rate {input:?}: cannot stat {path}: {reason}")]
    DeviceStat {
        input: String,
        path: PathBuf,
        reason: String,
    },
    #[error("invalid device rate {input:?}: {path} is not a block device")]
    NotABlockDevice { input: String, path: PathBuf },
}

/// A memory limit of at least [`MIN_MEMORY`]; swap is not granted on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(ByteSize);

impl MemoryLimit {
    /// The limit, checked against [`MIN_MEMORY`].
    pub fn new(size: ByteSize) -> Result<Self, LimitError> {
        if size < MIN_MEMORY {
            return Err(LimitError::MemoryTooSmall(size));
        }
        Ok(Self(size))
    }

    pub fn bytes(self) -> u64 {
        self.0.bytes()
    }
}

impl FromStr for MemoryLimit {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s.parse().map_err(LimitError::MemorySize)?)
    }
}

/// A relative CPU weight (`--cpu-shares`), 2 to 262144 as cgroup v1 accepts; converted to
/// `cpu.weight` on cgroup v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuShares(u64);

impl CpuShares {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for CpuShares {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<u64>() {
            Ok(v @ 2..=262_144) => Ok(Self(v)),
            _ => Err(LimitError::CpuShares(s.to_owned())),
        }
    }
}

/// The most processes (tasks) the container may hold at once (`--pids-limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidsLimit(i64);

impl PidsLimit {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl FromStr for PidsLimit {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<i64>() {
            Ok(v) if v > 0 => Ok(Self(v)),
            _ => Err(LimitError::PidsLimit(s.to_owned())),
        }
    }
}

/// A relative block I/O weight (`--blkio-weight`), 10 to 1000 as docker accepts; converted to
/// `io.weight` on cgroup v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkioWeight(u16);

impl BlkioWeight {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for BlkioWeight {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<u16>() {
            Ok(v @ 10..=1000) => Ok(Self(v)),
            _ => Err(LimitError::BlkioWeight(s.to_owned())),
        }
    }
}

/// A bytes-per-second limit on one block device (`--device-read-bps`, `--device-write-bps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRate {
    path: PathBuf,
    major: i64,
    minor: i64,
    rate: ByteSize,
}

impl DeviceRate {
    /// A rate on the device `major:minor` (known as `path`).
    pub fn new(path: impl Into<PathBuf>, major: i64, minor: i64, rate: ByteSize) -> Self {
        Self {
            path: path.into(),
            major,
            minor,
            rate,
        }
    }

    /// Parses `DEVICE_PATH:RATE` and looks the device's number up on this host.
    pub fn resolve(input: &str) -> Result<Self, LimitError> {
        let (path, rate) = input
            .rsplit_once(':')
            .filter(|(path, _)| path.starts_with('/'))
            .ok_or_else(|| LimitError::DeviceRateFormat(input.to_owned()))?;
        let rate = rate.parse().map_err(|source| LimitError::DeviceRateSize {
            input: input.to_owned(),
            source,
        })?;
        let path = Path::new(path);
        let meta = std::fs::metadata(path).map_err(|err| LimitError::DeviceStat {
            input: input.to_owned(),
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
        if !meta.file_type().is_block_device() {
            return Err(LimitError::NotABlockDevice {
                input: input.to_owned(),
                path: path.to_owned(),
            });
        }
        let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
        Ok(Self::new(
            path,
            nix::sys::stat::major(rdev) as i64,
            nix::sys::stat::minor(rdev) as i64,
            rate,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn major(&self) -> i64 {
        self.major
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn rate(&self) -> ByteSize {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_parses_docker_sizes_and_keeps_docker_minimum() {
        assert_eq!("32m".parse::<MemoryLimit>().unwrap().bytes(), 32 << 20);
        assert_eq!(
            "4m".parse::<MemoryLimit>(),
            Err(LimitError::MemoryTooSmall(ByteSize::from_mib(4)))
        );
        let err = "32q".parse::<MemoryLimit>().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid memory limit: invalid size \"32q\""),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_cgroup_weights_are_rejected() {
        assert_eq!("1024".parse::<CpuShares>().unwrap().get(), 1024);
        assert!("1".parse::<CpuShares>().is_err());
        assert!("262145".parse::<CpuShares>().is_err());
        assert_eq!("64".parse::<PidsLimit>().unwrap().get(), 64);
        assert!("0".parse::<PidsLimit>().is_err());
        assert!("-1".parse::<PidsLimit>().is_err());
        assert_eq!("500".parse::<BlkioWeight>().unwrap().get(), 500);
        assert!("9".parse::<BlkioWeight>().is_err());
        assert!("1001".parse::<BlkioWeight>().is_err());
    }

    #[test]
    fn device_rate_needs_a_block_device_and_a_size() {
        assert_eq!(
            DeviceRate::resolve("1mb"),
            Err(LimitError::DeviceRateFormat("1mb".to_owned()))
        );
        assert!(matches!(
            DeviceRate::resolve("/dev/null:1x"),
            Err(LimitError::DeviceRateSize { .. })
        ));
        assert!(matches!(
            DeviceRate::resolve("/dev/null:1mb"),
            Err(LimitError::NotABlockDevice { .. })
        ));
        assert!(matches!(
            DeviceRate::resolve("/no/such/device:1mb"),
            Err(LimitError::DeviceStat { .. })
        ));
    }
}
