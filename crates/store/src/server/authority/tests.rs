//! Header blocks built by hand per RFC 7541 go through [`AuthorityFix`]; what comes out is
//! decoded by an independent HPACK decoder (`loona-hpack`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::hpack::*;
use super::*;

const SETTINGS: u8 = 0x4;
const DATA: u8 = 0x0;

/// How a literal's name is given.
#[derive(Clone, Copy)]
enum Name<'a> {
    Index(usize),
    Literal(&'a str),
}

/// Appends a string literal, Huffman-encoded if asked.
fn string_into(out: &mut Vec<u8>, s: &str, huffman: bool) {
    let mut encoded = Vec::new();
    put_string(out, s.as_bytes(), huffman, &mut encoded).unwrap();
}

/// Appends a literal field: `kind` 0x40 (incremental indexing), 0x00 (without indexing) or
/// 0x10 (never indexed).
fn literal_into(out: &mut Vec<u8>, kind: u8, name: Name<'_>, value: &str, huffman: bool) {
    let prefix = if kind == 0x40 { 6 } else { 4 };
    match name {
        Name::Index(i) => put_integer(out, i, prefix, kind),
        Name::Literal(n) => {
            put_integer(out, 0, prefix, kind);
            string_into(out, n, huffman);
        }
    }
    string_into(out, value, huffman);
}

fn indexed_into(out: &mut Vec<u8>, index: usize) {
    put_integer(out, index, 7, 0x80);
}

