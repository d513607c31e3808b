//! `images.json`: which images the store holds and the names that point at them. Replaced
//! atomically on every change, under `images.lock`.

use std::fs;

use berth_types::{Digest, ImageRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::Layout;

const INDEX_VERSION: u32 = 1;

/// One layer of an image, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The (possibly compressed) blob in `blobs/`.
    pub blob: Digest,
    pub media_type: String,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar, as the image config lists it.
    pub diff_id: Digest,
    /// Identity of this layer stacked on all layers below it: the directory in `layers/`.
    pub chain_id: Digest,
}

/// An image in the store. Its id is the digest of its config, as docker's image id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    pub names: Vec<ImageRef>,
    pub layers: Vec<LayerRecord>,
    /// `created` from the image config, if it has one (RFC 3339).
    pub created: Option<String>,
    /// When this store imported or pulled the image (RFC 3339, UTC).
    pub stored_at: String,
    /// Bytes of file content once unpacked, summed over layers.
    pub unpacked_size: u64,
    pub os: String,
    pub architecture: String,
}

impl ImageRecord {
    /// Total size of the layer blobs.
    pub fn blob_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// Chain ids from the top layer down, the order overlayfs wants lower directories in.
    pub fn chain_top_down(&self) -> impl Iterator<Item = &Digest> {
        self.layers.iter().rev().map(|l| &l.chain_id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    images: Vec<ImageRecord>,
}

/// Read and write access to `images.json`.
#[derive(Debug, Clone)]
pub struct Index {
    layout: Layout,
}

impl Index {
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    /// All images, oldest first.
    pub fn load(&self) -> Result<Vec<ImageRecord>> {
        let path = self.layout.index_file();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io("reading", &path)(err)),
        };
        let file: IndexFile = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: "image index",
            name: path.display().to_string(),
            source,
        })?;
        if file.version != INDEX_VERSION {
            return Err(Error::UnsupportedLayout {
                path,
                found: file.version.to_string(),
                supported: INDEX_VERSION,
            });
        }
        Ok(file.images)
    }

    /// Applies `change` to the image list under the index lock and writes the result
    /// atomically. Returns what `change` returned.
    pub fn update<T>(&self, change: impl FnOnce(&mut Vec<ImageRecord>) -> Result<T>) -> Result<T> {
        let _lock = fsutil::lock(&self.layout.index_lock_file(), true)?;
        let mut images = self.load()?;
        let out = change(&mut images)?;
        let file = IndexFile {
            version: INDEX_VERSION,
            images,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|source| Error::Json {
            what: "image index",
            name: "images.json".to_owned(),
            source,
        })?;
        fsutil::write_atomic(&self.layout.index_file(), &bytes, &self.layout.tmp_dir())?;
        Ok(out)
    }

    /// Adds or replaces `image` (same id), moving its names away from any other image.
    pub fn put(&self, image: ImageRecord) -> Result<()> {
        self.update(|images| {
            for other in images.iter_mut() {
                other.names.retain(|n| !image.names.contains(n));
            }
            match images.iter_mut().find(|i| i.id == image.id) {
                Some(existing) => {
                    let mut names = existing.names.clone();
                    for name in &image.names {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                    }
                    *existing = ImageRecord { names, ..image };
                }
                None => images.push(image),
            }
            Ok(())
        })
    }
}
