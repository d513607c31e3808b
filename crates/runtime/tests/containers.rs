//! Real containers, as root: each test builds a fresh busybox rootfs, runs a container with a
//! unique id through libcontainer, and checks a guarantee berth gives its users.

#[path = "containers/driver.rs"]
mod driver;
#[path = "containers/limits.rs"]
mod limits;
mod sandbox;
#[path = "containers/supervisor.rs"]
mod supervisor;

use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

use berth_runtime::{
    ContainerDriver, DriverError, ExitStatus, HostFacts, LimitError, MemoryLimit, RunOptions,
    Stdio, run_to_exit,
};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
use oci_spec::image::ConfigBuilder;
use sandbox::{Sandbox, options};

#[test]
fn exit_code_of_the_command_is_returned() {
    let sandbox = Sandbox::new();
    let (exit, _) = sandbox.run(options(), &["sh", "-c", "exit 3"]);
    assert_eq!(
        exit,
        ExitStatus {
            code: 3,
            oom_killed: false
        }
    );
}

#[test]
fn container_pid_1_is_its_own_process() {
    let sandbox = Sandbox::new();
    let (exit, out) = sandbox.run(
        options(),
        &["sh", "-c", "echo pid=$$; cat /proc/1/comm; echo"],
    );
    assert_eq!(exit.code, 0, "{out}");
    assert_eq!(out, "pid=1\nsh\n\n");
}

#[test]
fn container_has_its_own_hostname() {
    let sandbox = Sandbox::new();
    let named = RunOptions {
        hostname: Some("berth-test".parse().expect("hostname")),
        ..options()
    };
    let (_, out) = sandbox.run(named, &["hostname"]);
    assert_eq!(out, "berth-test\n");
    let host = nix::unistd::gethostname().expect("host hostname");
    assert_ne!(host.to_string_lossy(), "berth-test");
}

#[test]
fn host_processes_are_not_visible() {
    let sandbox = Sandbox::new();
    let (_, out) = sandbox.run(options(), &["sh", "-c", "ls -d /proc/[0-9]*"]);
    let pids: Vec<&str> = out.lines().collect();
    assert!(pids.contains(&"/proc/1"), "{out}");
    assert!(pids.len() <= 3, "only the container's processes: {out}");
}

#[test]
fn proc_kcore_and_other_host_leaks_are_masked_and_proc_is_read_only() {
    let sandbox = Sandbox::new();
    // /proc/kcore exists only on kernels built with it; where it does, it must read empty.
    let leaks = [
        "/proc/kcore",
        "/proc/interrupts",
        "/proc/keys",
        "/proc/timer_list",
    ];
    let script = format!(
        "for f in {}; do [ -e $f ] && echo \"$f $(wc -c < $f)\"; done; \
         echo 1 > /proc/sys/kernel/ns_last_pid && echo wrote-proc; true",
        leaks.join(" ")
    );
    let (_, out) = sandbox.run(options(), &["sh", "-c", &script]);
    let expected: String = leaks
        .iter()
        .filter(|f| Path::new(f).exists())
        .map(|f| format!("{f} 0\n"))
        .collect();
    assert!(out.starts_with(&expected), "masked files read empty: {out}");
    assert!(!out.contains("wrote-proc"), "{out}");
    let interrupts = std::fs::read_to_string("/proc/interrupts").expect("host interrupts");
    assert!(
        !interrupts.is_empty(),
        "the host's file is not empty, so masking is what hides it"
    );
}

#[test]
fn docker_default_capabilities_no_new_privs_and_seccomp_apply() {
    let sandbox = Sandbox::new();
    let (_, out) = sandbox.run(
        options(),
        &[
            "grep",
            "-E",
            "^(CapEff|CapBnd|NoNewPrivs|Seccomp):",
            "/proc/self/status",
        ],
    );
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    // Docker's set; without CAP_MKNOD (bit 27) where the device cgroup is not enforced.
    let docker_caps = if HostFacts::detect().expect("host").device_cgroup_enforced() {
        "00000000a80425fb"
    } else {
        "00000000a00425fb"
    };
    assert_eq!(field("CapEff:"), docker_caps, "{out}");
    assert_eq!(field("CapBnd:"), docker_caps, "{out}");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
}

#[test]
fn user_flag_runs_the_command_as_that_user() {
    let sandbox = Sandbox::new();
    let nobody = RunOptions {
        user: Some("nobody".parse().expect("user")),
        ..options()
    };
    let (_, out) = sandbox.run(
        nobody,
        &["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"],
    );
    assert_eq!(out, "65534\n65534\nCapEff:\t0000000000000000\n");
}

#[test]
fn network_none_has_only_loopback() {
    let sandbox = Sandbox::new();
    let (_, out) = sandbox.run(options(), &["ls", "/sys/class/net"]);
    assert_eq!(out, "lo\n");
}

