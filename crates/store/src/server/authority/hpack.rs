//! The HPACK side of [`super::AuthorityFix`] (RFC 7541): walking a header block while keeping
//! the client's dynamic table in step, and re-emitting an `:authority` literal whose value
//! carries a scheme.

use std::collections::VecDeque;

use super::Malformed;

/// The largest dynamic table size accepted from a client (`h2` allows 4096 and rejects more).
pub(super) const MAX_TABLE: usize = 64 * 1024;
/// HPACK's per-entry overhead (RFC 7541 §4.1).
pub(super) const ENTRY_OVERHEAD: usize = 32;
/// The names of HPACK's static table (RFC 7541 Appendix A), index 1 first: only their lengths
/// matter here (an entry's size), and that index 1 is `:authority`.
pub(super) const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// Buffers reused while walking a header block.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// The rewritten header block.
    pub(super) block: Vec<u8>,
    /// A decoded string.
    text: Vec<u8>,
    /// A Huffman-encoded string.
    huffman: Vec<u8>,
}

/// Walks one HPACK header block (RFC 7541 §6), keeping `table` in step with the client's
/// dynamic table. Returns whether an `:authority` was rewritten; if so the new block is in
/// `scratch.block` (otherwise that buffer is left as it was).
pub(super) fn walk(
    table: &mut DynamicTable,
    block: &[u8],
    scratch: &mut Scratch,
) -> Result<bool, Malformed> {
    let mut i = 0;
    // Bytes of `block` before this offset are in `scratch.block` already (once rewriting).
    let mut copied = 0;
    let mut rewritten = false;
    while i < block.len() {
        let first = block[i];
        if first & 0x80 != 0 {
            // Indexed header field.
            let index = integer(block, &mut i, 7)?;
            table.name(index)?;
        } else if first & 0x40 != 0 {
            rewritten |= literal(
                table,
                block,
                &mut i,
                6,
                true,
                scratch,
                &mut copied,
                rewritten,
            )?;
        } else if first & 0x20 != 0 {
            let max = integer(block, &mut i, 5)?;
            table.set_max(max)?;
        } else {
            // Without indexing (0000) or never indexed (0001).
            rewritten |= literal(
                table,
                block,
                &mut i,
                4,
                false,
                scratch,
                &mut copied,
                rewritten,
            )?;
        }
    }
    if rewritten {
        scratch.block.extend_from_slice(&block[copied..]);
    }
    Ok(rewritten)
}

/// One literal header field at `block[*i]`, its name index in a `prefix`-bit integer.
/// Returns whether it was rewritten (into `scratch.block`, after `block[*copied..start]`).
#[allow(clippy::too_many_arguments)]
pub(super) fn literal(
    table: &mut DynamicTable,
    block: &[u8],
    i: &mut usize,
    prefix: u8,
    indexing: bool,
    scratch: &mut Scratch,
    copied: &mut usize,
    rewriting: bool,
) -> Result<bool, Malformed> {
    let index = integer(block, i, prefix)?;
    let (name_len, authority) = if index == 0 {
        let name = decoded(block, string(block, i)?, &mut scratch.text)?;
        (name.len(), name == b":authority")
    } else {
        table.name(index)?
    };
    let value_at = *i;
    let value = string(block, i)?;
    let mut fixed = false;
    let value_len = if authority {
        if !value.huffman {
            scratch.text.clear();
            scratch
                .text
                .extend_from_slice(&block[value.start..value.end]);
        } else {
            decoded(block, value, &mut scratch.text)?;
        }
        let len = scratch.text.len();
        if let Some(at) = scratch.text.windows(3).position(|w| w == b"://") {
            // `scheme://host:port/path` becomes `scheme:_…_@host:port`: the scheme and the
            // path read as userinfo, and the decoded length stays the same, so the dynamic
            // tables stay in step.
            let host = at + 3;
            let host_end = scratch.text[host..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(len, |slash| host + slash);
            let at_sign = len - (host_end - host) - 1;
            scratch.text.copy_within(host..host_end, at_sign + 1);
            scratch.text[at + 1..at_sign].fill(b'_');
            scratch.text[at_sign] = b'@';
            if !rewriting {
                scratch.block.clear();
            }
            scratch.block.extend_from_slice(&block[*copied..value_at]);
            put_string(
                &mut scratch.block,
                &scratch.text,
                value.huffman,
                &mut scratch.huffman,
            )?;
            *copied = *i;
            fixed = true;
        }
        len
    } else if indexing {
        decoded(block, value, &mut scratch.text)?.len()
    } else {
        0
    };
    if indexing {
        table.insert(name_len, value_len, authority);
    }
    Ok(fixed)
}

/// A string literal's place in its block.
#[derive(Clone, Copy)]
pub(super) struct Str {
    huffman: bool,
    start: usize,
    end: usize,
}

/// The string literal at `block[*i]` (RFC 7541 §5.2).
pub(super) fn string(block: &[u8], i: &mut usize) -> Result<Str, Malformed> {
    let huffman = block.get(*i).ok_or(Malformed)? & 0x80 != 0;
    let len = integer(block, i, 7)?;
    let start = *i;
    let end = start
        .checked_add(len)
        .filter(|&end| end <= block.len())
        .ok_or(Malformed)?;
    *i = end;
    Ok(Str {
        huffman,
        start,
        end,
    })
}

/// A string literal's octets, Huffman-decoded into `text` if need be.
pub(super) fn decoded<'a>(
    block: &'a [u8],
    s: Str,
    text: &'a mut Vec<u8>,
) -> Result<&'a [u8], Malformed> {
    let raw = &block[s.start..s.end];
    if !s.huffman {
        return Ok(raw);
    }
    text.clear();
    httlib_huffman::decode(raw, text, httlib_huffman::DecoderSpeed::FiveBits)
        .map_err(|_| Malformed)?;
    Ok(text)
}

