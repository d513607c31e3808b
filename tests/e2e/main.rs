//! End-to-end scenarios: the real `berth` binary against real peers (umoci, skopeo, busybox),
//! as root. Each test names the behaviour a user relies on.

// Test code: a panic with the failing value is the report we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod containers;
mod image;
mod pull;
mod service_dns;
mod services;
mod store;
mod support;
