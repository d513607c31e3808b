//! The `/etc/hosts` and `/etc/resolv.conf` a container gets: pure functions of what it is
//! attached to.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::Attachment;

/// One name the container should resolve without DNS: another container on one of its
/// networks, or its own address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: Ipv4Addr,
    pub names: Vec<String>,
}

/// `/etc/hosts`: loopback entries as docker writes them, then `own` (the container's
/// address with its hostname and aliases), then `others`.
pub fn hosts_file(own: &[HostEntry], others: &[HostEntry]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for entry in own.iter().chain(others) {
        if !entry.names.is_empty() {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{}\t{}", entry.ip, entry.names.join(" "));
        }
    }
    out
}

/// `/etc/hosts` for a container with `hostname` and its `attachments`, next to `peers`
/// (the other containers on its networks): its own addresses with its hostname and aliases,
/// each peer's address with its aliases.
pub fn hosts_for(hostname: &str, attachments: &[Attachment], peers: &[Attachment]) -> String {
    let entry = |a: &Attachment, first: Option<&str>| HostEntry {
        ip: a.ip,
        names: first
            .into_iter()
            .map(str::to_owned)
            .chain(a.aliases.iter().cloned())
            .collect(),
    };
    let own: Vec<_> = attachments
        .iter()
        .map(|a| entry(a, Some(hostname)))
        .collect();
    let others: Vec<_> = peers.iter().map(|a| entry(a, None)).collect();
    hosts_file(&own, &others)
}

/// `/etc/resolv.conf`: berth's DNS server for the container's networks (their gateway
/// addresses), the search domains and options; no host resolver, so names outside berth's
/// networks do not resolve unless forwarding is configured on berth's DNS server.
pub fn resolv_conf(nameservers: &[Ipv4Addr], search: &[String], options: &[String]) -> String {
    let mut out = String::new();
    for ns in nameservers {
        let _ = writeln!(out, "nameserver {ns}");
    }
    if !search.is_empty() {
        let _ = writeln!(out, "search {}", search.join(" "));
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_loopback_then_self_then_peers() {
        let own = [HostEntry {
            ip: Ipv4Addr::new(10, 88, 0, 2),
            names: vec!["abc123".to_owned(), "web".to_owned()],
        }];
        let others = [
            HostEntry {
                ip: Ipv4Addr::new(10, 88, 0, 3),
                names: vec!["db".to_owned()],
            },
            HostEntry {
                ip: Ipv4Addr::new(10, 88, 0, 4),
                names: vec![],
            },
        ];
        let hosts = hosts_file(&own, &others);
        assert!(
            hosts.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        );
        assert!(hosts.ends_with("10.88.0.2\tabc123 web\n10.88.0.3\tdb\n"));
        assert!(!hosts.contains("10.88.0.4"));
    }

    #[test]
    fn hosts_for_names_the_container_by_hostname_and_aliases_and_its_peers_by_alias() {
        let attachment = |last: u8, aliases: &[&str]| Attachment {
            container: berth_types::ContainerId::from_random_bytes([last; 32]),
            network: crate::NetworkName::default_network(),
            ifname: "eth0".to_owned(),
            ip: Ipv4Addr::new(10, 88, 0, last),
            prefix: 16,
            gateway: Ipv4Addr::new(10, 88, 0, 1),
            mac: String::new(),
            ports: Vec::new(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        };
        let hosts = hosts_for(
            "abc123",
            &[attachment(2, &["web"])],
            &[attachment(3, &["db", "pg"])],
        );
        assert!(
            hosts.ends_with("10.88.0.2\tabc123 web\n10.88.0.3\tdb pg\n"),
            "{hosts}"
        );
    }

    #[test]
    fn resolv_conf_names_berths_servers_only() {
        let conf = resolv_conf(
            &[Ipv4Addr::new(10, 88, 0, 1)],
            &["berth".to_owned()],
            &["ndots:0".to_owned()],
        );
        assert_eq!(
            conf,
            "nameserver 10.88.0.1\nsearch berth\noptions ndots:0\n"
        );
        assert_eq!(resolv_conf(&[], &[], &[]), "");
    }
}
