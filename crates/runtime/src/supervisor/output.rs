//! The container's output as the supervisor reads it: two pipes (stdout, stderr), or with a
//! terminal (`RunOptions::tty`) the pty master, which the container's init sends over a unix
//! socket the supervisor listens on during `create` (`Stdio::console_socket`); a terminal is
//! one stream, logged as `stdout`, as docker logs it.

use std::fs::File;
use std::io::{ErrorKind, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
use nix::unistd::pipe2;

use super::log::{JsonLog, LineSplitter, Stream};
use crate::driver::Stdio;

/// Bytes read from a pipe at once.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// Reads per pipe per wake-up, so a chatty stream cannot starve the rest of the loop.
const READS_PER_WAKEUP: usize = 16;

/// One of the container's output pipes and its partial line.
pub(crate) struct Output {
    stream: Stream,
    pipe: File,
    lines: LineSplitter,
}

impl Output {
    pub(crate) fn new(stream: Stream, pipe: OwnedFd) -> Self {
        Self {
            stream,
            pipe: File::from(pipe),
            lines: LineSplitter::default(),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

/// How the container's output reaches the supervisor in one run.
pub(crate) enum Wiring {
    /// The read ends of the stdout and stderr pipes.
    Pipes { stdout: OwnedFd, stderr: OwnedFd },
    /// The socket the pty master will arrive on.
    Terminal(ConsoleSocket),
}

impl Wiring {
    /// Makes the pipes, or binds the console socket at `console` for a container with a
    /// terminal; returns them and the `Stdio` to create the container with.
    pub(crate) fn prepare(terminal: bool, console: &Path) -> std::io::Result<(Self, Stdio)> {
        if terminal {
            let socket = ConsoleSocket::bind(console)?;
            let stdio = Stdio {
                console_socket: Some(socket.path.clone()),
                ..Stdio::default()
            };
            return Ok((Self::Terminal(socket), stdio));
        }
        let (stdout, stdout_write) = output_pipe()?;
        let (stderr, stderr_write) = output_pipe()?;
        let stdio = Stdio {
            stdin: None,
            stdout: Some(stdout_write),
            stderr: Some(stderr_write),
            console_socket: None,
        };
        Ok((Self::Pipes { stdout, stderr }, stdio))
    }

    /// After `create`: the outputs to read (a terminal is one stream, logged as stdout).
    pub(crate) fn outputs(self) -> std::io::Result<[Option<Output>; 2]> {
        match self {
            Self::Pipes { stdout, stderr } => Ok([
                Some(Output::new(Stream::Stdout, stdout)),
                Some(Output::new(Stream::Stderr, stderr)),
            ]),
            Self::Terminal(socket) => {
                let master = socket.receive_master()?;
                fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
                Ok([Some(Output::new(Stream::Stdout, master)), None])
            }
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// How far [`pump`] got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// The pipe is empty for now.
    Drained,
    /// It has more than one wake-up's share.
    More,
    /// Every writer closed it (the partial line was flushed).
    Eof,
}

/// Reads what `output` has (at most [`READS_PER_WAKEUP`] buffers) into the log.
pub(crate) fn pump(output: &mut Output, log: &mut JsonLog, buffer: &mut [u8]) -> Pumped {
    for _ in 0..READS_PER_WAKEUP {
        let n = match output.pipe.read(buffer) {
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Pumped::Drained,
            // A terminal's master reads EIO once the container's side is closed.
            Err(err) if err.raw_os_error() == Some(libc::EIO) => 0,
            Err(err) => {
                eprintln!(
                    "berth supervise: reading the container's {:?}: {err}",
                    output.stream
                );
                0
            }
        };
        let time = now_rfc3339();
        let stream = output.stream;
        let mut emit = |piece: &[u8]| {
            if let Err(err) = log.write(stream, &time, piece) {
                eprintln!("berth supervise: writing container.log: {err}");
            }
        };
        if n == 0 {
            output.lines.flush(&mut emit);
            return Pumped::Eof;
        }
        output.lines.feed(&buffer[..n], &mut emit);
    }
    Pumped::More
}

/// A pipe for one output stream: the read end non-blocking for the loop, the write end for
/// the container.
fn output_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, write))
}

/// The listening console socket of one `create` (or of an exec with a terminal); removed
/// when dropped.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens at `path`, replacing a stale socket.
    pub fn bind(path: &Path) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        Ok(Self {
            listener: UnixListener::bind(path)?,
            path: path.to_owned(),
        })
    }

    /// The pty master the container's init sent during `create` (its connection waits in
    /// the listen backlog, so no second thread has to accept it meanwhile).
    pub fn receive_master(&self) -> std::io::Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        let (stream, _) = self.listener.accept()?;
        stream.set_nonblocking(false)?;
        let mut name = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!(RawFd);
        let message = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg
                && let Some(&fd) = fds.first()
            {
                // SAFETY: the kernel just installed `fd` in this process for this message;
                // nothing else refers to it, so the OwnedFd is its only owner.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        Err(std::io::Error::other("the container sent no terminal"))
    }
}

impl ConsoleSocket {
    /// Where it listens: the path for [`Stdio::console_socket`].
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A terminal's size in characters, as `TIOCSWINSZ` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub columns: u16,
}

/// Sets the size of the terminal whose master (or slave) is `terminal`; the processes on it
/// get SIGWINCH.
pub fn resize_terminal(terminal: BorrowedFd<'_>, size: WindowSize) -> std::io::Result<()> {
    let size = libc::winsize {
        ws_row: size.rows,
        ws_col: size.columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which points to a live
    // `winsize` for the whole call; the fd is borrowed, so it is open.
    let result = unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
