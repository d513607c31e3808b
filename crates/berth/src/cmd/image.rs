//! `berth image …`

use std::process::ExitCode;

use clap::Subcommand;

use crate::Globals;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {}

pub fn run(_globals: &Globals, command: ImageCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
