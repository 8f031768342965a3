//! Struct and union layout by the x86-64 System V ABI, as gcc and clang lay them out: members at
//! their alignment, bitfields packed into units of their declared type without straddling a
//! unit's boundary, zero-width bitfields closing the unit, unnamed bitfields not counting
//! towards the record's alignment, `packed` and `aligned(N)`.

/// What the layout needs to know of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemberShape {
    /// Bytes of the member's type.
    pub(crate) size: u32,
    /// Alignment of the member's type in bytes (with `aligned(N)` already applied).
    pub(crate) align: u32,
    /// A bitfield's width; `None` for an ordinary member.
    pub(crate) bits: Option<u32>,
    /// Unnamed bitfields pad, but do not align the record.
    pub(crate) named: bool,
}

/// Where the members went, and the record's size and alignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordShape {
    /// Each member's offset from the start of the record, in bits.
    pub(crate) bit_offsets: Vec<u32>,
    pub(crate) size: u32,
    pub(crate) align: u32,
}

/// The record's options that change a layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordOptions {
    pub(crate) union: bool,
    /// `__attribute__((packed))`: no padding, every member byte-aligned.
    pub(crate) packed: bool,
    /// `__attribute__((aligned(N)))` on the record.
    pub(crate) aligned: Option<u32>,
}

/// Lays the members out; an error names the first member that cannot be laid out (by index).
pub(crate) fn lay_out(members: &[MemberShape], options: RecordOptions) -> Result<RecordShape, (usize, String)> {
    let mut bit_offsets = Vec::with_capacity(members.len());
    // In bits; a union's end is its largest member's.
    let mut offset: u64 = 0;
    let mut end: u64 = 0;
    let mut align = 1u32;
    for (index, member) in members.iter().enumerate() {
        let member_align = if options.packed { 1 } else { member.align.max(1) };
        let unit = u64::from(member.size) * 8;
        let at = match member.bits {
            None => {
                align = align.max(member_align);
                if options.union {
                    0
                } else {
                    round_up(offset, u64::from(member_align) * 8)
                }
            }
            Some(width) => {
                if u64::from(width) > unit {
                    return Err((
                        index,
                        format!("width of bit-field ({width} bits) exceeds the width of its type ({unit} bits)"),
                    ));
                }
                if member.named && width == 0 {
                    return Err((index, "named bit-field has zero width".to_string()));
                }
                if member.named && !options.packed {
                    align = align.max(member_align);
                }
                let start = if options.union { 0 } else { offset };
                if width == 0 {
                    // `int :0` closes the current unit: the next member starts at the next one.
                    round_up(start, u64::from(member.align.max(1)) * 8)
                } else if !options.packed && unit > 0 && start / unit != (start + u64::from(width) - 1) / unit {
                    round_up(start, unit)
                } else {
                    start
                }
            }
        };
        bit_offsets.push(u32::try_from(at).map_err(|_| (index, "the record is too large".to_string()))?);
        let taken = member.bits.map_or(unit, u64::from);
        if options.union {
            end = end.max(round_up(taken, 8));
        } else {
            offset = at + taken;
            end = offset;
        }
    }
    if let Some(aligned) = options.aligned {
        align = align.max(aligned);
    }
    let bytes = round_up(end, 8) / 8;
    let size = round_up(bytes, u64::from(align));
    let size = u32::try_from(size).map_err(|_| (members.len(), "the record is too large".to_string()))?;
    Ok(RecordShape { bit_offsets, size, align })
}

