//! Load generator for `bench/store/run.sh`: the same workload against any etcd v3 endpoint.
//! Prints one line per scenario: `name ops_per_sec p50_ms p99_ms` (RSS lines: `rss_kib N`).
//!
//! Usage: store_bench ENDPOINT SERVER_PID
//!        store_bench cluster ENDPOINT,ENDPOINT,...   (bench/cluster: puts and linearizable
//!                                                     gets, 64 clients spread over members)
//!        store_bench failover ENDPOINT,... LEADER_PID (kill -9 of the leader, then the time
//!                                                     until a write through the others is
//!                                                     acknowledged: `failover_ms N`;
//!                                                     FAILOVER_TRACE=1 also prints the
//!                                                     kill's wall-clock time and every
//!                                                     attempt's outcome on stderr, to set
//!                                                     beside the members' logs)
//!        store_bench serve NAME DATA_DIR CLIENT_URL PEER_URL INITIAL_CLUSTER TOKEN
//!            (one cluster member, what `berth store` runs with those flags and
//!            `--heartbeat-interval 100 --election-timeout 1000`, without building the whole
//!            `berth` binary in release mode)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, WatchOptions};
use tokio::sync::Mutex;

/// The same allocator as the `berth` binary: the generator shares the CPUs with the server it
/// measures, so what it spends on allocation is taken from the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The single server measured (`store_bench ENDPOINT SERVER_PID`): its CPU time per operation
/// is reported too, a figure less shaken than throughput by other work on a shared machine.
static SERVER_PID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// User + system CPU time the measured server has used so far, if there is one.
fn server_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", SERVER_PID.get()?)).ok()?;
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, which is 100 on Linux whatever the kernel's tick rate.
    Some(Duration::from_millis(ticks * 10))
}

/// Prints `name ops_per_sec p50_ms p99_ms`, and with a measured server its CPU µs per op.
fn report(
    name: &str,
    ops: usize,
    elapsed: Duration,
    mut lat: Vec<Duration>,
    cpu_before: Option<Duration>,
) {
    lat.sort_unstable();
    let mut line = format!(
        "{name} {:.0} {:.3} {:.3}",
        ops as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    if let (Some(before), Some(after)) = (cpu_before, server_cpu()) {
        let per_op = after.saturating_sub(before).as_secs_f64() * 1e6 / ops.max(1) as f64;
        line.push_str(&format!(" {per_op:.1}"));
    }
    println!("{line}");
}

async fn clients(endpoint: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Client::connect([endpoint], None).await.expect("connect"));
    }
    out
}

