//! Small file helpers: atomic writes and an exclusive lock file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::NetError;

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. Readers see the old content or the new, never a torn file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(NetError::io("create", &tmp))?;
    file.write_all(bytes).map_err(NetError::io("write", &tmp))?;
    file.sync_all().map_err(NetError::io("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(NetError::io("rename into", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(NetError::io("sync", dir))
}

/// Holds an exclusive flock on `<dir>/.lock` until dropped, serializing writers of `dir`
/// across threads and processes.
pub(crate) fn lock_dir(dir: &Path) -> Result<Flock<File>, NetError> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(NetError::io("open", &path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| NetError::Io {
        action: "lock",
        path,
        source: errno.into(),
    })
}

/// Creates `dir` and its parents.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), NetError> {
    fs::create_dir_all(dir).map_err(NetError::io("create directory", dir))
}
