//! `berth stats`: cgroup accounting of containers, as docker's table or one JSON object
//! (the API's `Stats`) per container and line; live, or one sample with `--no-stream`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use berth_client::Client;
use berth_client::api::Stats;
use clap::Args;
use tokio::sync::mpsc;

use super::format::{binary_size, decimal_size, percent, short_id};
use super::ps::Format;
use super::report;
use crate::cmd::table::plain;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (by default only running ones), when none are named.
    #[arg(short, long)]
    all: bool,
    /// Print one sample and exit.
    #[arg(long)]
    no_stream: bool,
    /// Show full ids.
    #[arg(long)]
    no_trunc: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Containers: names, ids or unique id prefixes (all running ones when none).
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub async fn stats(client: &Client, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let targets = if args.containers.is_empty() {
        client
            .list(args.all)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect()
    } else {
        args.containers.clone()
    };
    if args.no_stream {
        one_sample(client, &targets, &args).await
    } else {
        live(client, &targets, &args).await
    }
}

async fn one_sample(
    client: &Client,
    targets: &[String],
    args: &StatsArgs,
) -> anyhow::Result<ExitCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        let client = client.clone();
        let target = target.clone();
        tasks.spawn(async move { (index, client.stats(&target).await) });
    }
    let mut samples: Vec<Option<Stats>> = vec![None; targets.len()];
    let mut failed = false;
    for (index, result) in tasks.join_all().await {
        match result {
            Ok(sample) => samples[index] = Some(sample),
            Err(err) => {
                report(&anyhow::Error::from(err));
                failed = true;
            }
        }
    }
    let samples: Vec<Stats> = samples.into_iter().flatten().collect();
    print(&samples, args, false)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One stream per container; JSON lines as samples arrive, or the table redrawn each second.
async fn live(client: &Client, targets: &[String], args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let (sender, mut receiver) = mpsc::channel::<(usize, Option<Stats>)>(64);
    for (index, target) in targets.iter().enumerate() {
        let client = client.clone();
        let target = target.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            match client.stats_stream(&target).await {
                Ok(mut stream) => {
                    while let Some(Ok(sample)) = stream.next().await {
                        if sender.send((index, Some(sample))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(err) => report(&anyhow::Error::from(err)),
            }
            let _ = sender.send((index, None)).await;
        });
    }
    drop(sender);
    let mut latest: Vec<Option<Stats>> = vec![None; targets.len()];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let clear = std::io::stdout().is_terminal();
    loop {
        tokio::select! {
            message = receiver.recv() => match message {
                Some((index, Some(sample))) => {
                    if matches!(args.format, Format::Json) {
                        print(std::slice::from_ref(&sample), args, false)?;
                    }
                    latest[index] = Some(sample);
                }
                Some((index, None)) => latest[index] = None,
                None => return Ok(ExitCode::SUCCESS),
            },
            _ = tick.tick(), if matches!(args.format, Format::Table) => {
                let shown: Vec<Stats> = latest.iter().flatten().cloned().collect();
                print(&shown, args, clear)?;
            }
        }
    }
}

fn print(samples: &[Stats], args: &StatsArgs, clear: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            for sample in samples {
                writeln!(out, "{}", serde_json::to_string(sample)?)?;
            }
        }
        Format::Table => {
            if clear {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            writeln!(out, "{}", table(samples, args.no_trunc))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn table(samples: &[Stats], no_trunc: bool) -> String {
    let rows = samples.iter().map(|s| {
        let id = if no_trunc { &s.id } else { short_id(&s.id) };
        let memory_percent = if s.memory_limit == 0 {
            0.0
        } else {
            s.memory_usage as f64 * 100.0 / s.memory_limit as f64
        };
        [
            id.to_owned(),
            s.name.clone(),
            percent(s.cpu_percent),
            format!(
                "{} / {}",
                binary_size(s.memory_usage),
                binary_size(s.memory_limit)
            ),
            percent(memory_percent),
            format!(
                "{} / {}",
                decimal_size(s.block_read_bytes),
                decimal_size(s.block_write_bytes)
            ),
            s.pids.to_string(),
        ]
    });
    plain(&COLUMNS, rows)
}

/// docker's columns.
const COLUMNS: [&str; 7] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "BLOCK I/O",
    "PIDS",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_dockers_columns_and_units() {
        let sample = Stats {
            id: "0123456789abcdef0123".into(),
            name: "web".into(),
            read: "2026-11-28T00:00:00Z".into(),
            cpu_percent: 49.876,
            cpu_usage_ns: 1,
            memory_usage: 1_536_000,
            memory_limit: 32 << 20,
            pids: 3,
            block_read_bytes: 4_100_000,
            block_write_bytes: 0,
        };
        let text = table(&[sample], false);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split("   ").map(str::trim).collect();
        let header: Vec<&str> = header.into_iter().filter(|c| !c.is_empty()).collect();
        let columns = [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "BLOCK I/O",
            "PIDS",
        ];
        assert_eq!(header, columns, "{text}");
        for cell in [
            "0123456789ab",
            "web",
            "49.88%",
            "1.465MiB / 32MiB",
            "4.58%",
            "4.1MB / 0B",
        ] {
            assert!(lines[1].contains(cell), "{cell}: {text}");
        }
        assert!(lines[1].trim_end().ends_with('3'), "{text}");
    }
}
