//! berth-net against the real CNI plugins (Debian's containernetworking-plugins in
//! /usr/lib/cni), as root, in network namespaces these tests create. Traffic goes only to
//! loopback and to the tests' own namespaces.
//!
//! Each test owns a slot N: network `tN` on bridge `btN` with subnet 10.200.N.0/24, and a
//! temporary state root, so tests run in parallel (threads or processes) and never touch a
//! real daemon's `berth0`.

#[path = "net/bad_input.rs"]
mod bad_input;
#[path = "net/cleanup.rs"]
mod cleanup;
#[path = "net/connectivity.rs"]
mod connectivity;
#[path = "net/ports.rs"]
mod ports;
#[path = "net/support.rs"]
mod support;
