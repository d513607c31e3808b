//! An import as a transaction. Blobs and unpacked layers are first written to the operation's
//! scratch directory and verified there; only when the whole image checked out are they
//! published (renamed into `blobs/` and `layers/`) and the image recorded. A refused or
//! interrupted import therefore changes nothing outside the scratch area.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_types::Digest;

use crate::blob::Expected;
use crate::error::{Error, Result};
use crate::fsutil::{self, Scratch};
use crate::index::{ImageRecord, LayerRecord};
use crate::layers::{self, Unpacked};
use crate::progress::Progress;
use crate::store::Store;
use crate::unpack::Policy;

/// A layer of an image being staged: its blob, and the diff_id the config says it has (absent
/// for a root filesystem import, where berth computes it).
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Option<Digest>,
}

pub struct Staging<'s> {
    store: &'s Store,
    scratch: Scratch,
    policy: Policy,
    blobs: HashMap<Digest, PathBuf>,
    /// Staged layer directories, bottom first, with their chain ids.
    layers: Vec<(Digest, PathBuf)>,
}

impl<'s> Staging<'s> {
    pub fn new(store: &'s Store, policy: Policy) -> Result<Self> {
        Ok(Self {
            scratch: Scratch::new(&store.layout().tmp_dir())?,
            store,
            policy,
            blobs: HashMap::new(),
            layers: Vec::new(),
        })
    }

    /// Size of the blob if the store or this transaction already has it.
    pub fn has_blob(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Where the blob's content is: staged here, or published in the store.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs
            .get(digest)
            .cloned()
            .unwrap_or_else(|| self.store.layout().blob(digest))
    }

    /// Stages `reader`'s content, verified against `expected` when given; returns its digest
    /// and size. Content with a wrong digest or size is refused and discarded.
    pub fn stage_blob(
        &mut self,
        reader: impl Read,
        expected: Option<Expected<'_>>,
    ) -> Result<(Digest, u64)> {
        let limit = expected.and_then(|e| e.size);
        let (digest, size, tmp) = self
            .store
            .blobs()
            .stage(reader, limit, self.scratch.path())?;
        if let Some(expected) = expected
            && let Err(err) = crate::blob::check(expected, &digest, size)
        {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        self.blobs.insert(digest.clone(), tmp);
        Ok((digest, size))
    }

    /// Takes over a file the caller wrote and verified as the blob `digest`: in this scratch
    /// area, or a finished download in the store's `ingest/` (same filesystem).
    pub fn adopt_blob(&mut self, digest: Digest, path: PathBuf) {
        self.blobs.insert(digest, path);
    }

    /// Reads a staged or stored small blob whole.
    pub fn read_small(&self, digest: &Digest, what: &'static str, limit: u64) -> Result<Vec<u8>> {
        crate::blob::read_limited(&self.blob_path(digest), digest, what, limit)
    }

    /// Unpacks the layers bottom to top (each one only if the store does not have it yet) and
    /// checks each against its diff_id. Returns the layer records and unpacked sizes.
    pub fn unpack_layers(
        &mut self,
        layers: &[LayerBlob],
        progress: &dyn Progress,
    ) -> Result<Vec<(LayerRecord, u64)>> {
        let mut parent: Option<Digest> = None;
        let mut lowers: Vec<PathBuf> = Vec::new(); // top first
        let mut records = Vec::with_capacity(layers.len());
        for layer in layers {
            let known = layer
                .diff_id
                .as_ref()
                .map(|d| layers::chain_id(parent.as_ref(), d));
            let existing = match &known {
                Some(chain) => self.existing_layer(chain)?,
                None => None,
            };
            let (unpacked, fs_dir) = match existing {
                Some(found) => {
                    progress.finished(&layer.digest, "already unpacked");
                    found
                }
                None => self.unpack_one(layer, parent.as_ref(), &lowers, progress)?,
            };
            lowers.insert(0, fs_dir);
            parent = Some(unpacked.chain_id.clone());
            records.push((
                LayerRecord {
                    blob: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                    diff_id: unpacked.diff_id,
                    chain_id: unpacked.chain_id,
                },
                unpacked.bytes,
            ));
        }
        Ok(records)
    }

    fn existing_layer(&self, chain: &Digest) -> Result<Option<(Unpacked, PathBuf)>> {
        if let Some((_, dir)) = self.layers.iter().find(|(c, _)| c == chain) {
            let meta = layers::read_meta_at(dir, chain)?;
            return Ok(Some((meta.unpacked(chain.clone()), dir.join("fs"))));
        }
        let dir = self.store.layout().layer(chain);
        if dir.join(layers::META_FILE).is_file() {
            let meta = layers::read_meta_at(&dir, chain)?;
            return Ok(Some((meta.unpacked(chain.clone()), dir.join("fs"))));
        }
        Ok(None)
    }

    fn unpack_one(
        &mut self,
        layer: &LayerBlob,
        parent: Option<&Digest>,
        lowers: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<(Unpacked, PathBuf)> {
        let dest = self
            .scratch
            .path()
            .join(format!("layer-{}", self.layers.len()));
        fs::create_dir(&dest).map_err(Error::io("creating", &dest))?;
        let blob_path = self.blob_path(&layer.digest);
        let unpacked = layers::unpack_into(
            &layer.digest,
            &blob_path,
            &dest,
            lowers,
            layer.diff_id.as_ref(),
            parent,
            self.policy,
            progress,
        )?;
        self.layers.push((unpacked.chain_id.clone(), dest.clone()));
        Ok((unpacked, dest.join("fs")))
    }

    /// Publishes everything staged, then records `images`. The filesystem is synced once
    /// before the first rename, so published content is on disk; a crash between renames
    /// leaves only complete, unreferenced content that `prune` reclaims.
    pub fn commit(self, images: Vec<ImageRecord>) -> Result<()> {
        let scratch = self.scratch.path();
        let dir = fs::File::open(scratch).map_err(Error::io("opening", scratch))?;
        nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| Error::io("syncing", scratch)(e.into()))?;
        for (digest, tmp) in &self.blobs {
            self.store.blobs().publish(tmp, digest)?;
        }
        fsutil::sync_dir(&self.store.layout().blobs_dir())?;
        for (chain, staged) in &self.layers {
            let dest = self.store.layout().layer(chain);
            match fs::rename(staged, &dest) {
                Ok(()) => {}
                // Another import published the same layer first; ours goes with the scratch.
                Err(_) if dest.join(layers::META_FILE).is_file() => {}
                Err(err) => return Err(Error::io("publishing layer", &dest)(err)),
            }
        }
        fsutil::sync_dir(&self.store.layout().layers_dir())?;
        for image in images {
            self.store.index().put(image)?;
        }
        Ok(())
    }

    pub fn scratch_path(&self) -> &Path {
        self.scratch.path()
    }
}
