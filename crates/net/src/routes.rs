//! The host's own routes, so a new network's subnet does not shadow a network the host
//! already reaches (docker refuses those too).

use std::fs;
use std::net::Ipv4Addr;

use crate::{NetError, Subnet};

/// A route of the host: the interface and the destination network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub iface: String,
    pub destination: Ipv4Addr,
    pub prefix: u8,
}

impl HostRoute {
    /// Whether the route's destination shares an address with `subnet`.
    pub fn overlaps(&self, subnet: &Subnet) -> bool {
        let shorter = u32::from(self.prefix.min(subnet.prefix()));
        let mask = u32::MAX.checked_shl(32 - shorter).unwrap_or(0);
        u32::from(self.destination) & mask == u32::from(subnet.network()) & mask
    }
}

/// The host's IPv4 routes other than default routes, from `/proc/net/route`.
pub fn host_routes() -> Result<Vec<HostRoute>, NetError> {
    let path = "/proc/net/route";
    let text = fs::read_to_string(path).map_err(NetError::io("read", path))?;
    Ok(parse_routes(&text))
}

/// Parses `/proc/net/route`: hex fields hold the address bytes in network order as the
/// machine's native u32 prints them.
fn parse_routes(text: &str) -> Vec<HostRoute> {
    let addr = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, destination, mask) = (
                fields.first()?,
                addr(fields.get(1)?)?,
                addr(fields.get(7)?)?,
            );
            let prefix = u8::try_from(u32::from(mask).count_ones()).ok()?;
            (prefix > 0).then(|| HostRoute {
                iface: (*iface).to_owned(),
                destination,
                prefix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_route_is_read_without_default_routes() {
        let hex = |ip: Ipv4Addr| format!("{:08X}", u32::from_ne_bytes(ip.octets()));
        let text = format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t{}\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t{}\t00000000\t0001\t0\t0\t0\t{}\t0\t0\t0\n",
            hex(Ipv4Addr::new(192, 0, 2, 1)),
            hex(Ipv4Addr::new(192, 0, 2, 0)),
            hex(Ipv4Addr::new(255, 255, 255, 0)),
        );
        let routes = parse_routes(&text);
        assert_eq!(
            routes,
            [HostRoute {
                iface: "eth0".to_owned(),
                destination: Ipv4Addr::new(192, 0, 2, 0),
                prefix: 24
            }]
        );
        assert!(routes[0].overlaps(&"192.0.0.0/16".parse().expect("subnet")));
        assert!(!routes[0].overlaps(&"192.0.3.0/24".parse().expect("subnet")));
    }
}