fn frame_into(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    FrameHeader::write(out, payload.len(), kind, flags, stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The preface and an empty SETTINGS frame, as a client starts.
fn connection_start() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame_into(&mut out, SETTINGS, 0, 0, &[]);
    out
}

/// A gRPC request's header block; `authority` as literal with incremental indexing.
fn request_block(authority: &str, huffman: bool) -> Vec<u8> {
    let mut b = Vec::new();
    indexed_into(&mut b, 3); // :method POST
    indexed_into(&mut b, 6); // :scheme http
    literal_into(
        &mut b,
        0x40,
        Name::Index(4),
        "/etcdserverpb.Maintenance/Status",
        huffman,
    );
    literal_into(&mut b, 0x40, Name::Index(1), authority, huffman);
    literal_into(&mut b, 0x40, Name::Index(31), "application/grpc", huffman);
    literal_into(&mut b, 0x40, Name::Literal("te"), "trailers", huffman);
    literal_into(
        &mut b,
        0x00,
        Name::Literal("user-agent"),
        "grpc-go/1.26.0",
        huffman,
    );
    b
}

/// The same request again, everything but the user agent by dynamic index (newest first:
/// te 62, content-type 63, :authority 64, :path 65).
fn repeat_block() -> Vec<u8> {
    let mut b = Vec::new();
    for i in [3, 6, 65, 64, 63, 62] {
        indexed_into(&mut b, i);
    }
    literal_into(&mut b, 0x00, Name::Index(58), "grpc-go/1.26.0", false);
    b
}

fn headers(authority: &str) -> Vec<(String, String)> {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/etcdserverpb.Maintenance/Status"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", "grpc-go/1.26.0"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// Two requests on one connection, with a DATA frame between; the first block split into
/// `pieces` frames (HEADERS then CONTINUATION), the first frame padded and with priority if
/// `padded`.
fn two_requests(authority: &str, huffman: bool, pieces: usize, padded: bool) -> Vec<u8> {
    let mut out = connection_start();
    let block = request_block(authority, huffman);
    let chunk = block.len().div_ceil(pieces);
    for (n, part) in block.chunks(chunk).enumerate() {
        let last = (n + 1) * chunk >= block.len();
        let end_headers = if last { END_HEADERS } else { 0 };
        if n == 0 {
            let mut payload = Vec::new();
            let mut flags = end_headers;
            if padded {
                flags |= PADDED | PRIORITY;
                payload.push(3);
                payload.extend_from_slice(&[0x80, 0, 0, 0, 15]);
            }
            payload.extend_from_slice(part);
            if padded {
                payload.extend_from_slice(&[0, 0, 0]);
            }
            frame_into(&mut out, HEADERS, flags, 1, &payload);
        } else {
            frame_into(&mut out, CONTINUATION, end_headers, 1, part);
        }
    }
    frame_into(&mut out, DATA, END_STREAM, 1, &[0, 0, 0, 0, 2, 8, 1]);
    frame_into(&mut out, HEADERS, END_HEADERS, 3, &repeat_block());
    frame_into(&mut out, DATA, END_STREAM, 3, &[0, 0, 0, 0, 0]);
    out
}

/// Decodes a client stream: the header lists of its header blocks, in order, checking that
/// no frame is over the default maximum size.
fn decode(stream: &[u8]) -> Vec<Vec<(String, String)>> {
    assert_eq!(&stream[..PREFACE.len()], PREFACE);
    let mut decoder = loona_hpack::Decoder::new();
    let mut lists = Vec::new();
    let mut block = Vec::new();
    let mut i = PREFACE.len();
    while i < stream.len() {
        let h = FrameHeader::parse(&stream[i..i + FRAME_HEADER]);
        assert!(h.len <= MAX_FRAME, "frame of {} bytes", h.len);
        let payload = &stream[i + FRAME_HEADER..i + FRAME_HEADER + h.len];
        i += FRAME_HEADER + h.len;
        let fragment = match h.kind {
            HEADERS => {
                let pad = if h.flags & PADDED != 0 {
                    usize::from(payload[0])
                } else {
                    0
                };
                let mut start = usize::from(h.flags & PADDED != 0);
                if h.flags & PRIORITY != 0 {
                    start += 5;
                }
                &payload[start..payload.len() - pad]
            }
            CONTINUATION => payload,
            _ => continue,
        };
        block.extend_from_slice(fragment);
        if h.flags & END_HEADERS != 0 {
            let list = decoder.decode(&block).expect("the output decodes");
            lists.push(
                list.into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect(),
            );
            block.clear();
        }
    }
    lists
}

/// A reader that hands out `chunk` bytes at a time, answering `Pending` (and waking at once)
/// before each.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    ready: bool,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        let n = self
            .chunk
            .min(self.data.len() - self.pos)
            .min(buf.remaining());
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Everything `input` becomes through the adapter, fed `chunk` bytes at a time and read with
/// a buffer of `buf` bytes.
async fn through(input: &[u8], chunk: usize, buf: usize) -> Vec<u8> {
    let mut fix = AuthorityFix::new(Trickle {
        data: input.to_vec(),
        pos: 0,
        chunk,
        ready: false,
    });
    let mut out = Vec::new();
    let mut b = vec![0; buf];
    loop {
        let n = fix.read(&mut b).await.unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[..n]);
    }
}

async fn through_whole(input: &[u8]) -> Vec<u8> {
    through(input, input.len(), 64 * 1024).await
}

#[test]
fn rewritten_values_are_authorities_http_accepts() {
    for (url, fixed, host, port) in [
        (
            "http://127.0.0.1:2379",
            "http:_@127.0.0.1:2379",
            "127.0.0.1",
            Some(2379),
        ),
        (
            "https://etcd.example:2379",
            "https:_@etcd.example:2379",
            "etcd.example",
            Some(2379),
        ),
        (
            "http://[::1]:2379",
            "http:_@[::1]:2379",
            "[::1]",
            Some(2379),
        ),
        (
            "unix://localhost:1234",
            "unix:_@localhost:1234",
            "localhost",
            Some(1234),
        ),
        // A path (`--endpoints http://h:2379/`) joins the scheme in the userinfo.
        (
            "http://127.0.0.1:2379/",
            "http:__@127.0.0.1:2379",
            "127.0.0.1",
            Some(2379),
        ),
        (
            "http://etcd.example/v3/",
            "http:_____@etcd.example",
            "etcd.example",
            None,
        ),
        (
            "http://[::1]:2379/a/b",
            "http:_____@[::1]:2379",
            "[::1]",
            Some(2379),
        ),
    ] {
        assert!(
            http::uri::Authority::from_str(url).is_err(),
            "{url} is refused unfixed"
        );
        let mut block = Vec::new();
        literal_into(&mut block, 0x00, Name::Index(1), url, false);
        let mut table = DynamicTable::new();
        let mut scratch = Scratch::default();
        assert!(walk(&mut table, &block, &mut scratch).unwrap());
        let list = loona_hpack::Decoder::new().decode(&scratch.block).unwrap();
        assert_eq!(list[0].1, fixed.as_bytes());
        let authority = http::uri::Authority::from_str(fixed).expect(fixed);
        assert_eq!(
            (authority.host(), authority.port_u16()),
            (host, port),
            "{fixed}"
        );
    }
}

#[tokio::test]
async fn an_indexed_authority_with_a_scheme_is_fixed_where_inserted_and_where_referenced() {
    for huffman in [false, true] {
        let input = two_requests("http://127.0.0.1:2379", huffman, 1, false);
        assert_eq!(
            decode(&input),
            [
                headers("http://127.0.0.1:2379"),
                headers("http://127.0.0.1:2379")
            ],
            "the input is what it claims"
        );
        let output = through_whole(&input).await;
        assert_eq!(
            decode(&output),
            [
                headers("http:_@127.0.0.1:2379"),
                headers("http:_@127.0.0.1:2379")
            ],
            "huffman {huffman}"
        );
    }
}

#[tokio::test]
async fn blocks_without_a_scheme_pass_byte_for_byte() {
    let input = two_requests("127.0.0.1:2379", true, 1, false);
    assert_eq!(through_whole(&input).await, input);
    // RFC 7541 C.4.1: a Huffman-coded :authority of www.example.com, indexed.
    let mut input = connection_start();
    let block = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    frame_into(&mut input, HEADERS, END_HEADERS, 1, &block);
    assert_eq!(through_whole(&input).await, input);
    assert_eq!(
        decode(&input)[0][3],
        (":authority".into(), "www.example.com".into())
    );
}

#[tokio::test]
async fn continuation_frames_padding_and_priority() {
    for pieces in [2, 3, 7] {
        for padded in [false, true] {
            for huffman in [false, true] {
                let input = two_requests("https://etcd.example:2379", huffman, pieces, padded);
                let output = through_whole(&input).await;
                assert_eq!(
                    decode(&output),
                    [
                        headers("https:_@etcd.example:2379"),
                        headers("https:_@etcd.example:2379")
                    ],
                    "{pieces} pieces, padded {padded}, huffman {huffman}"
                );
                if padded {
                    // The priority fields survive (exclusive, stream 0, weight 15).
                    let at = connection_start().len();
                    let h = FrameHeader::parse(&output[at..]);
                    assert_eq!(h.flags & (PADDED | PRIORITY), PRIORITY);
                    let prio = &output[at + FRAME_HEADER..at + FRAME_HEADER + 5];
                    assert_eq!(prio, [0x80, 0, 0, 0, 15]);
                }
            }
        }
    }
}

#[tokio::test]
async fn any_split_of_the_input_gives_the_same_output() {
    let mut input = two_requests("http://127.0.0.1:2379", true, 3, true);
    input
        .extend_from_slice(&two_requests("http://10.0.0.1:2379", false, 1, false)[PREFACE.len()..]);
    let whole = through_whole(&input).await;
    assert_eq!(decode(&whole).len(), 4);
    for chunk in [1, 2, 3, 5, 9, 10, 64] {
        for buf in [1, 7, 9, 100, 16 * 1024] {
            assert_eq!(
                through(&input, chunk, buf).await,
                whole,
                "fed {chunk} at a time, read {buf} at a time"
            );
        }
    }
}

#[tokio::test]
async fn a_block_that_outgrows_one_frame_is_split() {
    // Values that grow when Huffman coded as the rewrite needs: one frame of exactly the
    // maximum size before.
    let mut block = Vec::new();
    literal_into(
        &mut block,
        0x40,
        Name::Index(1),
        "http://127.0.0.1:2379",
        true,
    );
    // The filler literal: its prefix, name length, name and a 3-octet value length.
    let filler = MAX_FRAME - block.len() - 6;
    literal_into(
        &mut block,
        0x00,
        Name::Literal("x"),
        &"a".repeat(filler),
        false,
    );
    assert_eq!(block.len(), MAX_FRAME);
    let mut input = connection_start();
    frame_into(&mut input, HEADERS, END_HEADERS | END_STREAM, 1, &block);
    let output = through_whole(&input).await;
    let lists = decode(&output);
    assert_eq!(lists[0][0].1, "http:_@127.0.0.1:2379");
    assert_eq!(lists[0][1].1.len(), filler);
    let at = connection_start().len();
    let first = FrameHeader::parse(&output[at..]);
    assert_eq!(
        (first.kind, first.flags & (END_HEADERS | END_STREAM)),
        (HEADERS, END_STREAM)
    );
    let next = FrameHeader::parse(&output[at + FRAME_HEADER + first.len..]);
    assert_eq!((next.kind, next.flags), (CONTINUATION, END_HEADERS));
    // Held back whole while it trickles in, whatever the reader's buffer.
    for chunk in [1, 1000] {
        for buf in [7, 5000, 64 * 1024] {
            assert_eq!(through(&input, chunk, buf).await, output, "{chunk}/{buf}");
        }
    }
}

#[tokio::test]
async fn the_table_is_followed_through_eviction_size_updates_and_literal_names() {
    let mut input = connection_start();
    let mut b = Vec::new();
    // Shrink to 0 (empties it) and grow back to 200: room for few entries.
    put_integer(&mut b, 0, 5, 0x20);
    put_integer(&mut b, 200, 5, 0x20);
    literal_into(
        &mut b,
        0x40,
        Name::Literal(":authority"),
        "http://a:1",
        true,
    ); // 52 bytes
    literal_into(&mut b, 0x40, Name::Literal("referer"), "http://b:2", false); // 49
    literal_into(&mut b, 0x40, Name::Index(63), "https://c:3", false); // :authority, 53
    literal_into(&mut b, 0x10, Name::Index(63), "http://d:4", true); // referer: not fixed
    literal_into(&mut b, 0x40, Name::Literal("big"), &"x".repeat(100), false); // evicts 2
    indexed_into(&mut b, 63); // https://c:3 (now fixed)
    literal_into(&mut b, 0x00, Name::Index(63), "http://e:5", false); // :authority by name
    frame_into(&mut input, HEADERS, END_HEADERS, 1, &b);
    let lists = decode(&through_whole(&input).await);
    let values: Vec<&str> = lists[0].iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        [
            "http:_@a:1",
            "http://b:2",
            "https:_@c:3",
            "http://d:4",
            &"x".repeat(100),
            "https:_@c:3",
            "http:_@e:5"
        ]
    );
}

