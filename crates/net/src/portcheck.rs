//! Host ports: is one free to publish, and which one to take for `-p CTRPORT` and `-P`.
//!
//! portmap publishes with DNAT rules and holds no socket, so a port taken by a host process
//! would silently shadow or be shadowed by the rule; berth binds the port for a moment
//! first to refuse that. A host process that binds the port later is not prevented.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use crate::{Protocol, PublishedPort};

/// Whether `ip:port` (every address when `ip` is `None`) can be bound for `protocol` now.
pub fn port_is_free(ip: Option<Ipv4Addr>, port: u16, protocol: Protocol) -> io::Result<bool> {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    let bound = match protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    };
    match bound {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(false),
        Err(e) => Err(e),
    }
}

/// A port the kernel considers free on `ip` for `protocol` (from its ephemeral range).
pub fn free_port(ip: Option<Ipv4Addr>, protocol: Protocol) -> io::Result<u16> {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    match protocol {
        Protocol::Tcp => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        Protocol::Udp => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}

/// Whether two published ports would take the same host port: same protocol and port, and
/// host addresses that are equal or where either is every address.
pub fn conflicts(a: &PublishedPort, b: &PublishedPort) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && match (a.host_ip, b.host_ip) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_reported_in_use_per_protocol() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(!port_is_free(Some(Ipv4Addr::LOCALHOST), port, Protocol::Tcp).expect("check"));
        assert!(!port_is_free(None, port, Protocol::Tcp).expect("check"));
        drop(listener);
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        assert!(!port_is_free(Some(Ipv4Addr::LOCALHOST), port, Protocol::Udp).expect("check"));
    }

    #[test]
    fn conflicts_need_same_protocol_port_and_address() {
        let p = |ip: Option<Ipv4Addr>, port, protocol| PublishedPort {
            host_ip: ip,
            host_port: port,
            container_port: 80,
            protocol,
        };
        let lo = Some(Ipv4Addr::LOCALHOST);
        assert!(conflicts(
            &p(None, 80, Protocol::Tcp),
            &p(lo, 80, Protocol::Tcp)
        ));
        assert!(!conflicts(
            &p(None, 80, Protocol::Tcp),
            &p(lo, 80, Protocol::Udp)
        ));
        assert!(!conflicts(
            &p(None, 80, Protocol::Tcp),
            &p(None, 81, Protocol::Tcp)
        ));
        assert!(!conflicts(
            &p(lo, 80, Protocol::Tcp),
            &p(Some(Ipv4Addr::new(127, 0, 0, 2)), 80, Protocol::Tcp)
        ));
    }
}
