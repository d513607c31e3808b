//! Unpacked layers: `layers/sha256/<chain-id>/fs`, one directory per layer stacked on its
//! parents, created once and shared by every image whose layers start the same way.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use berth_types::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::media;
use crate::progress::{Counting, Progress};
use crate::unpack::{self, Policy};

/// The metadata file beside a layer's `fs` directory; its presence marks a complete layer.
pub const META_FILE: &str = "layer.json";

/// `layers/sha256/<chain-id>/layer.json`: what a layer directory holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub blob: Digest,
    pub entries: u64,
    pub bytes: u64,
}

impl LayerMeta {
    pub fn unpacked(&self, chain_id: Digest) -> Unpacked {
        Unpacked {
            diff_id: self.diff_id.clone(),
            chain_id,
            bytes: self.bytes,
        }
    }
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

/// A layer unpacked in the store or in a staging area.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub diff_id: Digest,
    pub chain_id: Digest,
    pub bytes: u64,
}

/// The `fs` directory of a published layer.
pub fn fs_dir(layout: &Layout, chain_id: &Digest) -> PathBuf {
    layout.layer(chain_id).join("fs")
}

/// Unpacks the layer blob at `blob_path` into `dest/fs` and writes `dest/layer.json`.
/// `lowers` are the `fs` directories of the layers below, topmost first. The uncompressed
/// stream is hashed as it is unpacked and must match `expected` when given.
#[allow(clippy::too_many_arguments)]
pub fn unpack_into(
    blob: &Digest,
    blob_path: &Path,
    dest: &Path,
    lowers: &[PathBuf],
    expected: Option<&Digest>,
    parent: Option<&Digest>,
    policy: Policy,
    progress: &dyn Progress,
) -> Result<Unpacked> {
    let fs_path = dest.join("fs");
    fs::create_dir(&fs_path).map_err(Error::io("creating", &fs_path))?;
    let file = fs::File::open(blob_path).map_err(Error::io("opening blob", blob_path))?;
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
        unpack::unpack(&mut hashing, &fs_path, lowers, blob, policy).map_err(|err| match err {
            // A stream error under the tar reader is usually the decompressor's.
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
    let meta_path = dest.join(META_FILE);
    fs::write(&meta_path, meta_bytes).map_err(Error::io("writing", &meta_path))?;
    progress.finished(blob, "unpacked");
    Ok(Unpacked {
        diff_id,
        chain_id: chain,
        bytes: stats.bytes,
    })
}

/// Reads the metadata of the layer directory `dir`.
pub fn read_meta_at(dir: &Path, chain: &Digest) -> Result<LayerMeta> {
    let path = dir.join(META_FILE);
    let bytes = fs::read(&path).map_err(Error::io("reading", &path))?;
    crate::archive::parse_json("layer metadata", &chain.to_string(), &bytes)
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
