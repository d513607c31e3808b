//! One conformance suite, written against the `etcd-client` crate and run against berth and
//! against Debian's etcd 3.4 side by side: a long seeded random sequence of operations must get
//! identical answers (revisions, versions, prev_kvs, counts, `more`, txn results, errors) and
//! identical watch event sequences. The seed is printed; set BERTH_CONFORMANCE_SEED to replay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::proto::{PbEvent, PbResponseHeader, PbTxnOpResponse};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, LeaseGrantOptions,
    LeaseTimeToLiveOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, WatchOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::store::Server;

/// Operations in the random sequence (BERTH_CONFORMANCE_OPS overrides).
const OPS: usize = 1000;
const KEYS: usize = 8;
const LEASES: i64 = 4;

fn key(rng: &mut StdRng) -> String {
    format!("k{}", rng.random_range(0..KEYS))
}

fn strip(h: &mut Option<PbResponseHeader>) {
    if let Some(h) = h {
        *h = PbResponseHeader {
            revision: h.revision,
            ..PbResponseHeader::default()
        };
    }
}

/// One operation, applied to a client; the answer rendered without member-specific fields.
#[derive(Debug, Clone)]
enum Op {
    Get(String, GetOptions),
    Put(String, String, PutOptions),
    Delete(String, DeleteOptions),
    Txn(Txn),
    Compact(i64),
    Grant(i64),
    Revoke(i64),
    TimeToLive(i64),
}

async fn run(client: &mut Client, op: Op) -> String {
    let out = match op {
        Op::Get(k, o) => client.get(k, Some(o)).await.map(|mut r| {
            strip(&mut r.0.header);
            format!("{:?}", r.0)
        }),
        Op::Put(k, v, o) => client.put(k, v, Some(o)).await.map(|mut r| {
            strip(&mut r.0.header);
            format!("{:?}", r.0)
        }),
        Op::Delete(k, o) => client.delete(k, Some(o)).await.map(|mut r| {
            strip(&mut r.0.header);
            format!("{:?}", r.0)
        }),
        Op::Txn(t) => client.txn(t).await.map(|mut r| {
            strip(&mut r.0.header);
            strip_ops(&mut r.0.responses);
            format!("{:?}", r.0)
        }),
        Op::Compact(rev) => client.compact(rev, None).await.map(|mut r| {
            strip(&mut r.0.header);
            format!("{:?}", r.0)
        }),
        Op::Grant(id) => client
            .lease_grant(100, Some(LeaseGrantOptions::new().with_id(id)))
            .await
            .map(|r| format!("grant {} {}", r.id(), r.ttl())),
        Op::Revoke(id) => client.lease_revoke(id).await.map(|mut r| {
            strip(&mut r.0.header);
            format!("{:?}", r.0)
        }),
        Op::TimeToLive(id) => client
            .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .map(|r| {
                let mut keys = r.keys().to_vec();
                keys.sort();
                let alive = r.ttl() > 0;
                format!(
                    "ttl {} alive={alive} granted={} keys={keys:?}",
                    r.id(),
                    r.granted_ttl()
                )
            }),
    };
    match out {
        Ok(s) => s,
        Err(etcd_client::Error::GRpcStatus(st)) => {
            format!("error {:?}: {}", st.code(), st.message())
        }
        Err(e) => format!("client error {e}"),
    }
}

fn strip_ops(ops: &mut [etcd_client::proto::PbResponseOp]) {
    for op in ops {
        match &mut op.response {
            Some(PbTxnOpResponse::ResponseRange(r)) => strip(&mut r.header),
            Some(PbTxnOpResponse::ResponsePut(r)) => strip(&mut r.header),
            Some(PbTxnOpResponse::ResponseDeleteRange(r)) => strip(&mut r.header),
            Some(PbTxnOpResponse::ResponseTxn(t)) => {
                strip(&mut t.header);
                strip_ops(&mut t.responses);
            }
            None => {}
        }
    }
}

