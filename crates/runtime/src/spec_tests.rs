use std::collections::HashSet;

use oci_spec::image::ConfigBuilder;
use oci_spec::runtime::{Capability, LinuxNamespaceType, PosixRlimitType};

use super::*;
use crate::host::CgroupVersion;
use crate::limits::{BlkioWeight, MemoryLimit};
use crate::options::EnvVar;

fn id() -> ContainerId {
    ContainerId::from_random_bytes([0x5a; 32])
}

fn host() -> HostFacts {
    HostFacts {
        cgroup: CgroupVersion::V1,
        online_cpus: 2,
        nofile_hard: 20_000,
        hostname: "node-1".into(),
        blkio_weight: true,
        swap_limit: true,
    }
}

fn busybox_image() -> ImageConfig {
    ConfigBuilder::default()
        .cmd(vec!["sh".to_owned()])
        .env(vec!["PATH=/bin".to_owned(), "LANG=C".to_owned()])
        .build()
        .unwrap()
}

fn build(image: Option<&ImageConfig>, options: &RunOptions) -> Result<Spec, SpecError> {
    build_with(image, options, &host(), &UserDb::default())
}

fn build_with(
    image: Option<&ImageConfig>,
    options: &RunOptions,
    host: &HostFacts,
    users: &UserDb,
) -> Result<Spec, SpecError> {
    let id = id();
    build_spec(&SpecInput {
        id: &id,
        rootfs: Path::new("/var/lib/berth/rootfs"),
        image,
        options,
        users,
        host,
    })
}

fn spec_of(options: &RunOptions) -> Spec {
    build(Some(&busybox_image()), options).unwrap()
}

fn process(spec: &Spec) -> &Process {
    spec.process().as_ref().unwrap()
}

fn resources(spec: &Spec) -> &LinuxResources {
    spec.linux().as_ref().unwrap().resources().as_ref().unwrap()
}

fn mount_of<'a>(spec: &'a Spec, destination: &str) -> Option<&'a Mount> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new(destination))
}

fn docker_capabilities() -> HashSet<Capability> {
    CAPABILITIES.iter().copied().collect()
}

#[test]
fn default_container_is_isolated_like_docker() {
    let spec = spec_of(&RunOptions::default());
    let linux = spec.linux().as_ref().unwrap();
    let namespaces: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    for ns in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ] {
        assert!(namespaces.contains(&ns), "{ns:?} namespace");
    }
    assert!(!namespaces.contains(&LinuxNamespaceType::User));
    assert_eq!(spec.hostname().as_deref(), Some(id().short()));
    let caps = process(&spec).capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref(), Some(&docker_capabilities()));
    assert_eq!(caps.effective().as_ref(), Some(&docker_capabilities()));
    assert_eq!(caps.inheritable().as_ref(), Some(&HashSet::new()));
    assert_eq!(process(&spec).no_new_privileges(), Some(true));
    assert!(linux.seccomp().is_some());
    let masked = linux.masked_paths().as_ref().unwrap();
    assert!(masked.contains(&"/proc/kcore".to_owned()));
    assert!(
        linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_owned())
    );
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new(&format!("/berth/{}", id())))
    );
    let devices = resources(&spec).devices().as_ref().unwrap();
    assert_eq!(
        devices.len(),
        1,
        "only deny-all; libcgroups adds the default allows"
    );
    assert!(!devices[0].allow());
}

#[test]
fn proc_and_sys_are_read_only_and_dev_is_minimal() {
    let spec = spec_of(&RunOptions::default());
    for path in ["/proc", "/sys", "/sys/fs/cgroup"] {
        let options = mount_of(&spec, path).unwrap().options().as_ref().unwrap();
        assert!(options.contains(&"ro".to_owned()), "{path} read-only");
    }
    for path in ["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"] {
        assert!(mount_of(&spec, path).is_some(), "{path} mounted");
    }
    assert!(spec.linux().as_ref().unwrap().devices().is_none());
}

