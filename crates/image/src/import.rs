//! `berth image import` and `import-rootfs`: archives and root filesystems into the store.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use berth_types::{Digest, ImageRef, Sha256Writer};
use oci_spec::image::ImageConfiguration;
use serde_json::json;

use crate::archive::{self, BlobPlan, ImagePlan};
use crate::blob::Expected;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::index::{ImageRecord, LayerRecord};
use crate::media::{self, MAX_METADATA_BYTES};
use crate::progress::{Counting, Progress};
use crate::source::{DirSource, Source, TarSource};
use crate::staging::{LayerBlob, Staging};
use crate::store::Store;
use crate::unpack::Policy;

/// Options of [`Store::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name for the imported image, replacing any names the archive carries. Only valid for
    /// an archive with one image.
    pub name: Option<ImageRef>,
    pub policy: Policy,
}

/// Options of [`Store::import_rootfs`].
#[derive(Debug, Clone)]
pub struct RootfsOptions {
    pub name: ImageRef,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    /// `KEY=VALUE` pairs; `PATH` gets a default when not given.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `ExposedPorts` keys: `PORT/tcp` or `PORT/udp` (docker's `EXPOSE`).
    pub exposed_ports: Vec<String>,
    pub policy: Policy,
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Store {
    /// Imports every image of the archive at `path`: an OCI image layout or a `docker save`
    /// export, as a directory or a tar. Every blob is verified against its digest and size
    /// and every layer against its diff_id before anything is published or recorded.
    pub fn import(
        &self,
        path: &Path,
        options: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<ImageRecord>> {
        let _shared = self.lock_shared()?;
        let meta = fs::metadata(path).map_err(Error::io("reading", path))?;
        let mut source: Box<dyn Source> = if meta.is_dir() {
            Box::new(DirSource::new(path))
        } else {
            Box::new(TarSource::open(path)?)
        };
        let mut plans = if source
            .read_small("oci-layout", MAX_METADATA_BYTES)?
            .is_some()
        {
            archive::oci_plans(source.as_mut())?
        } else if source
            .read_small("manifest.json", MAX_METADATA_BYTES)?
            .is_some()
        {
            archive::docker_plans(source.as_mut())?
        } else {
            return Err(Error::UnknownFormat {
                path: path.to_path_buf(),
            });
        };
        match (plans.len(), &options.name) {
            (0, _) => return Err(Error::EmptyArchive),
            (1, Some(name)) => plans[0].names = vec![name.clone()],
            (count, Some(_)) => return Err(Error::AmbiguousName { count }),
            (_, None) => {}
        }
        let mut staging = Staging::new(self, options.policy)?;
        let mut records = Vec::with_capacity(plans.len());
        for plan in plans {
            records.push(import_plan(&mut staging, source.as_mut(), plan, progress)?);
        }
        staging.commit(records.clone())?;
        Ok(records)
    }

    /// Makes a one-layer image of a root filesystem (a directory, or a tar that may be gzip or
    /// zstd compressed), like `docker import`.
    pub fn import_rootfs(
        &self,
        path: &Path,
        options: &RootfsOptions,
        progress: &dyn Progress,
    ) -> Result<ImageRecord> {
        let _shared = self.lock_shared()?;
        let mut staging = Staging::new(self, options.policy)?;
        let meta = fs::metadata(path).map_err(Error::io("reading", path))?;
        let (blob, size) = if meta.is_dir() {
            let (digest, size, tmp) = tar_directory(path, staging.scratch_path())?;
            staging.adopt_blob(digest.clone(), tmp);
            (digest, size)
        } else {
            let file = File::open(path).map_err(Error::io("opening", path))?;
            staging.stage_blob(file, None)?
        };
        let layer = LayerBlob {
            media_type: sniff_layer_type(&staging.blob_path(&blob)),
            digest: blob,
            size,
            diff_id: None,
        };
        let mut layers = staging.unpack_layers(std::slice::from_ref(&layer), progress)?;
        let (layer_record, unpacked_bytes) = layers.remove(0);
        let mut env = options.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_owned());
        }
        let now = now_rfc3339();
        let mut container_config = json!({ "Env": env });
        if !options.cmd.is_empty() {
            container_config["Cmd"] = json!(options.cmd);
        }
        if !options.entrypoint.is_empty() {
            container_config["Entrypoint"] = json!(options.entrypoint);
        }
        if let Some(workdir) = &options.workdir {
            container_config["WorkingDir"] = json!(workdir);
        }
        if !options.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, serde_json::Value> = options
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            container_config["ExposedPorts"] = serde_json::Value::Object(ports);
        }
        let config = json!({
            "created": now,
            "architecture": archive::PLATFORM_ARCH,
            "os": archive::PLATFORM_OS,
            "config": container_config,
            "rootfs": { "type": "layers", "diff_ids": [layer_record.diff_id.to_string()] },
            "history": [{ "created": now, "created_by": "berth image import-rootfs" }],
        });
        let config_bytes = to_json("image config", &config)?;
        let parsed: ImageConfiguration =
            archive::parse_json("image config", "import-rootfs", &config_bytes)?;
        let (config_digest, config_size) = staging.stage_blob(&config_bytes[..], None)?;
        let manifest = write_manifest(
            &mut staging,
            &config_digest,
            config_size,
            std::slice::from_ref(&layer),
        )?;
        let record = record(
            config_digest,
            manifest,
            vec![options.name.clone()],
            vec![(layer_record, unpacked_bytes)],
            &parsed,
        );
        staging.commit(vec![record.clone()])?;
        Ok(record)
    }
}

