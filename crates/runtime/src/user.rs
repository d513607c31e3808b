//! Which user a container runs as: `--user`/the image's `User`, resolved against the rootfs's
//! `/etc/passwd` and `/etc/group` as docker resolves it.

use std::io;
use std::path::Path;
use std::str::FromStr;

/// A user or group named by number or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRef {
    Id(u32),
    Name(String),
}

impl IdRef {
    fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.contains([':', '\n', '\0']) {
            return None;
        }
        Some(match s.parse::<u32>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(s.to_owned()),
        })
    }
}

/// `USER[:GROUP]`, each a name or a number, as `--user` and the image's `User` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    user: IdRef,
    group: Option<IdRef>,
}

/// Why a user can not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("invalid user {0:?}: expected USER[:GROUP], each a name or a number")]
    Malformed(String),
    #[error("unable to find user {0}: no matching entries in the container's /etc/passwd")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in the container's /etc/group")]
    UnknownGroup(String),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

impl FromStr for UserSpec {
    type Err = UserError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || UserError::Malformed(s.to_owned());
        let (user, group) = match s.split_once(':') {
            Some((user, group)) => (user, Some(IdRef::parse(group).ok_or_else(malformed)?)),
            None => (s, None),
        };
        Ok(Self {
            user: IdRef::parse(user).ok_or_else(malformed)?,
            group,
        })
    }
}

/// The ids a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The users and groups of a rootfs; empty when it has no `/etc/passwd` or `/etc/group`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    users: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
}

impl UserDb {
    /// Parses the contents of `/etc/passwd` and `/etc/group`; malformed lines are skipped, as
    /// libc skips them.
    pub fn parse(passwd: &str, group: &str) -> Self {
        let users = passwd
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                match fields.as_slice() {
                    [name, _, uid, gid, ..] if !name.is_empty() => Some(PasswdEntry {
                        name: (*name).to_owned(),
                        uid: uid.parse().ok()?,
                        gid: gid.parse().ok()?,
                    }),
                    _ => None,
                }
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                match fields.as_slice() {
                    [name, _, gid, rest @ ..] if !name.is_empty() => Some(GroupEntry {
                        name: (*name).to_owned(),
                        gid: gid.parse().ok()?,
                        members: rest
                            .first()
                            .map(|m| {
                                m.split(',')
                                    .filter(|m| !m.is_empty())
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }),
                    _ => None,
                }
            })
            .collect();
        Self { users, groups }
    }

    /// Reads `etc/passwd` and `etc/group` of `rootfs`; a missing file counts as empty.
    ///
    /// The files are read through the host's view of the rootfs, so an image whose
    /// `/etc` or `/etc/passwd` is a symlink (which could point outside it) is read as empty.
    pub fn load(rootfs: &Path) -> Result<Self, UserError> {
        let not_a_symlink = |path: &Path| {
            path.symlink_metadata()
                .map(|m| !m.file_type().is_symlink())
                .unwrap_or(false)
        };
        let read = |name: &str| -> Result<String, UserError> {
            let path = rootfs.join("etc").join(name);
            let is_inside = not_a_symlink(&rootfs.join("etc")) && not_a_symlink(&path);
            if !is_inside {
                return Ok(String::new());
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(String::new()),
                Err(err) => Err(UserError::Read {
                    path: path.display().to_string(),
                    reason: err.to_string(),
                }),
            }
        };
        Ok(Self::parse(&read("passwd")?, &read("group")?))
    }

