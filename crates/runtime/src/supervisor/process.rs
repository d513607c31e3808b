//! The supervisor as a process: spawning it, detaching it from its parent, and the small
//! pieces of kernel interface its loop needs (pidfd, a self-pipe for SIGTERM).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, dup2, fork, pipe2, setsid};

use super::SupervisorError;
use super::config::{StateDir, SupervisorConfig};
use super::run::Supervisor;
use super::state::{ContainerState, write_atomically};

/// What the detached supervisor writes on the readiness pipe once the container runs.
const READY: &str = "ready\n";

/// Runs `berth_exe supervise --state-dir STATE_DIR` and returns the supervisor's pid once the
/// container runs (the command returns then; the supervisor lives on in its own session).
pub fn spawn_supervisor(berth_exe: &Path, state_dir: &Path) -> Result<Pid, SupervisorError> {
    let mut command = Command::new(berth_exe);
    command.arg("supervise").arg("--state-dir").arg(state_dir);
    spawn_supervisor_command(command, state_dir)
}

/// As [`spawn_supervisor`], for any command that ends up calling [`supervise`] on
/// `state_dir` (the tests use their own binary).
pub fn spawn_supervisor_command(
    mut command: Command,
    state_dir: &Path,
) -> Result<Pid, SupervisorError> {
    let error = |reason: String| SupervisorError::Spawn {
        dir: state_dir.to_owned(),
        reason,
    };
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| error(format!("cannot run {command:?}: {err}")))?;
    if !output.status.success() {
        let said = [&output.stderr, &output.stdout]
            .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
            .join(" ");
        return Err(error(format!("{} ({})", said.trim(), output.status)));
    }
    // A container that exits at once may have a supervisor that is already done and has
    // removed its pid file; its exit record, written before, names it.
    let dir = StateDir::new(state_dir);
    std::fs::read_to_string(dir.pid_file())
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .or_else(|| {
            ContainerState::read(&dir.state())
                .ok()
                .map(|state| state.supervisor_pid)
        })
        .map(Pid::from_raw)
        .ok_or_else(|| {
            error(format!(
                "the supervisor in {} left no pid",
                state_dir.display()
            ))
        })
}

/// Starts supervising the container of `state_dir`: forks a supervisor into a new session
/// and returns its pid once the container runs, or the error that kept it from starting.
///
/// Call it from a single-threaded process (libcontainer clones the supervisor; see
/// docs/adr/0010). The forked supervisor never returns from this function: it exits the
/// process when the container is done for good.
pub fn supervise(state_dir: &Path) -> Result<Pid, SupervisorError> {
    let io = |action: &'static str| {
        move |err: nix::Error| SupervisorError::Io {
            dir: state_dir.to_owned(),
            action,
            reason: err.to_string(),
        }
    };
    let canonical = state_dir
        .canonicalize()
        .map_err(|err| SupervisorError::Config {
            path: state_dir.to_owned(),
            reason: err.to_string(),
        })?;
    let dir = StateDir::new(&canonical);
    let config = SupervisorConfig::load(&dir)?;
    let (ready_read, ready_write) = pipe2(OFlag::O_CLOEXEC).map_err(io("make a pipe"))?;
    // SAFETY: the child only runs this process's code until it exits; the caller is
    // single-threaded (documented above), so no lock is held by a thread that the child lacks.
    match unsafe { fork() }.map_err(io("fork"))? {
        ForkResult::Parent { child } => {
            drop(ready_write);
            let mut said = String::new();
            let _ = File::from(ready_read).read_to_string(&mut said);
            if said == READY {
                return Ok(child);
            }
            let _ = waitpid(child, None);
            let reason = match said.trim() {
                "" => "it exited before the container started".to_owned(),
                reason => reason.to_owned(),
            };
            Err(SupervisorError::Spawn {
                dir: canonical,
                reason,
            })
        }
        ForkResult::Child => {
            drop(ready_read);
            let code = run_detached(&dir, config, ready_write);
            std::process::exit(code)
        }
    }
}

