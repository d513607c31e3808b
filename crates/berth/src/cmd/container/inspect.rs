//! `berth inspect`: a JSON array of the containers found, as docker prints it; the rest are
//! reported on stderr and make the exit code 1.

use std::process::ExitCode;

use berth_client::Client;
use clap::Args;

use super::for_each_name;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Containers: names, ids or unique id prefixes.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub async fn inspect(client: &Client, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (found, code) = for_each_name(&args.containers, |name| client.inspect(name)).await;
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(code)
}
