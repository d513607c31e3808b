//! Pinned network namespaces: a namespace kept alive by a bind mount of its nsfs file, as
//! `ip netns add` does, so it outlives the thread that made it and can be handed to CNI
//! plugins and to the runtime by path.
//!
//! The namespace is made on a short-lived thread (`unshare(CLONE_NEWNET)` changes only the
//! calling thread), and code runs inside one on a dedicated thread too ([`run_in`]), so the
//! caller's threads never change namespace.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::NetError;

fn netns_error(path: &Path, reason: impl std::fmt::Display) -> NetError {
    NetError::Netns {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Creates a new network namespace pinned at `path` (the file must not exist), with its
/// loopback interface up (what the CNI `loopback` plugin does, without an exec). On
/// failure nothing is left at `path`.
pub fn create(path: &Path) -> Result<(), NetError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(NetError::io("create directory", dir))?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| netns_error(path, format!("creating the mount point: {e}")))?;
    let target = path.to_owned();
    let pinned = std::thread::spawn(move || -> Result<(), String> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        loopback_up().map_err(|e| format!("bringing loopback up: {e}"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind-mounting the namespace: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("the namespace thread panicked".to_owned()));
    if let Err(reason) = pinned {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(path);
        return Err(netns_error(path, reason));
    }
    Ok(())
}

/// Sets `lo` up in the calling thread's network namespace (SIOCGIFFLAGS, SIOCSIFFLAGS).
fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) has no memory arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a socket just opened and owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: req is a valid ifreq naming an interface; the kernel fills ifru_flags.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so ifru_flags is the member the kernel wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: req is the valid ifreq read above with IFF_UP added.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unpins and removes the namespace at `path`; the namespace itself goes away with its last
/// process. A path that does not exist is not an error.
pub fn remove(path: &Path) -> Result<(), NetError> {
    if !path.exists() {
        return Ok(());
    }
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(netns_error(path, format!("unmounting: {e}"))),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(netns_error(path, format!("removing: {e}"))),
    }
}

/// Runs `f` on a new thread that has joined the namespace at `path`, and returns what it
/// returns. The calling thread's namespace is untouched.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = File::open(path).map_err(|e| netns_error(path, format!("opening: {e}")))?;
    let path_owned: PathBuf = path.to_owned();
    std::thread::spawn(move || -> Result<T, NetError> {
        setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| netns_error(&path_owned, format!("setns: {e}")))?;
        Ok(f())
    })
    .join()
    .unwrap_or_else(|_| {
        Err(netns_error(
            path,
            "the thread running in the namespace panicked",
        ))
    })
}

/// Whether `path` is a pinned network namespace (an nsfs bind mount), not a plain file.
pub fn is_pinned(path: &Path) -> bool {
    use nix::sys::statfs::{NSFS_MAGIC, statfs};
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}
