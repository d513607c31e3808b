//! `berth image pull REF`: an image from a registry into the image store, with a progress bar
//! per layer.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use berth_image::PullOptions;
use berth_types::ImageRef;
use clap::Args;

use super::progress::LayerBars;
use crate::Globals;

/// Worker threads of the pull's runtime: downloads are I/O bound.
const PULL_THREADS: usize = 2;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference, e.g. `127.0.0.1:5000/app:1` or `busybox@sha256:…`.
    #[arg(value_name = "REF")]
    reference: String,

    /// Speak plain HTTP to the registry (for a local registry without TLS).
    #[arg(long)]
    insecure: bool,

    /// Print only the image name when done; no progress.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(globals: &Globals, args: PullArgs) -> anyhow::Result<ExitCode> {
    let reference: ImageRef = args.reference.parse()?;
    let store = super::image::open_store(globals)?;
    let bars = LayerBars::new(!args.quiet && std::io::stderr().is_terminal());
    let options = PullOptions {
        insecure: args.insecure,
        ..PullOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(PULL_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let pulled = runtime.block_on(store.pull(&reference, &options, &bars))?;
    bars.clear();
    if args.quiet {
        println!("{reference}");
    } else {
        println!("Digest: {}", pulled.digest);
        if pulled.up_to_date {
            println!("Status: Image is up to date for {reference}");
        } else {
            println!("Status: Downloaded newer image for {reference}");
        }
        println!("Image: {}", pulled.image.id);
        println!("{reference}");
    }
    Ok(ExitCode::SUCCESS)
}