/// The supervisor's life after the fork: detach, start the container, report readiness,
/// supervise; returns the process's exit code.
fn run_detached(dir: &StateDir, config: SupervisorConfig, ready: OwnedFd) -> i32 {
    if let Err(err) = detach(dir, ready.as_raw_fd()) {
        report(ready, &format!("{err}\n"));
        return 1;
    }
    let pid = std::process::id().to_string();
    let started = write_atomically(&dir.pid_file(), pid.as_bytes())
        .and_then(|()| Supervisor::start(dir, config));
    match started {
        Ok(supervisor) => {
            report(ready, READY);
            supervisor.run();
            0
        }
        Err(err) => {
            eprintln!("berth supervise: {err}");
            let _ = std::fs::remove_file(dir.pid_file());
            report(ready, &format!("{err}\n"));
            1
        }
    }
}

/// Leaves the parent's session and files: a new session (no signal to the spawner's process
/// group reaches it), every inherited fd but `keep` closed, stdin and stdout on /dev/null,
/// stderr appended to `supervisor.log`, `/` as working directory, SIGPIPE at its default
/// (which the container inherits; the supervisor itself writes to sockets with
/// `MSG_NOSIGNAL`).
fn detach(dir: &StateDir, keep: RawFd) -> Result<(), SupervisorError> {
    let io = |action: &'static str| {
        move |reason: String| SupervisorError::Io {
            dir: dir.path().to_owned(),
            action,
            reason,
        }
    };
    setsid().map_err(|err| io("start a session")(err.to_string()))?;
    close_fds_from(3, keep).map_err(io("close inherited files"))?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|err| io("open /dev/null")(err.to_string()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.supervisor_log())
        .map_err(|err| io("open supervisor.log")(err.to_string()))?;
    for (file, target) in [(&null, 0), (&null, 1), (&log, 2)] {
        dup2(file.as_raw_fd(), target).map_err(|err| io("redirect stdio")(err.to_string()))?;
    }
    std::env::set_current_dir("/").map_err(|err| io("change to /")(err.to_string()))?;
    set_sigpipe(SigHandler::SigDfl);
    Ok(())
}

/// Closes every fd from `first` up, except `keep`.
fn close_fds_from(first: RawFd, keep: RawFd) -> Result<(), String> {
    let close_range = |low: RawFd, high: RawFd| {
        if low > high {
            return Ok(());
        }
        // SAFETY: close_range only closes fds of this process; nothing else of this (just
        // forked, single-threaded) process uses fds in the range.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, low, high, 0) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(())
    };
    close_range(first, keep - 1)?;
    close_range(first.max(keep + 1), RawFd::MAX)
}

fn set_sigpipe(handler: SigHandler) {
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL and SIG_IGN are valid dispositions and run no code of ours.
    let _ = unsafe { sigaction(Signal::SIGPIPE, &action) };
}

/// Tells the spawning process how the start went; it may be gone, so SIGPIPE is ignored
/// meanwhile.
fn report(ready: OwnedFd, message: &str) {
    set_sigpipe(SigHandler::SigIgn);
    let _ = File::from(ready).write_all(message.as_bytes());
    set_sigpipe(SigHandler::SigDfl);
}

/// An fd that becomes readable when the process `pid` (a child of ours) exits.
pub(crate) fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this new fd (close-on-exec); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The write end of the stop-signal pipe, for the signal handler.
static STOP_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop_signal(_: libc::c_int) {
    let fd = STOP_PIPE.load(Ordering::Relaxed);
    let byte = 1u8;
    // SAFETY: write(2) is async-signal-safe; `fd` is the pipe's non-blocking write end, open
    // for the rest of the process's life, and `byte` outlives the call.
    unsafe {
        libc::write(fd, (&raw const byte).cast(), 1);
    }
}

/// A pipe that becomes readable when SIGTERM or SIGINT arrives (a handler writes to it), so
/// the poll loop sees those signals without blocking them: a blocked signal mask would be
/// inherited by the container's init, while handlers are reset when it execs.
pub(crate) fn stop_signal_pipe() -> nix::Result<File> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    STOP_PIPE.store(write.into_raw_fd(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only loads an atomic and calls write(2), both
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(File::from(read))
}
