//! How long operations report progress, so the CLI can draw bars and the daemon can stream
//! events without the store knowing about either.

use std::io::{self, Read};

use berth_types::Digest;

/// Receives progress of blob copies, downloads and layer unpacks. Every method has a no-op
/// default; implement the ones you show.
pub trait Progress: Sync {
    /// Work on `blob` started; `total` bytes are expected when known.
    fn started(&self, _blob: &Digest, _action: &str, _total: Option<u64>) {}
    /// `bytes` more bytes of `blob` were processed.
    fn advanced(&self, _blob: &Digest, _bytes: u64) {}
    /// Work on `blob` ended with `outcome` (e.g. "already exists", "done").
    fn finished(&self, _blob: &Digest, _outcome: &str) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A reader that reports the bytes read through it.
pub(crate) struct Counting<'a, R> {
    pub inner: R,
    pub blob: &'a Digest,
    pub progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advanced(self.blob, n as u64);
        Ok(n)
    }
}
