//! Accepts an HTTP/2 `:authority` that carries a URL scheme, as etcd's Go gRPC server does.
//!
//! etcdctl 3.4 dials some commands' endpoints raw (`endpoint status`, `endpoint hashkv`,
//! `defrag`, `move-leader`): with `--endpoints http://127.0.0.1:2379` grpc-go sends the whole
//! URL as the `:authority` pseudo-header. The `h2` crate under tonic parses `:authority` as an
//! `http::uri::Authority`, fails on the scheme and resets the stream with `PROTOCOL_ERROR`
//! before tonic or berth sees the request, and has no option to relax that.
//!
//! [`AuthorityFix`] wraps each accepted client connection and transcodes the bytes the client
//! sends: every frame passes through untouched except a header block (HEADERS plus
//! CONTINUATION frames) holding a literal `:authority` whose value contains `://`. That one
//! HPACK literal is re-emitted with the same representation (so it enters the server's
//! dynamic table exactly when it entered the client's), the same name encoding and a value of
//! the same decoded length in which the scheme, and a path if there is one, become userinfo
//! (`http://h:2379` becomes `http:_@h:2379`, `http://h:2379/` becomes `http:__@h:2379`).
//! Equal lengths keep the server's dynamic
//! table byte for byte in step with the client's, so later requests that index the entry get
//! the fixed value too. To know which table index names `:authority`, the client's dynamic
//! table is tracked (entry names and sizes only). Anything the transcoder does not understand
//! (not HTTP/2, bad HPACK, a header block over [`MAX_BLOCK`]) switches the connection to plain
//! pass-through, so `h2` rejects it exactly as it would without the adapter. Writes pass
//! straight through. See docs/adr/0405-authority-with-scheme.md.

mod hpack;

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use hpack::{DynamicTable, Scratch, walk};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame emitted: `h2`'s default SETTINGS_MAX_FRAME_SIZE, which berth keeps.
const MAX_FRAME: usize = 16_384;
/// The largest header block (its frames, headers included) held back to be transcoded; a
/// larger one switches the connection to pass-through.
pub const MAX_BLOCK: usize = 64 * 1024;
/// Held bytes up to this many are put back in front of the next read into the reader's
/// buffer and scanned again; more are read behind and scanned once complete.
const SMALL_HOLD: usize = 4096;

/// A client connection whose `:authority` values with a scheme are made acceptable to `h2`
/// (see the module documentation). Reads are transcoded, writes pass straight through.
#[derive(Debug)]
pub struct AuthorityFix<IO> {
    io: IO,
    transcoder: Transcoder,
    /// Transcoded bytes not yet handed to the reader.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes read but not yet released, starting at a frame boundary: a partial frame
    /// header or header block (`held_needs_data`), or what followed a rewritten block.
    held: Vec<u8>,
    held_needs_data: bool,
    /// Set once the transcoder gave up: every byte passes unchanged from then on.
    passthrough: bool,
}

impl<IO> AuthorityFix<IO> {
    /// Wraps a freshly accepted client connection (nothing read from it yet).
    pub fn new(io: IO) -> Self {
        AuthorityFix {
            io,
            transcoder: Transcoder::new(),
            out: Vec::new(),
            out_pos: 0,
            held: Vec::new(),
            held_needs_data: false,
            passthrough: false,
        }
    }

