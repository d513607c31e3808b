//! The exec shim: a single-threaded child of the daemon (`berth exec-shim`) that runs one
//! process in a running container through libcontainer with the shim's own stdio, waits for
//! it and exits with its code. The daemon pumps its pipes to and from the client's frames;
//! it never calls libcontainer's exec itself (libcontainer clones its caller; ADR 10).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use berth_client::api::ExecRequest;
use berth_runtime::supervisor::{
    ConsoleSocket, StateDir, SupervisorConfig, WindowSize, resize_terminal,
};
use berth_runtime::{
    ContainerDriver, EnvVar, ExecOptions, LibcontainerDriver, Stdio, UserDb, UserSpec,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::record::ContainerRecord;

/// Exit code when the process could not be started (as docker's 126).
pub const CANNOT_EXEC: i32 = 126;

/// Parses `request` (an [`ExecRequest`] as JSON) into [`ExecOptions`] for the container of
/// `state_dir`.
pub fn exec_options(state_dir: &Path, request: &ExecRequest) -> Result<ExecOptions, String> {
    if request.cmd.is_empty() {
        return Err("Cmd is required".into());
    }
    let env = request
        .env
        .iter()
        .map(|e| e.parse::<EnvVar>().map_err(|err| err.to_string()))
        .collect::<Result<_, _>>()?;
    let workdir = request
        .working_dir
        .as_deref()
        .map(|w| {
            w.parse()
                .map_err(|err: berth_runtime::MountError| err.to_string())
        })
        .transpose()?;
    let user = match request.user.as_deref() {
        None => None,
        Some(user) => {
            let spec: UserSpec = user
                .parse()
                .map_err(|err: berth_runtime::UserError| err.to_string())?;
            let record = ContainerRecord::read(state_dir).map_err(|err| err.to_string())?;
            let users = UserDb::load(&record.rootfs).map_err(|err| err.to_string())?;
            Some(users.resolve(Some(&spec)).map_err(|err| err.to_string())?)
        }
    };
    Ok(ExecOptions {
        args: request.cmd.clone(),
        env,
        workdir,
        user,
        tty: request.tty,
    })
}

/// Runs the exec and returns the process's exit code; errors are written to stderr (the
/// client's stderr frames) and give [`CANNOT_EXEC`]. Call from a single-threaded process.
pub fn run(state_dir: &Path, request_json: &str) -> i32 {
    match try_run(state_dir, request_json) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("berth exec: {message}");
            CANNOT_EXEC
        }
    }
}

fn try_run(state_dir: &Path, request_json: &str) -> Result<i32, String> {
    let request: ExecRequest = serde_json::from_str(request_json).map_err(|e| e.to_string())?;
    let options = exec_options(state_dir, &request)?;
    let config = SupervisorConfig::load(&StateDir::new(state_dir)).map_err(|e| e.to_string())?;
    let driver = LibcontainerDriver::new(&config.runtime_root).map_err(|e| e.to_string())?;
    if !options.tty {
        let pid = driver
            .exec(&config.id, &options, Stdio::default())
            .map_err(|e| e.to_string())?;
        return driver.wait_exec(&config.id, pid).map_err(|e| e.to_string());
    }
    // The console socket lives in the temp dir: a path under the state dir could pass the
    // 108 bytes a unix socket path may have.
    let socket_path = std::env::temp_dir().join(format!("berth-exec-{}.sock", std::process::id()));
    let console = ConsoleSocket::bind(&socket_path).map_err(|e| e.to_string())?;
    let stdio = Stdio {
        console_socket: Some(console.path().to_owned()),
        ..Stdio::default()
    };
    let pid = driver
        .exec(&config.id, &options, stdio)
        .map_err(|e| e.to_string())?;
    let relayed = console
        .receive_master()
        .map_err(|e| format!("the process sent no terminal: {e}"))
        .and_then(|master| relay_terminal(master).map_err(|e| e.to_string()));
    let code = driver
        .wait_exec(&config.id, pid)
        .map_err(|e| e.to_string())?;
    relayed.map(|()| code)
}

/// Copies the shim's stdin to the terminal and the terminal to the shim's stdout until the
/// process's side of the terminal is closed (the master then reads EIO); sizes read from
/// [`RESIZE_FD`], when the daemon gave one, resize the terminal.
fn relay_terminal(master: OwnedFd) -> std::io::Result<()> {
    resize_terminal(master.as_fd(), DEFAULT_SIZE)?;
    let mut sizes = resize_pipe();
    let mut master = std::fs::File::from(master);
    let mut stdin = Some(std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        let (output_ready, input_ready, size_ready) = {
            let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            let input_slot = stdin.as_ref().map(|input| {
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let size_slot = sizes.as_ref().map(|pipe| {
                fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => return Err(err.into()),
                Ok(_) => {}
            }
            let ready = |slot: Option<usize>| {
                slot.is_some_and(|n| fds[n].revents().is_some_and(|r| !r.is_empty()))
            };
            (ready(Some(0)), ready(input_slot), ready(size_slot))
        };
        // A new size first, so output written after it is laid out for it.
        if size_ready && let Some(pipe) = &mut sizes {
            let mut message = [0u8; 4];
            match pipe.read_exact(&mut message) {
                Ok(()) => {
                    let size = WindowSize {
                        rows: u16::from_le_bytes([message[0], message[1]]),
                        columns: u16::from_le_bytes([message[2], message[3]]),
                    };
                    // A size the terminal refuses leaves the old one; the process goes on.
                    let _ = resize_terminal(master.as_fd(), size);
                }
                Err(_) => sizes = None,
            }
        }
        if output_ready {
            match master.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    stdout.write_all(&buffer[..n])?;
                    stdout.flush()?;
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                // EIO: every process holding the terminal's other side is gone.
                Err(err) if err.raw_os_error() == Some(libc::EIO) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
        if input_ready && let Some(input) = &mut stdin {
            match input.read(&mut buffer) {
                // The client's input ended; the terminal stays (as `docker exec -it`).
                Ok(0) | Err(_) => stdin = None,
                Ok(n) => master.write_all(&buffer[..n])?,
            }
        }
    }
}

/// The terminal's size until the client says otherwise (docker's default).
const DEFAULT_SIZE: WindowSize = WindowSize {
    rows: 24,
    columns: 80,
};

/// The fd on which the daemon sends an exec with a terminal its new sizes: 4 bytes each, rows
/// then columns, little-endian u16s. The daemon names it in [`RESIZE_FD_ENV`].
pub const RESIZE_FD: RawFd = 3;
/// Set (to [`RESIZE_FD`]) when the shim has a resize pipe.
pub const RESIZE_FD_ENV: &str = "BERTH_EXEC_RESIZE_FD";

/// The resize pipe the daemon passed, if it did.
fn resize_pipe() -> Option<std::fs::File> {
    let fd: RawFd = std::env::var(RESIZE_FD_ENV).ok()?.parse().ok()?;
    if fd != RESIZE_FD {
        return None;
    }
    // SAFETY: the daemon set RESIZE_FD_ENV only after making RESIZE_FD the read end of a pipe
    // of this process's own, which nothing else here owns or closes.
    Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}
