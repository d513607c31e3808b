//! The container commands (`berth run`, `ps`, `logs`, `exec`, …), with docker's flag names
//! and output, as calls on the daemon's API through [`berth_client::Client`].
//!
//! Flags are parsed into berth-runtime's validated types by clap, so a bad value fails with
//! a message naming the flag before any daemon is contacted; the daemon validates them again.

mod create_args;
mod exec;
mod format;
mod inspect;
mod lifecycle;
mod logs;
mod network;
mod ps;
mod run;
mod stats;
mod stdio;

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use berth_client::{Client, ClientError};
use clap::Subcommand;

use crate::Globals;

pub(crate) use create_args::parse_duration;

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a container from an image.
    // Boxed, as Create: their flags are most of the parsed command line.
    Run(Box<run::RunArgs>),
    /// Create a container without starting it; prints its id.
    Create(Box<create_args::CreateArgs>),
    /// Start one or more stopped containers.
    Start(lifecycle::NamesArgs),
    /// Stop one or more running containers (SIGTERM, then SIGKILL after a timeout).
    Stop(lifecycle::StopArgs),
    /// Restart one or more containers.
    Restart(lifecycle::StopArgs),
    /// Send a signal (default SIGKILL) to one or more running containers.
    Kill(lifecycle::KillArgs),
    /// Remove one or more containers.
    Rm(lifecycle::RmArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Show a container's output.
    Logs(logs::LogsArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Show containers in detail, as a JSON array.
    Inspect(inspect::InspectArgs),
    /// Show containers' resource usage.
    Stats(stats::StatsArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(lifecycle::NamesArgs),
    /// List a container's published ports.
    Port(network::PortArgs),
    /// Manage networks: create, ls, inspect, rm.
    #[command(subcommand)]
    Network(network::NetworkCommand),
}

pub fn run(globals: &Globals, command: ContainerCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(globals.host.clone());
    match command {
        ContainerCommand::Run(args) => Ok(run::run(&client, *args)),
        ContainerCommand::Create(args) => Ok(run::create(&client, *args)),
        ContainerCommand::Start(args) => block_on(lifecycle::start(&client, args)),
        ContainerCommand::Stop(args) => block_on(lifecycle::stop(&client, args)),
        ContainerCommand::Restart(args) => block_on(lifecycle::restart(&client, args)),
        ContainerCommand::Kill(args) => block_on(lifecycle::kill(&client, args)),
        ContainerCommand::Rm(args) => block_on(lifecycle::rm(&client, args)),
        ContainerCommand::Wait(args) => block_on(lifecycle::wait(&client, args)),
        ContainerCommand::Ps(args) => block_on(ps::ps(&client, args)),
        ContainerCommand::Logs(args) => block_on(logs::logs(&client, args)),
        ContainerCommand::Exec(args) => block_on(exec::exec(&client, args)),
        ContainerCommand::Inspect(args) => block_on(inspect::inspect(&client, args)),
        ContainerCommand::Stats(args) => block_on(stats::stats(&client, args)),
        ContainerCommand::Port(args) => block_on(network::port(&client, args)),
        ContainerCommand::Network(command) => block_on(network::network(&client, command)),
    }
}

/// Runs `future` on a single-threaded runtime: a command waits on one daemon at a time.
pub(crate) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// The process exit code for a container's exit code (docker's: the low 8 bits).
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from((code & 0xff) as u8)
}

/// Prints `err` as main does, for commands that go on after one failure.
fn report(err: &anyhow::Error) {
    eprintln!("berth: error: {}", crate::render(err));
}

/// Calls `action` for each of `names` in turn (docker's commands over several objects):
/// each failure is reported and the rest still run. Returns what succeeded, and exit code 1
/// when anything failed.
async fn for_each_name<'a, T, F, Fut>(names: &'a [String], action: F) -> (Vec<T>, ExitCode)
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut done = Vec::new();
    let mut failed = false;
    for name in names {
        match action(name).await {
            Ok(value) => done.push(value),
            Err(err) => {
                report(&anyhow::Error::from(err));
                failed = true;
            }
        }
    }
    let code = if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    (done, code)
}
