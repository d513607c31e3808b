//! `berth kv get|put|del|watch`: raw access to the etcd v3 store (berth's embedded store by
//! default, or any etcd), printed as etcdctl prints it, or as JSON lines.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use berth_config::{Entry, Event, EventKind, Kv};
use clap::{Args, Subcommand, ValueEnum};

/// The store's endpoints, shared by `berth kv` and `berth config`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Comma-separated client URLs of the store: the daemon's embedded store (its
    /// --store-listen) or the etcd it uses (its --store-endpoints).
    #[arg(
        long,
        global = true,
        env = "BERTH_STORE_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
}

impl StoreArgs {
    pub async fn connect(&self) -> anyhow::Result<Kv> {
        for url in &self.endpoints {
            crate::cmd::daemon::check_endpoint(url).context("--endpoints")?;
        }
        Ok(Kv::connect(&self.endpoints).await?)
    }
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// etcdctl's: the key, then the value, one per line.
    #[default]
    Text,
    /// One JSON object per key or event and line.
    Json,
}

#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t)]
    format: Format,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, Subcommand)]
enum KvCommand {
    /// Print a key's value, or every key with a prefix.
    Get {
        key: String,
        /// Every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
        /// Read at this store revision (0: the latest).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// Set a key's value (read from stdin when VALUE is left out).
    Put { key: String, value: Option<String> },
    /// Delete a key, or every key with a prefix; prints how many were deleted.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    /// Print changes to a key, or to every key with a prefix, until interrupted.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Start at this revision (0: from now), replaying history.
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

pub fn run(args: KvArgs) -> anyhow::Result<ExitCode> {
    crate::cmd::container::block_on(async move {
        let kv = args.store.connect().await?;
        let mut out = std::io::stdout().lock();
        match args.command {
            KvCommand::Get { key, prefix, rev } => {
                let (_, entries) = kv.get(key.as_bytes(), prefix, rev).await?;
                for entry in &entries {
                    print_entry(&mut out, args.format, entry)?;
                }
            }
            KvCommand::Put { key, value } => {
                let value = match value {
                    Some(value) => value.into_bytes(),
                    None => {
                        let mut bytes = Vec::new();
                        std::io::stdin()
                            .read_to_end(&mut bytes)
                            .context("cannot read the value from stdin")?;
                        bytes
                    }
                };
                let revision = kv.put(key.as_bytes(), &value).await?;
                match args.format {
                    Format::Text => writeln!(out, "OK")?,
                    Format::Json => writeln!(out, "{}", serde_json::json!({"revision": revision}))?,
                }
            }
            KvCommand::Del { key, prefix } => {
                let deleted = kv.delete(key.as_bytes(), prefix).await?;
                match args.format {
                    Format::Text => writeln!(out, "{deleted}")?,
                    Format::Json => writeln!(out, "{}", serde_json::json!({"deleted": deleted}))?,
                }
            }
            KvCommand::Watch { key, prefix, rev } => {
                let mut stream = kv.watch(key.as_bytes(), prefix, rev).await?;
                while let Some(events) = stream.next().await? {
                    for event in &events {
                        print_event(&mut out, args.format, event)?;
                    }
                    out.flush()?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An entry as one JSON object (values as UTF-8 text, invalid bytes replaced).
pub fn entry_json(entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "key": text(&entry.key),
        "value": text(&entry.value),
        "create_revision": entry.create_revision,
        "mod_revision": entry.mod_revision,
        "version": entry.version,
    })
}

fn print_entry(out: &mut impl Write, format: Format, entry: &Entry) -> std::io::Result<()> {
    match format {
        Format::Text => {
            out.write_all(&entry.key)?;
            out.write_all(b"\n")?;
            out.write_all(&entry.value)?;
            out.write_all(b"\n")
        }
        Format::Json => writeln!(out, "{}", entry_json(entry)),
    }
}

fn print_event(out: &mut impl Write, format: Format, event: &Event) -> std::io::Result<()> {
    let kind = match event.kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    };
    match format {
        Format::Text => {
            writeln!(out, "{kind}")?;
            out.write_all(&event.entry.key)?;
            out.write_all(b"\n")?;
            if event.kind == EventKind::Put {
                out.write_all(&event.entry.value)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        Format::Json => {
            let mut json = entry_json(&event.entry);
            json["type"] = kind.into();
            writeln!(out, "{json}")
        }
    }
}
