//! `berth image …`: the image store from the command line, with docker's flag names and output.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_image::{ImageRecord, ImportOptions, RootfsOptions, Store};
use berth_types::ImageRef;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::Globals;
use crate::cmd::progress::LayerBars;
use crate::cmd::table;
use crate::cmd::units::{human_age, human_size};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout or a docker save archive (directory or tar).
    #[command(visible_alias = "load")]
    Import(ImportArgs),
    /// Make a one-layer image from a root filesystem (directory or tar), like `docker import`.
    ImportRootfs(ImportRootfsArgs),
    /// Pull an image from an OCI distribution registry.
    Pull(super::pull::PullArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show images in detail, as JSON.
    Inspect(InspectArgs),
    /// Remove images.
    #[command(visible_alias = "rmi")]
    Rm(RmArgs),
    /// Remove unused images, blobs and layers.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Archive to import: an OCI image layout or docker save export, as a directory or tar.
    path: PathBuf,
    /// Name for the image, replacing names the archive carries.
    #[arg(long)]
    name: Option<ImageRef>,
    /// Print only the image ids.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportRootfsArgs {
    /// Root filesystem: a directory, or a tar (plain, gzip or zstd).
    path: PathBuf,
    /// Name for the image.
    #[arg(long)]
    name: ImageRef,
    /// Default command (repeat for each argument: --cmd sh --cmd -c --cmd 'echo hi').
    #[arg(long = "cmd", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Entrypoint (repeat for each argument).
    #[arg(long = "entrypoint", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory of the image's processes.
    #[arg(short, long)]
    workdir: Option<String>,
    /// A port the image exposes, PORT[/tcp|/udp] (repeatable; docker's EXPOSE), which
    /// `run -P` publishes.
    #[arg(long = "expose", value_name = "PORT", value_parser = parse_expose)]
    expose: Vec<String>,
}

/// `--expose`: `PORT`, `PORT/tcp` or `PORT/udp`, stored as docker writes it (`80/tcp`).
fn parse_expose(s: &str) -> Result<String, String> {
    let (port, protocol) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = port
        .parse()
        .map_err(|e| format!("expected PORT[/tcp|/udp]: {e}"))?;
    if port == 0 || !matches!(protocol, "tcp" | "udp") {
        return Err("expected PORT[/tcp|/udp] with a port from 1 to 65535".into());
    }
    Ok(format!("{port}/{protocol}"))
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Show only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full image ids.
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images, by name or id.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Images, by name or id.
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove even if a container uses the image.
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only unnamed ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation (berth never asks; accepted for docker compatibility).
    #[arg(short, long)]
    force: bool,
}

pub fn run(globals: &Globals, command: ImageCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(globals)?;
    match command {
        ImageCommand::Import(args) => import(&store, args),
        ImageCommand::ImportRootfs(args) => import_rootfs(&store, args),
        ImageCommand::Pull(args) => super::pull::run(globals, args),
        ImageCommand::Ls(args) => ls(&store, &args),
        ImageCommand::Inspect(args) => inspect(&store, &args),
        ImageCommand::Rm(args) => rm(&store, &args),
        ImageCommand::Prune(args) => prune(&store, &args),
    }
}

/// The image store under berth's root.
pub fn open_store(globals: &Globals) -> anyhow::Result<Store> {
    let root = globals.root.join("image");
    Store::open(&root).with_context(|| format!("opening the image store at {}", root.display()))
}

