//! Garbage collection: releasing what containers that no longer exist left on the host.
//!
//! After a daemon is killed, three kinds of leftovers can outlive a container: attachment
//! records, host-local leases (an address, a veth, nftables or iptables rules, all released
//! by CNI DEL keyed on the container id) and pinned namespaces. [`Networks::gc`] is told which
//! containers are alive (the daemon knows, from what really runs) and releases the rest;
//! it is idempotent and safe to run at every daemon start.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use berth_types::ContainerId;

use crate::cni::CniExec;
use crate::cni::ipam;
use crate::fsutil::lock_dir;
use crate::record::Record;
use crate::{NetError, Network, NetworkName, NetworkStore, Networks, netns};

/// What one GC pass released, and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Attachments found in records and released.
    pub detached: Vec<(ContainerId, NetworkName)>,
    /// Leases (network, address, owner) with no record, released by CNI DEL.
    pub leases_released: Vec<(NetworkName, Ipv4Addr, ContainerId)>,
    /// Pinned namespaces removed.
    pub netns_removed: Vec<PathBuf>,
    /// Releases that failed; the leftovers stay for the next pass.
    pub errors: Vec<String>,
}

/// The leases host-local holds on `net`: (address, owner container id). Its data directory
/// has one file per address holding the owner's id and interface name.
pub(crate) fn leases(
    store: &NetworkStore,
    net: &Network,
) -> Result<Vec<(Ipv4Addr, String)>, NetError> {
    Ok(lease_files(store, net)?
        .into_iter()
        .map(|(ip, owner, _)| (ip, owner))
        .collect())
}

fn lease_files(
    store: &NetworkStore,
    net: &Network,
) -> Result<Vec<(Ipv4Addr, String, String)>, NetError> {
    let dir = store.ipam_dir().join(net.name.as_str());
    ipam::read_all(&dir).map_err(NetError::io("read", dir))
}

impl<E: CniExec> Networks<E> {
    /// Releases every attachment, lease and namespace of containers for which `alive`
    /// answers false. Failures are collected in the report, not returned, so one broken
    /// leftover does not keep the others.
    pub fn gc(&self, alive: &dyn Fn(&ContainerId) -> bool) -> Result<GcReport, NetError> {
        let _lock = lock_dir(self.records().dir())?;
        let mut report = GcReport::default();
        for container in self.records().containers()? {
            if alive(&container) {
                continue;
            }
            for record in self.records().of(&container)? {
                match self
                    .release(&record)
                    .and_then(|()| self.records().remove(&container, &record.network))
                {
                    Ok(()) => report
                        .detached
                        .push((container.clone(), record.network.clone())),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
            if let Err(e) = self.records().remove_leftovers(&container) {
                report.errors.push(e.to_string());
            }
        }
        for net in self.store().list()? {
            for (ip, owner, ifname) in lease_files(self.store(), &net)? {
                let Ok(container) = owner.parse::<ContainerId>() else {
                    continue;
                };
                if alive(&container) {
                    continue;
                }
                let record = Record::new(
                    container.clone(),
                    net.name.clone(),
                    ifname,
                    self.netns_path(&container),
                    None,
                    Vec::new(),
                    Vec::new(),
                );
                match self.release(&record) {
                    Ok(()) => report
                        .leases_released
                        .push((net.name.clone(), ip, container)),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }
        let entries = match fs::read_dir(self.netns_dir()) {
            Ok(entries) => entries.filter_map(Result::ok).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(NetError::io("read", self.netns_dir())(e)),
        };
        for entry in entries {
            let Some(container) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<ContainerId>().ok())
            else {
                continue;
            };
            if alive(&container) {
                continue;
            }
            match netns::remove(&entry.path()) {
                Ok(()) => report.netns_removed.push(entry.path()),
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if report != GcReport::default() {
            tracing::info!(?report, "network garbage collected");
        }
        Ok(report)
    }
}
