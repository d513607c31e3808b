//! What the unpacker reads from a tar entry besides its data, and the few file-system calls
//! the standard library does not offer (mtime without following symlinks, xattrs).

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::sys::time::TimeSpec;

use super::OVERLAY_OPAQUE_XATTR;

/// Ownership, mode, time and xattrs of an entry, with PAX records taking precedence over the
/// header's (narrower) fields.
pub(super) struct EntryMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: SystemTime,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryMeta {
    pub(super) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Self> {
        let header = entry.header();
        let mut uid = header.uid()?;
        let mut gid = header.gid()?;
        let mode = header.mode()? & 0o7777;
        let mut mtime_secs = header.mtime()?;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let Ok(key) = ext.key() else { continue };
                let number = || {
                    ext.value()
                        .ok()
                        .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
                };
                match key {
                    "uid" => uid = number().unwrap_or(uid),
                    "gid" => gid = number().unwrap_or(gid),
                    "mtime" => mtime_secs = number().unwrap_or(mtime_secs),
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        let to_id = |v: u64| {
            u32::try_from(v).map_err(|_| io::Error::other(format!("uid/gid {v} out of range")))
        };
        Ok(Self {
            uid: to_id(uid)?,
            gid: to_id(gid)?,
            mode,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_secs),
            xattrs,
        })
    }
}

pub(super) fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

pub(super) fn is_opaque(dir: &Path) -> bool {
    get_xattr(dir, OVERLAY_OPAQUE_XATTR).is_some_and(|v| v == b"y")
}

pub(super) fn set_times_nofollow(path: &Path, mtime: SystemTime) -> io::Result<()> {
    let since = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let ts = TimeSpec::from_duration(since);
    nix::sys::stat::utimensat(
        None,
        path,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

pub(super) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let c_name = CString::new(name)?;
    // SAFETY: both strings are valid NUL-terminated C strings that outlive the call, and
    // `value` is a live slice whose pointer and length describe readable memory.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = CString::new(name).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: valid NUL-terminated strings; `buf` is writable for `buf.len()` bytes.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    usize::try_from(n).ok().map(|n| buf[..n].to_vec())
}
