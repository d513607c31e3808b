//! `berth run` and `berth create`.
//!
//! A foreground `run` is several calls: create; start; follow the logs from their beginning
//! (they are the container's log file, so a command that has already exited loses no output;
//! a daemon may end a follow of a container that has not started yet); with `-i`, attach and
//! send stdin (the daemon attaches only to a running container; no input is lost meanwhile,
//! since none has been read yet); wait, forwarding SIGINT and SIGTERM to the container; then,
//! with `--rm`, remove it. It
//! exits with the container's exit code, and with 125 when berth itself failed (docker's
//! convention). `-d` creates and starts, and prints the full id; `-d --rm` leaves the removal
//! to the daemon.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use berth_client::api::WaitResponse;
use berth_client::{Client, LogsOptions};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::create_args::CreateArgs;
use super::stdio::{self, RawTerminal};
use super::{block_on, exit_code, report};

/// docker's exit code when the failure is berth's rather than the container's.
const FAILED_TO_RUN: u8 = 125;

/// How long the container's last output may take to arrive once it has exited.
const OUTPUT_DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    create: CreateArgs,
}

pub fn run(client: &Client, args: RunArgs) -> ExitCode {
    let result = block_on(async {
        if args.detach {
            detached(client, &args.create).await
        } else {
            foreground(client, &args.create).await
        }
    });
    result.unwrap_or_else(|err| {
        report(&err);
        ExitCode::from(FAILED_TO_RUN)
    })
}

pub fn create(client: &Client, args: CreateArgs) -> ExitCode {
    let result = block_on(async {
        let created = client.create(&args.to_request(true)?).await?;
        println!("{}", created.id);
        Ok(ExitCode::SUCCESS)
    });
    result.unwrap_or_else(|err| {
        report(&err);
        ExitCode::from(FAILED_TO_RUN)
    })
}

async fn detached(client: &Client, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let created = client.create(&args.to_request(true)?).await?;
    client.start(&created.id).await?;
    println!("{}", created.id);
    Ok(ExitCode::SUCCESS)
}

async fn foreground(client: &Client, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        anyhow::bail!("the input device is not a TTY: leave out -t when stdin is a pipe or a file");
    }
    let created = client.create(&args.to_request(false)?).await?;
    let outcome = attached(client, &created.id, args).await;
    if args.rm
        && let Err(err) = client.remove(&created.id, true).await
    {
        report(&anyhow::Error::new(err).context(format!("cannot remove {}", created.name)));
    }
    outcome
}

/// Runs the created container `id` with this process's stdio attached to it.
async fn attached(client: &Client, id: &str, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    client.start(id).await?;
    let follow = LogsOptions {
        follow: true,
        ..LogsOptions::default()
    };
    let printer = tokio::spawn(stdio::print_logs(client.logs(id, &follow).await?, false));
    let input = if args.interactive {
        match client.attach(id).await {
            Ok(stream) => Some(stream),
            // 409: it has already exited, and wants no input any more.
            Err(err) if err.status() == Some(409) => None,
            Err(err) => return Err(err.into()),
        }
    } else {
        None
    };
    let raw = if args.interactive && args.tty {
        RawTerminal::enable()?
    } else {
        None
    };
    if let Some(stream) = input {
        let (mut reader, writer) = stream.split();
        let tty = args.tty;
        tokio::spawn(async move {
            // The attach connection ending early (the container exited) ends the input.
            let _ = stdio::pump_stdin(writer, tty).await;
        });
        // The output comes through the logs; frames on the attach stream are read and
        // dropped so the daemon never blocks on them.
        tokio::spawn(async move { while let Ok(Some(_)) = reader.next().await {} });
    }
    // With -t but no -i there is no attach stream for resize frames: the size goes by request.
    let mut winch = if args.tty && !args.interactive {
        resize(client, id).await;
        Some(signal(SignalKind::window_change()).context("cannot watch the terminal's size")?)
    } else {
        None
    };
    let status = wait_forwarding(client, id, &mut interrupt, &mut terminate, &mut winch).await?;
    let drained = tokio::time::timeout(OUTPUT_DRAIN, printer).await;
    drop(raw);
    match drained {
        Ok(Ok(printed)) => printed?,
        Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
        Err(_) => eprintln!(
            "berth: warning: the container's output did not end within {OUTPUT_DRAIN:?} of its exit"
        ),
    }
    Ok(exit_code(status.status_code))
}

/// Gives the container's terminal the size of this process's, if it has one.
async fn resize(client: &Client, id: &str) {
    if let Some(size) = stdio::terminal_size()
        && let Err(err) = client.resize(id, size).await
    {
        eprintln!("berth: warning: cannot resize the container's terminal: {err}");
    }
}

/// Waits for the container to exit for good, sending it the SIGINTs and SIGTERMs this
/// process receives meanwhile (docker's signal proxy), and the terminal's new size on every
/// SIGWINCH when `winch` watches for them.
async fn wait_forwarding(
    client: &Client,
    id: &str,
    interrupt: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
    winch: &mut Option<tokio::signal::unix::Signal>,
) -> anyhow::Result<WaitResponse> {
    let wait = client.wait(id);
    tokio::pin!(wait);
    loop {
        let name = tokio::select! {
            status = &mut wait => return Ok(status?),
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            Some(()) = async { winch.as_mut()?.recv().await } => {
                resize(client, id).await;
                continue;
            }
        };
        if let Err(err) = client.kill(id, Some(name)).await {
            eprintln!("berth: warning: cannot pass {name} to the container: {err}");
        }
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
