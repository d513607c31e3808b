//! The image store's errors. Each variant names what was wrong (path, digest, entry) so the
//! CLI can print it as is.

use std::io;
use std::path::PathBuf;

use berth_types::{Digest, DigestError, ImageRefError};

/// Result of image store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "image store at {path} has layout version {found}, this berth understands version {supported}"
    )]
    UnsupportedLayout {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("{0}")]
    Reference(#[from] ImageRefError),
    #[error("{0}")]
    Digest(#[from] DigestError),
    #[error(
        "{path} is not an image archive: expected an OCI image layout (oci-layout + index.json) or a docker save archive (manifest.json)"
    )]
    UnknownFormat { path: PathBuf },
    #[error("{what} {name}: invalid JSON: {source}")]
    Json {
        what: &'static str,
        name: String,
        source: serde_json::Error,
    },
    #[error("blob {digest} is missing from the archive ({what})")]
    MissingBlob { digest: Digest, what: &'static str },
    #[error("file {name} is missing from the archive ({what})")]
    MissingFile { name: String, what: &'static str },
    #[error("blob {expected} is corrupt: its content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is corrupt: descriptor says {expected} bytes, content has {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is {size} bytes, more than the limit of {limit} bytes for a {what}")]
    TooLarge {
        digest: Digest,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("unsupported media type {media_type:?} for {what} {digest}")]
    UnsupportedMediaType {
        media_type: String,
        what: &'static str,
        digest: Digest,
    },
    #[error("image index has no linux/amd64 image (it has: {available})")]
    NoMatchingPlatform { available: String },
    #[error("image index nests deeper than {0} levels")]
    IndexTooDeep(usize),
    #[error("the archive holds no image")]
    EmptyArchive,
    #[error("the archive holds {count} images; --name can only name one")]
    AmbiguousName { count: usize },
    #[error(
        "image config {config} lists {diff_ids} layer diff_ids but the manifest has {layers} layers"
    )]
    LayerCountMismatch {
        config: Digest,
        diff_ids: usize,
        layers: usize,
    },
    #[error(
        "layer {layer} unpacks to content {actual}, but the image config says its diff_id is {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer} is not a valid {format} stream: {source}")]
    BadLayerStream {
        layer: Digest,
        format: &'static str,
        source: io::Error,
    },
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    HostileEntry {
        layer: Digest,
        entry: String,
        reason: String,
    },
    #[error("{path}: not a valid archive: {source}")]
    BadArchive { path: PathBuf, source: io::Error },
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("image reference {reference} is ambiguous: it matches {count} images")]
    AmbiguousImage { reference: String, count: usize },
    #[error(
        "unable to remove image {image}: it is used by container(s) {containers} (stop and remove them, or use --force)"
    )]
    ImageInUse { image: String, containers: String },
    #[error(
        "invalid snapshot id {0:?}: use 1-128 characters of [A-Za-z0-9_.-], starting with a letter or digit"
    )]
    InvalidSnapshotId(String),
    #[error("a rootfs for container {0} already exists")]
    SnapshotExists(String),
    #[error("{context}: {source}")]
    Mount { context: String, source: nix::Error },
    #[error("{0}")]
    InvalidRootfs(String),
    #[error("pulling {reference}: {source}")]
    Registry {
        reference: String,
        source: Box<oci_client::errors::OciDistributionError>,
    },
    #[error(
        "manifest for {reference} not found: the registry does not know this repository or tag"
    )]
    NotInRegistry { reference: String },
    #[error(
        "manifest {digest} of {reference} has schema version {version}; berth pulls only schema 2 (OCI and docker v2) images"
    )]
    UnsupportedSchema {
        reference: String,
        digest: Digest,
        version: u64,
    },
    #[error("downloading blob {digest}: {source}")]
    Download { digest: Digest, source: io::Error },
}

impl Error {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            context,
            path,
            source,
        }
    }
}