#[tokio::test]
async fn malformed_input_passes_unchanged() {
    let later = two_requests("http://127.0.0.1:2379", false, 1, false);
    let later = &later[PREFACE.len()..];
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push((
        "not HTTP/2",
        b"GET / HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec(),
    ));
    let mut bad_index = connection_start();
    frame_into(&mut bad_index, HEADERS, END_HEADERS, 1, &[0x80]);
    cases.push(("index 0", bad_index));
    let mut beyond = connection_start();
    frame_into(&mut beyond, HEADERS, END_HEADERS, 1, &[0xbe]);
    cases.push(("an index past the table", beyond));
    let mut cut = connection_start();
    frame_into(&mut cut, HEADERS, END_HEADERS, 1, &[0x41, 0x0a, b'h']);
    cases.push(("a string past the block", cut));
    let mut bad_huffman = connection_start();
    frame_into(
        &mut bad_huffman,
        HEADERS,
        END_HEADERS,
        1,
        &[0x41, 0x84, 0xff, 0xff, 0xff, 0xff],
    );
    cases.push(("bad Huffman padding", bad_huffman));
    let mut lone = connection_start();
    frame_into(&mut lone, CONTINUATION, END_HEADERS, 1, &[0x82]);
    cases.push(("CONTINUATION without HEADERS", lone));
    let mut other_stream = connection_start();
    frame_into(&mut other_stream, HEADERS, 0, 1, &[0x82]);
    frame_into(&mut other_stream, CONTINUATION, END_HEADERS, 3, &[0x82]);
    cases.push(("CONTINUATION of another stream", other_stream));
    let mut huge = connection_start();
    frame_into(&mut huge, HEADERS, 0, 1, &[0x82; MAX_FRAME]);
    for _ in 0..MAX_BLOCK / MAX_FRAME {
        frame_into(&mut huge, CONTINUATION, 0, 1, &[0x82; MAX_FRAME]);
    }
    cases.push(("a block over the limit", huge));
    let mut padding = connection_start();
    frame_into(&mut padding, HEADERS, END_HEADERS | PADDED, 1, &[9, 0x82]);
    cases.push(("padding past the frame", padding));
    for (what, mut input) in cases {
        input.extend_from_slice(later);
        for chunk in [1, 4096] {
            assert_eq!(through(&input, chunk, 8192).await, input, "{what}");
        }
    }
    // Cut off inside a header block: what came is handed over as it came.
    let input = &two_requests("http://127.0.0.1:2379", false, 2, false)[..60];
    assert_eq!(through(input, 7, 8192).await, input);
}

