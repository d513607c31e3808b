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
