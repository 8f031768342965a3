//! The protobuf wire format, as much of it as pprof needs: varints and length-delimited fields,
//! written by hand so the build needs no protoc (and, in tests, read back the same way).
//!
//! A field is a key varint `(field_number << 3) | wire_type`, then its payload: a varint (wire
//! type 0) or a length varint and that many bytes (wire type 2: strings, nested messages and
//! packed repeated scalars). `ValueType { type: 3, unit: 4 }` is the five bytes `08 03 10 04`.
//! As proto3 does, zero scalars are left out; readers take a missing field as zero.

const WIRE_VARINT: u64 = 0;
const WIRE_LENGTH_DELIMITED: u64 = 2;

/// One message being written; nested messages are written into their own `Message` first.
#[derive(Debug, Default)]
pub(crate) struct Message {
    bytes: Vec<u8>,
}

impl Message {
    pub(crate) fn new() -> Self {
        Message::default()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// A `uint64` field (also `bool`); left out when zero.
    pub(crate) fn uint64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, WIRE_VARINT);
            push_varint(&mut self.bytes, value);
        }
    }

    /// An `int64` field: the two's complement bits as a varint (ten bytes when negative).
    pub(crate) fn int64(&mut self, field: u32, value: i64) {
        self.uint64(field, u64::from_ne_bytes(value.to_ne_bytes()));
    }

    pub(crate) fn bool(&mut self, field: u32, value: bool) {
        self.uint64(field, u64::from(value));
    }

    /// A length-delimited field, always written: a repeated string's empty entry still counts
    /// (pprof's `string_table[0]` is `""`).
    pub(crate) fn bytes(&mut self, field: u32, value: &[u8]) {
        self.key(field, WIRE_LENGTH_DELIMITED);
        push_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
    }

    pub(crate) fn message(&mut self, field: u32, message: &Message) {
        self.bytes(field, &message.bytes);
    }

    /// A packed repeated `uint64`/`int64` field: one length-delimited run of varints; left out
    /// when empty.
    pub(crate) fn packed(&mut self, field: u32, values: impl IntoIterator<Item = u64>) {
        let mut run = Vec::new();
        for value in values {
            push_varint(&mut run, value);
        }
        if !run.is_empty() {
            self.bytes(field, &run);
        }
    }

    fn key(&mut self, field: u32, wire_type: u64) {
        push_varint(&mut self.bytes, (u64::from(field) << 3) | wire_type);
    }
}

/// Seven bits at a time, low bits first, the high bit set on every byte but the last.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value.to_le_bytes()[0] | 0x80);
        value >>= 7;
    }
    out.push(value.to_le_bytes()[0]);
}

/// A reader for the tests: a message as its fields in order, nested messages left as bytes.
#[cfg(test)]
pub(crate) mod read {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    impl<'a> Value<'a> {
        pub(crate) fn varint(&self) -> u64 {
            match self {
                Value::Varint(value) => *value,
                Value::Bytes(_) => panic!("expected a varint, found bytes"),
            }
        }

        pub(crate) fn bytes(&self) -> &'a [u8] {
            match self {
                Value::Bytes(bytes) => bytes,
                Value::Varint(_) => panic!("expected bytes, found a varint"),
            }
        }
    }

    pub(crate) fn fields(mut bytes: &[u8]) -> Vec<(u32, Value<'_>)> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes);
            let field = u32::try_from(key >> 3).expect("a field number fits in u32");
            match key & 7 {
                0 => fields.push((field, Value::Varint(varint(&mut bytes)))),
                2 => {
                    let len = usize::try_from(varint(&mut bytes)).expect("a length fits in usize");
                    assert!(len <= bytes.len(), "field {field}: length {len} past the end");
                    let (value, rest) = bytes.split_at(len);
                    fields.push((field, Value::Bytes(value)));
                    bytes = rest;
                }
                wire_type => panic!("field {field}: wire type {wire_type} is never written"),
            }
        }
        fields
    }

    pub(crate) fn packed(mut bytes: &[u8]) -> Vec<u64> {
        let mut values = Vec::new();
        while !bytes.is_empty() {
            values.push(varint(&mut bytes));
        }
        values
    }

    fn varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().expect("a varint ends before the message");
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("a varint longer than ten bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::read::{fields, packed, Value};
    use super::*;

    #[test]
    fn encodings_match_the_protobuf_documentation() {
        // The protobuf encoding guide's examples: 150 in field 1 is `08 96 01`, "testing" in
        // field 2 is `12 07 74 65 73 74 69 6e 67`, and packed [3, 270, 86942] in field 4 is
        // `22 06 03 8e 02 9e a7 05`.
        let mut message = Message::new();
        message.uint64(1, 150);
        message.bytes(2, b"testing");
        message.packed(4, [3, 270, 86942]);
        assert_eq!(
            message.into_bytes(),
            [
                0x08, 0x96, 0x01, 0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g', 0x22, 0x06, 0x03, 0x8e, 0x02,
                0x9e, 0xa7, 0x05
            ]
        );
    }

    #[test]
    fn zeros_are_left_out_and_negatives_take_ten_bytes() {
        let mut message = Message::new();
        message.uint64(1, 0);
        message.bool(2, false);
        message.packed(3, []);
        assert!(message.into_bytes().is_empty());

        let mut message = Message::new();
        message.int64(1, -1);
        let bytes = message.into_bytes();
        assert_eq!(bytes.len(), 11);
        assert_eq!(fields(&bytes), vec![(1, Value::Varint(u64::MAX))]);
    }

    #[test]
    fn round_trip_nested() {
        let mut inner = Message::new();
        inner.uint64(1, u64::MAX);
        inner.bytes(2, b"");
        let mut outer = Message::new();
        outer.message(7, &inner);
        outer.packed(8, [0, 1, 1 << 35]);
        let bytes = outer.into_bytes();
        let top = fields(&bytes);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, 7);
        assert_eq!(fields(top[0].1.bytes()), vec![(1, Value::Varint(u64::MAX)), (2, Value::Bytes(b""))]);
        assert_eq!(packed(top[1].1.bytes()), vec![0, 1, 1 << 35]);
    }
}
