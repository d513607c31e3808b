//! A running `berth daemon` on a temp root whose image store holds busybox (every applet
//! linked), for the container scenarios. Its socket is `<root>/run/berth.sock`; CLI calls go
//! to it through `--host`. Dropping it removes every container it made, kills the daemon and
//! any supervisor left, and unmounts whatever is left under the root.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::{berth, fixtures, ok};

/// The image name the fixture imports.
pub const IMAGE: &str = "busybox";

/// How long a daemon may take to answer on its socket.
const STARTUP: Duration = Duration::from_secs(60);

/// Subnet `n` of this test process, indexed by its pid (below 2^15 here, so live test
/// processes never share one): 0, the default network, is a /24 of 10.128.0.0/9 (it holds
/// the fifty containers of the concurrency tests); 1 and 2, user networks, are the two /25s
/// of a /24 of 10.0.0.0/9.
fn test_subnet(n: u32) -> String {
    assert!(n <= 2, "two user networks per test at most");
    let pid = std::process::id() % (1 << 15);
    let (first, prefix) = match n {
        0 => ([10, 128, 0, 0], 24),
        _ => ([10, 0, 0, 0], 25),
    };
    let offset = pid * 256 + n.saturating_sub(1) * 128;
    let base = u32::from(std::net::Ipv4Addr::from(first)) + offset;
    format!("{}/{prefix}", std::net::Ipv4Addr::from(base))
}

#[derive(Debug)]
pub struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
    /// The store's client URL: the embedded store's, or the external one given.
    store: String,
    /// Whether `store` is external (`--store-endpoints`).
    external: bool,
    /// More `berth daemon` flags, given at every start.
    flags: Vec<String>,
}

impl Daemon {
    /// A new root with busybox imported, and a daemon serving it with its embedded store.
    pub fn start() -> Self {
        Self::start_with_store(None)
    }

    /// As [`Self::start`], with the store at `endpoint` (`--store-endpoints`) when given.
    pub fn start_with_store(endpoint: Option<&str>) -> Self {
        Self::start_with_flags(endpoint, &[])
    }

    /// As [`Self::start_with_store`], with more `berth daemon` flags (`--service-ttl 2s`),
    /// given again at every [`Self::spawn`].
    pub fn start_with_flags(endpoint: Option<&str>, flags: &[&str]) -> Self {
        // Short paths: a supervisor's control.sock is <root>/containers/<64-hex id>/control.sock,
        // and a unix socket's path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("b")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let rootfs = dir.path().join("rootfs");
        full_busybox_rootfs(&rootfs);
        let root = dir.path().join("r");
        ok(berth(&root)
            .args(["image", "import-rootfs"])
            .arg(&rootfs)
            .args(["--name", IMAGE, "--cmd", "sh"]));
        fs::remove_dir_all(&rootfs).expect("remove the fixture rootfs");
        let mut daemon = Self {
            dir,
            child: None,
            starts: 0,
            store: endpoint.map_or_else(
                || format!("http://127.0.0.1:{}", free_port()),
                str::to_owned,
            ),
            external: endpoint.is_some(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        };
        daemon.spawn();
        daemon
    }

    /// The default network's bridge: `bb<pid>`, so parallel test processes and a real
    /// daemon (`berth0`) never share one.
    pub fn bridge(&self) -> String {
        format!("bb{}", std::process::id())
    }

    /// The default network's subnet: the test process's own /24 of 10.128.0.0/9 (pids are
    /// below 2^15 here, so live test processes never share one; a /24 holds the fifty
    /// containers of the concurrency tests).
    pub fn subnet(&self) -> String {
        test_subnet(0)
    }

    /// User network `n`'s (1 or 2) subnet for this test process.
    pub fn user_subnet(&self, n: u32) -> String {
        test_subnet(n)
    }

    /// A user network's bridge for this test process, never shared with another daemon.
    pub fn user_bridge(&self, n: u32) -> String {
        format!("bb{}n{n}", std::process::id())
    }

    /// Imports busybox (every applet linked) once more as `name`, with `extra` arguments of
    /// `image import-rootfs` (`--expose 80`, …), while the daemon runs.
    pub fn import_image(&self, name: &str, extra: &[&str]) {
        let rootfs = self.dir.path().join(format!("rootfs-{name}"));
        full_busybox_rootfs(&rootfs);
        ok(berth(&self.root())
            .args(["image", "import-rootfs"])
            .arg(&rootfs)
            .args(["--name", name, "--cmd", "sh"])
            .args(extra));
        fs::remove_dir_all(&rootfs).expect("remove the fixture rootfs");
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("r")
    }

    pub fn socket(&self) -> PathBuf {
        self.root().join("run/berth.sock")
    }

    /// `--host` for the CLI.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `berth --root R --host unix://R/run/berth.sock`, ready for arguments.
    pub fn cli(&self) -> Command {
        let mut command = berth(&self.root());
        command
            .arg("--host")
            .arg(self.host())
            .env_remove("BERTH_HOST")
            .env("BERTH_STORE_ENDPOINTS", &self.store);
        command
    }

    /// Runs `berth ARGS` against this daemon and returns its output, whatever its status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("run berth")
    }

