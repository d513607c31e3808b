//! The media types berth understands, and how layer streams are compressed.

use std::io::{self, BufRead, BufReader, Read};

use berth_types::Digest;

use crate::error::{Error, Result};

/// Largest manifest, index or config berth reads into memory (as containerd's limit).
pub const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;
/// How many image indexes deep a reference may lead before the image is refused.
pub const MAX_INDEX_DEPTH: usize = 4;

/// Refuses a manifest, index or config whose descriptor says it is over
/// [`MAX_METADATA_BYTES`], before any of it is read.
pub fn check_metadata_size(digest: &Digest, what: &'static str, size: u64) -> Result<()> {
    if size > MAX_METADATA_BYTES {
        return Err(Error::TooLarge {
            digest: digest.clone(),
            what,
            size,
            limit: MAX_METADATA_BYTES,
        });
    }
    Ok(())
}

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What a descriptor's media type says the blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
}

/// Classifies a manifest-level media type; `None` for anything that is neither.
pub fn manifest_kind(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Manifest),
        _ => None,
    }
}

pub fn is_config(media_type: &str) -> bool {
    matches!(media_type, OCI_CONFIG | DOCKER_CONFIG)
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "tar",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// The compression a layer media type declares; `None` if it is not a layer type berth can
/// unpack (foreign/non-distributable layers are refused: berth never fetches from URLs).
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        OCI_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Wraps `reader` in the decompressor the stream's magic bytes call for. The magic wins over
/// the media type: some registries mislabel gzip layers, and a plain tar never starts with
/// either magic.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Compression::Gzip,
            Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        ))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok((
            Compression::Zstd,
            Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        ))
    } else {
        Ok((Compression::None, Box::new(reader)))
    }
}
