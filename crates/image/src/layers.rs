//! Unpacked layers: `layers/sha256/<chain-id>/fs`, one directory per layer stacked on its
//! parents, created once and shared by every image whose layers start the same way.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use berth_types::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::{self, Scratch};
use crate::layout::Layout;
use crate::media;
use crate::progress::{Counting, Progress};
use crate::unpack::{self, Policy};

/// `layers/sha256/<chain-id>/layer.json`: what a layer directory holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub blob: Digest,
    pub entries: u64,
    pub bytes: u64,
}

/// The OCI chain id of a layer on top of `parent` (`None` for the bottom layer).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(parent) => {
            let mut hasher = Sha256::new();
            hasher.update(format!("{parent} {diff_id}").as_bytes());
            Digest::from_sha256(hasher.finalize().into())
        }
    }
}

/// A layer that exists unpacked in the store.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub diff_id: Digest,
    pub chain_id: Digest,
    pub bytes: u64,
}

/// The `fs` directory of a layer.
pub fn fs_dir(layout: &Layout, chain_id: &Digest) -> PathBuf {
    layout.layer(chain_id).join("fs")
}

/// Makes sure the layer whose blob is `blob` is unpacked on top of `parent`. If `expected`
/// names its diff_id and that layer is already there, nothing is read. Otherwise the blob is
/// unpacked into scratch space, its uncompressed digest checked against `expected`, the
/// filesystem synced, and the directory renamed into place: a layer directory is complete or
/// absent, never partial.
pub fn ensure_unpacked(
    layout: &Layout,
    blob: &Digest,
    expected: Option<&Digest>,
    parent: Option<&Digest>,
    policy: Policy,
    progress: &dyn Progress,
) -> Result<Unpacked> {
    if let Some(diff_id) = expected {
        let chain = chain_id(parent, diff_id);
        if let Some(meta) = read_meta(layout, &chain)? {
            progress.finished(blob, "already unpacked");
            return Ok(Unpacked {
                diff_id: diff_id.clone(),
                chain_id: chain,
                bytes: meta.bytes,
            });
        }
    }
    let lowers = lower_dirs(layout, parent)?;
    let scratch = Scratch::new(&layout.tmp_dir())?;
    let fs_path = scratch.path().join("fs");
    fs::create_dir(&fs_path).map_err(Error::io("creating", &fs_path))?;

    let blob_path = layout.blob(blob);
    let file = fs::File::open(&blob_path).map_err(Error::io("opening blob", &blob_path))?;
    let total = file.metadata().map(|m| m.len()).ok();
    progress.started(blob, "unpacking", total);
    let counted = Counting {
        inner: io::BufReader::with_capacity(256 * 1024, file),
        blob,
        progress,
    };
    let stream_err = |format: &'static str| {
        move |source: io::Error| Error::BadLayerStream {
            layer: blob.clone(),
            format,
            source,
        }
    };
    let (compression, decompressed) =
        media::decompress(counted).map_err(stream_err("compressed"))?;
    let mut hashing = HashingReader::new(decompressed);
    let stats =
        unpack::unpack(&mut hashing, &fs_path, &lowers, blob, policy).map_err(|err| match err {
            Error::BadLayerStream { layer, source, .. } => Error::BadLayerStream {
                layer,
                format: compression.name(),
                source,
            },
            other => other,
        })?;
    // The tar reader stops at the end-of-archive marker; the diff_id covers every byte.
    io::copy(&mut hashing, &mut io::sink()).map_err(stream_err(compression.name()))?;
    let diff_id = hashing.digest();
    if let Some(expected) = expected
        && *expected != diff_id
    {
        return Err(Error::DiffIdMismatch {
            layer: blob.clone(),
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    let chain = chain_id(parent, &diff_id);
    let meta = LayerMeta {
        diff_id: diff_id.clone(),
        parent: parent.cloned(),
        blob: blob.clone(),
        entries: stats.entries,
        bytes: stats.bytes,
    };
    let meta_bytes = serde_json::to_vec_pretty(&meta).map_err(|source| Error::Json {
        what: "layer metadata",
        name: chain.to_string(),
        source,
    })?;
    let meta_path = scratch.path().join("layer.json");
    fs::write(&meta_path, meta_bytes).map_err(Error::io("writing", &meta_path))?;
    // One syncfs instead of an fsync per file: the layer's files reach the disk before the
    // rename that makes the layer visible.
    let dir = fs::File::open(scratch.path()).map_err(Error::io("opening", scratch.path()))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .map_err(|e| Error::io("syncing", scratch.path())(e.into()))?;
    let dest = layout.layer(&chain);
    match fs::rename(scratch.path(), &dest) {
        Ok(()) => fsutil::sync_parent(&dest)?,
        // Another import unpacked the same layer first; ours is dropped with the scratch dir.
        Err(err) if dest.join("layer.json").is_file() => {
            tracing::debug!(%chain, %err, "layer appeared concurrently");
        }
        Err(err) => return Err(Error::io("publishing layer", &dest)(err)),
    }
    progress.finished(blob, "unpacked");
    Ok(Unpacked {
        diff_id,
        chain_id: chain,
        bytes: stats.bytes,
    })
}

/// Reads a layer's metadata; `None` if the layer is not unpacked.
pub fn read_meta(layout: &Layout, chain: &Digest) -> Result<Option<LayerMeta>> {
    let path = layout.layer(chain).join("layer.json");
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(crate::archive::parse_json(
            "layer metadata",
            &chain.to_string(),
            &bytes,
        )?)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io("reading", &path)(err)),
    }
}

/// The `fs` directories below a layer whose parent is `parent`, topmost first.
pub fn lower_dirs(layout: &Layout, parent: Option<&Digest>) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    let mut next = parent.cloned();
    while let Some(chain) = next {
        let meta = read_meta(layout, &chain)?
            .ok_or_else(|| Error::InvalidRootfs(format!("parent layer {chain} is not unpacked")))?;
        dirs.push(fs_dir(layout, &chain));
        next = meta.parent;
    }
    Ok(dirs)
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn digest(self) -> Digest {
        Digest::from_sha256(self.hasher.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
