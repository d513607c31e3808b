//! Which leases exist, their granted TTL, and the keys attached to each.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
}

/// The leases of the state machine. Pure data: no clock, no I/O.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
}

impl LeaseTable {
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Adds lease `id` with `ttl`; false if it already exists.
    pub fn grant(&mut self, id: i64, ttl: i64) -> bool {
        if self.leases.contains_key(&id) {
            return false;
        }
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        true
    }

    /// Removes lease `id` and returns the keys it held, or `None` if there is no such lease.
    pub fn revoke(&mut self, id: i64) -> Option<BTreeSet<Vec<u8>>> {
        self.leases.remove(&id).map(|l| l.keys)
    }

    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    pub fn ttl(&self, id: i64) -> Option<i64> {
        self.leases.get(&id).map(|l| l.ttl)
    }

    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every lease id with its granted TTL, in id order.
    pub fn all(&self) -> Vec<(i64, i64)> {
        self.leases.iter().map(|(id, l)| (*id, l.ttl)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granting_an_existing_lease_is_refused() {
        let mut t = LeaseTable::default();
        assert!(t.grant(7, 10));
        assert!(!t.grant(7, 20));
        assert_eq!(t.ttl(7), Some(10));
    }

    #[test]
    fn revoke_hands_back_the_attached_keys() {
        let mut t = LeaseTable::default();
        t.grant(7, 10);
        t.attach(7, b"a");
        t.attach(7, b"b");
        t.detach(7, b"a");
        assert_eq!(t.revoke(7).map(|k| k.len()), Some(1));
        assert!(t.revoke(7).is_none());
    }
}
