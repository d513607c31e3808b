//! berth's container runtime: turns an image's config and the user's `run` options into an OCI
//! runtime spec, runs it with youki's libcontainer, and reads its cgroup accounting back.
//!
//! The pieces, in the order `berth run` uses them:
//! - Flags are parsed at the edge into validated types ([`MemoryLimit`], [`Cpus`],
//!   [`Volume`], [`UserSpec`], …) collected in [`RunOptions`]; each parse error names the input
//!   and what was expected.
//! - [`build_spec`] is a pure function from the image's config, [`RunOptions`], the rootfs's
//!   users ([`UserDb`]) and [`HostFacts`] to an [`oci_spec::runtime::Spec`] with docker's
//!   isolation: pid, mount, uts, ipc, cgroup and (unless `--network host`) net namespaces,
//!   docker's capabilities, masked and read-only paths and an equivalent seccomp profile,
//!   no_new_privs, read-only `/proc` and `/sys`, a minimal `/dev`, and rlimits within the
//!   host's hard limits.
//! - [`Bundle::write`] checks the rootfs and volume sources, then writes `config.json`.
//! - A [`ContainerDriver`] runs the bundle: [`LibcontainerDriver`] for real (its caller owns
//!   the container's init process; see docs/adr/0010), [`FakeDriver`] for tests without root.
//!   [`run_to_exit`] reports the exit code and OOM kill and deletes the container, leaving no
//!   cgroup, mount, state directory or unreaped process, on every path.
//!   [`ContainerDriver::exec`] runs another process in a running container, with its
//!   seccomp filter (which libcontainer's own exec drops). With [`RunOptions::tty`] the
//!   container gets a pseudo-terminal whose master reaches the caller on a unix socket.
//! - [`ContainerStats`] reads CPU, memory, pids and block I/O accounting on cgroup v1 or v2.
//! - [`RestartTracker::on_exit`] decides, purely, whether and when a container restarts under
//!   its [`RestartPolicy`] (docker's policies, doubling backoff capped at a minute).
//! - [`supervisor`]: the per-container supervisor process (`berth supervise`, docs/adr/0013)
//!   that runs the driver, owns the container's output (docker json-file logs with rotation),
//!   records exits in `state.json`, applies the restart policy and answers a control socket,
//!   and outlives whoever spawned it.
//!
//! An exec with [`ExecOptions::tty`] gets a terminal the same way.
//!
//! Not here yet (issue #3): the v2 device cgroup (`CAP_MKNOD` is
//! withheld on v2 until then), and
//! `/etc/hosts`/`resolv.conf` (with networking, #5).

mod bundle;
mod byte_size;
mod cgroup_stats;
mod cpus;
mod defaults;
mod driver;
mod exec;
mod fake_driver;
mod host;
mod libcontainer_driver;
mod limits;
mod mounts;
mod options;
mod reap;
mod restart;
mod seccomp;
mod seccomp_profile;
mod spec;
pub mod supervisor;
mod user;

pub use bundle::{Bundle, BundleError};
pub use byte_size::{ByteSize, ByteSizeError};
pub use cgroup_stats::{CgroupReadError, ContainerStats, oom_kill_count};
pub use cpus::{CFS_PERIOD_US, Cpus, CpusError};
pub use defaults::CGROUP_PARENT;
pub use driver::{ContainerDriver, DriverError, ExitStatus, Stdio, run_to_exit};
pub use exec::ExecOptions;
pub use fake_driver::FakeDriver;
pub use host::{CgroupVersion, HostError, HostFacts};
pub use libcontainer_driver::{LibcontainerDriver, StateRootError};
pub use limits::{
    BlkioWeight, CpuShares, DeviceRate, LimitError, MIN_MEMORY, MemoryLimit, PidsLimit,
};
pub use mounts::{ContainerPath, MountError, TmpfsMount, Volume};
pub use options::{EnvVar, Hostname, NetworkMode, OptionError, RunOptions};
pub use restart::{
    BACKOFF_RESET_AFTER, ExitEvent, INITIAL_BACKOFF, MAX_BACKOFF, RestartDecision, RestartPolicy,
    RestartPolicyError, RestartTracker,
};
pub use seccomp::default_profile;
pub use spec::{SpecError, SpecInput, build_spec};
pub use user::{IdRef, ResolvedUser, UserDb, UserError, UserSpec};
