//! One module per subcommand: each parses its arguments into calls on a library crate.

pub mod config;
pub mod container;
pub mod daemon;
pub mod exec_shim;
pub mod image;
pub mod kv;
pub mod progress;
pub mod pull;
pub mod service;
pub mod store;
pub mod supervise;
pub mod table;
pub mod units;