fn get_options(rng: &mut StdRng, current: i64) -> GetOptions {
    let mut o = GetOptions::new();
    match rng.random_range(0..4) {
        0 => o = o.with_prefix(),
        1 => o = o.with_from_key(),
        2 => o = o.with_range(format!("k{}", rng.random_range(0..KEYS))),
        _ => {}
    }
    if rng.random_bool(0.3) {
        o = o.with_limit(rng.random_range(0..4));
    }
    if rng.random_bool(0.3) {
        o = o.with_revision(rng.random_range(0..=current + 2));
    }
    if rng.random_bool(0.3) {
        let target = [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ][rng.random_range(0..5)];
        let order =
            [SortOrder::None, SortOrder::Ascend, SortOrder::Descend][rng.random_range(0..3)];
        o = o.with_sort(target, order);
    }
    if rng.random_bool(0.1) {
        o = o.with_keys_only();
    }
    if rng.random_bool(0.1) {
        o = o.with_count_only();
    }
    if rng.random_bool(0.2) {
        o = o.with_serializable();
    }
    if rng.random_bool(0.1) {
        o = o.with_min_mod_revision(rng.random_range(0..=current));
    }
    if rng.random_bool(0.1) {
        o = o.with_max_create_revision(rng.random_range(0..=current));
    }
    o
}

fn put_options(rng: &mut StdRng) -> PutOptions {
    let mut o = PutOptions::new();
    if rng.random_bool(0.5) {
        o = o.with_prev_key();
    }
    if rng.random_bool(0.2) {
        o = o.with_lease(rng.random_range(1..=LEASES + 1));
    }
    if rng.random_bool(0.05) {
        o = o.with_ignore_value();
    }
    if rng.random_bool(0.05) {
        o = o.with_ignore_lease();
    }
    o
}

fn delete_options(rng: &mut StdRng) -> DeleteOptions {
    let mut o = DeleteOptions::new();
    match rng.random_range(0..4) {
        0 => o = o.with_prefix(),
        1 => o = o.with_range(format!("k{}", rng.random_range(0..KEYS))),
        _ => {}
    }
    if rng.random_bool(0.5) {
        o = o.with_prev_key();
    }
    o
}

fn compare(rng: &mut StdRng, current: i64) -> Compare {
    let k = key(rng);
    let op = [
        CompareOp::Equal,
        CompareOp::Greater,
        CompareOp::Less,
        CompareOp::NotEqual,
    ][rng.random_range(0..4)];
    let c = match rng.random_range(0..5) {
        0 => Compare::version(k, op, rng.random_range(0..4)),
        1 => Compare::create_revision(k, op, rng.random_range(0..=current)),
        2 => Compare::mod_revision(k, op, rng.random_range(0..=current)),
        3 => Compare::value(k, op, format!("v{}", rng.random_range(0..5))),
        _ => Compare::lease(k, op, rng.random_range(0..=LEASES)),
    };
    if rng.random_bool(0.2) {
        c.with_prefix()
    } else {
        c
    }
}

fn txn_ops(rng: &mut StdRng, current: i64, depth: u32) -> Vec<TxnOp> {
    (0..rng.random_range(0..4))
        .map(
            |_| match rng.random_range(0..if depth > 0 { 4 } else { 3 }) {
                0 => TxnOp::get(key(rng), Some(get_options(rng, current))),
                1 => TxnOp::put(
                    key(rng),
                    format!("v{}", rng.random_range(0..5)),
                    Some(put_options(rng)),
                ),
                2 => TxnOp::delete(key(rng), Some(delete_options(rng))),
                _ => TxnOp::txn(txn(rng, current, depth - 1)),
            },
        )
        .collect()
}