#[test]
fn host_network_shares_the_hosts_network_namespace_and_hostname() {
    let spec = spec_of(&RunOptions {
        network: NetworkMode::Host,
        ..RunOptions::default()
    });
    let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(
        namespaces
            .iter()
            .all(|n| n.typ() != LinuxNamespaceType::Network)
    );
    assert!(
        namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Uts)
    );
    assert_eq!(spec.hostname().as_deref(), Some("node-1"));
}

#[test]
fn joined_network_namespace_is_the_pinned_path_and_hostname_stays_the_short_id() {
    let spec = spec_of(&RunOptions {
        network: NetworkMode::Join("/run/berth/netns/abc".into()),
        ..RunOptions::default()
    });
    let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let net: Vec<_> = namespaces
        .iter()
        .filter(|n| n.typ() == LinuxNamespaceType::Network)
        .collect();
    assert_eq!(net.len(), 1);
    assert_eq!(
        net[0].path().as_deref(),
        Some(Path::new("/run/berth/netns/abc"))
    );
    assert_eq!(spec.hostname().as_deref(), Some(id().short()));
    let none = spec_of(&RunOptions::default());
    let none = none.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let net = none
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .unwrap();
    assert!(net.path().is_none(), "none makes a fresh namespace");
}

#[test]
fn entrypoint_and_command_combine_like_docker() {
    let image = ConfigBuilder::default()
        .entrypoint(vec!["/entry".to_owned()])
        .cmd(vec!["default-arg".to_owned()])
        .build()
        .unwrap();
    let args = |options: RunOptions| {
        process(&build(Some(&image), &options).unwrap())
            .args()
            .clone()
            .unwrap()
    };
    assert_eq!(args(RunOptions::default()), ["/entry", "default-arg"]);
    let cmd = vec!["x".to_owned(), "y".to_owned()];
    assert_eq!(
        args(RunOptions {
            cmd: cmd.clone(),
            ..RunOptions::default()
        }),
        ["/entry", "x", "y"]
    );
    assert_eq!(
        args(RunOptions {
            entrypoint: Some(vec!["/other".to_owned()]),
            ..RunOptions::default()
        }),
        ["/other"],
        "--entrypoint drops the image's Cmd"
    );
    assert_eq!(
        args(RunOptions {
            entrypoint: Some(vec![]),
            cmd,
            ..RunOptions::default()
        }),
        ["x", "y"]
    );
}

#[test]
fn no_command_at_all_is_a_clear_error() {
    let err = build(None, &RunOptions::default()).unwrap_err();
    assert!(matches!(err, SpecError::NoCommand { .. }));
    assert!(err.to_string().contains("no command specified"), "{err}");
}

#[test]
fn user_env_overrides_image_env_in_place() {
    let spec = spec_of(&RunOptions {
        env: vec![
            "LANG=en".parse::<EnvVar>().unwrap(),
            "NEW=1".parse().unwrap(),
        ],
        hostname: Some("web".parse().unwrap()),
        ..RunOptions::default()
    });
    assert_eq!(
        process(&spec).env().clone().unwrap(),
        ["PATH=/bin", "LANG=en", "HOSTNAME=web", "NEW=1"]
    );
    assert_eq!(spec.hostname().as_deref(), Some("web"));
    let bare = build(
        Some(
            &ConfigBuilder::default()
                .cmd(vec!["x".into()])
                .build()
                .unwrap(),
        ),
        &RunOptions::default(),
    )
    .unwrap();
    assert!(process(&bare).env().clone().unwrap()[0].starts_with("PATH=/usr/local/sbin:"));
}

