//! The in-memory multi-version index: every live revision of every key, without the values.
//!
//! The index keeps what reads decide on — keys, revisions, versions, leases — and reads the
//! values of the revisions it returns from a [`ValueSource`] (the data file), as etcd keeps its
//! key index in memory and its values in bbolt. A value written by the entries being applied
//! stays in memory until the backend has committed it ([`KeyIndex::persisted`]); without a
//! source (tests, the memory backend) every value stays in memory.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use etcd_client::proto::{PbEvent, PbKeyValue};
use smallvec::SmallVec;

use super::{EVENT_DELETE, EVENT_PUT, KeyRange};
use crate::error::StoreError;

/// A point in the store's history: the write request (`main`) and the change within it (`sub`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// What the index keeps of a put besides its key and revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// Where the values of committed puts are read from.
pub trait ValueSource: fmt::Debug + Send + Sync {
    /// The values of the puts at `revs`, in the same order.
    fn values(&self, revs: &[Revision]) -> Result<Vec<Vec<u8>>, StoreError>;

    /// A source that goes on reading the values as they are now, whatever is committed or
    /// compacted later (for redb, one read transaction): what [`FrozenChanges`] reads from
    /// after the state's lock is released.
    fn pinned(&self) -> Result<Arc<dyn ValueSource>, StoreError>;
}

/// One change of one key: a put (its meta, and its value until it is on disk) or a deletion.
#[derive(Debug, Clone)]
struct Change {
    rev: Revision,
    meta: Option<Meta>,
    value: Option<Box<[u8]>>,
}

/// Most keys have one live revision; it is kept inline in the map's node.
type Changes = SmallVec<[Change; 1]>;

/// A key as of some revision, as the index holds it: the value may still be on disk.
#[derive(Debug, Clone, Copy)]
pub struct KvRef<'a> {
    pub key: &'a [u8],
    pub rev: Revision,
    pub meta: Meta,
    value: Option<&'a [u8]>,
}

impl KvRef<'_> {
    pub fn mod_revision(&self) -> i64 {
        self.rev.main
    }

    /// etcd's key-value with an empty value (keys-only reads, and the frame [`KeyIndex::load`]
    /// fills).
    pub fn without_value(&self) -> PbKeyValue {
        PbKeyValue {
            key: self.key.to_vec(),
            create_revision: self.meta.create_revision,
            mod_revision: self.rev.main,
            version: self.meta.version,
            value: Vec::new(),
            lease: self.meta.lease,
        }
    }
}

/// Every revision of every key since the last compaction, ordered by key and then revision.
pub struct KeyIndex {
    keys: BTreeMap<Box<[u8]>, Changes>,
    current: i64,
    compacted: i64,
    source: Option<Arc<dyn ValueSource>>,
    /// Keys with a value held in memory until the backend commits it.
    unpersisted: Vec<Box<[u8]>>,
}

