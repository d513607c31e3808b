//! `berth inspect`: a JSON array of the containers found, as docker prints it; the rest are
//! reported on stderr and make the exit code 1.

use std::process::ExitCode;

use berth_client::Client;
use clap::Args;

use super::report;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Containers: names, ids or unique id prefixes.
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub async fn inspect(client: &Client, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.containers {
        match client.inspect(name).await {
            Ok(container) => found.push(container),
            Err(err) => {
                report(&anyhow::Error::from(err));
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
