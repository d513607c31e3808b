//! The content-addressed blob store: `blobs/sha256/<hex>`. A blob appears under its digest
//! only after its content was verified and synced; until then it lives in scratch space.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use berth_types::{Digest, Sha256Writer};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::Layout;

/// What a blob is expected to be, from the descriptor that points at it.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub digest: &'a Digest,
    pub size: Option<u64>,
}

/// Access to the store's blobs.
#[derive(Debug, Clone)]
pub struct Blobs {
    layout: Layout,
}

impl Blobs {
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    /// Reads a small blob (manifest, config) whole, refusing anything over `limit` bytes.
    pub fn read_small(&self, digest: &Digest, what: &'static str, limit: u64) -> Result<Vec<u8>> {
        read_limited(&self.layout.blob(digest), digest, what, limit)
    }

    /// Moves a verified, synced file from scratch space to its place under `digest`. The
    /// caller syncs the blobs directory once it has published what it had.
    pub fn publish(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        let dest = self.layout.blob(digest);
        // rename(2) replaces an identical blob written concurrently by another import; both
        // have the same verified content, so readers never see a difference.
        fs::rename(tmp, &dest).map_err(Error::io("storing blob", &dest))
    }

    /// Copies `reader` into a new file in `scratch`, hashing it. Reads at most
    /// one byte past `size_limit`: enough to tell content is too long without copying an
    /// arbitrarily large stream. Returns the digest, size and file.
    pub fn stage(
        &self,
        reader: impl Read,
        size_limit: Option<u64>,
        scratch: &Path,
    ) -> Result<(Digest, u64, std::path::PathBuf)> {
        let tmp = scratch.join(format!("blob-{}", fsutil::random_suffix()));
        let file = File::create(&tmp).map_err(Error::io("creating", &tmp))?;
        let mut writer = Sha256Writer::new(BufWriter::with_capacity(256 * 1024, file));
        let mut limited = reader.take(size_limit.map_or(u64::MAX, |s| s.saturating_add(1)));
        let copied = io::copy(&mut limited, &mut writer).and_then(|_| writer.flush());
        if let Err(source) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Io {
                context: "copying blob into",
                path: tmp,
                source,
            });
        }
        let size = writer.written();
        let (digest, buffered) = writer.finish();
        // Not synced here: the transaction syncs the filesystem once before publishing.
        buffered
            .into_inner()
            .map_err(|e| Error::io("writing", &tmp)(e.into_error()))?;
        Ok((digest, size, tmp))
    }
}

/// Reads the blob `digest` stored at `path` whole, refusing anything over `limit` bytes.
pub fn read_limited(
    path: &Path,
    digest: &Digest,
    what: &'static str,
    limit: u64,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(limit + 1).read_to_end(&mut bytes))
        .map_err(Error::io("reading blob", path))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            digest: digest.clone(),
            what,
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Checks content against what its descriptor promised.
pub fn check(expected: Expected<'_>, actual: &Digest, size: u64) -> Result<()> {
    if let Some(want) = expected.size
        && want != size
    {
        return Err(Error::SizeMismatch {
            digest: expected.digest.clone(),
            expected: want,
            actual: size,
        });
    }
    if actual != expected.digest {
        return Err(Error::DigestMismatch {
            expected: expected.digest.clone(),
            actual: actual.clone(),
        });
    }
    Ok(())
}
