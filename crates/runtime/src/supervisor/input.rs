//! The container's stdin for `-i` (`SupervisorConfig::stdin`): `attach.sock` in the state
//! directory, whose clients' bytes the supervisor writes to the container's stdin pipe (or,
//! with a terminal, to the pty master).
//!
//! Guarantees: bytes from one client reach the container in order and none is dropped while
//! the container reads its stdin (a container that does not read holds the client back, the
//! supervisor loop never blocks on it); the end of the first client's input closes the
//! container's stdin for good, as docker's `run -i` does (`StdinOnce`), and later runs of a
//! restarted container then start with an empty stdin. With a terminal, a client's end of
//! input closes nothing (the terminal stays, as with `docker run -it`). A container that
//! closes its stdin makes the supervisor drop what was pending, never die of `SIGPIPE`.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::unistd::pipe2;

/// Bytes read from a client at once.
const CHUNK: usize = 64 * 1024;

/// `attach.sock`, its clients, and where their bytes go in the current run.
pub(crate) struct Input {
    listener: UnixListener,
    clients: Vec<UnixStream>,
    /// The current run's stdin: the write end of its pipe, or the pty master.
    target: Option<File>,
    /// Bytes read from a client that the container has not taken yet.
    pending: Vec<u8>,
    /// The first client's input ended: stdin is closed for good.
    closed: bool,
    terminal: bool,
}

/// What the loop should watch for the input side, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// A client is connecting.
    Listener,
    /// Client `n` sent bytes or hung up.
    Client(usize),
    /// The container can take pending bytes.
    Target,
}

impl Input {
    /// Binds `path` (replacing a stale socket), root-only.
    pub(crate) fn bind(path: &Path, terminal: bool) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            clients: Vec::new(),
            target: None,
            pending: Vec::new(),
            closed: false,
            terminal,
        })
    }

    /// For a run without a terminal: the read end of a fresh stdin pipe for the container.
    /// Once stdin is closed for good, the pipe is already at its end.
    pub(crate) fn pipe_for_run(&mut self) -> std::io::Result<OwnedFd> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
        if !self.closed {
            fcntl(write.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
            self.target = Some(File::from(write));
        }
        Ok(read)
    }

    /// For a run with a terminal: input goes to (a duplicate of) its pty master.
    pub(crate) fn terminal_for_run(&mut self, master: BorrowedFd<'_>) -> std::io::Result<()> {
        self.target = Some(File::from(master.try_clone_to_owned()?));
        Ok(())
    }

    /// The run ended: its stdin goes, with whatever it did not read.
    pub(crate) fn end_run(&mut self) {
        self.target = None;
        self.pending.clear();
    }

    /// The fds to poll and what each means.
    pub(crate) fn watches(&self) -> Vec<(Watch, BorrowedFd<'_>, nix::poll::PollFlags)> {
        use nix::poll::PollFlags;
        let mut watches = vec![(Watch::Listener, self.listener.as_fd(), PollFlags::POLLIN)];
        match &self.target {
            Some(target) if !self.pending.is_empty() => {
                watches.push((Watch::Target, target.as_fd(), PollFlags::POLLOUT));
            }
            // Clients are read only while there is somewhere to put their bytes.
            Some(_) => watches.extend(
                self.clients
                    .iter()
                    .enumerate()
                    .map(|(n, client)| (Watch::Client(n), client.as_fd(), PollFlags::POLLIN)),
            ),
            None => {}
        }
        watches
    }

    /// Handles what poll reported for `watch`.
    fn handle(&mut self, watch: Watch, buffer: &mut [u8]) {
        match watch {
            Watch::Listener => self.accept(),
            Watch::Client(n) => self.read_client(n, buffer),
            Watch::Target => self.flush(),
        }
    }

    /// Handles several reports of one poll: pending bytes first, then clients from the
    /// last (so removing one does not shift another still to handle), then new clients.
    pub(crate) fn handle_all(&mut self, mut ready: Vec<Watch>, buffer: &mut [u8]) {
        let rank = |watch: &Watch| match watch {
            Watch::Target => (0, 0),
            Watch::Client(n) => (1, usize::MAX - n),
            Watch::Listener => (2, 0),
        };
        ready.sort_by_key(rank);
        for watch in ready {
            self.handle(watch, buffer);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((client, _)) => {
                    // Stdin is closed for good: the client's bytes have nowhere to go.
                    if self.closed {
                        continue;
                    }
                    if client.set_nonblocking(true).is_ok() {
                        self.clients.push(client);
                    }
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) => {
                    eprintln!("berth supervise: accepting on attach.sock: {err}");
                    return;
                }
            }
        }
    }

    fn read_client(&mut self, n: usize, buffer: &mut [u8]) {
        let Some(client) = self.clients.get_mut(n) else {
            return;
        };
        let len = buffer.len().min(CHUNK);
        let chunk = &mut buffer[..len];
        match client.read(chunk) {
            Ok(0) => self.hang_up(n),
            Ok(read) => {
                self.pending.extend_from_slice(&chunk[..read]);
                self.flush();
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => self.hang_up(n),
        }
    }

    /// Client `n`'s input ended.
    fn hang_up(&mut self, n: usize) {
        self.clients.remove(n);
        if !self.terminal {
            self.close();
        }
    }

    /// The container's stdin is closed for good (the write end dropped: the container reads
    /// its end of input once it has read what was pending).
    fn close(&mut self) {
        self.closed = true;
        self.flush_blocking_free();
        self.target = None;
        self.clients.clear();
    }

    /// Writes what is pending without blocking; keeps the rest.
    fn flush(&mut self) {
        let Some(target) = &mut self.target else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match write_without_sigpipe(target, &self.pending) {
                Ok(written) => {
                    self.pending.drain(..written);
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                // The container closed its stdin (EPIPE) or its terminal went away (EIO).
                Err(_) => {
                    self.target = None;
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// On close: hand over what is pending as far as the pipe takes it now. A container that
    /// has not read it by now may lose what does not fit in the pipe's buffer; the end of
    /// input comes after what was written.
    fn flush_blocking_free(&mut self) {
        self.flush();
        if !self.pending.is_empty() {
            eprintln!(
                "berth supervise: stdin closed with {} bytes the container did not read",
                self.pending.len()
            );
            self.pending.clear();
        }
    }
}

/// `write(2)` with `SIGPIPE` blocked around it, and a pending one consumed, so a container
/// that closed its stdin yields `EPIPE` here instead of killing the supervisor. `SIGPIPE`
/// stays at its default disposition otherwise: containers inherit dispositions and masks.
fn write_without_sigpipe(target: &mut File, bytes: &[u8]) -> std::io::Result<usize> {
    let mut sigpipe = SigSet::empty();
    sigpipe.add(Signal::SIGPIPE);
    let mut previous = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&sigpipe), Some(&mut previous))?;
    let result = target.write(bytes);
    if result
        .as_ref()
        .is_err_and(|err| err.raw_os_error() == Some(libc::EPIPE))
    {
        consume_pending_sigpipe();
    }
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)?;
    result
}

/// Takes a pending `SIGPIPE` off this thread, so unblocking does not deliver it.
fn consume_pending_sigpipe() {
    let mut sigpipe = SigSet::empty();
    sigpipe.add(Signal::SIGPIPE);
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait reads the set and the timeout, both valid for the call, and
    // writes no siginfo (null). A zero timeout makes it return at once.
    unsafe {
        libc::sigtimedwait(sigpipe.as_ref(), std::ptr::null_mut(), &timeout);
    }
}
