//! Small filesystem primitives the store is built on: atomic file replacement, advisory locks,
//! and private scratch directories that a crashed process leaves for the next one to clean.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rand::Rng;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers see either the old content or all of the new:
/// write to a temp file in `tmp_dir` (same filesystem), fsync, rename over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<()> {
    let tmp = tmp_dir.join(format!(".write-{}", random_suffix()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(Error::io("creating", &tmp))?;
        file.write_all(bytes).map_err(Error::io("writing", &tmp))?;
        file.sync_all().map_err(Error::io("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(Error::io("renaming into place", path))?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs the directory holding `path`, so a rename into it survives a power loss.
pub fn sync_parent(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::io("syncing directory", parent))
}

/// fsyncs a directory, so renames into it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing directory", dir))
}

/// A random 16-hex-character suffix for temp names.
pub fn random_suffix() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// An advisory lock (flock) on a file, released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _lock: Flock<File>,
}

/// Takes a shared or exclusive flock on `path`, creating the file if needed; blocks until granted.
pub fn lock(path: &Path, exclusive: bool) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    let lock = Flock::lock(file, arg).map_err(|(_, errno)| Error::Io {
        context: "locking",
        path: path.to_path_buf(),
        source: errno.into(),
    })?;
    Ok(LockGuard { _lock: lock })
}

/// Like [`lock`] with `exclusive`, but returns `None` instead of waiting when it is held.
pub fn try_lock_exclusive(path: &Path) -> Result<Option<LockGuard>> {
    let file = open_lock_file(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(LockGuard { _lock: lock })),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(Error::Io {
            context: "locking",
            path: path.to_path_buf(),
            source: errno.into(),
        }),
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("opening lock", path))
}

/// A private directory under the store's `tmp/`, locked for as long as it lives and removed
/// on drop. A process killed while holding one leaves it unlocked, so [`clean_scratch`] can
/// tell abandoned scratch space from space a live operation is using.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Scratch {
    pub fn new(tmp_dir: &Path) -> Result<Self> {
        let path = tmp_dir.join(random_suffix());
        fs::create_dir(&path).map_err(Error::io("creating scratch directory", &path))?;
        let dir = File::open(&path).map_err(Error::io("opening scratch directory", &path))?;
        let lock =
            Flock::lock(dir, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| Error::Io {
                context: "locking scratch directory",
                path: path.clone(),
                source: errno.into(),
            })?;
        Ok(Self { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = remove_tree(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "could not remove scratch directory");
        }
    }
}

/// Removes everything in `tmp_dir` that no live process has locked. Returns how many entries
/// were removed.
pub fn clean_scratch(tmp_dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = fs::read_dir(tmp_dir).map_err(Error::io("listing", tmp_dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", tmp_dir))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            let Ok(dir) = File::open(&path) else { continue };
            // A live operation holds this lock; skip its directory.
            let Ok(_lock) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) else {
                continue;
            };
            remove_tree(&path)?;
        } else {
            fs::remove_file(&path).map_err(Error::io("removing", &path))?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// Removes a directory tree, first making read-only directories writable (an image may ship
/// directories with mode 0555) so that nothing a layer contains can make it unremovable.
pub fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_dirs_writable(path);
            match fs::remove_dir_all(path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io("removing", path)(err))
                }
                _ => Ok(()),
            }
        }
    }
}

fn make_dirs_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_dirs_writable(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_of_a_live_operation_survives_cleaning_and_abandoned_scratch_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let live = Scratch::new(tmp.path()).unwrap();
        let abandoned = tmp.path().join("abandoned");
        fs::create_dir_all(abandoned.join("deep")).unwrap();
        fs::write(tmp.path().join(".write-stale"), b"x").unwrap();

        assert_eq!(clean_scratch(tmp.path()).unwrap(), 2);
        assert!(live.path().exists());
        assert!(!abandoned.exists());

        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }

    #[test]
    fn atomic_write_replaces_whole_content() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("f");
        write_atomic(&target, b"one", tmp.path()).unwrap();
        write_atomic(&target, b"two", tmp.path()).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
