//! The pure heart of the runtime: image config + run options + host facts → OCI runtime spec.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use oci_spec::OciSpecError;
use oci_spec::image::Config as ImageConfig;
use oci_spec::runtime::{
    Capability, LinuxBlockIoBuilder, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    LinuxThrottleDevice, LinuxThrottleDeviceBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::cpus::CFS_PERIOD_US;
use crate::defaults::{
    CAPABILITIES, CGROUP_PARENT, DEFAULT_PATH, KERNEL_MOUNTS, MASKED_PATHS, READONLY_PATHS,
};
use crate::host::HostFacts;
use crate::limits::DeviceRate;
use crate::mounts::{ContainerPath, MountError};
use crate::options::{NetworkMode, RunOptions};
use crate::seccomp::default_profile;
use crate::user::{ResolvedUser, UserDb, UserError, UserSpec};

/// The OCI runtime spec version berth writes.
const OCI_VERSION: &str = "1.0.2";

/// Why no spec can be built from an image config and run options.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("container {id}: no command specified (the image has no Entrypoint or Cmd)")]
    NoCommand { id: ContainerId },
    #[error("container {id}: {source}")]
    User { id: ContainerId, source: UserError },
    #[error("container {id}: the image's working directory is invalid: {source}")]
    ImageWorkdir { id: ContainerId, source: MountError },
    #[error(
        "container {id}: range of CPUs is from 0.01 to {online}, as there are only {online} CPUs available (asked for {requested})"
    )]
    TooManyCpus {
        id: ContainerId,
        requested: String,
        online: u32,
    },
    #[error(
        "container {id}: --blkio-weight is not supported here: the kernel offers no block I/O weight (needs the BFQ or CFQ I/O scheduler on cgroup v1)"
    )]
    BlkioWeightUnsupported { id: ContainerId },
    #[error("container {id}: duplicate mount point {path}")]
    DuplicateMount { id: ContainerId, path: PathBuf },
    #[error("container {id}: cannot assemble the runtime spec: {source}")]
    Oci {
        id: ContainerId,
        source: OciSpecError,
    },
}

/// What a container is made of; see [`build_spec`].
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    pub id: &'a ContainerId,
    /// The prepared root filesystem (the image store's overlay).
    pub rootfs: &'a Path,
    /// The image's config (`ImageConfiguration::config()`); `None` for an image without one.
    pub image: Option<&'a ImageConfig>,
    pub options: &'a RunOptions,
    /// The rootfs's users and groups, to resolve user and group names.
    pub users: &'a UserDb,
    pub host: &'a HostFacts,
}

/// Builds the OCI runtime spec of a container: docker's defaults for isolation (namespaces,
/// capabilities, seccomp, masked paths, no_new_privs), the image's process settings, and the
/// user's options over them.
///
/// This is a pure function: everything it needs from the host is in `input.host` and
/// `input.users`.
pub fn build_spec(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let id = input.id;
    let oci = |source| SpecError::Oci {
        id: id.clone(),
        source,
    };
    if let Some(cpus) = input.options.cpus
        && cpus.exceeds(input.host.online_cpus)
    {
        return Err(SpecError::TooManyCpus {
            id: id.clone(),
            requested: cpus.to_string(),
            online: input.host.online_cpus,
        });
    }
    if input.options.blkio_weight.is_some() && !input.host.blkio_weight {
        return Err(SpecError::BlkioWeightUnsupported { id: id.clone() });
    }
    let user = resolve_user(input)?;
    let hostname = hostname(input);
    let process = process(input, &user, &hostname)?;
    let capabilities: HashSet<Capability> = container_capabilities(input.host);
    let seccomp = default_profile(&capabilities, std::env::consts::ARCH).map_err(oci)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces(&input.options.network).map_err(oci)?)
        .cgroups_path(PathBuf::from(format!("{CGROUP_PARENT}/{id}")))
        .resources(resources(input.options, input.host).map_err(oci)?)
        .masked_paths(to_strings(MASKED_PATHS))
        .readonly_paths(to_strings(READONLY_PATHS))
        .seccomp(seccomp)
        .build()
        .map_err(oci)?;
    let root = RootBuilder::default()
        .path(input.rootfs)
        .readonly(input.options.read_only)
        .build()
        .map_err(oci)?;
    SpecBuilder::default()
        .version(OCI_VERSION)
        .root(root)
        .hostname(hostname)
        .process(process)
        .mounts(mounts(input)?)
        .linux(linux)
        .build()
        .map_err(oci)
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn resolve_user(input: &SpecInput<'_>) -> Result<ResolvedUser, SpecError> {
    let user_error = |source| SpecError::User {
        id: input.id.clone(),
        source,
    };
    let image_user = input
        .image
        .and_then(|c| c.user().as_deref())
        .filter(|u| !u.is_empty())
        .map(str::parse::<UserSpec>)
        .transpose()
        .map_err(user_error)?;
    let spec = input.options.user.as_ref().or(image_user.as_ref());
    input.users.resolve(spec).map_err(user_error)
}

