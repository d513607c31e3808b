//! Not tests: the entry points of the helper processes the daemon starts.

use std::path::Path;

/// The environment variable naming the state directory for a helper.
pub const STATE_DIR_ENV: &str = "BERTH_TEST_STATE_DIR";
/// The environment variable holding an exec request.
pub const REQUEST_ENV: &str = "BERTH_TEST_EXEC_REQUEST";

#[test]
#[ignore = "run by the daemon as a container's supervisor"]
fn supervise() {
    let dir = std::env::var_os(STATE_DIR_ENV).expect("state dir in the environment");
    berth_runtime::supervisor::supervise(Path::new(&dir)).expect("supervise");
}

#[test]
#[ignore = "run by the daemon for exec"]
fn exec_shim() {
    let dir = std::env::var_os(STATE_DIR_ENV).expect("state dir in the environment");
    let request = std::env::var(REQUEST_ENV).expect("request in the environment");
    std::process::exit(berth_agent::exec_shim::run(Path::new(&dir), &request));
}
