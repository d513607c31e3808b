//! Reaping the processes libcontainer clones from the caller: the container's init, exec'd
//! processes and libcontainer's intermediate processes are all children of the caller, and
//! only the caller can collect their exit status or free their zombies.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_types::ContainerId;
use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The name libcontainer gives its intermediate process (`prctl(PR_SET_NAME)`).
const INTERMEDIATE_NAME: &str = "youki:[1:INTER]";

/// Waits for the child `pid` to exit: its exit code, or 128 + the signal that killed it.
pub(crate) fn wait_for_child(pid: Pid) -> Result<i32, String> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => {
                return Err(format!("process {pid} is not a child of this process"));
            }
            Err(err) => return Err(format!("waitpid({pid}): {err}")),
        }
    }
}

/// How long `delete` and a failed `exec` wait for a killed process to be reaped before they
/// report an error instead of hanging.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reaps the child `pid`, which has been killed or has failed, waiting at most
/// [`REAP_TIMEOUT`]. A child already reaped (or never ours) is fine.
pub(crate) fn reap(pid: Pid) -> Result<(), String> {
    let deadline = Instant::now() + REAP_TIMEOUT;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(WaitStatus::StillAlive) => {
                return Err(format!(
                    "process {pid} did not exit within {REAP_TIMEOUT:?} of being killed"
                ));
            }
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => {
                return Ok(());
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => return Err(format!("waitpid({pid}): {err}")),
        }
    }
}

/// Whether `pid` is a child of this process (and so ours to reap).
pub(crate) fn is_our_child(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The fields after the command name (which may hold spaces and parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let parent = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
    parent == Some(nix::unistd::getpid().as_raw())
}

/// A unique pid file path for one libcontainer build, where libcontainer writes the pid of
/// the process it clones before anything can fail.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
}

/// Makes pid file names unique within this process.
static PID_FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl PidFile {
    pub(crate) fn new(dir: &Path, id: &ContainerId) -> Self {
        let n = PID_FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
        Self {
            path: dir.join(format!(".{id}-{}-{n}.pid", std::process::id())),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written, if any; the file is removed.
    pub(crate) fn take(self) -> Option<Pid> {
        let pid = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map(Pid::from_raw);
        let _ = std::fs::remove_file(&self.path);
        pid
    }
}

/// Frees what a failed libcontainer build left: the cloned process `written_pid` (bounded
/// wait) and every zombie intermediate process of ours (they hold no exit status anyone needs).
pub(crate) fn reap_failed_build(written_pid: Option<Pid>) -> Result<(), String> {
    if let Some(pid) = written_pid
        && is_our_child(pid)
    {
        reap(pid)?;
    }
    for pid in zombie_children_named(INTERMEDIATE_NAME) {
        reap(pid)?;
    }
    Ok(())
}

/// This process's zombie children whose command name is `name`.
fn zombie_children_named(name: &str) -> Vec<Pid> {
    let me = nix::unistd::getpid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, comm)| comm);
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let parent = fields.next().and_then(|p| p.parse::<i32>().ok());
            comm == name && state == Some("Z") && parent == Some(me)
        })
        .map(Pid::from_raw)
        .collect()
}
