//! The node: the thin shell around the pure parts and openraft. Writes are proposed to raft;
//! raft appends them to its log (one fsync per batch), commits them, and hands them to the state
//! machine adapter, which applies them, commits their state and publishes them here. Only then
//! are clients answered and watch events sent. Reads see only applied (hence durable) revisions.

mod election;
mod forward;
mod members;
mod proposer;
mod read_index;
mod shared;
mod tasks;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::proto::PbResponseHeader;
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, InitializeError, RaftError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::apply::{ApplyOutput, Command, StateMachine};
use crate::backend::Backend;
use crate::config::{ClusterConfig, ClusterState, Config, listen_addr};
use crate::error::{EtcdError, StoreError};
use crate::lease::LeaseClock;
use crate::peer::{PeerNetwork, Peers, serve_peers};
use crate::raft::{self, LogStore, Raft, StateMachineStore};
use crate::watch::WatchHub;

const FORWARD_TIMEOUT: Duration = crate::peer::FORWARD_TIMEOUT;

pub use members::{MemberChange, MemberChanged, MemberError};
pub use proposer::{MAX_BATCH, MAX_BATCH_BYTES};
pub use shared::{Identity, Shared};
pub use tasks::spawn_background;

/// One running store member of a raft cluster (of one member unless `config.cluster` is set).
pub struct Node {
    shared: Arc<Shared>,
    raft: Raft,
    proposals: mpsc::Sender<proposer::Proposal>,
    /// A follower's writes on their way to the leader, in batches.
    forwarder: forward::Forwarder,
    /// Read-index rounds: the leader's quorum rounds (its own reads' and the followers'
    /// ReadIndex RPCs), and a follower's ReadIndex RPCs to the leader (ADR 0704).
    leader_reads: read_index::Coalescer,
    forwarded_reads: read_index::Coalescer,
    /// Channels to the other members: raft's and forwarding's.
    peers: Peers,
    /// Stops the peer server.
    peer_stop: watch::Sender<bool>,
    peer_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Membership changes are made one at a time.
    membership_lock: tokio::sync::Mutex<()>,
    /// When the leader was last heard, for the election timer.
    leader_contact: election::LeaderContact,
    pub config: Config,
    /// This member's id: its raft node id.
    pub member_id: u64,
    pub cluster_id: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("member_id", &self.member_id)
            .field("cluster_id", &self.cluster_id)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// Who leads, as this member knows.
enum Leader {
    ThisMember,
    /// Another member, at this peer URL.
    Other(String),
}

/// A member as MemberList reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// How long MemberList waits for another member to describe itself.
const DESCRIBE_LIMIT: Duration = Duration::from_millis(300);

impl Node {
    /// Loads the backend and starts raft over `log`. A one-member store waits until it leads;
    /// a cluster member starts its peer server, joins the initial membership
    /// (`--initial-cluster-state new`) and returns without waiting for an election.
    pub async fn start(
        config: Config,
        backend: Box<dyn Backend>,
        log: LogStore,
    ) -> Result<Arc<Self>, StoreError> {
        let peer_addrs = match &config.cluster {
            Some(cluster) => cluster
                .listen_peer_urls
                .iter()
                .map(|url| listen_addr(url))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let peers = Peers::default();
        let ids = match &config.cluster {
            Some(cluster) => Some((
                cluster.own_id(),
                cluster_id_of(&config, cluster, &peers).await,
            )),
            None => None,
        };
        let (shared, loaded) = Shared::load(
            backend,
            config.quota_backend_bytes,
            config.backend_batch,
            ids,
        )?;
        let sm = StateMachineStore::new(Arc::clone(&shared), loaded.raft_applied.as_deref())?;
        let raft_config = raft::raft_config(
            config.heartbeat_interval_ms,
            config.election_timeout_ms,
            config.snapshot_count,
        )
        .validate()
        .map_err(|e| raft_error("configuring", &e))?;
        let (member_id, cluster_id) = (loaded.member_id, loaded.cluster_id);
        let network = PeerNetwork::new(peers.clone());
        let raft = Raft::new(member_id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| raft_error("starting", &e))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| raft_error("starting", &e))?;
        let proposals = proposer::spawn(raft.clone());
        let (peer_stop, stop_rx) = watch::channel(false);
        let node = Arc::new(Self {
            shared,
            raft,
            proposals,
            forwarder: forward::Forwarder::new(peers.clone()),
            leader_reads: read_index::Coalescer::default(),
            forwarded_reads: read_index::Coalescer::default(),
            peers,
            peer_stop,
            peer_tasks: Mutex::new(Vec::new()),
            membership_lock: tokio::sync::Mutex::new(()),
            leader_contact: election::LeaderContact::new(Duration::from_millis(
                config.election_timeout_ms,
            )),
            config,
            member_id,
            cluster_id,
        });
        let Some(cluster) = node.config.cluster.clone() else {
            node.start_alone(initialized).await?;
            return Ok(node);
        };
        let mut tasks = serve_peers(&node, &peer_addrs, &stop_rx)?;
        tasks.push(tokio::spawn(election::stand_when_the_leader_is_silent(
            Arc::downgrade(&node),
            stop_rx.clone(),
        )));
        *node
            .peer_tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = tasks;
        if !initialized && cluster.state == ClusterState::New {
            let members = cluster.members();
            if !members.iter().any(|(id, _, _)| *id == member_id) {
                return Err(StoreError::Raft {
                    during: "bootstrapping",
                    reason: format!(
                        "this member's peer URL {} is not in --initial-cluster",
                        cluster.peer_url()
                    ),
                });
            }
            // Every member initializes with the same membership: the same first log entry on
            // each, so the order they start in does not matter. One that already heard from a
            // leader is initialized by it, and is told so.
            let membership: BTreeMap<u64, BasicNode> = members
                .into_iter()
                .map(|(id, _, url)| (id, BasicNode::new(url)))
                .collect();
            match node.raft.initialize(membership).await {
                Ok(()) => {}
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    tracing::info!("already part of the cluster: not initializing");
                }
                Err(e) => return Err(raft_error("initializing the cluster", &e)),
            }
        }
        Ok(node)
    }

