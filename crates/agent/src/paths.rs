//! Where the daemon keeps things: `--root` (persistent) and `--run-dir` (tmpfs).

use std::path::{Path, PathBuf};

use berth_types::ContainerId;

/// The daemon's directories and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `--root`, `/var/lib/berth` by default.
    pub root: PathBuf,
    /// `--run-dir`, `/run/berth` by default.
    pub run_dir: PathBuf,
}

impl Paths {
    pub fn new(root: &Path, run_dir: &Path) -> Self {
        Self {
            root: root.to_owned(),
            run_dir: run_dir.to_owned(),
        }
    }

    /// The image store.
    pub fn images(&self) -> PathBuf {
        self.root.join("image")
    }

    /// One state directory per container (docs/formats/container-state-dir.md).
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container(&self, id: &ContainerId) -> PathBuf {
        self.containers().join(id.as_str())
    }

    /// Flocked by the one daemon that owns `root`.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("berth.sock")
    }

    /// libcontainer's state root (on tmpfs, so it does not outlive a reboot).
    pub fn runtime_root(&self) -> PathBuf {
        self.run_dir.join("runtime")
    }
}
