//! Where a length-delimited field's bytes sit inside an encoded protobuf message, without
//! decoding it: for in-place edits of stored bytes that must keep every other byte (a log
//! redaction zeroes a field's contents; its tag and length stay, so the message still decodes).
//!
//! Never panics on any input; a malformed message is `None`.

use prost::encoding::{decode_key, decode_varint, WireType};
use std::ops::Range;

/// The byte range, inside `msg`, of the contents of the `nth` (0-based) occurrence of the
/// length-delimited field number `field` at the top level of `msg`; `None` when there is no
/// such occurrence or the message is malformed before it.
pub fn field_range(msg: &[u8], field: u32, nth: usize) -> Option<Range<usize>> {
    let mut buf = msg;
    let mut seen = 0;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).ok()?;
        let skip = match wire_type {
            WireType::Varint => {
                decode_varint(&mut buf).ok()?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                if len > buf.len() {
                    return None;
                }
                if tag == field {
                    if seen == nth {
                        let start = msg.len() - buf.len();
                        return Some(start..start + len);
                    }
                    seen += 1;
                }
                len
            }
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        buf = buf.get(skip..)?;
    }
    None
}

/// `field_range` of a path of fields (each the first occurrence), the range being relative to
/// `msg`: `nested_range(msg, &[10, 6])` is field 6 inside field 10.
pub fn nested_range(msg: &[u8], path: &[u32]) -> Option<Range<usize>> {
    let mut range = 0..msg.len();
    for &field in path {
        let inner = field_range(msg.get(range.clone())?, field, 0)?;
        range = range.start + inner.start..range.start + inner.end;
    }
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::envelope::Event;
    use crate::v1::{BlobAccepted, Envelope, RequestId};
    use prost::Message;

    #[test]
    fn finds_inline_data_inside_an_envelope() {
        let data = b"some inline bytes".to_vec();
        let env = Envelope {
            schema_version: 1,
            origin: vec![1, 2, 3].into(),
            proposed_at_unix_ms: 99,
            request_id: Some(RequestId {
                node: vec![9; 5].into(),
                seq: 7,
            }),
            event: Some(Event::BlobAccepted(BlobAccepted {
                blob_hash: vec![4; 32].into(),
                size: data.len() as u64,
                inline_data: Some(data.clone().into()),
                content_type: "text/plain".into(),
                ..BlobAccepted::default()
            })),
        };
        let bytes = env.encode_to_vec();
        let r = crate::inline_data_range(&bytes).expect("found");
        assert_eq!(&bytes[r.clone()], &data[..]);
        // Zeroing it keeps a decodable message with zeros for data.
        let mut zeroed = bytes.clone();
        zeroed[r].fill(0);
        let back = Envelope::decode(zeroed.as_slice()).expect("decodes");
        match back.event {
            Some(Event::BlobAccepted(a)) => {
                assert_eq!(a.inline_data.as_deref(), Some(&vec![0; data.len()][..]));
                assert_eq!(a.content_type, "text/plain");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(field_range(&bytes, 4, 0).map(|r| r.len()), Some(9));
        assert_eq!(field_range(&bytes, 4, 1), None);
        assert_eq!(field_range(&bytes, 10, 0).map(|r| r.end), Some(bytes.len()));
    }

    #[test]
    fn malformed_input_is_none() {
        assert_eq!(field_range(&[0x52, 0x05, 1, 2], 10, 0), None); // length past the end
        assert_eq!(field_range(&[0x0b], 1, 0), None); // a group
        assert_eq!(field_range(&[0xff], 1, 0), None);
        assert_eq!(crate::inline_data_range(b""), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = field_range(&bytes, 1, 0);
            let _ = nested_range(&bytes, &[10, 6]);
        }
    }
}