    /// A one-member store: initializes itself on first start and waits until it leads.
    async fn start_alone(&self, initialized: bool) -> Result<(), StoreError> {
        let member_id = self.member_id;
        if !initialized {
            let addr = self
                .config
                .advertise_client_urls
                .first()
                .cloned()
                .unwrap_or_default();
            self.raft
                .initialize(BTreeMap::from([(member_id, BasicNode::new(addr))]))
                .await
                .map_err(|e| raft_error("initializing the one-member cluster", &e))?;
        }
        self.raft
            .wait(Some(raft::ELECTION_WAIT))
            .current_leader(member_id, "the one member leads")
            .await
            .map_err(|e| raft_error("electing the one member", &e))?;
        Ok(())
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The leader of `vote` was heard: raft accepted its AppendEntries or snapshot chunk
    /// just now.
    pub(crate) fn leader_heard(&self, vote: &openraft::Vote<u64>) {
        self.leader_contact.heard(vote);
    }

    /// The leader's member id, if this member knows one.
    pub fn leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.member_id)
    }

    /// Who leads; waits up to twice the election timeout for a leader to be known.
    async fn leader(&self) -> Result<Leader, EtcdError> {
        // Every write asks: while a leader is known, answer from the metrics in place, without
        // the copy of them a wait makes.
        if let Some(leader) = self.known_leader(&self.raft.metrics().borrow()) {
            return Ok(leader);
        }
        let limit = Duration::from_millis(self.config.election_timeout_ms * 2);
        let metrics = self
            .raft
            .wait(Some(limit))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|_| EtcdError::NoLeader)?;
        self.known_leader(&metrics).ok_or(EtcdError::NoLeader)
    }

    /// The leader as `metrics` name it; `None` if they name none, or one not in the membership.
    fn known_leader(&self, metrics: &openraft::RaftMetrics<u64, BasicNode>) -> Option<Leader> {
        let leader = metrics.current_leader?;
        if leader == self.member_id {
            return Some(Leader::ThisMember);
        }
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some(Leader::Other(node.addr.clone()))
    }

    /// Proposes a write through raft and waits until it is committed, applied and durable. On
    /// a follower the write is handed to the leader, which answers (ADR 0702).
    pub async fn propose(&self, command: Command) -> Result<ApplyOutput, EtcdError> {
        match self.leader().await? {
            Leader::ThisMember => self.propose_as_leader(command).await,
            Leader::Other(url) => self.forwarder.propose(url, command).await,
        }
    }

    /// Proposes a follower's forwarded batch on this member only (refused as a whole if it
    /// does not lead): all go to the proposer at once, and each gets its own answer.
    pub(crate) async fn propose_batch_as_leader(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Result<ApplyOutput, EtcdError>>, EtcdError> {
        if !self.is_leader() {
            return Err(EtcdError::LeaderChanged);
        }
        let mut answers = Vec::with_capacity(commands.len());
        for command in commands {
            let (reply, rx) = oneshot::channel();
            self.proposals
                .send(proposer::Proposal { command, reply })
                .await
                .map_err(|_| EtcdError::Stopped)?;
            answers.push(rx);
        }
        let mut results = Vec::with_capacity(answers.len());
        for rx in answers {
            results.push(rx.await.unwrap_or(Err(EtcdError::Stopped)));
        }
        Ok(results)
    }

    /// Proposes a write on this member only; refused if it does not lead.
    pub(crate) async fn propose_as_leader(
        &self,
        command: Command,
    ) -> Result<ApplyOutput, EtcdError> {
        if !self.is_leader() {
            return Err(EtcdError::LeaderChanged);
        }
        let (reply, rx) = oneshot::channel();
        self.proposals
            .send(proposer::Proposal { command, reply })
            .await
            .map_err(|_| EtcdError::Stopped)?;
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Waits until this member has applied everything committed before the call, as confirmed
    /// by the leader's leadership (raft's read index, asked of the leader by a follower): a
    /// read after it is linearizable. Rounds are shared by every read waiting for one, and a
    /// read only takes the index of a round that started after it arrived (ADR 0704).
    pub async fn linearize(&self) -> Result<(), EtcdError> {
        let index = match self.leader().await? {
            Leader::ThisMember => self.read_index_as_leader().await?,
            Leader::Other(_) => {
                let (raft, peers) = (self.raft.clone(), self.peers.clone());
                let (me, retry) = (self.member_id, self.read_retry());
                self.forwarded_reads
                    .read_index(move || forwarded_round(raft.clone(), peers.clone(), me, retry))
                    .await?
            }
        };
        self.raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(index), "read index applied")
            .await
            .map(drop)
            .map_err(|_| EtcdError::Timeout)
    }

    /// The read index, confirmed by a quorum in a round shared with every read waiting for one;
    /// refused if this member does not lead.
    pub(crate) async fn read_index_as_leader(&self) -> Result<u64, EtcdError> {
        let (raft, retry) = (self.raft.clone(), self.read_retry());
        self.leader_reads
            .read_index(move || leader_round(raft.clone(), retry))
            .await
    }

    /// How long a leader retries a read-index round that heard too few members in time.
    fn read_retry(&self) -> Duration {
        Duration::from_millis(self.config.election_timeout_ms)
    }

    /// Renews lease `id` on the leader's lease clock: the TTL granted again, or 0 for a lease
    /// that is gone or has expired (an expired lease is never brought back).
    pub async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        match self.leader().await? {
            Leader::ThisMember => self.keep_alive_here(id),
            Leader::Other(url) => self.peers.keep_alive(&url, id).await,
        }
    }

    /// [`Node::keep_alive`] on this member's lease clock; "leader changed" if it no longer
    /// leads.
    pub(crate) fn keep_alive_here(&self, id: i64) -> Result<i64, EtcdError> {
        let granted = self.read(|state, _| state.leases().ttl(id));
        let now = Instant::now();
        let mut clock = self.leader_clock().ok_or(EtcdError::LeaderChanged)?;
        Ok(match (granted, clock.remaining(id, now)) {
            (Some(ttl), Some(left)) if left > 0 => {
                clock.renew(id, ttl, now);
                ttl
            }
            _ => 0,
        })
    }

    /// The seconds lease `id` has left, as the leader's clock (the only one keep-alives reach)
    /// counts them; `None` for a lease it does not know.
    pub async fn lease_remaining(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        match self.leader().await? {
            Leader::ThisMember => self.lease_remaining_here(id),
            Leader::Other(url) => self.peers.lease_remaining(&url, id).await,
        }
    }

    /// [`Node::lease_remaining`] on this member's lease clock; "leader changed" if it no
    /// longer leads.
    pub(crate) fn lease_remaining_here(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        let clock = self.leader_clock().ok_or(EtcdError::LeaderChanged)?;
        Ok(clock.remaining(id, Instant::now()))
    }

    /// The lease clock for this member's use as leader (keep-alives, time to live, expiry),
    /// or `None` if it does not lead. The first time it is taken in a term this member leads,
    /// every lease gets its full TTL again from now: keep-alives only reached the old leader's
    /// clock, so a new leader does not know when each lease was last renewed, and must never
    /// expire one — or answer a keep-alive or a time-to-live — earlier than the old one would
    /// have. Doing it here rather than on the reaper's next tick leaves no moment in which the
    /// new leader answers from the deadlines it had as a follower.
    pub(crate) fn leader_clock(&self) -> Option<std::sync::MutexGuard<'_, LeaseClock>> {
        let term = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader == Some(self.member_id)).then_some(m.current_term)
        }?;
        {
            let clock = self.lease_clock();
            if clock.renewed_in_term() == Some(term) {
                return Some(clock);
            }
        }
        // The state is read before the clock is locked (the order every path takes). A lease
        // granted meanwhile was put on the clock by its apply; one revoked meanwhile is
        // renewed for nothing and dropped by the reaper when it comes due.
        let leases = self.read(|state, _| state.leases().all());
        let mut clock = self.lease_clock();
        if clock.renewed_in_term() != Some(term) {
            clock.renew_all(leases, Instant::now(), term);
        }
        Some(clock)
    }

    /// Stops raft (its log and state machine tasks) and the peer server.
    pub async fn shutdown(&self) {
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(%err, "raft did not stop cleanly");
        }
        let _ = self.peer_stop.send(true);
        let tasks = std::mem::take(
            &mut *self
                .peer_tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for task in tasks {
            let _ = task.await;
        }
        // Not needed for safety (the log replays it), but a clean stop leaves the state whole.
        if let Err(err) = self.shared.flush() {
            tracing::warn!(%err, "committing the applied state at stop failed");
        }
    }

    /// Rewrites the backend file to give back free space.
    pub async fn defragment(&self) -> Result<(), EtcdError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut backend = shared.backend();
            let result = backend.defragment();
            shared.check_quota(backend.size_bytes());
            result
        })
        .await
        .map_err(|_| EtcdError::Stopped)?
        .map_err(|err| {
            tracing::error!(%err, "defragment failed");
            EtcdError::Stopped
        })
    }

    /// Reads the state at the newest applied revision.
    pub fn read<T>(&self, f: impl FnOnce(&StateMachine, i64) -> T) -> T {
        let state = self.shared.state_read();
        f(&state, self.durable_revision())
    }

    pub fn durable_revision(&self) -> i64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    pub fn applied_index(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }

    pub fn db_size(&self) -> u64 {
        self.shared.db_size.load(Ordering::Acquire)
    }

    pub fn hub(&self) -> &WatchHub {
        &self.shared.hub
    }

    /// This member's lease clock as it is: as a follower's, it knows grants, not keep-alives.
    /// Use [`Node::leader_clock`] to act on it.
    fn lease_clock(&self) -> std::sync::MutexGuard<'_, LeaseClock> {
        self.shared.clock()
    }

    /// The raft term this member leads in.
    pub fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The members of the cluster, from raft's membership: id and address (the peer URL; a
    /// one-member store's is its client URL).
    pub fn members(&self) -> Vec<(u64, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    /// The members with their names and URLs: this member's from its configuration, the
    /// others' as they describe themselves over the peer port (empty if they do not answer
    /// within [`DESCRIBE_LIMIT`]).
    pub async fn member_list(&self) -> Vec<MemberInfo> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let mut asks = Vec::new();
        for (id, node) in membership.nodes() {
            let (id, url) = (*id, node.addr.clone());
            let is_learner = !voters.contains(&id);
            if id == self.member_id {
                let peer_urls = match &self.config.cluster {
                    Some(_) => vec![url],
                    None => Vec::new(),
                };
                asks.push(tokio::spawn(std::future::ready(MemberInfo {
                    id,
                    name: self.config.name.clone(),
                    peer_urls,
                    client_urls: self.config.advertise_client_urls.clone(),
                    is_learner,
                })));
                continue;
            }
            let peers = self.peers.clone();
            asks.push(tokio::spawn(async move {
                let described = peers.describe(&url, DESCRIBE_LIMIT).await;
                let (name, client_urls) =
                    described.map_or_else(Default::default, |d| (d.name, d.client_urls));
                MemberInfo {
                    id,
                    name,
                    peer_urls: vec![url],
                    client_urls,
                    is_learner,
                }
            }));
        }
        let mut members = Vec::new();
        for ask in asks {
            if let Ok(member) = ask.await {
                members.push(member);
            }
        }
        members
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term(),
        })
    }

    /// Whether the NOSPACE alarm is raised: writes that grow the store are refused.
    pub fn no_space(&self) -> bool {
        self.shared.no_space()
    }

    pub fn set_no_space(&self, raised: bool) {
        self.shared.no_space.store(raised, Ordering::Release);
    }

    /// Registers a watcher; history comes from the state at the newest published revision.
    pub fn watch(
        &self,
        stream: u64,
        id: i64,
        spec: crate::watch::WatchSpec,
        tx: mpsc::UnboundedSender<etcd_client::proto::PbWatchResponse>,
    ) -> bool {
        let state = self.shared.state_read();
        let view = shared::StateView { state: &state };
        self.shared.hub.watch(stream, id, spec, &view, tx)
    }
}

