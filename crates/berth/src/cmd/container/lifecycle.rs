//! `berth start`, `stop`, `restart`, `kill`, `rm` and `wait`: one call per container named,
//! each printed as docker prints it; a failure is reported and the others still go ahead.

use std::future::Future;
use std::process::ExitCode;

use berth_client::{Client, ClientError};
use clap::Args;

use super::for_each_name;

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Containers: names, ids or unique id prefixes.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL (the daemon's default: 10).
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECONDS"
    )]
    time: Option<u32>,
    #[command(flatten)]
    names: NamesArgs,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send: a name (KILL, SIGHUP) or a number.
    #[arg(short, long, value_name = "SIGNAL")]
    signal: Option<String>,
    #[command(flatten)]
    names: NamesArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove running containers.
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    names: NamesArgs,
}

/// Calls `action` for each container in turn, printing what it returns; exit code 1 when
/// any failed.
async fn each<'a, F, Fut>(names: &'a NamesArgs, action: F) -> anyhow::Result<ExitCode>
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = Result<String, ClientError>>,
{
    let (lines, code) = for_each_name(&names.containers, action).await;
    for line in lines {
        println!("{line}");
    }
    Ok(code)
}

pub async fn start(client: &Client, args: NamesArgs) -> anyhow::Result<ExitCode> {
    each(&args, |name| async move {
        client.start(name).await?;
        Ok(name.to_owned())
    })
    .await
}

pub async fn stop(client: &Client, args: StopArgs) -> anyhow::Result<ExitCode> {
    each(&args.names, |name| async move {
        client.stop(name, args.time).await?;
        Ok(name.to_owned())
    })
    .await
}

pub async fn restart(client: &Client, args: StopArgs) -> anyhow::Result<ExitCode> {
    each(&args.names, |name| async move {
        client.restart(name, args.time).await?;
        Ok(name.to_owned())
    })
    .await
}

pub async fn kill(client: &Client, args: KillArgs) -> anyhow::Result<ExitCode> {
    let signal = args.signal.as_deref();
    each(&args.names, |name| async move {
        client.kill(name, signal).await?;
        Ok(name.to_owned())
    })
    .await
}

pub async fn rm(client: &Client, args: RmArgs) -> anyhow::Result<ExitCode> {
    each(&args.names, |name| async move {
        client.remove(name, args.force).await?;
        Ok(name.to_owned())
    })
    .await
}

pub async fn wait(client: &Client, args: NamesArgs) -> anyhow::Result<ExitCode> {
    each(&args, |name| async move {
        Ok(client.wait(name).await?.status_code.to_string())
    })
    .await
}