/// Appends `text` as a string literal, Huffman-encoded if `huffman`.
pub(super) fn put_string(
    out: &mut Vec<u8>,
    text: &[u8],
    huffman: bool,
    encoded: &mut Vec<u8>,
) -> Result<(), Malformed> {
    if huffman {
        encoded.clear();
        httlib_huffman::encode(text, encoded).map_err(|_| Malformed)?;
        put_integer(out, encoded.len(), 7, 0x80);
        out.extend_from_slice(encoded);
    } else {
        put_integer(out, text.len(), 7, 0);
        out.extend_from_slice(text);
    }
    Ok(())
}

/// The `prefix`-bit integer at `block[*i]` (RFC 7541 §5.1), at most 2^28 or so.
pub(super) fn integer(block: &[u8], i: &mut usize, prefix: u8) -> Result<usize, Malformed> {
    let max = (1u8 << prefix) - 1;
    let first = block.get(*i).ok_or(Malformed)? & max;
    *i += 1;
    if first < max {
        return Ok(usize::from(first));
    }
    let mut value = usize::from(max);
    let mut shift = 0;
    loop {
        let b = *block.get(*i).ok_or(Malformed)?;
        *i += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 21 {
            return Err(Malformed);
        }
    }
}

/// Appends `value` as a `prefix`-bit integer whose first octet's other bits are `flags`.
pub(super) fn put_integer(out: &mut Vec<u8>, value: usize, prefix: u8, flags: u8) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push(rest as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// The client's HPACK dynamic table, as much of it as the transcoder needs.
#[derive(Debug)]
pub(super) struct DynamicTable {
    /// Newest first.
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    name_len: usize,
    size: usize,
    authority: bool,
}

impl DynamicTable {
    pub(super) fn new() -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max: 4096,
        }
    }

    /// The name length at `index` (static or dynamic), and whether the name is `:authority`.
    fn name(&self, index: usize) -> Result<(usize, bool), Malformed> {
        match index {
            0 => Err(Malformed),
            1..=61 => Ok((STATIC_NAMES[index - 1].len(), index == 1)),
            _ => self
                .entries
                .get(index - 62)
                .map(|e| (e.name_len, e.authority))
                .ok_or(Malformed),
        }
    }

    /// Adds an entry (RFC 7541 §4.4): older ones are evicted to make room; one larger than
    /// the table empties it.
    fn insert(&mut self, name_len: usize, value_len: usize, authority: bool) {
        let size = name_len + value_len + ENTRY_OVERHEAD;
        if size > self.max {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max - size);
        self.size += size;
        self.entries.push_front(Entry {
            name_len,
            size,
            authority,
        });
    }

    fn set_max(&mut self, max: usize) -> Result<(), Malformed> {
        if max > MAX_TABLE {
            return Err(Malformed);
        }
        self.max = max;
        self.evict_to(max);
        Ok(())
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size,
                None => break,
            }
        }
    }
}
