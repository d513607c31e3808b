//! Bad requests get etcd's own errors, and the store keeps serving afterwards. Each case runs
//! against berth and against Debian's etcd, and the answers must match.

use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use crate::support::store::Server;

fn describe<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(etcd_client::Error::GRpcStatus(st)) => {
            format!("error {:?}: {}", st.code(), st.message())
        }
        Err(e) => format!("client error {e}"),
    }
}

/// Runs every bad request against one server and describes the answers.
async fn bad_requests(endpoint: &str) -> Vec<String> {
    let mut c = Client::connect([endpoint], None).await.expect("connect");
    let mut out = Vec::new();
    for i in 0..4 {
        c.put("k", format!("v{i}"), None).await.expect("seed put");
    }
    let big = vec![b'x'; 1_600_000];
    out.push(describe(c.put("big", big, None).await.map(|_| ())));
    out.push(describe(
        c.get("b", Some(GetOptions::new().with_range("a")))
            .await
            .map(|r| (r.kvs().len(), r.count())),
    ));
    out.push(describe(
        c.txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
            .await
            .map(|_| ()),
    ));
    out.push(describe(
        c.put("l", "1", Some(PutOptions::new().with_lease(999)))
            .await
            .map(|_| ()),
    ));
    out.push(describe(c.lease_revoke(999).await.map(|_| ())));
    out.push(describe(
        c.get("k", Some(GetOptions::new().with_revision(99)))
            .await
            .map(|_| ()),
    ));
    c.compact(3, None).await.expect("compact");
    out.push(describe(
        c.get("k", Some(GetOptions::new().with_revision(2)))
            .await
            .map(|_| ()),
    ));
    let mut stream = c
        .watch("k", Some(WatchOptions::new().with_start_revision(1)))
        .await
        .expect("watch");
    let mut seen = Vec::new();
    for _ in 0..3 {
        match stream.message().await {
            Ok(Some(r)) => {
                seen.push(format!(
                    "created={} canceled={} compact_revision={}",
                    r.created(),
                    r.canceled(),
                    r.compact_revision()
                ));
                if r.canceled() {
                    break;
                }
            }
            other => {
                seen.push(format!("{other:?}"));
                break;
            }
        }
    }
    out.push(seen.join("; "));
    out.push(describe(
        c.put("after", "1", None)
            .await
            .map(|r| r.header().map(|h| h.revision())),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcds_errors_and_the_store_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = Server::etcd(&dir.path().join("etcd"), &[]);
    let berth = Server::berth(&dir.path().join("berth"), &[]);
    let want = bad_requests(&etcd.endpoint).await;
    let got = bad_requests(&berth.endpoint).await;
    assert!(
        want[0].contains("etcdserver: request is too large"),
        "{want:?}"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn an_invalid_listen_url_is_refused_before_the_data_dir_is_created() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    for url in [
        "not-a-url",
        "https://127.0.0.1:2379",
        "http://127.0.0.1:99999",
    ] {
        let err = crate::support::fails(
            crate::support::berth(work.path())
                .arg("store")
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--listen-client-urls", url]),
        );
        assert!(err.contains(&format!("invalid listen URL {url}")), "{err}");
        assert!(!data_dir.exists(), "a refused start writes no data ({url})");
    }
}

#[test]
fn a_backend_batch_interval_without_a_unit_is_refused_before_the_data_dir_is_created() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let err = crate::support::fails(
        crate::support::berth(work.path())
            .arg("store")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--backend-batch-interval", "100"]),
    );
    assert!(
        err.contains("invalid --backend-batch-interval \"100\"") && err.contains("100ms"),
        "{err}"
    );
    assert!(!data_dir.exists(), "a refused start writes no data");
}
