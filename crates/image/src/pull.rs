//! `berth image pull`: an image from an OCI distribution registry into the store.
//!
//! The manifest the reference names is resolved (an index to its linux/amd64 manifest), every
//! manifest checked against the digest that names it, then the config and each layer blob not
//! yet in the store is downloaded resumably (see [`crate::download`]). The image is then
//! unpacked and recorded exactly as an import is.

use std::collections::BTreeMap;

use berth_types::{Digest, ImageRef};
use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::archive;
use crate::blob::{self, Expected};
use crate::download::{self, Partial};
use crate::error::{Error, Result};
use crate::import;
use crate::index::ImageRecord;
use crate::media::{self, Kind, MAX_INDEX_DEPTH};
use crate::progress::{NoProgress, Progress};
use crate::registry::Repository;
use crate::staging::{LayerBlob, Staging};
use crate::store::Store;
use crate::unpack::Policy;

/// Options of [`Store::pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Speak plain HTTP to the reference's registry.
    pub insecure: bool,
    pub policy: Policy,
}

/// What [`Store::pull`] did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: ImageRecord,
    /// Digest of the manifest (or index) the reference resolved to in the registry.
    pub digest: Digest,
    /// The store already had this image under this name before the pull.
    pub up_to_date: bool,
}

/// The fields that tell what kind of manifest a document is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestHead {
    schema_version: u64,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<IgnoredAny>,
}

impl Store {
    /// Pulls `reference` from its registry, anonymously, and records it under that name.
    /// Blobs already in the store are not downloaded again, and a download interrupted by a
    /// crash resumes where it stopped. Layers are unpacked on the calling thread (inside
    /// `block_in_place` on a multi-threaded runtime).
    pub async fn pull(
        &self,
        reference: &ImageRef,
        options: &PullOptions,
        progress: &dyn Progress,
    ) -> Result<Pulled> {
        let _shared = self.lock_shared()?;
        let repository = Repository::new(reference, options.insecure);
        let Resolved {
            top_digest,
            manifest_digest,
            manifest_bytes,
            manifest,
        } = resolve_reference(&repository, reference).await?;
        let config_digest = archive::descriptor_digest(manifest.config())?;
        let config_size = manifest.config().size();
        let mut staging = Staging::new(self, options.policy)?;
        let mut blobs = vec![(config_digest.clone(), config_size)];
        for layer in manifest.layers() {
            blobs.push((archive::descriptor_digest(layer)?, layer.size()));
        }
        let missing = blobs
            .iter()
            .filter(|(digest, size)| staging.has_blob(digest) != Some(*size))
            .map(|(digest, _)| digest.clone())
            .collect();
        // Held until the transaction committed: no other pull writes these downloads meanwhile.
        let partials = download::lock_all(self.layout(), missing).await?;
        let fetch = Fetch {
            partials: &partials,
            repository: &repository,
        };
        fetch
            .blob(&mut staging, &config_digest, config_size, &NoProgress)
            .await?;
        let (config, diff_ids) =
            import::read_config(&staging, &config_digest, manifest.layers().len())?;
        let mut layers = Vec::with_capacity(diff_ids.len());
        for ((layer, (digest, size)), diff_id) in
            manifest.layers().iter().zip(&blobs[1..]).zip(diff_ids)
        {
            fetch.blob(&mut staging, digest, *size, progress).await?;
            layers.push(LayerBlob {
                digest: digest.clone(),
                size: *size,
                media_type: layer.media_type().to_string(),
                diff_id: Some(diff_id),
            });
        }
        let expected = Expected {
            digest: &manifest_digest,
            size: Some(manifest_bytes.len() as u64),
        };
        let manifest_digest = staging.stage_blob(&manifest_bytes[..], Some(expected))?.0;
        let up_to_date = self
            .index()
            .load()?
            .iter()
            .any(|image| image.id == config_digest && image.names.contains(reference));
        let image = blocking(|| {
            let image = import::assemble(
                &mut staging,
                config_digest,
                &config,
                manifest_digest,
                &layers,
                vec![reference.clone()],
                progress,
            )?;
            staging.commit(vec![image.clone()])?;
            Ok::<_, Error>(image)
        })?;
        drop(partials);
        Ok(Pulled {
            image,
            digest: top_digest,
            up_to_date,
        })
    }
}

/// Where a pull gets the blobs it does not have.
struct Fetch<'a> {
    /// The locked partial downloads of the blobs neither the store nor another pull had.
    partials: &'a BTreeMap<Digest, Partial>,
    repository: &'a Repository,
}

impl Fetch<'_> {
    /// Puts blob `digest` into the transaction: downloaded if this pull holds its partial
    /// download, else already there (in the store, or published by a pull we waited for).
    async fn blob(
        &self,
        staging: &mut Staging<'_>,
        digest: &Digest,
        size: u64,
        progress: &dyn Progress,
    ) -> Result<()> {
        match self.partials.get(digest) {
            // A digest listed twice is downloaded once.
            Some(partial) if staging.has_blob(digest) != Some(size) => {
                download::fetch(partial, self.repository, digest, size, progress).await?;
                staging.adopt_blob(digest.clone(), partial.path().to_path_buf());
            }
            _ => progress.finished(digest, "already exists"),
        }
        Ok(())
    }
}

