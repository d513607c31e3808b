//! A cluster of store members on [`Hosts`], the load that scenarios put on it, and the checks
//! every scenario ends with ([`Cluster::verify`]).
//!
//! What runs on each host is a [`MemberCommand`]: [`Etcd`] (Debian's etcd 3.4, the reference)
//! or [`Berth`] (`berth store` with the same flags, ADR 0702).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use tokio::time::{Instant, sleep};

use crate::client::{WatchRecord, connect, record_watch};
use crate::hosts::{Hosts, HostsError};
use crate::lincheck::{self, Input, Operation, Output, Verdict};
use crate::watchcheck::{self, Event, EventKind};

/// Every key a scenario writes starts with this, so one prefix watch sees them all.
pub const PREFIX: &str = "h/";
/// The search budget of the linearizability check, per key.
pub const LINCHECK_BUDGET: u64 = 20_000_000;

/// Where and how member `index` of a cluster runs.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub index: usize,
    /// `n<index>`.
    pub name: String,
    pub ip: Ipv4Addr,
    pub client_url: String,
    pub peer_url: String,
    /// Every member as `name=peer_url`, comma separated (etcd's `--initial-cluster`).
    pub initial_cluster: String,
    /// Unique per cluster.
    pub cluster_token: String,
    /// `new` (a member of the first cluster) or `existing` (added at run time).
    pub initial_cluster_state: String,
    pub data_dir: PathBuf,
}

/// How to start one member of a store cluster: the one thing that differs between etcd and
/// berth in a scenario.
pub trait MemberCommand {
    /// The program and arguments that run `member`; also used unchanged to restart it on the
    /// same data directory.
    fn argv(&self, member: &MemberSpec) -> Vec<String>;
}

/// Debian's etcd 3.4 (`/usr/bin/etcd` from etcd-server), the reference every scenario also
/// runs against.
#[derive(Clone, Copy, Debug, Default)]
pub struct Etcd;

