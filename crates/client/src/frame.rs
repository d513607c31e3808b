//! Frames of the bidirectional streams of `exec` and `attach`.
//!
//! After the daemon answers `101 Switching Protocols` (`Upgrade: berth-stream`), both sides
//! send frames on the connection: an 8-byte header — the [`StreamId`] in byte 0, three zero
//! bytes, the payload's length as a big-endian `u32` — then the payload. This is docker's
//! multiplexed-stream header, extended with the ids docker carries out of band:
//!
//! - client → daemon: [`StreamId::Stdin`] (an empty payload is end of input),
//!   [`StreamId::Resize`] (a JSON [`crate::api::ResizeFrame`]).
//! - daemon → client: [`StreamId::Stdout`], [`StreamId::Stderr`], then exactly one
//!   [`StreamId::Exit`] (a JSON [`crate::api::ExitFrame`]) after the last output, after which
//!   the daemon closes the connection.
//!
//! A frame larger than [`MAX_PAYLOAD`] is a protocol error.

/// Header length in bytes.
pub const HEADER_LEN: usize = 8;

/// The largest payload either side sends or accepts.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The upgrade protocol name in `Upgrade:` headers.
pub const UPGRADE_PROTOCOL: &str = "berth-stream";

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamId {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    Exit = 3,
    Resize = 4,
}

impl TryFrom<u8> for StreamId {
    type Error = FrameError;

    fn try_from(byte: u8) -> Result<Self, FrameError> {
        Ok(match byte {
            0 => Self::Stdin,
            1 => Self::Stdout,
            2 => Self::Stderr,
            3 => Self::Exit,
            4 => Self::Resize,
            other => return Err(FrameError::UnknownStream(other)),
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: StreamId,
    pub payload: Vec<u8>,
}

/// Why bytes are not a valid frame stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("stream frame has unknown stream id {0}")]
    UnknownStream(u8),
    #[error("stream frame header has non-zero padding")]
    Padding,
    #[error("stream frame of {0} bytes is larger than the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(usize),
}

impl Frame {
    pub fn new(stream: StreamId, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            stream,
            payload: payload.into(),
        }
    }

    /// The frame's bytes on the wire.
    ///
    /// # Panics
    /// When the payload is larger than [`MAX_PAYLOAD`]; senders cut their data into pieces
    /// no larger than that.
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.payload.len() <= MAX_PAYLOAD, "frame payload too large");
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.payload.len());
        bytes.push(self.stream as u8);
        bytes.extend_from_slice(&[0, 0, 0]);
        bytes.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    /// Parses an 8-byte header into the stream id and the payload length to read next.
    pub fn parse_header(header: [u8; HEADER_LEN]) -> Result<(StreamId, usize), FrameError> {
        let stream = StreamId::try_from(header[0])?;
        if header[1..4] != [0, 0, 0] {
            return Err(FrameError::Padding);
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        Ok((stream, len))
    }
}

/// Splits a byte stream into frames as bytes arrive, for readers that get arbitrary chunks.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(header) = self.buffer.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let (stream, len) = Frame::parse_header(*header)?;
        if self.buffer.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buffer[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buffer.drain(..HEADER_LEN + len);
        Ok(Some(Frame { stream, payload }))
    }

    /// Bytes received that do not yet form a frame (a truncated stream when the connection
    /// has ended).
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_chunking() {
        let frames = [
            Frame::new(StreamId::Stdout, b"hello\n".to_vec()),
            Frame::new(StreamId::Stdin, Vec::new()),
            Frame::new(StreamId::Exit, br#"{"ExitCode":3}"#.to_vec()),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for chunk in 1..wire.len() {
            let mut decoder = FrameDecoder::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "chunk size {chunk}");
            assert_eq!(decoder.pending(), 0);
        }
    }

    #[test]
    fn hostile_headers_are_refused() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Err(FrameError::UnknownStream(9)));
        let mut decoder = FrameDecoder::new();
        decoder.push(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(decoder.next_frame(), Err(FrameError::TooLarge(_))));
        let mut decoder = FrameDecoder::new();
        decoder.push(&[1, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Err(FrameError::Padding));
    }
}