fn hostname(input: &SpecInput<'_>) -> String {
    match (&input.options.hostname, &input.options.network) {
        (Some(name), _) => name.as_str().to_owned(),
        (None, NetworkMode::Host) if !input.host.hostname.is_empty() => input.host.hostname.clone(),
        (None, _) => input.id.short().to_owned(),
    }
}

/// The command: docker's rules for combining `--entrypoint`, the command line and the image.
fn args(input: &SpecInput<'_>) -> Vec<String> {
    let image = input.image;
    let options = input.options;
    let entrypoint = match &options.entrypoint {
        Some(entrypoint) => entrypoint.clone(),
        None => image
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default(),
    };
    let cmd = if !options.cmd.is_empty() {
        options.cmd.clone()
    } else if options.entrypoint.is_some() {
        Vec::new()
    } else {
        image.and_then(|c| c.cmd().clone()).unwrap_or_default()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// The environment: a default `PATH` (and `TERM=xterm` with a terminal), the image's,
/// `HOSTNAME`, then `-e`; a later value of a name replaces an earlier one in place.
fn env(input: &SpecInput<'_>, hostname: &str) -> Vec<String> {
    let image_env = input
        .image
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match vars.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value.to_owned(),
        None => vars.push((name.to_owned(), value.to_owned())),
    };
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        let (name, value) = DEFAULT_PATH.split_once('=').unwrap_or(("PATH", ""));
        set(name, value);
    }
    if input.options.tty {
        set("TERM", "xterm");
    }
    for entry in &image_env {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        if !name.is_empty() {
            set(name, value);
        }
    }
    set("HOSTNAME", hostname);
    for var in &input.options.env {
        set(var.name(), var.value());
    }
    vars.into_iter().map(|(n, v)| format!("{n}={v}")).collect()
}

fn workdir(input: &SpecInput<'_>) -> Result<PathBuf, SpecError> {
    if let Some(dir) = &input.options.workdir {
        return Ok(dir.as_path().to_owned());
    }
    match input.image.and_then(|c| c.working_dir().as_deref()) {
        Some(dir) if !dir.is_empty() => dir
            .parse::<ContainerPath>()
            .map(|p| p.as_path().to_owned())
            .map_err(|source| SpecError::ImageWorkdir {
                id: input.id.clone(),
                source,
            }),
        _ => Ok(PathBuf::from("/")),
    }
}

/// Docker's capability set, less `CAP_MKNOD` where the device cgroup is not enforced.
fn container_capabilities(host: &HostFacts) -> HashSet<Capability> {
    CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != Capability::Mknod || host.device_cgroup_enforced())
        .collect()
}

fn process(
    input: &SpecInput<'_>,
    user: &ResolvedUser,
    hostname: &str,
) -> Result<Process, SpecError> {
    let id = input.id;
    let oci = |source| SpecError::Oci {
        id: id.clone(),
        source,
    };
    let args = args(input);
    if args.is_empty() {
        return Err(SpecError::NoCommand { id: id.clone() });
    }
    let bounding = container_capabilities(input.host);
    // A non-root process starts with no effective or permitted capabilities, as in docker
    // since 23.0; it can not regain them, because no_new_privs disables setuid binaries.
    let held = if user.uid == 0 {
        bounding.clone()
    } else {
        HashSet::new()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(bounding)
        .effective(held.clone())
        .permitted(held)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(oci)?;
    let mut oci_user = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        oci_user = oci_user.additional_gids(user.additional_gids.clone());
    }
    let nofile = input.host.container_nofile();
    let rlimit = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile)
        .hard(nofile)
        .build()
        .map_err(oci)?;
    ProcessBuilder::default()
        .terminal(input.options.tty)
        .user(oci_user.build().map_err(oci)?)
        .args(args)
        .env(env(input, hostname))
        .cwd(workdir(input)?)
        .capabilities(capabilities)
        .rlimits(vec![rlimit])
        .no_new_privileges(true)
        .build()
        .map_err(oci)
}

