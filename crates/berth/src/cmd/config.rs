//! `berth config set|get|ls|rm|history`: configuration values under `/berth/config/` in
//! the store, which `berth run --config/--config-env` delivers into containers.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth_config::{CONFIG_PREFIX, ConfigKey};
use clap::{Args, Subcommand};

use crate::cmd::container::block_on;
use crate::cmd::kv::{Format, StoreArgs, entry_json};

/// How many older values `history` shows unless told otherwise.
const DEFAULT_HISTORY: usize = 100;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Set a config value, from the command line or a file.
    Set {
        key: ConfigKey,
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file ("-": stdin).
        #[arg(long, short)]
        file: Option<PathBuf>,
    },
    /// Print a config value as it is (no newline added).
    Get {
        key: ConfigKey,
        /// The value at this store revision (see `history`).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// List config keys, all or those starting with PREFIX.
    Ls {
        prefix: Option<String>,
        /// Print only the keys.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Remove config values.
    Rm {
        #[arg(required = true)]
        keys: Vec<ConfigKey>,
    },
    /// Show a config value's earlier values, newest first (as far as the store's history
    /// goes: compaction removes old revisions).
    History {
        key: ConfigKey,
        /// Show at most N values.
        #[arg(short = 'n', long, default_value_t = DEFAULT_HISTORY)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// A prefix of key names: the key grammar, but it may end with '/' or be empty.
fn prefix_key(prefix: &str) -> anyhow::Result<String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if !trimmed.is_empty() {
        trimmed.parse::<ConfigKey>()?;
    }
    Ok(format!("{CONFIG_PREFIX}{prefix}"))
}

fn first_line(value: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(value);
    let line = text.lines().next().unwrap_or("");
    let more = line.chars().count() > max || text.lines().nth(1).is_some();
    let mut shown: String = line.chars().take(max).collect();
    if more {
        shown.push('…');
    }
    shown
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let kv = args.store.connect().await?;
        let mut out = std::io::stdout().lock();
        match args.command {
            ConfigCommand::Set { key, value, file } => {
                let value = match (value, file) {
                    (Some(value), _) => value.into_bytes(),
                    (None, Some(path)) if path.as_os_str() == "-" => {
                        let mut bytes = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                            .context("cannot read the value from stdin")?;
                        bytes
                    }
                    (None, Some(path)) => std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    (None, None) => bail!("give a VALUE or --file"),
                };
                kv.put(key.store_key().as_bytes(), &value)
                    .await
                    .with_context(|| format!("cannot set {key}"))?;
            }
            ConfigCommand::Get { key, rev } => {
                let (_, entries) = kv.get(key.store_key().as_bytes(), false, rev).await?;
                let Some(entry) = entries.first() else {
                    bail!("no such config key: {key}");
                };
                out.write_all(&entry.value)?;
            }
            ConfigCommand::Ls {
                prefix,
                quiet,
                format,
            } => {
                let prefix = prefix_key(prefix.as_deref().unwrap_or(""))?;
                let (_, entries) = kv.get(prefix.as_bytes(), true, 0).await?;
                let named = entries
                    .iter()
                    .filter_map(|e| Some((ConfigKey::from_store_key(&e.key)?, e)));
                if quiet {
                    for (key, _) in named {
                        writeln!(out, "{key}")?;
                    }
                } else if matches!(format, Format::Json) {
                    for (key, entry) in named {
                        let mut json = entry_json(entry);
                        json["key"] = key.as_str().into();
                        writeln!(out, "{json}")?;
                    }
                } else {
                    let mut table = table(["KEY", "REVISION", "SIZE", "VALUE"]);
                    for (key, entry) in named {
                        table.add_row([
                            key.to_string(),
                            entry.mod_revision.to_string(),
                            entry.value.len().to_string(),
                            first_line(&entry.value, 40),
                        ]);
                    }
                    writeln!(out, "{}", table.trim_fmt())?;
                }
            }
            ConfigCommand::Rm { keys } => {
                let mut missing = Vec::new();
                for key in keys {
                    if kv.delete(key.store_key().as_bytes(), false).await? == 0 {
                        missing.push(key.to_string());
                    }
                }
                if !missing.is_empty() {
                    bail!("no such config key: {}", missing.join(", "));
                }
            }
            ConfigCommand::History { key, limit, format } => {
                let history = kv.history(key.store_key().as_bytes(), limit.max(1)).await?;
                if history.entries.is_empty() {
                    bail!("no such config key: {key}");
                }
                if matches!(format, Format::Json) {
                    for entry in &history.entries {
                        let mut json = entry_json(entry);
                        json["key"] = key.as_str().into();
                        writeln!(out, "{json}")?;
                    }
                } else {
                    let mut table = table(["REVISION", "VERSION", "SIZE", "VALUE"]);
                    for entry in &history.entries {
                        table.add_row([
                            entry.mod_revision.to_string(),
                            entry.version.to_string(),
                            entry.value.len().to_string(),
                            first_line(&entry.value, 40),
                        ]);
                    }
                    writeln!(out, "{}", table.trim_fmt())?;
                }
                if history.compacted {
                    eprintln!("berth: older values of {key} were compacted away by the store");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn table(header: [&str; 4]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header);
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_key_grammar() {
        assert_eq!(prefix_key("").unwrap(), "/berth/config/");
        assert_eq!(prefix_key("app/").unwrap(), "/berth/config/app/");
        assert_eq!(prefix_key("app/d").unwrap(), "/berth/config/app/d");
        assert!(prefix_key("/app").is_err());
        assert!(prefix_key("a/../b").is_err());
    }

    #[test]
    fn values_are_shown_by_their_first_line() {
        assert_eq!(first_line(b"one\ntwo", 40), "one…");
        assert_eq!(first_line(b"short", 40), "short");
        assert_eq!(first_line(b"abcdef", 3), "abc…");
    }
}
