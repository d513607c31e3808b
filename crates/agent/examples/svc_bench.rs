//! Load tool of `bench/svc/run.sh` (issue #6, service names). Not a test: it measures and
//! prints, and asserts nothing about time.
//!
//! - `svc_bench latency STORE DNS N`: for services `svc-0` … `svc-(N-1)` one after another,
//!   puts one endpoint (as the contract in crates/config/src/service.rs says) and asks DNS
//!   (`HOST:PORT`) for `svc-I.service.berth` until the endpoint's address is answered; then
//!   deletes them one after another and asks until the name is NXDOMAIN. Prints
//!   `register p50_ms p99_ms max_ms` and `deregister p50_ms p99_ms max_ms`.
//! - `svc_bench register STORE N`: puts the N endpoints and leaves them.
//! - `svc_bench hosts N`: the same names and addresses as a hosts file, on stdout.
//! - `svc_bench qps DNS N SECONDS THREADS WINDOW`: THREADS threads, each keeping WINDOW A
//!   queries for the N names under way on its own socket, for SECONDS; prints
//!   `qps RATE answered A empty E timeouts T` (empty: replies without an A record).

// A measuring tool: a failure to set up is reported by a panic with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_config::{Endpoint, EndpointHealth, Kv};
use berth_net::dns::{a_query, parse_reply};

/// How long one poll waits for its reply.
const REPLY_WAIT: Duration = Duration::from_millis(200);
/// The pause between two polls of the same name.
const POLL_PAUSE: Duration = Duration::from_micros(200);
/// Past this, a registration or deregistration counts as never seen.
const GIVE_UP: Duration = Duration::from_secs(10);

fn usage() -> ! {
    eprintln!(
        "usage: svc_bench latency STORE DNS N | register STORE N | hosts N | qps DNS N SECONDS THREADS WINDOW"
    );
    std::process::exit(2)
}

fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 251, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn name(i: usize) -> String {
    format!("svc-{i}.service.berth")
}

