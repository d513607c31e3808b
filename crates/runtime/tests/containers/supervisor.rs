//! The per-container supervisor, spawned as its own process: it outlives its spawner, logs the
//! container's output as docker's json-file records, records exits, restarts by policy and
//! stops on request, leaving nothing behind.
//!
//! The supervisor runs from this test binary (`supervisor_helper`), as it runs from `berth
//! supervise` in production: both call `berth_runtime::supervisor::supervise`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::supervisor::{
    ContainerState, LogLimits, Request, Response, StateDir, Status, SupervisorConfig,
    spawn_supervisor_command,
};
use berth_runtime::{RestartPolicy, RunOptions};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getsid};

use crate::sandbox::{Sandbox, options};

/// The environment variable that tells `supervisor_helper` which state directory to use.
const STATE_DIR_ENV: &str = "BERTH_TEST_SUPERVISOR_STATE_DIR";
/// The longest any wait of these tests takes before it fails.
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// How long a control request may take (a `stop` is answered when the container is gone).
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// Not a test of its own: the supervisor's entry point when a test spawns it.
#[test]
#[ignore = "run by the supervisor tests"]
fn supervisor_helper() {
    let dir = std::env::var_os(STATE_DIR_ENV).expect("state dir in the environment");
    berth_runtime::supervisor::supervise(Path::new(&dir)).expect("supervise");
}

/// A container under a supervisor of its own, in a sandbox.
struct Supervised {
    sandbox: Sandbox,
    dir: StateDir,
}

impl Supervised {
    /// Writes the bundle of `cmd` and the supervisor's config; spawns nothing yet.
    fn prepare(run: RunOptions, cmd: &[&str], restart: RestartPolicy, log: LogLimits) -> Self {
        let sandbox = Sandbox::new();
        sandbox.bundle(run, cmd).expect("bundle");
        let dir = StateDir::new(&sandbox.dir.path().join("container"));
        std::fs::create_dir_all(dir.path()).expect("state dir");
        SupervisorConfig {
            id: sandbox.id.clone(),
            bundle: sandbox.bundle_dir(),
            runtime_root: sandbox.dir.path().join("state"),
            restart,
            log,
            stop_timeout_secs: 1,
            stdin: false,
        }
        .write(&dir)
        .expect("config");
        Self { sandbox, dir }
    }

    /// Turns on `-i`: the container's stdin comes from `attach.sock`.
    fn with_stdin(self) -> Self {
        let mut config = SupervisorConfig::load(&self.dir).expect("config");
        config.stdin = true;
        config.write(&self.dir).expect("config");
        self
    }

    /// Connects to `attach.sock`, sends `input`, then ends the input.
    fn send_stdin(&self, input: &[u8]) {
        let mut client =
            std::os::unix::net::UnixStream::connect(self.dir.attach_socket()).expect("attach");
        client.write_all(input).expect("stdin");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("end of input");
    }

    fn start(cmd: &[&str]) -> Self {
        let supervised = Self::prepare(options(), cmd, RestartPolicy::No, LogLimits::default());
        supervised.spawn();
        supervised
    }

    /// The command that runs the supervisor from this test binary.
    fn helper_command(&self) -> Command {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args(["--exact", "supervisor::supervisor_helper", "--ignored"])
            .env(STATE_DIR_ENV, self.dir.path());
        command
    }

    fn spawn(&self) -> Pid {
        spawn_supervisor_command(self.helper_command(), self.dir.path()).expect("spawn")
    }

    fn state(&self) -> ContainerState {
        ContainerState::read(&self.dir.state()).expect("state.json")
    }

    fn supervisor_pid(&self) -> Pid {
        Pid::from_raw(self.state().supervisor_pid)
    }

    fn request(&self, request: &Request) -> ContainerState {
        match berth_runtime::supervisor::request(self.dir.path(), request, REQUEST_LIMIT) {
            Ok(Response::State(state)) => state,
            other => panic!("{request:?}: {other:?}"),
        }
    }

    /// Every record of container.log, parsed.
    fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.log()).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
            .collect()
    }

    /// The `log` fields of the records from `stream`.
    fn logged(&self, stream: &str) -> Vec<String> {
        self.records()
            .iter()
            .filter(|record| record["stream"] == stream)
            .map(|record| record["log"].as_str().expect("log text").to_owned())
            .collect()
    }

    /// Waits until the supervisor has exited and the container is done for good.
    fn wait_until_done(&self) -> ContainerState {
        let pid = self.supervisor_pid();
        wait_for("the supervisor to exit", || !alive(pid));
        let state = self.state();
        assert_eq!(state.status, Status::Exited, "{state:?}");
        state
    }

    /// Nothing of the container is left: no supervisor, socket, cgroup, mount or state.
    fn assert_nothing_left(&self) {
        assert!(!self.dir.control_socket().exists());
        assert!(!self.dir.pid_file().exists());
        self.sandbox.assert_nothing_left();
    }
}