#[test]
fn read_only_rootfs_refuses_writes_except_to_tmpfs() {
    let sandbox = Sandbox::new();
    let read_only = RunOptions {
        read_only: true,
        tmpfs: vec!["/tmp".parse().expect("tmpfs")],
        ..options()
    };
    let script = "touch /root/x || echo refused; touch /tmp/x && echo tmpfs-ok";
    let (_, out) = sandbox.run(read_only, &["sh", "-c", script]);
    assert!(out.contains("refused") && out.contains("tmpfs-ok"), "{out}");
    assert!(!sandbox.rootfs().join("root/x").exists());
}

#[test]
fn bind_volumes_share_host_files_and_ro_volumes_refuse_writes() {
    let sandbox = Sandbox::new();
    let shared = sandbox.dir.path().join("shared");
    let readonly = sandbox.dir.path().join("readonly");
    std::fs::create_dir_all(&shared).expect("shared dir");
    std::fs::create_dir_all(&readonly).expect("readonly dir");
    std::fs::write(shared.join("in"), "from-host\n").expect("host file");
    let with_volumes = RunOptions {
        volumes: vec![
            format!("{}:/data", shared.display())
                .parse()
                .expect("volume"),
            format!("{}:/ro:ro", readonly.display())
                .parse()
                .expect("volume"),
        ],
        ..options()
    };
    let script = "cat /data/in; echo from-container > /data/out; touch /ro/x || echo refused";
    let (_, out) = sandbox.run(with_volumes, &["sh", "-c", script]);
    assert!(
        out.starts_with("from-host\n") && out.contains("refused"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("out")).expect("written by the container"),
        "from-container\n"
    );
    assert!(!readonly.join("x").exists());
    sandbox.assert_nothing_left();
}

#[test]
fn deleted_container_leaves_no_cgroup_mount_or_state() {
    let sandbox = Sandbox::new();
    let limited = RunOptions {
        memory: Some("64m".parse().expect("memory")),
        pids_limit: Some("32".parse().expect("pids")),
        ..options()
    };
    let (exit, _) = sandbox.run(limited, &["true"]);
    assert_eq!(exit.code, 0);
    sandbox.assert_nothing_left();
}

#[test]
fn invalid_memory_size_is_a_clear_error() {
    let err = "32x".parse::<MemoryLimit>().expect_err("32x is not a size");
    assert!(matches!(err, LimitError::MemorySize(_)));
    assert_eq!(
        err.to_string(),
        "invalid memory limit: invalid size \"32x\": expected a number with an optional unit b, k, m, g, t or p (e.g. 32m)"
    );
}

#[test]
fn missing_volume_host_path_is_a_clear_error_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    let missing = sandbox.dir.path().join("no-such-dir");
    let with_volume = RunOptions {
        volumes: vec![
            format!("{}:/data", missing.display())
                .parse()
                .expect("volume"),
        ],
        ..options()
    };
    let err = sandbox
        .bundle(with_volume, &["true"])
        .expect_err("missing source");
    assert!(
        err.to_string().contains(&format!(
            "volume source {} does not exist",
            missing.display()
        )),
        "{err}"
    );
    assert!(!sandbox.bundle_dir().join("config.json").exists());
    sandbox.assert_nothing_left();
}

#[test]
fn runc_runs_the_same_bundle_with_the_same_isolation() {
    let sandbox = Sandbox::new();
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
                  hostname; ls /sys/class/net; ulimit -n; echo pid=$$; \
                  wc -c < /proc/timer_list; unshare -U true 2>/dev/null || echo no-userns";
    let (exit, berth) = sandbox.run(options(), &["sh", "-c", script]);
    assert_eq!(exit.code, 0, "{berth}");
    let runc = Command::new("runc")
        .arg("--root")
        .arg(sandbox.dir.path().join("runc-state"))
        .args(["run", "--bundle"])
        .arg(sandbox.bundle_dir())
        .arg(sandbox.id.as_str())
        .output()
        .expect("run runc");
    let runc_out = String::from_utf8_lossy(&runc.stdout);
    assert!(
        runc.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&runc.stderr)
    );
    assert_eq!(berth, runc_out);
    assert!(
        berth.contains("no-userns"),
        "seccomp refuses unshare: {berth}"
    );
    sandbox.assert_nothing_left();
}

#[test]
fn image_config_sets_command_env_workdir_and_user() {
    let sandbox = Sandbox::new();
    let image = ConfigBuilder::default()
        .entrypoint(vec!["sh".to_owned(), "-c".to_owned()])
        .cmd(vec![
            "echo \"$GREETING $(id -u):$(id -g) $(pwd)\"".to_owned(),
        ])
        .env(vec!["GREETING=hello".to_owned()])
        .working_dir("/tmp")
        .user("nobody")
        .build()
        .expect("image config");
    let bundle = sandbox
        .bundle_with_image(Some(&image), options())
        .expect("bundle");
    let exit =
        run_to_exit(&sandbox.driver, &sandbox.id, bundle.dir(), sandbox.stdio()).expect("run");
    assert_eq!(exit.code, 0);
    assert_eq!(sandbox.output(), "hello 65534:65534 /tmp\n");
}