fn endpoint(i: usize) -> Endpoint {
    Endpoint {
        service: format!("svc-{i}").parse().unwrap(),
        container_id: format!("{i:064x}"),
        container_name: format!("svc-{i}-1"),
        host: "bench".to_owned(),
        address: Some(address(i)),
        network: Some("berth".to_owned()),
        port: Some(8080),
        host_port: None,
        health: EndpointHealth::None,
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("latency") => latency(&args[2], arg(&args, 3), arg(&args, 4)),
        Some("register") => register(&args[2], arg(&args, 3)),
        Some("hosts") => {
            for i in 0..arg::<usize>(&args, 2) {
                println!("{} {}", address(i), name(i));
            }
        }
        Some("qps") => qps(
            arg(&args, 2),
            arg(&args, 3),
            arg(&args, 4),
            arg(&args, 5),
            arg(&args, 6),
        ),
        _ => usage(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn register(store: &str, n: usize) {
    let rt = runtime();
    let kv = rt.block_on(Kv::connect(&[store.to_owned()])).unwrap();
    for i in 0..n {
        let e = endpoint(i);
        rt.block_on(kv.put(e.store_key().as_bytes(), &e.to_json()))
            .unwrap();
    }
}

/// Asks `dns` for `name`'s A records until `done` says the reply is the one awaited; the
/// time from `start`, or `None` past [`GIVE_UP`].
fn poll(
    socket: &UdpSocket,
    id: &mut u16,
    name: &str,
    start: Instant,
    done: impl Fn(u8, &[Ipv4Addr]) -> bool,
) -> Option<Duration> {
    let mut buf = [0u8; 1500];
    while start.elapsed() < GIVE_UP {
        *id = id.wrapping_add(1);
        socket.send(&a_query(*id, name).unwrap()).unwrap();
        let asked = Instant::now();
        while asked.elapsed() < REPLY_WAIT {
            let Ok(n) = socket.recv(&mut buf) else { break };
            match parse_reply(&buf[..n]) {
                Some(reply) if reply.id == *id => {
                    if done(reply.rcode, &reply.a) {
                        return Some(start.elapsed());
                    }
                    break;
                }
                _ => {}
            }
        }
        std::thread::sleep(POLL_PAUSE);
    }
    None
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(what: &str, mut samples: Vec<Duration>, lost: usize) {
    samples.sort_unstable();
    let at = |p: f64| {
        let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(rank).copied().map_or(f64::NAN, ms)
    };
    println!(
        "{what} {:.3} {:.3} {:.3} {lost}",
        at(0.5),
        at(0.99),
        samples.last().copied().map_or(f64::NAN, ms)
    );
}

fn latency(store: &str, dns: SocketAddr, n: usize) {
    let rt = runtime();
    let kv = rt.block_on(Kv::connect(&[store.to_owned()])).unwrap();
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect(dns).unwrap();
    socket.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut id = 0u16;
    let (mut up, mut up_lost) = (Vec::new(), 0);
    for i in 0..n {
        let e = endpoint(i);
        let start = Instant::now();
        rt.block_on(kv.put(e.store_key().as_bytes(), &e.to_json()))
            .unwrap();
        let want = address(i);
        match poll(&socket, &mut id, &name(i), start, |rcode, a| {
            rcode == 0 && a.contains(&want)
        }) {
            Some(took) => up.push(took),
            None => up_lost += 1,
        }
    }
    let (mut down, mut down_lost) = (Vec::new(), 0);
    for i in 0..n {
        let e = endpoint(i);
        let start = Instant::now();
        rt.block_on(kv.delete(e.store_key().as_bytes(), false))
            .unwrap();
        match poll(&socket, &mut id, &name(i), start, |rcode, _| rcode == 3) {
            Some(took) => down.push(took),
            None => down_lost += 1,
        }
    }
    summary("register", up, up_lost);
    summary("deregister", down, down_lost);
}

fn qps(dns: SocketAddr, n: usize, seconds: u64, threads: usize, window: usize) {
    let queries: Arc<Vec<Vec<u8>>> =
        Arc::new((0..n).map(|i| a_query(0, &name(i)).unwrap()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let empty = Arc::new(AtomicU64::new(0));
    let timeouts = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (queries, stop) = (Arc::clone(&queries), Arc::clone(&stop));
            let (answered, empty, timeouts) = (
                Arc::clone(&answered),
                Arc::clone(&empty),
                Arc::clone(&timeouts),
            );
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
                socket.connect(dns).unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let mut next = t * 7919;
                let mut send = |socket: &UdpSocket| {
                    let mut query = queries[next % queries.len()].clone();
                    query[..2].copy_from_slice(&(next as u16).to_be_bytes());
                    next += 1;
                    let _ = socket.send(&query);
                };
                for _ in 0..window {
                    send(&socket);
                }
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    match socket.recv(&mut buf) {
                        Ok(len) if len >= 12 => {
                            let rcode = buf[3] & 0x0f;
                            let ancount = u16::from_be_bytes([buf[6], buf[7]]);
                            if rcode == 0 && ancount > 0 {
                                answered.fetch_add(1, Ordering::Relaxed);
                            } else {
                                empty.fetch_add(1, Ordering::Relaxed);
                            }
                            send(&socket);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            // Replies were lost (a full socket buffer): fill the window again.
                            timeouts.fetch_add(1, Ordering::Relaxed);
                            for _ in 0..window {
                                send(&socket);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for worker in workers {
        worker.join().unwrap();
    }
    let answered = answered.load(Ordering::Relaxed);
    println!(
        "qps {:.0} answered {answered} empty {} timeouts {}",
        answered as f64 / elapsed.as_secs_f64(),
        empty.load(Ordering::Relaxed),
        timeouts.load(Ordering::Relaxed)
    );
}
