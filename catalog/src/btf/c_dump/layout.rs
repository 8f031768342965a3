//! Layout as `btf_dump` reads it from BTF: sizes and natural alignments (`btf__resolve_size`,
//! `btf__align_of`), whether a struct was packed, and the unnamed bitfields that fill gaps
//! between members.

use super::super::{
    Btf, Raw, ARRAY, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, INT, PTR, RESTRICT, STRUCT, TYPEDEF, TYPE_TAG,
    UNION, VAR, VOLATILE,
};
use super::{indent, CDump, MAX_CHAIN};
use std::fmt::Write as _;

impl CDump<'_> {
    /// A struct is packed when a member that is not a bitfield sits off its natural alignment,
    /// or its size is not a multiple of its members' largest alignment.
    pub(super) fn is_struct_packed(&mut self, r: Raw) -> bool {
        let mut max_align = 1;
        for i in 0..r.vlen as usize {
            let m = self.member(r, i);
            let align = self.align_of(m.ty);
            if align > 0 && m.bitfield_size == 0 && i64::from(m.raw_offset) % (8 * align) != 0 {
                return true;
            }
            max_align = max_align.max(align);
        }
        i64::from(r.size_or_type) % max_align != 0
    }

    /// Fills the gap between bit `cur` (where the previous member ended) and `next` (where the
    /// next one starts) with unnamed bitfields, relying on the compiler's natural alignment
    /// where it gets there by itself. Between a bitfield that ends at bit 36 and one that starts
    /// at bit 128:
    ///
    /// ```text
    ///     long: 28;
    ///     long: 64;
    /// ```
    pub(super) fn emit_bit_padding(&mut self, mut cur: i64, next: i64, next_align: i64, in_bitfield: bool, lvl: usize) {
        if cur >= next {
            return;
        }
        let pads: [(&str, i64); 4] = [("long", i64::from(self.ptr_size) * 8), ("int", 32), ("short", 16), ("char", 8)];
        // The largest type whose alignment boundary after `cur` is not past `next`.
        let (mut pad_type, mut pad_bits) = pads[pads.len() - 1];
        let mut new_off = 0;
        for (name, bits) in pads {
            (pad_type, pad_bits) = (name, bits);
            new_off = round_up(cur, bits);
            if new_off <= next {
                break;
            }
        }
        if new_off > cur && new_off <= next {
            // An explicit `TYPE: 0` forces the boundary where the compiler would not align the
            // next member to it by itself, or where a `TYPE: N` would fit in the hole and so not
            // move to the boundary; inside a run of bitfields the bits are counted instead.
            let next_aligned = next_align.checked_mul(8).filter(|&a| a > 0).map(|a| round_up(cur, a));
            if in_bitfield
                || (new_off == next && next_aligned != Some(new_off))
                || (new_off != next && next - new_off <= new_off - cur)
            {
                let bits = if in_bitfield { new_off - cur } else { 0 };
                let _ = write!(self.out, "\n{}{pad_type}: {bits};", indent(lvl));
            }
            cur = new_off;
        }
        while cur != next {
            let bits = (next - cur).min(pad_bits);
            if bits == pad_bits {
                let _ = write!(self.out, "\n{}{pad_type}: {pad_bits};", indent(lvl));
                cur += bits;
                continue;
            }
            // The remainder, in the smallest type that holds it.
            let Some(&(name, _)) = pads.iter().rev().find(|(_, size)| *size >= bits) else { return };
            let _ = write!(self.out, "\n{}{name}: {bits};", indent(lvl));
            cur += bits;
        }
    }

    /// `btf__resolve_size`: a type's size in bytes, arrays multiplied out; 0 for what has none
    /// (void, functions) or does not fit in 32 bits.
    pub(super) fn resolve_size(&self, mut id: u32) -> i64 {
        const MAX_RESOLVE_DEPTH: usize = 32;
        let mut count: u64 = 1;
        let mut size = None;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let Some(r) = self.raw(id) else { break };
            match r.kind {
                INT | STRUCT | UNION | ENUM | ENUM64 | DATASEC | FLOAT => {
                    size = Some(u64::from(r.size_or_type));
                    break;
                }
                PTR => {
                    size = Some(u64::from(self.ptr_size));
                    break;
                }
                TYPEDEF | VOLATILE | CONST | RESTRICT | VAR | DECL_TAG | TYPE_TAG => id = r.size_or_type,
                ARRAY => {
                    let (elem, len) = self.array(r);
                    if count != 0 && u64::from(len) > u64::from(u32::MAX) / count {
                        return 0;
                    }
                    count *= u64::from(len);
                    id = elem;
                }
                _ => return 0,
            }
        }
        match size {
            Some(size) if count == 0 || size <= u64::from(u32::MAX) / count => (count * size) as i64,
            _ => 0,
        }
    }

    /// `btf__align_of`: a type's natural alignment in bytes; 1 for a struct laid out packed;
    /// -1 for types without one (void, functions, forward declarations).
    pub(super) fn align_of(&mut self, id: u32) -> i64 {
        self.align_at_depth(id, 0)
    }

    fn align_at_depth(&mut self, id: u32, depth: usize) -> i64 {
        let Some(&cached) = self.aligns.get(id as usize) else { return -1 };
        if cached != 0 {
            return cached;
        }
        if depth > MAX_CHAIN {
            return -1;
        }
        let ptr = i64::from(self.ptr_size);
        let align = match self.raw(id).filter(|_| id != 0) {
            None => -1,
            Some(r) => match r.kind {
                INT | ENUM | ENUM64 | FLOAT => ptr.min(i64::from(r.size_or_type)),
                PTR => ptr,
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => self.align_at_depth(r.size_or_type, depth + 1),
                ARRAY => self.align_at_depth(self.array(r).0, depth + 1),
                STRUCT | UNION => self.record_align(r, depth),
                _ => -1,
            },
        };
        // Zero-sized ints have no alignment either (and 0 marks "not computed").
        let align = if align == 0 { -1 } else { align };
        self.aligns[id as usize] = align;
        align
    }

    fn record_align(&mut self, r: Raw, depth: usize) -> i64 {
        let mut max_align = 1;
        for i in 0..r.vlen as usize {
            let m = self.member(r, i);
            let align = self.align_at_depth(m.ty, depth + 1);
            if align <= 0 {
                return -1;
            }
            max_align = max_align.max(align);
            // A member off its type's alignment means the struct is packed.
            if m.bitfield_size == 0 && i64::from(m.raw_offset) % (8 * align) != 0 {
                return 1;
            }
        }
        if i64::from(r.size_or_type) % max_align != 0 {
            return 1;
        }
        max_align
    }
}

fn round_up(value: i64, to: i64) -> i64 {
    (value + to - 1) / to * to
}

/// The pointer size the BTF describes, from the size of its `long`; 8 when it has none.
pub(super) fn pointer_size(btf: &Btf) -> u32 {
    const LONG_NAMES: [&str; 11] = [
        "long",
        "long int",
        "int long",
        "unsigned long",
        "long unsigned",
        "unsigned long int",
        "unsigned int long",
        "long unsigned int",
        "long int unsigned",
        "int unsigned long",
        "int long unsigned",
    ];
    (1..btf.types.len() as u32)
        .filter_map(|id| btf.raw(id))
        .find(|r| r.kind == INT && matches!(r.size_or_type, 4 | 8) && LONG_NAMES.contains(&btf.string(r.name_off)))
        .map_or(8, |r| r.size_or_type)
}
