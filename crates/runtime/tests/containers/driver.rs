//! The driver contract, checked against both drivers, and `exec`.

use std::path::Path;

use berth_runtime::{ContainerDriver, DriverError, ExecOptions, ExitStatus, RunOptions, Stdio};
use berth_types::ContainerId;
use nix::sys::signal::Signal;

use crate::sandbox::{Sandbox, options, random_bytes};

/// The [`ContainerDriver`] contract, checked against a real and a fake driver alike: unknown
/// ids are `NotFound` (but deleting one succeeds), an id cannot be created twice, and a killed
/// container exits with 128 + the signal and is deleted for good.
fn check_driver_contract(driver: &dyn ContainerDriver, bundle: &Path, stdio: &dyn Fn() -> Stdio) {
    let id = ContainerId::from_random_bytes(random_bytes());
    let unknown = ContainerId::from_random_bytes(random_bytes());
    let not_found = |result: Result<(), DriverError>| {
        assert!(
            matches!(result, Err(DriverError::NotFound { .. })),
            "{result:?}"
        );
    };
    not_found(driver.start(&unknown));
    not_found(driver.kill(&unknown, Signal::SIGTERM));
    not_found(driver.wait(&unknown).map(drop));
    not_found(driver.stats(&unknown).map(drop));
    driver
        .delete(&unknown)
        .expect("deleting an unknown id succeeds");

    driver.create(&id, bundle, stdio()).expect("create");
    let twice = driver.create(&id, bundle, stdio());
    assert!(
        matches!(twice, Err(DriverError::Create { .. })),
        "{twice:?}"
    );
    driver
        .start(&id)
        .expect("start after a refused second create");
    driver.kill(&id, Signal::SIGKILL).expect("kill");
    assert_eq!(
        driver.wait(&id).expect("wait"),
        ExitStatus {
            code: 137,
            oom_killed: false
        }
    );
    driver.delete(&id).expect("delete");
    driver.delete(&id).expect("delete again");
    not_found(driver.stats(&id).map(drop));
}

#[test]
fn libcontainer_driver_keeps_the_driver_contract() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.bundle(options(), &["sleep", "30"]).expect("bundle");
    check_driver_contract(&sandbox.driver, bundle.dir(), &|| sandbox.stdio());
    sandbox.assert_nothing_left();
}

#[test]
fn fake_driver_keeps_the_driver_contract() {
    let fake = berth_runtime::FakeDriver::exiting_with(ExitStatus {
        code: 0,
        oom_killed: false,
    });
    check_driver_contract(&fake, Path::new("/nonexistent"), &Stdio::default);
    assert_eq!(fake.live_containers(), 0);
}

#[test]
fn exec_runs_in_the_container_with_its_user_seccomp_and_namespaces() {
    let sandbox = Sandbox::new();
    let container = RunOptions {
        hostname: Some("exec-test".parse().expect("hostname")),
        user: Some("nobody".parse().expect("user")),
        env: vec!["FROM_RUN=run".parse().expect("env")],
        ..options()
    };
    sandbox.start(container, &["sleep", "30"]);
    let output = sandbox.dir.path().join("exec-output");
    let stdio = || Stdio {
        stdin: None,
        stdout: Some(std::fs::File::create(&output).expect("output").into()),
        stderr: None,
        console_socket: None,
    };
    let script = "hostname; id -u; echo $FROM_RUN $FROM_EXEC; pwd; cat /proc/1/comm; \
                  grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; exit 7";
    let exec = ExecOptions {
        args: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["FROM_EXEC=exec".parse().expect("env")],
        workdir: Some("/tmp".parse().expect("workdir")),
        user: None,
        tty: false,
    };
    let pid = sandbox
        .driver
        .exec(&sandbox.id, &exec, stdio())
        .expect("exec");
    assert_eq!(sandbox.driver.wait_exec(&sandbox.id, pid).expect("wait"), 7);
    assert_eq!(
        std::fs::read_to_string(&output).expect("exec output"),
        "exec-test\n65534\nrun exec\n/tmp\nsleep\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    );

    let missing = ExecOptions {
        args: vec!["/no/such/command".into()],
        ..ExecOptions::default()
    };
    let err = sandbox
        .driver
        .exec(&sandbox.id, &missing, stdio())
        .expect_err("no such command");
    assert!(matches!(err, DriverError::Exec { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/command"), "{err}");
    sandbox.assert_no_zombie_children();
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}

#[test]
fn exec_with_a_terminal_hands_its_master_over_and_keeps_user_env_and_seccomp() {
    use std::io::Read;
    let sandbox = Sandbox::new();
    let container = RunOptions {
        user: Some("nobody".parse().expect("user")),
        env: vec!["FROM_RUN=run".parse().expect("env")],
        ..options()
    };
    sandbox.start(container, &["sleep", "30"]);
    let console = berth_runtime::supervisor::ConsoleSocket::bind(
        &sandbox.dir.path().join("exec-console.sock"),
    )
    .expect("console socket");
    let exec = ExecOptions {
        args: vec![
            "sh".into(),
            "-c".into(),
            "tty; id -u; echo $FROM_RUN $FROM_EXEC; pwd; grep Seccomp: /proc/self/status; exit 4"
                .into(),
        ],
        env: vec!["FROM_EXEC=exec".parse().expect("env")],
        workdir: Some("/tmp".parse().expect("workdir")),
        user: None,
        tty: true,
    };
    let stdio = Stdio {
        console_socket: Some(console.path().to_owned()),
        ..Stdio::default()
    };
    let pid = sandbox
        .driver
        .exec(&sandbox.id, &exec, stdio)
        .expect("exec");
    let mut master = std::fs::File::from(console.receive_master().expect("terminal"));
    let mut output = Vec::new();
    let mut buffer = [0u8; 4096];
    // The master reads EIO once the process's side is closed.
    while let Ok(n @ 1..) = master.read(&mut buffer) {
        output.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(sandbox.driver.wait_exec(&sandbox.id, pid).expect("wait"), 4);
    let output = String::from_utf8_lossy(&output);
    let lines: Vec<&str> = output.split("\r\n").collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{output:?}");
    assert_eq!(
        lines[1..5],
        ["65534", "run exec", "/tmp", "Seccomp:\t2"],
        "{output:?}"
    );
    sandbox.driver.delete(&sandbox.id).expect("delete");
    sandbox.assert_nothing_left();
}
