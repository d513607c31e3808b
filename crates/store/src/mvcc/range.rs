//! Range reads with every option etcd's RangeRequest has.

use etcd_client::proto::{PbRangeRequest, PbRangeResponse};

use super::{KeyIndex, KeyRange, KvRef};
use crate::error::EtcdError;

// etcd's enum values on the wire (`RangeRequest.SortOrder`, `RangeRequest.SortTarget`).
const SORT_NONE: i32 = 0;
const SORT_ASCEND: i32 = 1;
const SORT_DESCEND: i32 = 2;
const TARGET_KEY: i32 = 0;
const TARGET_VERSION: i32 = 1;
const TARGET_CREATE: i32 = 2;
const TARGET_MOD: i32 = 3;
const TARGET_VALUE: i32 = 4;

/// Answers `req` from `index` as etcd would, reading at `req.revision` or, when that is 0 or
/// less, at `current` (the newest durable revision). The header is left to the caller.
pub fn range(
    index: &KeyIndex,
    req: &PbRangeRequest,
    current: i64,
) -> Result<PbRangeResponse, EtcdError> {
    let rev = if req.revision <= 0 {
        current
    } else {
        req.revision
    };
    if rev > current {
        return Err(EtcdError::FutureRev);
    }
    if rev < index.compact_revision() {
        return Err(EtcdError::Compacted);
    }
    let keys = KeyRange::new(&req.key, &req.range_end);
    let mut count = 0i64;
    let mut found: Vec<KvRef<'_>> = Vec::new();
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let sort_order = match (req.sort_order, req.sort_target) {
        (SORT_NONE, t) if t != TARGET_KEY => SORT_ASCEND,
        (o, _) => o,
    };
    // Without sorting or filters, keys come in key order and only `limit` of them are needed.
    let stop_at = if req.limit > 0 && !filtered && req.sort_order == SORT_NONE {
        usize::try_from(req.limit).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    for kv in index.range_at(&keys, rev) {
        count += 1;
        if req.count_only || found.len() > stop_at {
            continue;
        }
        if filtered && !passes_filters(req, &kv) {
            continue;
        }
        found.push(kv);
    }
    let limit = usize::try_from(req.limit).ok().filter(|&l| l > 0);
    let more = limit.is_some_and(|l| found.len() > l);
    // Values are read only for the keys returned, except when they are what is sorted on.
    let kvs = if sort_order != SORT_NONE && req.sort_target == TARGET_VALUE {
        let mut kvs = index.load(&found).map_err(read_failed)?;
        sort(&mut kvs, sort_order, |a, b| a.value.cmp(&b.value));
        kvs.truncate(limit.unwrap_or(usize::MAX));
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        kvs
    } else {
        match req.sort_target {
            TARGET_VERSION => sort(&mut found, sort_order, |a, b| {
                a.meta.version.cmp(&b.meta.version)
            }),
            TARGET_CREATE => sort(&mut found, sort_order, |a, b| {
                a.meta.create_revision.cmp(&b.meta.create_revision)
            }),
            TARGET_MOD => sort(&mut found, sort_order, |a, b| a.rev.main.cmp(&b.rev.main)),
            _ => sort(&mut found, sort_order, |a, b| a.key.cmp(b.key)),
        }
        found.truncate(limit.unwrap_or(usize::MAX));
        if req.keys_only {
            found.iter().map(KvRef::without_value).collect()
        } else {
            index.load(&found).map_err(read_failed)?
        }
    };
    Ok(PbRangeResponse {
        header: None,
        kvs,
        more,
        count,
    })
}

/// A value that cannot be read from the data file: logged, and answered as etcd answers a
/// request it cannot serve.
fn read_failed(err: crate::error::StoreError) -> EtcdError {
    tracing::error!(%err, "reading values for a range failed");
    EtcdError::Stopped
}

fn passes_filters(req: &PbRangeRequest, kv: &KvRef<'_>) -> bool {
    let (m, c) = (kv.rev.main, kv.meta.create_revision);
    (req.min_mod_revision == 0 || m >= req.min_mod_revision)
        && (req.max_mod_revision == 0 || m <= req.max_mod_revision)
        && (req.min_create_revision == 0 || c >= req.min_create_revision)
        && (req.max_create_revision == 0 || c <= req.max_create_revision)
}

/// Sorts as etcd does: a stable sort on the target, so keys with equal targets stay in key
/// order in both directions.
fn sort<T>(items: &mut [T], order: i32, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    match order {
        SORT_ASCEND => items.sort_by(|a, b| cmp(a, b)),
        SORT_DESCEND => items.sort_by(|a, b| cmp(b, a)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Revision;

    fn index_with(keys: &[&str]) -> KeyIndex {
        let mut idx = KeyIndex::default();
        for (i, k) in keys.iter().enumerate() {
            let main = i64::try_from(i).unwrap_or(0) + 2;
            idx.put(
                k.as_bytes(),
                k.as_bytes().to_vec(),
                0,
                Revision { main, sub: 0 },
            );
            idx.set_current_revision(main);
        }
        idx
    }

    fn req(key: &str, end: &str) -> PbRangeRequest {
        PbRangeRequest {
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            ..PbRangeRequest::default()
        }
    }

    #[test]
    fn limit_sets_more_and_count_is_the_whole_range() {
        let idx = index_with(&["a", "b", "c", "d"]);
        let r = range(
            &idx,
            &PbRangeRequest {
                limit: 2,
                ..req("a", "\0")
            },
            5,
        )
        .unwrap();
        assert_eq!(r.kvs.len(), 2);
        assert!(r.more);
        assert_eq!(r.count, 4);
    }

    #[test]
    fn descending_sort_by_mod_revision_with_limit_takes_the_newest() {
        let idx = index_with(&["a", "b", "c"]);
        let q = PbRangeRequest {
            limit: 1,
            sort_order: SORT_DESCEND,
            sort_target: TARGET_MOD,
            ..req("a", "\0")
        };
        let r = range(&idx, &q, 4).unwrap();
        assert_eq!(r.kvs[0].key, b"c".to_vec());
    }

    #[test]
    fn count_only_returns_no_values_and_keys_only_strips_them() {
        let idx = index_with(&["a", "b"]);
        let r = range(
            &idx,
            &PbRangeRequest {
                count_only: true,
                ..req("a", "\0")
            },
            3,
        )
        .unwrap();
        assert_eq!((r.kvs.len(), r.count), (0, 2));
        let r = range(
            &idx,
            &PbRangeRequest {
                keys_only: true,
                ..req("a", "\0")
            },
            3,
        )
        .unwrap();
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    }

    #[test]
    fn future_and_compacted_revisions_are_refused() {
        let mut idx = index_with(&["a", "b", "c"]);
        assert_eq!(
            range(
                &idx,
                &PbRangeRequest {
                    revision: 9,
                    ..req("a", "")
                },
                4
            )
            .err(),
            Some(EtcdError::FutureRev)
        );
        idx.compact(3);
        assert_eq!(
            range(
                &idx,
                &PbRangeRequest {
                    revision: 2,
                    ..req("a", "")
                },
                4
            )
            .err(),
            Some(EtcdError::Compacted)
        );
        assert!(
            range(
                &idx,
                &PbRangeRequest {
                    revision: 3,
                    ..req("a", "")
                },
                4
            )
            .is_ok()
        );
    }

    #[test]
    fn inverted_range_reads_nothing() {
        let idx = index_with(&["a", "b"]);
        let r = range(&idx, &req("b", "a"), 3).unwrap();
        assert_eq!((r.kvs.len(), r.count), (0, 0));
    }

    #[test]
    fn min_mod_revision_filters_old_keys() {
        let idx = index_with(&["a", "b", "c"]);
        let r = range(
            &idx,
            &PbRangeRequest {
                min_mod_revision: 3,
                ..req("a", "\0")
            },
            4,
        )
        .unwrap();
        assert_eq!(r.kvs.len(), 2);
        assert_eq!(r.count, 3);
    }
}
