//! The control socket's protocol (`control.sock` in the state directory): one JSON request
//! line per connection, one JSON answer line. `stop` is answered once the container has
//! exited, so a client (the daemon, `berth stop`) learns the final state from the answer.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::SupervisorError;
use super::state::ContainerState;

/// The longest request line the supervisor reads.
pub(crate) const MAX_REQUEST: u64 = 4096;

/// What a client asks the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// The container's current state.
    Status,
    /// SIGTERM, then SIGKILL after `timeout_secs`; answered when the container has exited
    /// for good (no restart follows a stop).
    Stop { timeout_secs: u64 },
    /// Sends `signal` (`"SIGHUP"`, `"HUP"` or `"1"`) to the container's init.
    Kill { signal: String },
    /// Sets the size of the container's terminal (a container run with `-t`).
    Resize { rows: u16, columns: u16 },
}

/// The supervisor's answer: the container's state, or why the request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    State(ContainerState),
    Error(String),
}

/// A signal named as docker's `kill -s` accepts it: `SIGHUP`, `HUP` or a number.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let upper = text.to_ascii_uppercase();
    if let Ok(number) = upper.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("unknown signal {text:?}"));
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("unknown signal {text:?}"))
}

/// Sends `request` to the supervisor of the state directory `dir` and waits at most
/// `timeout` for its answer.
pub fn request(
    dir: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, SupervisorError> {
    let socket = dir.join("control.sock");
    let error = |reason: String| SupervisorError::Control {
        socket: socket.clone(),
        reason,
    };
    let mut stream = UnixStream::connect(&socket).map_err(|err| error(err.to_string()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|err| error(err.to_string()))?;
    let mut line = serde_json::to_vec(request).map_err(|err| error(err.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|err| error(err.to_string()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|err| error(format!("no answer: {err}")))?;
    serde_json::from_str(&answer).map_err(|err| error(format!("bad answer {answer:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_docker_kill_names_them() {
        for text in ["SIGHUP", "hup", "HUP", "1"] {
            assert_eq!(parse_signal(text), Ok(Signal::SIGHUP), "{text}");
        }
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn requests_are_json_lines_tagged_by_op() {
        let stop = Request::Stop { timeout_secs: 3 };
        let text = serde_json::to_string(&stop).expect("json");
        assert_eq!(text, r#"{"op":"stop","timeout_secs":3}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).expect("parse"), stop);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"status"}"#).expect("parse"),
            Request::Status
        );
    }
}