fn namespaces(network: &NetworkMode) -> Result<Vec<LinuxNamespace>, OciSpecError> {
    let types = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Cgroup,
    ];
    let mut all = types
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;
    match network {
        NetworkMode::Host => {}
        NetworkMode::None => all.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        ),
        NetworkMode::Join(path) => all.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()?,
        ),
    }
    Ok(all)
}

fn throttle(rates: &[DeviceRate]) -> Result<Vec<LinuxThrottleDevice>, OciSpecError> {
    rates
        .iter()
        .map(|r| {
            LinuxThrottleDeviceBuilder::default()
                .major(r.major())
                .minor(r.minor())
                .rate(r.rate().bytes())
                .build()
        })
        .collect()
}

fn resources(options: &RunOptions, host: &HostFacts) -> Result<LinuxResources, OciSpecError> {
    let deny_all_devices = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?;
    let mut resources = LinuxResourcesBuilder::default().devices(vec![deny_all_devices]);
    if let Some(memory) = options.memory {
        let bytes = i64::try_from(memory.bytes()).unwrap_or(i64::MAX);
        let mut limit = LinuxMemoryBuilder::default().limit(bytes);
        if host.swap_limit {
            // swap equal to the limit: memory+swap may not exceed it, so no swap at all.
            limit = limit.swap(bytes);
        }
        resources = resources.memory(limit.build()?);
    }
    if options.cpus.is_some() || options.cpu_shares.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(cpus) = options.cpus {
            let quota = i64::try_from(cpus.quota_us()).unwrap_or(i64::MAX);
            cpu = cpu.quota(quota).period(CFS_PERIOD_US);
        }
        if let Some(shares) = options.cpu_shares {
            cpu = cpu.shares(shares.get());
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(pids) = options.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids.get()).build()?);
    }
    let throttled = !options.device_read_bps.is_empty() || !options.device_write_bps.is_empty();
    if options.blkio_weight.is_some() || throttled {
        let mut block_io = LinuxBlockIoBuilder::default();
        if let Some(weight) = options.blkio_weight {
            block_io = block_io.weight(weight.get());
        }
        if !options.device_read_bps.is_empty() {
            block_io = block_io.throttle_read_bps_device(throttle(&options.device_read_bps)?);
        }
        if !options.device_write_bps.is_empty() {
            block_io = block_io.throttle_write_bps_device(throttle(&options.device_write_bps)?);
        }
        resources = resources.block_io(block_io.build()?);
    }
    resources.build()
}

/// The kernel filesystems, then the user's tmpfs and volumes, parents before children. A user
/// mount on a kernel mount's destination (e.g. `--tmpfs /dev/shm`) replaces it.
fn mounts(input: &SpecInput<'_>) -> Result<Vec<Mount>, SpecError> {
    let id = input.id;
    let oci = |source| SpecError::Oci {
        id: id.clone(),
        source,
    };
    let mut user: Vec<(PathBuf, Mount)> = Vec::new();
    for tmpfs in &input.options.tmpfs {
        let destination = tmpfs.container().as_path().to_owned();
        let mount = MountBuilder::default()
            .destination(&destination)
            .typ("tmpfs")
            .source("tmpfs")
            .options(tmpfs.options().to_vec())
            .build()
            .map_err(oci)?;
        user.push((destination, mount));
    }
    for volume in &input.options.volumes {
        let destination = volume.container().as_path().to_owned();
        let access = if volume.read_only() { "ro" } else { "rw" };
        let mount = MountBuilder::default()
            .destination(&destination)
            .typ("bind")
            .source(volume.host())
            .options(to_strings(&["rbind", "rprivate", access]))
            .build()
            .map_err(oci)?;
        user.push((destination, mount));
    }
    let mut seen = HashSet::new();
    for (destination, _) in &user {
        if !seen.insert(destination.clone()) {
            return Err(SpecError::DuplicateMount {
                id: id.clone(),
                path: destination.clone(),
            });
        }
    }
    user.sort_by_key(|(destination, _)| destination.components().count());

    let mut all = Vec::new();
    for kernel in KERNEL_MOUNTS {
        if seen.contains(Path::new(kernel.destination)) {
            continue;
        }
        all.push(
            MountBuilder::default()
                .destination(kernel.destination)
                .typ(kernel.typ)
                .source(kernel.source)
                .options(to_strings(kernel.options))
                .build()
                .map_err(oci)?,
        );
    }
    all.extend(user.into_iter().map(|(_, mount)| mount));
    Ok(all)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
