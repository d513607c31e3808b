//! The key interval of a request: etcd's `key` + `range_end` encoding made explicit.

use std::ops::Bound;

/// An interval as map bounds.
pub type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Which keys a request touches. etcd encodes this as `key` + `range_end`: an empty end is
/// one key, `"\0"` is every key from `key` on, anything else is the half-open `[key, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    Single(Vec<u8>),
    From(Vec<u8>),
    Between(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => Self::Single(key.to_vec()),
            [0] => Self::From(key.to_vec()),
            end => Self::Between(key.to_vec(), end.to_vec()),
        }
    }

    /// Whether `key` falls inside this interval.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Self::Single(k) => k.as_slice() == key,
            Self::From(start) => key >= start.as_slice(),
            Self::Between(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }

    /// The interval as map bounds, or `None` when it holds no key at all (an inverted range).
    pub fn bounds(&self) -> Option<Bounds<'_>> {
        match self {
            Self::Single(k) => Some((Bound::Included(k), Bound::Included(k))),
            Self::From(start) => Some((Bound::Included(start), Bound::Unbounded)),
            Self::Between(start, end) if start < end => {
                Some((Bound::Included(start), Bound::Excluded(end)))
            }
            Self::Between(..) => None,
        }
    }

    /// Whether two intervals share a key (etcd's duplicate-key check in a txn).
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        let (Some((a0, a1)), Some((b0, b1))) = (self.bounds(), other.bounds()) else {
            return false;
        };
        starts_before_end(a0, b1) && starts_before_end(b0, a1)
    }
}

fn starts_before_end(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    let Bound::Included(s) = start else {
        return true;
    };
    match end {
        Bound::Included(e) => s <= e,
        Bound::Excluded(e) => s < e,
        Bound::Unbounded => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_range_end_means_one_key_and_nul_means_from_key() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a".to_vec()));
        assert_eq!(KeyRange::new(b"a", b"\0"), KeyRange::From(b"a".to_vec()));
        assert!(KeyRange::new(b"a", b"\0").contains(b"zzz"));
        assert!(!KeyRange::new(b"a", b"c").contains(b"c"));
    }

    #[test]
    fn inverted_range_holds_no_key() {
        assert_eq!(KeyRange::new(b"b", b"a").bounds(), None);
        assert!(!KeyRange::new(b"b", b"a").overlaps(&KeyRange::new(b"a", b"\0")));
    }

    #[test]
    fn overlapping_intervals_are_detected() {
        let put = KeyRange::new(b"k", b"");
        assert!(put.overlaps(&KeyRange::new(b"a", b"z")));
        assert!(!put.overlaps(&KeyRange::new(b"a", b"k")));
        assert!(put.overlaps(&KeyRange::new(b"k", b"\0")));
    }
}
