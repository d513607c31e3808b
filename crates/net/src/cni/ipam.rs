//! `berth-bridge`'s address leases, in host-local's on-disk layout so that berth's GC and
//! an admin read them the same way for either plugin: one directory per network
//! (`<dataDir>/<network>/`), one file per leased address named by the address and holding
//! `<container id>\r\n<ifname>`, and `last_reserved_ip.0` holding the last address handed
//! out, from which the next search starts (round robin, so a released address is not
//! reused at once). Writers hold an exclusive flock on the directory's `lock` file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The leases of one network.
#[derive(Debug)]
pub struct Leases {
    dir: PathBuf,
}

const LAST_RESERVED: &str = "last_reserved_ip.0";

/// Why no address was leased.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the requested address {0} is not in the range {1}-{2}")]
    OutOfRange(Ipv4Addr, Ipv4Addr, Ipv4Addr),
    #[error("the requested address {0} is already leased to container {1}")]
    Taken(Ipv4Addr, String),
    #[error("no free address left in {0}-{1}")]
    Exhausted(Ipv4Addr, Ipv4Addr),
    #[error("lease directory {0}: {1}")]
    Io(PathBuf, io::Error),
}

impl Leases {
    /// The leases kept in `data_dir/<network>`.
    pub fn new(data_dir: &Path, network: &str) -> Self {
        Self {
            dir: data_dir.join(network),
        }
    }

    fn io(&self, e: io::Error) -> LeaseError {
        LeaseError::Io(self.dir.clone(), e)
    }

    fn lock(&self) -> Result<Flock<File>, LeaseError> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .map_err(|e| self.io(e))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| self.io(errno.into()))
    }

    /// Every lease: (address, owner, ifname), by address.
    fn all(&self) -> Result<Vec<(Ipv4Addr, String, String)>, LeaseError> {
        read_all(&self.dir).map_err(|e| self.io(e))
    }

    /// Leases an address in `first..=last` to `owner`'s `ifname`: `wanted` if given (and
    /// free), else the next free one after the last handed out. A lease the owner already
    /// holds on `ifname` is returned again.
    pub fn lease(
        &self,
        (first, last): (Ipv4Addr, Ipv4Addr),
        owner: &str,
        ifname: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, LeaseError> {
        let _lock = self.lock()?;
        let all = self.all()?;
        if let Some((ip, _, _)) = all
            .iter()
            .find(|(ip, o, i)| o == owner && i == ifname && wanted.is_none_or(|w| w == *ip))
        {
            return Ok(*ip);
        }
        let taken = |ip: Ipv4Addr| all.iter().find(|(l, _, _)| *l == ip);
        let ip = match wanted {
            Some(ip) => {
                if ip < first || ip > last {
                    return Err(LeaseError::OutOfRange(ip, first, last));
                }
                if let Some((_, by, _)) = taken(ip) {
                    return Err(LeaseError::Taken(ip, by.clone()));
                }
                ip
            }
            None => {
                let (low, high) = (u32::from(first), u32::from(last));
                let after = fs::read_to_string(self.dir.join(LAST_RESERVED))
                    .ok()
                    .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
                    .map(u32::from)
                    .filter(|l| (low..=high).contains(l))
                    .unwrap_or(high);
                let size = high - low + 1;
                (1..=size)
                    .map(|step| low + (after - low + step) % size)
                    .map(Ipv4Addr::from)
                    .find(|ip| taken(*ip).is_none())
                    .ok_or(LeaseError::Exhausted(first, last))?
            }
        };
        // Written beside it and hard-linked into place: the lease appears with its owner
        // or not at all (an empty lease left by a kill would name no one GC could release).
        let path = self.dir.join(ip.to_string());
        let tmp = self.dir.join(format!(".{ip}.{}", std::process::id()));
        let mut file = File::create(&tmp).map_err(|e| self.io(e))?;
        file.write_all(format!("{owner}\r\n{ifname}").as_bytes())
            .map_err(|e| self.io(e))?;
        let linked = fs::hard_link(&tmp, &path);
        // Best effort: a leftover temporary file is not a lease (its name is no address).
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| self.io(e))?;
        if wanted.is_none() {
            fs::write(self.dir.join(LAST_RESERVED), ip.to_string()).map_err(|e| self.io(e))?;
        }
        Ok(ip)
    }

    /// Releases every lease `owner` holds on `ifname`; returns the addresses.
    pub fn release(&self, owner: &str, ifname: &str) -> Result<Vec<Ipv4Addr>, LeaseError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut released = Vec::new();
        for (ip, o, i) in self.all()? {
            if o == owner && i == ifname {
                match fs::remove_file(self.dir.join(ip.to_string())) {
                    Ok(()) => released.push(ip),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io(e)),
                }
            }
        }
        Ok(released)
    }

    /// The address `owner` holds on `ifname`, if any.
    pub fn of(&self, owner: &str, ifname: &str) -> Result<Option<Ipv4Addr>, LeaseError> {
        Ok(self
            .all()?
            .into_iter()
            .find(|(_, o, i)| o == owner && i == ifname)
            .map(|(ip, _, _)| ip))
    }
}

