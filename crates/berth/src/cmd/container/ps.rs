//! `berth ps`: docker's table, ids only (`-q`), or one JSON object per line.

use std::io::Write;
use std::process::ExitCode;

use berth_client::Client;
use berth_client::api::ContainerSummary;
use clap::{Args, ValueEnum};

use super::format::{ellipsis, short_id};
use crate::cmd::table::plain;
use crate::cmd::units::human_age;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    /// One JSON object per container and line, as `docker ps --format json`.
    Json,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (by default only running ones).
    #[arg(short, long)]
    all: bool,
    /// Print only the container ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full ids and commands.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn ps(client: &Client, args: PsArgs) -> anyhow::Result<ExitCode> {
    let containers = client.list(args.all).await?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for container in &containers {
            let id = if args.no_trunc {
                &container.id
            } else {
                short_id(&container.id)
            };
            writeln!(out, "{id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        Format::Json => {
            for container in &containers {
                writeln!(out, "{}", serde_json::to_string(container)?)?;
            }
        }
        Format::Table => writeln!(out, "{}", table(&containers, args.no_trunc))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn table(containers: &[ContainerSummary], no_trunc: bool) -> String {
    let rows = containers.iter().map(|c| {
        let (id, command) = if no_trunc {
            (c.id.clone(), c.command.clone())
        } else {
            (short_id(&c.id).to_owned(), ellipsis(&c.command, 20))
        };
        [
            id,
            c.image.clone(),
            format!("{command:?}"),
            human_age(&c.created),
            c.status.clone(),
            c.name.clone(),
        ]
    });
    plain(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use berth_client::api::ContainerStatus;

    use super::*;

    #[test]
    fn the_table_has_dockers_columns_and_cuts() {
        let row = ContainerSummary {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            command: "sh -c 'while true; do sleep 1; done'".into(),
            created: "2000-01-01T00:00:00Z".into(),
            state: ContainerStatus::Running,
            status: "Up 3 minutes".into(),
        };
        let text = table(&[row], false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
            "{text}"
        );
        assert!(lines[0].trim_end().ends_with("NAMES"), "{text}");
        assert!(lines[1].starts_with("0123456789ab   busybox   \"sh -c 'while true; …\""));
        assert!(lines[1].contains("years ago"), "{text}");
        assert!(lines[1].contains("Up 3 minutes"), "{text}");
        assert!(lines[1].trim_end().ends_with("web"), "{text}");
    }
}