#[test]
fn image_user_is_resolved_and_user_flag_wins() {
    let users = UserDb::parse("app:x:1000:1000::/:/bin/sh\n", "app:x:1000:\n");
    let image = ConfigBuilder::default()
        .cmd(vec!["sh".to_owned()])
        .user("app")
        .build()
        .unwrap();
    let spec = build_with(Some(&image), &RunOptions::default(), &host(), &users).unwrap();
    let user = process(&spec).user();
    assert_eq!((user.uid(), user.gid()), (1000, 1000));
    let caps = process(&spec).capabilities().as_ref().unwrap();
    assert_eq!(
        caps.effective().as_ref(),
        Some(&HashSet::new()),
        "non-root holds no caps"
    );
    assert_eq!(caps.bounding().as_ref(), Some(&docker_capabilities()));

    let flag = RunOptions {
        user: Some("7:8".parse().unwrap()),
        ..RunOptions::default()
    };
    let spec = build_with(Some(&image), &flag, &host(), &users).unwrap();
    assert_eq!(
        (process(&spec).user().uid(), process(&spec).user().gid()),
        (7, 8)
    );

    let unknown = RunOptions {
        user: Some("nobody".parse().unwrap()),
        ..RunOptions::default()
    };
    let err = build_with(Some(&image), &unknown, &host(), &users).unwrap_err();
    assert!(
        err.to_string().contains("unable to find user nobody"),
        "{err}"
    );
}

#[test]
fn workdir_comes_from_the_flag_then_the_image_then_root() {
    assert_eq!(
        process(&spec_of(&RunOptions::default())).cwd(),
        Path::new("/")
    );
    let image = ConfigBuilder::default()
        .cmd(vec!["sh".to_owned()])
        .working_dir("/srv")
        .build()
        .unwrap();
    let spec = build(Some(&image), &RunOptions::default()).unwrap();
    assert_eq!(process(&spec).cwd(), Path::new("/srv"));
    let flag = RunOptions {
        workdir: Some("/tmp".parse().unwrap()),
        ..RunOptions::default()
    };
    assert_eq!(
        process(&build(Some(&image), &flag).unwrap()).cwd(),
        Path::new("/tmp")
    );
    let relative = ConfigBuilder::default()
        .cmd(vec!["sh".to_owned()])
        .working_dir("srv")
        .build()
        .unwrap();
    assert!(matches!(
        build(Some(&relative), &RunOptions::default()),
        Err(SpecError::ImageWorkdir { .. })
    ));
}

#[test]
fn limits_become_cgroup_resources() {
    let spec = spec_of(&RunOptions {
        memory: Some("32m".parse::<MemoryLimit>().unwrap()),
        cpus: Some("0.5".parse().unwrap()),
        cpu_shares: Some("512".parse().unwrap()),
        pids_limit: Some("64".parse().unwrap()),
        blkio_weight: Some("300".parse::<BlkioWeight>().unwrap()),
        device_read_bps: vec![DeviceRate::new("/dev/vda", 254, 0, "1mb".parse().unwrap())],
        ..RunOptions::default()
    });
    let r = resources(&spec);
    let memory = r.memory().as_ref().unwrap();
    assert_eq!(
        (memory.limit(), memory.swap()),
        (Some(32 << 20), Some(32 << 20))
    );
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(
        (cpu.quota(), cpu.period(), cpu.shares()),
        (Some(50_000), Some(100_000), Some(512))
    );
    assert_eq!(r.pids().as_ref().unwrap().limit(), 64);
    let block_io = r.block_io().as_ref().unwrap();
    assert_eq!(block_io.weight(), Some(300));
    let read = &block_io.throttle_read_bps_device().as_ref().unwrap()[0];
    assert_eq!((read.major(), read.minor(), read.rate()), (254, 0, 1 << 20));
    assert!(block_io.throttle_write_bps_device().is_none());
}

#[test]
fn no_limits_means_no_cgroup_limits() {
    let r = resources(&spec_of(&RunOptions::default())).clone();
    assert!(
        r.memory().is_none() && r.cpu().is_none() && r.pids().is_none() && r.block_io().is_none()
    );
}

