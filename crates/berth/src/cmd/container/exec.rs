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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use berth_client::Host;
    use berth_client::frame::Frame;
    use bytes::Bytes;
    use clap::Parser;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, StatusCode};
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::cmd::container::block_on;
    use berth_client::testing::{answer, serve};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExecArgs,
    }

    /// Runs `berth exec ARGS` against a daemon that upgrades and sends `frames`; returns the
    /// outcome and the exec request it received.
    fn exec_against(args: &[&str], frames: Vec<Frame>) -> (anyhow::Result<ExitCode>, ExecRequest) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        let cli = Cli::try_parse_from(std::iter::once("exec").chain(args.iter().copied())).unwrap();
        let received = Arc::new(Mutex::new(None));
        let seen = received.clone();
        let result = block_on(async {
            serve(&socket, move |request| {
                let frames = frames.clone();
                let seen = seen.clone();
                async move {
                    assert_eq!(request.uri().path(), "/v1/containers/box/exec");
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    *seen.lock().unwrap() = serde_json::from_slice::<ExecRequest>(&body).ok();
                    let request = Request::from_parts(parts, Full::new(Bytes::new()));
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(hyper::upgrade::on(request).await.unwrap());
                        for frame in frames {
                            io.write_all(&frame.encode()).await.unwrap();
                        }
                        io.shutdown().await.unwrap();
                    });
                    let mut response = answer(StatusCode::SWITCHING_PROTOCOLS, "");
                    let headers = response.headers_mut();
                    headers.insert("upgrade", "berth-stream".parse().unwrap());
                    headers.insert("connection", "Upgrade".parse().unwrap());
                    response
                }
            });
            exec(&Client::new(Host::unix(&socket)), cli.args).await
        });
        let request = received.lock().unwrap().take().expect("an exec request");
        (result, request)
    }

    #[test]
    fn exec_prints_the_output_and_exits_with_the_processs_code() {
        let frames = vec![
            Frame::new(StreamId::Stdout, b"out\n".to_vec()),
            Frame::new(StreamId::Stderr, b"err\n".to_vec()),
            Frame::new(StreamId::Exit, br#"{"ExitCode":5}"#.to_vec()),
        ];
        let (result, request) = exec_against(
            &[
                "-e", "A=1", "-w", "/tmp", "-u", "nobody", "box", "sh", "-c", "exit 5",
            ],
            frames,
        );
        assert_eq!(
            format!("{:?}", result.unwrap()),
            format!("{:?}", ExitCode::from(5))
        );
        assert_eq!(
            request,
            ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), "exit 5".into()],
                env: vec!["A=1".into()],
                working_dir: Some("/tmp".into()),
                user: Some("nobody".into()),
                tty: false,
                attach_stdin: false,
            }
        );
    }

    #[test]
    fn a_stream_without_an_exit_frame_is_an_error() {
        let frames = vec![Frame::new(StreamId::Stdout, b"partial".to_vec())];
        let (result, _) = exec_against(&["box", "true"], frames);
        let err = result.unwrap_err().to_string();
        assert_eq!(err, "the exec stream ended without the process's exit code");
    }
}
