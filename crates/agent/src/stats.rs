//! `GET /v1/containers/{id}/stats`: the container's cgroup accounting as [`Stats`], with
//! `cpu_percent` computed from two readings as docker does.

use std::time::{Duration, Instant};

use berth_client::api::Stats;
use berth_runtime::ContainerStats;
use berth_types::ContainerId;

use crate::error::{AgentError, Result};
use crate::manager::cgroup_path;

/// The gap between the two readings of a one-shot sample.
pub const FIRST_SAMPLE_GAP: Duration = Duration::from_millis(100);

/// One reading of a container's cgroup, with the instant it was taken.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub stats: ContainerStats,
}

pub fn sample(id: &ContainerId) -> Result<Sample> {
    let stats = ContainerStats::read(&cgroup_path(id)).map_err(|err| {
        AgentError::Conflict(format!(
            "cannot read the container's cgroup (is it running?): {err}"
        ))
    })?;
    Ok(Sample {
        at: Instant::now(),
        stats,
    })
}

/// The host's memory, the limit shown for a container without one.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The percentage of one CPU used between `before` and `after` (200.0 = two CPUs busy).
pub fn cpu_percent(before: &Sample, after: &Sample) -> f64 {
    let wall = after.at.duration_since(before.at).as_nanos() as f64;
    let used = after
        .stats
        .cpu_usage_ns
        .saturating_sub(before.stats.cpu_usage_ns) as f64;
    if wall <= 0.0 {
        0.0
    } else {
        used / wall * 100.0
    }
}

/// The API's record of `after`, its CPU use measured since `before`.
pub fn to_api(id: &ContainerId, name: &str, before: &Sample, after: &Sample) -> Stats {
    let stats = &after.stats;
    Stats {
        id: id.as_str().to_owned(),
        name: name.to_owned(),
        read: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        cpu_percent: cpu_percent(before, after),
        cpu_usage_ns: stats.cpu_usage_ns,
        memory_usage: stats.memory_usage,
        memory_limit: stats.memory_limit.unwrap_or_else(host_memory),
        pids: stats.pids,
        block_read_bytes: stats.block_read_bytes,
        block_write_bytes: stats.block_write_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cpu_busy_for_the_whole_gap_is_100_percent() {
        let start = Instant::now();
        let before = Sample {
            at: start,
            stats: ContainerStats::default(),
        };
        let after = Sample {
            at: start + Duration::from_millis(100),
            stats: ContainerStats {
                cpu_usage_ns: 100_000_000,
                ..ContainerStats::default()
            },
        };
        assert!((cpu_percent(&before, &after) - 100.0).abs() < 1e-9);
    }
}
