//! The daemon as its clients see it, as root with real containers: the real server (in
//! process, on its own runtime) on a unix socket, an image store holding a busybox rootfs
//! made at test time from Debian's busybox-static, and HTTP through hyper.
//!
//! Supervisors and exec shims run from this test binary (`helpers::supervise`,
//! `helpers::exec_shim`), as they run from `berth supervise` / `berth exec-shim`.

mod daemon {
    pub mod adopt;
    pub mod bad_input;
    pub mod helpers;
    pub mod lifecycle;
    pub mod support;
}

pub use daemon::*;
