//! The image store: open it, look images up, remove them, and collect garbage.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use berth_types::{Digest, ImageRef};
use oci_spec::image::ImageConfiguration;

use crate::blob::Blobs;
use crate::error::{Error, Result};
use crate::fsutil::{self, LockGuard};
use crate::index::{ImageRecord, Index};
use crate::layout::Layout;
use crate::media::MAX_METADATA_BYTES;
use crate::snapshot;

/// Shortest image-id prefix accepted as a reference.
const MIN_ID_PREFIX: usize = 4;

/// An image store rooted at a directory. Cheap to clone; safe to use from several processes at
/// once (coordination is by file locks, see docs/formats/image-store.md).
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    blobs: Blobs,
    index: Index,
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    pub untagged: Vec<ImageRef>,
    pub deleted: Vec<Digest>,
}

/// What [`Store::prune`] reclaimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub images: Vec<Digest>,
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

impl Store {
    /// Opens (creating if needed) the store at `root`. Scratch space left by crashed
    /// operations is removed here, unless another process is using the store right now.
    pub fn open(root: &Path) -> Result<Self> {
        let layout = Layout::create(root)?;
        let store = Self {
            blobs: Blobs::new(layout.clone()),
            index: Index::new(layout.clone()),
            layout,
        };
        match fsutil::try_lock_exclusive(&store.layout.lock_file())? {
            Some(_exclusive) => {
                store.layout.ensure_version()?;
                let removed = fsutil::clean_scratch(&store.layout.tmp_dir())?;
                if removed > 0 {
                    tracing::info!(
                        removed,
                        "removed scratch space left by interrupted operations"
                    );
                }
            }
            None => {
                // Someone is initializing, cleaning or using the store: wait for a shared
                // lock, under which no cleaner runs.
                let _shared = store.lock_shared()?;
                store.layout.ensure_version()?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// Held while content is added, so garbage collection cannot remove it half-way.
    pub(crate) fn lock_shared(&self) -> Result<LockGuard> {
        fsutil::lock(&self.layout.lock_file(), false)
    }

    /// All images, oldest first.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        self.index.load()
    }

    /// Finds an image by name (`busybox`, `127.0.0.1:5000/app:1`), id (`sha256:…`) or a unique
    /// id prefix of at least four hex characters.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        let images = self.index.load()?;
        find(&images, reference).cloned()
    }

    /// The image's OCI config.
    pub fn config(&self, image: &ImageRecord) -> Result<ImageConfiguration> {
        let bytes = self
            .blobs
            .read_small(&image.id, "config", MAX_METADATA_BYTES)?;
        crate::archive::parse_json("image config", &image.id.to_string(), &bytes)
    }

    /// The image's manifest, as stored.
    pub fn manifest_bytes(&self, image: &ImageRecord) -> Result<Vec<u8>> {
        self.blobs
            .read_small(&image.manifest, "manifest", MAX_METADATA_BYTES)
    }

    /// Removes a name, or by id the whole image, like `docker rmi`. An image is deleted once
    /// it has no name left (or was named by id); its content goes unless another image or a
    /// container uses it. An image a container uses is only removed with `force`.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Removal> {
        let _exclusive = fsutil::lock(&self.layout.lock_file(), true)?;
        let users = snapshot::users(&self.layout)?;
        let removal = self.index.update(|images| {
            let image = find(images, reference)?.clone();
            let by_name = reference
                .parse::<ImageRef>()
                .ok()
                .filter(|r| image.names.contains(r));
            let mut removal = Removal::default();
            let entry = images
                .iter_mut()
                .find(|i| i.id == image.id)
                .ok_or_else(|| Error::ImageNotFound(reference.to_owned()))?;
            let delete = match &by_name {
                Some(name) if entry.names.len() > 1 => {
                    entry.names.retain(|n| n != name);
                    removal.untagged.push(name.clone());
                    false
                }
                _ => true,
            };
            if delete {
                let in_use: Vec<&str> = users
                    .iter()
                    .filter(|(_, id)| *id == image.id)
                    .map(|(container, _)| container.as_str())
                    .collect();
                if !in_use.is_empty() && !force {
                    return Err(Error::ImageInUse {
                        image: reference.to_owned(),
                        containers: in_use.join(", "),
                    });
                }
                removal.untagged.extend(image.names.iter().cloned());
                removal.deleted.push(image.id.clone());
                images.retain(|i| i.id != image.id);
            }
            Ok(removal)
        })?;
        if !removal.deleted.is_empty() {
            self.collect_garbage()?;
        }
        Ok(removal)
    }

    /// Removes images with no name (all images no container uses, with `all`), then every
    /// blob and unpacked layer nothing refers to, and abandoned partial downloads.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        let _exclusive = fsutil::lock(&self.layout.lock_file(), true)?;
        let used: HashSet<Digest> = snapshot::users(&self.layout)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let images = self.index.update(|images| {
            let (gone, kept): (Vec<_>, Vec<_>) = images
                .drain(..)
                .partition(|i| (all || i.names.is_empty()) && !used.contains(&i.id));
            *images = kept;
            Ok(gone.into_iter().map(|i| i.id).collect())
        })?;
        let mut report = self.collect_garbage()?;
        report.images = images;
        Ok(report)
    }

    /// Deletes blobs and layers that no image and no container snapshot refers to. Callers hold
    /// the store lock exclusively.
    fn collect_garbage(&self) -> Result<PruneReport> {
        let images = self.index.load()?;
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        for image in &images {
            blobs.insert(image.id.hex().to_owned());
            blobs.insert(image.manifest.hex().to_owned());
            for layer in &image.layers {
                blobs.insert(layer.blob.hex().to_owned());
                layers.insert(layer.chain_id.hex().to_owned());
            }
        }
        for chain in snapshot::layers_in_use(&self.layout)? {
            layers.insert(chain.hex().to_owned());
        }
        let mut report = PruneReport::default();
        for entry in read_dir(&self.layout.blobs_dir())? {
            if !blobs.contains(entry.file_name().to_string_lossy().as_ref()) {
                report.bytes += entry.metadata().map_or(0, |m| m.len());
                fs::remove_file(entry.path()).map_err(Error::io("removing blob", entry.path()))?;
                report.blobs += 1;
            }
        }
        for entry in read_dir(&self.layout.layers_dir())? {
            if !layers.contains(entry.file_name().to_string_lossy().as_ref()) {
                fsutil::remove_tree(&entry.path())?;
                report.layers += 1;
            }
        }
        for entry in read_dir(&self.layout.ingest_dir())? {
            report.bytes += entry.metadata().map_or(0, |m| m.len());
            fs::remove_file(entry.path())
                .map_err(Error::io("removing partial download", entry.path()))?;
        }
        Ok(report)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(Error::io("listing", dir))
}

fn find<'a>(images: &'a [ImageRecord], reference: &str) -> Result<&'a ImageRecord> {
    if let Ok(name) = reference.parse::<ImageRef>()
        && let Some(image) = images.iter().find(|i| i.names.contains(&name))
    {
        return Ok(image);
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let is_hex = hex.len() >= MIN_ID_PREFIX
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if is_hex {
        let matches: Vec<&ImageRecord> = images
            .iter()
            .filter(|i| i.id.hex().starts_with(hex))
            .collect();
        match matches.len() {
            0 => {}
            1 => return Ok(matches[0]),
            count => {
                return Err(Error::AmbiguousImage {
                    reference: reference.to_owned(),
                    count,
                });
            }
        }
    }
    Err(Error::ImageNotFound(reference.to_owned()))
}
