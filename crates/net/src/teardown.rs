//! What the CNI plugins leave after the last container of a network is gone: the bridge
//! itself, berth-nat's elements for the network (its bridge and subnet in berth's nftables
//! table), and, for networks made by earlier versions, the firewall plugin's per-bridge
//! isolation rules (`ingressPolicy: same-bridge` adds them on first use and never removes
//! them). `network rm` removes all three.
//!
//! All are done with the tools the plugins already need (`ip` from iproute2, `nft`,
//! `iptables`); a bridge, element or rule that is already gone is not an error.

use std::process::Command;

use crate::NetError;
use crate::cni::nat;

/// The comment the firewall plugin puts on its isolation rules.
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge)";

fn failed(what: &str, reason: impl std::fmt::Display) -> NetError {
    NetError::Teardown {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// Deletes the network's bridge (if it exists), its berth-nat elements and the isolation
/// rules naming its bridge.
pub(crate) fn remove_bridge(net: &crate::Network) -> Result<(), NetError> {
    let bridge = net.bridge.as_str();
    let part = nat::NetPart {
        bridge: net.bridge.clone(),
        subnet: (net.subnet.network(), net.subnet.prefix()),
    };
    nat::remove_network(&nat::NftExec, nat::DEFAULT_TABLE, &part)
        .map_err(|e| failed("nft delete element", e))?;
    if std::path::Path::new("/sys/class/net").join(bridge).exists() {
        let out = Command::new("ip")
            .args(["link", "del", bridge])
            .output()
            .map_err(|e| failed("ip link del", e))?;
        if !out.status.success() {
            return Err(failed(
                "ip link del",
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
    }
    let saved = match Command::new("iptables-save")
        .args(["-t", "filter"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        // No iptables: the firewall plugin cannot have added rules either.
        _ => return Ok(()),
    };
    for rule in isolation_rules(&saved, bridge) {
        let mut args = vec!["-t".to_owned(), "filter".to_owned(), "-D".to_owned()];
        args.extend(rule);
        let out = Command::new("iptables")
            .args(&args)
            .output()
            .map_err(|e| failed("iptables -D", e))?;
        if !out.status.success() {
            return Err(failed(
                "iptables -D",
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
    }
    Ok(())
}

/// The isolation rules of `bridge` in `iptables-save` output, as argument lists for `-D`
/// (chain first).
fn isolation_rules(saved: &str, bridge: &str) -> Vec<Vec<String>> {
    saved
        .lines()
        .filter_map(|line| line.strip_prefix("-A "))
        .map(split_args)
        .filter(|args| {
            args.iter().any(|a| a == ISOLATION_COMMENT)
                && args
                    .windows(2)
                    .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == bridge)
        })
        .collect()
}

/// Splits an iptables-save rule into arguments, honouring double quotes and `\"`.
fn split_args(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => current.extend(chars.next()),
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bridges_own_isolation_rules_are_picked() {
        let saved = "*filter\n\
            -A CNI-ISOLATION-STAGE-1 -i bt3 ! -o bt3 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
            -A CNI-ISOLATION-STAGE-1 -i bt30 ! -o bt30 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
            -A CNI-ISOLATION-STAGE-2 -o bt3 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j DROP\n\
            -A FORWARD -i bt3 -j ACCEPT\n\
            COMMIT\n";
        let rules = isolation_rules(saved, "bt3");
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[1],
            [
                "CNI-ISOLATION-STAGE-2",
                "-o",
                "bt3",
                "-m",
                "comment",
                "--comment",
                ISOLATION_COMMENT,
                "-j",
                "DROP"
            ]
        );
    }

    #[test]
    fn quoted_arguments_keep_their_spaces_and_escapes() {
        assert_eq!(
            split_args(r#"X --comment "a \"b\" c" -j Y"#),
            ["X", "--comment", "a \"b\" c", "-j", "Y"]
        );
    }
}
