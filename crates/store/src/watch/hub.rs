//! Watchers by stream and id, and event delivery to them.

use std::collections::HashMap;
use std::sync::Mutex;

use etcd_client::proto::{PbEvent, PbKeyValue, PbResponseHeader, PbWatchResponse};
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

/// The previous key-value of `ev`, an event of revision `revision`. A value the data file cannot
/// give back leaves the event without it, as etcd sends it when its read fails.
fn before(history: &dyn History, ev: &PbEvent, revision: i64) -> Option<PbKeyValue> {
    let key = ev.kv.as_ref().map_or(&[][..], |kv| kv.key.as_slice());
    history.before(key, revision).unwrap_or_else(|err| {
        tracing::warn!(%err, revision, "reading the previous value of a watch event failed");
        None
    })
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
    /// published. Must be called in revision order, with `history` the state once that request
    /// (and maybe later ones) applied. Events come without their previous key-values: those
    /// are read from `history` here, once per event and only if a watcher that asked for them
    /// gets the event, as etcd reads them when it sends (and, as etcd, leaves one out that a
    /// compaction has removed meanwhile). Most watchers never ask, and reading every
    /// overwritten value at apply time cost each put a lookup in the data file.
    pub fn publish(&self, revision: i64, events: &[PbEvent], history: &dyn History) {
        let mut inner = self.lock();
        inner.revision = inner.revision.max(revision);
        if events.is_empty() || inner.watchers.is_empty() {
            return;
        }
        let mut prevs: Vec<Option<Option<PbKeyValue>>> = vec![None; events.len()];
        inner.watchers.retain(|(_, id), w| {
            if w.spec.start_revision > revision {
                return true;
            }
            let mut mine = Vec::new();
            for (ev, prev) in events.iter().zip(prevs.iter_mut()) {
                if !w.wants(ev) {
                    continue;
                }
                let mut ev = ev.clone();
                if w.spec.prev_kv {
                    ev.prev_kv = prev
                        .get_or_insert_with(|| before(history, &ev, revision))
                        .clone();
                }
                mine.push(ev);
            }
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

    /// Marks `revision` published where it brought no events (a request that changed
    /// nothing, an installed snapshot).
    pub fn advance(&self, revision: i64) {
        let mut inner = self.lock();
        inner.revision = inner.revision.max(revision);
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

    /// No past events, compacted at `.0`; every key was `old` before, and each such read is
    /// counted.
    #[derive(Default)]
    struct NoHistory(i64, std::cell::Cell<usize>);

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
        fn before(
            &self,
            key: &[u8],
            revision: i64,
        ) -> Result<Option<PbKeyValue>, crate::error::StoreError> {
            self.1.set(self.1.get() + 1);
            Ok(Some(PbKeyValue {
                key: key.to_vec(),
                value: b"old".to_vec(),
                mod_revision: revision - 1,
                ..PbKeyValue::default()
            }))
        }
    }

    fn none() -> NoHistory {
        NoHistory::default()
    }

    fn put(key: &str, rev: i64) -> PbEvent {
        PbEvent {
            r#type: EVENT_PUT,
            kv: Some(PbKeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: rev,
                ..PbKeyValue::default()
            }),
            prev_kv: None,
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
        assert!(hub.watch(1, 0, spec("a", "b", vec![]), &none(), tx));
        assert!(rx.try_recv().unwrap().created);
        hub.publish(2, &[put("a1", 2), put("b1", 2)], &none());
        let resp = rx.try_recv().unwrap();
        assert_eq!(resp.events.len(), 1);
        assert!(resp.events[0].prev_kv.is_none());
        assert_eq!(resp.header.map(|h| h.revision), Some(2));
    }

    #[test]
    fn noput_filter_drops_puts() {
        let hub = WatchHub::new(PbResponseHeader::default(), 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.watch(1, 0, spec("a", "", vec![FILTER_NOPUT]), &none(), tx);
        rx.try_recv().unwrap();
        hub.publish(2, &[put("a", 2)], &none());
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
        hub.watch(1, 0, s, &NoHistory(5, Default::default()), tx);
        rx.try_recv().unwrap();
        let resp = rx.try_recv().unwrap();
        assert_eq!((resp.compact_revision, resp.canceled), (5, true));
        hub.publish(11, &[put("a", 11)], &none());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn canceled_watcher_gets_nothing_more() {
        let hub = WatchHub::new(PbResponseHeader::default(), 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        hub.watch(1, 0, spec("a", "", vec![]), &none(), tx);
        rx.try_recv().unwrap();
        assert!(hub.cancel(1, 0));
        hub.publish(2, &[put("a", 2)], &none());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn previous_values_are_read_once_per_event_and_only_for_watchers_that_ask() {
        let hub = WatchHub::new(PbResponseHeader::default(), 1);
        let (plain_tx, mut plain) = mpsc::unbounded_channel();
        let (prev_tx, mut prev) = mpsc::unbounded_channel();
        let (other_tx, mut other) = mpsc::unbounded_channel();
        let asks = |key: &str, end: &str| WatchSpec {
            prev_kv: true,
            ..spec(key, end, vec![])
        };
        hub.watch(1, 0, spec("a", "b", vec![]), &none(), plain_tx);
        hub.watch(1, 1, asks("a", "b"), &none(), prev_tx);
        hub.watch(2, 0, asks("a1", ""), &none(), other_tx);
        for rx in [&mut plain, &mut prev, &mut other] {
            assert!(rx.try_recv().unwrap().created);
        }

        let history = none();
        hub.publish(2, &[put("a1", 2), put("a2", 2), put("b1", 2)], &history);
        assert_eq!(
            history.1.get(),
            2,
            "a1 once for two watchers, a2 once, b1 never"
        );
        let got = prev.try_recv().unwrap().events;
        assert_eq!(got.len(), 2);
        for (ev, key) in got.iter().zip(["a1", "a2"]) {
            let before = ev.prev_kv.as_ref().expect("asked for prev_kv");
            assert_eq!(
                (before.key.as_slice(), before.value.as_slice()),
                (key.as_bytes(), &b"old"[..])
            );
            assert_eq!(
                before.mod_revision, 1,
                "as of the revision before the event's"
            );
        }
        assert_eq!(
            other.try_recv().unwrap().events[0]
                .prev_kv
                .as_ref()
                .map(|kv| kv.key.clone()),
            Some(b"a1".to_vec())
        );
        assert!(
            plain
                .try_recv()
                .unwrap()
                .events
                .iter()
                .all(|ev| ev.prev_kv.is_none())
        );

        let quiet = none();
        hub.cancel(1, 1);
        hub.cancel(2, 0);
        hub.publish(3, &[put("a1", 3)], &quiet);
        assert_eq!(quiet.1.get(), 0, "no watcher asks: nothing is read");
        assert_eq!(plain.try_recv().unwrap().events.len(), 1);
    }
}
