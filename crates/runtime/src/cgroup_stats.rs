//! A container's cgroup accounting (`berth stats`) and its OOM-kill count, on cgroup v1 and v2.

use std::path::{Path, PathBuf};

use libcgroups::common::{
    CgroupConfig, CgroupManager, CgroupSetup, create_cgroup_manager, get_cgroup_setup,
};
use libcgroups::stats::Stats;

/// Limits at or above this are "no limit" (v1 reports unlimited memory as ~2^63, v2 as `max`).
const UNLIMITED: u64 = 1 << 62;

/// What a container has used so far, read from its cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ContainerStats {
    /// CPU time used by all its processes, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, in bytes, as docker shows it: the cgroup's usage less its inactive file
    /// cache (pages the kernel reclaims before it would OOM-kill).
    pub memory_usage: u64,
    /// The memory limit in bytes, `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Processes (tasks) in the container now.
    pub pids: u64,
    /// The pids limit, `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
}

/// Why a cgroup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupReadError {
    #[error("cannot open cgroup {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("cannot read the statistics of cgroup {path}: {reason}")]
    Stats { path: PathBuf, reason: String },
    #[error("cannot read {file}: {reason}")]
    File { file: PathBuf, reason: String },
}

impl ContainerStats {
    /// Reads the accounting of the cgroup at `cgroup_path` (e.g. `/berth/<id>`) through
    /// libcgroups, on whichever hierarchy this host limits with.
    pub fn read(cgroup_path: &Path) -> Result<Self, CgroupReadError> {
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: cgroup_path.to_owned(),
            systemd_cgroup: false,
            container_name: String::new(),
        })
        .map_err(|err| CgroupReadError::Open {
            path: cgroup_path.to_owned(),
            reason: err.to_string(),
        })?;
        let stats = manager.stats().map_err(|err| CgroupReadError::Stats {
            path: cgroup_path.to_owned(),
            reason: err.to_string(),
        })?;
        Ok(Self::from_libcgroups(&stats))
    }

    fn from_libcgroups(stats: &Stats) -> Self {
        let limit = |value: u64| (value > 0 && value < UNLIMITED).then_some(value);
        let bytes = |op: &str| {
            stats
                .blkio
                .service_bytes
                .iter()
                .filter(|s| {
                    s.op_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(op))
                })
                .map(|s| s.value)
                .sum()
        };
        // v1 reports the hierarchy's total as total_inactive_file, v2 as inactive_file.
        let inactive_file = ["total_inactive_file", "inactive_file"]
            .iter()
            .find_map(|key| stats.memory.stats.get(*key))
            .copied()
            .unwrap_or(0);
        Self {
            cpu_usage_ns: stats.cpu.usage.usage_total,
            memory_usage: stats.memory.memory.usage.saturating_sub(inactive_file),
            memory_limit: limit(stats.memory.memory.limit),
            pids: stats.pids.current,
            pids_limit: limit(stats.pids.limit),
            block_read_bytes: bytes("read"),
            block_write_bytes: bytes("write"),
        }
    }
}

/// How many processes of the cgroup at `cgroup_path` the kernel's OOM killer has killed:
/// `oom_kill` of `memory.events` on v2, of `memory.oom_control` on v1.
pub fn oom_kill_count(cgroup_path: &Path) -> Result<u64, CgroupReadError> {
    let relative = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let file = match get_cgroup_setup() {
        Ok(CgroupSetup::Unified) => Path::new("/sys/fs/cgroup")
            .join(relative)
            .join("memory.events"),
        _ => {
            let mount = libcgroups::v1::util::get_subsystem_mount_point(
                &libcgroups::v1::ControllerType::Memory,
            )
            .map_err(|err| CgroupReadError::Open {
                path: cgroup_path.to_owned(),
                reason: err.to_string(),
            })?;
            mount.join(relative).join("memory.oom_control")
        }
    };
    let text = std::fs::read_to_string(&file).map_err(|err| CgroupReadError::File {
        file: file.clone(),
        reason: err.to_string(),
    })?;
    Ok(parse_oom_kill(&text))
}

/// The `oom_kill` counter of a flat-keyed cgroup file; 0 when the kernel does not report it.
fn parse_oom_kill(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == "oom_kill")
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcgroups::stats::BlkioDeviceStat;

    #[test]
    fn oom_kill_counter_is_read_from_v1_and_v2_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v1), 3);
        assert_eq!(parse_oom_kill(v2), 1);
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), 0);
    }

    #[test]
    fn unlimited_values_and_block_io_directions_are_reported_as_such() {
        let mut stats = Stats::default();
        stats.cpu.usage.usage_total = 7;
        stats.memory.memory.usage = 140;
        stats.memory.stats.insert("inactive_file".to_owned(), 40);
        stats.memory.memory.limit = u64::MAX;
        stats.pids.current = 3;
        stats.pids.limit = 64;
        let device = |op: &str, value| BlkioDeviceStat {
            major: 8,
            minor: 0,
            op_type: Some(op.to_owned()),
            value,
        };
        stats.blkio.service_bytes =
            vec![device("Read", 10), device("write", 5), device("Total", 15)];
        let read = ContainerStats::from_libcgroups(&stats);
        assert_eq!(
            read,
            ContainerStats {
                cpu_usage_ns: 7,
                memory_usage: 100,
                memory_limit: None,
                pids: 3,
                pids_limit: Some(64),
                block_read_bytes: 10,
                block_write_bytes: 5,
            }
        );
    }
}
