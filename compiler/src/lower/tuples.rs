//! Storing a tuple into a slot of another tuple type as bpftrace 0.17 does: it copies the value's
//! bytes as they are (`memcpy` of the value's size into the zeroed slot), and tuples are LLVM
//! structs whose fields sit at their natural alignment (strings 1, integers their width). So
//! when a map or variable's tuple type differs from the value's, fields land where the slot's
//! layout does not expect them: after `@t[1] = ("ab", 1); @t[2] = ("abcdefgh", 2)` the map's type
//! is `(string[9], int64)` with the integer at offset 16, where `("ab", 1)` has only zeros, so
//! `@t[1]` prints `(ab, 0)`.
//!
//! rbt keeps its own layout (every field 8-byte aligned, integers 8 bytes, see
//! [`Type::tuple_offsets`]); this module maps bpftrace's byte ranges onto it.

use super::builder::at_offset;
use super::ProbeLowering;
use crate::ir::{Op, StackRef};
use crate::types::{align8, Type};

/// A string or integer inside a (possibly nested) tuple.
struct Leaf {
    /// Offset in bpftrace's layout.
    bt: u32,
    /// Offset in rbt's layout.
    rbt: u32,
    ty: Type,
}

impl Leaf {
    /// Bytes the leaf takes in bpftrace's layout (an integer's width, a string's length).
    fn bt_size(&self) -> u32 {
        bt_size_align(&self.ty).0
    }
}

/// Size and alignment of a value in bpftrace's layout.
fn bt_size_align(ty: &Type) -> (u32, u32) {
    match ty {
        Type::Int { .. } | Type::Pointer { .. } => (ty.int_bytes(), ty.int_bytes()),
        Type::Str { len } => (*len, 1),
        Type::Tuple(fields) => {
            let (mut end, mut align) = (0u32, 1u32);
            for f in fields {
                let (size, a) = bt_size_align(f);
                end = end.next_multiple_of(a) + size;
                align = align.max(a);
            }
            (end.next_multiple_of(align), align)
        }
        // A stack is rbt's own 16-byte (id, pid) pair, 8-aligned.
        Type::Stack(_) => (crate::types::StackType::SIZE, 8),
        Type::Symbol { .. } => (16, 8),
        Type::Inet => (24, 8),
        Type::Timestamp(_) => (8, 8),
        Type::Buffer { cap } => (8 + cap, 8),
        Type::MacAddr => (6, 1),
        Type::Username | Type::CgroupPath(_) => (8, 8),
        // Tuples cannot hold kernel structs or arrays (the checker refuses them).
        Type::Record(_) | Type::Array { .. } => (ty.size(), 8),
        Type::Args | Type::None => (0, 1),
    }
}

/// The leaves of `ty` placed at `bt` and `rbt`, in order.
fn leaves(ty: &Type, bt: u32, rbt: u32, out: &mut Vec<Leaf>) {
    let Type::Tuple(fields) = ty else {
        out.push(Leaf { bt, rbt, ty: ty.clone() });
        return;
    };
    let mut bt_end = 0u32;
    for (field, rbt_offset) in fields.iter().zip(Type::tuple_offsets(fields)) {
        let (size, align) = bt_size_align(field);
        let bt_offset = bt_end.next_multiple_of(align);
        leaves(field, bt + bt_offset, rbt + rbt_offset, out);
        bt_end = bt_offset + size;
    }
}

impl ProbeLowering<'_> {
    /// Stores the tuple at `src` (of type `src_ty`) into `dst` (of type `dst_ty`) as bpftrace's
    /// byte copy would leave it, both in rbt's layout. bpftrace zeroes a map value first but not
    /// a variable, whose bytes past the copy keep their last value (`keep_rest`).
    pub(super) fn copy_tuple_bytes(
        &mut self,
        src: StackRef,
        src_ty: &Type,
        dst: StackRef,
        dst_ty: &Type,
        keep_rest: bool,
    ) {
        if !keep_rest {
            self.b.zero(dst, align8(dst_ty.size()));
        }
        let copied = bt_size_align(src_ty).0;
        let (mut from, mut to) = (Vec::new(), Vec::new());
        leaves(src_ty, 0, 0, &mut from);
        leaves(dst_ty, 0, 0, &mut to);
        for d in &to {
            if keep_rest && d.bt < copied {
                // The copy reaches this leaf: its bytes come from the source (or padding, 0).
                let end = (d.bt + d.bt_size()).min(copied);
                self.b.zero(at_offset(dst, d.rbt), end - d.bt);
            }
            for s in &from {
                let start = d.bt.max(s.bt);
                let end = (d.bt + d.bt_size()).min(s.bt + s.bt_size()).min(copied);
                if start < end {
                    self.b.copy(
                        at_offset(dst, d.rbt + start - d.bt),
                        at_offset(src, s.rbt + start - s.bt),
                        end - start,
                    );
                }
            }
            // The copied bytes are the integer's low ones; rbt keeps it extended to 64 bits.
            if let Type::Int { bytes, signed } = d.ty {
                if bytes < 8 {
                    let raw = self.b.reg();
                    let at = at_offset(dst, d.rbt);
                    self.b.push(Op::LoadStack { dst: raw, at, size: 8 });
                    let value = self.b.reg();
                    self.b.push(Op::Extend { dst: value, src: raw, bytes, signed });
                    self.b.store(at, 0, value, 8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftrace_packs_strings_and_aligns_integers() {
        let ty = Type::Tuple(vec![
            Type::Str { len: 3 },
            Type::I64,
            Type::Str { len: 2 },
            Type::Int { bytes: 2, signed: true },
        ]);
        let mut out = Vec::new();
        leaves(&ty, 0, 0, &mut out);
        let offsets: Vec<(u32, u32)> = out.iter().map(|l| (l.bt, l.rbt)).collect();
        assert_eq!(offsets, vec![(0, 0), (8, 8), (16, 16), (18, 24)]);
        assert_eq!(bt_size_align(&ty), (24, 8));
    }
}