#[test]
fn host_network_shares_the_hosts_interfaces() {
    let sandbox = Sandbox::new();
    let host = RunOptions {
        network: berth_runtime::NetworkMode::Host,
        ..options()
    };
    let (_, out) = sandbox.run(host, &["ls", "/sys/class/net"]);
    let mut host_interfaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("host interfaces")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host_interfaces.sort();
    let mut seen: Vec<String> = out.lines().map(str::to_owned).collect();
    seen.sort();
    assert_eq!(seen, host_interfaces);
}

#[test]
fn missing_command_is_a_clear_error_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    let bundle = sandbox
        .bundle(options(), &["/no/such/command"])
        .expect("bundle");
    let err = run_to_exit(&sandbox.driver, &sandbox.id, bundle.dir(), sandbox.stdio())
        .expect_err("the command does not exist");
    assert!(matches!(err, DriverError::Create { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("executable '/no/such/command' not found"),
        "{err}"
    );
    sandbox.assert_no_zombie_children();
    sandbox.assert_nothing_left();
}

#[test]
fn stdio_is_wired_to_the_given_files() {
    let sandbox = Sandbox::new();
    let input = sandbox.dir.path().join("input");
    std::fs::write(&input, "line one\nline two\n").expect("input");
    let bundle = sandbox
        .bundle(options(), &["sh", "-c", "wc -l; echo to-stderr >&2"])
        .expect("bundle");
    let stdout = sandbox.dir.path().join("stdout");
    let stderr = sandbox.dir.path().join("stderr");
    let stdio = Stdio {
        stdin: Some(File::open(&input).expect("open input").into()),
        stdout: Some(File::create(&stdout).expect("stdout").into()),
        stderr: Some(File::create(&stderr).expect("stderr").into()),
        console_socket: None,
    };
    let exit = run_to_exit(&sandbox.driver, &sandbox.id, bundle.dir(), stdio).expect("run");
    assert_eq!(exit.code, 0);
    assert_eq!(std::fs::read_to_string(stdout).expect("stdout"), "2\n");
    assert_eq!(
        std::fs::read_to_string(stderr).expect("stderr"),
        "to-stderr\n"
    );
}

/// Receives the one fd sent with `SCM_RIGHTS` on `stream`.
fn receive_fd(stream: &UnixStream) -> OwnedFd {
    let mut name = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for cmsg in message.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed `fd` in this process for this message; nothing
            // else refers to it, so the OwnedFd is its only owner.
            return unsafe { OwnedFd::from_raw_fd(fd) };
        }
    }
    panic!("no fd came with the console socket message");
}

#[test]
fn tty_gives_the_container_a_terminal_whose_master_reaches_the_caller() {
    let sandbox = Sandbox::new();
    let socket = sandbox.dir.path().join("console.sock");
    let listener = UnixListener::bind(&socket).expect("console socket");
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        receive_fd(&stream)
    });
    let with_tty = RunOptions {
        tty: true,
        ..options()
    };
    let bundle = sandbox
        .bundle(with_tty, &["sh", "-c", "tty; echo TERM=$TERM"])
        .expect("bundle");
    let stdio = Stdio {
        console_socket: Some(socket),
        ..Stdio::default()
    };
    sandbox
        .driver
        .create(&sandbox.id, bundle.dir(), stdio)
        .expect("create");
    let mut master = File::from(receiver.join().expect("pty master"));
    sandbox.driver.start(&sandbox.id).expect("start");
    let mut output = Vec::new();
    let mut buffer = [0u8; 4096];
    // The master reads EIO once the container's side of the terminal is closed.
    while let Ok(n @ 1..) = master.read(&mut buffer) {
        output.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(sandbox.driver.wait(&sandbox.id).expect("wait").code, 0);
    let output = String::from_utf8_lossy(&output);
    assert_eq!(output, "/dev/pts/0\r\nTERM=xterm\r\n");
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}

/// How many processes `containers_run_concurrently_in_separate_processes` starts at once.
const CONCURRENT_RUNS: usize = 10;

/// One of the processes of `containers_run_concurrently_in_separate_processes`, not a test of
/// its own: each runs a container to its end in its own process, as each supervisor will.
#[test]
#[ignore = "run by containers_run_concurrently_in_separate_processes"]
fn concurrent_run_helper() {
    let sandbox = Sandbox::new();
    let limited = RunOptions {
        memory: Some("32m".parse().expect("memory")),
        pids_limit: Some("16".parse().expect("pids")),
        ..options()
    };
    let (exit, out) = sandbox.run(limited, &["sh", "-c", "echo $HOSTNAME"]);
    assert_eq!(exit.code, 0, "{out}");
    assert_eq!(out.trim(), sandbox.id.short());
    sandbox.assert_nothing_left();
}

#[test]
fn containers_run_concurrently_in_separate_processes() {
    let test_binary = std::env::current_exe().expect("test binary");
    let helpers: Vec<_> = (0..CONCURRENT_RUNS)
        .map(|_| {
            Command::new(&test_binary)
                .args(["--exact", "concurrent_run_helper", "--ignored"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start helper")
        })
        .collect();
    for helper in helpers {
        let done = helper.wait_with_output().expect("helper output");
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
}