/// Runs `total` operations split over `clients`, each produced by `op(client, i)`, which
/// hands the client back: cloning an etcd-client `Client` per operation clones all eight of
/// its service clients, CPU the generator takes from the servers it measures.
async fn run<F, Fut>(name: &str, clients: Vec<Client>, total: usize, op: F)
where
    F: Fn(Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Client> + Send,
{
    let n = clients.len();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let cpu_before = server_cpu();
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let op = op.clone();
            let latencies = Arc::clone(&latencies);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut client = client;
                for i in (c..total).step_by(n) {
                    let t = Instant::now();
                    client = op(client, i).await;
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
    report(name, total, elapsed, lat, cpu_before);
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
    report("watch_fanout_events", delivered, start.elapsed(), lat, None);
}

/// How long one operation of `cluster` is retried before the generator gives up (the
/// cluster is gone, not changing leader).
const RETRY_FOR: Duration = Duration::from_secs(30);

/// Counts a refused operation of `cluster` and waits a little before it is retried; exits
/// the process once the operation has been refused for [`RETRY_FOR`], so a generator whose
/// cluster died does not spin on.
async fn refused(retries: &AtomicU64, since: Instant, err: etcd_client::Error) {
    retries.fetch_add(1, Ordering::Relaxed);
    if since.elapsed() > RETRY_FOR {
        eprintln!("an operation was refused for {RETRY_FOR:?}, giving up: {err}");
        std::process::exit(1);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// 64 clients, client i connected to member i mod n: 20,000 puts, then 20,000 linearizable
/// gets of the keys written. A refused operation (e.g. during a leader change) is retried
/// and counted: `cluster_retries N`.
async fn cluster(endpoints: &[String]) {
    let spread = async || {
        let mut out = Vec::with_capacity(CLIENTS);
        for i in 0..CLIENTS {
            let endpoint = &endpoints[i % endpoints.len()];
            out.push(Client::connect([endpoint], None).await.expect("connect"));
        }
        out
    };
    let retries = Arc::new(AtomicU64::new(0));
    let value = Arc::new(vec![b'v'; VALUE_BYTES]);
    let r = Arc::clone(&retries);
    run(
        "cluster_put_64_clients",
        spread().await,
        OPS_MANY_CLIENTS,
        move |mut c, i| {
            let v = Arc::clone(&value);
            let r = Arc::clone(&r);
            async move {
                let since = Instant::now();
                while let Err(err) = c.put(format!("many/{i}"), v.as_slice(), None).await {
                    refused(&r, since, err).await;
                }
                c
            }
        },
    )
    .await;
    let r = Arc::clone(&retries);
    run(
        "cluster_get_linearizable_64_clients",
        spread().await,
        OPS_MANY_CLIENTS,
        move |mut c, i| {
            let r = Arc::clone(&r);
            async move {
                let since = Instant::now();
                while let Err(err) = c.get(format!("many/{i}"), None).await {
                    refused(&r, since, err).await;
                }
                c
            }
        },
    )
    .await;
    eprintln!("cluster_retries {}", retries.load(Ordering::Relaxed));
}

/// Prints the index in `endpoints` of the member every member names as leader.
async fn leader(endpoints: &[String]) {
    let mut seen = Vec::new();
    for endpoint in endpoints {
        let mut c = Client::connect([endpoint], None).await.expect("connect");
        let status = c.status().await.expect("status");
        seen.push((status.leader(), status.header().map(|h| h.member_id())));
    }
    let leader = seen[0].0;
    assert!(
        seen.iter().all(|(l, _)| *l == leader),
        "members disagree: {seen:?}"
    );
    let index = seen
        .iter()
        .position(|(_, me)| *me == Some(leader))
        .expect("the leader is one of the endpoints");
    println!("{index}");
}

/// Kills the leader (`kill -9 PID`) and measures until the first write through the surviving
/// members (`endpoints`) is acknowledged: a new put is started every 10 ms (each may take up
/// to 5 s), so a slow or refused attempt does not hide the moment the cluster accepts writes.
async fn failover(endpoints: &[String], leader_pid: &str) {
    let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(5));
    let mut clients = Vec::new();
    for endpoint in endpoints {
        let mut c = Client::connect([endpoint], Some(options.clone()))
            .await
            .expect("connect");
        c.put("failover/warm", "x", None)
            .await
            .expect("warm-up put");
        clients.push(c);
    }
    let status = std::process::Command::new("kill")
        .args(["-9", leader_pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {leader_pid} failed");
    let killed = Instant::now();
    let trace = std::env::var_os("FAILOVER_TRACE").is_some();
    if trace {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!("killed at {:.6} s since the epoch", wall.as_secs_f64());
    }
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut attempt = 0usize;
    let elapsed = loop {
        let mut c = clients[attempt % clients.len()].clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let sent = killed.elapsed();
            let put = c.put(format!("failover/{attempt}"), "x", None).await;
            if trace {
                let outcome = put
                    .as_ref()
                    .map_or_else(ToString::to_string, |_| "ok".into());
                eprintln!(
                    "attempt {attempt}: sent at {sent:?}, answered at {:?}: {outcome}",
                    killed.elapsed()
                );
            }
            if put.is_ok() {
                let _ = done.send(killed.elapsed());
            }
        });
        attempt += 1;
        tokio::select! {
            Some(elapsed) = done_rx.recv() => break elapsed,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no write acknowledged in 60 s"
        );
    };
    println!("failover_ms {:.0}", elapsed.as_secs_f64() * 1000.0);
}

async fn serve(args: &[String]) {
    use berth_store::config::{ClusterConfig, ClusterState};
    let [name, data_dir, client_url, peer_url, initial, token] = args else {
        eprintln!(
            "usage: store_bench serve NAME DATA_DIR CLIENT_URL PEER_URL INITIAL_CLUSTER TOKEN"
        );
        std::process::exit(2);
    };
    let mut config = berth_store::Config::new(data_dir.into());
    config.name.clone_from(name);
    config.listen_client_urls = vec![client_url.clone()];
    config.advertise_client_urls = vec![client_url.clone()];
    config.cluster = Some(ClusterConfig {
        initial_cluster: ClusterConfig::parse_initial_cluster(initial).expect("--initial-cluster"),
        state: ClusterState::New,
        token: token.clone(),
        listen_peer_urls: vec![peer_url.clone()],
        advertise_peer_urls: vec![peer_url.clone()],
    });
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    berth_store::serve(config, stop).await.expect("serve");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let list = |i: usize| -> Vec<String> {
        args.get(i)
            .map(|s| s.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    match args.get(1).map(String::as_str) {
        Some("serve") => return serve(&args[2..]).await,
        Some("cluster") => return cluster(&list(2)).await,
        Some("leader") => return leader(&list(2)).await,
        Some("failover") => {
            let pid = args
                .get(3)
                .expect("store_bench failover ENDPOINTS LEADER_PID");
            return failover(&list(2), pid).await;
        }
        _ => {}
    }
    let (Some(endpoint), Some(pid)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: store_bench ENDPOINT SERVER_PID [SCENARIO...]");
        std::process::exit(2);
    };
    let _ = SERVER_PID.set(pid.clone());
    let wanted: Vec<&str> = args[3..].iter().map(String::as_str).collect();
    let wanted = if wanted.is_empty() {
        SCENARIOS.to_vec()
    } else {
        wanted
    };
    for name in wanted {
        if !SCENARIOS.contains(&name) {
            eprintln!("store_bench: unknown scenario {name:?}; known: {SCENARIOS:?}");
            std::process::exit(2);
        }
        scenario(name, endpoint, pid).await;
    }
}

/// The single-server scenarios, in the order a full run takes them (the gets read the keys
/// `put_64_clients` wrote; `rss` fills 100,000 keys and then reads the server's RSS).
const SCENARIOS: [&str; 6] = [
    "put_1_client",
    "put_64_clients",
    "get_linearizable_64_clients",
    "get_serializable_64_clients",
    "watch_fanout",
    "rss",
];

async fn scenario(name: &str, endpoint: &str, pid: &str) {
    let value = Arc::new(vec![b'v'; VALUE_BYTES]);
    // Keys are `PREFIX` and the operation's number, zero-padded to `width`.
    let put = move |prefix: &'static str, width: usize| {
        move |mut c: Client, i: usize| {
            let v = Arc::clone(&value);
            async move {
                c.put(format!("{prefix}{i:0width$}"), v.as_slice(), None)
                    .await
                    .expect("put");
                c
            }
        }
    };
    match name {
        "put_1_client" => {
            run(
                name,
                clients(endpoint, 1).await,
                PUTS_ONE_CLIENT,
                put("one/", 0),
            )
            .await
        }
        "put_64_clients" => {
            run(
                name,
                clients(endpoint, CLIENTS).await,
                OPS_MANY_CLIENTS,
                put("many/", 0),
            )
            .await;
        }
        "get_linearizable_64_clients" => {
            run(
                name,
                clients(endpoint, CLIENTS).await,
                OPS_MANY_CLIENTS,
                |mut c, i| async move {
                    c.get(format!("many/{i}"), None).await.expect("get");
                    c
                },
            )
            .await;
        }
        "get_serializable_64_clients" => {
            run(
                name,
                clients(endpoint, CLIENTS).await,
                OPS_MANY_CLIENTS,
                |mut c, i| async move {
                    c.get(
                        format!("many/{i}"),
                        Some(GetOptions::new().with_serializable()),
                    )
                    .await
                    .expect("get");
                    c
                },
            )
            .await;
        }
        "watch_fanout" => watch_fan_out(endpoint).await,
        "rss" => {
            run(
                "fill_100k_keys",
                clients(endpoint, CLIENTS).await,
                RSS_KEYS,
                put("rss/", 6),
            )
            .await;
            println!("rss_kib {}", rss_kib(pid));
        }
        _ => unreachable!("checked against SCENARIOS"),
    }
}