#[test]
fn more_cpus_than_the_host_has_is_refused() {
    let err = build(
        Some(&busybox_image()),
        &RunOptions {
            cpus: Some("3".parse().unwrap()),
            ..RunOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("only 2 CPUs available"), "{err}");
}

#[test]
fn open_files_limit_stays_within_the_hosts_hard_limit() {
    let spec = spec_of(&RunOptions::default());
    let rlimits = process(&spec).rlimits().clone().unwrap();
    assert_eq!(rlimits.len(), 1);
    assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
    assert_eq!((rlimits[0].soft(), rlimits[0].hard()), (20_000, 20_000));
}

#[test]
fn mknod_is_withheld_where_the_device_cgroup_is_not_enforced() {
    let v2 = HostFacts {
        cgroup: CgroupVersion::V2,
        ..host()
    };
    let spec = build_with(
        Some(&busybox_image()),
        &RunOptions::default(),
        &v2,
        &UserDb::default(),
    )
    .unwrap();
    let bounding = process(&spec)
        .capabilities()
        .clone()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert!(!bounding.contains(&Capability::Mknod));
    assert_eq!(bounding.len(), CAPABILITIES.len() - 1);
}

#[test]
fn read_only_rootfs_volumes_and_tmpfs_are_mounted_parents_first() {
    let spec = spec_of(&RunOptions {
        read_only: true,
        volumes: vec![
            "/srv/a:/data/a:ro".parse().unwrap(),
            "/srv:/data".parse().unwrap(),
        ],
        tmpfs: vec!["/dev/shm:size=1m".parse().unwrap()],
        ..RunOptions::default()
    });
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let destinations: Vec<_> = spec
        .mounts()
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| m.destination().to_owned())
        .collect();
    let position = |p: &str| destinations.iter().position(|d| d == Path::new(p)).unwrap();
    assert!(position("/data") < position("/data/a"));
    assert_eq!(
        destinations
            .iter()
            .filter(|d| *d == Path::new("/dev/shm"))
            .count(),
        1
    );
    let shm = mount_of(&spec, "/dev/shm").unwrap();
    assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
    assert!(
        shm.options()
            .clone()
            .unwrap()
            .contains(&"size=1m".to_owned())
    );
    let ro = mount_of(&spec, "/data/a").unwrap();
    assert_eq!(ro.source().as_deref(), Some(Path::new("/srv/a")));
    assert!(ro.options().clone().unwrap().contains(&"ro".to_owned()));
}

#[test]
fn two_mounts_on_one_path_are_refused() {
    let err = build(
        Some(&busybox_image()),
        &RunOptions {
            volumes: vec!["/a:/data".parse().unwrap()],
            tmpfs: vec!["/data".parse().unwrap()],
            ..RunOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, SpecError::DuplicateMount { .. }), "{err}");
}

#[test]
fn blkio_weight_is_refused_where_the_kernel_has_no_weight_policy() {
    let no_weight = HostFacts {
        blkio_weight: false,
        ..host()
    };
    let options = RunOptions {
        blkio_weight: Some("300".parse::<BlkioWeight>().unwrap()),
        ..RunOptions::default()
    };
    let err = build_with(
        Some(&busybox_image()),
        &options,
        &no_weight,
        &UserDb::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--blkio-weight"), "{err}");
}

#[test]
fn memory_limit_leaves_swap_alone_where_swap_is_not_accounted() {
    let no_swap_accounting = HostFacts {
        swap_limit: false,
        ..host()
    };
    let options = RunOptions {
        memory: Some("32m".parse::<MemoryLimit>().unwrap()),
        ..RunOptions::default()
    };
    let spec = build_with(
        Some(&busybox_image()),
        &options,
        &no_swap_accounting,
        &UserDb::default(),
    )
    .unwrap();
    let memory = resources(&spec).memory().unwrap();
    assert_eq!((memory.limit(), memory.swap()), (Some(32 << 20), None));
}

#[test]
fn tty_asks_for_a_terminal_and_sets_term_unless_given() {
    let spec = spec_of(&RunOptions {
        tty: true,
        ..RunOptions::default()
    });
    assert_eq!(process(&spec).terminal(), Some(true));
    assert!(
        process(&spec)
            .env()
            .clone()
            .unwrap()
            .contains(&"TERM=xterm".to_owned())
    );
    let own_term = spec_of(&RunOptions {
        tty: true,
        env: vec!["TERM=vt100".parse::<EnvVar>().unwrap()],
        ..RunOptions::default()
    });
    let env = process(&own_term).env().clone().unwrap();
    assert!(env.contains(&"TERM=vt100".to_owned()) && !env.contains(&"TERM=xterm".to_owned()));
    assert_eq!(
        process(&spec_of(&RunOptions::default())).terminal(),
        Some(false)
    );
}
