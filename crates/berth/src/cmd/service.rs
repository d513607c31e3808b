//! `berth service ls|inspect`: the services containers are registered in (`berth run
//! --service NAME[:PORT]`), read from `/berth/services/` in the store, so every host's
//! endpoints are seen from any host. Only endpoints that may take traffic are there: a
//! stopped or unhealthy container's key is deleted.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use berth_config::{Endpoint, EndpointHealth, SERVICE_PREFIX, ServiceName, parse_endpoint_key};
use clap::{Args, Subcommand, ValueEnum};

use crate::cmd::container::block_on;
use crate::cmd::kv::StoreArgs;

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// A table.
    #[default]
    Text,
    /// JSON: `ls` one array of services, `inspect` one array of services with their
    /// endpoints (the stored endpoint objects).
    Json,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// List the services that have endpoints.
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the names.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show the endpoints of services: container, host, address, port, health.
    Inspect {
        #[arg(required = true)]
        names: Vec<ServiceName>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn health_text(health: EndpointHealth) -> &'static str {
    match health {
        EndpointHealth::Healthy => "healthy",
        EndpointHealth::None => "no check",
    }
}

fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn run(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let kv = args.store.connect().await?;
        let (_, entries) = kv.get(SERVICE_PREFIX.as_bytes(), true, 0).await?;
        let mut services: BTreeMap<ServiceName, Vec<Endpoint>> = BTreeMap::new();
        for entry in &entries {
            let Some((name, id)) = parse_endpoint_key(&entry.key) else {
                continue;
            };
            let Some(endpoint) = Endpoint::from_json(&entry.value) else {
                continue;
            };
            if endpoint.service != name || endpoint.container_id != id {
                continue;
            }
            services.entry(name).or_default().push(endpoint);
        }
        let mut out = std::io::stdout().lock();
        match args.command {
            ServiceCommand::Ls { quiet, format } => {
                if quiet {
                    for name in services.keys() {
                        writeln!(out, "{name}")?;
                    }
                } else if matches!(format, Format::Json) {
                    let list: Vec<serde_json::Value> = services
                        .iter()
                        .map(|(name, endpoints)| {
                            let mut hosts: Vec<&str> =
                                endpoints.iter().map(|e| e.host.as_str()).collect();
                            hosts.sort_unstable();
                            hosts.dedup();
                            serde_json::json!({
                                "name": name,
                                "dns_name": name.dns_name(),
                                "endpoints": endpoints.len(),
                                "hosts": hosts,
                            })
                        })
                        .collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                } else {
                    let mut table = table(&["NAME", "ENDPOINTS", "HOSTS", "DNS NAME"]);
                    for (name, endpoints) in &services {
                        let mut hosts: Vec<&str> =
                            endpoints.iter().map(|e| e.host.as_str()).collect();
                        hosts.sort_unstable();
                        hosts.dedup();
                        table.add_row([
                            name.to_string(),
                            endpoints.len().to_string(),
                            hosts.join(","),
                            name.dns_name(),
                        ]);
                    }
                    writeln!(out, "{}", table.trim_fmt())?;
                }
            }
            ServiceCommand::Inspect { names, format } => {
                let missing: Vec<String> = names
                    .iter()
                    .filter(|n| !services.contains_key(n))
                    .map(ToString::to_string)
                    .collect();
                if matches!(format, Format::Json) {
                    let list: Vec<serde_json::Value> = names
                        .iter()
                        .filter_map(|name| {
                            let endpoints = services.get(name)?;
                            Some(serde_json::json!({
                                "name": name,
                                "dns_name": name.dns_name(),
                                "endpoints": endpoints,
                            }))
                        })
                        .collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                } else {
                    let mut table = table(&[
                        "SERVICE",
                        "CONTAINER",
                        "NAME",
                        "HOST",
                        "ADDRESS",
                        "PORT",
                        "HOST PORT",
                        "HEALTH",
                    ]);
                    for name in &names {
                        for endpoint in services.get(name).into_iter().flatten() {
                            table.add_row([
                                name.to_string(),
                                endpoint.container_id.chars().take(12).collect(),
                                endpoint.container_name.clone(),
                                endpoint.host.clone(),
                                or_dash(endpoint.address),
                                or_dash(endpoint.port),
                                or_dash(endpoint.host_port),
                                health_text(endpoint.health).to_owned(),
                            ]);
                        }
                    }
                    if missing.len() < names.len() {
                        writeln!(out, "{}", table.trim_fmt())?;
                    }
                }
                if !missing.is_empty() {
                    bail!(
                        "no such service: {} (a service exists while one of its containers runs and is healthy)",
                        missing.join(", ")
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
