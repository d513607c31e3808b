//! Placing a value as a file in a container's root filesystem, from the host.
//!
//! The rootfs is the container's overlay mount as the host sees it: the same superblock the
//! container sees, so a rename(2) in it is atomic for readers inside the container, who see
//! the old file or the new one, never a partial one. Paths are resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink the container (or its image) put on the way
//! resolves inside the rootfs as it would inside the container, never to a host path.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2, renameat};
use nix::sys::stat::{Mode, mkdirat};

/// Why a value could not be placed or read.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path} in the container's root filesystem: {source}")]
pub struct PlaceError {
    pub action: &'static str,
    pub path: String,
    pub source: std::io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> PlaceError + 'a {
    move |errno| PlaceError {
        action,
        path: path.display().to_string(),
        source: std::io::Error::from(errno),
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> PlaceError + 'a {
    move |source| PlaceError {
        action,
        path: path.display().to_string(),
        source,
    }
}

fn open_in_root(root: &OwnedFd, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_raw_fd(), path, how)?;
    // SAFETY: openat2 just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_root(rootfs: &Path) -> Result<OwnedFd, PlaceError> {
    let file = File::open(rootfs).map_err(io_err("open", rootfs))?;
    Ok(OwnedFd::from(file))
}

/// The target's parent directory, created (0755) where missing, each step resolved in the
/// rootfs.
fn parent_dir(root: &OwnedFd, target: &Path) -> Result<OwnedFd, PlaceError> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    let mut dir = open_in_root(root, Path::new("/"), OFlag::O_DIRECTORY | OFlag::O_PATH)
        .map_err(err("open", Path::new("/")))?;
    let mut walked = std::path::PathBuf::from("/");
    for component in parent.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        walked.push(name);
        dir = match open_in_root(root, &walked, OFlag::O_DIRECTORY | OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(err("create", &walked)(errno)),
                }
                open_in_root(root, &walked, OFlag::O_DIRECTORY | OFlag::O_PATH)
                    .map_err(err("open", &walked))?
            }
            Err(errno) => return Err(err("open", &walked)(errno)),
        };
    }
    Ok(dir)
}

/// Replaces `target` (absolute, normal: see [`crate::ConfigFile`]) in `rootfs` with
/// `value` and `mode`, atomically: the value goes to a temp file in the target's directory,
/// which is synced and renamed over the target. Missing parent directories are created.
pub fn write_atomic(
    rootfs: &Path,
    target: &Path,
    value: &[u8],
    mode: u32,
) -> Result<(), PlaceError> {
    let root = open_root(rootfs)?;
    let dir = parent_dir(&root, target)?;
    let name = target
        .file_name()
        .ok_or_else(|| err("place", target)(Errno::EINVAL))?;
    let tmp_name = format!(".{}.berth-config.tmp", name.to_string_lossy());
    let tmp = Path::new(&tmp_name);
    let create = OpenHow::new()
        .flags(
            OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_WRONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC,
        )
        .mode(Mode::from_bits_truncate(0o600))
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd =
        openat2(dir.as_raw_fd(), tmp, create).map_err(err("create a temp file for", target))?;
    // SAFETY: openat2 just returned this fd; nothing else owns it.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let written = file
        .write_all(value)
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        return Err(io_err("write", target)(source));
    }
    renameat(Some(dir.as_raw_fd()), tmp, Some(dir.as_raw_fd()), name)
        .map_err(err("rename over", target))
}

/// The content of `target` in `rootfs` (resolved in the rootfs); `None` when it does not
/// exist.
pub fn read(rootfs: &Path, target: &Path) -> Result<Option<Vec<u8>>, PlaceError> {
    let root = open_root(rootfs)?;
    match open_in_root(&root, target, OFlag::O_RDONLY | OFlag::O_NOFOLLOW) {
        Ok(fd) => {
            let mut bytes = Vec::new();
            File::from(fd)
                .read_to_end(&mut bytes)
                .map_err(io_err("read", target))?;
            Ok(Some(bytes))
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(err("open", target)(errno)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_value_replaces_the_file_and_creates_its_directories() {
        let root = tempfile::tempdir().unwrap();
        let target = Path::new("/etc/app/conf");
        write_atomic(root.path(), target, b"one", 0o640).unwrap();
        let host = root.path().join("etc/app/conf");
        assert_eq!(std::fs::read(&host).unwrap(), b"one");
        assert_eq!(
            std::fs::metadata(&host).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        write_atomic(root.path(), target, b"two!", 0o444).unwrap();
        assert_eq!(read(root.path(), target).unwrap().unwrap(), b"two!");
        let names: Vec<_> = std::fs::read_dir(root.path().join("etc/app"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["conf"], "no temp file left");
        assert_eq!(read(root.path(), Path::new("/nope")).unwrap(), None);
    }

    #[test]
    fn symlinks_resolve_inside_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        // An absolute link to a host directory means that directory *inside* the rootfs.
        symlink(outside.path(), root.path().join("etc")).unwrap();
        let inside_dir = root.path().join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside_dir).unwrap();
        write_atomic(root.path(), Path::new("/etc/conf"), b"v", 0o444).unwrap();
        assert!(!outside.path().join("conf").exists(), "escaped the rootfs");
        let inside = root
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("conf");
        assert_eq!(std::fs::read(inside).unwrap(), b"v");
        // A relative link climbing out stops at the rootfs's root.
        symlink("../../../../../../..", root.path().join("up")).unwrap();
        write_atomic(root.path(), Path::new("/up/x"), b"w", 0o444).unwrap();
        assert_eq!(std::fs::read(root.path().join("x")).unwrap(), b"w");
    }
}
