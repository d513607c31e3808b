//! Reading a container's json-file log (`container.log` and its rotated `.1`, `.2`, …) for
//! `GET /v1/containers/{id}/logs`, and following it across rotations.
//!
//! Guarantees: records come oldest first; with `follow`, every record written before the
//! supervisor exits is sent exactly once (a rotated file is drained through the handle
//! already open before the new file is read), and the stream ends once the supervisor has
//! exited and the file is drained.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use berth_client::api::LogRecord;
use berth_runtime::supervisor::StateDir;
use chrono::{DateTime, Utc};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// The longest a follower waits between looks for new records; it wakes at once when the
/// state directory changes (a record written, a rotation, the supervisor's pid file removed
/// as it exits), so this only bounds how late an exit noticed otherwise is seen.
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// The most rotated files looked at (the supervisor keeps `max_file - 1`).
const MAX_ROTATED: u32 = 100;

/// Which records to send.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only the last N records of the existing log (follow continues after them).
    pub tail: Option<usize>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
}

fn parse_record(line: &str) -> Option<LogRecord> {
    serde_json::from_str(line).ok()
}

fn wanted(query: &LogQuery, record: &LogRecord) -> bool {
    match query.since {
        None => true,
        Some(since) => DateTime::parse_from_rfc3339(&record.time)
            .map(|t| t.with_timezone(&Utc) >= since)
            .unwrap_or(true),
    }
}

/// Reads complete lines from `reader` into `out`, leaving a partial last line unread.
fn read_lines(reader: &mut BufReader<File>, out: &mut Vec<LogRecord>) -> std::io::Result<()> {
    loop {
        let position = reader.stream_position()?;
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') {
            reader.seek(SeekFrom::Start(position))?;
            return Ok(());
        }
        if let Some(record) = parse_record(&line) {
            out.push(record);
        }
    }
}

/// Sends the log through `send` (which returns false when the reader is gone); with
/// `follow`, keeps tailing until `finished()` is true and the file is drained.
pub fn stream_logs(
    dir: &StateDir,
    query: &LogQuery,
    follow: bool,
    finished: &dyn Fn() -> bool,
    send: &mut dyn FnMut(LogRecord) -> bool,
) -> std::io::Result<()> {
    let mut existing = Vec::new();
    for n in (1..=MAX_ROTATED).rev() {
        if let Ok(file) = File::open(dir.rotated_log(n)) {
            read_lines(&mut BufReader::new(file), &mut existing)?;
        }
    }
    let mut live = match File::open(dir.log()) {
        Ok(file) => Some(BufReader::new(file)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    if let Some(reader) = live.as_mut() {
        read_lines(reader, &mut existing)?;
    }
    existing.retain(|r| wanted(query, r));
    let skip = query
        .tail
        .map_or(0, |tail| existing.len().saturating_sub(tail));
    for record in existing.into_iter().skip(skip) {
        if !send(record) {
            return Ok(());
        }
    }
    if !follow {
        return Ok(());
    }
    let changes = DirChanges::watch(dir.path());
    loop {
        // Read `finished` before draining, so records written before the exit are sent.
        let done = finished();
        let mut fresh = Vec::new();
        if let Some(reader) = live.as_mut() {
            read_lines(reader, &mut fresh)?;
        }
        // A rotation renamed our file away: drain it (done above), then open the new one.
        let rotated = match (&live, std::fs::metadata(dir.log())) {
            (Some(reader), Ok(meta)) => reader.get_ref().metadata()?.ino() != meta.ino(),
            (None, Ok(_)) => true,
            (_, Err(_)) => false,
        };
        if rotated {
            live = File::open(dir.log()).ok().map(BufReader::new);
            if let Some(reader) = live.as_mut() {
                read_lines(reader, &mut fresh)?;
            }
        }
        for record in fresh.into_iter().filter(|r| wanted(query, r)) {
            if !send(record) {
                return Ok(());
            }
        }
        if done && !rotated {
            return Ok(());
        }
        match &changes {
            Some(changes) => changes.wait(FOLLOW_POLL),
            None => std::thread::sleep(FOLLOW_POLL),
        }
    }
}

/// An inotify watch on a state directory: a follower sleeps until something in it changes.
struct DirChanges(Inotify);

impl DirChanges {
    /// `None` when inotify is not available (the follower then polls).
    fn watch(dir: &Path) -> Option<Self> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        let events = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM;
        inotify.add_watch(dir, events).ok()?;
        Some(Self(inotify))
    }

    /// Waits until something changed or `limit` passed, and forgets what changed.
    fn wait(&self, limit: Duration) {
        let timeout = PollTimeout::try_from(limit.as_millis()).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, timeout);
        while matches!(self.0.read_events(), Ok(events) if !events.is_empty()) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, time: &str) -> String {
        format!("{{\"log\":\"{text}\\n\",\"stream\":\"stdout\",\"time\":\"{time}\"}}\n")
    }

    #[test]
    fn rotated_files_come_first_and_tail_and_since_filter() {
        let temp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(temp.path());
        std::fs::write(dir.rotated_log(2), line("a", "2026-01-01T00:00:01Z")).unwrap();
        std::fs::write(dir.rotated_log(1), line("b", "2026-01-01T00:00:02Z")).unwrap();
        let live = line("c", "2026-01-01T00:00:03Z") + "{\"partial";
        std::fs::write(dir.log(), live).unwrap();
        let collect = |query: LogQuery| {
            let mut got = Vec::new();
            stream_logs(&dir, &query, false, &|| true, &mut |r| {
                got.push(r.log.trim().to_owned());
                true
            })
            .unwrap();
            got
        };
        assert_eq!(collect(LogQuery::default()), ["a", "b", "c"]);
        assert_eq!(
            collect(LogQuery {
                tail: Some(2),
                since: None
            }),
            ["b", "c"]
        );
        let since = DateTime::parse_from_rfc3339("2026-01-01T00:00:02Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            collect(LogQuery {
                tail: None,
                since: Some(since)
            }),
            ["b", "c"]
        );
    }
}