/// The image manifest a reference names, checked against the digests that name it.
struct Resolved {
    /// Digest of what the reference names: the manifest, or the index it is listed in.
    top_digest: Digest,
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
}

/// Fetches the manifest `reference` names, following an index to its linux/amd64 manifest,
/// and checks it names a config and layers berth can use.
async fn resolve_reference(repository: &Repository, reference: &ImageRef) -> Result<Resolved> {
    let top = repository.top_manifest().await?;
    let top_digest = Digest::of(&top);
    if let Some(wanted) = reference.digest() {
        let expected = Expected {
            digest: wanted,
            size: None,
        };
        blob::check(expected, &top_digest, top.len() as u64)?;
    }
    let (manifest_digest, manifest_bytes) =
        resolve(repository, reference, top_digest.clone(), top).await?;
    let manifest: ImageManifest = archive::parse_json(
        "image manifest",
        &manifest_digest.to_string(),
        &manifest_bytes,
    )?;
    // Checks the config and layer media types.
    archive::manifest_plan(&manifest, Vec::new())?;
    let config = manifest.config();
    media::check_metadata_size(
        &archive::descriptor_digest(config)?,
        "config",
        config.size(),
    )?;
    Ok(Resolved {
        top_digest,
        manifest_digest,
        manifest_bytes,
        manifest,
    })
}

/// Follows `bytes` (the document with digest `digest`) through image indexes down to the
/// linux/amd64 image manifest. Returns the manifest's digest and bytes.
async fn resolve(
    repository: &Repository,
    reference: &ImageRef,
    mut digest: Digest,
    mut bytes: Vec<u8>,
) -> Result<(Digest, Vec<u8>)> {
    for _ in 0..=MAX_INDEX_DEPTH {
        match kind(reference, &digest, &bytes)? {
            Kind::Manifest => return Ok((digest, bytes)),
            Kind::Index => {
                let index: ImageIndex =
                    archive::parse_json("image index", &digest.to_string(), &bytes)?;
                let chosen = archive::select_platform(&index)?;
                let child = archive::descriptor_digest(chosen)?;
                media::check_metadata_size(&child, "manifest", chosen.size())?;
                let child_bytes = repository.manifest_by_digest(&child).await?;
                let expected = Expected {
                    digest: &child,
                    size: Some(chosen.size()),
                };
                blob::check(
                    expected,
                    &Digest::of(&child_bytes),
                    child_bytes.len() as u64,
                )?;
                digest = child;
                bytes = child_bytes;
            }
        }
    }
    Err(Error::IndexTooDeep(MAX_INDEX_DEPTH))
}

/// What kind of manifest `bytes` is, refusing schema 1 and unknown media types.
fn kind(reference: &ImageRef, digest: &Digest, bytes: &[u8]) -> Result<Kind> {
    let head: ManifestHead = archive::parse_json("manifest", &digest.to_string(), bytes)?;
    if head.schema_version != 2 {
        return Err(Error::UnsupportedSchema {
            reference: reference.to_string(),
            digest: digest.clone(),
            version: head.schema_version,
        });
    }
    match head.media_type {
        Some(media_type) => {
            media::manifest_kind(&media_type).ok_or_else(|| Error::UnsupportedMediaType {
                media_type,
                what: "manifest",
                digest: digest.clone(),
            })
        }
        // OCI lets a document leave its media type out; an index is the one with `manifests`.
        None if head.manifests.is_some() => Ok(Kind::Index),
        None => Ok(Kind::Manifest),
    }
}

/// Runs blocking disk work (unpacking) without stalling other tasks of a multi-threaded
/// runtime; on any other runtime it simply runs.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(json: &str) -> Result<Kind> {
        let reference: ImageRef = "127.0.0.1:5000/app:1".parse().unwrap();
        let bytes = json.as_bytes();
        kind(&reference, &Digest::of(bytes), bytes)
    }

    #[test]
    fn manifests_and_indexes_are_told_apart_with_or_without_a_media_type() {
        let oci_index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let docker = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
        assert_eq!(classify(oci_index).unwrap(), Kind::Index);
        assert_eq!(classify(docker).unwrap(), Kind::Manifest);
        assert_eq!(
            classify(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            Kind::Index
        );
        assert_eq!(
            classify(r#"{"schemaVersion":2,"layers":[]}"#).unwrap(),
            Kind::Manifest
        );
    }

    #[test]
    fn schema_1_and_unknown_media_types_are_refused_by_name() {
        let schema1 = r#"{"schemaVersion":1,"name":"app","tag":"1","fsLayers":[]}"#;
        let err = classify(schema1).unwrap_err().to_string();
        assert!(err.contains("schema version 1"), "{err}");
        let artifact = r#"{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}"#;
        let err = classify(artifact).unwrap_err().to_string();
        assert!(
            err.contains("unsupported media type \"application/vnd.cncf.helm.chart\""),
            "{err}"
        );
    }
}