fn import(store: &Store, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let options = ImportOptions {
        name: args.name,
        ..ImportOptions::default()
    };
    let bars = LayerBars::new(!args.quiet && std::io::stderr().is_terminal());
    let images = store
        .import(&args.path, &options, &bars)
        .with_context(|| format!("importing {}", args.path.display()))?;
    bars.clear();
    let mut out = std::io::stdout().lock();
    for image in &images {
        if args.quiet {
            writeln!(out, "{}", image.id)?;
        } else if image.names.is_empty() {
            writeln!(out, "Loaded image ID: {}", image.id)?;
        } else {
            for name in &image.names {
                writeln!(out, "Loaded image: {}", name.familiar())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn import_rootfs(store: &Store, args: ImportRootfsArgs) -> anyhow::Result<ExitCode> {
    for var in &args.env {
        anyhow::ensure!(
            var.split_once('=').is_some_and(|(k, _)| !k.is_empty()),
            "invalid environment variable {var:?}: expected KEY=VALUE"
        );
    }
    let options = RootfsOptions {
        name: args.name,
        cmd: args.cmd,
        entrypoint: args.entrypoint,
        env: args.env,
        workdir: args.workdir,
        exposed_ports: args.expose,
        policy: Default::default(),
    };
    let bars = LayerBars::new(std::io::stderr().is_terminal());
    let image = store
        .import_rootfs(&args.path, &options, &bars)
        .with_context(|| format!("importing root filesystem {}", args.path.display()))?;
    bars.clear();
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}

fn ls(store: &Store, args: &LsArgs) -> anyhow::Result<ExitCode> {
    let mut images = store.list()?;
    images.reverse(); // newest first, as docker lists
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for image in &images {
            let id = if args.no_trunc {
                image.id.to_string()
            } else {
                image.id.short().to_owned()
            };
            writeln!(out, "{id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        Format::Json => {
            let rows: Vec<_> = images.iter().map(summary_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        }
        Format::Table => {
            let mut rows = Vec::new();
            for image in &images {
                let id = if args.no_trunc {
                    image.id.to_string()
                } else {
                    image.id.short().to_owned()
                };
                let created = image
                    .created
                    .as_deref()
                    .map_or_else(|| "N/A".to_owned(), human_age);
                let size = human_size(image.unpacked_size);
                if image.names.is_empty() {
                    rows.push([
                        "<none>".to_owned(),
                        "<none>".to_owned(),
                        id.clone(),
                        created.clone(),
                        size.clone(),
                    ]);
                }
                for name in &image.names {
                    let tag = name.tag().unwrap_or("<none>").to_owned();
                    rows.push([
                        name.familiar_repository(),
                        tag,
                        id.clone(),
                        created.clone(),
                        size.clone(),
                    ]);
                }
            }
            let header = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
            writeln!(out, "{}", table::plain(&header, rows))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_json(image: &ImageRecord) -> serde_json::Value {
    json!({
        "Id": image.id.to_string(),
        "Names": image.names.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "Digest": image.manifest.to_string(),
        "Created": image.created,
        "Size": image.unpacked_size,
        "BlobSize": image.blob_size(),
        "Layers": image.layers.len(),
    })
}

fn inspect(store: &Store, args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let mut shown = Vec::new();
    let mut failed = false;
    for reference in &args.images {
        match store.resolve(reference).and_then(|image| {
            let config = store.config(&image)?;
            Ok((image, config))
        }) {
            Ok((image, config)) => shown.push(json!({
                "Id": image.id.to_string(),
                "RepoTags": image.names.iter().map(ImageRef::familiar).collect::<Vec<_>>(),
                "Names": image.names.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "Digest": image.manifest.to_string(),
                "Created": image.created,
                "StoredAt": image.stored_at,
                "Os": image.os,
                "Architecture": image.architecture,
                "Size": image.unpacked_size,
                "BlobSize": image.blob_size(),
                "Config": config.config(),
                "RootFS": {
                    "Type": "layers",
                    "Layers": image.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
                },
                "Layers": image.layers,
            })),
            Err(err) => {
                eprintln!("berth: error: {err}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn rm(store: &Store, args: &RmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for reference in &args.images {
        match store.remove(reference, args.force) {
            Ok(removal) => {
                for name in &removal.untagged {
                    println!("Untagged: {}", name.familiar());
                }
                for id in &removal.deleted {
                    println!("Deleted: {id}");
                }
            }
            Err(err) => {
                eprintln!("berth: error: {err}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn prune(store: &Store, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let _ = args.force;
    let report = store.prune(args.all)?;
    if !report.images.is_empty() {
        println!("Deleted Images:");
        for id in &report.images {
            println!("deleted: {id}");
        }
    }
    println!(
        "Removed {} blobs and {} layers. Total reclaimed space: {}",
        report.blobs,
        report.layers,
        human_size(report.bytes)
    );
    Ok(ExitCode::SUCCESS)
}
