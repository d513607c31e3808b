//! Where an import reads from: a directory or a tar archive holding an OCI image layout or a
//! `docker save` export. A tar is indexed once by seeking over its headers, so blobs stream
//! straight out of it without first copying the archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Files of an image archive, by their archive-relative name.
pub trait Source {
    /// Opens `name` for reading and returns it with its size, or `None` if it is not there.
    fn open(&mut self, name: &str) -> Result<Option<(Box<dyn Read + '_>, u64)>>;

    /// The archive's path, for messages.
    fn path(&self) -> &Path;

    /// Reads a small file whole; `None` if absent. Refuses files over `limit` bytes.
    fn read_small(&mut self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path().to_path_buf();
        let Some((reader, size)) = self.open(name)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(Error::BadArchive {
                path,
                source: io::Error::other(format!(
                    "{name} is {size} bytes, over the {limit}-byte limit"
                )),
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", path.join(name)))?;
        Ok(Some(bytes))
    }
}

/// Normalizes an archive-relative name: no leading `./` or `/`, no `..`, no empty components.
pub fn clean_name(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Checks that `file` starts with a tar header (by its checksum), so that a file of another
/// kind gets a plain answer instead of a parse error about its content.
fn check_tar_header(mut file: &File) -> io::Result<()> {
    const BLOCK: usize = 512;
    let mut header = [0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        match file.read(&mut header[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    let not_tar = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidData, why.to_owned()));
    if filled < BLOCK {
        return not_tar("not a tar archive: shorter than one tar header");
    }
    if header.starts_with(&[0x1f, 0x8b]) {
        return not_tar("this is a gzip file; decompress it first (gunzip) and import the tar");
    }
    let stored = std::str::from_utf8(&header[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let computed: u32 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum();
    if stored != Some(computed) {
        return not_tar("not a tar archive: the first block is not a valid tar header");
    }
    Ok(())
}

/// Resolves a symlink target relative to the directory `dir` holding the link, lexically;
/// `None` if it climbs out of the archive.
fn resolve_relative(dir: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An unpacked archive: a directory on disk.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
}

impl Source for DirSource {
    fn open(&mut self, name: &str) -> Result<Option<(Box<dyn Read + '_>, u64)>> {
        let Some(clean) = clean_name(name) else {
            return Err(Error::BadArchive {
                path: self.root.clone(),
                source: io::Error::other(format!("file name {name:?} leaves the archive")),
            });
        };
        let path = self.root.join(clean);
        match File::open(&path) {
            Ok(file) => {
                let meta = file.metadata().map_err(Error::io("inspecting", &path))?;
                if !meta.is_file() {
                    return Ok(None);
                }
                Ok(Some((Box::new(file), meta.len())))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io("opening", &path)(err)),
        }
    }

    fn path(&self) -> &Path {
        &self.root
    }
}

/// Where a file's bytes are inside a tar.
#[derive(Debug, Clone)]
enum TarItem {
    File {
        offset: u64,
        size: u64,
    },
    /// `docker save` links duplicate layers to the first copy.
    Link(String),
}

/// A tar archive, indexed by name.
#[derive(Debug)]
pub struct TarSource {
    path: PathBuf,
    file: File,
    items: HashMap<String, TarItem>,
}

/// How many symlinks deep a name is followed inside a tar before giving up.
const MAX_LINK_DEPTH: usize = 8;

impl TarSource {
    /// Indexes the tar at `path`. Fails if it is not a readable tar.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |source: io::Error| Error::BadArchive {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(Error::io("opening", path))?;
        let file_len = file
            .metadata()
            .map_err(Error::io("inspecting", path))?
            .len();
        check_tar_header(&file).map_err(bad)?;
        let mut items = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            let corrupt = |n: usize| {
                move |_| {
                    bad(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("corrupt or truncated tar archive: entry {n} cannot be read"),
                    ))
                }
            };
            for (n, entry) in archive.entries_with_seek().map_err(bad)?.enumerate() {
                let entry = entry.map_err(corrupt(n + 1))?;
                let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
                let Some(name) = clean_name(&name) else {
                    continue;
                };
                let header = entry.header();
                match header.entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let offset = entry.raw_file_position();
                        let size = entry.size();
                        if offset.saturating_add(size) > file_len {
                            return Err(bad(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!(
                                    "the archive is truncated: {name} ends past the end of the file"
                                ),
                            )));
                        }
                        items.insert(name, TarItem::File { offset, size });
                    }
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let target = entry.link_name().map_err(bad)?;
                        let Some(target) = target else { continue };
                        let target = target.to_string_lossy().into_owned();
                        let resolved = if header.entry_type() == tar::EntryType::Symlink {
                            let dir = name.rsplit_once('/').map_or("", |(dir, _)| dir);
                            resolve_relative(dir, &target)
                        } else {
                            clean_name(&target)
                        };
                        if let Some(resolved) = resolved {
                            items.insert(name, TarItem::Link(resolved));
                        }
                    }
                    _ => {}
                }
            }
        }
        if items.is_empty() {
            return Err(bad(io::Error::other(
                "no files in the archive (is it a tar?)",
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            items,
        })
    }

    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = clean_name(name)?;
        for _ in 0..MAX_LINK_DEPTH {
            match self.items.get(&name)? {
                TarItem::File { offset, size } => return Some((*offset, *size)),
                TarItem::Link(target) => name = target.clone(),
            }
        }
        None
    }
}

impl Source for TarSource {
    fn open(&mut self, name: &str) -> Result<Option<(Box<dyn Read + '_>, u64)>> {
        let Some((offset, size)) = self.locate(name) else {
            return Ok(None);
        };
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(Error::io("seeking in", &self.path))?;
        Ok(Some((Box::new((&self.file).take(size)), size)))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_escapes_refused() {
        assert_eq!(
            clean_name("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(clean_name("/index.json").as_deref(), Some("index.json"));
        assert_eq!(clean_name("a/../b"), None);
        assert_eq!(clean_name("./"), None);
        assert_eq!(
            resolve_relative("b", "../a/layer.tar").as_deref(),
            Some("a/layer.tar")
        );
        assert_eq!(resolve_relative("b", "../../x"), None);
    }

    #[test]
    fn tar_files_and_links_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("a.tar");
        let mut builder = tar::Builder::new(File::create(&tar_path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "./one/layer.tar", &b"hello"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "two/layer.tar", "../one/layer.tar")
            .unwrap();
        builder.finish().unwrap();
        drop(builder);

        let mut source = TarSource::open(&tar_path).unwrap();
        assert_eq!(
            source.read_small("two/layer.tar", 100).unwrap().unwrap(),
            b"hello"
        );
        assert!(source.read_small("missing", 100).unwrap().is_none());
        assert!(matches!(
            source.read_small("one/layer.tar", 2),
            Err(Error::BadArchive { .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_a_tar_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, vec![0x42; 4096]).unwrap();
        assert!(matches!(
            TarSource::open(&path),
            Err(Error::BadArchive { .. })
        ));
    }
}
