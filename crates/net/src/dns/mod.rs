//! berth's per-network DNS server: A records for the containers on one network, by name and
//! alias, and for the services registered in the store (`NAME.service.berth`, issue #6),
//! authoritative and without forwarding (a name it does not know is NXDOMAIN).
//!
//! [`answer`] is a pure function of a query, a [`Zone`] and the [`Services`]; [`DnsServer`]
//! is the thin shell: threads on one UDP socket (the daemon binds the network's gateway
//! address, port 53, once the bridge exists), serving the zone it is updated with and the
//! service table shared by all of the daemon's servers. TCP, AAAA records and forwarding to
//! upstream resolvers are not done (issue #5).
//!
//! Service names (docs/adr/0603-service-dns.md), under the services' domain `D`
//! (`service.berth`):
//! - `NAME.D` A: the addresses of the service's endpoints (those without an address are
//!   left out), in an order that rotates from query to query;
//! - `_NAME._tcp.D` and `NAME.D` SRV: one record per endpoint with an address and a port,
//!   priority 0, weight 1, target `ID.NAME.D` (`ID`: the first 12 characters of the
//!   container id), with the target's A record in the additional section;
//! - `ID.NAME.D` A: that one endpoint's address;
//! - a service with no endpoint in the store, and any other name under `D`, is NXDOMAIN; a
//!   service whose endpoints have no address (or no port, for SRV) is NODATA (no error, no
//!   records): the name exists, the record type does not.
//!
//! Service answers have a TTL of 1 s, so a resolver that caches asks again within the
//! second the store's changes take to get here. A reply is kept within 512 bytes (DNS over
//! UDP without EDNS): a service with more endpoints than fit answers a rotating subset
//! (about 30 A records fit, or 9 SRV records).

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, RCODE, ResourceRecord, TYPE};

mod services;

use services::ServiceName;
pub use services::{ServiceEndpoint, Services, SharedServices};

/// TTL of container names' answers: short, since containers come and go.
const TTL: u32 = 10;
/// The largest reply sent: DNS over UDP without EDNS.
const MAX_REPLY: usize = 512;
/// Largest UDP query read; DNS over UDP without EDNS is at most 512 bytes.
const MAX_QUERY: usize = 1500;
/// How many threads serve one socket.
const SERVER_THREADS: usize = 1;
/// How often the server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(100);

/// The names one network's containers answer to. Names are case-insensitive; a query may
/// carry the zone's domain as a suffix (`web` and `web.berth` are the same name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    domain: Option<String>,
    names: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl Zone {
    /// An empty zone; `domain` is the search domain containers get (e.g. `berth`).
    pub fn new(domain: Option<&str>) -> Self {
        Self {
            domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
            names: BTreeMap::new(),
        }
    }

    /// Makes `name` answer `ip` (as well as any address it had).
    pub fn insert(&mut self, name: &str, ip: Ipv4Addr) {
        let ips = self
            .names
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }

    /// Makes the attachment's aliases (its container name among them) answer its address.
    pub fn add_attachment(&mut self, attachment: &crate::Attachment) {
        for alias in &attachment.aliases {
            self.insert(alias, attachment.ip);
        }
    }

    /// Removes `ip` from every name (a container left the network).
    pub fn remove_ip(&mut self, ip: Ipv4Addr) {
        self.names.retain(|_, ips| {
            ips.retain(|i| *i != ip);
            !ips.is_empty()
        });
    }

    /// The addresses of `qname`, if the zone has the name.
    pub fn lookup(&self, qname: &str) -> Option<&[Ipv4Addr]> {
        let name = qname.trim_end_matches('.').to_ascii_lowercase();
        let name = match &self.domain {
            Some(domain) => name
                .strip_suffix(domain.as_str())
                .and_then(|n| n.strip_suffix('.'))
                .map(str::to_owned)
                .unwrap_or(name),
            None => name,
        };
        self.names.get(&name).map(Vec::as_slice)
    }
}

pub(crate) fn a_record<'a>(name: Name<'a>, ttl: u32, ip: Ipv4Addr) -> ResourceRecord<'a> {
    ResourceRecord::new(
        name,
        CLASS::IN,
        ttl,
        RData::A(A {
            address: u32::from(ip),
        }),
    )
}

