//! Load generator for `bench/store/run.sh`: the same workload against any etcd v3 endpoint.
//! Prints one line per scenario: `name ops_per_sec p50_ms p99_ms` (RSS lines: `rss_kib N`).
//!
//! Usage: store_bench ENDPOINT SERVER_PID

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, WatchOptions};
use tokio::sync::Mutex;

const VALUE_BYTES: usize = 256;
const PUTS_ONE_CLIENT: usize = 2_000;
const OPS_MANY_CLIENTS: usize = 20_000;
const CLIENTS: usize = 64;
const WATCHERS: usize = 100;
const WATCH_EVENTS: usize = 1_000;
const RSS_KEYS: usize = 100_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn report(name: &str, ops: usize, elapsed: Duration, mut lat: Vec<Duration>) {
    lat.sort_unstable();
    println!(
        "{name} {:.0} {:.3} {:.3}",
        ops as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

async fn clients(endpoint: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Client::connect([endpoint], None).await.expect("connect"));
    }
    out
}

/// Runs `total` operations split over `clients`, each produced by `op(client, i)`.
async fn run<F, Fut>(name: &str, clients: Vec<Client>, total: usize, op: F)
where
    F: Fn(Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let n = clients.len();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let op = op.clone();
            let latencies = Arc::clone(&latencies);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in (c..total).step_by(n) {
                    let t = Instant::now();
                    op(client.clone(), i).await;
                    mine.push(t.elapsed());
                }
                latencies.lock().await.extend(mine);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let elapsed = start.elapsed();
    let lat = std::mem::take(&mut *latencies.lock().await);
    report(name, total, elapsed, lat);
}

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn watch_fan_out(endpoint: &str) {
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut c = Client::connect([endpoint], None).await.expect("connect");
        let stream = c
            .watch("fan/", Some(WatchOptions::new().with_prefix()))
            .await
            .expect("watch");
        watchers.push((c, stream));
    }
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(WATCH_EVENTS)));
    let readers: Vec<_> = watchers
        .into_iter()
        .map(|(c, mut stream)| {
            let sent = Arc::clone(&sent);
            tokio::spawn(async move {
                let _keep = c;
                let mut lat = Vec::with_capacity(WATCH_EVENTS);
                let mut seen = 0;
                while seen < WATCH_EVENTS {
                    let Ok(Ok(Some(resp))) =
                        tokio::time::timeout(Duration::from_secs(30), stream.message()).await
                    else {
                        break;
                    };
                    let now = Instant::now();
                    let sent = sent.lock().await;
                    for _ in resp.events() {
                        if let Some(t) = sent.get(seen) {
                            lat.push(now.duration_since(*t));
                        }
                        seen += 1;
                    }
                }
                lat
            })
        })
        .collect();
    let mut writer = Client::connect([endpoint], None).await.expect("connect");
    let value = vec![b'w'; VALUE_BYTES];
    let start = Instant::now();
    for i in 0..WATCH_EVENTS {
        sent.lock().await.push(Instant::now());
        writer
            .put(format!("fan/{i}"), value.clone(), None)
            .await
            .expect("put");
    }
    let mut lat = Vec::new();
    for r in readers {
        lat.extend(r.await.expect("reader"));
    }
    let delivered = lat.len();
    report("watch_fanout_events", delivered, start.elapsed(), lat);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(endpoint), Some(pid)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: store_bench ENDPOINT SERVER_PID");
        std::process::exit(2);
    };
    let endpoint = endpoint.clone();
    let value = Arc::new(vec![b'v'; VALUE_BYTES]);

    let v = Arc::clone(&value);
    run(
        "put_1_client",
        clients(&endpoint, 1).await,
        PUTS_ONE_CLIENT,
        move |mut c, i| {
            let v = Arc::clone(&v);
            async move {
                c.put(format!("one/{i}"), v.as_slice(), None)
                    .await
                    .expect("put");
            }
        },
    )
    .await;

    let v = Arc::clone(&value);
    run(
        "put_64_clients",
        clients(&endpoint, CLIENTS).await,
        OPS_MANY_CLIENTS,
        move |mut c, i| {
            let v = Arc::clone(&v);
            async move {
                c.put(format!("many/{i}"), v.as_slice(), None)
                    .await
                    .expect("put");
            }
        },
    )
    .await;

    run(
        "get_linearizable_64_clients",
        clients(&endpoint, CLIENTS).await,
        OPS_MANY_CLIENTS,
        |mut c, i| async move {
            c.get(format!("many/{i}"), None).await.expect("get");
        },
    )
    .await;

    run(
        "get_serializable_64_clients",
        clients(&endpoint, CLIENTS).await,
        OPS_MANY_CLIENTS,
        |mut c, i| async move {
            c.get(
                format!("many/{i}"),
                Some(GetOptions::new().with_serializable()),
            )
            .await
            .expect("get");
        },
    )
    .await;

    watch_fan_out(&endpoint).await;

    let v = Arc::clone(&value);
    run(
        "fill_100k_keys",
        clients(&endpoint, CLIENTS).await,
        RSS_KEYS,
        move |mut c, i| {
            let v = Arc::clone(&v);
            async move {
                c.put(format!("rss/{i:06}"), v.as_slice(), None)
                    .await
                    .expect("put");
            }
        },
    )
    .await;
    println!("rss_kib {}", rss_kib(pid));
}
