//! The exec shim: a single-threaded child of the daemon (`berth exec-shim`) that runs one
//! process in a running container through libcontainer with the shim's own stdio, waits for
//! it and exits with its code. The daemon pumps its pipes to and from the client's frames;
//! it never calls libcontainer's exec itself (libcontainer clones its caller; ADR 10).

use std::path::Path;

use berth_client::api::ExecRequest;
use berth_runtime::supervisor::{StateDir, SupervisorConfig};
use berth_runtime::{
    ContainerDriver, EnvVar, ExecOptions, LibcontainerDriver, Stdio, UserDb, UserSpec,
};

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
    let pid = driver
        .exec(&config.id, &options, Stdio::default())
        .map_err(|e| e.to_string())?;
    driver.wait_exec(&config.id, pid).map_err(|e| e.to_string())
}
