//! `berth logs`: the container's stdout records to stdout, stderr records to stderr.

use std::process::ExitCode;

use berth_client::{Client, LogsOptions};
use clap::Args;

use super::stdio::print_logs;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep following the output until the container has exited for good.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines ("all" for every line).
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_tail)]
    tail: Option<Tail>,
    /// Show each line's time.
    #[arg(short, long)]
    timestamps: bool,
    /// Only lines at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// The container: a name, an id or a unique id prefix.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `--tail`: a count, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail(Option<u64>);

fn parse_tail(s: &str) -> Result<Tail, String> {
    if s == "all" {
        return Ok(Tail(None));
    }
    s.parse()
        .map(|n| Tail(Some(n)))
        .map_err(|_| format!("invalid tail {s:?}: expected a number of lines or \"all\""))
}

pub async fn logs(client: &Client, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let options = LogsOptions {
        follow: args.follow,
        tail: args.tail.and_then(|t| t.0),
        since: args.since,
    };
    let stream = client.logs(&args.container, &options).await?;
    print_logs(stream, args.timestamps).await?;
    Ok(ExitCode::SUCCESS)
}
