//! The watch hub: which watchers want which keys, and delivery of events to them in revision
//! order. It holds no store state; catch-up history comes through the [`History`] trait.

mod hub;

pub use hub::{WatchHub, WatchSpec};

use etcd_client::proto::PbEvent;

use crate::mvcc::KeyRange;

/// Past events, for a watcher that starts at an old revision.
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
}
