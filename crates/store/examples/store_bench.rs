//! Load generator for `bench/store/run.sh`: the same workload against any etcd v3 endpoint.
//! Prints one line per scenario: `name ops_per_sec p50_ms p99_ms`, then the server's and the
//! generator's own CPU µs per operation (RSS lines: `rss_kib N`).
//!
//! Usage: store_bench ENDPOINT SERVER_PID [SCENARIO...]
//!            (puts, gets and the fill through the generator's own lean gRPC client, or
//!            etcd-client's with STORE_BENCH_CLIENT=etcd-client; watches through etcd-client)
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

/// The same allocator as the `berth` binary: where the generator shares the CPUs with the
/// server it measures (`PIN=0`), what it spends on allocation is taken from the server.
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
    cpu_of(SERVER_PID.get()?)
}

/// User + system CPU time process `pid` (or `self`) has used so far.
fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, which is 100 on Linux whatever the kernel's tick rate.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time before a scenario: the measured server's and the generator's own.
#[derive(Default)]
struct CpuBefore {
    server: Option<Duration>,
    generator: Option<Duration>,
}

impl CpuBefore {
    fn now() -> Self {
        Self {
            server: server_cpu(),
            generator: cpu_of("self"),
        }
    }
}

/// Prints `name ops_per_sec p50_ms p99_ms`, and with a measured server its CPU µs per op and
/// then the generator's own.
fn report(
    name: &str,
    ops: usize,
    elapsed: Duration,
    mut lat: Vec<Duration>,
    before: Option<CpuBefore>,
) {
    lat.sort_unstable();
    let mut line = format!(
        "{name} {:.0} {:.3} {:.3}",
        ops as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    let per_op = |before: Duration, after: Duration| {
        after.saturating_sub(before).as_secs_f64() * 1e6 / ops.max(1) as f64
    };
    let before = before.unwrap_or_default();
    if let (Some(server_before), Some(server_after)) = (before.server, server_cpu()) {
        line.push_str(&format!(" {:.1}", per_op(server_before, server_after)));
        if let (Some(own_before), Some(own_after)) = (before.generator, cpu_of("self")) {
            line.push_str(&format!(" {:.1}", per_op(own_before, own_after)));
        }
    }
    println!("{line}");
}

async fn clients<K: Kv>(endpoint: &str, n: usize) -> Vec<K> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(K::connect(endpoint).await);
    }
    out
}

/// What the throughput scenarios ask of one client connection. Two kinds answer it:
/// [`lean::Conn`] (the default) and etcd-client's `Client` (`STORE_BENCH_CLIENT=etcd-client`).
trait Kv: Sized + Send + 'static {
    fn connect(endpoint: &str) -> impl Future<Output = Self> + Send;
    fn put(&mut self, key: String, value: &[u8]) -> impl Future<Output = ()> + Send;
    fn get(&mut self, key: String, serializable: bool) -> impl Future<Output = ()> + Send;
}

impl Kv for Client {
    async fn connect(endpoint: &str) -> Self {
        Client::connect([endpoint], None).await.expect("connect")
    }

    async fn put(&mut self, key: String, value: &[u8]) {
        Client::put(self, key, value, None).await.expect("put");
    }

    async fn get(&mut self, key: String, serializable: bool) {
        let options = serializable.then(|| GetOptions::new().with_serializable());
        Client::get(self, key, options).await.expect("get");
    }
}

/// A unary gRPC client on `h2` alone, for the throughput scenarios. The generator shares the
/// machine with the server it measures, and etcd-client's stack (tonic's buffered channel, a
/// task hop per call, hyper's dispatch) cost about as much CPU per put as berth's whole server
/// (bench/store/RESULTS.md, run 16): CPU taken from the server under test, and a ceiling on
/// what the bench can show. The wire is the same: one HTTP/2 stream per call, a
/// length-prefixed protobuf message each way, `grpc-status` in the trailers.
mod lean {
    use bytes::{BufMut, Bytes, BytesMut};
    use etcd_client::proto::{PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse};
    use h2::client::SendRequest;
    use prost::Message;

    pub struct Conn {
        send: SendRequest<Bytes>,
        authority: String,
    }

