//! Where things live inside the image store's directory. The layout is versioned and written
//! down in docs/formats/image-store.md; every path the store touches is built here.

use std::fs;
use std::path::{Path, PathBuf};

use berth_types::Digest;

use crate::error::{Error, Result};

/// The on-disk layout version this code reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// Paths inside an image store directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Creates the store's directories if they are missing. The version file is handled by
    /// [`Layout::ensure_version`], under the store lock.
    pub fn create(root: &Path) -> Result<Self> {
        let layout = Self {
            root: root.to_path_buf(),
        };
        for dir in [
            layout.root.clone(),
            layout.blobs_dir(),
            layout.layers_dir(),
            layout.snapshots_dir(),
            layout.tmp_dir(),
            layout.ingest_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        }
        Ok(layout)
    }

    /// Writes the version file of a new store, or checks that of an existing one. Callers
    /// hold the store lock, so scratch cleaning cannot remove the file while it is written.
    pub fn ensure_version(&self) -> Result<()> {
        let version_file = self.root.join("VERSION");
        match fs::read_to_string(&version_file) {
            Ok(found) if found.trim() == LAYOUT_VERSION.to_string() => Ok(()),
            Ok(found) => Err(Error::UnsupportedLayout {
                path: self.root.clone(),
                found: found.trim().to_owned(),
                supported: LAYOUT_VERSION,
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => crate::fsutil::write_atomic(
                &version_file,
                format!("{LAYOUT_VERSION}\n").as_bytes(),
                &self.tmp_dir(),
            ),
            Err(err) => Err(Error::io("reading", &version_file)(err)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Held shared by every operation that adds content, exclusively by garbage collection.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Serializes read-modify-write cycles of `images.json`.
    pub fn index_lock_file(&self) -> PathBuf {
        self.root.join("images.lock")
    }

    pub fn index_file(&self) -> PathBuf {
        self.root.join("images.json")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers").join("sha256")
    }

    /// The unpacked layer whose chain id is `chain_id`; its files are under `fs/`.
    pub fn layer(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn snapshot(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(id)
    }

    /// Scratch space; whatever is here and not locked by a live operation is removed at open.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Partial downloads, kept across crashes so a pull resumes where it stopped.
    pub fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// The partial (or complete, not yet published) download of blob `digest`.
    pub fn ingest(&self, digest: &Digest) -> PathBuf {
        self.ingest_dir().join(digest.hex())
    }
}
