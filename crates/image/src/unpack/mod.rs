//! Unpacks one layer tar into its own directory, in the form overlayfs stacks: whiteouts become
//! 0/0 character devices and opaque directories carry `trusted.overlay.opaque=y`.
//!
//! The unpacker treats every archive as hostile. It never follows a symlink on the host: each
//! parent directory is checked with `lstat` before anything is created in it. It refuses
//! entries with `..` or absolute paths, relative symlinks that climb out of the layer, hardlinks
//! to anything but an earlier entry of the same layer, writes that would pass through a symlink
//! placed by an earlier layer, device nodes (unless allowed), and `trusted.*` xattrs (which
//! could forge overlayfs metadata).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_types::Digest;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use tar::EntryType;

use crate::error::{Error, Result};

mod entry;

use entry::{EntryMeta, is_opaque, is_whiteout, set_times_nofollow, set_xattr};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What an unpack may create.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Create character and block device nodes found in the layer. Off by default: the runtime
    /// makes a container's /dev, and a device node in an image grants access to host hardware.
    pub allow_devices: bool,
}

/// What an unpack produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Unpacks the (already decompressed) tar stream `reader` into `dest`, an empty directory.
/// `lowers` are the `fs` directories of the layers below this one, topmost first. `layer`
/// names the layer in errors. On error `dest` is left half-filled: it is scratch space the
/// caller discards.
pub fn unpack(
    reader: &mut dyn Read,
    dest: &Path,
    lowers: &[PathBuf],
    layer: &Digest,
    policy: Policy,
) -> Result<Stats> {
    let mut unpacker = Unpacker {
        dest,
        lowers,
        layer,
        policy,
        known_dirs: HashSet::new(),
        dir_times: Vec::new(),
        stats: Stats::default(),
        buffer: vec![0; 256 * 1024],
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|source| unpacker.bad_stream(source))?;
    for entry in entries {
        let mut entry = entry.map_err(|source| unpacker.bad_stream(source))?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish()
}

struct Unpacker<'a> {
    dest: &'a Path,
    lowers: &'a [PathBuf],
    layer: &'a Digest,
    policy: Policy,
    /// Directories (relative to `dest`) known to exist as real directories in this layer.
    known_dirs: HashSet<PathBuf>,
    /// Directory mtimes, applied last: creating children changes a directory's mtime.
    dir_times: Vec<(PathBuf, SystemTime)>,
    stats: Stats,
    buffer: Vec<u8>,
}

/// What a path is in the merged view of the lower layers.
#[derive(Debug, PartialEq, Eq)]
enum Merged {
    Missing,
    Dir,
    Symlink,
    Other,
}

