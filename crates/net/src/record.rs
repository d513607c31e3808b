//! Attachment records: `<root>/attachments/<container id>/<network>.json`, one per
//! container and network, written atomically.
//!
//! A record is written *before* the CNI ADD (with no result) and completed after it, so a
//! daemon killed at any point leaves a record, a host-local lease or a pinned namespace
//! for garbage collection to find. The format is versioned by its `version` field.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_types::ContainerId;
use serde_json::Value;

use crate::fsutil::{ensure_dir, write_atomic};
use crate::{NetError, NetworkName, PublishedPort};

/// The record format version this code writes and reads.
const RECORD_VERSION: u32 = 1;

/// What berth remembers of one container's attachment to one network.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    pub version: u32,
    pub container: ContainerId,
    pub network: NetworkName,
    pub ifname: String,
    pub netns: PathBuf,
    pub requested_ip: Option<Ipv4Addr>,
    pub ports: Vec<PublishedPort>,
    pub aliases: Vec<String>,
    /// The CNI ADD result; `None` while the ADD has not completed.
    pub result: Option<Value>,
}

impl Record {
    pub fn new(
        container: ContainerId,
        network: NetworkName,
        ifname: String,
        netns: PathBuf,
        requested_ip: Option<Ipv4Addr>,
        ports: Vec<PublishedPort>,
        aliases: Vec<String>,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            container,
            network,
            ifname,
            netns,
            requested_ip,
            ports,
            aliases,
            result: None,
        }
    }
}

/// The directory of attachment records.
#[derive(Debug, Clone)]
pub(crate) struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn open(dir: PathBuf) -> Result<Self, NetError> {
        ensure_dir(&dir)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, container: &ContainerId, network: &NetworkName) -> PathBuf {
        self.dir
            .join(container.as_str())
            .join(format!("{network}.json"))
    }

    pub fn write(&self, record: &Record) -> Result<(), NetError> {
        let dir = self.dir.join(record.container.as_str());
        ensure_dir(&dir)?;
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        write_atomic(&self.path(&record.container, &record.network), &bytes)
    }

    pub fn read(
        &self,
        container: &ContainerId,
        network: &NetworkName,
    ) -> Result<Option<Record>, NetError> {
        read_record(&self.path(container, network))
    }

    pub fn remove(&self, container: &ContainerId, network: &NetworkName) -> Result<(), NetError> {
        let path = self.path(container, network);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::io("remove", path)(e)),
        }
        // The directory goes when its last record does; another record keeps it.
        let _ = fs::remove_dir(self.dir.join(container.as_str()));
        Ok(())
    }

    /// Removes `container`'s record directory unless it still holds a record: what can be
    /// left there is an empty directory or the temp file of a write the daemon died in
    /// (found by the kill -9 test of issue #5). Callers make sure nothing else writes
    /// the container's records meanwhile (gc holds the lock; remove_sandbox runs alone).
    pub fn remove_leftovers(&self, container: &ContainerId) -> Result<(), NetError> {
        let dir = self.dir.join(container.as_str());
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NetError::io("read", dir)(e)),
        };
        for entry in entries {
            let name = entry.map_err(NetError::io("read", &dir))?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".json") && !name.starts_with('.') {
                return Ok(());
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io("remove", dir)(e)),
        }
    }

    /// The records of one container, sorted by network name.
    pub fn of(&self, container: &ContainerId) -> Result<Vec<Record>, NetError> {
        let dir = self.dir.join(container.as_str());
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetError::io("read", dir)(e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry.map_err(NetError::io("read", &dir))?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(record) = read_record(&path)?
            {
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.network.cmp(&b.network));
        Ok(records)
    }

    /// The containers that have a record directory, whatever their records hold.
    pub fn containers(&self) -> Result<Vec<ContainerId>, NetError> {
        let entries = fs::read_dir(&self.dir).map_err(NetError::io("read", &self.dir))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(NetError::io("read", &self.dir))?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every record of every container.
    pub fn all(&self) -> Result<Vec<Record>, NetError> {
        let mut all = Vec::new();
        for id in self.containers()? {
            all.extend(self.of(&id)?);
        }
        Ok(all)
    }
}

fn read_record(path: &Path) -> Result<Option<Record>, NetError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NetError::io("read", path)(e)),
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| NetError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if record.version != RECORD_VERSION {
        return Err(NetError::Corrupt {
            path: path.to_owned(),
            reason: format!("record version {} is not {RECORD_VERSION}", record.version),
        });
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(container: &ContainerId) -> Record {
        Record::new(
            container.clone(),
            NetworkName::default_network(),
            "eth0".into(),
            PathBuf::from("/run/netns/x"),
            None,
            Vec::new(),
            Vec::new(),
        )
    }

    #[test]
    fn leftovers_of_a_write_the_daemon_died_in_go_and_records_stay() {
        let dir = tempfile::tempdir().expect("temp dir");
        let records = Records::open(dir.path().to_owned()).expect("open");
        let (a, b) = (
            ContainerId::from_random_bytes([1; 32]),
            ContainerId::from_random_bytes([2; 32]),
        );
        // a: only the temp file of an interrupted write_atomic.
        ensure_dir(&dir.path().join(a.as_str())).expect("dir");
        fs::write(dir.path().join(a.as_str()).join(".berth.json.tmp-7"), b"{").expect("tmp");
        records.write(&record(&b)).expect("write");
        records.remove_leftovers(&a).expect("remove a");
        records.remove_leftovers(&b).expect("keep b");
        assert!(!dir.path().join(a.as_str()).exists());
        assert_eq!(records.of(&b).expect("read").len(), 1);
        assert_eq!(records.containers().expect("list"), [b]);
    }
}
