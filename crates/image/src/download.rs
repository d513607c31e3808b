//! Resumable, verified blob downloads.
//!
//! A blob being downloaded lives at `ingest/<hex>`, locked (flock) by the one process writing
//! it. The file always holds a prefix of the blob, so after a crash the next pull asks the
//! registry for the rest with a range request and hashes the prefix already there. Only once
//! the whole blob matches its digest and size is it handed to the pull's transaction, which
//! renames it into `blobs/` at commit: nothing unverified is ever visible under a digest. A
//! verified download stays in `ingest/` until then, so a pull that fails later (or is killed)
//! does not fetch it again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_types::Digest;
use futures_util::StreamExt;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::blob::{self, Expected};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::progress::Progress;
use crate::registry::Repository;

/// How often opening a partial file may race with another pull publishing it before giving up.
const MAX_LOCK_ATTEMPTS: usize = 8;

/// Locks the partial downloads of `digests` in sorted order, so that pulls sharing blobs never
/// wait on each other in a cycle; waits for pulls holding them. Blobs that a pull we waited
/// for published are left out. The locks are meant to be held until the pull committed.
pub(crate) async fn lock_all(
    layout: &Layout,
    digests: BTreeSet<Digest>,
) -> Result<BTreeMap<Digest, Partial>> {
    let mut locked = BTreeMap::new();
    for digest in digests {
        if let Some(partial) = lock_partial(&layout.ingest(&digest), &layout.blob(&digest)).await? {
            locked.insert(digest, partial);
        }
    }
    Ok(locked)
}

/// Completes the download of blob `digest` of `size` bytes from `repository` into `partial`,
/// resuming from what it holds, and verifies it. A download found corrupt is removed.
pub(crate) async fn fetch(
    partial: &Partial,
    repository: &Repository,
    digest: &Digest,
    size: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let verified = loop {
        let resumed_from = partial.len()?;
        match download(repository, partial, digest, size, progress).await {
            // A partial file that does not add up (e.g. after a power loss) is started over once.
            Err(Error::DigestMismatch { .. } | Error::SizeMismatch { .. }) if resumed_from > 0 => {
                tracing::warn!(%digest, resumed_from, "resumed download is corrupt; downloading it again");
                partial.truncate()?;
            }
            other => break other,
        }
    };
    if let Err(err) = verified {
        if matches!(
            err,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. }
        ) {
            let _ = std::fs::remove_file(&partial.path);
        }
        return Err(err);
    }
    progress.finished(digest, "downloaded");
    Ok(())
}

/// Downloads the rest of the blob into `partial`, then checks the whole file against the
/// digest and size.
async fn download(
    repository: &Repository,
    partial: &Partial,
    digest: &Digest,
    size: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let mut written = partial.len()?;
    if written > size {
        partial.truncate()?;
        written = 0;
    }
    progress.started(digest, "downloading", Some(size));
    let mut hasher = Sha256::new();
    if written > 0 {
        hash_prefix(partial, written, &mut hasher)?;
        progress.advanced(digest, written);
    }
    let mut file =
        tokio::fs::File::from_std(partial.file.try_clone().map_err(partial.io("opening"))?);
    if written < size {
        let mut body = repository.blob(digest, written).await?;
        if body.offset != written {
            // The registry ignored the range request and sends the whole blob.
            partial.truncate()?;
            written = 0;
            hasher = Sha256::new();
            progress.started(digest, "downloading", Some(size));
        }
        file.seek(io::SeekFrom::Start(written))
            .await
            .map_err(partial.io("seeking in"))?;
        while let Some(chunk) = body.stream.stream.next().await {
            let bytes = match chunk {
                Ok(bytes) => bytes,
                // oci-client checks a whole-blob response itself and reports a mismatch as a
                // stream error after the last byte; berth's own check below names it better.
                Err(err) if is_digest_error(&err) => break,
                Err(source) => {
                    return Err(Error::Download {
                        digest: digest.clone(),
                        source,
                    });
                }
            };
            let len = bytes.len() as u64;
            if written + len > size {
                return Err(Error::SizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: written + len,
                });
            }
            file.write_all(&bytes)
                .await
                .map_err(partial.io("writing"))?;
            hasher.update(&bytes);
            written += len;
            progress.advanced(digest, len);
        }
    }
    // Not synced here: the transaction syncs the filesystem once before publishing.
    file.flush().await.map_err(partial.io("writing"))?;
    let actual = Digest::from_sha256(hasher.finalize().into());
    blob::check(
        Expected {
            digest,
            size: Some(size),
        },
        &actual,
        written,
    )
}

fn is_digest_error(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| {
        inner
            .downcast_ref::<oci_client::errors::DigestError>()
            .is_some()
    })
}

/// Feeds the first `len` bytes of the partial file to `hasher`.
fn hash_prefix(partial: &Partial, len: u64, hasher: &mut Sha256) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0;
    while offset < len {
        let want = buf
            .len()
            .min(usize::try_from(len - offset).unwrap_or(usize::MAX));
        let n = partial
            .file
            .read_at(&mut buf[..want], offset)
            .map_err(partial.io("reading"))?;
        if n == 0 {
            return Err(partial.io("reading")(io::ErrorKind::UnexpectedEof.into()));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(())
}

/// An `ingest/<hex>` file this process holds the lock on.
#[derive(Debug)]
pub(crate) struct Partial {
    path: PathBuf,
    file: Flock<File>,
}

impl Partial {
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(self.io("inspecting"))?.len())
    }

    fn truncate(&self) -> Result<()> {
        self.file.set_len(0).map_err(self.io("truncating"))
    }

    fn io(&self, context: &'static str) -> impl FnOnce(io::Error) -> Error {
        Error::io(context, &self.path)
    }
}

/// Opens and locks the partial file `path`, waiting for a pull that holds it. Returns `None`
/// if the blob is in the store (at `stored`) by then: that pull finished it.
async fn lock_partial(path: &Path, stored: &Path) -> Result<Option<Partial>> {
    for _ in 0..MAX_LOCK_ATTEMPTS {
        if stored.is_file() {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("opening partial download", path))?;
        let locked =
            tokio::task::spawn_blocking(move || Flock::lock(file, FlockArg::LockExclusive))
                .await
                .map_err(|join| Error::io("locking", path)(io::Error::other(join)))?
                .map_err(|(_, errno)| Error::io("locking", path)(errno.into()))?;
        // The pull we waited for may have published the file we opened: the lock is then on the
        // blob itself, which must not be written to.
        if stored.is_file() {
            return Ok(None);
        }
        let ours = locked.metadata().map_err(Error::io("inspecting", path))?;
        let current = std::fs::metadata(path).ok();
        if current.is_some_and(|m| m.ino() == ours.ino() && m.dev() == ours.dev()) {
            return Ok(Some(Partial {
                path: path.to_path_buf(),
                file: locked,
            }));
        }
    }
    Err(Error::io("locking", path)(io::Error::other(
        "the partial download kept being replaced by another pull",
    )))
}
