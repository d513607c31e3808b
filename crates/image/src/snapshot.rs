//! Container root filesystems: a fresh upper and work directory over an image's unpacked
//! layers, stacked with overlayfs. `snapshots/<id>/snapshot.json` records which image and
//! layers a snapshot uses, so garbage collection keeps them.

use std::fs;
use std::path::{Path, PathBuf};

use berth_types::Digest;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::index::ImageRecord;
use crate::layers;
use crate::layout::Layout;
use crate::store::Store;

/// Longest overlayfs mount option string the kernel takes (one page).
const MAX_MOUNT_DATA: usize = 4095;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotMeta {
    image: Digest,
    /// Chain ids, top layer first.
    layers: Vec<Digest>,
}

/// A prepared container root filesystem.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// Where [`Rootfs::mount`] mounts the merged view: the container's root.
    pub target: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Layer directories, top first.
    pub lowers: Vec<PathBuf>,
}

impl Rootfs {
    /// The overlayfs mount options for this rootfs.
    pub fn mount_options(&self) -> Result<String> {
        let lowers: Vec<String> = self.lowers.iter().map(|p| escape(p)).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            escape(&self.upper),
            escape(&self.work)
        );
        if options.len() > MAX_MOUNT_DATA {
            return Err(Error::InvalidRootfs(format!(
                "the image has too many layers ({}) for one overlay mount",
                self.lowers.len()
            )));
        }
        Ok(options)
    }

    /// Mounts the overlay at [`Rootfs::target`].
    pub fn mount(&self) -> Result<()> {
        let options = self.mount_options()?;
        nix::mount::mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|source| Error::Mount {
            context: format!("mounting overlay at {}", self.target.display()),
            source,
        })
    }
}

/// overlayfs splits its options on `,` and lower dirs on `:`; escape both.
fn escape(path: &Path) -> String {
    path.display()
        .to_string()
        .replace(',', "\\,")
        .replace(':', "\\:")
}

/// Snapshot ids become directory names: keep them to a safe alphabet.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSnapshotId(id.to_owned()))
    }
}

impl Store {
    /// Prepares a root filesystem for container `id` from `image`: a fresh upper and work
    /// directory over the image's layers. Call [`Rootfs::mount`] to mount it.
    pub fn prepare_rootfs(&self, id: &str, image: &ImageRecord) -> Result<Rootfs> {
        check_id(id)?;
        let _shared = self.lock_shared()?;
        let dir = self.layout().snapshot(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::SnapshotExists(id.to_owned()));
            }
            Err(err) => return Err(Error::io("creating", &dir)(err)),
        }
        let result = self.fill_snapshot(&dir, image);
        if result.is_err() {
            let _ = fsutil::remove_tree(&dir);
        }
        result
    }

    fn fill_snapshot(&self, dir: &Path, image: &ImageRecord) -> Result<Rootfs> {
        let mut lowers = Vec::with_capacity(image.layers.len());
        for chain in image.chain_top_down() {
            let fs_dir = layers::fs_dir(self.layout(), chain);
            if !fs_dir.is_dir() {
                return Err(Error::InvalidRootfs(format!(
                    "layer {chain} of image {} is missing; pull or import the image again",
                    image.id
                )));
            }
            lowers.push(fs_dir);
        }
        let rootfs = Rootfs {
            target: dir.join("merged"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            lowers,
        };
        for sub in [&rootfs.target, &rootfs.upper, &rootfs.work] {
            fs::create_dir(sub).map_err(Error::io("creating", sub))?;
        }
        let meta = SnapshotMeta {
            image: image.id.clone(),
            layers: image.chain_top_down().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&meta).map_err(|source| Error::Json {
            what: "snapshot metadata",
            name: dir.display().to_string(),
            source,
        })?;
        fsutil::write_atomic(&dir.join("snapshot.json"), &bytes, &self.layout().tmp_dir())?;
        Ok(rootfs)
    }

    /// Unmounts (if mounted) and deletes container `id`'s root filesystem. Removing one that
    /// does not exist is not an error.
    pub fn remove_rootfs(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let dir = self.layout().snapshot(id);
        let target = dir.join("merged");
        match nix::mount::umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(source) => {
                return Err(Error::Mount {
                    context: format!("unmounting {}", target.display()),
                    source,
                });
            }
        }
        fsutil::remove_tree(&dir)
    }
}

/// (snapshot id, image id) of every snapshot.
pub(crate) fn users(layout: &Layout) -> Result<Vec<(String, Digest)>> {
    Ok(all(layout)?
        .into_iter()
        .map(|(id, meta)| (id, meta.image))
        .collect())
}

/// Every layer some snapshot stacks.
pub(crate) fn layers_in_use(layout: &Layout) -> Result<Vec<Digest>> {
    Ok(all(layout)?
        .into_iter()
        .flat_map(|(_, meta)| meta.layers)
        .collect())
}

fn all(layout: &Layout) -> Result<Vec<(String, SnapshotMeta)>> {
    let dir = layout.snapshots_dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
        let entry = entry.map_err(Error::io("listing", &dir))?;
        let path = entry.path().join("snapshot.json");
        let Ok(bytes) = fs::read(&path) else {
            // Being prepared right now (or a crash mid-prepare): nothing to protect yet.
            continue;
        };
        let meta: SnapshotMeta =
            crate::archive::parse_json("snapshot metadata", &path.display().to_string(), &bytes)?;
        out.push((entry.file_name().to_string_lossy().into_owned(), meta));
    }
    Ok(out)
}
