//! OCI bundles on disk: a directory holding `config.json`, whose spec points at the rootfs.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {dir}: the spec has no root filesystem")]
    NoRoot { dir: PathBuf },
    #[error("bundle {dir}: root filesystem {rootfs} does not exist")]
    MissingRootfs { dir: PathBuf, rootfs: PathBuf },
    #[error("bundle {dir}: volume source {source_path} does not exist on the host")]
    MissingVolumeSource { dir: PathBuf, source_path: PathBuf },
    #[error("bundle {dir}: cannot write config.json: {reason}")]
    Write { dir: PathBuf, reason: String },
}

/// A bundle directory whose `config.json` has been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// Checks what the spec needs from the host (the rootfs, every bind-mount source) and
    /// writes it as `dir/config.json`, creating `dir`. Nothing is written when a check fails.
    pub fn write(dir: &Path, spec: &Spec) -> Result<Self, BundleError> {
        let rootfs = spec
            .root()
            .as_ref()
            .map(|root| root.path().clone())
            .ok_or_else(|| BundleError::NoRoot {
                dir: dir.to_owned(),
            })?;
        let rootfs = if rootfs.is_absolute() {
            rootfs
        } else {
            dir.join(rootfs)
        };
        if !rootfs.is_dir() {
            return Err(BundleError::MissingRootfs {
                dir: dir.to_owned(),
                rootfs,
            });
        }
        let binds = spec
            .mounts()
            .iter()
            .flatten()
            .filter(|m| m.typ().as_deref() == Some("bind"));
        for mount in binds {
            if let Some(source) = mount.source()
                && source.symlink_metadata().is_err()
            {
                return Err(BundleError::MissingVolumeSource {
                    dir: dir.to_owned(),
                    source_path: source.clone(),
                });
            }
        }
        let write_error = |reason: String| BundleError::Write {
            dir: dir.to_owned(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| write_error(e.to_string()))?;
        spec.save(dir.join("config.json"))
            .map_err(|e| write_error(e.to_string()))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{MountBuilder, RootBuilder, SpecBuilder};

    fn spec(rootfs: &Path, bind_source: Option<&Path>) -> Spec {
        let mut builder =
            SpecBuilder::default().root(RootBuilder::default().path(rootfs).build().expect("root"));
        if let Some(source) = bind_source {
            builder = builder.mounts(vec![
                MountBuilder::default()
                    .destination("/data")
                    .typ("bind")
                    .source(source)
                    .build()
                    .expect("mount"),
            ]);
        }
        builder.build().expect("spec")
    }

    #[test]
    fn bundle_holds_the_spec_as_config_json() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).expect("rootfs");
        let written = spec(&rootfs, Some(dir.path()));
        let bundle = Bundle::write(&dir.path().join("bundle"), &written).expect("write");
        let read = Spec::load(bundle.dir().join("config.json")).expect("load");
        assert_eq!(read, written);
    }

    #[test]
    fn missing_rootfs_or_volume_source_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bundle_dir = dir.path().join("bundle");
        let missing = dir.path().join("missing");
        let err = Bundle::write(&bundle_dir, &spec(&missing, None)).unwrap_err();
        assert!(matches!(err, BundleError::MissingRootfs { .. }), "{err}");
        let err = Bundle::write(&bundle_dir, &spec(dir.path(), Some(&missing))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "bundle {}: volume source {} does not exist on the host",
                bundle_dir.display(),
                missing.display()
            )
        );
        assert!(!bundle_dir.exists());
    }
}
