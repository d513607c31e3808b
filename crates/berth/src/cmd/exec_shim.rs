//! `berth exec-shim --state-dir DIR --request JSON` (hidden): runs one process in the
//! running container of DIR with this process's stdio and exits with its code. The daemon
//! starts it for `POST /v1/containers/{id}/exec`, because libcontainer clones its caller and
//! the daemon is multi-threaded (docs/adr/0014).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `berth exec-shim`.
#[derive(Debug, clap::Args)]
pub struct ExecShimArgs {
    /// The container's state directory.
    #[arg(long)]
    state_dir: PathBuf,
    /// The exec request, as the JSON of the API's ExecRequest.
    #[arg(long)]
    request: String,
}

pub fn run(args: &ExecShimArgs) -> ExitCode {
    let code = berth_agent::exec_shim::run(&args.state_dir, &args.request);
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}