/// Every lease in host-local's directory `dir` (one network's): (address, owner, ifname), by
/// address. A file written without an ifname line is on `eth0`; a file removed while the
/// directory is read was released, and is left out. berth's GC reads leases through this too.
pub(crate) fn read_all(dir: &Path) -> io::Result<Vec<(Ipv4Addr, String, String)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(ip) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let content = match fs::read_to_string(entry.path()) {
            Ok(content) => content,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut lines = content.lines().map(str::trim);
        let owner = lines.next().unwrap_or_default().to_owned();
        let ifname = lines
            .next()
            .filter(|l| !l.is_empty())
            .unwrap_or("eth0")
            .to_owned();
        out.push((ip, owner, ifname));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 4))
    }

    #[test]
    fn addresses_go_round_robin_and_a_released_one_comes_back_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leases = Leases::new(dir.path(), "n");
        let a = leases.lease(range(), "a", "eth0", None).expect("a");
        let b = leases.lease(range(), "b", "eth0", None).expect("b");
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 3))
        );
        assert_eq!(leases.release("a", "eth0").expect("release"), [a]);
        let c = leases.lease(range(), "c", "eth0", None).expect("c");
        assert_eq!(c, Ipv4Addr::new(10, 1, 0, 4));
        let d = leases.lease(range(), "d", "eth0", None).expect("d");
        assert_eq!(d, a, "wraps around to the released address");
        assert!(matches!(
            leases.lease(range(), "e", "eth0", None),
            Err(LeaseError::Exhausted(..))
        ));
        let content = fs::read_to_string(dir.path().join("n/10.1.0.3")).expect("lease file");
        assert_eq!(content, "b\r\neth0", "host-local's layout");
    }

    #[test]
    fn a_wanted_address_is_checked_and_an_owner_gets_its_lease_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leases = Leases::new(dir.path(), "n");
        let want = Ipv4Addr::new(10, 1, 0, 3);
        assert_eq!(
            leases.lease(range(), "a", "eth0", Some(want)).expect("a"),
            want
        );
        assert_eq!(
            leases.lease(range(), "a", "eth0", None).expect("again"),
            want
        );
        assert!(matches!(
            leases.lease(range(), "b", "eth0", Some(want)),
            Err(LeaseError::Taken(_, owner)) if owner == "a"
        ));
        assert!(matches!(
            leases.lease(range(), "b", "eth0", Some(Ipv4Addr::new(10, 1, 0, 9))),
            Err(LeaseError::OutOfRange(..))
        ));
        assert_eq!(leases.of("a", "eth0").expect("of"), Some(want));
        assert!(
            leases
                .release("a", "eth1")
                .expect("other ifname")
                .is_empty()
        );
        assert_eq!(leases.of("a", "eth0").expect("of"), Some(want));
    }
}