/// The reply to a DNS query, or `None` for a packet that gets no reply (unparsable, or
/// itself a response). Service names (under `services`' domain) answer as the module says;
/// other known names answer their A records (no records for other types); unknown names
/// are NXDOMAIN; anything but a standard IN query is NOTIMP.
pub fn answer(query: &[u8], zone: &Zone, services: &Services) -> Option<Vec<u8>> {
    let query = Packet::parse(query).ok()?;
    if query.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    let mut rcode = RCODE::NoError;
    for question in &query.questions {
        reply.questions.push(question.clone());
        if !matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY) {
            rcode = RCODE::NotImplemented;
            continue;
        }
        let name = question.qname.to_string();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(found) = services.lookup(&name) {
            if matches!(found, ServiceName::Missing) {
                rcode = RCODE::NameError;
            }
            let (answers, additional) = services::records(
                &found,
                services.domain(),
                &question.qname,
                question.qtype,
                query.id(),
            );
            reply.answers.extend(answers);
            reply.additional_records.extend(additional);
            continue;
        }
        match zone.lookup(&name) {
            Some(ips) => {
                if matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
                    for ip in ips {
                        reply
                            .answers
                            .push(a_record(question.qname.clone(), TTL, *ip));
                    }
                }
            }
            None => rcode = RCODE::NameError,
        }
    }
    *reply.rcode_mut() = rcode;
    within_limit(reply)
}

/// `reply`'s bytes in at most [`MAX_REPLY`]: compressed if need be, then without its
/// additional section, then with as many answers as fit (a client that wants the targets
/// of trimmed SRV records asks for their A records).
fn within_limit(mut reply: Packet<'_>) -> Option<Vec<u8>> {
    let bytes = reply.build_bytes_vec().ok()?;
    if bytes.len() <= MAX_REPLY {
        return Some(bytes);
    }
    let bytes = reply.build_bytes_vec_compressed().ok()?;
    if bytes.len() <= MAX_REPLY {
        return Some(bytes);
    }
    reply.additional_records.clear();
    loop {
        let bytes = reply.build_bytes_vec_compressed().ok()?;
        if bytes.len() <= MAX_REPLY || reply.answers.is_empty() {
            return Some(bytes);
        }
        let fit = reply.answers.len() * MAX_REPLY / bytes.len();
        reply.answers.truncate(fit.min(reply.answers.len() - 1));
    }
}

/// A DNS server answering from a [`Zone`] and a service table on one UDP socket until
/// dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddrV4,
    zone: Arc<RwLock<Zone>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds `addr` (port 0 picks one) and starts serving `zone`, without services.
    pub fn bind(addr: SocketAddrV4, zone: Zone) -> io::Result<Self> {
        Self::bind_with_services(addr, zone, Services::default().shared())
    }

    /// Binds `addr` (port 0 picks one) and starts serving `zone` and `services` (read at
    /// every query, so the writer's changes are seen at once).
    pub fn bind_with_services(
        addr: SocketAddrV4,
        zone: Zone,
        services: SharedServices,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = match socket.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err(io::Error::other("bound an IPv6 address")),
        };
        let zone = Arc::new(RwLock::new(zone));
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = Self {
            addr,
            zone,
            stop,
            threads: Vec::new(),
        };
        let socket = Arc::new(socket);
        for n in 0..SERVER_THREADS {
            let (socket, zone, services, stop) = (
                Arc::clone(&socket),
                Arc::clone(&server.zone),
                Arc::clone(&services),
                Arc::clone(&server.stop),
            );
            // On an error, the threads already started are stopped by the drop.
            let thread = std::thread::Builder::new()
                .name(format!("dns-{n}-{addr}"))
                .spawn(move || serve(&socket, &zone, &services, &stop))?;
            server.threads.push(thread);
        }
        Ok(server)
    }

    /// The address served.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// Changes the zone; later queries see the change.
    pub fn update(&self, change: impl FnOnce(&mut Zone)) {
        let mut zone = self.zone.write().unwrap_or_else(|p| p.into_inner());
        change(&mut zone);
    }
}

fn serve(socket: &UdpSocket, zone: &RwLock<Zone>, services: &RwLock<Services>, stop: &AtomicBool) {
    let mut buf = [0u8; MAX_QUERY];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "dns: receive failed");
                continue;
            }
        };
        let reply = {
            let zone = zone.read().unwrap_or_else(|p| p.into_inner());
            let services = services.read().unwrap_or_else(|p| p.into_inner());
            answer(&buf[..n], &zone, &services)
        };
        if let Some(reply) = reply
            && let Err(e) = socket.send_to(&reply, from)
        {
            tracing::debug!(error = %e, %from, "dns: reply not sent");
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            // The threads only loop on the socket; a panic there has been logged already.
            let _ = thread.join();
        }
    }
}