    /// The ids for `spec` (root when `None`), with the supplementary groups the user is a
    /// member of in `/etc/group`.
    ///
    /// As in docker: a numeric user need not exist (its group is then 0 unless given), a named
    /// one must; a numeric group need not exist, a named one must.
    pub fn resolve(&self, spec: Option<&UserSpec>) -> Result<ResolvedUser, UserError> {
        let root = UserSpec {
            user: IdRef::Id(0),
            group: None,
        };
        let spec = spec.unwrap_or(&root);
        let entry = match &spec.user {
            IdRef::Id(uid) => self.users.iter().find(|u| u.uid == *uid),
            IdRef::Name(name) => Some(
                self.users
                    .iter()
                    .find(|u| &u.name == name)
                    .ok_or_else(|| UserError::UnknownUser(name.clone()))?,
            ),
        };
        let uid = match (&spec.user, entry) {
            (_, Some(entry)) => entry.uid,
            (IdRef::Id(uid), None) => *uid,
            (IdRef::Name(name), None) => return Err(UserError::UnknownUser(name.clone())),
        };
        let gid = match &spec.group {
            Some(IdRef::Id(gid)) => *gid,
            Some(IdRef::Name(name)) => {
                self.groups
                    .iter()
                    .find(|g| &g.name == name)
                    .ok_or_else(|| UserError::UnknownGroup(name.clone()))?
                    .gid
            }
            None => entry.map_or(0, |e| e.gid),
        };
        let mut additional_gids: Vec<u32> = match (entry, &spec.group) {
            (Some(entry), None) => self
                .groups
                .iter()
                .filter(|g| g.members.contains(&entry.name) && g.gid != gid)
                .map(|g| g.gid)
                .collect(),
            _ => Vec::new(),
        };
        additional_gids.dedup();
        Ok(ResolvedUser {
            uid,
            gid,
            additional_gids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          daemon:x:1:1:daemon:/:/bin/false\n\
                          broken line\n\
                          app:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50:app\n";

    fn db() -> UserDb {
        UserDb::parse(PASSWD, GROUP)
    }

    fn resolve(spec: &str) -> Result<ResolvedUser, UserError> {
        db().resolve(Some(&spec.parse()?))
    }

    #[test]
    fn no_user_means_root_with_roots_groups() {
        assert_eq!(
            db().resolve(None).unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![10]
            }
        );
    }

    #[test]
    fn named_user_gets_its_primary_and_supplementary_groups() {
        assert_eq!(
            resolve("app").unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 50]
            }
        );
    }

    #[test]
    fn explicit_group_replaces_the_users_groups() {
        let user = resolve("app:staff").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 50));
        assert!(user.additional_gids.is_empty());
        assert_eq!(resolve("1000:7").unwrap().gid, 7);
    }

    #[test]
    fn numeric_user_need_not_exist_in_passwd() {
        assert_eq!(
            resolve("4242").unwrap(),
            ResolvedUser {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            UserDb::default()
                .resolve(Some(&"1:2".parse().unwrap()))
                .unwrap()
                .gid,
            2
        );
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        assert_eq!(
            resolve("nobody"),
            Err(UserError::UnknownUser("nobody".into()))
        );
        assert_eq!(
            resolve("app:nogroup"),
            Err(UserError::UnknownGroup("nogroup".into()))
        );
        for bad in ["", ":", "app:", ":app", "a:b:c"] {
            assert_eq!(
                bad.parse::<UserSpec>(),
                Err(UserError::Malformed(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn symlinked_passwd_is_not_followed_out_of_the_rootfs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).expect("outside");
        std::fs::write(outside.join("passwd"), "evil:x:0:0::/:/bin/sh\n").expect("passwd");
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("rootfs");
        std::os::unix::fs::symlink(&outside, rootfs.join("etc")).expect("symlink");
        let users = UserDb::load(&rootfs).expect("load");
        assert_eq!(users, UserDb::default());

        std::fs::remove_file(rootfs.join("etc")).expect("unlink");
        std::fs::create_dir(rootfs.join("etc")).expect("etc");
        std::fs::write(rootfs.join("etc/passwd"), "app:x:5:6::/:/bin/sh\n").expect("passwd");
        let app = UserDb::load(&rootfs)
            .expect("load")
            .resolve(Some(&"app".parse().expect("spec")))
            .expect("resolve");
        assert_eq!((app.uid, app.gid), (5, 6));
    }
}
