//! kill -9 under write load loses no acknowledged write, never moves revisions backwards, and
//! always leaves a store that opens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, GetOptions};

use crate::support::store::Server;

/// Kill/restart rounds; the full run is 20 (BERTH_CRASH_ROUNDS=20).
const DEFAULT_ROUNDS: usize = 6;
const WRITERS: usize = 8;

type Acks = Arc<Mutex<Vec<(String, i64)>>>;

async fn writer(endpoint: String, round: usize, id: usize, acks: Acks) {
    let Ok(mut c) = Client::connect([endpoint], None).await else {
        return;
    };
    for seq in 0..100_000 {
        let key = format!("r{round}/w{id}/{seq}");
        match c.put(key.clone(), vec![b'v'; 64], None).await {
            Ok(r) => {
                let rev = r.header().map_or(0, |h| h.revision());
                acks.lock().expect("acks").push((key, rev));
            }
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_under_load() {
    let rounds = std::env::var("BERTH_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut all_acks: Vec<(String, i64)> = Vec::new();
    let mut last_revision = 0;
    let mut port = None;
    for round in 0..rounds {
        let mut server = match port {
            Some(p) => Server::berth_on(&data, p, &[]),
            None => Server::berth(&data, &[]),
        };
        port = Some(server.port());
        let mut c = Client::connect([&server.endpoint], None)
            .await
            .expect("connect after restart");

        // Everything acknowledged before any earlier kill is still there, unchanged.
        for (key, rev) in &all_acks {
            let r = c
                .get(key.as_str(), Some(GetOptions::new().with_serializable()))
                .await
                .expect("get");
            let kv = r
                .kvs()
                .first()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key} lost"));
            assert_eq!(
                kv.mod_revision(),
                *rev,
                "round {round}: {key} has another revision"
            );
        }
        let now = c
            .get("none", None)
            .await
            .expect("get")
            .header()
            .map_or(0, |h| h.revision());
        assert!(
            now >= last_revision,
            "round {round}: revision went back from {last_revision} to {now}"
        );
        let max_acked = all_acks.iter().map(|(_, r)| *r).max().unwrap_or(0);
        assert!(
            now >= max_acked,
            "round {round}: revision {now} below acknowledged {max_acked}"
        );
        last_revision = now;

        let acks: Acks = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                tokio::spawn(writer(
                    server.endpoint.clone(),
                    round,
                    id,
                    Arc::clone(&acks),
                ))
            })
            .collect();
        let load_ms = 300 + 97 * u64::try_from(round % 7).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(load_ms)).await;
        server.guard.kill();
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        let acked = acks.lock().expect("acks").clone();
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged under load"
        );
        all_acks.extend(acked);
    }
}
