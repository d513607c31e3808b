//! IPv4 subnets in CIDR notation: parsing, overlap, gateway and host addresses.
//!
//! IPv6 networks are not supported yet; an IPv6 CIDR is refused with a clear error.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The smallest prefix berth accepts: larger networks than /8 are almost surely a typo.
const MIN_PREFIX: u8 = 8;
/// The largest prefix berth accepts: a /30 has two hosts, the gateway and one container.
const MAX_PREFIX: u8 = 30;

/// An IPv4 network: its network address (host bits zero) and prefix length (8..=30).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

/// Why a string is not a [`Subnet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("invalid subnet {0:?}: expected an IPv4 CIDR such as 10.88.0.0/16")]
    Malformed(String),
    #[error("invalid subnet {0:?}: IPv6 networks are not supported yet")]
    Ipv6(String),
    #[error(
        "invalid subnet {input:?}: prefix length must be between {MIN_PREFIX} and {MAX_PREFIX}"
    )]
    Prefix { input: String },
    #[error("invalid subnet {input:?}: host bits are set; did you mean {suggestion}?")]
    HostBits { input: String, suggestion: String },
}

impl Subnet {
    /// The subnet with network address `network` and prefix `prefix`, checked like a parse.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        format!("{network}/{prefix}").parse()
    }

    /// The network address (all host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX << (32 - u32::from(prefix))
    }

    /// The broadcast address (all host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Self::mask(self.prefix))
    }

    /// The gateway: the first host address, which the bridge holds.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `ip` lies in this subnet (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.network)
    }

    /// Whether `ip` can be given to a container: in the subnet, not the network, broadcast
    /// or gateway address.
    pub fn is_assignable(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network && ip != self.broadcast() && ip != self.gateway()
    }

    /// Whether the two subnets share at least one address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        let mask = Self::mask(shorter);
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || SubnetError::Malformed(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(malformed)?;
        if addr.contains(':') {
            return Err(SubnetError::Ipv6(s.to_owned()));
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| malformed())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 2 {
            return Err(malformed());
        }
        let prefix: u8 = prefix.parse().map_err(|_| malformed())?;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(SubnetError::Prefix {
                input: s.to_owned(),
            });
        }
        let network = Ipv4Addr::from(u32::from(addr) & Self::mask(prefix));
        if network != addr {
            return Err(SubnetError::HostBits {
                input: s.to_owned(),
                suggestion: format!("{network}/{prefix}"),
            });
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl fmt::Debug for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

berth_types::serde_as_string!(Subnet);

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str) -> Subnet {
        s.parse().expect(s)
    }

    #[test]
    fn default_subnet_has_its_gateway_first() {
        let s = subnet("10.88.0.0/16");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(s.is_assignable(Ipv4Addr::new(10, 88, 0, 2)));
        assert!(!s.is_assignable(Ipv4Addr::new(10, 88, 0, 1)));
        assert!(!s.is_assignable(Ipv4Addr::new(10, 89, 0, 2)));
        assert_eq!(s.to_string(), "10.88.0.0/16");
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        let big = subnet("10.88.0.0/16");
        let inside = subnet("10.88.3.0/24");
        let beside = subnet("10.89.0.0/24");
        assert!(big.overlaps(&inside) && inside.overlaps(&big));
        assert!(!big.overlaps(&beside) && !beside.overlaps(&big));
        assert!(big.overlaps(&big));
    }

    #[test]
    fn invalid_cidrs_say_what_is_wrong() {
        for bad in [
            "",
            "10.88.0.0",
            "10.88.0/16",
            "10.88.0.0/",
            "10.88.0.0/x",
            "x/16",
        ] {
            assert!(
                matches!(bad.parse::<Subnet>(), Err(SubnetError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "fd00::/64".parse::<Subnet>(),
            Err(SubnetError::Ipv6(_))
        ));
        assert!(matches!(
            "10.0.0.0/31".parse::<Subnet>(),
            Err(SubnetError::Prefix { .. })
        ));
        assert!(matches!(
            "10.0.0.0/4".parse::<Subnet>(),
            Err(SubnetError::Prefix { .. })
        ));
        let err = "10.88.0.1/16".parse::<Subnet>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid subnet \"10.88.0.1/16\": host bits are set; did you mean 10.88.0.0/16?"
        );
    }

    #[test]
    fn serde_round_trips_through_the_string() {
        let s = subnet("10.200.3.0/24");
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(json, "\"10.200.3.0/24\"");
        assert_eq!(
            serde_json::from_str::<Subnet>(&json).expect("deserialize"),
            s
        );
        assert!(serde_json::from_str::<Subnet>("\"10.200.3.1/24\"").is_err());
    }
}
