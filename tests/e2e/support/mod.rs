//! Small helpers shared by the end-to-end scenarios.

pub mod etcdctl;
pub mod ports;
pub mod process;
pub mod store;
