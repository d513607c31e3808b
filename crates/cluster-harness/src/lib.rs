//! Test infrastructure for berth's replicated store (issue #7), used by test binaries only.
//!
//! - [`lincheck`]: a linearizability checker for key-value histories (pure).
//! - [`watchcheck`]: checks watch streams against the committed history (pure).
//! - [`hosts`]: N hosts as network namespaces on a private bridge, each running a process,
//!   with fault injection (kill -9, restart, SIGSTOP, partitions, slow syncs, netem). Needs
//!   root.
//! - [`client`]: recording etcd v3 clients that build the histories the checkers read.
//! - [`scenario`]: a cluster of members started by a [`scenario::MemberCommand`] (Debian's etcd
//!   today, berth when its store clusters), load, and the checks every scenario ends with.
//!
//! The checkers are trusted by their own tests; the rest is exercised by
//! `tests/harness.rs` against a 3-member etcd 3.4 cluster. A slow disk is slow syncs injected
//! by strace, not a slow block device (docs/adr/0701-cluster-test-harness.md says why).

pub mod client;
pub mod hosts;
pub mod lincheck;
pub mod scenario;
pub mod watchcheck;
