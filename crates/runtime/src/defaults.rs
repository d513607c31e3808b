//! The fixed parts of every berth container, chosen to match docker's defaults: capabilities,
//! masked and read-only paths, and the kernel filesystems mounted in the container.

use oci_spec::runtime::Capability;

/// Docker's default capability set.
pub(crate) const CAPABILITIES: &[Capability] = &[
    Capability::AuditWrite,
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Mknod,
    Capability::NetBindService,
    Capability::NetRaw,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// Paths hidden from the container (`/dev/null` or an empty read-only tmpfs over them), as in
/// docker: they leak host memory, keys, timers and firmware.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only, as in docker.
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default `PATH` when the image sets none, as docker sets it.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The cgroup under which every container's cgroup lives (`/berth/<id>` in each hierarchy).
pub const CGROUP_PARENT: &str = "/berth";

/// One kernel filesystem mounted in every container.
pub(crate) struct KernelMount {
    pub destination: &'static str,
    pub typ: &'static str,
    pub source: &'static str,
    pub options: &'static [&'static str],
}

/// The kernel filesystems of every container: a read-only `/proc` and `/sys`, a minimal `/dev`
/// (libcontainer creates null, zero, full, random, urandom and tty in it), pts, shm and mqueue.
pub(crate) const KERNEL_MOUNTS: &[KernelMount] = &[
    KernelMount {
        destination: "/proc",
        typ: "proc",
        source: "proc",
        options: &["nosuid", "noexec", "nodev", "ro"],
    },
    KernelMount {
        destination: "/dev",
        typ: "tmpfs",
        source: "tmpfs",
        options: &["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    KernelMount {
        destination: "/dev/pts",
        typ: "devpts",
        source: "devpts",
        options: &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    },
    KernelMount {
        destination: "/dev/shm",
        typ: "tmpfs",
        source: "shm",
        options: &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    KernelMount {
        destination: "/dev/mqueue",
        typ: "mqueue",
        source: "mqueue",
        options: &["nosuid", "noexec", "nodev"],
    },
    KernelMount {
        destination: "/sys",
        typ: "sysfs",
        source: "sysfs",
        options: &["nosuid", "noexec", "nodev", "ro"],
    },
    KernelMount {
        destination: "/sys/fs/cgroup",
        typ: "cgroup",
        source: "cgroup",
        options: &["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
];
