//! berth's per-network DNS server: A records for the containers on one network, by name and
//! alias, authoritative and without forwarding (a name it does not know is NXDOMAIN).
//!
//! [`answer`] is a pure function of a query and a [`Zone`]; [`DnsServer`] is the thin shell:
//! one thread on one UDP socket (the daemon binds the network's gateway address, port 53,
//! once the bridge exists), serving the zone it is updated with. TCP, AAAA records and
//! forwarding to upstream resolvers are not done (issue #5).

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, PacketFlag, QCLASS, QTYPE, RCODE, ResourceRecord, TYPE};

/// TTL of every answer: short, since containers come and go.
const TTL: u32 = 10;
/// Largest UDP query read; DNS over UDP without EDNS is at most 512 bytes.
const MAX_QUERY: usize = 1500;
/// How often the server thread looks at its stop flag.
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

/// The reply to a DNS query, or `None` for a packet that gets no reply (unparsable, or
/// itself a response). Known names answer their A records (no records for other types);
/// unknown names are NXDOMAIN; anything but a standard IN query is NOTIMP.
pub fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
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
        match zone.lookup(&question.qname.to_string()) {
            Some(ips) => {
                if matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
                    for ip in ips {
                        reply.answers.push(ResourceRecord::new(
                            question.qname.clone(),
                            CLASS::IN,
                            TTL,
                            RData::A(A {
                                address: u32::from(*ip),
                            }),
                        ));
                    }
                }
            }
            None => rcode = RCODE::NameError,
        }
    }
    *reply.rcode_mut() = rcode;
    reply.build_bytes_vec().ok()
}

/// A DNS server answering from a [`Zone`] on one UDP socket until dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddrV4,
    zone: Arc<RwLock<Zone>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds `addr` (port 0 picks one) and starts serving `zone`.
    pub fn bind(addr: SocketAddrV4, zone: Zone) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = match socket.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => return Err(io::Error::other("bound an IPv6 address")),
        };
        let zone = Arc::new(RwLock::new(zone));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (zone, stop) = (Arc::clone(&zone), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("dns-{addr}"))
                .spawn(move || serve(&socket, &zone, &stop))?
        };
        Ok(Self {
            addr,
            zone,
            stop,
            thread: Some(thread),
        })
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

fn serve(socket: &UdpSocket, zone: &RwLock<Zone>, stop: &AtomicBool) {
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
            answer(&buf[..n], &zone)
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
        if let Some(thread) = self.thread.take() {
            // The thread only loops on the socket; a panic there has been logged already.
            let _ = thread.join();
        }
    }
}

/// A query for `name`'s A record, for clients and tests.
pub fn a_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut query = Packet::new_query(id);
    query.set_flags(PacketFlag::RECURSION_DESIRED);
    query.questions.push(simple_dns::Question::new(
        simple_dns::Name::new(name).ok()?,
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    query.build_bytes_vec().ok()
}

/// The rcode and A records of a reply, for clients and tests.
pub fn parse_a_reply(reply: &[u8]) -> Option<(u16, u8, Vec<Ipv4Addr>)> {
    let packet = Packet::parse(reply).ok()?;
    let ips = packet
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect();
    Some((packet.id(), packet.rcode() as u8, ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        let mut zone = Zone::new(Some("berth"));
        zone.insert("web", Ipv4Addr::new(10, 88, 0, 2));
        zone.insert("Web-Alias", Ipv4Addr::new(10, 88, 0, 2));
        zone.insert("db", Ipv4Addr::new(10, 88, 0, 3));
        zone
    }

    fn ask(zone: &Zone, name: &str) -> (u16, u8, Vec<Ipv4Addr>) {
        let reply = answer(&a_query(7, name).expect("query"), zone).expect("reply");
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
        assert_eq!(answer(b"\x00\x01garbage", &zone()), None);
        let reply = answer(&a_query(1, "web").expect("query"), &zone()).expect("reply");
        assert_eq!(answer(&reply, &zone()), None);
    }

    #[test]
    fn the_server_answers_on_loopback_and_sees_updates() {
        let server =
            DnsServer::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), zone()).expect("bind");
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let ask = |name: &str| {
            client
                .send_to(&a_query(9, name).expect("query"), server.local_addr())
                .expect("send");
            let mut buf = [0u8; 512];
            let n = client.recv(&mut buf).expect("reply");
            parse_a_reply(&buf[..n]).expect("parse")
        };
        assert_eq!(ask("db").2, [Ipv4Addr::new(10, 88, 0, 3)]);
        server.update(|z| z.insert("cache", Ipv4Addr::new(10, 88, 0, 4)));
        assert_eq!(ask("cache").2, [Ipv4Addr::new(10, 88, 0, 4)]);
    }
}
