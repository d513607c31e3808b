//! Published ports: docker's `-p [[HOSTIP:][HOSTPORT]:]CTRPORT[/tcp|udp]` grammar, with
//! equal-length port ranges (`8000-8001:80-81`).

use std::fmt;
use std::net::Ipv4Addr;

/// Most ports one `-p` range may expand to, so a typo cannot publish 65535 ports.
const MAX_RANGE: usize = 1024;

/// A transport protocol a port can be published for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port. `host_port` is `None` when the host port is to be picked by berth
/// (`-p 80`, `-P`); `host_ip` is `None` for every host address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// Why a `-p` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port mapping {spec:?}: {reason}")]
    Invalid { spec: String, reason: String },
}

fn invalid(spec: &str, reason: impl Into<String>) -> PortError {
    PortError::Invalid {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

/// Parses `80`, `80-81` into an inclusive range of non-zero ports.
fn parse_range(spec: &str, what: &str, s: &str) -> Result<(u16, u16), PortError> {
    let port = |p: &str| -> Result<u16, PortError> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(invalid(
                spec,
                format!("{what} {p:?} is not a port number (1-65535)"),
            )),
            Ok(n) if p.starts_with('+') => Err(invalid(spec, format!("{what} {n} has a sign"))),
            Ok(n) => Ok(n),
        }
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(invalid(
            spec,
            format!("{what} range {s:?} ends before it starts"),
        ));
    }
    Ok((lo, hi))
}

impl PortMapping {
    /// Parses one `-p` argument into the mappings it publishes (several for a range).
    pub fn parse_spec(spec: &str) -> Result<Vec<PortMapping>, PortError> {
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some((_, other)) => {
                return Err(invalid(
                    spec,
                    format!("protocol {other:?} is not supported (tcp or udp)"),
                ));
            }
            None => (spec, Protocol::Tcp),
        };
        if rest.starts_with('[') {
            return Err(invalid(spec, "IPv6 host addresses are not supported yet"));
        }
        let parts: Vec<&str> = rest.split(':').collect();
        let (host_ip, host_ports, container_ports) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
            _ => {
                return Err(invalid(
                    spec,
                    "too many ':'; expected [[HOSTIP:][HOSTPORT]:]CTRPORT[/PROTO]",
                ));
            }
        };
        let host_ip = host_ip
            .map(|ip| {
                ip.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(spec, format!("host address {ip:?} is not an IPv4 address"))
                })
            })
            .transpose()?
            // 0.0.0.0 means every address, as no address does.
            .filter(|ip| !ip.is_unspecified());
        let (c_lo, c_hi) = parse_range(spec, "container port", container_ports)?;
        let count = usize::from(c_hi - c_lo) + 1;
        if count > MAX_RANGE {
            return Err(invalid(
                spec,
                format!("a range may hold at most {MAX_RANGE} ports"),
            ));
        }
        let host = host_ports
            .map(|h| parse_range(spec, "host port", h))
            .transpose()?;
        if let Some((h_lo, h_hi)) = host
            && usize::from(h_hi - h_lo) + 1 != count
        {
            return Err(invalid(
                spec,
                "host and container port ranges differ in length",
            ));
        }
        Ok((0..count)
            .map(|i| {
                let offset = u16::try_from(i).unwrap_or(u16::MAX);
                PortMapping {
                    host_ip,
                    host_port: host.map(|(lo, _)| lo + offset),
                    container_port: c_lo + offset,
                    protocol,
                }
            })
            .collect())
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        match (self.host_port, self.host_ip) {
            (Some(p), _) => write!(f, "{p}:")?,
            (None, Some(_)) => f.write_str(":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container_port, self.protocol)
    }
}

/// A port as published: the host port is chosen, so this is what portmap is given and what
/// `berth port` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PublishedPort {
    /// The mapping this port was published for, with its chosen host port.
    pub fn mapping(&self) -> PortMapping {
        PortMapping {
            host_ip: self.host_ip,
            host_port: Some(self.host_port),
            container_port: self.container_port,
            protocol: self.protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let mut all = PortMapping::parse_spec(spec).expect(spec);
        assert_eq!(all.len(), 1, "{spec}");
        all.remove(0)
    }

    #[test]
    fn dockers_forms_parse() {
        let m = one("80");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.protocol),
            (None, None, 80, Protocol::Tcp)
        );
        let m = one("8080:80/udp");
        assert_eq!(
            (m.host_port, m.container_port, m.protocol),
            (Some(8080), 80, Protocol::Udp)
        );
        let m = one("127.0.0.1:8080:80");
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m.to_string(), "127.0.0.1:8080:80/tcp");
        assert_eq!(one("0.0.0.0:8080:80"), one("8080:80"));
        let m = one("127.0.0.1::80/tcp");
        assert_eq!((m.host_ip, m.host_port), (Some(Ipv4Addr::LOCALHOST), None));
        assert_eq!(m.to_string(), "127.0.0.1::80/tcp");
    }

    #[test]
    fn ranges_expand_pairwise() {
        let all = PortMapping::parse_spec("8000-8002:80-82/udp").expect("range");
        let pairs: Vec<_> = all
            .iter()
            .map(|m| (m.host_port, m.container_port))
            .collect();
        assert_eq!(
            pairs,
            [(Some(8000), 80), (Some(8001), 81), (Some(8002), 82)]
        );
    }

    #[test]
    fn bad_mappings_say_why() {
        let cases = [
            ("0", "not a port number"),
            ("70000:80", "not a port number"),
            ("80/sctp", "protocol \"sctp\" is not supported"),
            ("1.2.3:80:80", "not an IPv4 address"),
            ("[::1]:80:80", "IPv6"),
            ("a:b:c:d", "too many ':'"),
            ("8000-8001:80", "differ in length"),
            ("90-80", "ends before it starts"),
            ("1-2000", "at most 1024"),
            ("", "not a port number"),
        ];
        for (spec, want) in cases {
            let err = PortMapping::parse_spec(spec).expect_err(spec).to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
