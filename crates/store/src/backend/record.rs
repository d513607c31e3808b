//! The encoding of one key change in the `revisions` table (see docs/formats/store.md).

use etcd_client::proto::PbKeyValue;
use prost::Message;

use crate::mvcc::Meta;

const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;

/// Encodes a change: a kind byte, then the protobuf `mvccpb.KeyValue` (only the key for a
/// deletion).
pub fn encode(key: &[u8], kv: Option<&PbKeyValue>) -> Vec<u8> {
    match kv {
        Some(kv) => {
            let mut out = Vec::with_capacity(1 + kv.encoded_len());
            out.push(KIND_PUT);
            kv.encode_raw(&mut out);
            out
        }
        None => {
            let tomb = PbKeyValue {
                key: key.to_vec(),
                ..PbKeyValue::default()
            };
            let mut out = Vec::with_capacity(1 + tomb.encoded_len());
            out.push(KIND_DELETE);
            tomb.encode_raw(&mut out);
            out
        }
    }
}

/// Decodes a change into its key, the meta the index keeps (`None` for a deletion) and its value.
pub fn decode_parts(bytes: &[u8]) -> Option<(Vec<u8>, Option<Meta>, Vec<u8>)> {
    let (key, kv) = decode(bytes)?;
    Some(match kv {
        Some(kv) => (
            key,
            Some(Meta {
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
            }),
            kv.value,
        ),
        None => (key, None, Vec::new()),
    })
}

/// Decodes a change into its key and its key-value (`None` for a deletion).
pub fn decode(bytes: &[u8]) -> Option<(Vec<u8>, Option<PbKeyValue>)> {
    let (&kind, rest) = bytes.split_first()?;
    let kv = PbKeyValue::decode(rest).ok()?;
    match kind {
        KIND_PUT => Some((kv.key.clone(), Some(kv))),
        KIND_DELETE => Some((kv.key, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_delete_records_round_trip() {
        let kv = PbKeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"v".to_vec(),
            lease: 9,
        };
        assert_eq!(
            decode(&encode(b"k", Some(&kv))),
            Some((b"k".to_vec(), Some(kv)))
        );
        assert_eq!(decode(&encode(b"k", None)), Some((b"k".to_vec(), None)));
        assert_eq!(decode(&[7]), None);
    }
}
