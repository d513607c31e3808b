//! The `berth` command: parses arguments, wires the library crates together, and maps their
//! errors to messages and exit codes. Logic lives in the library crates.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: a minimal container OS userland.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    /// Directory holding berth's persistent state (images, containers, store data).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,

    /// Log filter, as RUST_LOG (e.g. `info`, `berth_image=debug`).
    #[arg(long, global = true, env = "BERTH_LOG", default_value = "warn")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage images: import, pull, list, inspect, remove, prune.
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// Run the etcd v3-compatible store on its own (etcd's flag names).
    Store(cmd::store::StoreArgs),
    /// Run the host daemon (for now: the embedded store, in the foreground).
    Daemon(cmd::daemon::DaemonArgs),
}

/// Global settings every subcommand may need.
#[derive(Debug)]
pub struct Globals {
    pub root: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        .init();
    let globals = Globals { root: cli.root };
    let result = match cli.command {
        Command::Image(command) => cmd::image::run(&globals, command),
        Command::Store(args) => cmd::store::run(&globals, args),
        Command::Daemon(args) => cmd::daemon::run(&globals, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
