//! Mounts the user asks for: bind volumes (`-v HOST:CTR[:ro]`) and tmpfs (`--tmpfs CTR[:OPTS]`).

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// Why a mount given by the user is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("invalid path {0:?} in the container: expected an absolute path without \"..\"")]
    ContainerPath(String),
    #[error("invalid volume {0:?}: expected HOST_PATH:CONTAINER_PATH[:ro|rw]")]
    VolumeFormat(String),
    #[error(
        "invalid volume {0:?}: the host side must be an absolute path (named volumes are not supported yet, #3)"
    )]
    VolumeHostPath(String),
    #[error("invalid volume {0:?}: cannot mount over the container's root")]
    VolumeOverRoot(String),
    #[error("invalid tmpfs {input:?}: option {option:?} is not one of {allowed}")]
    TmpfsOption {
        input: String,
        option: String,
        allowed: &'static str,
    },
}

/// An absolute, normalized path inside the container (no `..`, no `.`, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerPath(PathBuf);

impl ContainerPath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// Whether this is the container's root, `/`.
    pub fn is_root(&self) -> bool {
        self.0 == Path::new("/")
    }
}

impl FromStr for ContainerPath {
    type Err = MountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || MountError::ContainerPath(s.to_owned());
        if !s.starts_with('/') || s.contains('\0') {
            return Err(invalid());
        }
        let mut normalized = PathBuf::from("/");
        for component in Path::new(s).components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => normalized.push(part),
                Component::ParentDir | Component::Prefix(_) => return Err(invalid()),
            }
        }
        Ok(Self(normalized))
    }
}

impl fmt::Display for ContainerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// A host directory or file bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    host: PathBuf,
    container: ContainerPath,
    read_only: bool,
}

impl Volume {
    /// The host path; whether it exists is checked when the bundle is written.
    pub fn host(&self) -> &Path {
        &self.host
    }

    pub fn container(&self) -> &ContainerPath {
        &self.container
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }
}

impl FromStr for Volume {
    type Err = MountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [host, container] => (*host, *container, false),
            [host, container, "ro"] => (*host, *container, true),
            [host, container, "rw"] => (*host, *container, false),
            _ => return Err(MountError::VolumeFormat(s.to_owned())),
        };
        if host.is_empty() || container.is_empty() {
            return Err(MountError::VolumeFormat(s.to_owned()));
        }
        if !host.starts_with('/') {
            return Err(MountError::VolumeHostPath(s.to_owned()));
        }
        let container: ContainerPath = container.parse()?;
        if container.is_root() {
            return Err(MountError::VolumeOverRoot(s.to_owned()));
        }
        Ok(Self {
            host: PathBuf::from(host),
            container,
            read_only,
        })
    }
}

/// The tmpfs options a user may pass, as docker accepts them.
const TMPFS_FLAGS: &[&str] = &[
    "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
];
const TMPFS_VALUE_OPTIONS: &[&str] = &["size", "mode", "uid", "gid", "nr_inodes"];
const TMPFS_ALLOWED: &str =
    "ro, rw, [no]exec, [no]suid, [no]dev, size=, mode=, uid=, gid=, nr_inodes=";

/// A tmpfs mounted in the container; by default `noexec,nosuid,nodev` as docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    container: ContainerPath,
    options: Vec<String>,
}

impl TmpfsMount {
    pub fn container(&self) -> &ContainerPath {
        &self.container
    }

    /// The mount options: docker's defaults, overridden by the user's.
    pub fn options(&self) -> &[String] {
        &self.options
    }
}

impl FromStr for TmpfsMount {
    type Err = MountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, options) = s.split_once(':').unwrap_or((s, ""));
        let container: ContainerPath = path.parse()?;
        let mut flags: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
        let mut values: Vec<String> = Vec::new();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let name = option.split_once('=').map_or(option, |(name, _)| name);
            if option.contains('=') && TMPFS_VALUE_OPTIONS.contains(&name) {
                values.retain(|v| !v.starts_with(&format!("{name}=")));
                values.push(option.to_owned());
            } else if TMPFS_FLAGS.contains(&option) {
                let opposite = option
                    .strip_prefix("no")
                    .map_or_else(|| format!("no{option}"), |positive| positive.to_owned());
                flags.retain(|f| *f != opposite && f != option);
                if option == "ro" || option == "rw" {
                    flags.retain(|f| f != "ro" && f != "rw");
                }
                flags.push(option.to_owned());
            } else {
                return Err(MountError::TmpfsOption {
                    input: s.to_owned(),
                    option: option.to_owned(),
                    allowed: TMPFS_ALLOWED,
                });
            }
        }
        flags.extend(values);
        Ok(Self {
            container,
            options: flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_normalized_and_cannot_climb_out() {
        assert_eq!(
            "/data/./x/".parse::<ContainerPath>().unwrap().as_path(),
            Path::new("/data/x")
        );
        for bad in ["data", "/data/../etc", "", "/a\0b"] {
            assert_eq!(
                bad.parse::<ContainerPath>(),
                Err(MountError::ContainerPath(bad.to_owned()))
            );
        }
    }

    #[test]
    fn volumes_parse_like_docker_bind_mounts() {
        let rw: Volume = "/srv/data:/data".parse().unwrap();
        assert_eq!(rw.host(), Path::new("/srv/data"));
        assert_eq!(rw.container().as_path(), Path::new("/data"));
        assert!(!rw.read_only());
        assert!("/srv/data:/data:ro".parse::<Volume>().unwrap().read_only());
        assert!(!"/srv/data:/data:rw".parse::<Volume>().unwrap().read_only());
    }

    #[test]
    fn malformed_volumes_are_rejected_with_the_reason() {
        for bad in ["/srv", "/srv:/data:rx", ":/data", "/srv:", "/a:/b:ro:x"] {
            assert_eq!(
                bad.parse::<Volume>(),
                Err(MountError::VolumeFormat(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            "data:/data".parse::<Volume>(),
            Err(MountError::VolumeHostPath("data:/data".to_owned()))
        );
        assert_eq!(
            "/srv:/".parse::<Volume>(),
            Err(MountError::VolumeOverRoot("/srv:/".to_owned()))
        );
    }

    #[test]
    fn tmpfs_defaults_to_noexec_nosuid_nodev_and_takes_user_options() {
        let plain: TmpfsMount = "/run".parse().unwrap();
        assert_eq!(plain.options(), ["noexec", "nosuid", "nodev"]);
        let custom: TmpfsMount = "/run:exec,size=64m,mode=1777,size=32m".parse().unwrap();
        assert_eq!(
            custom.options(),
            ["nosuid", "nodev", "exec", "mode=1777", "size=32m"]
        );
        assert!(matches!(
            "/run:bogus".parse::<TmpfsMount>(),
            Err(MountError::TmpfsOption { .. })
        ));
    }
}