impl fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyIndex")
            .field("keys", &self.keys.len())
            .field("current", &self.current)
            .field("compacted", &self.compacted)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Default for KeyIndex {
    /// An empty store is at revision 1, as etcd's is: the first write gets revision 2. It has
    /// never been compacted (-1), so even a compaction at revision 0 is accepted once.
    fn default() -> Self {
        Self {
            keys: BTreeMap::new(),
            current: 1,
            compacted: -1,
            source: None,
            unpersisted: Vec::new(),
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

    /// Reads the values of every change committed so far from `source` from now on, and
    /// drops them from memory. Every change in the index must be committed to it.
    pub fn set_value_source(&mut self, source: Arc<dyn ValueSource>) {
        self.source = Some(source);
        for changes in self.keys.values_mut() {
            for change in changes.iter_mut() {
                change.value = None;
            }
        }
        self.unpersisted = Vec::new();
    }

    /// Every change so far is committed to the value source: drop the values held for it.
    /// Without a source, values stay in memory.
    pub fn persisted(&mut self) {
        if self.source.is_none() {
            self.unpersisted.clear();
            return;
        }
        for key in std::mem::take(&mut self.unpersisted) {
            if let Some(changes) = self.keys.get_mut(&key) {
                for change in changes.iter_mut() {
                    change.value = None;
                }
            }
        }
    }

    /// `key` as of revision `rev`, if it existed then.
    pub fn get_at(&self, key: &[u8], rev: i64) -> Option<KvRef<'_>> {
        let (key, changes) = self.keys.get_key_value(key)?;
        latest_at(key, changes, rev)
    }

    /// `key` as of revision `rev`, with its value.
    pub fn get_kv_at(&self, key: &[u8], rev: i64) -> Result<Option<PbKeyValue>, StoreError> {
        self.get_at(key, rev)
            .map(|kv| self.load_one(kv))
            .transpose()
    }

    /// The live keys in `range` as of revision `rev`, in key order.
    pub fn range_at<'a>(
        &'a self,
        range: &'a KeyRange,
        rev: i64,
    ) -> impl Iterator<Item = KvRef<'a>> + 'a {
        let bounds = range.bounds();
        bounds
            .into_iter()
            .flat_map(move |b| self.keys.range::<[u8], _>(b))
            .filter_map(move |(key, changes)| latest_at(key, changes, rev))
    }

    /// The key-values of `refs` with their values, read from memory or the value source in one
    /// batch.
    pub fn load(&self, refs: &[KvRef<'_>]) -> Result<Vec<PbKeyValue>, StoreError> {
        load_from(self.source.as_deref(), refs)
    }

    /// One key-value with its value.
    pub fn load_one(&self, kv: KvRef<'_>) -> Result<PbKeyValue, StoreError> {
        Ok(self.load(&[kv])?.pop().unwrap_or_default())
    }

    /// Records a put of `key` at `rev` and returns the new key-value.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64, rev: Revision) -> PbKeyValue {
        let changes = self.changes_mut(key);
        let (create_revision, version) = match changes.last().and_then(|c| c.meta) {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev.main, 1),
        };
        let meta = Meta {
            create_revision,
            version,
            lease,
        };
        changes.push(Change {
            rev,
            meta: Some(meta),
            value: Some(value.as_slice().into()),
        });
        if self.source.is_some() {
            self.unpersisted.push(key.into());
        }
        PbKeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        }
    }

    /// Records the deletion of `key` at `rev`; returns what the key was, or `None` (and records
    /// nothing) when the key does not exist.
    pub fn delete(&mut self, key: &[u8], rev: Revision) -> Option<Meta> {
        let changes = self.keys.get_mut(key)?;
        let prev = changes.last()?.meta?;
        changes.push(Change {
            rev,
            meta: None,
            value: None,
        });
        Some(prev)
    }

    /// The live keys in `range` at the current revision.
    pub fn live_keys(&self, range: &KeyRange) -> Vec<Vec<u8>> {
        self.range_at(range, i64::MAX)
            .map(|kv| kv.key.to_vec())
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
                .map_or(0, |i| match changes[i].meta {
                    Some(_) => i,
                    None => i + 1,
                });
            removed.extend(changes.drain(..keep_from).map(|c| c.rev));
            if changes.spilled() && changes.len() <= changes.inline_size() {
                changes.shrink_to_fit();
            }
            !changes.is_empty()
        });
        self.compacted = self.compacted.max(rev);
        removed
    }

    /// The changes of `key`, a new empty list if it has none; the key is copied only then.
    fn changes_mut(&mut self, key: &[u8]) -> &mut Changes {
        if !self.keys.contains_key(key) {
            self.keys.insert(key.into(), Changes::new());
        }
        self.keys
            .get_mut(key)
            .expect("the key was inserted just above")
    }

    /// Marks the index compacted at `rev` without dropping anything (on load, where the backend
    /// already holds only what survived).
    pub fn set_compact_revision(&mut self, rev: i64) {
        self.compacted = rev;
    }

    /// Replays one persisted change on load: a put's meta (and its value, when the index has no
    /// value source to read it from later), or `None` for a deletion. Changes must come in
    /// revision order.
    pub fn restore(
        &mut self,
        key: &[u8],
        rev: Revision,
        meta: Option<Meta>,
        value: Option<Vec<u8>>,
    ) {
        self.current = self.current.max(rev.main);
        let changes = self.changes_mut(key);
        changes.push(Change {
            rev,
            meta,
            value: value.map(Vec::into_boxed_slice),
        });
    }

    /// Every event in `range` with a main revision in `from..=to`, in revision order, each with
    /// the key-value it replaced.
    pub fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Revision, PbEvent)>, StoreError> {
        let Some(bounds) = range.bounds() else {
            return Ok(Vec::new());
        };
        // The changes in the window, each with the key as of the revision before it (etcd's
        // prev_kv); values are read in one batch.
        let mut found: Vec<Found<'_>> = Vec::new();
        for (key, changes) in self.keys.range::<[u8], _>(bounds) {
            for (i, change) in changes.iter().enumerate() {
                if change.rev.main < from || change.rev.main > to {
                    continue;
                }
                let prev = changes[..i]
                    .iter()
                    .rev()
                    .find(|c| c.rev.main < change.rev.main)
                    .and_then(|c| kv_ref(key, c));
                found.push((change.rev, key, kv_ref(key, change), prev));
            }
        }
        found.sort_by_key(|(rev, ..)| *rev);
        let refs: Vec<KvRef<'_>> = found
            .iter()
            .flat_map(|(_, _, kv, prev)| kv.iter().chain(prev.iter()).copied())
            .collect();
        let mut loaded = self.load(&refs)?.into_iter();
        Ok(found
            .into_iter()
            .map(|(rev, key, kv, prev)| {
                let kv = kv.and_then(|_| loaded.next());
                let prev = prev.and_then(|_| loaded.next());
                let event = match kv {
                    Some(kv) => PbEvent {
                        r#type: EVENT_PUT,
                        kv: Some(kv),
                        prev_kv: prev,
                    },
                    None => delete_event(key, rev.main, prev),
                };
                (rev, event)
            })
            .collect())
    }

    /// Every change at or below `rev`, in (key, revision) order, with its values, handed to `f`
    /// in batches of at most `batch` (values are read from the source batch by batch, so memory
    /// stays bounded): the input of HashKV, snapshots and snapshot installs.
    pub fn for_each_change(
        &self,
        rev: i64,
        batch: usize,
        f: impl FnMut(&[(Revision, &[u8], Option<PbKeyValue>)]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let changes = self.keys.iter().flat_map(|(key, changes)| {
            changes
                .iter()
                .filter(move |c| c.rev.main <= rev)
                .map(move |c| (&**key, c))
        });
        each_change(changes, self.source.as_deref(), batch, f)
    }

    /// The changes [`KeyIndex::for_each_change`] would hand out for `rev`, taken now, to be
    /// read later without this index: the keys and revisions are copied (values still in
    /// memory too) and the value source is pinned, so compactions and writes after this call
    /// change nothing of what [`FrozenChanges::for_each`] reads. Snapshots are written from
    /// it while the store goes on applying.
    pub fn freeze(&self, rev: i64) -> Result<FrozenChanges, StoreError> {
        let keys = self
            .keys
            .iter()
            .filter_map(|(key, changes)| {
                let kept: Vec<Change> = changes
                    .iter()
                    .filter(|c| c.rev.main <= rev)
                    .cloned()
                    .collect();
                (!kept.is_empty()).then(|| (key.clone(), kept))
            })
            .collect();
        let source = self.source.as_ref().map(|s| s.pinned()).transpose()?;
        Ok(FrozenChanges { keys, source })
    }

    /// How many keys are live now.
    pub fn live_key_count(&self) -> usize {
        self.keys
            .values()
            .filter(|c| c.last().is_some_and(|c| c.meta.is_some()))
            .count()
    }
}

