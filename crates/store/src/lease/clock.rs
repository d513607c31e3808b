//! When each lease expires. Time comes in as an argument, so expiry is testable without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Deadlines of the leases this node serves.
#[derive(Debug, Default)]
pub struct LeaseClock {
    deadlines: HashMap<i64, Instant>,
    /// The raft term in which this member, leading, last gave every lease its full TTL again.
    renewed_in_term: Option<u64>,
}

impl LeaseClock {
    /// The term of the last renewal of every lease by this member as leader, if any.
    pub fn renewed_in_term(&self) -> Option<u64> {
        self.renewed_in_term
    }

    /// Gives every one of `leases` (id, TTL) its full TTL from `now`, for leading in `term`.
    pub fn renew_all(
        &mut self,
        leases: impl IntoIterator<Item = (i64, i64)>,
        now: Instant,
        term: u64,
    ) {
        for (id, ttl) in leases {
            self.renew(id, ttl, now);
        }
        self.renewed_in_term = Some(term);
    }

    /// Starts or restarts the countdown of lease `id`: it expires `ttl` seconds after `now`.
    pub fn renew(&mut self, id: i64, ttl: i64, now: Instant) {
        let secs = u64::try_from(ttl.max(0)).unwrap_or(0);
        self.deadlines.insert(id, now + Duration::from_secs(secs));
    }

    pub fn forget(&mut self, id: i64) {
        self.deadlines.remove(&id);
    }

    /// Seconds left before lease `id` expires (rounded up), or `None` if it is unknown.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        let left = self.deadlines.get(&id)?.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// The leases whose deadline has passed at `now`, lowest id first.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expires_after_its_ttl_and_keepalive_postpones_it() {
        let t0 = Instant::now();
        let mut c = LeaseClock::default();
        c.renew(1, 5, t0);
        assert!(c.expired(t0 + Duration::from_secs(4)).is_empty());
        c.renew(1, 5, t0 + Duration::from_secs(4));
        assert!(c.expired(t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(c.expired(t0 + Duration::from_secs(9)), vec![1]);
        assert_eq!(c.remaining(1, t0 + Duration::from_millis(7500)), Some(2));
    }
}
