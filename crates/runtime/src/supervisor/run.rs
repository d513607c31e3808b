//! The supervisor's single-threaded loop: `poll(2)` over the container's output pipes, a
//! pidfd of its init, the control socket and the stop-signal pipe, with the deadlines of a
//! pending SIGKILL and of a restart as the poll timeout.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::socket::{MsgFlags, send};
use oci_spec::runtime::Spec;

use super::SupervisorError;
use super::config::{StateDir, SupervisorConfig};
use super::control::{MAX_REQUEST, Request, Response, parse_signal};
use super::input::{Input, Watch};
use super::log::JsonLog;
use super::output::{
    Output, Pumped, READ_BUFFER, WindowSize, Wiring, now_rfc3339, pump, resize_terminal,
};
use super::process::{pidfd_open, stop_signal_pipe};
use super::state::{ContainerState, Status};
use crate::driver::ContainerDriver;
use crate::libcontainer_driver::LibcontainerDriver;
use crate::restart::{ExitEvent, RestartDecision, RestartTracker};

/// How long a control client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The current run of the container.
struct Run {
    pidfd: OwnedFd,
    outputs: [Option<Output>; 2],
    started: Instant,
}

/// Everything the supervisor owns.
pub(crate) struct Supervisor {
    dir: StateDir,
    config: SupervisorConfig,
    driver: LibcontainerDriver,
    tracker: RestartTracker,
    state: ContainerState,
    log: JsonLog,
    listener: UnixListener,
    stop_signals: File,
    run: Option<Run>,
    restart_at: Option<Instant>,
    /// When a pending stop sends SIGKILL (None once sent, or with no stop pending).
    kill_at: Option<Instant>,
    /// The user stopped or signalled this run.
    user_stopped: bool,
    /// `stop` clients, answered when the container is done.
    waiters: Vec<UnixStream>,
    buffer: Vec<u8>,
    /// The bundle asks for a terminal (`process.terminal`).
    terminal: bool,
    /// `attach.sock` and the container's stdin, with `-i`.
    input: Option<Input>,
}

