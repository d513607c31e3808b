//! A throwaway container environment for the tests: a busybox rootfs, a bundle, a state
//! directory and an output file in a temp dir, with a unique container id.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::{
    Bundle, BundleError, CGROUP_PARENT, ContainerDriver, ExitStatus, HostFacts, LibcontainerDriver,
    RunOptions, SpecInput, Stdio, UserDb, build_spec, run_to_exit,
};
use berth_types::ContainerId;
use oci_spec::image::Config as ImageConfig;
use tempfile::TempDir;

/// A container's files (rootfs, bundle, state, output) in a temp dir; deleting the container
/// and the directory on drop.
pub struct Sandbox {
    pub dir: TempDir,
    pub id: ContainerId,
    pub driver: LibcontainerDriver,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-runtime-test")
            .tempdir()
            .expect("temp dir");
        let driver = LibcontainerDriver::new(&dir.path().join("state")).expect("state root");
        let sandbox = Self {
            dir,
            id: ContainerId::from_random_bytes(random_bytes()),
            driver,
        };
        sandbox.make_busybox_rootfs();
        sandbox
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn bundle_dir(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    pub fn output_path(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    /// busybox-static as /bin/busybox plus a symlink per applet, and a passwd/group.
    pub fn make_busybox_rootfs(&self) {
        let rootfs = self.rootfs();
        for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        let installed = Command::new("chroot")
            .arg(&rootfs)
            .args(["/bin/busybox", "--install", "-s"])
            .status()
            .expect("run chroot");
        assert!(installed.success(), "busybox --install failed");
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
    }

    /// Writes the bundle for `options` running `cmd`.
    pub fn bundle(&self, mut options: RunOptions, cmd: &[&str]) -> Result<Bundle, BundleError> {
        options.cmd = cmd.iter().map(|s| (*s).to_owned()).collect();
        self.bundle_with_image(None, options)
    }

    /// Writes the bundle for an image config and options.
    pub fn bundle_with_image(
        &self,
        image: Option<&ImageConfig>,
        options: RunOptions,
    ) -> Result<Bundle, BundleError> {
        let host = HostFacts::detect().expect("host facts");
        let rootfs = self.rootfs();
        let users = UserDb::load(&rootfs).expect("user db");
        let spec = build_spec(&SpecInput {
            id: &self.id,
            rootfs: &rootfs,
            image,
            options: &options,
            users: &users,
            host: &host,
        })
        .expect("spec");
        Bundle::write(&self.bundle_dir(), &spec)
    }

    /// stdout and stderr both to the output file.
    pub fn stdio(&self) -> Stdio {
        let out = File::create(self.output_path()).expect("output file");
        let err = out.try_clone().expect("dup output");
        Stdio {
            stdin: None,
            stdout: Some(OwnedFd::from(out)),
            stderr: Some(OwnedFd::from(err)),
            console_socket: None,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output_path()).unwrap_or_default()
    }

    /// Runs `cmd` to its end; returns its exit and everything it printed.
    pub fn run(&self, options: RunOptions, cmd: &[&str]) -> (ExitStatus, String) {
        let bundle = self.bundle(options, cmd).expect("bundle");
        let exit = run_to_exit(&self.driver, &self.id, bundle.dir(), self.stdio()).expect("run");
        (exit, self.output())
    }

    /// Creates and starts `cmd`, leaving it running.
    pub fn start(&self, options: RunOptions, cmd: &[&str]) {
        let bundle = self.bundle(options, cmd).expect("bundle");
        self.driver
            .create(&self.id, bundle.dir(), self.stdio())
            .expect("create");
        self.driver.start(&self.id).expect("start");
    }

    /// Where the container's cgroup would be in each hierarchy that limits it.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let relative = format!("{}/{}", CGROUP_PARENT.trim_start_matches('/'), self.id);
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return vec![root.join(relative)];
        }
        [
            "memory",
            "cpu,cpuacct",
            "pids",
            "blkio",
            "devices",
            "freezer",
        ]
        .iter()
        .map(|c| root.join(c).join(&relative))
        .collect()
    }

    /// Asserts that no dead child of this process waits to be reaped (a zombie in the
    /// container's pid namespace would keep the container's init from exiting).
    pub fn assert_no_zombie_children(&self) {
        let me = std::process::id().to_string();
        let zombies: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.split_whitespace().collect())
                    .unwrap_or_default();
                fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
            })
            .collect();
        assert!(zombies.is_empty(), "unreaped children: {zombies:?}");
    }

    /// Asserts no state dir, cgroup, mount or unreaped process of this container is left.
    pub fn assert_nothing_left(&self) {
        self.assert_no_zombie_children();
        let state = self.driver.state_dir(&self.id);
        assert!(!state.exists(), "state dir {} left", state.display());
        for dir in self.cgroup_dirs() {
            assert!(!dir.exists(), "cgroup {} left", dir.display());
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let rootfs = self.rootfs().display().to_string();
        assert!(!mounts.contains(&rootfs), "a mount under {rootfs} is left");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.driver.delete(&self.id);
    }
}

pub fn options() -> RunOptions {
    RunOptions::default()
}

/// The first disk of the host, as `/dev/NAME` with its number, if there is one.
pub fn host_disk() -> Option<(PathBuf, String)> {
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with(['l', 'r', 'z']))
        .find_map(|e| {
            let number = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let path = Path::new("/dev").join(e.file_name());
            path.exists().then(|| (path, number.trim().to_owned()))
        })
}

pub fn random_bytes() -> [u8; 32] {
    let mut random = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("random bytes");
    random
}