/// Every change up to a revision, as [`KeyIndex::freeze`] took them.
#[derive(Debug)]
pub struct FrozenChanges {
    keys: Vec<(Box<[u8]>, Vec<Change>)>,
    source: Option<Arc<dyn ValueSource>>,
}

impl FrozenChanges {
    /// As [`KeyIndex::for_each_change`] at the frozen revision: the same changes, in the same
    /// order and batches.
    pub fn for_each(
        &self,
        batch: usize,
        f: impl FnMut(&[(Revision, &[u8], Option<PbKeyValue>)]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let changes = self
            .keys
            .iter()
            .flat_map(|(key, changes)| changes.iter().map(move |c| (&**key, c)));
        each_change(changes, self.source.as_deref(), batch, f)
    }
}

/// Hands `changes` to `f` in batches of at most `batch`, with their values (those not in
/// memory read from `source` once per batch).
fn each_change<'a>(
    changes: impl Iterator<Item = (&'a [u8], &'a Change)>,
    source: Option<&dyn ValueSource>,
    batch: usize,
    mut f: impl FnMut(&[(Revision, &[u8], Option<PbKeyValue>)]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut pending: Vec<(Revision, &[u8], Option<KvRef<'_>>)> = Vec::with_capacity(batch);
    let mut flush = |pending: &mut Vec<(Revision, &'a [u8], Option<KvRef<'a>>)>| {
        let refs: Vec<KvRef<'_>> = pending.iter().filter_map(|(_, _, kv)| *kv).collect();
        let mut loaded = load_from(source, &refs)?.into_iter();
        let out: Vec<_> = pending
            .drain(..)
            .map(|(r, key, kv)| (r, key, kv.and_then(|_| loaded.next())))
            .collect();
        f(&out)
    };
    for (key, change) in changes {
        pending.push((change.rev, key, kv_ref(key, change)));
        if pending.len() >= batch.max(1) {
            flush(&mut pending)?;
        }
    }
    if !pending.is_empty() {
        flush(&mut pending)?;
    }
    Ok(())
}

/// The key-values of `refs` with their values: those not in memory read from `source` in one
/// batch.
fn load_from(
    source: Option<&dyn ValueSource>,
    refs: &[KvRef<'_>],
) -> Result<Vec<PbKeyValue>, StoreError> {
    let missing: Vec<Revision> = refs
        .iter()
        .filter(|kv| kv.value.is_none())
        .map(|kv| kv.rev)
        .collect();
    let mut fetched = match (source, missing.is_empty()) {
        (_, true) | (None, _) => Vec::new(),
        (Some(source), false) => source.values(&missing)?,
    }
    .into_iter();
    Ok(refs
        .iter()
        .map(|kv| {
            let mut out = kv.without_value();
            out.value = match kv.value {
                Some(v) => v.to_vec(),
                None => fetched.next().unwrap_or_default(),
            };
            out
        })
        .collect())
}

/// A change found for [`KeyIndex::events`]: its revision and key, the key-value it wrote (none
/// for a deletion) and the one before it.
type Found<'a> = (Revision, &'a [u8], Option<KvRef<'a>>, Option<KvRef<'a>>);

fn kv_ref<'a>(key: &'a [u8], change: &'a Change) -> Option<KvRef<'a>> {
    Some(KvRef {
        key,
        rev: change.rev,
        meta: change.meta?,
        value: change.value.as_deref(),
    })
}

fn latest_at<'a>(key: &'a [u8], changes: &'a [Change], rev: i64) -> Option<KvRef<'a>> {
    changes
        .iter()
        .rev()
        .find(|c| c.rev.main <= rev)
        .and_then(|c| kv_ref(key, c))
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
        let kv = idx.put(b"k", b"2".to_vec(), 0, rev(3));
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        let prev = idx.get_kv_at(b"k", 2).unwrap();
        assert_eq!(prev.map(|p| p.value), Some(b"1".to_vec()));
    }

    #[test]
    fn delete_then_put_starts_a_new_generation() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", b"1".to_vec(), 0, rev(2));
        assert!(idx.delete(b"k", rev(3)).is_some());
        assert!(idx.delete(b"k", rev(4)).is_none());
        assert!(idx.get_at(b"k", 4).is_none());
        let kv = idx.put(b"k", b"2".to_vec(), 0, rev(5));
        assert_eq!((kv.create_revision, kv.version), (5, 1));
    }