/// One read-index round on the leader: openraft's `get_read_log_id`, which confirms leadership
/// with a heartbeat to every voter, each allowed one heartbeat interval. A round that heard too
/// few of them in time (a loaded machine, a slow disk) proves nothing either way, so it is
/// tried again, for up to `retry`; only a member that learns it no longer leads says "leader
/// changed", one that cannot confirm it says "request timed out".
async fn leader_round(raft: Raft, retry: Duration) -> Result<u64, EtcdError> {
    let deadline = Instant::now() + retry;
    loop {
        match raft.get_read_log_id().await {
            Ok((read, _applied)) => return Ok(read.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(err))) => {
                tracing::debug!(%err, "read index round heard too few members; again");
                if Instant::now() >= deadline {
                    return Err(EtcdError::Timeout);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(RaftError::APIError(err)) => {
                tracing::debug!(%err, "read index refused");
                return Err(EtcdError::LeaderChanged);
            }
            Err(RaftError::Fatal(_)) => return Err(EtcdError::Stopped),
        }
    }
}

/// One read-index round on a follower: a ReadIndex RPC to the member that leads when the round
/// starts (or its own quorum round, if that is now this member).
async fn forwarded_round(
    raft: Raft,
    peers: Peers,
    me: u64,
    retry: Duration,
) -> Result<u64, EtcdError> {
    let url = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            None => return Err(EtcdError::NoLeader),
            Some(leader) if leader == me => None,
            Some(leader) => match metrics.membership_config.membership().get_node(&leader) {
                Some(node) => Some(node.addr.clone()),
                None => return Err(EtcdError::NoLeader),
            },
        }
    };
    match url {
        Some(url) => peers.read_index(&url).await,
        None => leader_round(raft, retry).await,
    }
}

