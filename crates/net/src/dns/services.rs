//! The service half of the DNS server's answers (docs/adr/0603-service-dns.md): the table of
//! the services in the store, fed by the daemon's watch and shared by all of its servers, and
//! the A and SRV records of names under the services' domain (the parent module says which).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use simple_dns::rdata::{RData, SRV};
use simple_dns::{CLASS, Name, QTYPE, ResourceRecord, TYPE};

use super::a_record;

/// TTL of service answers: a resolver that caches asks again within the second that the
/// store's changes take to reach the servers.
pub(super) const SERVICE_TTL: u32 = 1;
/// How many characters of the container id name an endpoint (`ID.NAME.service.berth`).
const ENDPOINT_LABEL_LEN: usize = 12;

/// One endpoint of a service, as DNS answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The container's address; `None` (host or no network) gives no A record.
    pub address: Option<Ipv4Addr>,
    /// The service's port in the container; `None` gives no SRV record.
    pub port: Option<u16>,
}

/// The services in the store, as DNS answers them: service name → container id →
/// endpoint, under one domain (`service.berth`). The daemon keeps one, fed by a watch of
/// the store, shared by all of its DNS servers ([`SharedServices`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Services {
    /// Lowercase, without a trailing dot; empty: no service names at all.
    domain: String,
    services: HashMap<String, BTreeMap<String, ServiceEndpoint>>,
}

/// The service table the daemon's watch writes and its DNS servers read.
pub type SharedServices = Arc<RwLock<Services>>;

/// What a name under the services' domain is.
pub(super) enum ServiceName<'a> {
    /// Nothing by that name: NXDOMAIN.
    Missing,
    /// The domain itself: it exists, with no records.
    Apex,
    /// `NAME.D`: A and SRV records.
    Service(&'a str, &'a BTreeMap<String, ServiceEndpoint>),
    /// `_NAME._tcp.D`: SRV records.
    Srv(&'a str, &'a BTreeMap<String, ServiceEndpoint>),
    /// `ID.NAME.D`: the A records of the endpoints whose id starts with ID.
    Endpoint(Vec<&'a ServiceEndpoint>),
}

/// The label that names an endpoint: the first 12 characters of its container id, if they
/// make a DNS label.
fn endpoint_label(id: &str) -> Option<&str> {
    let label = id.get(..ENDPOINT_LABEL_LEN).unwrap_or(id);
    let valid = !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(label)
}

impl Services {
    /// An empty table of the services under `domain` (e.g. `service.berth`).
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            services: HashMap::new(),
        }
    }

    /// This table behind the lock its readers and its writer share.
    pub fn shared(self) -> SharedServices {
        Arc::new(RwLock::new(self))
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Adds (or replaces) container `id`'s endpoint in `service`.
    pub fn insert(&mut self, service: &str, id: &str, endpoint: ServiceEndpoint) {
        self.services
            .entry(service.to_ascii_lowercase())
            .or_default()
            .insert(id.to_ascii_lowercase(), endpoint);
    }

    /// Removes container `id`'s endpoint from `service`; a service left without endpoints
    /// is gone.
    pub fn remove(&mut self, service: &str, id: &str) {
        let service = service.to_ascii_lowercase();
        if let Some(endpoints) = self.services.get_mut(&service) {
            endpoints.remove(&id.to_ascii_lowercase());
            if endpoints.is_empty() {
                self.services.remove(&service);
            }
        }
    }

    /// The endpoints of `service`, by container id.
    pub fn endpoints(&self, service: &str) -> Option<&BTreeMap<String, ServiceEndpoint>> {
        self.services.get(&service.to_ascii_lowercase())
    }

    /// How many services have endpoints.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// What `name` (lowercase, without a trailing dot) is, if it is under the domain.
    pub(super) fn lookup(&self, name: &str) -> Option<ServiceName<'_>> {
        if self.domain.is_empty() {
            return None;
        }
        if name == self.domain {
            return Some(ServiceName::Apex);
        }
        let rest = name.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        let service = |name: &str| self.services.get_key_value(name);
        let found = match rest.split('.').collect::<Vec<_>>()[..] {
            [name] => service(name).map(|(n, e)| ServiceName::Service(n, e)),
            [srv, "_tcp"] => srv
                .strip_prefix('_')
                .and_then(service)
                .map(|(n, e)| ServiceName::Srv(n, e)),
            [label, name] => service(name).and_then(|(_, endpoints)| {
                let matching: Vec<_> = endpoints
                    .iter()
                    .filter(|(id, _)| endpoint_label(id) == Some(label))
                    .map(|(_, e)| e)
                    .collect();
                (!matching.is_empty()).then_some(ServiceName::Endpoint(matching))
            }),
            _ => None,
        };
        Some(found.unwrap_or(ServiceName::Missing))
    }
}

