//! The local terminal and standard streams of `run` and `exec`: raw mode, the terminal's
//! size, stdin read on its own thread, container output written as it arrives.

use std::io::{IsTerminal, Read, Write};

use anyhow::Context;
use berth_client::api::{LogRecord, ResizeFrame};
use berth_client::{FrameWriter, NdjsonStream};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// The local terminal in raw mode (keys go to the container as typed, Ctrl-C included);
/// restored when dropped.
#[derive(Debug)]
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Raw mode on stdin if it is a terminal; `None` when it is not.
    pub fn enable() -> anyhow::Result<Option<Self>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(&stdin).context("cannot read the terminal's settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)
            .context("cannot put the terminal in raw mode")?;
        Ok(Some(Self { saved }))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size of the terminal on stdout (or stdin), if either is one.
pub fn terminal_size() -> Option<ResizeFrame> {
    [libc::STDOUT_FILENO, libc::STDIN_FILENO]
        .into_iter()
        .find_map(|fd| {
            let mut size = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to a
            // live, writable `winsize`; a non-terminal fd makes it fail without writing.
            let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
            (ok && size.ws_row > 0).then_some(ResizeFrame {
                height: size.ws_row,
                width: size.ws_col,
            })
        })
}

/// Chunks of stdin as they are read, on a thread of their own (a read of a terminal cannot
/// be cancelled; the thread ends with the process). The channel closes at end of input.
pub fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(8);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0; 32 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    receiver
}

/// Sends stdin to the daemon as frames, and an empty frame at its end; with a terminal, its
/// size now and after every change (SIGWINCH). Returns when stdin has ended, or when the
/// connection fails.
pub async fn pump_stdin(mut writer: FrameWriter, tty: bool) -> anyhow::Result<()> {
    let mut winch = if tty {
        if let Some(size) = terminal_size() {
            writer.resize(size).await?;
        }
        Some(signal(SignalKind::window_change()).context("cannot watch the terminal's size")?)
    } else {
        None
    };
    let mut chunks = stdin_chunks();
    loop {
        tokio::select! {
            chunk = chunks.recv() => match chunk {
                Some(bytes) => writer.stdin(&bytes).await?,
                None => {
                    writer.close_stdin().await?;
                    return Ok(());
                }
            },
            Some(()) = async { winch.as_mut()?.recv().await } => {
                if let Some(size) = terminal_size() {
                    writer.resize(size).await?;
                }
            }
        }
    }
}

/// Writes one log record to stdout or stderr (by its stream), with its time first when
/// `timestamps`, and flushes it so a reader sees it at once.
pub fn write_record(record: &LogRecord, timestamps: bool) -> std::io::Result<()> {
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        if timestamps {
            write!(out, "{} ", record.time)?;
        }
        out.write_all(record.log.as_bytes())?;
        out.flush()
    };
    if record.stream == "stderr" {
        write(&mut std::io::stderr().lock())
    } else {
        write(&mut std::io::stdout().lock())
    }
}

/// Writes every record of `logs` until the daemon ends the stream.
pub async fn print_logs(mut logs: NdjsonStream<LogRecord>, timestamps: bool) -> anyhow::Result<()> {
    while let Some(record) = logs.next().await {
        write_record(&record?, timestamps).context("cannot write the container's output")?;
    }
    Ok(())
}
