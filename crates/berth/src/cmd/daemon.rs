//! `berth daemon`: the host daemon. For now it runs the embedded store in the foreground; the
//! container agent joins it in a later issue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_store::Config;
use clap::Args;

use crate::Globals;
use crate::cmd::store;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Client URL of the embedded store.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    store_listen: String,
    /// Directory of the embedded store's data (default: <--root>/store).
    #[arg(long)]
    store_data_dir: Option<PathBuf>,
}

/// The embedded store's configuration, from the daemon's flags.
fn store_config(globals: &Globals, args: &DaemonArgs) -> Config {
    let data_dir = args
        .store_data_dir
        .clone()
        .unwrap_or_else(|| store::default_data_dir(globals));
    let mut config = Config::new(data_dir);
    config.listen_client_urls = vec![args.store_listen.clone()];
    config.advertise_client_urls = vec![args.store_listen.clone()];
    config
}

pub fn run(globals: &Globals, args: DaemonArgs) -> anyhow::Result<ExitCode> {
    let config = store_config(globals, &args);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(store::serve_until_signal(config))?;
    Ok(ExitCode::SUCCESS)
}
