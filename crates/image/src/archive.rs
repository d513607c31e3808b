//! Reads an image archive's metadata into import plans: which config and layer blobs make up
//! each image, and the names it carries. Handles OCI image layouts (index.json, nested indexes
//! resolved to linux/amd64) and `docker save` exports (manifest.json).

use berth_types::{Digest, ImageRef};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::media::{self, Kind, MAX_INDEX_DEPTH, MAX_METADATA_BYTES};
use crate::source::Source;

/// The platform berth runs.
pub const PLATFORM_OS: &str = "linux";
pub const PLATFORM_ARCH: &str = "amd64";

/// A blob to copy from the archive.
#[derive(Debug, Clone)]
pub struct BlobPlan {
    /// File name inside the archive.
    pub name: String,
    /// The digest the blob must have; `None` where the archive format gives none (docker save
    /// layers are then checked against the config's diff_ids when unpacked).
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    pub media_type: String,
}

/// One image to import.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The manifest bytes as found in the archive (already checked against their descriptor),
    /// or `None` when berth must write one (docker save has none).
    pub manifest: Option<Vec<u8>>,
    pub config: BlobPlan,
    pub layers: Vec<BlobPlan>,
    pub names: Vec<ImageRef>,
}

/// Reads the plans of every image in an OCI image layout.
pub fn oci_plans(source: &mut dyn Source) -> Result<Vec<ImagePlan>> {
    let bytes = source
        .read_small("index.json", MAX_METADATA_BYTES)?
        .ok_or_else(|| Error::MissingFile {
            name: "index.json".to_owned(),
            what: "OCI image layout",
        })?;
    let index: ImageIndex = parse_json("image index", "index.json", &bytes)?;
    let mut plans = Vec::new();
    for descriptor in index.manifests() {
        let name = descriptor
            .annotations()
            .as_ref()
            .and_then(|a| {
                a.get("io.containerd.image.name")
                    .or_else(|| a.get("org.opencontainers.image.ref.name"))
            })
            .and_then(|n| n.parse::<ImageRef>().ok());
        let mut plan = resolve(source, descriptor, 0)?;
        plan.names.extend(name);
        plans.push(plan);
    }
    Ok(plans)
}

/// Follows a descriptor through nested indexes down to one linux/amd64 image manifest.
fn resolve(source: &mut dyn Source, descriptor: &Descriptor, depth: usize) -> Result<ImagePlan> {
    if depth > MAX_INDEX_DEPTH {
        return Err(Error::IndexTooDeep(MAX_INDEX_DEPTH));
    }
    let digest = descriptor_digest(descriptor)?;
    let media_type = descriptor.media_type().to_string();
    let kind = media::manifest_kind(&media_type).ok_or_else(|| Error::UnsupportedMediaType {
        media_type: media_type.clone(),
        what: "manifest",
        digest: digest.clone(),
    })?;
    let bytes = read_verified(source, &digest, descriptor.size(), "manifest")?;
    match kind {
        Kind::Index => {
            let index: ImageIndex = parse_json("image index", &digest.to_string(), &bytes)?;
            let chosen = select_platform(&index)?;
            resolve(source, chosen, depth + 1)
        }
        Kind::Manifest => {
            let manifest: ImageManifest =
                parse_json("image manifest", &digest.to_string(), &bytes)?;
            manifest_plan(&manifest, bytes)
        }
    }
}

/// Picks the linux/amd64 entry of a multi-platform index.
pub(crate) fn select_platform(index: &ImageIndex) -> Result<&Descriptor> {
    let matches = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == PLATFORM_OS && p.architecture().to_string() == PLATFORM_ARCH
        })
    };
    if let Some(found) = index.manifests().iter().find(matches) {
        return Ok(found);
    }
    let available: Vec<String> = index
        .manifests()
        .iter()
        .map(|d| match d.platform() {
            Some(p) => format!("{}/{}", p.os(), p.architecture()),
            None => "unspecified".to_owned(),
        })
        .collect();
    Err(Error::NoMatchingPlatform {
        available: if available.is_empty() {
            "nothing".to_owned()
        } else {
            available.join(", ")
        },
    })
}

pub(crate) fn manifest_plan(manifest: &ImageManifest, bytes: Vec<u8>) -> Result<ImagePlan> {
    let config = manifest.config();
    let config_digest = descriptor_digest(config)?;
    let config_type = config.media_type().to_string();
    if !media::is_config(&config_type) {
        return Err(Error::UnsupportedMediaType {
            media_type: config_type,
            what: "config",
            digest: config_digest,
        });
    }
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for layer in manifest.layers() {
        let digest = descriptor_digest(layer)?;
        let media_type = layer.media_type().to_string();
        if media::layer_compression(&media_type).is_none() {
            return Err(Error::UnsupportedMediaType {
                media_type,
                what: "layer",
                digest,
            });
        }
        layers.push(BlobPlan {
            name: blob_name(&digest),
            digest: Some(digest),
            size: Some(layer.size()),
            media_type,
        });
    }
    Ok(ImagePlan {
        manifest: Some(bytes),
        config: BlobPlan {
            name: blob_name(&config_digest),
            digest: Some(config_digest),
            size: Some(config.size()),
            media_type: config_type,
        },
        layers,
        names: Vec::new(),
    })
}

/// One entry of a `docker save` manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Reads the plans of every image in a `docker save` export.
pub fn docker_plans(source: &mut dyn Source) -> Result<Vec<ImagePlan>> {
    let bytes = source
        .read_small("manifest.json", MAX_METADATA_BYTES)?
        .ok_or_else(|| Error::MissingFile {
            name: "manifest.json".to_owned(),
            what: "docker archive",
        })?;
    let entries: Vec<DockerEntry> = parse_json("docker manifest", "manifest.json", &bytes)?;
    let mut plans = Vec::with_capacity(entries.len());
    for entry in entries {
        let names = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|tag| tag.parse::<ImageRef>())
            .collect::<Result<Vec<_>, _>>()?;
        // The config's file name is its digest (`<hex>.json` or `blobs/sha256/<hex>`).
        let config_digest = config_digest_from_name(&entry.config);
        let layers = entry
            .layers
            .into_iter()
            .map(|name| BlobPlan {
                digest: None,
                size: None,
                media_type: media::OCI_LAYER_TAR.to_owned(),
                name,
            })
            .collect();
        plans.push(ImagePlan {
            manifest: None,
            config: BlobPlan {
                name: entry.config,
                digest: config_digest,
                size: None,
                media_type: media::OCI_CONFIG.to_owned(),
            },
            layers,
            names,
        });
    }
    Ok(plans)
}

fn config_digest_from_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    format!("sha256:{hex}").parse().ok()
}

/// The file name of a blob inside an OCI image layout.
pub fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

pub fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest> {
    Ok(descriptor.digest().to_string().parse()?)
}

/// Reads a metadata blob from the archive and checks it against its descriptor.
fn read_verified(
    source: &mut dyn Source,
    digest: &Digest,
    size: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    media::check_metadata_size(digest, what, size)?;
    let bytes = source
        .read_small(&blob_name(digest), MAX_METADATA_BYTES)?
        .ok_or_else(|| Error::MissingBlob {
            digest: digest.clone(),
            what,
        })?;
    crate::blob::check(
        crate::blob::Expected {
            digest,
            size: Some(size),
        },
        &Digest::of(&bytes),
        bytes.len() as u64,
    )?;
    Ok(bytes)
}

pub fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    name: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what,
        name: name.to_owned(),
        source,
    })
}
