//! The in-memory multi-version index: every live revision of every key.

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::proto::{PbEvent, PbKeyValue};

use super::{EVENT_DELETE, EVENT_PUT, KeyRange};

/// A point in the store's history: the write request (`main`) and the change within it (`sub`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// One change of one key: its new value, or `None` for a deletion (a tombstone).
#[derive(Debug, Clone)]
struct Change {
    rev: Revision,
    kv: Option<Arc<PbKeyValue>>,
}

/// Every revision of every key since the last compaction, ordered by key and then revision.
#[derive(Debug)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
    current: i64,
    compacted: i64,
}

impl Default for KeyIndex {
    /// An empty store is at revision 1, as etcd's is: the first write gets revision 2. It has
    /// never been compacted (-1), so even a compaction at revision 0 is accepted once.
    fn default() -> Self {
        Self {
            keys: BTreeMap::new(),
            current: 1,
            compacted: -1,
        }
    }
}

impl KeyIndex {
    /// The store's current revision: the main revision of the last write.
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// The revision of the last compaction; reads below it fail.
    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// Moves the current revision on (a write request that changed at least one key).
    pub fn set_current_revision(&mut self, rev: i64) {
        debug_assert!(rev >= self.current, "revisions never go backwards");
        self.current = rev;
    }

    /// The value of `key` as of revision `rev`, if it existed then.
    pub fn get_at(&self, key: &[u8], rev: i64) -> Option<&Arc<PbKeyValue>> {
        latest_at(self.keys.get(key)?, rev)
    }

    /// The live key-values in `range` as of revision `rev`, in key order.
    pub fn range_at<'a>(
        &'a self,
        range: &'a KeyRange,
        rev: i64,
    ) -> impl Iterator<Item = &'a Arc<PbKeyValue>> + 'a {
        let bounds = range.bounds();
        bounds
            .into_iter()
            .flat_map(move |b| self.keys.range::<[u8], _>(b))
            .filter_map(move |(_, changes)| latest_at(changes, rev))
    }

    /// Records a put of `key` at `rev` and returns the new key-value and the one it replaced.
    pub fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
        rev: Revision,
    ) -> (Arc<PbKeyValue>, Option<Arc<PbKeyValue>>) {
        let changes = self.keys.entry(key.to_vec()).or_default();
        let prev = changes.last().and_then(|c| c.kv.clone());
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev.main, 1),
        };
        let kv = Arc::new(PbKeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        });
        changes.push(Change {
            rev,
            kv: Some(kv.clone()),
        });
        (kv, prev)
    }

    /// Records the deletion of `key` at `rev`; returns the deleted key-value, or `None` (and
    /// records nothing) when the key does not exist.
    pub fn delete(&mut self, key: &[u8], rev: Revision) -> Option<Arc<PbKeyValue>> {
        let changes = self.keys.get_mut(key)?;
        let prev = changes.last()?.kv.clone()?;
        changes.push(Change { rev, kv: None });
        Some(prev)
    }

    /// The live keys in `range` at the current revision.
    pub fn live_keys(&self, range: &KeyRange) -> Vec<Vec<u8>> {
        self.range_at(range, i64::MAX)
            .map(|kv| kv.key.clone())
            .collect()
    }

    /// Forgets every revision older than `rev` that a read at `rev` or later cannot see, and
    /// returns the revisions forgotten (for the backend to delete).
    pub fn compact(&mut self, rev: i64) -> Vec<Revision> {
        let mut removed = Vec::new();
        self.keys.retain(|_, changes| {
            let keep_from = changes
                .iter()
                .rposition(|c| c.rev.main <= rev)
                .map_or(0, |i| match changes[i].kv {
                    Some(_) => i,
                    None => i + 1,
                });
            removed.extend(changes.drain(..keep_from).map(|c| c.rev));
            !changes.is_empty()
        });
        self.compacted = self.compacted.max(rev);
        removed
    }

    /// Marks the index compacted at `rev` without dropping anything (on load, where the backend
    /// already holds only what survived).
    pub fn set_compact_revision(&mut self, rev: i64) {
        self.compacted = rev;
    }

    /// Replays one persisted change on load. Changes must come in revision order.
    pub fn restore(&mut self, key: Vec<u8>, rev: Revision, kv: Option<PbKeyValue>) {
        self.current = self.current.max(rev.main);
        self.keys.entry(key).or_default().push(Change {
            rev,
            kv: kv.map(Arc::new),
        });
    }

    /// Every event in `range` with a main revision in `from..=to`, in revision order, each with
    /// the key-value it replaced.
    pub fn events(&self, range: &KeyRange, from: i64, to: i64) -> Vec<(Revision, PbEvent)> {
        let mut out = Vec::new();
        let Some(bounds) = range.bounds() else {
            return out;
        };
        for (key, changes) in self.keys.range::<[u8], _>(bounds) {
            for (i, change) in changes.iter().enumerate() {
                if change.rev.main < from || change.rev.main > to {
                    continue;
                }
                // As etcd: the key as of the revision before the event's.
                let prev = changes[..i]
                    .iter()
                    .rev()
                    .find(|c| c.rev.main < change.rev.main)
                    .and_then(|c| c.kv.as_deref().cloned());
                out.push((change.rev, event(key, change, prev)));
            }
        }
        out.sort_by_key(|(rev, _)| *rev);
        out
    }

    /// Every change at or below `rev`, in (key, revision) order: the input of HashKV.
    pub fn changes_up_to(
        &self,
        rev: i64,
    ) -> impl Iterator<Item = (Revision, &[u8], Option<&PbKeyValue>)> {
        self.keys.iter().flat_map(move |(key, changes)| {
            changes
                .iter()
                .filter(move |c| c.rev.main <= rev)
                .map(move |c| (c.rev, key.as_slice(), c.kv.as_deref()))
        })
    }

    /// How many keys are live now.
    pub fn live_key_count(&self) -> usize {
        self.keys
            .values()
            .filter(|c| c.last().is_some_and(|c| c.kv.is_some()))
            .count()
    }
}

