//! A 3-member store on loopback, in one process (issue #7): writes through any member are seen
//! by all, a stopped leader is replaced and loses no acknowledged write, and a restarted
//! member catches up to the same HashKV; a kept-alive lease is not expired early by a new
//! leader, and expires once keep-alives stop. Membership changes at run time are made with
//! Debian's `etcdctl` (ADR 0703): a learner added, caught up from a snapshot (the log was
//! compacted), promoted; the leader removed; etcd's refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_store::Config;
use berth_store::config::{ClusterConfig, ClusterState};
use etcd_client::{
    Client, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

const MEMBERS: usize = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One member: its configuration, and the running server with the way to stop it.
struct Member {
    config: Config,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl Member {
    fn endpoint(&self) -> String {
        self.config.advertise_client_urls[0].clone()
    }

    fn start(&mut self) {
        let (stop, stopped) = watch::channel(false);
        let config = self.config.clone();
        let task = tokio::spawn(async move {
            // The data file of a member just stopped may still be held for a moment.
            for _ in 0..100 {
                let mut stopped = stopped.clone();
                let until = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                match berth_store::serve(config.clone(), until).await {
                    Err(berth_store::StoreError::Open { .. }) => {
                        sleep(Duration::from_millis(50)).await;
                    }
                    other => {
                        other.expect("member serves until stopped");
                        return;
                    }
                }
            }
            panic!("the data directory never opened");
        });
        self.running = Some((stop, task));
    }

    async fn stop(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        let _ = stop.send(true);
        task.await.expect("member stopped cleanly");
    }
}

/// The configuration of member `i` at `client`/`peer` ports in `initial` (etcd's
/// `--initial-cluster`).
fn member_config(dir: &Path, i: usize, client: u16, peer: u16, initial: &str) -> Config {
    let mut config = Config::new(PathBuf::from(dir).join(format!("n{i}")));
    config.name = format!("n{i}");
    config.listen_client_urls = vec![format!("http://127.0.0.1:{client}")];
    config.advertise_client_urls = config.listen_client_urls.clone();
    config.heartbeat_interval_ms = 50;
    config.election_timeout_ms = 500;
    let peer_url = format!("http://127.0.0.1:{peer}");
    config.cluster = Some(ClusterConfig {
        initial_cluster: ClusterConfig::parse_initial_cluster(initial).unwrap(),
        state: ClusterState::New,
        token: "cluster-test".into(),
        listen_peer_urls: vec![peer_url.clone()],
        advertise_peer_urls: vec![peer_url],
    });
    config
}

fn cluster(dir: &Path) -> Vec<Member> {
    let ports: Vec<(u16, u16)> = (0..MEMBERS).map(|_| (free_port(), free_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("n{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| Member {
            config: member_config(dir, i, *client, *peer, &initial),
            running: None,
        })
        .collect()
}

async fn client(endpoint: &str) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect([endpoint], Some(options.clone())).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("{endpoint}: {e}"),
            Err(_) => sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The index of the member every running member names as leader.
async fn leader(members: &[Member]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // (index in `members`, the leader it reports, its own id) for each running member.
        let mut seen = Vec::new();
        for (i, m) in members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.running.is_some())
        {
            if let Ok(mut c) = Client::connect([m.endpoint()], None).await
                && let Ok(status) = c.status().await
            {
                seen.push((status.leader(), status.header().map(|h| h.member_id()), i));
            }
        }
        let running = members.iter().filter(|m| m.running.is_some()).count();
        if seen.len() == running
            && let Some(&(id, _, _)) = seen.first()
            && id != 0
            && seen.iter().all(|(l, _, _)| *l == id)
            && let Some(&(_, _, i)) = seen.iter().find(|(_, me, _)| *me == Some(id))
        {
            return i;
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `key` through `endpoint`, retrying while the cluster elects; the revision it got.
async fn put(endpoint: &str, key: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = client(endpoint).await;
    loop {
        match c.put(key, key, None).await {
            Ok(r) => return r.header().unwrap().revision(),
            Err(e) if Instant::now() > deadline => panic!("put {key} via {endpoint}: {e}"),
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Every acknowledged key is on member `endpoint`, at its revision.
async fn check_all(endpoint: &str, acked: &[(String, i64)]) {
    let mut c = client(endpoint).await;
    // A linearizable read first (retried: it fails while an election is under way).
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = c.get("sync", None).await {
        assert!(
            Instant::now() < deadline,
            "linearizable read on {endpoint}: {e}"
        );
        sleep(Duration::from_millis(100)).await;
    }
    for (key, rev) in acked {
        let r = c
            .get(key.as_str(), Some(GetOptions::new().with_serializable()))
            .await
            .expect("get");
        let kv = r
            .kvs()
            .first()
            .unwrap_or_else(|| panic!("{key} missing on {endpoint}"));
        assert_eq!(kv.mod_revision(), *rev, "{key} on {endpoint}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_replicate_survive_the_leader_and_converge_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path());
    for m in &mut members {
        m.start();
    }
    let first = leader(&members).await;

    // Writes through every member, followers included, are seen by every member.
    let mut acked = Vec::new();
    for round in 0..10 {
        for (i, m) in members.iter().enumerate() {
            let key = format!("k/{round}/{i}");
            acked.push((key.clone(), put(&m.endpoint(), &key).await));
        }
    }
    for m in &members {
        check_all(&m.endpoint(), &acked).await;
    }
    let mut c = client(&members[(first + 1) % MEMBERS].endpoint()).await;
    let list = c.member_list().await.expect("member list");
    assert_eq!(list.members().len(), MEMBERS);
    let mut names: Vec<&str> = list.members().iter().map(|m| m.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["n0", "n1", "n2"]);
    assert!(list.members().iter().all(|m| m.client_urls().len() == 1));

    // The leader stops: the other two elect a new one, and writes go on through both.
    members[first].stop().await;
    let second = leader(&members).await;
    assert_ne!(second, first);
    for round in 10..20 {
        for (i, m) in members.iter().enumerate() {
            if i != first {
                let key = format!("k/{round}/{i}");
                acked.push((key.clone(), put(&m.endpoint(), &key).await));
            }
        }
    }

    // The old leader comes back, catches up, and every member has the same history.
    members[first].start();
    let revision = put(&members[second].endpoint(), "k/last").await;
    acked.push(("k/last".into(), revision));
    let mut hashes = Vec::new();
    for m in &members {
        check_all(&m.endpoint(), &acked).await;
        let mut c = client(&m.endpoint()).await;
        hashes.push(c.hash_kv(revision).await.expect("hash kv").hash());
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    for m in &mut members {
        m.stop().await;
    }
}

/// Sends one keep-alive on a stream and returns the TTL it was answered with.
async fn keep_alive(keeper: &mut LeaseKeeper, answers: &mut LeaseKeepAliveStream) -> i64 {
    keeper.keep_alive().await.expect("keep-alive sent");
    answers
        .message()
        .await
        .expect("keep-alive answered")
        .expect("an answer")
        .ttl()
}

/// Leases across a leader change (issue #7). Keep-alives renew the lease on the leader's
/// clock only, so a new leader knows a lease's grant and nothing since: it must give every lease
/// its full TTL again rather than expire it by what it knew. A lease kept alive through a
/// follower for longer than its TTL has time left when asked through that follower, outlives
/// the stop of the leader until at least its TTL after the last keep-alive, is kept alive by
/// the new leader; once keep-alives stop, the new leader does expire it and deletes its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_alive_lease_is_not_expired_early_by_a_new_leader_and_still_expires() {
    const TTL: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path());
    for m in &mut members {
        m.start();
    }
    let first = leader(&members).await;
    let follower = (first + 1) % MEMBERS;
    let mut c = client(&members[follower].endpoint()).await;
    let lease = c
        .lease_grant(TTL as i64, None)
        .await
        .expect("lease grant")
        .id();
    c.put("leased", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with the lease");

    // Kept alive through the follower for longer than the TTL: a clock counting from the
    // grant would have expired the lease by the end of this.
    let (mut keeper, mut answers) = c.lease_keep_alive(lease).await.expect("keep-alive");
    let keep_until = Instant::now() + Duration::from_secs(TTL + 2);
    let mut last = Instant::now();
    while Instant::now() < keep_until {
        assert_eq!(
            keep_alive(&mut keeper, &mut answers).await,
            TTL as i64,
            "keep-alive answer"
        );
        last = Instant::now();
        sleep(Duration::from_millis(500)).await;
    }
    drop((keeper, answers));
    // A follower's own clock knows the grant only: it asks the leader's.
    let ttl = c
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live through the follower")
        .ttl();
    assert!(ttl > 0, "the follower says the lease has {ttl} s left");

    members[first].stop().await;
    let second = leader(&members).await;
    assert_ne!(second, first);
    let mut l = client(&members[second].endpoint()).await;
    let ttl = l
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live on the new leader")
        .ttl();
    assert!(ttl > 0, "the new leader gives the lease {ttl} s left");
    // Until TTL after the last keep-alive (less a margin for the read itself), the key stays.
    let safe_until = last + Duration::from_secs(TTL) - Duration::from_millis(300);
    let mut reads = 0;
    while Instant::now() < safe_until {
        if let Ok(r) = l.get("leased", None).await {
            assert_eq!(
                r.kvs().len(),
                1,
                "the lease expired {:?} after its last keep-alive, before its TTL of {TTL} s",
                last.elapsed()
            );
            reads += 1;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reads > 0,
        "the failover took the whole TTL: nothing was checked"
    );
    // A keep-alive now reaches the new leader, whose clock must not call the lease expired.
    let (mut keeper, mut answers) = l.lease_keep_alive(lease).await.expect("keep-alive");
    assert_eq!(
        keep_alive(&mut keeper, &mut answers).await,
        TTL as i64,
        "keep-alive on the new leader"
    );
    drop((keeper, answers));

    // No more keep-alives: the new leader expires the lease and its key goes.
    let deadline = Instant::now() + Duration::from_secs(TTL + 5);
    loop {
        if let Ok(r) = l.get("leased", None).await
            && r.kvs().is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lease never expired on the new leader"
        );
        sleep(Duration::from_millis(100)).await;
    }
    let gone = l
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert_eq!(gone.ttl(), -1, "an expired lease reports TTL -1");
    for m in &mut members {
        if m.running.is_some() {
            m.stop().await;
        }
    }
}

/// Many clients of one follower at once (ADR 0704): their writes reach the leader in shared
/// ProposeBatch RPCs and their linearizable reads share read-index rounds, yet each write gets
/// its own answer — its own revision, or its own refusal — and each read that starts after a
/// write was acknowledged, on either follower, sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_concurrent_writes_and_reads_share_batches_but_get_their_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path());
    for m in &mut members {
        m.start();
    }
    let l = leader(&members).await;
    let follower = members[(l + 1) % MEMBERS].endpoint();
    let other = members[(l + 2) % MEMBERS].endpoint();
    put(&follower, "warm-up").await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (follower, other) = (follower.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            let mut writer = client(&follower).await;
            let mut reader = client(if i % 2 == 0 { &follower } else { &other }).await;
            let mut revisions = Vec::new();
            for round in 0..5 {
                let key = format!("batch/{i}/{round}");
                if (i + round) % 4 == 0 {
                    // A lease that does not exist: refused on its own, the batch's other
                    // writes are not.
                    let options = PutOptions::new().with_lease(0x5eed_0000 + i);
                    let err = writer
                        .put(key.as_str(), "v", Some(options))
                        .await
                        .expect_err("put with an unknown lease");
                    assert!(
                        err.to_string().contains("requested lease not found"),
                        "{key}: {err}"
                    );
                    continue;
                }
                let put = writer.put(key.as_str(), key.as_str(), None).await;
                let revision = put.expect("put").header().unwrap().revision();
                let got = reader
                    .get(key.as_str(), None)
                    .await
                    .expect("linearizable get");
                let kv = got
                    .kvs()
                    .first()
                    .unwrap_or_else(|| panic!("{key} not seen"));
                assert_eq!(kv.mod_revision(), revision, "{key}");
                revisions.push(revision);
            }
            revisions
        }));
    }
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.extend(task.await.expect("client task"));
    }
    let written = revisions.len();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), written, "every write has its own revision");
    for m in &mut members {
        m.stop().await;
    }
}

/// A leader that cannot hear a quorum any more serves no linearizable read: it retries its
/// leadership check for an election timeout, then answers "request timed out" (ADR 0704) —
/// not a stale value, and not "leader changed", which it cannot know.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_without_its_quorum_times_out_linearizable_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path());
    for m in &mut members {
        m.start();
    }
    let l = leader(&members).await;
    let endpoint = members[l].endpoint();
    put(&endpoint, "before").await;
    for i in 1..MEMBERS {
        members[(l + i) % MEMBERS].stop().await;
    }
    let mut c = client(&endpoint).await;
    let err = c.get("before", None).await.expect_err("no quorum, no read");
    assert!(err.to_string().contains("request timed out"), "{err}");
    let local = c
        .get("before", Some(GetOptions::new().with_serializable()))
        .await
        .expect("a serializable read stays local");
    assert_eq!(local.kvs().len(), 1);
    members[l].stop().await;
}

/// Runs Debian's etcdctl (API v3) against `endpoint`: its exit status and stdout + stderr.
async fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .output()
        .await
        .expect("etcdctl runs (Debian's etcd-client)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// etcdctl's `member list`: (id in hex, name, peer URL, is learner) of each member.
async fn member_list(endpoint: &str) -> Vec<(String, String, String, bool)> {
    let (ok, text) = etcdctl(endpoint, &["member", "list"]).await;
    assert!(ok, "member list: {text}");
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(", ").collect();
            assert_eq!(f.len(), 6, "member list line {line:?}");
            (f[0].into(), f[2].into(), f[3].into(), f[5] == "true")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_adds_a_learner_that_catches_up_from_a_snapshot_promotes_it_and_removes_the_leader()
{
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path());
    for m in &mut members {
        // A snapshot every 20 entries: the log the new member needs is purged.
        m.config.snapshot_count = 20;
        m.start();
    }
    let first = leader(&members).await;
    let mut acked = Vec::new();
    for i in 0..60 {
        let key = format!("k/{i}");
        let via = members[i % MEMBERS].endpoint();
        acked.push((key.clone(), put(&via, &key).await));
    }
    // Asked of a follower: the change is handed to the leader.
    let ask = members[(first + 1) % MEMBERS].endpoint();

    // etcd's refusals, with etcd's messages.
    let taken = members[0]
        .config
        .cluster
        .as_ref()
        .unwrap()
        .peer_url()
        .to_owned();
    let (ok, text) = etcdctl(
        &ask,
        &["member", "add", "dup", &format!("--peer-urls={taken}")],
    )
    .await;
    assert!(
        !ok && text.contains("etcdserver: Peer URLs already exists"),
        "{text}"
    );
    let (ok, text) = etcdctl(&ask, &["member", "remove", "1234abcd"]).await;
    assert!(
        !ok && text.contains("etcdserver: member not found"),
        "{text}"
    );
    let voter = member_list(&ask).await[0].0.clone();
    let (ok, text) = etcdctl(&ask, &["member", "promote", &voter]).await;
    assert!(
        !ok && text.contains("etcdserver: can only promote a learner member"),
        "{text}"
    );

    // A learner is added; etcdctl prints the flags to start it with.
    let (client_port, peer_port) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let (ok, text) = etcdctl(
        &ask,
        &[
            "member",
            "add",
            "n3",
            &format!("--peer-urls={peer_url}"),
            "--learner",
        ],
    )
    .await;
    assert!(ok, "member add: {text}");
    let initial = text
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {text}"))
        .to_owned();
    assert!(initial.contains(&format!("n3={peer_url}")), "{initial}");
    assert!(
        text.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{text}"
    );
    let list = member_list(&ask).await;
    assert_eq!(list.len(), MEMBERS + 1);
    let new_id = list
        .iter()
        .find(|m| m.2 == peer_url)
        .map(|m| m.0.clone())
        .expect("the learner is listed");
    assert!(
        list.iter().any(|m| m.2 == peer_url && m.3),
        "listed as learner: {list:?}"
    );

    // Not started yet, so not in sync: promoting it is refused as etcd does.
    let (ok, text) = etcdctl(&ask, &["member", "promote", &new_id]).await;
    assert!(
        !ok && text.contains("can only promote a learner member which is in sync with leader"),
        "{text}"
    );

    // Started on an empty directory with the flags etcdctl printed, it catches up.
    let mut config = member_config(dir.path(), MEMBERS, client_port, peer_port, &initial);
    config.snapshot_count = 20;
    config.cluster.as_mut().unwrap().state = ClusterState::Existing;
    members.push(Member {
        config,
        running: None,
    });
    members[MEMBERS].start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, text) = etcdctl(&ask, &["member", "promote", &new_id]).await;
        if ok {
            assert!(text.contains("promoted"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never promoted: {text}");
        sleep(Duration::from_millis(200)).await;
    }
    let list = member_list(&members[MEMBERS].endpoint()).await;
    assert_eq!(list.len(), MEMBERS + 1);
    assert!(list.iter().all(|m| !m.3), "no learner left: {list:?}");
    assert!(list.iter().any(|m| m.1 == "n3"), "{list:?}");
    check_all(&members[MEMBERS].endpoint(), &acked).await;

    // The leader is removed: the others elect a new one and go on.
    let leader_id = format!(
        "{:x}",
        members[first].config.cluster.as_ref().unwrap().own_id()
    );
    let (ok, text) = etcdctl(&ask, &["member", "remove", &leader_id]).await;
    assert!(ok && text.contains("removed"), "member remove: {text}");
    members[first].stop().await;
    let list = member_list(&ask).await;
    assert_eq!(list.len(), MEMBERS, "{list:?}");
    assert!(list.iter().all(|m| m.0 != leader_id), "{list:?}");
    let second = leader(&members).await;
    assert_ne!(second, first);
    let revision = put(&members[MEMBERS].endpoint(), "k/last").await;
    acked.push(("k/last".into(), revision));
    let mut hashes = Vec::new();
    for m in members.iter().filter(|m| m.running.is_some()) {
        check_all(&m.endpoint(), &acked).await;
        let mut c = client(&m.endpoint()).await;
        hashes.push(c.hash_kv(revision).await.expect("hash kv").hash());
    }
    assert_eq!(hashes.len(), MEMBERS);
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    for m in members.iter_mut().filter(|m| m.running.is_some()) {
        m.stop().await;
    }
}

/// etcdctl dials the endpoints of `endpoint status`, `endpoint hashkv`, `defrag` and
/// `move-leader` raw, so with `--endpoints http://…` grpc-go sends the whole URL as the
/// `:authority` (ADR 0405); the store answers them as etcd does, and answers the same with
/// the endpoint written without the scheme.
#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_with_http_endpoints_runs_status_hashkv_defrag_and_move_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("single"));
    config.listen_client_urls = vec![format!("http://127.0.0.1:{}", free_port())];
    config.advertise_client_urls = config.listen_client_urls.clone();
    let mut member = Member {
        config,
        running: None,
    };
    member.start();
    let endpoint = member.endpoint();
    let bare = endpoint.trim_start_matches("http://").to_string();
    client(&endpoint).await;

    let (ok, text) = etcdctl(&endpoint, &["put", "/authority/k", "v1"]).await;
    assert!(ok && text.trim() == "OK", "{text}");
    let (ok, text) = etcdctl(&endpoint, &["get", "/authority/k", "--print-value-only"]).await;
    assert!(ok && text.trim() == "v1", "{text}");

    let (ok, text) = etcdctl(&endpoint, &["endpoint", "status", "-w", "json"]).await;
    assert!(ok, "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(status[0]["Endpoint"], endpoint.as_str(), "{text}");
    assert_eq!(status[0]["Status"]["header"]["revision"], 2, "{text}");
    assert_eq!(status[0]["Status"]["version"], "3.4.0", "{text}");
    let id = status[0]["Status"]["header"]["member_id"]
        .as_u64()
        .expect(&text);
    assert_eq!(status[0]["Status"]["leader"].as_u64(), Some(id), "{text}");

    // `--cluster` takes the URLs from the member list: the user cannot leave the scheme out.
    let (ok, text) = etcdctl(
        &endpoint,
        &["endpoint", "status", "--cluster", "-w", "json"],
    )
    .await;
    assert!(ok, "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(status[0]["Endpoint"], endpoint.as_str(), "{text}");
    assert_eq!(
        status[0]["Status"]["header"]["member_id"].as_u64(),
        Some(id)
    );

    let mut hashes = Vec::new();
    let with_path = format!("{endpoint}/");
    for ep in [&endpoint, &bare, &with_path] {
        let (ok, text) = etcdctl(ep, &["endpoint", "hashkv", "-w", "json"]).await;
        assert!(ok, "{text}");
        let hash: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert_eq!(hash[0]["Endpoint"], ep.as_str(), "{text}");
        hashes.push(hash[0]["HashKV"]["hash"].as_u64().expect(&text));
    }
    assert!(hashes.iter().all(|&h| h == hashes[0]), "{hashes:?}");

    let (ok, text) = etcdctl(&endpoint, &["defrag"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("Finished defragmenting etcd member[{endpoint}]")),
        "{text}"
    );

    // etcdctl reads every endpoint's status to find the leader, then asks it to move; berth's
    // store refuses the move itself, and says why.
    let (_, text) = etcdctl(&endpoint, &["move-leader", &format!("{id:x}")]).await;
    assert!(
        text.contains("Leadership transferred") || text.contains("cannot move its leader"),
        "{text}"
    );

    let (ok, text) = etcdctl(&endpoint, &["get", "/authority/k", "--print-value-only"]).await;
    assert!(ok && text.trim() == "v1", "{text}");
    member.stop().await;
}
