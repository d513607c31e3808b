//! `container.log`: the container's output as docker's json-file driver writes it, one JSON
//! record per line of output, `{"log":"text\n","stream":"stdout","time":"<RFC 3339 ns>"}`,
//! rotated by size.
//!
//! A line longer than [`MAX_LINE`] is split into records; every record but the last of such a
//! line has no trailing newline in `log` (docker's partial records). Records are written with
//! one `write(2)` each, so a crash of the supervisor loses at most the line it was reading.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::config::{LogLimits, StateDir};

/// The longest piece of a line kept in one record (docker's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Which of the container's output streams a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Serialize)]
struct Record<'a> {
    log: &'a str,
    stream: Stream,
    time: &'a str,
}

/// Cuts a byte stream into lines (newline kept) and pieces of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`; calls `emit` with each complete line or full piece.
    pub fn feed(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let take = bytes.len().min(room);
            match bytes[..take].iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    self.pending.extend_from_slice(&bytes[..=newline]);
                    bytes = &bytes[newline + 1..];
                }
                None => {
                    self.pending.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.pending.len() < MAX_LINE {
                        continue;
                    }
                }
            }
            emit(&self.pending);
            self.pending.clear();
        }
    }

    /// Emits what is left of an unterminated last line (at the end of the stream).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// The live log file and its rotation.
#[derive(Debug)]
pub struct JsonLog {
    dir: StateDir,
    limits: LogLimits,
    file: File,
    size: u64,
}

fn open_append(path: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl JsonLog {
    /// Opens (or creates) the live log of `dir`, appending to what is there.
    pub fn open(dir: &StateDir, limits: LogLimits) -> std::io::Result<Self> {
        let file = open_append(&dir.log())?;
        let size = file.metadata()?.len();
        Ok(Self {
            dir: dir.clone(),
            limits,
            file,
            size,
        })
    }

    /// Appends one record of `text` from `stream` at `time`, rotating first if the record
    /// would take the live file past `max-size`.
    pub fn write(&mut self, stream: Stream, time: &str, text: &[u8]) -> std::io::Result<()> {
        let log = String::from_utf8_lossy(text);
        let mut line = serde_json::to_vec(&Record {
            log: &log,
            stream,
            time,
        })?;
        line.push(b'\n');
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.limits.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += len;
        Ok(())
    }

    /// `container.log` becomes `.1`, `.1` becomes `.2`, …; the oldest beyond `max-file` goes.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.limits.max_file <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.limits.max_file - 1).rev() {
            match std::fs::rename(self.dir.rotated_log(n), self.dir.rotated_log(n + 1)) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        std::fs::rename(self.dir.log(), self.dir.rotated_log(1))?;
        self.file = open_append(&self.dir.log())?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, &mut |piece| out.push(piece.to_vec()));
        }
        splitter.flush(&mut |piece| out.push(piece.to_vec()));
        out
    }

    #[test]
    fn output_is_cut_into_lines_across_reads() {
        assert_eq!(
            split(&[b"one\ntw", b"o\n", b"three"]),
            vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn a_long_line_is_split_into_partial_records() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut input = long.clone();
        input.push(b'\n');
        let pieces = split(&[&input[..100], &input[100..]]);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].len(), MAX_LINE);
        assert_eq!(pieces[1].len(), MAX_LINE);
        assert_eq!(pieces[2], b"xxxxxxxxxx\n");
    }

    #[test]
    fn records_are_docker_json_file_lines_and_rotation_keeps_max_file_files() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = StateDir::new(temp.path());
        let limits = LogLimits {
            max_size: 1000,
            max_file: 3,
        };
        let mut log = JsonLog::open(&dir, limits).expect("open");
        log.write(
            Stream::Stderr,
            "2026-11-28T00:00:00.000000001Z",
            b"\"hi\"\n",
        )
        .expect("write");
        let first = std::fs::read_to_string(dir.log()).expect("log");
        assert_eq!(
            first,
            "{\"log\":\"\\\"hi\\\"\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-28T00:00:00.000000001Z\"}\n"
        );
        for n in 0..200 {
            let text = format!("line {n}\n");
            log.write(Stream::Stdout, "t", text.as_bytes())
                .expect("write");
        }
        assert!(dir.rotated_log(2).exists());
        assert!(!dir.rotated_log(3).exists());
        for path in [dir.log(), dir.rotated_log(1), dir.rotated_log(2)] {
            let size = std::fs::metadata(&path).expect("log file").len();
            assert!(size <= 1000, "{} is {size} bytes", path.display());
        }
        let newest = std::fs::read_to_string(dir.log()).expect("log");
        assert!(
            newest.ends_with("{\"log\":\"line 199\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n")
        );
    }
}