/// Stages one image of an archive: config, layers, manifest, unpacked layers.
fn import_plan(
    staging: &mut Staging<'_>,
    source: &mut dyn Source,
    plan: ImagePlan,
    progress: &dyn Progress,
) -> Result<ImageRecord> {
    let (config_digest, config_size) =
        copy_blob(staging, source, &plan.config, "config", progress)?;
    let (config, diff_ids) = read_config(staging, &config_digest, plan.layers.len())?;
    let mut layers = Vec::with_capacity(plan.layers.len());
    for (layer, diff_id) in plan.layers.iter().zip(diff_ids) {
        let (digest, size) = copy_blob(staging, source, layer, "layer", progress)?;
        let media_type = match plan.manifest {
            Some(_) => layer.media_type.clone(),
            None => sniff_layer_type(&staging.blob_path(&digest)),
        };
        layers.push(LayerBlob {
            digest,
            size,
            media_type,
            diff_id: Some(diff_id),
        });
    }
    let manifest = match plan.manifest {
        // Already checked against its descriptor when the plan was read.
        Some(bytes) => staging.stage_blob(&bytes[..], None)?.0,
        None => write_manifest(staging, &config_digest, config_size, &layers)?,
    };
    assemble(
        staging,
        config_digest,
        &config,
        manifest,
        &layers,
        plan.names,
        progress,
    )
}

/// Reads an image config staged (or stored) as `digest` and checks that it lists one diff_id
/// for each of the manifest's `layers` layers. Returns the config and its diff_ids.
pub(crate) fn read_config(
    staging: &Staging<'_>,
    digest: &Digest,
    layers: usize,
) -> Result<(ImageConfiguration, Vec<Digest>)> {
    let bytes = staging.read_small(digest, "config", MAX_METADATA_BYTES)?;
    let config: ImageConfiguration =
        archive::parse_json("image config", &digest.to_string(), &bytes)?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != layers {
        return Err(Error::LayerCountMismatch {
            config: digest.clone(),
            diff_ids: diff_ids.len(),
            layers,
        });
    }
    Ok((config, diff_ids))
}

/// The step every way into the store shares once an image's config, manifest and layer blobs
/// are staged and verified: unpack the layers (each checked against its diff_id) and make the
/// image's index record, to be committed with the transaction.
pub(crate) fn assemble(
    staging: &mut Staging<'_>,
    id: Digest,
    config: &ImageConfiguration,
    manifest: Digest,
    layers: &[LayerBlob],
    names: Vec<ImageRef>,
    progress: &dyn Progress,
) -> Result<ImageRecord> {
    let unpacked = staging.unpack_layers(layers, progress)?;
    Ok(record(id, manifest, names, unpacked, config))
}