fn latest_at(changes: &[Change], rev: i64) -> Option<&Arc<PbKeyValue>> {
    changes
        .iter()
        .rev()
        .find(|c| c.rev.main <= rev)
        .and_then(|c| c.kv.as_ref())
}

/// The wire event for one change: a put carries the new key-value, a delete only the key and
/// the revision of the deletion (as etcd sends it).
fn event(key: &[u8], change_rev_kv: &Change, prev: Option<PbKeyValue>) -> PbEvent {
    match &change_rev_kv.kv {
        Some(kv) => PbEvent {
            r#type: EVENT_PUT,
            kv: Some(kv.as_ref().clone()),
            prev_kv: prev,
        },
        None => delete_event(key, change_rev_kv.rev.main, prev),
    }
}

/// A delete event as etcd sends it: the key and the mod revision of the deletion only.
pub(crate) fn delete_event(key: &[u8], rev: i64, prev: Option<PbKeyValue>) -> PbEvent {
    PbEvent {
        r#type: EVENT_DELETE,
        kv: Some(PbKeyValue {
            key: key.to_vec(),
            mod_revision: rev,
            ..PbKeyValue::default()
        }),
        prev_kv: prev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision { main, sub: 0 }
    }

    #[test]
    fn put_counts_versions_and_keeps_create_revision() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", b"1".to_vec(), 0, rev(2));
        let (kv, prev) = idx.put(b"k", b"2".to_vec(), 0, rev(3));
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        assert_eq!(prev.map(|p| p.value.clone()), Some(b"1".to_vec()));
    }

    #[test]
    fn delete_then_put_starts_a_new_generation() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", b"1".to_vec(), 0, rev(2));
        assert!(idx.delete(b"k", rev(3)).is_some());
        assert!(idx.delete(b"k", rev(4)).is_none());
        let (kv, prev) = idx.put(b"k", b"2".to_vec(), 0, rev(5));
        assert!(prev.is_none());
        assert_eq!((kv.create_revision, kv.version), (5, 1));
    }

    #[test]
    fn reads_at_past_revisions_see_past_values() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", b"1".to_vec(), 0, rev(2));
        idx.put(b"k", b"2".to_vec(), 0, rev(3));
        idx.delete(b"k", rev(4));
        assert_eq!(
            idx.get_at(b"k", 2).map(|kv| kv.value.clone()),
            Some(b"1".to_vec())
        );
        assert_eq!(
            idx.get_at(b"k", 3).map(|kv| kv.value.clone()),
            Some(b"2".to_vec())
        );
        assert!(idx.get_at(b"k", 4).is_none());
        assert!(idx.get_at(b"k", 1).is_none());
    }

    #[test]
    fn compaction_keeps_what_reads_at_the_compact_revision_see() {
        let mut idx = KeyIndex::default();
        idx.put(b"a", b"1".to_vec(), 0, rev(2));
        idx.put(b"a", b"2".to_vec(), 0, rev(3));
        idx.put(b"b", b"1".to_vec(), 0, rev(4));
        idx.delete(b"b", rev(5));
        idx.put(b"a", b"3".to_vec(), 0, rev(6));
        let removed = idx.compact(5);
        assert_eq!(removed, vec![rev(2), rev(4), rev(5)]);
        assert_eq!(
            idx.get_at(b"a", 5).map(|kv| kv.value.clone()),
            Some(b"2".to_vec())
        );
        assert_eq!(idx.live_key_count(), 1);
    }

    #[test]
    fn events_come_in_revision_order_with_previous_values() {
        let mut idx = KeyIndex::default();
        idx.put(b"b", b"1".to_vec(), 0, rev(2));
        idx.put(b"a", b"1".to_vec(), 0, rev(3));
        idx.delete(b"b", rev(4));
        let evs = idx.events(&KeyRange::new(b"a", b"\0"), 3, 4);
        assert_eq!(evs.len(), 2);
        assert_eq!(
            evs[0].1.kv.as_ref().map(|kv| kv.key.clone()),
            Some(b"a".to_vec())
        );
        assert_eq!(evs[1].1.r#type, EVENT_DELETE);
        assert_eq!(
            evs[1].1.prev_kv.as_ref().map(|kv| kv.value.clone()),
            Some(b"1".to_vec())
        );
    }
}