    #[test]
    fn reads_at_past_revisions_see_past_values() {
        let mut idx = KeyIndex::default();
        idx.put(b"k", b"1".to_vec(), 0, rev(2));
        idx.put(b"k", b"2".to_vec(), 0, rev(3));
        idx.delete(b"k", rev(4));
        assert_eq!(
            idx.get_kv_at(b"k", 2).unwrap().map(|kv| kv.value),
            Some(b"1".to_vec())
        );
        assert_eq!(
            idx.get_kv_at(b"k", 3).unwrap().map(|kv| kv.value),
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
            idx.get_kv_at(b"a", 5).unwrap().map(|kv| kv.value),
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
        let evs = idx.events(&KeyRange::new(b"a", b"\0"), 3, 4).unwrap();
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

    /// A value source that counts its reads and knows the values it was given.
    #[derive(Debug, Default)]
    struct Disk {
        values: std::sync::Mutex<std::collections::HashMap<Revision, Vec<u8>>>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl ValueSource for Disk {
        fn pinned(&self) -> Result<Arc<dyn ValueSource>, StoreError> {
            Ok(Arc::new(Disk {
                values: std::sync::Mutex::new(self.values.lock().unwrap().clone()),
                reads: std::sync::atomic::AtomicUsize::new(0),
            }))
        }

        fn values(&self, revs: &[Revision]) -> Result<Vec<Vec<u8>>, StoreError> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let values = self.values.lock().unwrap();
            revs.iter()
                .map(|r| {
                    values.get(r).cloned().ok_or(StoreError::MissingRecord {
                        path: "disk".into(),
                        main: r.main,
                        sub: r.sub,
                    })
                })
                .collect()
        }
    }

    #[test]
    fn committed_values_leave_memory_and_are_read_back_in_one_batch() {
        let disk = Arc::new(Disk::default());
        let mut idx = KeyIndex::default();
        idx.set_value_source(disk.clone());
        for (i, key) in [b"a", b"b", b"c"].into_iter().enumerate() {
            let r = rev(2 + i as i64);
            let kv = idx.put(key, key.to_vec(), 0, r);
            disk.values.lock().unwrap().insert(r, kv.value);
        }
        // Before the commit is acknowledged the values are served from memory.
        let all = KeyRange::new(b"a", b"\0");
        let refs: Vec<_> = idx.range_at(&all, 4).collect();
        assert_eq!(idx.load(&refs).unwrap()[2].value, b"c");
        assert_eq!(disk.reads.load(std::sync::atomic::Ordering::Relaxed), 0);
        idx.persisted();
        let refs: Vec<_> = idx.range_at(&all, 4).collect();
        let kvs = idx.load(&refs).unwrap();
        let values: Vec<&[u8]> = kvs.iter().map(|kv| kv.value.as_slice()).collect();
        assert_eq!(values, [&b"a"[..], b"b", b"c"]);
        assert_eq!(disk.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A value the file lost is an error, never an empty value.
        disk.values.lock().unwrap().clear();
        assert!(matches!(
            idx.get_kv_at(b"a", 4),
            Err(StoreError::MissingRecord { main: 2, .. })
        ));
        // Keys, revisions and versions need no read at all.
        assert_eq!(idx.get_at(b"b", 4).map(|kv| kv.meta.version), Some(1));
    }
}