    /// Scans the held bytes (which need no more data to be judged) into `out`.
    fn release_held(&mut self) {
        match self.transcoder.scan(&self.held) {
            Scan::All => {
                self.out.extend_from_slice(&self.held);
                self.held.clear();
            }
            Scan::Hold(pos) => {
                self.out.extend_from_slice(&self.held[..pos]);
                self.held.drain(..pos);
                self.held_needs_data = true;
            }
            Scan::Replace { start, end } => {
                self.out.extend_from_slice(&self.held[..start]);
                self.out.extend_from_slice(&self.transcoder.frames);
                self.held.drain(..end);
            }
            Scan::GiveUp => {
                self.passthrough = true;
                self.out.extend_from_slice(&self.held);
                self.held.clear();
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.passthrough {
                if !this.held.is_empty() {
                    std::mem::swap(&mut this.out, &mut this.held);
                    continue;
                }
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            if !this.held.is_empty() && !this.held_needs_data {
                this.release_held();
                continue;
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() > this.held.len() && this.held.len() <= SMALL_HOLD {
                // The usual path: read into the caller's buffer behind the held bytes (most
                // often none) and scan it there; only what must wait is copied out.
                let start = buf.filled().len();
                buf.put_slice(&this.held);
                let before = buf.filled().len();
                match Pin::new(&mut this.io).poll_read(cx, buf) {
                    Poll::Ready(Ok(())) => {}
                    other => {
                        buf.set_filled(start);
                        return other;
                    }
                }
                if buf.filled().len() == before {
                    buf.set_filled(start);
                    if this.held.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    // End of stream inside a frame: hand over what is left as it came.
                    this.passthrough = true;
                    continue;
                }
                this.held.clear();
                let data = &buf.filled()[start..];
                let released = match this.transcoder.scan(data) {
                    Scan::All => return Poll::Ready(Ok(())),
                    Scan::GiveUp => {
                        this.passthrough = true;
                        return Poll::Ready(Ok(()));
                    }
                    Scan::Hold(pos) => {
                        this.held.extend_from_slice(&data[pos..]);
                        this.held_needs_data = true;
                        pos
                    }
                    Scan::Replace { start: pos, end } => {
                        this.out.extend_from_slice(&this.transcoder.frames);
                        this.held.extend_from_slice(&data[end..]);
                        this.held_needs_data = false;
                        pos
                    }
                };
                buf.set_filled(start + released);
                if released > 0 {
                    return Poll::Ready(Ok(()));
                }
            } else {
                // A large part of a header block is held: read behind it, and scan again
                // only once the part that was missing has come.
                let mut space = [MaybeUninit::<u8>::uninit(); MAX_FRAME];
                let mut more = ReadBuf::uninit(&mut space);
                match Pin::new(&mut this.io).poll_read(cx, &mut more) {
                    Poll::Ready(Ok(())) => {}
                    other => return other,
                }
                if more.filled().is_empty() {
                    this.passthrough = true;
                    continue;
                }
                this.held.extend_from_slice(more.filled());
                if this.held.len() >= this.transcoder.wanted {
                    this.held_needs_data = false;
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for AuthorityFix<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Where the transcoder is in the client's byte stream.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Inside the connection preface, this many bytes of it seen.
    Preface(usize),
    /// Inside a frame's payload that passes untouched, this many bytes left.
    Payload(usize),
    /// At the start of a frame.
    Frame,
}

/// What [`Transcoder::scan`] found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// Release them all.
    All,
    /// Release those before `pos`; from `pos` on (a frame start) more data is needed.
    Hold(usize),
    /// Release those before `start`; `start..end` (a header block's frames) is to be
    /// replaced by `Transcoder::frames`; those from `end` on are not scanned yet.
    Replace { start: usize, end: usize },
    /// Not something to transcode: release these and all later bytes unchanged.
    GiveUp,
}

/// The input is not HTTP/2 and HPACK as the transcoder understands them.
#[derive(Debug)]
pub(super) struct Malformed;

/// The client->server stream's state, and the buffers it reuses.
#[derive(Debug)]
struct Transcoder {
    at: At,
    /// After [`Scan::Hold`]: how many bytes from the held position it needs at least.
    wanted: usize,
    table: DynamicTable,
    /// A header block spread over several frames, joined.
    block: Vec<u8>,
    scratch: Scratch,
    /// The frames of the last rewritten header block.
    frames: Vec<u8>,
}

/// A frame header (RFC 9113 §4.1).
struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream: [u8; 4],
}

impl FrameHeader {
    fn parse(b: &[u8]) -> FrameHeader {
        FrameHeader {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: [b[5] & 0x7f, b[6], b[7], b[8]],
        }
    }

    fn write(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: [u8; 4]) {
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        out.extend_from_slice(&stream);
    }
}

impl Transcoder {
    fn new() -> Self {
        Transcoder {
            at: At::Preface(0),
            wanted: 0,
            table: DynamicTable::new(),
            block: Vec::new(),
            scratch: Scratch::default(),
            frames: Vec::new(),
        }
    }

    /// Advances over `data`, the bytes that follow those scanned before (bytes held back
    /// are given again, at the frame start they were held at).
    fn scan(&mut self, data: &[u8]) -> Scan {
        let mut i = 0;
        loop {
            match self.at {
                At::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(data.len() - i);
                    if data[i..i + n] != PREFACE[seen..seen + n] {
                        return Scan::GiveUp;
                    }
                    i += n;
                    self.at = if seen + n == PREFACE.len() {
                        At::Frame
                    } else {
                        At::Preface(seen + n)
                    };
                }
                At::Payload(left) => {
                    let n = left.min(data.len() - i);
                    i += n;
                    self.at = if n == left {
                        At::Frame
                    } else {
                        At::Payload(left - n)
                    };
                }
                At::Frame => {
                    if data.len() - i < FRAME_HEADER {
                        self.wanted = FRAME_HEADER;
                        return if i == data.len() {
                            Scan::All
                        } else {
                            Scan::Hold(i)
                        };
                    }
                    let header = FrameHeader::parse(&data[i..i + FRAME_HEADER]);
                    match header.kind {
                        HEADERS => match self.header_block(data, i) {
                            Ok(Block::Incomplete) => return Scan::Hold(i),
                            Ok(Block::Unchanged(end)) => i = end,
                            Ok(Block::Rewritten(end)) => {
                                return Scan::Replace { start: i, end };
                            }
                            Err(Malformed) => return Scan::GiveUp,
                        },
                        // Only valid right after a HEADERS frame; PUSH_PROMISE never from a
                        // client. `h2` rejects both, so leave them to it.
                        CONTINUATION | PUSH_PROMISE => return Scan::GiveUp,
                        _ => {
                            i += FRAME_HEADER;
                            self.at = At::Payload(header.len);
                        }
                    }
                }
            }
            if i == data.len() {
                return Scan::All;
            }
        }
    }

    /// Handles the header block whose HEADERS frame starts at `data[start]`.
    fn header_block(&mut self, data: &[u8], start: usize) -> Result<Block, Malformed> {
        let first = FrameHeader::parse(&data[start..start + FRAME_HEADER]);
        // Find the block's end, checking that all its frames are here.
        let mut pos = start;
        let mut frames = 0;
        loop {
            if data.len() - pos < FRAME_HEADER {
                self.wanted = pos + FRAME_HEADER - start;
                return Ok(Block::Incomplete);
            }
            let header = FrameHeader::parse(&data[pos..pos + FRAME_HEADER]);
            if frames > 0 && (header.kind != CONTINUATION || header.stream != first.stream) {
                return Err(Malformed);
            }
            let end = pos + FRAME_HEADER + header.len;
            if end - start > MAX_BLOCK {
                return Err(Malformed);
            }
            if end > data.len() {
                self.wanted = end - start;
                return Ok(Block::Incomplete);
            }
            frames += 1;
            pos = end;
            if header.flags & END_HEADERS != 0 {
                break;
            }
        }
        let end = pos;
        // The first frame's fragment: its payload less padding and priority.
        let payload = &data[start + FRAME_HEADER..start + FRAME_HEADER + first.len];
        let mut offset = 0;
        let mut padding = 0;
        if first.flags & PADDED != 0 {
            padding = usize::from(*payload.first().ok_or(Malformed)?);
            offset = 1;
        }
        let priority_at = offset;
        if first.flags & PRIORITY != 0 {
            offset += 5;
        }
        if offset + padding > payload.len() {
            return Err(Malformed);
        }
        let fragment = &payload[offset..payload.len() - padding];
        let rewritten = if frames == 1 {
            walk(&mut self.table, fragment, &mut self.scratch)?
        } else {
            let mut block = std::mem::take(&mut self.block);
            block.clear();
            block.extend_from_slice(fragment);
            let mut pos = start + FRAME_HEADER + first.len;
            while pos < end {
                let header = FrameHeader::parse(&data[pos..pos + FRAME_HEADER]);
                block.extend_from_slice(&data[pos + FRAME_HEADER..pos + FRAME_HEADER + header.len]);
                pos += FRAME_HEADER + header.len;
            }
            let walked = walk(&mut self.table, &block, &mut self.scratch);
            self.block = block;
            walked?
        };
        if !rewritten {
            return Ok(Block::Unchanged(end));
        }
        // Frame the new block: HEADERS (priority kept, padding dropped), then CONTINUATION
        // frames if it outgrew one frame.
        let priority = if first.flags & PRIORITY != 0 {
            &payload[priority_at..priority_at + 5]
        } else {
            &[][..]
        };
        let frames = &mut self.frames;
        frames.clear();
        let mut rest = &self.scratch.block[..];
        let mut kind = HEADERS;
        let mut flags = first.flags & (END_STREAM | PRIORITY);
        let mut room = MAX_FRAME - priority.len();
        let mut lead = priority;
        loop {
            let n = rest.len().min(room);
            let last = n == rest.len();
            let end_headers = if last { END_HEADERS } else { 0 };
            FrameHeader::write(
                frames,
                lead.len() + n,
                kind,
                flags | end_headers,
                first.stream,
            );
            frames.extend_from_slice(lead);
            frames.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if last {
                break;
            }
            kind = CONTINUATION;
            flags = 0;
            room = MAX_FRAME;
            lead = &[];
        }
        Ok(Block::Rewritten(end))
    }
}

/// What became of a header block.
enum Block {
    /// Not all its frames are here yet.
    Incomplete,
    /// Passes as it is; the next frame starts at this offset.
    Unchanged(usize),
    /// Replaced by `Transcoder::frames`; the next frame starts at this offset.
    Rewritten(usize),
}

#[cfg(test)]
mod tests;
