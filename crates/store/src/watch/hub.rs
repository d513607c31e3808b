//! Watchers by stream and id, and event delivery to them.

use std::collections::HashMap;
use std::sync::Mutex;

use etcd_client::proto::{PbEvent, PbResponseHeader, PbWatchResponse};
use tokio::sync::mpsc::UnboundedSender;

use super::History;
use crate::mvcc::{EVENT_DELETE, EVENT_PUT, KeyRange};

/// etcd's watch filter values (`WatchCreateRequest.FilterType`).
const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;

/// What a client asked to watch.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub range: KeyRange,
    pub start_revision: i64,
    pub filters: Vec<i32>,
    pub prev_kv: bool,
    pub progress_notify: bool,
}

#[derive(Debug)]
struct Watcher {
    spec: WatchSpec,
    tx: UnboundedSender<PbWatchResponse>,
}

impl Watcher {
    fn wants(&self, ev: &PbEvent) -> bool {
        let key = ev.kv.as_ref().map_or(&[][..], |kv| kv.key.as_slice());
        let filtered = (ev.r#type == EVENT_PUT && self.spec.filters.contains(&FILTER_NOPUT))
            || (ev.r#type == EVENT_DELETE && self.spec.filters.contains(&FILTER_NODELETE));
        !filtered && self.spec.range.contains(key)
    }

    fn shape(&self, ev: &PbEvent) -> PbEvent {
        let mut ev = ev.clone();
        if !self.spec.prev_kv {
            ev.prev_kv = None;
        }
        ev
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// The newest revision published: events up to it have been delivered.
    revision: i64,
    watchers: HashMap<(u64, i64), Watcher>,
}

/// Every watcher of the node. Publication and registration share one lock, so a watcher
/// registered at revision R gets history up to R and then every publication after R, with no gap
/// and no duplicate.
#[derive(Debug)]
pub struct WatchHub {
    inner: Mutex<Inner>,
    header: PbResponseHeader,
}

impl WatchHub {
    /// A hub whose responses carry `header` (cluster and member ids) and that starts at `revision`.
    pub fn new(header: PbResponseHeader, revision: i64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                revision,
                watchers: HashMap::new(),
            }),
            header,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn response(&self, revision: i64, watch_id: i64) -> PbWatchResponse {
        PbWatchResponse {
            header: Some(PbResponseHeader {
                revision,
                ..self.header
            }),
            watch_id,
            ..PbWatchResponse::default()
        }
    }

    /// The newest revision published.
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// Registers watcher `id` of `stream`: sends the created response, then (for an old start
    /// revision) the history since, or a compaction notice if that history is gone. Returns
    /// false if the id is taken.
    pub fn watch(
        &self,
        stream: u64,
        id: i64,
        spec: WatchSpec,
        history: &dyn History,
        tx: UnboundedSender<PbWatchResponse>,
    ) -> bool {
        let mut inner = self.lock();
        let now = inner.revision;
        if inner.watchers.contains_key(&(stream, id)) {
            return false;
        }
        let created = PbWatchResponse {
            created: true,
            ..self.response(now, id)
        };
        if tx.send(created).is_err() {
            return true;
        }
        let compacted = history.compact_revision();
        if spec.start_revision > 0 && spec.start_revision < compacted {
            let _ = tx.send(PbWatchResponse {
                compact_revision: compacted,
                canceled: true,
                ..self.response(now, id)
            });
            return true;
        }
        let watcher = Watcher { spec, tx };
        if watcher.spec.start_revision > 0 && watcher.spec.start_revision <= now {
            let events = match history.events(&watcher.spec.range, watcher.spec.start_revision, now)
            {
                Ok(events) => events,
                Err(err) => {
                    // Without its history the watch cannot keep its promise: end it, and
                    // say why.
                    tracing::error!(%err, "reading watch history failed");
                    let _ = watcher.tx.send(PbWatchResponse {
                        canceled: true,
                        cancel_reason: format!("etcdserver: reading history failed: {err}"),
                        ..self.response(now, id)
                    });
                    return true;
                }
            };
            let events: Vec<PbEvent> = events
                .into_iter()
                .map(|(_, ev)| ev)
                .filter(|ev| watcher.wants(ev))
                .map(|ev| watcher.shape(&ev))
                .collect();
            if !events.is_empty() {
                let _ = watcher.tx.send(PbWatchResponse {
                    events,
                    ..self.response(now, id)
                });
            }
        }
        inner.watchers.insert((stream, id), watcher);
        true
    }

    /// Delivers the events of revision `revision` (all of one write request) and marks it
    /// published. Must be called in revision order.
    pub fn publish(&self, revision: i64, events: &[PbEvent]) {
        let mut inner = self.lock();
        inner.revision = inner.revision.max(revision);
        if events.is_empty() {
            return;
        }
        inner.watchers.retain(|(_, id), w| {
            if w.spec.start_revision > revision {
                return true;
            }
            let mine: Vec<PbEvent> = events
                .iter()
                .filter(|ev| w.wants(ev))
                .map(|ev| w.shape(ev))
                .collect();
            if mine.is_empty() {
                return true;
            }
            let resp = PbWatchResponse {
                events: mine,
                ..self.response(revision, *id)
            };
            w.tx.send(resp).is_ok()
        });
    }

    /// Removes watcher `id` of `stream`; true if it existed.
    pub fn cancel(&self, stream: u64, id: i64) -> bool {
        self.lock().watchers.remove(&(stream, id)).is_some()
    }

    /// Removes every watcher of a closed stream.
    pub fn close_stream(&self, stream: u64) {
        self.lock().watchers.retain(|(s, _), _| *s != stream);
    }

    /// The ids of `stream`'s watchers that asked for progress notifications.
    pub fn progress_watchers(&self, stream: u64) -> Vec<i64> {
        self.lock()
            .watchers
            .iter()
            .filter(|((s, _), w)| *s == stream && w.spec.progress_notify)
            .map(|((_, id), _)| *id)
            .collect()
    }

    /// An empty response at the newest published revision (a progress notification).
    pub fn progress(&self, watch_id: i64) -> PbWatchResponse {
        let rev = self.revision();
        self.response(rev, watch_id)
    }
}

#[cfg(test)]
mod tests {
    use etcd_client::proto::PbKeyValue;
    use tokio::sync::mpsc;

    use super::*;

    struct NoHistory(i64);

    impl History for NoHistory {
        fn compact_revision(&self) -> i64 {
            self.0
        }
        fn events(
            &self,
            _: &KeyRange,
            _: i64,
            _: i64,
        ) -> Result<Vec<(i64, PbEvent)>, crate::error::StoreError> {
            Ok(Vec::new())
        }
    }

    fn put(key: &str, rev: i64) -> PbEvent {
        PbEvent {
            r#type: EVENT_PUT,
            kv: Some(PbKeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: rev,
                ..PbKeyValue::default()
            }),
            prev_kv: Some(PbKeyValue::default()),
        }
    }

    fn spec(key: &str, end: &str, filters: Vec<i32>) -> WatchSpec {
        WatchSpec {
            range: KeyRange::new(key.as_bytes(), end.as_bytes()),
            start_revision: 0,
            filters,
            prev_kv: false,
            progress_notify: false,
        }
    }

    #[test]
    fn prefix_watcher_gets_only_its_keys_without_prev_kv() {
        let hub = WatchHub::new(PbResponseHeader::default(), 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert!(hub.watch(1, 0, spec("a", "b", vec![]), &NoHistory(0), tx));
        assert!(rx.try_recv().unwrap().created);
        hub.publish(2, &[put("a1", 2), put("b1", 2)]);
        let resp = rx.try_recv().unwrap();
        assert_eq!(resp.events.len(), 1);
        assert!(resp.events[0].prev_kv.is_none());
        assert_eq!(resp.header.map(|h| h.revision), Some(2));
    }

    #[test]
    fn noput_filter_drops_puts() {
        let hub = WatchHub::new(PbResponseHeader::default(), 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.watch(1, 0, spec("a", "", vec![FILTER_NOPUT]), &NoHistory(0), tx);
        rx.try_recv().unwrap();
        hub.publish(2, &[put("a", 2)]);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn watch_from_a_compacted_revision_is_canceled_with_the_compact_revision() {
        let hub = WatchHub::new(PbResponseHeader::default(), 10);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let s = WatchSpec {
            start_revision: 3,
            ..spec("a", "", vec![])
        };
        hub.watch(1, 0, s, &NoHistory(5), tx);
        rx.try_recv().unwrap();
        let resp = rx.try_recv().unwrap();
        assert_eq!((resp.compact_revision, resp.canceled), (5, true));
        hub.publish(11, &[put("a", 11)]);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn canceled_watcher_gets_nothing_more() {
        let hub = WatchHub::new(PbResponseHeader::default(), 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.watch(1, 0, spec("a", "", vec![]), &NoHistory(0), tx);
        rx.try_recv().unwrap();
        assert!(hub.cancel(1, 0));
        hub.publish(2, &[put("a", 2)]);
        assert!(rx.try_recv().is_err());
    }
}