    impl Conn {
        async fn unary<Req: Message, Resp: Message + Default>(
            &mut self,
            path: &str,
            request: &Req,
        ) -> Result<Resp, String> {
            let len = request.encoded_len();
            let mut body = BytesMut::with_capacity(5 + len);
            body.put_u8(0);
            body.put_u32(u32::try_from(len).map_err(|_| "request too large")?);
            request.encode(&mut body).map_err(|e| e.to_string())?;
            let head = http::Request::post(format!("http://{}{path}", self.authority))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .map_err(|e| e.to_string())?;
            let mut send = self.send.clone().ready().await.map_err(|e| e.to_string())?;
            let (response, mut stream) =
                send.send_request(head, false).map_err(|e| e.to_string())?;
            stream
                .send_data(body.freeze(), true)
                .map_err(|e| e.to_string())?;
            let (parts, mut recv) = response.await.map_err(|e| e.to_string())?.into_parts();
            let mut data = BytesMut::new();
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                let _ = recv.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            let trailers = recv.trailers().await.map_err(|e| e.to_string())?;
            // A failed call may answer with headers only ("trailers-only").
            let status = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-status"))
                .or_else(|| parts.headers.get("grpc-status"));
            if status.map(|s| s.as_bytes()) != Some(b"0") {
                let message = trailers
                    .as_ref()
                    .and_then(|t| t.get("grpc-message"))
                    .or_else(|| parts.headers.get("grpc-message"));
                return Err(format!("{path}: grpc-status {status:?}, {message:?}"));
            }
            if data.len() < 5 {
                return Err(format!("{path}: an answer of {} bytes", data.len()));
            }
            Resp::decode(&data[5..]).map_err(|e| e.to_string())
        }
    }

    impl super::Kv for Conn {
        async fn connect(endpoint: &str) -> Self {
            let authority = endpoint.trim_start_matches("http://").to_owned();
            let tcp = tokio::net::TcpStream::connect(&authority)
                .await
                .expect("connect");
            tcp.set_nodelay(true).expect("TCP_NODELAY");
            let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Self { send, authority }
        }

        async fn put(&mut self, key: String, value: &[u8]) {
            let request = PbPutRequest {
                key: key.into_bytes(),
                value: value.to_vec(),
                ..Default::default()
            };
            let _: PbPutResponse = self
                .unary("/etcdserverpb.KV/Put", &request)
                .await
                .expect("put");
        }

        async fn get(&mut self, key: String, serializable: bool) {
            let request = PbRangeRequest {
                key: key.into_bytes(),
                serializable,
                ..Default::default()
            };
            let _: PbRangeResponse = self
                .unary("/etcdserverpb.KV/Range", &request)
                .await
                .expect("get");
        }
    }
}

/// Runs `total` operations split over `clients`, each produced by `op(client, i)`, which
/// hands the client back: cloning an etcd-client `Client` per operation clones all eight of
/// its service clients, CPU the generator takes from the servers it measures.
async fn run<C, F, Fut>(name: &str, clients: Vec<C>, total: usize, op: F)
where
    C: Send + 'static,
    F: Fn(C, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = C> + Send,
{
    let n = clients.len();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let cpu_before = CpuBefore::now();
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
    report(name, total, elapsed, lat, Some(cpu_before));
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
    let client = std::env::var("STORE_BENCH_CLIENT").unwrap_or_else(|_| "lean".to_owned());
    if !["lean", "etcd-client"].contains(&client.as_str()) {
        eprintln!(
            "store_bench: STORE_BENCH_CLIENT is lean (the default) or etcd-client, not {client:?}"
        );
        std::process::exit(2);
    }
    for name in wanted {
        if !SCENARIOS.contains(&name) {
            eprintln!("store_bench: unknown scenario {name:?}; known: {SCENARIOS:?}");
            std::process::exit(2);
        }
        match client.as_str() {
            "lean" => scenario::<lean::Conn>(name, endpoint, pid).await,
            _ => scenario::<Client>(name, endpoint, pid).await,
        }
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

async fn scenario<K: Kv>(name: &str, endpoint: &str, pid: &str) {
    let value = Arc::new(vec![b'v'; VALUE_BYTES]);
    // Keys are `PREFIX` and the operation's number, zero-padded to `width`.
    let put = move |prefix: &'static str, width: usize| {
        move |mut c: K, i: usize| {
            let v = Arc::clone(&value);
            async move {
                c.put(format!("{prefix}{i:0width$}"), &v).await;
                c
            }
        }
    };
    let get = |serializable: bool| {
        move |mut c: K, i: usize| async move {
            c.get(format!("many/{i}"), serializable).await;
            c
        }
    };
    match name {
        "put_1_client" => {
            run(
                name,
                clients::<K>(endpoint, 1).await,
                PUTS_ONE_CLIENT,
                put("one/", 0),
            )
            .await
        }
        "put_64_clients" => {
            run(
                name,
                clients::<K>(endpoint, CLIENTS).await,
                OPS_MANY_CLIENTS,
                put("many/", 0),
            )
            .await;
        }
        "get_linearizable_64_clients" => {
            run(
                name,
                clients::<K>(endpoint, CLIENTS).await,
                OPS_MANY_CLIENTS,
                get(false),
            )
            .await;
        }
        "get_serializable_64_clients" => {
            run(
                name,
                clients::<K>(endpoint, CLIENTS).await,
                OPS_MANY_CLIENTS,
                get(true),
            )
            .await;
        }
        "watch_fanout" => watch_fan_out(endpoint).await,
        "rss" => {
            run(
                "fill_100k_keys",
                clients::<K>(endpoint, CLIENTS).await,
                RSS_KEYS,
                put("rss/", 6),
            )
            .await;
            println!("rss_kib {}", rss_kib(pid));
        }
        _ => unreachable!("checked against SCENARIOS"),
    }
}