/// The file in the data directory that keeps the cluster id a joining member adopted.
const CLUSTER_ID_FILE: &str = "cluster-id";
/// How long a joining member tries to learn the cluster's id from the other members.
const JOIN_DESCRIBE_LIMIT: Duration = Duration::from_secs(10);

/// The cluster's id. Members of `--initial-cluster-state new` derive it from their flags
/// (ADR 0702). A member that joins (`existing`) adopts the id the running members report and
/// keeps it in its data directory, since its own `--initial-cluster` lists other members than
/// the first ones did; if none answers it falls back to deriving it (only response headers
/// carry it), and asks again on its next start.
async fn cluster_id_of(config: &Config, cluster: &ClusterConfig, peers: &Peers) -> u64 {
    if cluster.state == ClusterState::New {
        return cluster.cluster_id();
    }
    let path = config.data_dir.join(CLUSTER_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(id) = u64::from_str_radix(text.trim(), 16)
    {
        return id;
    }
    let own = cluster.peer_url().trim_end_matches('/').to_owned();
    let others: Vec<String> = cluster
        .initial_cluster
        .iter()
        .map(|(_, url)| url.clone())
        .filter(|url| url.trim_end_matches('/') != own)
        .collect();
    let deadline = Instant::now() + JOIN_DESCRIBE_LIMIT;
    while Instant::now() < deadline {
        for url in &others {
            if let Some(reply) = peers.describe(url, DESCRIBE_LIMIT).await
                && reply.cluster_id != 0
            {
                let text = format!("{:016x}\n", reply.cluster_id);
                if let Err(err) = std::fs::write(&path, text) {
                    tracing::warn!(%err, path = %path.display(), "cannot keep the cluster id");
                }
                return reply.cluster_id;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(
        "no member of --initial-cluster told its cluster id; deriving it from the flags"
    );
    cluster.cluster_id()
}

fn raft_error(during: &'static str, err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Raft {
        during,
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests;
