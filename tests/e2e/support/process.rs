//! A child process that is killed when its guard is dropped.

use std::process::{Child, Command, Stdio};

/// Owns a child process; dropping it kills (SIGKILL) and reaps the child.
#[derive(Debug)]
pub struct ProcessGuard {
    child: Option<Child>,
}

impl ProcessGuard {
    /// Spawns `cmd` with its output discarded (stderr kept in `log` if given).
    pub fn spawn(mut cmd: Command, log: Option<&std::path::Path>) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        match log {
            Some(path) => cmd.stderr(std::fs::File::create(path).expect("create log file")),
            None => cmd.stderr(Stdio::null()),
        };
        let child = cmd.spawn().expect("spawn child process");
        Self { child: Some(child) }
    }

    /// kill -9 and reap, now.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