impl Drop for Supervised {
    /// A supervisor a failed test left running is killed (the pid file is gone once it has
    /// exited); the sandbox then deletes the container.
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.pid_file())
            .ok()
            .and_then(|text| text.trim().parse().ok());
        if let Some(pid) = pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn supervised_container_keeps_running_and_logging_after_its_spawner_is_killed() {
    let supervised = Supervised::prepare(
        options(),
        &[
            "sh",
            "-c",
            "i=0; while true; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.05; done",
        ],
        RestartPolicy::No,
        LogLimits::default(),
    );
    // The spawner (think: the daemon) spawns the supervisor, then lives on in its own
    // process group until that whole group is killed with SIGKILL.
    let helper = supervised.helper_command();
    let mut spawner = Command::new("sh")
        .args([
            "-c",
            "\"$0\" \"$@\" >/dev/null 2>&1 && echo spawned && exec sleep 60",
        ])
        .arg(helper.get_program())
        .args(helper.get_args())
        .envs(helper.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawner");
    let mut said = String::new();
    BufReader::new(spawner.stdout.take().expect("spawner stdout"))
        .read_line(&mut said)
        .expect("spawner output");
    assert_eq!(said, "spawned\n", "the supervisor started");
    let supervisor = supervised.supervisor_pid();
    let spawner_pid = Pid::from_raw(spawner.id().cast_signed());
    assert_ne!(getsid(Some(supervisor)), getsid(Some(spawner_pid)));

    killpg(spawner_pid, Signal::SIGKILL).expect("kill the spawner's group");
    spawner.wait().expect("reap the spawner");
    let logged_at_kill = supervised.records().len();
    wait_for("output written after the kill", || {
        supervised.records().len() >= logged_at_kill + 20
    });
    assert!(alive(supervisor));
    let state = supervised.request(&Request::Status);
    assert_eq!(state.status, Status::Running);
    assert!(state.pid.is_some_and(|pid| alive(Pid::from_raw(pid))));

    for record in supervised.records() {
        let stream = record["stream"].as_str().expect("stream");
        let log = record["log"].as_str().expect("log");
        let time = record["time"].as_str().expect("time");
        let number = log.split_whitespace().nth(1).unwrap_or_default();
        let expected = if stream == "stdout" { "out" } else { "err" };
        assert_eq!(log, format!("{expected} {number}\n"), "{record}");
        chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339 time");
    }
    assert_eq!(supervised.logged("stdout")[0], "out 0\n");
    assert_eq!(supervised.logged("stderr")[0], "err 0\n");

    let stopped = supervised.request(&Request::Stop { timeout_secs: 1 });
    assert_eq!(stopped.status, Status::Exited);
    assert!(stopped.stopped_by_user);
    supervised.wait_until_done();
    supervised.assert_nothing_left();
}

#[test]
fn exit_code_and_output_are_recorded_when_the_container_exits() {
    let supervised = Supervised::start(&["sh", "-c", "echo bye; echo oops >&2; exit 3"]);
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(3));
    assert!(!state.oom_killed);
    assert_eq!(state.restart_count, 0);
    assert!(!state.stopped_by_user);
    let started = state.started_at.expect("StartedAt");
    let finished = state.finished_at.expect("FinishedAt");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&started).expect("StartedAt")
            <= chrono::DateTime::parse_from_rfc3339(&finished).expect("FinishedAt")
    );
    assert_eq!(supervised.logged("stdout"), ["bye\n"]);
    assert_eq!(supervised.logged("stderr"), ["oops\n"]);
    supervised.assert_nothing_left();
}

#[test]
fn oom_kill_is_recorded_by_the_supervisor() {
    let limited = RunOptions {
        memory: Some("32m".parse().expect("memory")),
        ..options()
    };
    let supervised = Supervised::prepare(
        limited,
        &["awk", "BEGIN { s = \"x\"; while (1) s = s s }"],
        RestartPolicy::No,
        LogLimits::default(),
    );
    supervised.spawn();
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(137));
    assert!(state.oom_killed);
    supervised.assert_nothing_left();
}

