//! End-to-end scenarios.

mod store;
mod support;