fn txn(rng: &mut StdRng, current: i64, depth: u32) -> Txn {
    let compares: Vec<Compare> = (0..rng.random_range(0..3))
        .map(|_| compare(rng, current))
        .collect();
    Txn::new()
        .when(compares)
        .and_then(txn_ops(rng, current, depth))
        .or_else(txn_ops(rng, current, depth))
}

fn random_op(rng: &mut StdRng, current: i64) -> Op {
    match rng.random_range(0..100) {
        0..30 => Op::Put(
            key(rng),
            format!("v{}", rng.random_range(0..5)),
            put_options(rng),
        ),
        30..55 => Op::Get(key(rng), get_options(rng, current)),
        55..65 => Op::Delete(key(rng), delete_options(rng)),
        65..85 => Op::Txn(txn(rng, current, 1)),
        85..88 => Op::Compact(rng.random_range(0..=current + 1)),
        88..93 => Op::Grant(rng.random_range(1..=LEASES)),
        93..96 => Op::Revoke(rng.random_range(1..=LEASES + 1)),
        _ => Op::TimeToLive(rng.random_range(1..=LEASES + 1)),
    }
}

/// Collects every event of a watch stream as it arrives.
fn collect(mut stream: etcd_client::WatchStream) -> Arc<Mutex<Vec<PbEvent>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok(Some(resp)) = stream.message().await {
            sink.lock()
                .expect("events")
                .extend(resp.events().iter().map(|e| e.0.clone()));
        }
    });
    seen
}

/// The collected events, once they reach revision `last` (waiting at most 20 s).
async fn events_up_to(seen: &Mutex<Vec<PbEvent>>, last: i64) -> Vec<PbEvent> {
    for _ in 0..200 {
        let events = seen.lock().expect("events").clone();
        if events
            .last()
            .and_then(|e| e.kv.as_ref())
            .map_or(0, |kv| kv.mod_revision)
            >= last
        {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.lock().expect("events").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_answers_a_random_operation_sequence_exactly_as_etcd_does() {
    let seed = std::env::var("BERTH_CONFORMANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("conformance seed: {seed} (BERTH_CONFORMANCE_SEED={seed} replays it)");
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = Server::etcd(&dir.path().join("etcd"), &[]);
    let berth = Server::berth(&dir.path().join("berth"), &[]);
    let mut e = Client::connect([&etcd.endpoint], None)
        .await
        .expect("connect etcd");
    let mut b = Client::connect([&berth.endpoint], None)
        .await
        .expect("connect berth");
    let ops = std::env::var("BERTH_CONFORMANCE_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(OPS);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut current = 1;
    let mut compacted = 0;
    for i in 0..ops {
        let op = random_op(&mut rng, current);
        let want = run(&mut e, op.clone()).await;
        let got = run(&mut b, op.clone()).await;
        assert_eq!(got, want, "seed {seed}, op #{i}: {op:?}");
        if let (Op::Compact(rev), false) = (&op, want.starts_with("error")) {
            compacted = *rev;
        }
        current = e
            .get("k", Some(GetOptions::new().with_serializable()))
            .await
            .map_or(current, |r| r.header().map_or(current, |h| h.revision()));
    }
    // The whole history that survived compaction, replayed by a watch on each server.
    let watch = WatchOptions::new()
        .with_all_keys()
        .with_prev_key()
        .with_start_revision(compacted + 1);
    let es = collect(e.watch("", Some(watch.clone())).await.expect("watch etcd"));
    let bs = collect(b.watch("", Some(watch)).await.expect("watch berth"));
    let want = events_up_to(&es, current).await;
    let got = events_up_to(&bs, current).await;
    assert!(!want.is_empty(), "seed {seed}: etcd reported no events");
    if let Some(i) = (0..want.len().max(got.len())).find(|i| want.get(*i) != got.get(*i)) {
        panic!(
            "seed {seed}: watch event #{i} differs:\n berth: {:?}\n  etcd: {:?}",
            got.get(i),
            want.get(i)
        );
    }
}