#[test]
fn on_failure_3_restarts_a_failing_container_exactly_3_times() {
    let supervised = Supervised::prepare(
        options(),
        &["sh", "-c", "echo attempt; exit 1"],
        "on-failure:3".parse().expect("policy"),
        LogLimits::default(),
    );
    supervised.spawn();
    let state = supervised.wait_until_done();
    assert_eq!(state.restart_count, 3);
    assert_eq!(state.exit_code, Some(1));
    assert_eq!(supervised.logged("stdout"), ["attempt\n"; 4]);
    supervised.assert_nothing_left();
}

#[test]
fn log_rotation_keeps_at_most_max_file_files_of_about_max_size() {
    let limits = LogLimits {
        max_size: 4096,
        max_file: 3,
    };
    let supervised = Supervised::prepare(
        options(),
        &["sh", "-c", "seq 1 1000"],
        RestartPolicy::No,
        limits,
    );
    supervised.spawn();
    supervised.wait_until_done();
    let files: Vec<PathBuf> = [
        supervised.dir.log(),
        supervised.dir.rotated_log(1),
        supervised.dir.rotated_log(2),
    ]
    .into();
    for file in &files {
        let size = std::fs::metadata(file).expect("log file kept").len();
        assert!(
            size <= limits.max_size,
            "{} has {size} bytes",
            file.display()
        );
    }
    for rotated in &files[1..] {
        let size = std::fs::metadata(rotated).expect("rotated log").len();
        assert!(
            size > limits.max_size / 2,
            "{} has {size} bytes",
            rotated.display()
        );
    }
    assert!(!supervised.dir.rotated_log(3).exists());
    let newest = supervised.logged("stdout");
    assert_eq!(newest.last().map(String::as_str), Some("1000\n"));
    let rotated = std::fs::read_to_string(&files[1]).expect("rotated log");
    let first: serde_json::Value =
        serde_json::from_str(rotated.lines().next().expect("a record")).expect("JSON");
    let before: u32 = first["log"]
        .as_str()
        .expect("log")
        .trim()
        .parse()
        .expect("number");
    assert!(before < 1000);
    supervised.assert_nothing_left();
}

#[test]
fn stop_kills_a_container_that_ignores_sigterm_after_the_timeout() {
    let supervised = Supervised::start(&[
        "sh",
        "-c",
        "trap '' TERM; trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.05; done",
    ]);
    wait_for("the traps", || {
        supervised.logged("stdout").contains(&"ready\n".to_owned())
    });
    supervised.request(&Request::Kill {
        signal: "USR1".into(),
    });
    wait_for("the USR1 trap", || {
        supervised
            .logged("stdout")
            .contains(&"got-usr1\n".to_owned())
    });
    let asked = Instant::now();
    let stopped = supervised.request(&Request::Stop { timeout_secs: 1 });
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "SIGTERM was ignored: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(stopped.exit_code, Some(137));
    assert!(stopped.stopped_by_user);
    supervised.wait_until_done();
    supervised.assert_nothing_left();
}

#[test]
fn a_container_that_cannot_start_is_an_error_of_spawn_and_leaves_nothing() {
    let supervised = Supervised::prepare(
        options(),
        &["/no/such/command"],
        RestartPolicy::Always,
        LogLimits::default(),
    );
    let err = spawn_supervisor_command(supervised.helper_command(), supervised.dir.path())
        .expect_err("the command does not exist");
    assert!(err.to_string().contains("/no/such/command"), "{err}");
    let state = supervised.state();
    assert_eq!(state.status, Status::Exited);
    assert!(
        state
            .error
            .as_deref()
            .is_some_and(|error| error.contains("/no/such/command")),
        "{state:?}"
    );
    supervised.assert_nothing_left();
}

#[test]
fn always_restarts_a_container_that_exits_until_it_is_stopped() {
    let supervised = Supervised::prepare(
        options(),
        &["sh", "-c", "echo run; exit 0"],
        RestartPolicy::Always,
        LogLimits::default(),
    );
    supervised.spawn();
    wait_for("three restarts", || supervised.state().restart_count >= 3);
    let stopped = supervised.request(&Request::Stop { timeout_secs: 1 });
    assert_eq!(stopped.status, Status::Exited);
    assert!(stopped.stopped_by_user);
    let state = supervised.wait_until_done();
    assert!(state.restart_count >= 3);
    // Every run printed once, except perhaps the last if the stop killed it first.
    let runs = usize::try_from(state.restart_count).expect("count") + 1;
    let printed = supervised.logged("stdout").len();
    assert!(printed == runs || (printed + 1 == runs && state.exit_code == Some(137)));
    supervised.assert_nothing_left();
}

