//! The bidirectional frame streams of `attach` and `exec`, after the HTTP upgrade.

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::ClientError;
use crate::api::ResizeFrame;
use crate::frame::{Frame, FrameDecoder, MAX_PAYLOAD, StreamId};

type Io = TokioIo<Upgraded>;

/// An upgraded connection carrying [`Frame`]s both ways.
#[derive(Debug)]
pub struct FrameStream {
    reader: FrameReader,
    writer: FrameWriter,
}

impl FrameStream {
    pub(super) fn new(upgraded: Upgraded) -> Self {
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        Self {
            reader: FrameReader {
                io: read,
                decoder: FrameDecoder::new(),
                buffer: vec![0; 64 * 1024],
            },
            writer: FrameWriter { io: write },
        }
    }

    /// The receiving and sending halves, to use from two tasks.
    pub fn split(self) -> (FrameReader, FrameWriter) {
        (self.reader, self.writer)
    }
}

/// Frames from the daemon.
#[derive(Debug)]
pub struct FrameReader {
    io: ReadHalf<Io>,
    decoder: FrameDecoder,
    buffer: Vec<u8>,
}

impl FrameReader {
    /// The next frame; `None` when the daemon closed the connection between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, ClientError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            let n = self
                .io
                .read(&mut self.buffer)
                .await
                .map_err(ClientError::Stream)?;
            if n == 0 {
                if self.decoder.pending() > 0 {
                    return Err(ClientError::Stream(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the connection ended inside a frame ({} bytes left over)",
                            self.decoder.pending()
                        ),
                    )));
                }
                return Ok(None);
            }
            self.decoder.push(&self.buffer[..n]);
        }
    }
}

/// Frames to the daemon.
#[derive(Debug)]
pub struct FrameWriter {
    io: WriteHalf<Io>,
}

impl FrameWriter {
    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), ClientError> {
        self.io
            .write_all(&frame.encode())
            .await
            .map_err(ClientError::Stream)?;
        self.io.flush().await.map_err(ClientError::Stream)
    }

    /// Sends `bytes` as stdin, cut into frames no larger than [`MAX_PAYLOAD`]; an empty
    /// slice sends nothing (see [`Self::close_stdin`]).
    pub async fn stdin(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        for piece in bytes.chunks(MAX_PAYLOAD) {
            self.send(&Frame::new(StreamId::Stdin, piece)).await?;
        }
        Ok(())
    }

    /// Tells the daemon stdin has ended (an empty stdin frame).
    pub async fn close_stdin(&mut self) -> Result<(), ClientError> {
        self.send(&Frame::new(StreamId::Stdin, Vec::new())).await
    }

    /// Tells the daemon the terminal's size.
    pub async fn resize(&mut self, size: ResizeFrame) -> Result<(), ClientError> {
        let payload = serde_json::to_vec(&size).expect("two integers always serialize");
        self.send(&Frame::new(StreamId::Resize, payload)).await
    }

    /// Closes the sending side of the connection.
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        self.io.shutdown().await.map_err(ClientError::Stream)
    }
}
