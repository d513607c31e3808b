//! Leases: which leases exist and which keys each holds ([`LeaseTable`], state-machine state,
//! changed only by applied log entries), and when each expires ([`LeaseClock`], wall-clock state
//! of the node that serves them, renewed by keep-alives and never persisted — as in etcd, a
//! restart gives every lease its full TTL again).

mod clock;
mod table;

pub use clock::LeaseClock;
pub use table::LeaseTable;

/// etcd's smallest lease TTL with its default timings (1.5 × election timeout, rounded up).
pub const MIN_TTL: i64 = 2;
/// etcd's largest lease TTL, in seconds.
pub const MAX_TTL: i64 = 9_000_000_000;