#[test]
fn the_static_table_names_match_an_independent_decoder() {
    let mut decoder = loona_hpack::Decoder::new();
    for (i, name) in STATIC_NAMES.iter().enumerate() {
        let list = decoder.decode(&[0x80 | (i as u8 + 1)]).unwrap();
        assert_eq!(list[0].0, name.as_bytes(), "static index {}", i + 1);
    }
}

/// One header field of a generated block; dynamic references are resolved against a model of
/// the table when encoded (`k` picks among the live entries).
#[derive(Debug, Clone)]
enum Field {
    Indexed {
        dynamic: bool,
        k: usize,
    },
    Literal {
        kind: u8,
        name: u8,
        value: String,
        huffman: bool,
    },
}

fn field() -> impl proptest::strategy::Strategy<Value = Field> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<bool>(), 0..64usize).prop_map(|(dynamic, k)| Field::Indexed { dynamic, k }),
        (
            prop::sample::select(vec![0x40u8, 0x00, 0x10]),
            0..9u8,
            "(https?://)?[a-z0-9.]{1,12}(:[0-9]{1,4})?(/[a-z0-9/]{0,6})?",
            any::<bool>()
        )
            .prop_map(|(kind, name, value, huffman)| Field::Literal {
                kind,
                name,
                value,
                huffman
            }),
    ]
}

