//! [`BtfBuilder`]: BTF blobs written type by type, for tests and for the fixture kernels of the
//! check goldens (`tests/data/catalog/*/sys/kernel/btf/vmlinux`, written by
//! `tests/tests/catalog_fixtures.rs`).

use super::{Btf, ARRAY, ENUM, FUNC, FUNC_PROTO, FWD, INT, MAGIC};

/// Builds a BTF blob type by type; ids are given out in order from 1. Kinds are the
/// `btf::` constants (`STRUCT`, `TYPEDEF`, ...).
pub struct BtfBuilder {
    strings: Vec<u8>,
    types: Vec<u8>,
    count: u32,
}

fn info(kind: u32, vlen: usize, kflag: bool) -> u32 {
    (kind << 24) | vlen as u32 | (u32::from(kflag) << 31)
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BtfBuilder {
    pub fn new() -> BtfBuilder {
        // String offset 0 is the empty name.
        BtfBuilder { strings: vec![0], types: Vec::new(), count: 0 }
    }

    fn name(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    fn put(&mut self, words: &[u32]) -> u32 {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.count += 1;
        self.count
    }

    fn extend(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    pub fn int(&mut self, name: &str, bytes: u32, signed: bool) -> u32 {
        let n = self.name(name);
        self.put(&[n, info(INT, 0, false), bytes, (u32::from(signed) << 24) | (bytes * 8)])
    }

    /// PTR, TYPEDEF, CONST, VOLATILE: a kind that names one other type.
    pub fn refer(&mut self, kind: u32, name: &str, to: u32) -> u32 {
        let n = self.name(name);
        self.put(&[n, info(kind, 0, false), to])
    }

    pub fn array(&mut self, elem: u32, index: u32, len: u32) -> u32 {
        self.put(&[0, info(ARRAY, 0, false), 0, elem, index, len])
    }

    /// Members are (name, type, bit offset, bitfield size).
    pub fn record(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        let n = self.name(name);
        let kflag = members.iter().any(|m| m.3 != 0);
        let id = self.put(&[n, info(kind, members.len(), kflag), size]);
        for &(member, ty, offset, bits) in members {
            let m = self.name(member);
            self.extend(&[m, ty, (bits << 24) | offset]);
        }
        id
    }

    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let id = self.put(&[0, info(FUNC_PROTO, params.len(), false), ret]);
        for &(param, ty) in params {
            let p = self.name(param);
            self.extend(&[p, ty]);
        }
        id
    }

    /// A function with global linkage, of prototype `proto` (a [`BtfBuilder::func_proto`]).
    pub fn func(&mut self, name: &str, proto: u32) -> u32 {
        let n = self.name(name);
        self.put(&[n, info(FUNC, 1, false), proto])
    }

    pub fn enumeration(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, i32)]) -> u32 {
        let n = self.name(name);
        let id = self.put(&[n, info(ENUM, values.len(), signed), size]);
        for &(value, v) in values {
            let m = self.name(value);
            self.extend(&[m, v as u32]);
        }
        id
    }

    pub fn fwd(&mut self, name: &str, union: bool) -> u32 {
        let n = self.name(name);
        self.put(&[n, info(FWD, 0, union), 0])
    }

    /// The blob: header, type records, strings.
    pub fn bytes(&self) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        let (types, strings) = (self.types.len() as u32, self.strings.len() as u32);
        for w in [24u32, 0, types, types, strings] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&self.types);
        data.extend_from_slice(&self.strings);
        data
    }

    /// The blob parsed. Panics when a record of an unknown kind was written.
    pub fn build(&self) -> Btf {
        Btf::parse(self.bytes()).expect("valid BTF")
    }
}
