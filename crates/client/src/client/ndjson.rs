//! Newline-delimited JSON answers (`logs`, streamed `stats`), decoded as the bytes arrive.

use std::marker::PhantomData;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::ClientError;

/// The longest line accepted: a log record holds at most 16 KiB of text (docs/adr/0013),
/// which JSON escaping can grow six-fold.
pub const MAX_LINE: usize = 1 << 20;

/// A stream of `T`, one JSON document per line of an HTTP body.
#[derive(Debug)]
pub struct NdjsonStream<T> {
    body: Incoming,
    request: String,
    buffer: Vec<u8>,
    /// How far `buffer` is known to hold no newline.
    scanned: usize,
    ended: bool,
    item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> NdjsonStream<T> {
    pub(super) fn new(body: Incoming, request: String) -> Self {
        Self {
            body,
            request,
            buffer: Vec::new(),
            scanned: 0,
            ended: false,
            item: PhantomData,
        }
    }

    /// The next item; `None` once the daemon has ended the answer. A line cut across any
    /// number of chunks is put back together; blank lines are skipped.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            if let Some(line) = self.take_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(self.decode(&line));
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(source)) => {
                    self.ended = true;
                    return Some(Err(ClientError::InvalidAnswer {
                        request: self.request.clone(),
                        reason: format!("the stream broke off: {source}"),
                    }));
                }
            }
            if self.buffer.len() > MAX_LINE && !self.buffer[self.scanned..].contains(&b'\n') {
                self.ended = true;
                self.buffer.clear();
                return Some(Err(ClientError::InvalidAnswer {
                    request: self.request.clone(),
                    reason: format!("a line is longer than {MAX_LINE} bytes"),
                }));
            }
        }
    }

    /// A complete line out of the buffer, or at the end of the body whatever is left.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        match self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset;
                let line = self.buffer.drain(..=end).take(end).collect();
                self.scanned = 0;
                Some(line)
            }
            None if self.ended && !self.buffer.is_empty() => {
                self.scanned = 0;
                Some(std::mem::take(&mut self.buffer))
            }
            None => {
                self.scanned = self.buffer.len();
                None
            }
        }
    }

    fn decode(&self, line: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(line).map_err(|err| ClientError::InvalidAnswer {
            request: self.request.clone(),
            reason: format!("line {:?}: {err}", String::from_utf8_lossy(line)),
        })
    }
}