/// Encodes generated blocks (each with an optional table size update first) as a client
/// stream, each block split into `pieces` frames, keeping a model of the client's table.
fn encode_blocks(blocks: &[(Option<usize>, Vec<Field>)], pieces: usize) -> Vec<u8> {
    // (name length, entry size), newest first.
    let mut sizes: VecDeque<(usize, usize)> = VecDeque::new();
    let mut max = 4096;
    let mut out = connection_start();
    for (n, (update, fields)) in blocks.iter().enumerate() {
        let mut b = Vec::new();
        let evict = |sizes: &mut VecDeque<(usize, usize)>, room: usize| {
            while sizes.iter().map(|e| e.1).sum::<usize>() > room {
                sizes.pop_back();
            }
        };
        if let Some(size) = update {
            max = *size;
            put_integer(&mut b, max, 5, 0x20);
            evict(&mut sizes, max);
        }
        for f in fields {
            match f {
                Field::Indexed { dynamic, k } => {
                    if *dynamic && !sizes.is_empty() {
                        indexed_into(&mut b, 62 + k % sizes.len());
                    } else {
                        indexed_into(&mut b, 1 + k % 61);
                    }
                }
                Field::Literal {
                    kind,
                    name,
                    value,
                    huffman,
                } => {
                    let (name, name_len) = match name {
                        0 => (Name::Index(1), 10),
                        1 => (Name::Index(4), 5),
                        2 => (Name::Literal(":authority"), 10),
                        3 => (Name::Literal("x-a"), 3),
                        4 => (Name::Index(58), 10),
                        // A live dynamic entry's name.
                        n if !sizes.is_empty() => {
                            let k = (usize::from(*n) + value.len()) % sizes.len();
                            (Name::Index(62 + k), sizes[k].0)
                        }
                        _ => (Name::Index(1), 10),
                    };
                    literal_into(&mut b, *kind, name, value, *huffman);
                    if *kind == 0x40 {
                        let size = name_len + value.len() + 32;
                        if size > max {
                            sizes.clear();
                        } else {
                            evict(&mut sizes, max - size);
                            sizes.push_front((name_len, size));
                        }
                    }
                }
            }
        }
        let stream = 1 + 2 * n as u32;
        let chunk = b.len().div_ceil(pieces).max(1);
        let parts: Vec<&[u8]> = if b.is_empty() {
            vec![&[]]
        } else {
            b.chunks(chunk).collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let end = if i + 1 == parts.len() { END_HEADERS } else { 0 };
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            frame_into(&mut out, kind, end, stream, part);
        }
        frame_into(&mut out, DATA, END_STREAM, stream, &[0; 5]);
    }
    out
}

