//! A 3-member store on loopback, in one process (issue #7): writes through any member are seen
//! by all, a stopped leader is replaced and loses no acknowledged write, and a restarted
//! member catches up to the same HashKV.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_store::Config;
use berth_store::config::{ClusterConfig, ClusterState};
use etcd_client::{Client, ConnectOptions, GetOptions};
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
        .map(|(i, (client, peer))| {
            let mut config = Config::new(PathBuf::from(dir).join(format!("n{i}")));
            config.name = format!("n{i}");
            config.listen_client_urls = vec![format!("http://127.0.0.1:{client}")];
            config.advertise_client_urls = config.listen_client_urls.clone();
            config.heartbeat_interval_ms = 50;
            config.election_timeout_ms = 300;
            let peer_url = format!("http://127.0.0.1:{peer}");
            config.cluster = Some(ClusterConfig {
                initial_cluster: ClusterConfig::parse_initial_cluster(&initial).unwrap(),
                state: ClusterState::New,
                token: "cluster-test".into(),
                listen_peer_urls: vec![peer_url.clone()],
                advertise_peer_urls: vec![peer_url],
            });
            Member {
                config,
                running: None,
            }
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
                seen.push((i, status.leader(), status.header().map(|h| h.member_id())));
            }
        }
        let running = members.iter().filter(|m| m.running.is_some()).count();
        if seen.len() == running
            && let Some(&(_, id, _)) = seen.first()
            && id != 0
            && seen.iter().all(|(_, l, _)| *l == id)
            && let Some(&(i, _, _)) = seen.iter().find(|(_, _, me)| *me == Some(id))
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
    c.get("sync", None).await.expect("linearizable read");
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