impl Unpacker<'_> {
    fn bad_stream(&self, source: io::Error) -> Error {
        Error::BadLayerStream {
            layer: self.layer.clone(),
            format: "tar",
            source,
        }
    }

    fn hostile(&self, entry: &Path, reason: impl Into<String>) -> Error {
        Error::HostileEntry {
            layer: self.layer.clone(),
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    fn io_err(&self, entry: &Path, what: &str, err: impl std::fmt::Display) -> Error {
        self.hostile(entry, format!("{what}: {err}"))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw = entry.path().map_err(|e| self.bad_stream(e))?.into_owned();
        let rel = self.clean(&raw, "path")?;
        self.stats.entries += 1;
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            // The archive's root directory ("./"): the layer directory already exists.
            return Ok(());
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();

        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&raw, &parent, hidden);
        }
        self.ensure_dir_chain(&raw, &parent)?;
        let path = self.dest.join(&rel);
        let meta = EntryMeta::read(entry).map_err(|e| self.bad_stream(e))?;

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(&raw, &path, entry, &meta)?;
            }
            EntryType::Directory => self.directory(&raw, &rel, &meta)?,
            EntryType::Symlink => self.symlink(&raw, &rel, entry, &meta)?,
            EntryType::Link => self.hardlink(&raw, &path, entry)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.special(&raw, &path, kind, entry, &meta)?;
            }
            other => {
                return Err(self.hostile(&raw, format!("unsupported tar entry type {other:?}")));
            }
        }
        if !matches!(kind, EntryType::Directory) {
            self.forget_dirs_under(&rel);
        }
        Ok(())
    }

    /// Turns an archive path into a relative path of normal components, or refuses it.
    fn clean(&self, raw: &Path, what: &str) -> Result<PathBuf> {
        let bytes = raw.as_os_str().as_bytes();
        if bytes.first() == Some(&b'/') {
            return Err(self.hostile(raw, format!("absolute {what} is not allowed in a layer")));
        }
        let mut clean = PathBuf::new();
        for part in bytes.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    return Err(
                        self.hostile(raw, format!("{what} with '..' is not allowed in a layer"))
                    );
                }
                part => clean.push(OsStr::from_bytes(part)),
            }
        }
        Ok(clean)
    }

    /// Makes sure `rel` (relative to the layer) is a real directory in this layer, creating
    /// missing components. Never follows a symlink; refuses to create a directory where the
    /// layers below have a symlink, since the write would land elsewhere once stacked.
    fn ensure_dir_chain(&mut self, raw: &Path, rel: &Path) -> Result<()> {
        if rel.as_os_str().is_empty() || self.known_dirs.contains(rel) {
            return Ok(());
        }
        let mut prefix = PathBuf::new();
        for component in rel.components() {
            prefix.push(component);
            if self.known_dirs.contains(&prefix) {
                continue;
            }
            let full = self.dest.join(&prefix);
            match fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(self.hostile(
                        raw,
                        format!(
                            "parent {} is a symlink in this layer; refusing to write through it",
                            prefix.display()
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(self.hostile(
                        raw,
                        format!("parent {} is not a directory", prefix.display()),
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    if self.merged_lower(&prefix) == Merged::Symlink {
                        return Err(self.hostile(
                            raw,
                            format!(
                                "{} is a symlink placed by an earlier layer; refusing to write through it",
                                prefix.display()
                            ),
                        ));
                    }
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(|e| self.io_err(raw, "creating parent directory", e))?;
                }
                Err(err) => return Err(self.io_err(raw, "inspecting parent", err)),
            }
            self.known_dirs.insert(prefix.clone());
        }
        Ok(())
    }

    /// What `rel` is once this layer's directories and the lower layers are stacked, looking
    /// only through real directories (never through a symlink) as overlayfs does.
    fn merged_lower(&self, rel: &Path) -> Merged {
        let mut stack: Vec<PathBuf> = std::iter::once(self.dest.to_path_buf())
            .chain(self.lowers.iter().cloned())
            .collect();
        let components: Vec<_> = rel.components().collect();
        let mut sub = PathBuf::new();
        for (i, component) in components.iter().enumerate() {
            sub.push(component);
            let last = i + 1 == components.len();
            let mut next = Vec::new();
            for layer in &stack {
                let path = layer.join(&sub);
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                let file_type = meta.file_type();
                if meta.is_dir() {
                    next.push(layer.clone());
                    if is_opaque(&path) {
                        break;
                    }
                    continue;
                }
                if !next.is_empty() {
                    break; // a non-directory below a directory ends the merge
                }
                if is_whiteout(&meta) {
                    return Merged::Missing;
                }
                if file_type.is_symlink() {
                    return Merged::Symlink;
                }
                return if last { Merged::Other } else { Merged::Missing };
            }
            if next.is_empty() {
                return Merged::Missing;
            }
            stack = next;
        }
        Merged::Dir
    }

    fn whiteout(&mut self, raw: &Path, parent: &Path, hidden: &[u8]) -> Result<()> {
        if hidden == &OPAQUE_MARKER.as_bytes()[WHITEOUT_PREFIX.len()..] {
            self.ensure_dir_chain(raw, parent)?;
            let dir = self.dest.join(parent);
            return set_xattr(&dir, OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|e| self.io_err(raw, "marking directory opaque", e));
        }
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` names are aufs bookkeeping (e.g. hardlink dirs); they carry no
            // meaning for an overlay layer.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.hostile(raw, "whiteout of an invalid name"));
        }
        self.ensure_dir_chain(raw, parent)?;
        let rel = parent.join(OsStr::from_bytes(hidden));
        let path = self.dest.join(&rel);
        self.remove_existing(raw, &path)?;
        self.forget_dirs_under(&rel);
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| self.io_err(raw, "creating whiteout", e))?;
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        raw: &Path,
        path: &Path,
        data: &mut R,
        meta: &EntryMeta,
    ) -> Result<()> {
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        };
        let file = match open() {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                self.remove_existing(raw, path)?;
                open().map_err(|e| self.io_err(raw, "creating file", e))?
            }
            Err(err) => return Err(self.io_err(raw, "creating file", err)),
        };
        let mut out = BufWriter::with_capacity(self.buffer.len(), file);
        loop {
            let n = match data.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.bad_stream(err)),
            };
            out.write_all(&self.buffer[..n])
                .map_err(|e| self.io_err(raw, "writing file", e))?;
            self.stats.bytes += n as u64;
        }
        let file = out
            .into_inner()
            .map_err(|e| self.io_err(raw, "writing file", e.error()))?;
        std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid))
            .map_err(|e| self.io_err(raw, "setting owner", e))?;
        // chmod after chown: chown clears set-id bits.
        file.set_permissions(fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.io_err(raw, "setting mode", e))?;
        file.set_modified(meta.mtime)
            .map_err(|e| self.io_err(raw, "setting mtime", e))?;
        self.xattrs(raw, path, meta)
    }

    fn directory(&mut self, raw: &Path, rel: &Path, meta: &EntryMeta) -> Result<()> {
        let path = self.dest.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(existing) if existing.is_dir() => {}
            Ok(_) => {
                self.remove_existing(raw, &path)?;
                fs::create_dir(&path).map_err(|e| self.io_err(raw, "creating directory", e))?;
            }
            Err(_) => {
                fs::create_dir(&path).map_err(|e| self.io_err(raw, "creating directory", e))?;
            }
        }
        std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
            .map_err(|e| self.io_err(raw, "setting owner", e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.io_err(raw, "setting mode", e))?;
        self.xattrs(raw, &path, meta)?;
        self.known_dirs.insert(rel.to_path_buf());
        self.dir_times.push((path, meta.mtime));
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        raw: &Path,
        rel: &Path,
        entry: &tar::Entry<'_, R>,
        meta: &EntryMeta,
    ) -> Result<()> {
        let target = entry
            .link_name()
            .map_err(|e| self.bad_stream(e))?
            .ok_or_else(|| self.hostile(raw, "symlink without a target"))?
            .into_owned();
        if target.as_os_str().is_empty() {
            return Err(self.hostile(raw, "symlink without a target"));
        }
        if escapes(rel, &target) {
            return Err(self.hostile(
                raw,
                format!(
                    "symlink target {} points outside the layer",
                    target.display()
                ),
            ));
        }
        let path = self.dest.join(rel);
        self.remove_existing(raw, &path)?;
        std::os::unix::fs::symlink(&target, &path)
            .map_err(|e| self.io_err(raw, "creating symlink", e))?;
        std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
            .map_err(|e| self.io_err(raw, "setting owner", e))?;
        set_times_nofollow(&path, meta.mtime).map_err(|e| self.io_err(raw, "setting mtime", e))
    }

    fn hardlink<R: Read>(
        &mut self,
        raw: &Path,
        path: &Path,
        entry: &tar::Entry<'_, R>,
    ) -> Result<()> {
        let target_raw = entry
            .link_name()
            .map_err(|e| self.bad_stream(e))?
            .ok_or_else(|| self.hostile(raw, "hardlink without a target"))?
            .into_owned();
        let target_rel = self.clean(&target_raw, "hardlink target")?;
        let target_parent = target_rel.parent().unwrap_or(Path::new(""));
        // The target must be reachable through real directories of this layer only.
        let mut prefix = PathBuf::new();
        for component in target_parent.components() {
            prefix.push(component);
            let is_dir = fs::symlink_metadata(self.dest.join(&prefix)).is_ok_and(|m| m.is_dir());
            if !is_dir {
                return Err(self.hostile(
                    raw,
                    format!(
                        "hardlink target {} is not an earlier entry of this layer",
                        target_raw.display()
                    ),
                ));
            }
        }
        let target = self.dest.join(&target_rel);
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                return Err(self.hostile(raw, "hardlink to a directory"));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(self.hostile(
                    raw,
                    format!(
                        "hardlink target {} is not an earlier entry of this layer",
                        target_raw.display()
                    ),
                ));
            }
        }
        if target == path {
            return Ok(());
        }
        self.remove_existing(raw, path)?;
        fs::hard_link(&target, path).map_err(|e| self.io_err(raw, "creating hardlink", e))
    }

    fn special<R: Read>(
        &mut self,
        raw: &Path,
        path: &Path,
        kind: EntryType,
        entry: &tar::Entry<'_, R>,
        meta: &EntryMeta,
    ) -> Result<()> {
        let (flag, dev) = match kind {
            EntryType::Fifo => (SFlag::S_IFIFO, 0),
            _ if !self.policy.allow_devices => {
                return Err(self.hostile(
                    raw,
                    "device nodes are not allowed in images (the runtime creates /dev)",
                ));
            }
            _ => {
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let flag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (flag, makedev(major.into(), minor.into()))
            }
        };
        self.remove_existing(raw, path)?;
        mknod(
            path,
            flag,
            Mode::from_bits_truncate(meta.mode & 0o7777),
            dev,
        )
        .map_err(|e| self.io_err(raw, "creating special file", e))?;
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|e| self.io_err(raw, "setting owner", e))
    }

    /// Removes whatever is at `path` in this layer (an earlier entry being replaced).
    fn remove_existing(&self, raw: &Path, path: &Path) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => crate::fsutil::remove_tree(path),
            Ok(_) => fs::remove_file(path).map_err(|e| self.io_err(raw, "replacing entry", e)),
            Err(_) => Ok(()),
        }
    }

    fn forget_dirs_under(&mut self, rel: &Path) {
        if self.known_dirs.contains(rel) {
            self.known_dirs.retain(|dir| !dir.starts_with(rel));
        }
    }

    fn xattrs(&self, raw: &Path, path: &Path, meta: &EntryMeta) -> Result<()> {
        for (name, value) in &meta.xattrs {
            let allowed = name.starts_with("user.") || name == "security.capability";
            if !allowed {
                if name.starts_with("trusted.") {
                    return Err(
                        self.hostile(raw, format!("xattr {name} is not allowed in a layer"))
                    );
                }
                tracing::debug!(entry = %raw.display(), xattr = %name, "skipping xattr");
                continue;
            }
            set_xattr(path, name, value).map_err(|e| self.io_err(raw, "setting xattr", e))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Stats> {
        for (dir, mtime) in self.dir_times.iter().rev() {
            set_times_nofollow(dir, *mtime).map_err(Error::io("setting mtime of", dir))?;
        }
        Ok(self.stats)
    }
}

/// Whether a relative symlink at `link` (a path inside the layer) climbs above the layer root.
/// Absolute targets are resolved against the container's root at run time, so they stay inside.
fn escapes(link: &Path, target: &Path) -> bool {
    let bytes = target.as_os_str().as_bytes();
    if bytes.first() == Some(&b'/') {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for part in bytes.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests;