/// A query for `name`'s A record, for clients and tests.
pub fn a_query(id: u16, name: &str) -> Option<Vec<u8>> {
    query(id, name, TYPE::A)
}

/// A query for `name`'s SRV records, for clients and tests.
pub fn srv_query(id: u16, name: &str) -> Option<Vec<u8>> {
    query(id, name, TYPE::SRV)
}

fn query(id: u16, name: &str, qtype: TYPE) -> Option<Vec<u8>> {
    let mut query = Packet::new_query(id);
    query.set_flags(PacketFlag::RECURSION_DESIRED);
    query.questions.push(simple_dns::Question::new(
        Name::new(name).ok()?,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    query.build_bytes_vec().ok()
}

/// The rcode and A records of a reply, for clients and tests.
pub fn parse_a_reply(reply: &[u8]) -> Option<(u16, u8, Vec<Ipv4Addr>)> {
    let reply = parse_reply(reply)?;
    Some((reply.id, reply.rcode, reply.a))
}

/// A reply as clients and tests look at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    /// The A records of the answer section.
    pub a: Vec<Ipv4Addr>,
    /// The SRV records of the answer section: (port, target).
    pub srv: Vec<(u16, String)>,
    /// The A records of the additional section: (name, address).
    pub additional: Vec<(String, Ipv4Addr)>,
}

/// Parses a reply; `None` for a packet that is not DNS.
pub fn parse_reply(reply: &[u8]) -> Option<Reply> {
    let packet = Packet::parse(reply).ok()?;
    let mut parsed = Reply {
        id: packet.id(),
        rcode: packet.rcode() as u8,
        ..Reply::default()
    };
    for rr in &packet.answers {
        match &rr.rdata {
            RData::A(a) => parsed.a.push(Ipv4Addr::from(a.address)),
            RData::SRV(srv) => parsed.srv.push((srv.port, srv.target.to_string())),
            _ => {}
        }
    }
    for rr in &packet.additional_records {
        if let RData::A(a) = &rr.rdata {
            parsed
                .additional
                .push((rr.name.to_string(), Ipv4Addr::from(a.address)));
        }
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::services::SERVICE_TTL;
    use super::*;

    fn zone() -> Zone {
        let mut zone = Zone::new(Some("berth"));
        zone.insert("web", Ipv4Addr::new(10, 88, 0, 2));
        zone.insert("Web-Alias", Ipv4Addr::new(10, 88, 0, 2));
        zone.insert("db", Ipv4Addr::new(10, 88, 0, 3));
        zone
    }

    fn ask(zone: &Zone, name: &str) -> (u16, u8, Vec<Ipv4Addr>) {
        let reply = answer(
            &a_query(7, name).expect("query"),
            zone,
            &Services::default(),
        )
        .expect("reply");
        parse_a_reply(&reply).expect("parse")
    }

    #[test]
    fn names_and_aliases_answer_case_insensitively_with_or_without_the_domain() {
        let zone = zone();
        let web = vec![Ipv4Addr::new(10, 88, 0, 2)];
        assert_eq!(ask(&zone, "web"), (7, RCODE::NoError as u8, web.clone()));
        assert_eq!(
            ask(&zone, "WEB.berth"),
            (7, RCODE::NoError as u8, web.clone())
        );
        assert_eq!(ask(&zone, "web-alias"), (7, RCODE::NoError as u8, web));
    }

    #[test]
    fn unknown_names_are_nxdomain_and_never_forwarded() {
        let zone = zone();
        assert_eq!(
            ask(&zone, "example.com"),
            (7, RCODE::NameError as u8, vec![])
        );
        assert_eq!(ask(&zone, "web.other"), (7, RCODE::NameError as u8, vec![]));
    }

    #[test]
    fn a_container_leaving_takes_its_names_along() {
        let mut zone = zone();
        zone.remove_ip(Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(zone.lookup("web"), None);
        assert_eq!(zone.lookup("db"), Some(&[Ipv4Addr::new(10, 88, 0, 3)][..]));
    }

    #[test]
    fn garbage_and_responses_get_no_reply() {
        let none = Services::default();
        assert_eq!(answer(b"\x00\x01garbage", &zone(), &none), None);
        let reply = answer(&a_query(1, "web").expect("query"), &zone(), &none).expect("reply");
        assert_eq!(answer(&reply, &zone(), &none), None);
    }

    /// The raw reply of a running server to an A query for `name`, over UDP on loopback.
    fn ask_server(server: &DnsServer, name: &str) -> Vec<u8> {
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client
            .send_to(&a_query(9, name).expect("query"), server.local_addr())
            .expect("send");
        let mut buf = [0u8; 512];
        let n = client.recv(&mut buf).expect("reply");
        buf[..n].to_vec()
    }

    #[test]
    fn the_server_answers_on_loopback_and_sees_updates() {
        let server =
            DnsServer::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), zone()).expect("bind");
        let ask = |name: &str| parse_a_reply(&ask_server(&server, name)).expect("parse");
        assert_eq!(ask("db").2, [Ipv4Addr::new(10, 88, 0, 3)]);
        server.update(|z| z.insert("cache", Ipv4Addr::new(10, 88, 0, 4)));
        assert_eq!(ask("cache").2, [Ipv4Addr::new(10, 88, 0, 4)]);
    }

    const WEB1: &str = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
    const WEB2: &str = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222";
    const HOSTNET: &str = "cccccccccccc3333333333333333333333333333333333333333333333333333";

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, 1, last)
    }

    /// `web`: two endpoints with an address and a port and one on the host's network;
    /// `worker`: one endpoint without a port; `hostonly`: only a host-network endpoint.
    fn services() -> Services {
        let mut services = Services::new("service.berth");
        let endpoint = |address, port| ServiceEndpoint { address, port };
        services.insert("web", WEB1, endpoint(Some(ip(1)), Some(8080)));
        services.insert("web", WEB2, endpoint(Some(ip(2)), Some(8081)));
        services.insert("web", HOSTNET, endpoint(None, Some(9000)));
        services.insert("worker", WEB1, endpoint(Some(ip(1)), None));
        services.insert("hostonly", HOSTNET, endpoint(None, Some(80)));
        services
    }

    fn ask_services(services: &Services, query: &[u8]) -> Reply {
        parse_reply(&answer(query, &zone(), services).expect("reply")).expect("parse")
    }

    fn a(services: &Services, name: &str) -> Reply {
        ask_services(services, &a_query(7, name).expect("query"))
    }

    fn srv(services: &Services, name: &str) -> Reply {
        ask_services(services, &srv_query(7, name).expect("query"))
    }

    fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
        items.sort();
        items
    }

    #[test]
    fn a_service_answers_the_addresses_of_its_endpoints_in_any_case_with_a_short_ttl() {
        let services = services();
        for name in [
            "web.service.berth",
            "WEB.Service.Berth",
            "web.service.berth.",
        ] {
            let reply = a(&services, name);
            assert_eq!(reply.rcode, RCODE::NoError as u8, "{name}");
            assert_eq!(sorted(reply.a), [ip(1), ip(2)], "{name}");
        }
        let bytes = answer(
            &a_query(3, "web.service.berth").expect("query"),
            &zone(),
            &services,
        )
        .expect("reply");
        let packet = Packet::parse(&bytes).expect("parse");
        assert!(packet.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
        assert!(packet.answers.iter().all(|rr| rr.ttl == SERVICE_TTL));
        // The zone's domain (`berth`) does not swallow the service's, and the container
        // named `web` keeps its own address.
        assert_eq!(a(&services, "web").a, [Ipv4Addr::new(10, 88, 0, 2)]);
        assert_eq!(a(&services, "web.berth").a, [Ipv4Addr::new(10, 88, 0, 2)]);
    }

    #[test]
    fn successive_queries_start_at_different_endpoints() {
        let services = services();
        let first = |id| {
            let reply = ask_services(&services, &a_query(id, "web.service.berth").expect("query"));
            reply.a[0]
        };
        assert_ne!(first(0), first(1));
    }

    #[test]
    fn srv_records_name_each_endpoint_with_its_port_and_its_address_alongside() {
        let services = services();
        let expected = vec![
            (8080, "aaaaaaaaaaaa.web.service.berth".to_owned()),
            (8081, "bbbbbbbbbbbb.web.service.berth".to_owned()),
        ];
        let additional = vec![
            ("aaaaaaaaaaaa.web.service.berth".to_owned(), ip(1)),
            ("bbbbbbbbbbbb.web.service.berth".to_owned(), ip(2)),
        ];
        for name in [
            "_web._tcp.service.berth",
            "web.service.berth",
            "_WEB._TCP.service.berth.",
        ] {
            let reply = srv(&services, name);
            assert_eq!(reply.rcode, RCODE::NoError as u8, "{name}");
            assert_eq!(sorted(reply.srv), expected, "{name}");
            assert_eq!(sorted(reply.additional), additional, "{name}");
            assert!(reply.a.is_empty(), "{name}");
        }
        // A target resolves to its endpoint alone.
        assert_eq!(a(&services, "bbbbbbbbbbbb.web.service.berth").a, [ip(2)]);
        // Without a port there is no SRV record, but the name exists.
        let reply = srv(&services, "_worker._tcp.service.berth");
        assert_eq!((reply.rcode, reply.srv), (RCODE::NoError as u8, vec![]));
        assert_eq!(a(&services, "worker.service.berth").a, [ip(1)]);
    }

    #[test]
    fn unknown_services_are_nxdomain_and_addressless_ones_nodata() {
        let mut services = services();
        let nx = RCODE::NameError as u8;
        for name in [
            "db.service.berth",
            "_db._tcp.service.berth",
            "_web._udp.service.berth",
            "dddddddddddd.web.service.berth",
            "x.y.web.service.berth",
            "web.service.berth.berth",
            "web.service",
        ] {
            assert_eq!(a(&services, name).rcode, nx, "{name}");
        }
        // A host-network endpoint has no address: the name exists with no A record.
        let reply = a(&services, "hostonly.service.berth");
        assert_eq!((reply.rcode, reply.a), (RCODE::NoError as u8, vec![]));
        assert_eq!(
            a(&services, "_web._tcp.service.berth").rcode,
            RCODE::NoError as u8
        );
        // A service whose last endpoint leaves is gone.
        services.remove("worker", WEB1);
        assert_eq!(a(&services, "worker.service.berth").rcode, nx);
        assert_eq!(services.endpoints("worker"), None);
        services.remove("web", WEB1);
        assert_eq!(a(&services, "web.service.berth").a, [ip(2)]);
        // Without a services domain, nothing is a service.
        assert_eq!(
            ask_services(
                &Services::default(),
                &a_query(1, "web.service.berth").expect("q")
            )
            .rcode,
            nx
        );
    }

    #[test]
    fn a_service_with_more_endpoints_than_fit_answers_a_subset_within_512_bytes() {
        let mut services = Services::new("service.berth");
        for i in 0..200u8 {
            let id = format!("{i:012x}{}", "0".repeat(52));
            let endpoint = ServiceEndpoint {
                address: Some(Ipv4Addr::new(10, 88, 2, i)),
                port: Some(80),
            };
            services.insert("big", &id, endpoint);
        }
        // About 30 A records fit, and 9 SRV records (their targets are not compressed).
        for (query, least) in [
            (a_query(1, "big.service.berth").expect("query"), 25),
            (srv_query(1, "_big._tcp.service.berth").expect("query"), 8),
        ] {
            let bytes = answer(&query, &zone(), &services).expect("reply");
            assert!(bytes.len() <= MAX_REPLY, "{} bytes", bytes.len());
            let reply = parse_reply(&bytes).expect("parse");
            assert!(reply.a.len() + reply.srv.len() >= least, "{reply:?}");
        }
    }

    #[test]
    fn the_server_sees_service_changes_at_once() {
        let services = Services::new("service.berth").shared();
        let server = DnsServer::bind_with_services(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            zone(),
            Arc::clone(&services),
        )
        .expect("bind");
        let ask = |name: &str| parse_reply(&ask_server(&server, name)).expect("parse");
        assert_eq!(ask("api.service.berth").rcode, RCODE::NameError as u8);
        services.write().expect("lock").insert(
            "api",
            WEB1,
            ServiceEndpoint {
                address: Some(ip(7)),
                port: None,
            },
        );
        assert_eq!(ask("api.service.berth").a, [ip(7)]);
        assert_eq!(ask("db").a, [Ipv4Addr::new(10, 88, 0, 3)]);
    }
}
