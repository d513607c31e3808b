//! berth's container runtime: turns an image's config and the user's `run` options into an OCI
//! runtime spec, runs it with youki's libcontainer, and reads its cgroup accounting back.
//!
//! - [`build_spec`] is a pure function from image config, [`RunOptions`] and [`HostFacts`] to
//!   an [`oci_spec::runtime::Spec`] with docker's isolation defaults.
//!
//! Not here yet (issue #3): the per-container supervisor, restart policies, exec, tty.

mod bundle;
mod byte_size;
mod cgroup_stats;
mod cpus;
mod defaults;
mod driver;
mod fake_driver;
mod host;
mod libcontainer_driver;
mod limits;
mod mounts;
mod options;
mod seccomp;
mod seccomp_profile;
mod spec;
mod user;

pub use bundle::{Bundle, BundleError};
pub use byte_size::{ByteSize, ByteSizeError};
pub use cgroup_stats::{CgroupReadError, ContainerStats, oom_kill_count};
pub use cpus::{CFS_PERIOD_US, Cpus, CpusError};
pub use defaults::CGROUP_PARENT;
pub use driver::{ContainerDriver, DriverError, ExitStatus, Stdio, run_to_exit};
pub use fake_driver::FakeDriver;
pub use host::{CgroupVersion, HostError, HostFacts};
pub use libcontainer_driver::{LibcontainerDriver, StateRootError};
pub use limits::{
    BlkioWeight, CpuShares, DeviceRate, LimitError, MIN_MEMORY, MemoryLimit, PidsLimit,
};
pub use mounts::{ContainerPath, MountError, TmpfsMount, Volume};
pub use options::{EnvVar, Hostname, NetworkMode, OptionError, RunOptions};
pub use seccomp::default_profile;
pub use spec::{SpecError, SpecInput, build_spec};
pub use user::{IdRef, ResolvedUser, UserDb, UserError, UserSpec};
