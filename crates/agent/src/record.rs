//! `container.json` in a container's state directory: what the daemon knows of a container
//! beyond the supervisor's files (its name, image and the request it was made from).
//! Written once, atomically, as the last step of a create: a state directory without it is
//! a create that did not finish, and is removed when the daemon starts.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_client::api::CreateRequest;
use berth_types::ContainerId;
use serde::{Deserialize, Serialize};

/// The file's name in the state directory.
pub const RECORD_FILE: &str = "container.json";
/// The bundle's directory in the state directory.
pub const BUNDLE_DIR: &str = "bundle";

/// The daemon's record of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    pub id: ContainerId,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    /// RFC 3339.
    pub created: String,
    /// The mounted root filesystem (the image store's overlay).
    pub rootfs: PathBuf,
    /// The process: entrypoint and command combined.
    pub path: String,
    pub args: Vec<String>,
    pub request: CreateRequest,
}

impl ContainerRecord {
    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(dir.join(RECORD_FILE))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Writes the record into `dir` atomically (temp file, fsync, rename).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(".{RECORD_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(RECORD_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }
}
