//! Range reads with every option etcd's RangeRequest has.

use etcd_client::proto::{PbKeyValue, PbRangeRequest, PbRangeResponse};

use super::{KeyIndex, KeyRange};
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
    let mut kvs: Vec<PbKeyValue> = Vec::new();
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
        if req.count_only || kvs.len() > stop_at {
            continue;
        }
        if filtered && !passes_filters(req, kv) {
            continue;
        }
        kvs.push(kv.as_ref().clone());
    }
    sort(&mut kvs, sort_order, req.sort_target);
    let mut more = false;
    if let Ok(limit) = usize::try_from(req.limit)
        && limit > 0
        && kvs.len() > limit
    {
        kvs.truncate(limit);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(PbRangeResponse {
        header: None,
        kvs,
        more,
        count,
    })
}

fn passes_filters(req: &PbRangeRequest, kv: &PbKeyValue) -> bool {
    (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
        && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
        && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
}

/// Sorts as etcd does: a stable sort on the target, so keys with equal targets stay in key
/// order in both directions.
fn sort(kvs: &mut [PbKeyValue], order: i32, target: i32) {
    let descend = match order {
        SORT_ASCEND => false,
        SORT_DESCEND => true,
        _ => return,
    };
    let cmp = |a: &PbKeyValue, b: &PbKeyValue| match target {
        TARGET_VERSION => a.version.cmp(&b.version),
        TARGET_CREATE => a.create_revision.cmp(&b.create_revision),
        TARGET_MOD => a.mod_revision.cmp(&b.mod_revision),
        TARGET_VALUE => a.value.cmp(&b.value),
        _ => a.key.cmp(&b.key),
    };
    if descend {
        kvs.sort_by(|a, b| cmp(b, a));
    } else {
        kvs.sort_by(cmp);
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
