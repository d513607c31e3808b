//! What the spec builder needs to know about the host, gathered once by [`HostFacts::detect`]
//! so that building a spec stays a pure function.

use std::path::Path;

use libcgroups::common::{CgroupSetup, get_cgroup_setup};

/// Which cgroup hierarchy limits containers on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy or hybrid: the v1 controllers do the limiting (a v2 hierarchy without
    /// controllers may exist beside them).
    V1,
    /// Unified: the v2 hierarchy with its controllers.
    V2,
}

/// Facts about the host that shape a container's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub cgroup: CgroupVersion,
    /// CPUs online, the ceiling of `--cpus`.
    pub online_cpus: u32,
    /// This process's hard `RLIMIT_NOFILE`: without `CAP_SYS_RESOURCE` no container may get more.
    pub nofile_hard: u64,
    /// The host's hostname, which `--network host` containers keep, as docker does.
    pub hostname: String,
    /// Whether the kernel offers a proportional block I/O weight (`blkio.weight` or
    /// `blkio.bfq.weight` on v1: only with the CFQ or BFQ scheduler).
    pub blkio_weight: bool,
    /// Whether swap can be limited (v1 needs swap accounting: `memory.memsw.*`; kernels booted
    /// without `swapaccount=1` lack it). Without it `--memory` limits memory alone.
    pub swap_limit: bool,
}

/// Why the host's facts can not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot detect the cgroup setup under /sys/fs/cgroup: {0}")]
    Cgroup(String),
    #[error("cannot read this process's RLIMIT_NOFILE: {0}")]
    Rlimit(#[source] nix::Error),
}

/// The largest open-files limit a container gets when the host allows more (docker's default).
const NOFILE_CEILING: u64 = 1 << 20;

impl HostFacts {
    /// Reads the facts of this host and process.
    pub fn detect() -> Result<Self, HostError> {
        let cgroup = match get_cgroup_setup().map_err(|e| HostError::Cgroup(e.to_string()))? {
            CgroupSetup::Unified => CgroupVersion::V2,
            CgroupSetup::Legacy | CgroupSetup::Hybrid => CgroupVersion::V1,
        };
        let online_cpus = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let (_, nofile_hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_err(HostError::Rlimit)?;
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let blkio_weight = match cgroup {
            CgroupVersion::V1 => ["blkio.weight", "blkio.bfq.weight"]
                .iter()
                .any(|f| Path::new("/sys/fs/cgroup/blkio").join(f).exists()),
            CgroupVersion::V2 => true,
        };
        let swap_limit = match cgroup {
            CgroupVersion::V1 => {
                Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
            }
            CgroupVersion::V2 => true,
        };
        Ok(Self {
            cgroup,
            online_cpus,
            nofile_hard,
            hostname,
            blkio_weight,
            swap_limit,
        })
    }

    /// The open-files limit (soft and hard) a container gets: the hard limit of this process,
    /// capped at docker's default.
    pub fn container_nofile(&self) -> u64 {
        self.nofile_hard.min(NOFILE_CEILING)
    }

    /// Whether the device cgroup is enforced. On v2 it needs an eBPF program that berth does
    /// not load yet (libcgroups' `cgroupsv2_devices`, #3), so `CAP_MKNOD` is withheld there.
    pub fn device_cgroup_enforced(&self) -> bool {
        self.cgroup == CgroupVersion::V1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_nofile_stays_within_the_hard_limit() {
        let mut host = HostFacts {
            cgroup: CgroupVersion::V1,
            online_cpus: 2,
            nofile_hard: 20_000,
            hostname: "h".into(),
            blkio_weight: true,
            swap_limit: true,
        };
        assert_eq!(host.container_nofile(), 20_000);
        host.nofile_hard = u64::MAX;
        assert_eq!(host.container_nofile(), 1 << 20);
    }
}
