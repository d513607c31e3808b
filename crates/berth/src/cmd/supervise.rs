//! `berth supervise --state-dir DIR` (hidden): starts the supervisor of the container whose
//! state directory is DIR (docs/adr/0013) and prints its pid once the container runs. The
//! daemon runs it through `berth_runtime::supervisor::spawn_supervisor`; users do not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `berth supervise`.
#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// The container's state directory, holding the supervisor's config.json.
    #[arg(long)]
    state_dir: PathBuf,
}

/// Forks the supervisor (which never returns here) and reports its pid.
pub fn run(args: &SuperviseArgs) -> anyhow::Result<ExitCode> {
    let pid = berth_runtime::supervisor::supervise(&args.state_dir)
        .with_context(|| format!("cannot supervise {}", args.state_dir.display()))?;
    println!("{pid}");
    Ok(ExitCode::SUCCESS)
}
