//! The watch hub: which watchers want which keys, and delivery of events to them in revision
//! order. It holds no store state; catch-up history comes through the [`History`] trait.

mod hub;

pub use hub::{WatchHub, WatchSpec};

use etcd_client::proto::{PbEvent, PbKeyValue};

use crate::mvcc::KeyRange;

/// Past events, for a watcher that starts at an old revision, and the previous key-values of
/// new ones, for a watcher that asked for them.
pub trait History {
    /// The revision below which history is gone.
    fn compact_revision(&self) -> i64;
    /// Every event in `range` with a revision in `from..=to`, in revision order, each paired
    /// with its revision.
    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, PbEvent)>, crate::error::StoreError>;
    /// `key` as it was before the write request of revision `revision`, with its value
    /// (`None` if it did not exist): the `prev_kv` of that request's event on `key`.
    fn before(
        &self,
        key: &[u8],
        revision: i64,
    ) -> Result<Option<PbKeyValue>, crate::error::StoreError>;
}
