//! Multi-version concurrency control, as etcd's mvcc package defines it: every write request gets
//! one main revision, each key change within it a sub revision; a key has a create revision, a mod
//! revision and a version; older revisions stay readable until compacted.
//!
//! This module is pure: an in-memory index of every live revision, with no I/O of its own. The
//! apply path changes it and tells the backend what to persist; the backend rebuilds it on start
//! and is the [`ValueSource`] the index reads committed values from.

mod index;
mod key_range;
mod range;

pub(crate) use index::delete_event;
pub use index::{FrozenChanges, KeyIndex, KvRef, Meta, Revision, ValueSource};
pub use key_range::KeyRange;
pub use range::range;

/// etcd's event types, as on the wire (`mvccpb.Event.EventType`).
pub const EVENT_PUT: i32 = 0;
pub const EVENT_DELETE: i32 = 1;