fn round_up(value: u64, to: u64) -> u64 {
    if to <= 1 {
        value
    } else {
        value.div_ceil(to) * to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(size: u32) -> MemberShape {
        MemberShape { size, align: size, bits: None, named: true }
    }

    fn bits(size: u32, width: u32) -> MemberShape {
        MemberShape { size, align: size, bits: Some(width), named: true }
    }

    fn unnamed(size: u32, width: u32) -> MemberShape {
        MemberShape { named: false, ..bits(size, width) }
    }

    fn shape(members: &[MemberShape], options: RecordOptions) -> (Vec<u32>, u32, u32) {
        let s = lay_out(members, options).unwrap_or_else(|e| panic!("{e:?}"));
        (s.bit_offsets, s.size, s.align)
    }

    fn strukt(members: &[MemberShape]) -> (Vec<u32>, u32, u32) {
        shape(members, RecordOptions::default())
    }

    // The expected numbers below are gcc 12's on x86-64, from a C file printing `sizeof`,
    // `_Alignof`, `offsetof` and each bitfield's first bit.

    #[test]
    fn bitfields_pack_into_units_of_their_type() {
        // struct Foo { unsigned int a:4, b:8, c:3, d:1, e:16; }  (bpftrace's bitfield_test.c)
        let foo = [bits(4, 4), bits(4, 8), bits(4, 3), bits(4, 1), bits(4, 16)];
        assert_eq!(strukt(&foo), (vec![0, 4, 12, 15, 16], 4, 4));
        // struct Bar { short a:4, b:8, c:3, d:1; int e:9, f:15, g:1, h:2, i:5; }
        let bar = [
            bits(2, 4),
            bits(2, 8),
            bits(2, 3),
            bits(2, 1),
            bits(4, 9),
            bits(4, 15),
            bits(4, 1),
            bits(4, 2),
            bits(4, 5),
        ];
        assert_eq!(strukt(&bar), (vec![0, 4, 12, 15, 16, 32, 47, 48, 50], 8, 4));
    }

    #[test]
    fn a_bitfield_never_straddles_its_unit() {
        // struct M1 { char c; int i:3; char d; }: 4 bytes.
        assert_eq!(strukt(&[int(1), bits(4, 3), int(1)]), (vec![0, 8, 16], 4, 4));
        // struct M2 { char a; long long b:20; char c; }
        assert_eq!(strukt(&[int(1), bits(8, 20), int(1)]), (vec![0, 8, 32], 8, 8));
        // struct M5 { char a; short b:9; short c:9; }
        assert_eq!(strukt(&[int(1), bits(2, 9), bits(2, 9)]), (vec![0, 16, 32], 6, 2));
        // struct M6 { int a:30; int b:4; }
        assert_eq!(strukt(&[bits(4, 30), bits(4, 4)]), (vec![0, 32], 8, 4));
        // struct B3 { unsigned long long x:40, y:30; }, struct B4 { char a; unsigned long long x:60; }
        assert_eq!(strukt(&[bits(8, 40), bits(8, 30)]), (vec![0, 64], 16, 8));
        assert_eq!(strukt(&[int(1), bits(8, 60)]), (vec![0, 64], 16, 8));
    }

    #[test]
    fn zero_width_and_unnamed_bitfields() {
        // struct M3 { char a; int :0; char b; }: 5 bytes, aligned 1.
        assert_eq!(strukt(&[int(1), unnamed(4, 0), int(1)]), (vec![0, 32, 32], 5, 1));
        // struct M4 { char a; int b:4; int :0; char c:2; }
        assert_eq!(strukt(&[int(1), bits(4, 4), unnamed(4, 0), bits(1, 2)]), (vec![0, 8, 32, 32], 8, 4));
        // struct M7 { char a; int :4; }: 2 bytes, aligned 1.
        assert_eq!(strukt(&[int(1), unnamed(4, 4)]), (vec![0, 8], 2, 1));
    }

    #[test]
    fn packed_records_and_alignment_attributes() {
        let packed = RecordOptions { packed: true, ..RecordOptions::default() };
        // struct P1 { char c; int i; } __attribute__((packed))
        assert_eq!(shape(&[int(1), int(4)], packed), (vec![0, 8], 5, 1));
        // struct P2 { char c; int i:20; char d; } __attribute__((packed))
        assert_eq!(shape(&[int(1), bits(4, 20), int(1)], packed), (vec![0, 8, 32], 5, 1));
        // struct A3 { char c; int x __attribute__((aligned(16))); }
        let aligned_member = MemberShape { align: 16, ..int(4) };
        assert_eq!(strukt(&[int(1), aligned_member]), (vec![0, 128], 32, 16));
        // struct A4 { char c; } __attribute__((aligned(8)))
        let aligned = RecordOptions { aligned: Some(8), ..RecordOptions::default() };
        assert_eq!(shape(&[int(1)], aligned), (vec![0], 8, 8));
    }

    #[test]
    fn unions_arrays_and_flexible_members() {
        // union U1 { char a:3; int b:17; char c[5]; }: 8 bytes, aligned 4.
        let union = RecordOptions { union: true, ..RecordOptions::default() };
        let c5 = MemberShape { size: 5, align: 1, bits: None, named: true };
        assert_eq!(shape(&[bits(1, 3), bits(4, 17), c5], union), (vec![0, 0, 0], 8, 4));
        // struct A2 { char c; double d; long double ld; }: 32 bytes, aligned 16.
        let long_double = MemberShape { size: 16, align: 16, bits: None, named: true };
        assert_eq!(strukt(&[int(1), int(8), long_double]), (vec![0, 64, 128], 32, 16));
        // struct A5 { char c; int fl[]; }: 4 bytes, fl at 4.
        let flexible = MemberShape { size: 0, align: 4, bits: None, named: true };
        assert_eq!(strukt(&[int(1), flexible]), (vec![0, 32], 4, 4));
        // struct C { unsigned a; void *b; struct W w[10]; } with struct W of 16 bytes, aligned 4.
        let w10 = MemberShape { size: 160, align: 4, bits: None, named: true };
        assert_eq!(strukt(&[int(4), int(8), w10]), (vec![0, 64, 128], 176, 8));
    }

    #[test]
    fn too_wide_bitfields_are_errors() {
        let err = lay_out(&[bits(1, 9)], RecordOptions::default()).unwrap_err();
        assert_eq!(err.0, 0);
        assert!(err.1.contains("exceeds"), "{err:?}");
    }
}