    /// Runs `berth ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.cli().args(args))
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// kill -9 of the daemon (its containers live on under their supervisors).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new daemon on the same root (after [`Self::kill`]).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "a daemon is already running");
        self.starts += 1;
        let root = self.root();
        let mut command = berth(&root);
        command
            .args(["--log-level", "info", "daemon", "--run-dir"])
            .arg(root.join("run"))
            .args(["--bridge", &self.bridge(), "--subnet", &self.subnet()]);
        if self.external {
            command.args(["--store-endpoints", &self.store]);
        } else {
            command.args(["--store-listen", &self.store]);
        }
        command.args(&self.flags);
        let log = self.log_path();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("daemon log"))
            .spawn()
            .expect("spawn berth daemon");
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "berth daemon exited ({status}) before answering; its log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            // Ready when the API answers and so does its store (`berth kv` talks to it).
            if UnixStream::connect(self.socket()).is_ok()
                && self.run(&["ps"]).status.success()
                && self.run(&["kv", "get", "/"]).status.success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the daemon did not answer on {} within {STARTUP:?}; its log:\n{}",
            self.socket().display(),
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The daemon's stderr (of its latest start).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("daemon.{}.log", self.starts))
    }

    /// The daemon's state directory of container `id`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root().join("containers").join(id)
    }

    /// The state directories of every container the daemon knows.
    pub fn state_dirs(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.root().join("containers")) {
            Ok(entries) => entries.map(|e| e.expect("dir entry").path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Mount points under this daemon's root.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(&self.root())
    }

    /// Asserts that container `id` left nothing: no state dir, no mount under the root, no
    /// cgroup, no process (supervisor or container) naming it.
    pub fn assert_nothing_left(&self, id: &str) {
        let state = self.state_dir(id);
        assert!(!state.exists(), "state dir {} left", state.display());
        let mounts = self.mounts();
        assert!(
            !mounts.iter().any(|m| m.contains(id)),
            "mounts left: {mounts:?}"
        );
        for dir in cgroup_dirs(id) {
            assert!(!dir.exists(), "cgroup {} left", dir.display());
        }
        let processes = processes_mentioning(id);
        assert!(processes.is_empty(), "processes left: {processes:?}");
    }

    /// Asserts that the daemon keeps no container at all and nothing is mounted under its root.
    pub fn assert_empty(&self) {
        let listed = self.ok(&["ps", "-a", "-q"]);
        assert_eq!(listed.trim(), "", "containers still listed");
        assert_eq!(self.state_dirs(), Vec::<PathBuf>::new(), "state dirs left");
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left");
    }

    /// The pids of supervisors (`berth supervise`) of containers of this root.
    pub fn supervisor_pids(&self) -> Vec<i32> {
        let root = self.root().display().to_string();
        processes()
            .into_iter()
            .filter(|(_, cmdline)| cmdline.contains("supervise") && cmdline.contains(&root))
            .map(|(pid, _)| pid)
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.run(&["ps", "-a", "-q", "--no-trunc"]);
            let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self.cli().args(["rm", "-f"]).args(&ids).output();
            }
        }
        self.kill();
        for pid in self.supervisor_pids() {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // The bridge plugin leaves the bridge when its last veth goes.
        for bridge in [self.bridge(), self.user_bridge(1), self.user_bridge(2)] {
            let _ = Command::new("ip")
                .args(["link", "del", &bridge])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// busybox-static with a link for every applet it has, and a passwd and group file.
fn full_busybox_rootfs(rootfs: &Path) {
    fixtures::busybox_rootfs(rootfs);
    let list = ok(Command::new("/usr/bin/busybox").arg("--list"));
    let bin = rootfs.join("bin");
    for applet in list.split_whitespace() {
        let link = bin.join(applet);
        if applet != "busybox" && fs::symlink_metadata(&link).is_err() {
            symlink("busybox", &link).expect("applet link");
        }
    }
    for dir in ["tmp", "root", "proc", "sys", "dev"] {
        fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
}

/// Mount points (field 5 of mountinfo) at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// Where container `id`'s cgroup would be: `/sys/fs/cgroup/berth/<id>` (v2) and
/// `/sys/fs/cgroup/<controller>/berth/<id>` (v1).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("berth").join(id)];
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            dirs.push(entry.path().join("berth").join(id));
        }
    }
    dirs
}

/// Every container cgroup directory under `berth/` in any hierarchy.
pub fn berth_cgroups() -> BTreeSet<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut parents = vec![root.join("berth")];
    if let Ok(entries) = fs::read_dir(root) {
        parents.extend(entries.flatten().map(|e| e.path().join("berth")));
    }
    parents
        .iter()
        .filter_map(|parent| fs::read_dir(parent).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect()
}

/// Asserts that of the cgroups not in `before`, none stays without processes: a new cgroup
/// either belongs to a live container (of this or a concurrent test) or goes away.
pub fn assert_no_new_empty_cgroup(before: &BTreeSet<PathBuf>) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let leftovers: Vec<PathBuf> = berth_cgroups()
            .difference(before)
            .filter(|dir| {
                fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
            })
            .cloned()
            .collect();
        if leftovers.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "empty cgroups left: {leftovers:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (pid, command line with spaces) of every process.
fn processes() -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmdline));
        }
    }
    found
}

/// Processes whose command line names `needle`, this test process excepted.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|(pid, cmdline)| *pid != me && cmdline.contains(needle))
        .collect()
}