/// Stages one blob of the archive, verified when the archive names its digest. Returns its
/// digest and size.
fn copy_blob(
    staging: &mut Staging<'_>,
    source: &mut dyn Source,
    plan: &BlobPlan,
    what: &'static str,
    progress: &dyn Progress,
) -> Result<(Digest, u64)> {
    if let (Some(digest), Some(size)) = (&plan.digest, plan.size)
        && staging.has_blob(digest) == Some(size)
    {
        progress.finished(digest, "already exists");
        return Ok((digest.clone(), size));
    }
    let Some((reader, size)) = source.open(&plan.name)? else {
        return Err(match &plan.digest {
            Some(digest) => Error::MissingBlob {
                digest: digest.clone(),
                what,
            },
            None => Error::MissingFile {
                name: plan.name.clone(),
                what,
            },
        });
    };
    let Some(digest) = &plan.digest else {
        return staging.stage_blob(reader, None);
    };
    progress.started(digest, "copying", Some(size));
    let counted = Counting {
        inner: reader,
        blob: digest,
        progress,
    };
    let expected = Expected {
        digest,
        size: Some(plan.size.unwrap_or(size)),
    };
    let staged = staging.stage_blob(counted, Some(expected))?;
    progress.finished(digest, "copied");
    Ok(staged)
}

/// Writes an OCI manifest for a config and layers (for archives that carry none).
fn write_manifest(
    staging: &mut Staging<'_>,
    config: &Digest,
    config_size: u64,
    layers: &[LayerBlob],
) -> Result<Digest> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": { "mediaType": media::OCI_CONFIG, "digest": config.to_string(), "size": config_size },
        "layers": layers.iter().map(|layer| json!({
            "mediaType": layer.media_type, "digest": layer.digest.to_string(), "size": layer.size,
        })).collect::<Vec<_>>(),
    });
    let bytes = to_json("manifest", &manifest)?;
    Ok(staging.stage_blob(&bytes[..], None)?.0)
}

fn to_json(what: &'static str, value: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Json {
        what,
        name: String::new(),
        source,
    })
}

/// Writes a directory tree as an uncompressed tar in `scratch`, without following symlinks.
/// Returns the tar's digest, size and path.
fn tar_directory(dir: &Path, scratch: &Path) -> Result<(Digest, u64, PathBuf)> {
    let tmp = scratch.join(format!("rootfs-{}.tar", fsutil::random_suffix()));
    let file = File::create(&tmp).map_err(Error::io("creating", &tmp))?;
    let mut builder = tar::Builder::new(Sha256Writer::new(BufWriter::with_capacity(
        256 * 1024,
        file,
    )));
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .map_err(|source| Error::InvalidRootfs(format!("reading {}: {source}", dir.display())))?;
    let writer = builder.into_inner().map_err(Error::io("writing", &tmp))?;
    let size = writer.written();
    let (digest, mut buffered) = writer.finish();
    buffered.flush().map_err(Error::io("writing", &tmp))?;
    buffered
        .into_inner()
        .map_err(|e| Error::io("writing", &tmp)(e.into_error()))?;
    Ok((digest, size, tmp))
}

/// The OCI layer media type matching a blob's compression (by its magic bytes).
fn sniff_layer_type(path: &Path) -> String {
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip".to_owned()
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd".to_owned()
    } else {
        media::OCI_LAYER_TAR.to_owned()
    }
}

fn record(
    id: Digest,
    manifest: Digest,
    names: Vec<ImageRef>,
    layers: Vec<(LayerRecord, u64)>,
    config: &ImageConfiguration,
) -> ImageRecord {
    let unpacked_size = layers.iter().map(|(_, bytes)| bytes).sum();
    ImageRecord {
        id,
        manifest,
        names,
        layers: layers.into_iter().map(|(layer, _)| layer).collect(),
        created: config.created().clone(),
        stored_at: now_rfc3339(),
        unpacked_size,
        os: config.os().to_string(),
        architecture: config.architecture().to_string(),
    }
}

/// The current time as RFC 3339 UTC with second precision.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), by Howard Hinnant's civil calendar algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_914_245), "2026-11-29T01:04:05Z");
    }
}
