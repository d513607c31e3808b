//! `berth network create/ls/inspect/rm` and `berth port`: the daemon's networks
//! (`/v1/networks`) and a container's published ports, with docker's output.

use std::process::ExitCode;

use berth_client::Client;
use berth_client::api::NetworkCreateRequest;
use clap::{Args, Subcommand};

use super::for_each_name;

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridged network; prints its name.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show networks in detail, as a JSON array.
    Inspect(NamesArgs),
    /// Remove networks no container uses.
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Subnet in CIDR form (default: a free 10.89.N.0/24).
    #[arg(long, value_name = "CIDR", value_parser = parse_subnet)]
    subnet: Option<String>,
    /// The bridge's name (default: a free berthN).
    #[arg(long, value_name = "NAME")]
    bridge: Option<String>,
    /// The network's name.
    name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format: a table, or one JSON object per line (as `network inspect` shows it).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

fn parse_subnet(s: &str) -> Result<String, String> {
    s.parse::<berth_net::Subnet>()
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "NETWORK")]
    names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container: a name, an id or a unique id prefix.
    container: String,
}

pub async fn network(client: &Client, command: NetworkCommand) -> anyhow::Result<ExitCode> {
    match command {
        NetworkCommand::Create(args) => {
            let network = client
                .network_create(&NetworkCreateRequest {
                    name: args.name,
                    subnet: args.subnet,
                    bridge: args.bridge,
                })
                .await?;
            println!("{}", network.name);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Ls(LsArgs {
            format: Format::Json,
        }) => {
            for n in client.networks().await? {
                println!("{}", serde_json::to_string(&n)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Ls(LsArgs {
            format: Format::Table,
        }) => {
            println!("{:<20} {:<10} {:<16} SUBNET", "NAME", "DRIVER", "BRIDGE");
            for n in client.networks().await? {
                println!(
                    "{:<20} {:<10} {:<16} {}",
                    n.name, n.driver, n.bridge, n.subnet
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Inspect(args) => {
            let (found, code) =
                for_each_name(&args.names, |name| client.network_inspect(name)).await;
            println!("{}", serde_json::to_string_pretty(&found)?);
            Ok(code)
        }
        NetworkCommand::Rm(args) => {
            let (removed, code) = for_each_name(&args.names, |name| async move {
                client.network_remove(name).await.map(|()| name)
            })
            .await;
            for name in removed {
                println!("{name}");
            }
            Ok(code)
        }
    }
}

/// `berth port CTR`: `80/tcp -> 0.0.0.0:8080`, one line per published port.
pub async fn port(client: &Client, args: PortArgs) -> anyhow::Result<ExitCode> {
    let inspect = client.inspect(&args.container).await?;
    for p in &inspect.network_settings.ports {
        println!(
            "{}/{} -> {}:{}",
            p.container_port, p.protocol, p.host_ip, p.host_port
        );
    }
    Ok(ExitCode::SUCCESS)
}