impl MemberCommand for Etcd {
    fn argv(&self, m: &MemberSpec) -> Vec<String> {
        let data_dir = m.data_dir.display().to_string();
        [
            "etcd",
            "--name",
            &m.name,
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            &m.client_url,
            "--advertise-client-urls",
            &m.client_url,
            "--listen-peer-urls",
            &m.peer_url,
            "--initial-advertise-peer-urls",
            &m.peer_url,
            "--initial-cluster",
            &m.initial_cluster,
            "--initial-cluster-token",
            &m.cluster_token,
            "--initial-cluster-state",
            &m.initial_cluster_state,
            "--logger",
            "zap",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// berth's store (`berth store`), given the path of the `berth` binary: etcd's flags, which
/// `berth store` takes by the same names.
#[derive(Clone, Debug)]
pub struct Berth {
    pub binary: PathBuf,
}

impl MemberCommand for Berth {
    fn argv(&self, m: &MemberSpec) -> Vec<String> {
        let mut argv = vec![
            self.binary.display().to_string(),
            "--log-level".to_owned(),
            "info".to_owned(),
            "store".to_owned(),
        ];
        // Etcd's arguments less the program and its logger flags.
        let etcd = Etcd.argv(m);
        argv.extend(etcd[1..etcd.len() - 2].iter().cloned());
        argv
    }
}

/// Why a scenario's checks failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("hosts: {0}")]
    Hosts(#[from] HostsError),
    #[error("cluster not ready: {0}")]
    NotReady(String),
    #[error("{0}")]
    NotLinearizable(Verdict),
    #[error("acknowledged write missing from the committed history: {0}")]
    LostWrite(Box<Operation>),
    #[error("watch stream: {0}")]
    Watch(Box<watchcheck::WatchViolation>),
    #[error("members' HashKV at the final revision differ: {0:?}")]
    Hashes(Vec<Result<u32, String>>),
}

/// What [`Cluster::verify`] found, for the test's log.
#[derive(Debug)]
pub struct Report {
    pub operations: usize,
    pub unknown: usize,
    pub revision: i64,
    pub hash: u32,
}

/// N members, one per host.
#[derive(Debug)]
pub struct Cluster {
    pub hosts: Hosts,
    /// Member i's client URL.
    pub endpoints: Vec<String>,
    /// How member i was last started.
    pub specs: Vec<MemberSpec>,
}

impl Cluster {
    /// Makes `count` hosts and starts a member on each.
    pub fn start(count: usize, command: &dyn MemberCommand) -> Result<Self, ScenarioError> {
        let mut hosts = Hosts::new(count)?;
        let url = |i: usize, port: u16| format!("http://{}:{port}", hosts.addr(i));
        let initial_cluster = (0..count)
            .map(|i| format!("n{i}={}", url(i, 2380)))
            .collect::<Vec<_>>()
            .join(",");
        let specs: Vec<MemberSpec> = (0..count)
            .map(|i| MemberSpec {
                index: i,
                name: format!("n{i}"),
                ip: hosts.addr(i),
                client_url: url(i, 2379),
                peer_url: url(i, 2380),
                initial_cluster: initial_cluster.clone(),
                cluster_token: hosts.netns(0),
                initial_cluster_state: "new".to_owned(),
                data_dir: hosts.data_dir(i),
            })
            .collect();
        for spec in &specs {
            hosts.start(spec.index, &command.argv(spec))?;
        }
        let endpoints = specs.iter().map(|s| s.client_url.clone()).collect();
        Ok(Cluster {
            hosts,
            endpoints,
            specs,
        })
    }

    /// Replaces member `i` by a fresh one on the same host, as an operator replaces a lost
    /// machine: `member remove` of it (asked of another member), kill -9, its data directory
    /// deleted, `member add` of a new peer URL (`peer_port`), and the new member started on an
    /// empty directory with `--initial-cluster-state existing` and the `--initial-cluster` the
    /// cluster now lists. Its client URL is the old one, so the load's clients go on using it.
    pub async fn replace_member(
        &mut self,
        i: usize,
        peer_port: u16,
        command: &dyn MemberCommand,
    ) -> Result<(), ScenarioError> {
        let others: Vec<String> = (0..self.endpoints.len())
            .filter(|&j| j != i)
            .map(|j| self.endpoints[j].clone())
            .collect();
        let old_peer = self.specs[i].peer_url.clone();
        let new_peer = format!("http://{}:{peer_port}", self.hosts.addr(i));
        let deadline = Instant::now() + Duration::from_secs(30);
        let not_ready = |what: &str, e: &dyn std::fmt::Display| {
            ScenarioError::NotReady(format!("replacing member {i}: {what}: {e}"))
        };
        // Retried until the cluster accepts: a change may be refused during an election.
        let members = loop {
            let tried = async {
                let mut client = connect(&others, Duration::from_secs(2)).await?;
                let list = client.member_list().await?;
                if list
                    .members()
                    .iter()
                    .any(|m| m.peer_urls().contains(&new_peer))
                {
                    // An earlier try was refused to the client but made.
                    return Ok(list.members().to_vec());
                }
                if let Some(old) = list
                    .members()
                    .iter()
                    .find(|m| m.peer_urls().contains(&old_peer))
                {
                    client.member_remove(old.id()).await?;
                }
                let added = client.member_add([new_peer.clone()], None).await?;
                Ok::<_, etcd_client::Error>(added.member_list().to_vec())
            };
            match tried.await {
                Ok(members) => break members,
                Err(e) if Instant::now() > deadline => return Err(not_ready("member add", &e)),
                Err(_) => sleep(Duration::from_millis(300)).await,
            }
        };
        if self.hosts.is_running(i) {
            self.hosts.kill9(i)?;
        }
        let data_dir = self.hosts.data_dir(i);
        std::fs::remove_dir_all(&data_dir).map_err(|e| not_ready("delete the data dir", &e))?;
        let name = format!("n{i}r");
        let initial_cluster = members
            .iter()
            .flat_map(|m| {
                let name = if m.peer_urls().contains(&new_peer) {
                    name.clone()
                } else {
                    m.name().to_owned()
                };
                m.peer_urls()
                    .iter()
                    .map(move |u| format!("{name}={u}"))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join(",");
        let spec = MemberSpec {
            name,
            peer_url: new_peer,
            initial_cluster,
            initial_cluster_state: "existing".to_owned(),
            ..self.specs[i].clone()
        };
        self.hosts.start(i, &command.argv(&spec))?;
        self.specs[i] = spec;
        Ok(())
    }

    /// Waits until every running member answers and a write through each succeeds.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), ScenarioError> {
        let deadline = Instant::now() + limit;
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if !self.hosts.is_running(i) {
                continue;
            }
            loop {
                let last =
                    match connect(std::slice::from_ref(endpoint), Duration::from_secs(2)).await {
                        Ok(mut client) => match client
                            .put(format!("{PREFIX}ready"), endpoint.as_str(), None)
                            .await
                        {
                            Ok(_) => break,
                            Err(e) => e.to_string(),
                        },
                        Err(e) => e.to_string(),
                    };
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(self.hosts.log_path(i)).unwrap_or_default();
                    let tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                    return Err(ScenarioError::NotReady(format!(
                        "member {i}: {last}; log tail (newest first):\n{tail}"
                    )));
                }
                sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// The current revision, read linearizably through any member that answers.
    pub async fn revision(&self, limit: Duration) -> Result<i64, ScenarioError> {
        let deadline = Instant::now() + limit;
        loop {
            for endpoint in &self.endpoints {
                if let Ok(mut client) =
                    connect(std::slice::from_ref(endpoint), Duration::from_secs(2)).await
                    && let Ok(resp) = client.get(PREFIX, None).await
                    && let Some(header) = resp.header()
                {
                    return Ok(header.revision());
                }
            }
            if Instant::now() > deadline {
                return Err(ScenarioError::NotReady("no member answers a read".into()));
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// The checks every scenario ends with, once faults are healed and every member runs:
    /// the history (less the unknown writes that never took effect, see [`drop_unapplied`]) is
    /// linearizable; every acknowledged put is in the committed history (read
    /// by a fresh watch from revision 1) at its revision; every member's HashKV at the final
    /// revision is equal; every watcher got exactly the committed history from its start.
    pub async fn verify(
        &self,
        ops: &[Operation],
        watchers: &[WatchRecord],
    ) -> Result<Report, ScenarioError> {
        self.wait_ready(Duration::from_secs(60)).await?;
        let revision = self.revision(Duration::from_secs(30)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let committed = record_watch(
            &self.endpoints,
            PREFIX,
            1,
            &AtomicI64::new(revision),
            deadline,
        )
        .await;
        let history = committed.events;
        if history.last().map(|e| e.revision) != Some(revision) {
            let got = history.last().map_or(0, |e| e.revision);
            return Err(ScenarioError::NotReady(format!(
                "the committed history read back ends at revision {got}, not at {revision}"
            )));
        }
        let verdict = lincheck::check(&drop_unapplied(ops, &history), LINCHECK_BUDGET);
        if verdict != Verdict::Linearizable {
            return Err(ScenarioError::NotLinearizable(verdict));
        }
        check_acknowledged(ops, &history)?;
        for watcher in watchers {
            let upto: Vec<Event> = history
                .iter()
                .filter(|e| e.revision <= watcher.until)
                .cloned()
                .collect();
            watchcheck::check(&upto, watcher.start, &watcher.events, true)
                .map_err(ScenarioError::Watch)?;
        }
        let hash = self.equal_hashes(revision).await?;
        let unknown = ops.iter().filter(|op| op.output == Output::Unknown).count();
        Ok(Report {
            operations: ops.len(),
            unknown,
            revision,
            hash,
        })
    }

    async fn equal_hashes(&self, revision: i64) -> Result<u32, ScenarioError> {
        let mut hashes = Vec::new();
        for endpoint in &self.endpoints {
            let deadline = Instant::now() + Duration::from_secs(30);
            let hash = loop {
                let answer =
                    match connect(std::slice::from_ref(endpoint), Duration::from_secs(2)).await {
                        Ok(mut client) => client
                            .hash_kv(revision)
                            .await
                            .map(|r| r.hash())
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                // A member still catching up answers "future revision": ask again.
                if answer.is_ok() || Instant::now() > deadline {
                    break answer;
                }
                sleep(Duration::from_millis(200)).await;
            };
            hashes.push(hash);
        }
        match hashes.first() {
            Some(Ok(first)) if hashes.iter().all(|h| h.as_ref() == Ok(first)) => Ok(*first),
            _ => Err(ScenarioError::Hashes(hashes)),
        }
    }
}

/// Drops the writes with unknown outcome whose value the committed history never shows: they
/// did not take effect (every written value is unique), so the checker need not try both ways.
/// This is what keeps the search small after a fault left many writes unanswered.
pub fn drop_unapplied(ops: &[Operation], history: &[Event]) -> Vec<Operation> {
    let written: std::collections::HashSet<(&str, &str)> = history
        .iter()
        .filter_map(|e| Some((e.key.as_str(), e.value.as_deref()?)))
        .collect();
    ops.iter()
        .filter(|op| {
            let value = match &op.input {
                Input::Put { value, .. } => value,
                Input::Cas { new, .. } => new,
                _ => return true,
            };
            op.output != Output::Unknown || written.contains(&(op.input.key(), value.as_str()))
        })
        .cloned()
        .collect()
}

/// Every put acknowledged at revision r must be the committed history's event at r, and every
/// compare-and-set that answered "succeeded" must have its (unique) value in the history.
fn check_acknowledged(ops: &[Operation], history: &[Event]) -> Result<(), ScenarioError> {
    let put_at = |key: &str, value: &str, revision: Option<i64>| {
        history.iter().any(|e| {
            revision.is_none_or(|r| e.revision == r)
                && e.key == key
                && e.kind == EventKind::Put
                && e.value.as_deref() == Some(value)
        })
    };
    for op in ops {
        let found = match (&op.input, &op.output) {
            (Input::Put { key, value }, Output::Put { revision }) => {
                put_at(key, value, Some(*revision))
            }
            (Input::Cas { key, new, .. }, Output::Cas { succeeded: true }) => {
                put_at(key, new, None)
            }
            _ => true,
        };
        if !found {
            return Err(ScenarioError::LostWrite(Box::new(op.clone())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lincheck::NEVER;

    fn unknown_put(value: &str) -> Operation {
        let input = Input::Put {
            key: "h/k".into(),
            value: value.into(),
        };
        Operation {
            client: 0,
            input,
            call: 0,
            ret: NEVER,
            output: Output::Unknown,
        }
    }

    #[test]
    fn a_successful_compare_and_set_missing_from_the_history_is_a_lost_write() {
        let cas = Operation {
            client: 0,
            input: Input::Cas {
                key: "h/k".into(),
                expected: None,
                new: "a".into(),
            },
            call: 0,
            ret: 1,
            output: Output::Cas { succeeded: true },
        };
        let put = |value: &str| Event {
            revision: 2,
            key: "h/k".into(),
            kind: EventKind::Put,
            value: Some(value.into()),
        };
        assert!(check_acknowledged(std::slice::from_ref(&cas), &[put("a")]).is_ok());
        assert!(matches!(
            check_acknowledged(&[cas], &[put("b")]),
            Err(ScenarioError::LostWrite(_))
        ));
    }

    #[test]
    fn unknown_writes_stay_only_if_the_committed_history_shows_their_value() {
        let applied = unknown_put("a");
        let lost = unknown_put("b");
        let read = Operation {
            client: 1,
            input: Input::Get { key: "h/k".into() },
            call: 1,
            ret: 2,
            output: Output::Get(None),
        };
        let history = [Event {
            revision: 2,
            key: "h/k".into(),
            kind: EventKind::Put,
            value: Some("a".into()),
        }];
        let kept = drop_unapplied(&[applied.clone(), lost, read.clone()], &history);
        assert_eq!(kept, vec![applied, read]);
    }
}
