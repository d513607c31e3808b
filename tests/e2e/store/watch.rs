//! Watch streams against berth and Debian's etcd, step by step: many watchers multiplexed on
//! one stream, prefixes, NOPUT/NODELETE filters, prev_kv (of puts, deletes and a txn's writes),
//! an inverted range, progress requests and cancel must produce the same responses.

use std::time::Duration;

use etcd_client::{Client, Txn, TxnOp, WatchFilterType, WatchOptions, WatchStream};

use crate::support::store::Server;

/// Every response that arrives until the stream is quiet for a while, each as a line without
/// member-specific header fields, sorted (etcd delivers to the watchers of one revision in no
/// fixed order).
async fn drain(stream: &mut WatchStream) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Ok(Some(r))) =
        tokio::time::timeout(Duration::from_millis(400), stream.message()).await
    {
        let events: Vec<String> = r
            .events()
            .iter()
            .map(|e| {
                let kv = e.kv().map(|kv| {
                    (
                        kv.key_str().unwrap_or("?").to_owned(),
                        kv.mod_revision(),
                        kv.version(),
                    )
                });
                let prev = e
                    .prev_kv()
                    .map(|kv| kv.value_str().unwrap_or("?").to_owned());
                format!("{:?} {kv:?} prev={prev:?}", e.event_type())
            })
            .collect();
        out.push(format!(
            "id={} rev={} created={} canceled={} reason={:?} compact={} events={events:?}",
            r.watch_id(),
            r.header().map_or(0, |h| h.revision()),
            r.created(),
            r.canceled(),
            r.cancel_reason(),
            r.compact_revision(),
        ));
    }
    out.sort();
    out
}

async fn script(endpoint: &str) -> Vec<Vec<String>> {
    let mut c = Client::connect([endpoint], None).await.expect("connect");
    let mut kv = c.clone();
    let mut steps = Vec::new();
    let mut stream = c
        .watch(
            "a",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .expect("watch");
    steps.push(drain(&mut stream).await);
    stream
        .watch(
            "a",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_prev_key()
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .expect("second watch");
    steps.push(drain(&mut stream).await);
    stream
        .watch("b", Some(WatchOptions::new().with_range("a")))
        .await
        .expect("inverted watch");
    steps.push(drain(&mut stream).await);
    kv.put("a1", "x", None).await.expect("put");
    kv.put("a1", "y", None).await.expect("put");
    kv.delete("a1", None).await.expect("delete");
    kv.put("b", "z", None).await.expect("put");
    steps.push(drain(&mut stream).await);
    stream.request_progress().await.expect("progress");
    steps.push(drain(&mut stream).await);
    stream.cancel(0).await.expect("cancel");
    steps.push(drain(&mut stream).await);
    kv.put("a2", "w", None).await.expect("put");
    kv.delete("a2", None).await.expect("delete");
    steps.push(drain(&mut stream).await);
    stream
        .watch(
            "a",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(3)
                    .with_prev_key(),
            ),
        )
        .await
        .expect("replay watch");
    steps.push(drain(&mut stream).await);
    // Live events with their previous key-values, deletes included, from one request that
    // overwrites one key, creates another and deletes a third.
    kv.put("t1", "old1", None).await.expect("put");
    kv.put("t3", "old3", None).await.expect("put");
    stream
        .watch("t", Some(WatchOptions::new().with_prefix().with_prev_key()))
        .await
        .expect("prev_kv watch");
    steps.push(drain(&mut stream).await);
    kv.txn(Txn::new().and_then([
        TxnOp::put("t1", "new1", None),
        TxnOp::put("t2", "new2", None),
        TxnOp::delete("t3", None),
    ]))
    .await
    .expect("txn");
    kv.put("t2", "newer2", None).await.expect("put");
    steps.push(drain(&mut stream).await);
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_answer_step_by_step_as_etcd_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = Server::etcd(&dir.path().join("etcd"), &[]);
    let berth = Server::berth(&dir.path().join("berth"), &[]);
    let want = script(&etcd.endpoint).await;
    let got = script(&berth.endpoint).await;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "step {i}");
    }
}
