//! `berth exec`: runs a command in a running container, its output here, and exits with
//! its exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use berth_client::Client;
use berth_client::api::{ExecRequest, ExitFrame};
use berth_client::frame::StreamId;
use berth_runtime::ContainerPath;
use clap::Args;

use super::create_args::{environment, parse_user};
use super::exit_code;
use super::stdio::{self, RawTerminal};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Pass this process's stdin to the command.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Set an environment variable: NAME=VALUE, or NAME to pass this shell's value.
    #[arg(short, long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<ContainerPath>,
    /// User to run as: USER[:GROUP].
    #[arg(short, long, value_name = "USER[:GROUP]", value_parser = parse_user)]
    user: Option<String>,
    /// The container: a name, an id or a unique id prefix.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

pub async fn exec(client: &Client, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        anyhow::bail!("the input device is not a TTY: leave out -t when stdin is a pipe or a file");
    }
    let request = ExecRequest {
        cmd: args.command,
        env: environment(&[], &args.env, |name| std::env::var(name).ok())?,
        working_dir: args.workdir.as_ref().map(ToString::to_string),
        user: args.user,
        tty: args.tty,
        attach_stdin: args.interactive,
    };
    let (mut reader, mut writer) = client.exec(&args.container, &request).await?.split();
    let raw = if args.interactive && args.tty {
        RawTerminal::enable()?
    } else {
        None
    };
    if args.interactive {
        let tty = args.tty;
        tokio::spawn(async move {
            // The stream ending early (the process exited) ends the input.
            let _ = stdio::pump_stdin(writer, tty).await;
        });
    } else if let Some(size) = args.tty.then(stdio::terminal_size).flatten() {
        writer.resize(size).await?;
    }
    let mut exit = None;
    while let Some(frame) = reader.next().await? {
        match frame.stream {
            StreamId::Stdout => write_now(&mut std::io::stdout().lock(), &frame.payload)?,
            StreamId::Stderr => write_now(&mut std::io::stderr().lock(), &frame.payload)?,
            StreamId::Exit => {
                let frame: ExitFrame = serde_json::from_slice(&frame.payload)
                    .context("the daemon's exit frame is not valid")?;
                exit = Some(frame.exit_code);
                break;
            }
            StreamId::Stdin | StreamId::Resize => {
                anyhow::bail!(
                    "the daemon sent a {:?} frame, which only clients send",
                    frame.stream
                )
            }
        }
    }
    drop(raw);
    let code = exit.context("the exec stream ended without the process's exit code")?;
    Ok(exit_code(code))
}

fn write_now(out: &mut dyn Write, bytes: &[u8]) -> anyhow::Result<()> {
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
