//! The store against its real peers: Debian's etcdctl as a client, Debian's etcd as the
//! reference server.

mod bad_input;
mod conformance;
mod crash;
mod etcdctl;
mod watch;
