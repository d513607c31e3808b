//! Shared helpers of the end-to-end tests: running berth, building fixtures.

pub mod daemon;
pub mod etcdctl;
pub mod fixtures;
pub mod oci;
pub mod ports;
pub mod process;
pub mod store;

use std::path::Path;
use std::process::{Command, Output};

/// `berth --root ROOT` ready for arguments.
pub fn berth(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.arg("--root").arg(root).env_remove("BERTH_ROOT");
    command
}

/// Runs `command`, panicking with its output unless it succeeds; returns stdout.
pub fn ok(command: &mut Command) -> String {
    let output = output(command);
    assert!(
        output.status.success(),
        "{command:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `command`, panicking if it succeeds; returns stderr.
pub fn fails(command: &mut Command) -> String {
    let output = output(command);
    assert!(
        !output.status.success(),
        "{command:?} should have failed\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e} (is it installed? `make test` installs the test peers)")
    })
}

/// Runs an external tool, panicking with its output if it fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    ok(Command::new(program).args(args))
}

/// Polls `check` every 20 ms until it is true; how long that took (panics past `limit`,
/// naming `what`). Tests print the time rather than assert on it: the machine is shared.
pub fn within(
    limit: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