/// `items` rotated by `by` places: successive queries start at different endpoints.
fn rotated<T>(mut items: Vec<T>, by: u16) -> Vec<T> {
    if !items.is_empty() {
        let n = usize::from(by) % items.len();
        items.rotate_left(n);
    }
    items
}

/// A records of `qname` for the distinct addresses of `endpoints`, rotated.
fn service_a_records<'a, 'e>(
    qname: &Name<'a>,
    endpoints: impl Iterator<Item = &'e ServiceEndpoint>,
    rotate: u16,
) -> Vec<ResourceRecord<'a>> {
    let mut ips: Vec<Ipv4Addr> = Vec::new();
    for ip in endpoints.filter_map(|e| e.address) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    rotated(ips, rotate)
        .into_iter()
        .map(|ip| a_record(qname.clone(), SERVICE_TTL, ip))
        .collect()
}

/// SRV records of `qname` for the endpoints with an address and a port (answers), and the
/// A records of their targets (additional section).
fn service_srv_records<'a>(
    qname: &Name<'a>,
    service: &str,
    domain: &str,
    endpoints: &BTreeMap<String, ServiceEndpoint>,
    rotate: u16,
    answers: &mut Vec<ResourceRecord<'a>>,
    additional: &mut Vec<ResourceRecord<'a>>,
) {
    let targets: Vec<_> = endpoints
        .iter()
        .filter_map(|(id, e)| Some((endpoint_label(id)?, e.address?, e.port?)))
        .collect();
    for (label, ip, port) in rotated(targets, rotate) {
        let target = Name::new_unchecked(&format!("{label}.{service}.{domain}")).into_owned();
        answers.push(ResourceRecord::new(
            qname.clone(),
            CLASS::IN,
            SERVICE_TTL,
            RData::SRV(SRV {
                priority: 0,
                weight: 1,
                port,
                target: target.clone(),
            }),
        ));
        additional.push(a_record(target, SERVICE_TTL, ip));
    }
}

/// The records of a service name for one question (the answer's, the additional section's).
pub(super) fn records<'a>(
    found: &ServiceName<'_>,
    domain: &str,
    qname: &Name<'a>,
    qtype: QTYPE,
    rotate: u16,
) -> (Vec<ResourceRecord<'a>>, Vec<ResourceRecord<'a>>) {
    let wants = |t: TYPE| qtype == QTYPE::ANY || qtype == QTYPE::TYPE(t);
    let mut answers = Vec::new();
    let mut additional = Vec::new();
    match found {
        ServiceName::Missing | ServiceName::Apex => {}
        // `NAME.service.berth` answers A and SRV; `_NAME._tcp.service.berth` SRV only.
        ServiceName::Service(service, endpoints) | ServiceName::Srv(service, endpoints) => {
            if matches!(found, ServiceName::Service(..)) && wants(TYPE::A) {
                answers.extend(service_a_records(qname, endpoints.values(), rotate));
            }
            if wants(TYPE::SRV) {
                service_srv_records(
                    qname,
                    service,
                    domain,
                    endpoints,
                    rotate,
                    &mut answers,
                    &mut additional,
                );
            }
        }
        ServiceName::Endpoint(endpoints) => {
            if wants(TYPE::A) {
                answers.extend(service_a_records(qname, endpoints.iter().copied(), rotate));
            }
        }
    }
    (answers, additional)
}