/// Sends one answer line, never raising SIGPIPE (the client may be gone).
fn answer(stream: &UnixStream, response: &Response) {
    let Ok(mut line) = serde_json::to_vec(response) else {
        return;
    };
    line.push(b'\n');
    let mut sent = 0;
    while sent < line.len() {
        match send(stream.as_raw_fd(), &line[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

impl Supervisor {
    /// Opens the log and control socket and starts the container's first run.
    pub(crate) fn start(dir: &StateDir, config: SupervisorConfig) -> Result<Self, SupervisorError> {
        let io = |action: &'static str| {
            move |err: std::io::Error| SupervisorError::Io {
                dir: dir.path().to_owned(),
                action,
                reason: err.to_string(),
            }
        };
        let driver =
            LibcontainerDriver::new(&config.runtime_root).map_err(|err| SupervisorError::Io {
                dir: dir.path().to_owned(),
                action: "prepare the runtime state root",
                reason: err.to_string(),
            })?;
        let log = JsonLog::open(dir, config.log).map_err(io("open container.log"))?;
        let socket = dir.control_socket();
        match std::fs::remove_file(&socket) {
            Err(err) if err.kind() != ErrorKind::NotFound => {
                return Err(io("remove a stale control.sock")(err));
            }
            _ => {}
        }
        let listener = UnixListener::bind(&socket).map_err(io("listen on control.sock"))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| listener.set_nonblocking(true))
            .map_err(io("set up control.sock"))?;
        let bundle_config = config.bundle.join("config.json");
        let terminal = Spec::load(&bundle_config)
            .map_err(|err| SupervisorError::Config {
                path: bundle_config,
                reason: err.to_string(),
            })?
            .process()
            .as_ref()
            .and_then(|process| process.terminal())
            .unwrap_or(false);
        let stop_signals = stop_signal_pipe().map_err(|err| io("handle SIGTERM")(err.into()))?;
        let input = if config.stdin {
            Some(Input::bind(&dir.attach_socket(), terminal).map_err(io("listen on attach.sock"))?)
        } else {
            None
        };
        let mut supervisor = Self {
            dir: dir.clone(),
            config,
            driver,
            tracker: RestartTracker::default(),
            state: ContainerState {
                status: Status::Running,
                pid: None,
                supervisor_pid: std::process::id().cast_signed(),
                started_at: None,
                finished_at: None,
                exit_code: None,
                oom_killed: false,
                restart_count: 0,
                stopped_by_user: false,
                error: None,
            },
            log,
            listener,
            stop_signals,
            run: None,
            restart_at: None,
            kill_at: None,
            user_stopped: false,
            waiters: Vec::new(),
            buffer: vec![0; READ_BUFFER],
            terminal,
            input,
        };
        if let Err(err) = supervisor.start_run() {
            supervisor.fail(&err);
            supervisor.finish();
            return Err(err);
        }
        Ok(supervisor)
    }

    /// Creates and starts the container with fresh output pipes.
    fn start_run(&mut self) -> Result<(), SupervisorError> {
        let io = |action: &'static str| {
            let dir = self.dir.path().to_owned();
            move |reason: String| SupervisorError::Io {
                dir,
                action,
                reason,
            }
        };
        let (wiring, mut stdio) = Wiring::prepare(self.terminal, &self.dir.console_socket())
            .map_err(|err| io("wire the container's output")(err.to_string()))?;
        if let Some(input) = &mut self.input
            && !self.terminal
        {
            stdio.stdin = Some(
                input
                    .pipe_for_run()
                    .map_err(|err| io("wire the container's stdin")(err.to_string()))?,
            );
        }
        let id = self.config.id.clone();
        let pid = self.driver.create(&id, &self.config.bundle, stdio)?;
        let started = wiring
            .outputs()
            .and_then(|outputs| Ok((outputs, pidfd_open(pid)?)))
            .map_err(|err| io("watch the container")(err.to_string()))
            .and_then(|watched| {
                self.driver.start(&id)?;
                Ok(watched)
            });
        let (outputs, pidfd) = match started {
            Ok(watched) => watched,
            Err(err) => {
                let _ = self.driver.delete(&id);
                if let Some(input) = &mut self.input {
                    input.end_run();
                }
                return Err(err);
            }
        };
        if let Some(input) = &mut self.input
            && self.terminal
            && let Some(master) = &outputs[0]
            && let Err(err) = input.terminal_for_run(master.fd())
        {
            eprintln!("berth supervise: the terminal takes no input: {err}");
        }
        self.run = Some(Run {
            pidfd,
            outputs,
            started: Instant::now(),
        });
        self.user_stopped = false;
        // Counted when a restart happens, so a stop during the backoff does not count it.
        self.state.restart_count = self.tracker.restart_count();
        self.state.status = Status::Running;
        self.state.pid = Some(pid);
        self.state.started_at = Some(now_rfc3339());
        self.state.exit_code = None;
        self.state.oom_killed = false;
        self.state.error = None;
        self.save();
        Ok(())
    }

    /// Records that the container could not be (re)started; it stays exited.
    fn fail(&mut self, err: &SupervisorError) {
        eprintln!("berth supervise: {err}");
        self.state.status = Status::Exited;
        self.state.pid = None;
        self.state.error = Some(err.to_string());
        self.restart_at = None;
        self.save();
    }

    fn save(&self) {
        if let Err(err) = self.state.write(&self.dir.state()) {
            eprintln!("berth supervise: {err}");
        }
    }

    /// Supervises until the container is done for good, then cleans up.
    pub(crate) fn run(mut self) {
        while self.run.is_some() || self.restart_at.is_some() {
            self.wait_and_handle();
        }
        self.finish();
    }

    /// The next deadline: a pending SIGKILL or restart.
    fn poll_timeout(&self) -> PollTimeout {
        let Some(deadline) = [self.kill_at, self.restart_at].into_iter().flatten().min() else {
            return PollTimeout::NONE;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so the loop does not spin just before the deadline.
        let millis = left.as_nanos().div_ceil(1_000_000);
        PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
    }

    /// One turn of the loop: poll, then handle what is ready and what is due.
    fn wait_and_handle(&mut self) {
        let ready = |fd: &PollFd| {
            fd.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let timeout = self.poll_timeout();
        let (client, stop_signal, exited, outputs, inputs) = {
            let mut fds = vec![
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stop_signals.as_fd(), PollFlags::POLLIN),
            ];
            let mut pidfd_at = None;
            let mut slots = Vec::with_capacity(2);
            if let Some(run) = &self.run {
                pidfd_at = Some(fds.len());
                fds.push(PollFd::new(run.pidfd.as_fd(), PollFlags::POLLIN));
                for (slot, output) in run.outputs.iter().enumerate() {
                    if let Some(output) = output {
                        slots.push((slot, fds.len()));
                        fds.push(PollFd::new(output.fd(), PollFlags::POLLIN));
                    }
                }
            }
            let mut watches = Vec::new();
            if let Some(input) = &self.input {
                for (watch, fd, flags) in input.watches() {
                    watches.push((watch, fds.len()));
                    fds.push(PollFd::new(fd, flags));
                }
            }
            if let Err(err) = poll(&mut fds, timeout)
                && err != nix::errno::Errno::EINTR
            {
                eprintln!("berth supervise: poll: {err}");
            }
            let writable = |fd: &PollFd| {
                fd.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLOUT | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            let outputs: Vec<usize> = slots
                .iter()
                .filter(|(_, at)| ready(&fds[*at]))
                .map(|(slot, _)| *slot)
                .collect();
            let inputs: Vec<Watch> = watches
                .iter()
                .filter(|(watch, at)| match watch {
                    Watch::Target => writable(&fds[*at]),
                    _ => ready(&fds[*at]),
                })
                .map(|(watch, _)| *watch)
                .collect();
            (
                ready(&fds[0]),
                ready(&fds[1]),
                pidfd_at.is_some_and(|at| ready(&fds[at])),
                outputs,
                inputs,
            )
        };
        if let Some(input) = &mut self.input {
            input.handle_all(inputs, &mut self.buffer);
        }
        for slot in outputs {
            self.pump_output(slot);
        }
        if exited {
            self.on_exit();
        }
        if stop_signal {
            let mut drained = [0u8; 64];
            while matches!(self.stop_signals.read(&mut drained), Ok(1..)) {}
            self.stop(Duration::from_secs(self.config.stop_timeout_secs));
        }
        if client {
            self.accept_clients();
        }
        let now = Instant::now();
        if self.kill_at.is_some_and(|at| at <= now) {
            self.kill_at = None;
            if let Err(err) = self.driver.kill(&self.config.id, Signal::SIGKILL) {
                eprintln!("berth supervise: {err}");
            }
        }
        if self.restart_at.is_some_and(|at| at <= now) {
            self.restart_at = None;
            if let Err(err) = self.start_run() {
                self.fail(&err);
            }
        }
    }

    fn pump_output(&mut self, slot: usize) {
        let Some(run) = &mut self.run else { return };
        if let Some(output) = &mut run.outputs[slot]
            && pump(output, &mut self.log, &mut self.buffer) == Pumped::Eof
        {
            run.outputs[slot] = None;
        }
    }

    /// The init exited: record its exit, delete the container, decide about a restart.
    fn on_exit(&mut self) {
        let Some(mut run) = self.run.take() else {
            return;
        };
        if let Some(input) = &mut self.input {
            input.end_run();
        }
        // What the init wrote before it exited is in the pipes now; one pump reads more than a
        // pipe holds, and is bounded while other processes of the container still write.
        for output in run.outputs.iter_mut().flatten() {
            pump(output, &mut self.log, &mut self.buffer);
        }
        let id = self.config.id.clone();
        match self.driver.wait(&id) {
            Ok(exit) => {
                let event = ExitEvent {
                    exit,
                    stopped_by_user: self.user_stopped,
                    ran_for: run.started.elapsed(),
                };
                let decision = self.tracker.on_exit(self.config.restart, event);
                self.state.status = match decision {
                    RestartDecision::Restart { after } => {
                        self.restart_at = Some(Instant::now() + after);
                        Status::Restarting
                    }
                    RestartDecision::Stop => Status::Exited,
                };
                self.state.exit_code = Some(exit.code);
                self.state.oom_killed = exit.oom_killed;
            }
            Err(err) => {
                self.state.status = Status::Exited;
                self.state.error = Some(err.to_string());
            }
        }
        self.state.pid = None;
        self.state.finished_at = Some(now_rfc3339());
        self.state.stopped_by_user = self.user_stopped;
        self.kill_at = None;
        // The exit record reaches the disk before the container is deleted.
        self.save();
        if let Err(err) = self.driver.delete(&id) {
            self.fail(&err.into());
        }
        // Every writer is gone now: read what other processes of the container wrote, up to
        // the end of the pipes (or what is there, should a writer have escaped the delete).
        for output in run.outputs.iter_mut().flatten() {
            while pump(output, &mut self.log, &mut self.buffer) == Pumped::More {}
        }
    }

    /// SIGTERM now, SIGKILL after `timeout`; a pending restart is cancelled instead.
    fn stop(&mut self, timeout: Duration) {
        self.user_stopped = true;
        if self.run.is_none() {
            if self.restart_at.take().is_some() {
                self.state.status = Status::Exited;
                self.state.stopped_by_user = true;
                self.save();
            }
            return;
        }
        if self.kill_at.is_some() {
            return;
        }
        if let Err(err) = self.driver.kill(&self.config.id, Signal::SIGTERM) {
            eprintln!("berth supervise: {err}");
        }
        self.kill_at = Some(Instant::now() + timeout);
    }

    fn accept_clients(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.serve(stream),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) => {
                    eprintln!("berth supervise: accepting on control.sock: {err}");
                    return;
                }
            }
        }
    }

    /// Reads one request from `stream` and answers it (a `stop` once the container is done).
    fn serve(&mut self, stream: UnixStream) {
        let mut line = String::new();
        let read = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
            .and_then(|()| BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line));
        let request = match read {
            Ok(_) => {
                serde_json::from_str::<Request>(&line).map_err(|err| format!("bad request: {err}"))
            }
            Err(err) => Err(format!("cannot read the request: {err}")),
        };
        let response = match request {
            Err(reason) => Response::Error(reason),
            Ok(Request::Status) => Response::State(self.state.clone()),
            Ok(Request::Stop { timeout_secs }) => {
                self.stop(Duration::from_secs(timeout_secs));
                self.waiters.push(stream);
                return;
            }
            Ok(Request::Kill { signal }) => self.kill(&signal),
            Ok(Request::Resize { rows, columns }) => self.resize(WindowSize { rows, columns }),
        };
        answer(&stream, &response);
    }

    fn resize(&self, size: WindowSize) -> Response {
        if !self.terminal {
            return Response::Error(
                "the container has no terminal (it was not run with -t)".into(),
            );
        }
        match self.run.as_ref().and_then(|run| run.outputs[0].as_ref()) {
            None => Response::Error("the container is not running".into()),
            Some(master) => match resize_terminal(master.fd(), size) {
                Ok(()) => Response::State(self.state.clone()),
                Err(err) => Response::Error(format!("cannot resize the terminal: {err}")),
            },
        }
    }

    fn kill(&mut self, signal: &str) -> Response {
        let signal = match parse_signal(signal) {
            Ok(signal) => signal,
            Err(reason) => return Response::Error(reason),
        };
        if self.run.is_none() {
            return Response::Error("the container is not running".into());
        }
        self.user_stopped = true;
        match self.driver.kill(&self.config.id, signal) {
            Ok(()) => Response::State(self.state.clone()),
            Err(err) => Response::Error(err.to_string()),
        }
    }

    /// The container is done for good: answer `stop` clients, remove the socket and pid
    /// file. `state.json` and the logs stay for the daemon.
    fn finish(&mut self) {
        for waiter in self.waiters.drain(..) {
            answer(&waiter, &Response::State(self.state.clone()));
        }
        let _ = std::fs::remove_file(self.dir.control_socket());
        if self.input.take().is_some() {
            let _ = std::fs::remove_file(self.dir.attach_socket());
        }
        let _ = std::fs::remove_file(self.dir.pid_file());
    }
}