/// The rewrite, specified on its own: `scheme://host/path` becomes `scheme:_…_@host`, the
/// same length; a value without `://` is left alone.
fn fixed(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let host = rest.split('/').next().unwrap_or_default();
    let pad = value.len() - scheme.len() - 2 - host.len();
    format!("{scheme}:{}@{host}", "_".repeat(pad))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
    /// Whatever the mix of representations, Huffman or not, table size updates and splits,
    /// the output decodes to the input's headers with each `:authority` [`fixed`].
    #[test]
    fn generated_streams_decode_to_the_input_with_authorities_fixed(
        blocks in proptest::collection::vec(
            (
                proptest::option::of(proptest::sample::select(vec![0usize, 64, 100, 150, 200, 4096])),
                proptest::collection::vec(field(), 1..12),
            ),
            1..6,
        ),
        pieces in 1..4usize,
        chunk in 1..200usize,
        buf in proptest::sample::select(vec![5usize, 64, 8192]),
    ) {
        let input = encode_blocks(&blocks, pieces);
        let expected: Vec<Vec<(String, String)>> = decode(&input)
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|(n, v)| {
                        let v = if n == ":authority" { fixed(&v) } else { v };
                        (n, v)
                    })
                    .collect()
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let output = runtime.block_on(through(&input, chunk, buf));
        proptest::prop_assert_eq!(decode(&output), expected);
    }
}

#[tokio::test]
async fn entries_that_fill_the_table_exactly_stay_in_it() {
    let mut b = Vec::new();
    put_integer(&mut b, 0, 5, 0x20);
    put_integer(&mut b, 200, 5, 0x20);
    // 10 + 58 + 32 = 100 and 3 + 65 + 32 = 100: exactly the table's 200.
    let a = format!("http://a:1{}", "0".repeat(48));
    literal_into(&mut b, 0x40, Name::Index(1), &a, false);
    literal_into(&mut b, 0x40, Name::Literal("x-a"), &"y".repeat(65), true);
    literal_into(&mut b, 0x00, Name::Index(63), "http://z:9", false);
    let mut input = connection_start();
    frame_into(&mut input, HEADERS, END_HEADERS, 1, &b);
    let lists = decode(&through_whole(&input).await);
    assert_eq!(lists[0][0].1, a.replace("://", ":_@"));
    assert_eq!(lists[0][2], (":authority".into(), "http:_@z:9".into()));
}