#[test]
fn sigterm_to_the_supervisor_stops_its_container_for_good() {
    let supervised = Supervised::prepare(
        options(),
        &["sleep", "30"],
        RestartPolicy::Always,
        LogLimits::default(),
    );
    let supervisor = supervised.spawn();
    kill(supervisor, Signal::SIGTERM).expect("SIGTERM to the supervisor");
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(137), "sleep as pid 1 ignores SIGTERM");
    assert!(state.stopped_by_user);
    assert_eq!(state.restart_count, 0);
    supervised.assert_nothing_left();
}

#[test]
fn a_container_with_a_terminal_has_its_terminal_output_logged_as_stdout() {
    let with_tty = RunOptions {
        tty: true,
        ..options()
    };
    let supervised = Supervised::prepare(
        with_tty,
        &["sh", "-c", "tty; echo TERM=$TERM; echo to-stderr >&2"],
        RestartPolicy::No,
        LogLimits::default(),
    );
    supervised.spawn();
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(0));
    assert_eq!(
        supervised.logged("stdout"),
        ["/dev/pts/0\r\n", "TERM=xterm\r\n", "to-stderr\r\n"]
    );
    assert!(!supervised.dir.console_socket().exists());
    supervised.assert_nothing_left();
}

#[test]
fn an_exited_container_starts_again_under_a_new_supervisor_and_keeps_its_log() {
    let supervised = Supervised::start(&["sh", "-c", "echo run"]);
    let first = supervised.wait_until_done();
    supervised.spawn();
    let second = supervised.wait_until_done();
    assert_ne!(first.supervisor_pid, second.supervisor_pid);
    assert_eq!(second.exit_code, Some(0));
    assert_eq!(supervised.logged("stdout"), ["run\n", "run\n"]);
    supervised.assert_nothing_left();
}

#[test]
fn stdin_from_attach_sock_reaches_the_container_and_its_end_closes_stdin() {
    let supervised = Supervised::prepare(
        options(),
        &[
            "sh",
            "-c",
            "while read line; do echo \"got $line\"; done; echo eof",
        ],
        RestartPolicy::No,
        LogLimits::default(),
    )
    .with_stdin();
    supervised.spawn();
    // 200 KiB: more than a pipe holds, so the supervisor has to wait for the container.
    let lines: String = (0..20_000).map(|n| format!("{n:09}\n")).collect();
    supervised.send_stdin(lines.as_bytes());
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(0), "{state:?}");
    let logged = supervised.logged("stdout");
    assert_eq!(logged.len(), 20_001);
    assert_eq!(logged[0], "got 000000000\n");
    assert_eq!(logged[19_999], "got 000019999\n");
    assert_eq!(logged[20_000], "eof\n");
    assert!(!supervised.dir.attach_socket().exists());
    supervised.assert_nothing_left();
}

#[test]
fn a_container_without_stdin_reads_end_of_input_at_once() {
    let supervised = Supervised::start(&["sh", "-c", "cat; echo done"]);
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(0));
    assert_eq!(supervised.logged("stdout"), ["done\n"]);
    assert!(!supervised.dir.attach_socket().exists());
}

#[test]
fn stdin_reaches_a_container_with_a_terminal_through_its_terminal() {
    let with_tty = RunOptions {
        tty: true,
        ..options()
    };
    let supervised = Supervised::prepare(
        with_tty,
        &["sh", "-c", "read line; echo \"got $line\""],
        RestartPolicy::No,
        LogLimits::default(),
    )
    .with_stdin();
    supervised.spawn();
    supervised.send_stdin(b"hello\n");
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(0), "{state:?}");
    // The terminal echoes the input, then the shell answers.
    assert_eq!(supervised.logged("stdout"), ["hello\r\n", "got hello\r\n"]);
    supervised.assert_nothing_left();
}

#[test]
fn a_container_that_closes_its_stdin_does_not_take_the_supervisor_down() {
    let supervised = Supervised::prepare(
        options(),
        &[
            "sh",
            "-c",
            "head -c 1 >/dev/null; exec 0<&-; sleep 0.3; echo alive",
        ],
        RestartPolicy::No,
        LogLimits::default(),
    )
    .with_stdin();
    supervised.spawn();
    let socket = supervised.dir.attach_socket();
    // Far more than the container reads; the writer stops when the supervisor hangs up.
    let writer = std::thread::spawn(move || {
        let mut client = std::os::unix::net::UnixStream::connect(socket).expect("attach");
        let _ = client.write_all(&vec![b'x'; 4 << 20]);
    });
    let state = supervised.wait_until_done();
    assert_eq!(state.exit_code, Some(0), "{state:?}");
    assert_eq!(supervised.logged("stdout"), ["alive\n"]);
    writer.join().expect("writer");
    supervised.assert_nothing_left();
}
