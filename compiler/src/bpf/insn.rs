//! BPF instruction encoding: the 8-byte `struct bpf_insn`, registers, and the constructors the
//! code generator builds programs from (opcode fields live in [`super::opcode`]).
//!
//! The layout follows the kernel's instruction-set document (`Documentation/bpf/standardization/
//! instruction-set.rst`): one byte of opcode, one byte holding the destination register in its low
//! nibble and the source register in its high nibble, a signed 16-bit offset and a signed 32-bit
//! immediate, all little endian on the little-endian targets rbt supports. A 64-bit immediate load
//! (`ld_imm64`) takes two slots; the second slot carries the upper 32 bits in its `imm`.

use super::helpers::Helper;
use super::opcode::*;

/// Size in bytes of one encoded instruction slot.
pub const INSN_SIZE: usize = 8;

/// A BPF register. `R10` is the read-only frame pointer; `R0` holds return values, `R1`..`R5`
/// carry helper arguments and are clobbered by calls, `R6`..`R9` survive calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

impl Reg {
    /// The frame pointer; the stack grows down from it and offsets are negative.
    pub const FP: Reg = Reg::R10;

    /// Every register in index order.
    pub const ALL: [Reg; 11] =
        [Reg::R0, Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5, Reg::R6, Reg::R7, Reg::R8, Reg::R9, Reg::R10];

    /// The register number as it appears in an instruction's `dst`/`src` nibble.
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// The register with number `index`, if it is one of `r0`..`r10`.
    pub fn from_index(index: u8) -> Option<Reg> {
        Reg::ALL.get(usize::from(index)).copied()
    }
}

/// One 8-byte BPF instruction slot, as in the kernel's `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// An instruction from its raw fields.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, dst, src, off, imm }
    }

    /// The little-endian encoding: `dst` in the low nibble of byte 1, `src` in the high nibble.
    pub fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [self.code, (self.src << 4) | (self.dst & 0x0f), off[0], off[1], imm[0], imm[1], imm[2], imm[3]]
    }

    /// Decodes one little-endian instruction slot.
    pub fn from_bytes(bytes: [u8; 8]) -> Insn {
        Insn {
            code: bytes[0],
            dst: bytes[1] & 0x0f,
            src: bytes[1] >> 4,
            off: i16::from_le_bytes([bytes[2], bytes[3]]),
            imm: i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    /// The class bits of the opcode (`BPF_LD` .. `BPF_ALU64`).
    pub const fn class(self) -> u8 {
        self.code & BPF_CLASS_MASK
    }

    /// Whether this is the first slot of a two-slot 64-bit immediate load.
    pub const fn is_ld_imm64(self) -> bool {
        self.code == LD_IMM64_CODE
    }

    /// `dst = imm` (64-bit; `imm` is sign-extended).
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, dst.index(), 0, 0, imm)
    }

    /// `dst = src` (64-bit).
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, dst.index(), src.index(), 0, 0)
    }

    /// `w_dst = imm`; the upper 32 bits of `dst` become zero, so `mov32_imm(r, -1)` yields
    /// `0xffff_ffff` (unlike `mov64_imm`, which sign-extends).
    pub const fn mov32_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU | BPF_MOV | BPF_K, dst.index(), 0, 0, imm)
    }

    /// `w_dst = w_src`; zero-extends, so it also truncates a register to 32 bits.
    pub const fn mov32_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(BPF_ALU | BPF_MOV | BPF_X, dst.index(), src.index(), 0, 0)
    }

    /// `dst op= imm` on 64 bits (`imm` is sign-extended).
    pub const fn alu64_imm(op: AluOp, dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | op.code() | BPF_K, dst.index(), 0, 0, imm)
    }

    /// `dst op= src` on 64 bits.
    pub const fn alu64_reg(op: AluOp, dst: Reg, src: Reg) -> Insn {
        Insn::new(BPF_ALU64 | op.code() | BPF_X, dst.index(), src.index(), 0, 0)
    }

    /// `w_dst op= imm` on 32 bits; the result is zero-extended into `dst`.
    pub const fn alu32_imm(op: AluOp, dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU | op.code() | BPF_K, dst.index(), 0, 0, imm)
    }

    /// `w_dst op= w_src` on 32 bits; the result is zero-extended into `dst`.
    pub const fn alu32_reg(op: AluOp, dst: Reg, src: Reg) -> Insn {
        Insn::new(BPF_ALU | op.code() | BPF_X, dst.index(), src.index(), 0, 0)
    }

    /// `dst = -dst` (64-bit).
    pub const fn neg64(dst: Reg) -> Insn {
        Insn::new(BPF_ALU64 | BPF_NEG, dst.index(), 0, 0, 0)
    }

    /// `w_dst = -w_dst` (32-bit).
    pub const fn neg32(dst: Reg) -> Insn {
        Insn::new(BPF_ALU | BPF_NEG, dst.index(), 0, 0, 0)
    }

    /// Converts the low `bits` of `dst` from host order to `order`, zeroing the rest.
    pub const fn endian(dst: Reg, order: ByteOrder, bits: SwapBits) -> Insn {
        let source = match order {
            ByteOrder::Little => BPF_TO_LE,
            ByteOrder::Big => BPF_TO_BE,
        };
        Insn::new(BPF_ALU | BPF_END | source, dst.index(), 0, 0, bits as i32)
    }

    /// `dst = value` for any 64-bit constant; two slots.
    pub const fn ld_imm64(dst: Reg, value: u64) -> [Insn; 2] {
        // The casts split the constant into its two 32-bit halves; truncation is intended.
        let low = value as u32 as i32;
        let high = (value >> 32) as u32 as i32;
        [Insn::new(LD_IMM64_CODE, dst.index(), 0, 0, low), Insn::new(0, 0, 0, 0, high)]
    }

    /// `dst = <map>`: loads a map reference for helpers such as `bpf_map_lookup_elem`. The
    /// immediate stays 0; the ELF relocation emitted for it ([`super::elf::MapReloc`]) tells the
    /// loader which map's file descriptor to patch in.
    pub const fn ld_map_fd(dst: Reg) -> [Insn; 2] {
        [Insn::new(LD_IMM64_CODE, dst.index(), BPF_PSEUDO_MAP_FD, 0, 0), Insn::new(0, 0, 0, 0, 0)]
    }

    /// `dst = *(size *)(src + off)`; loads narrower than 8 bytes zero-extend.
    pub const fn ldx_mem(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEM | size.code(), dst.index(), src.index(), off, 0)
    }

    /// `*(size *)(dst + off) = src`.
    pub const fn stx_mem(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_STX | BPF_MEM | size.code(), dst.index(), src.index(), off, 0)
    }

    /// `*(size *)(dst + off) = imm`.
    pub const fn st_mem(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(BPF_ST | BPF_MEM | size.code(), dst.index(), 0, off, imm)
    }

    /// `lock *(size *)(dst + off) += src`, an atomic add without fetching the old value. The
    /// kernel accepts it only for `Size::W` and `Size::DW` (the old `BPF_XADD`, in every kernel
    /// with eBPF).
    pub const fn atomic_add(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_STX | BPF_ATOMIC | size.code(), dst.index(), src.index(), off, 0)
    }

    /// `if dst op imm goto pc+off` comparing all 64 bits (`imm` is sign-extended).
    /// `off` counts instruction slots from the instruction after the jump.
    pub const fn jmp_imm(op: JmpOp, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP | op.code() | BPF_K, dst.index(), 0, off, imm)
    }

    /// `if dst op src goto pc+off` comparing all 64 bits.
    pub const fn jmp_reg(op: JmpOp, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_JMP | op.code() | BPF_X, dst.index(), src.index(), off, 0)
    }

    /// `if w_dst op imm goto pc+off` comparing the low 32 bits (Linux 5.1+).
    pub const fn jmp32_imm(op: JmpOp, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | op.code() | BPF_K, dst.index(), 0, off, imm)
    }

    /// `if w_dst op w_src goto pc+off` comparing the low 32 bits (Linux 5.1+).
    pub const fn jmp32_reg(op: JmpOp, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | op.code() | BPF_X, dst.index(), src.index(), off, 0)
    }

    /// `goto pc+off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JA, 0, 0, off, 0)
    }

    /// Calls a kernel helper; arguments in `r1`..`r5`, result in `r0`, `r1`..`r5` clobbered.
    pub const fn call_helper(helper: Helper) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, 0, 0, 0, helper.id())
    }

    /// Returns `r0` to the caller.
    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}

/// Encodes a whole program, slot after slot.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|insn| insn.to_bytes()).collect()
}

/// Decodes a program; `None` if the length is not a multiple of [`INSN_SIZE`].
pub fn decode(bytes: &[u8]) -> Option<Vec<Insn>> {
    let chunks = bytes.chunks_exact(INSN_SIZE);
    if !chunks.remainder().is_empty() {
        return None;
    }
    chunks.map(|chunk| chunk.try_into().ok().map(Insn::from_bytes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_registers_in_nibbles_and_fields_little_endian() {
        let insn = Insn::new(0x63, 10, 1, -4, 0x1234_5678);
        assert_eq!(insn.to_bytes(), [0x63, 0x1a, 0xfc, 0xff, 0x78, 0x56, 0x34, 0x12]);
        assert_eq!(Insn::from_bytes(insn.to_bytes()), insn);
    }

    #[test]
    fn round_trips_every_constructor() {
        let mut program = vec![
            Insn::mov64_imm(Reg::R1, -1),
            Insn::mov64_reg(Reg::R6, Reg::R1),
            Insn::mov32_imm(Reg::R2, i32::MIN),
            Insn::mov32_reg(Reg::R2, Reg::R3),
            Insn::alu64_imm(AluOp::Add, Reg::R1, -8),
            Insn::alu64_reg(AluOp::Arsh, Reg::R9, Reg::R8),
            Insn::alu32_imm(AluOp::Mod, Reg::R4, 7),
            Insn::alu32_reg(AluOp::Xor, Reg::R5, Reg::R0),
            Insn::neg64(Reg::R7),
            Insn::neg32(Reg::R7),
            Insn::endian(Reg::R3, ByteOrder::Big, SwapBits::B16),
            Insn::ldx_mem(Size::DW, Reg::R0, Reg::FP, -16),
            Insn::stx_mem(Size::W, Reg::FP, Reg::R1, -4),
            Insn::st_mem(Size::B, Reg::FP, -1, 0x7f),
            Insn::atomic_add(Size::DW, Reg::R0, Reg::R1, 0),
            Insn::jmp_imm(JmpOp::Sle, Reg::R1, -3, i16::MIN),
            Insn::jmp_reg(JmpOp::Set, Reg::R1, Reg::R2, i16::MAX),
            Insn::jmp32_imm(JmpOp::Lt, Reg::R1, 3, 2),
            Insn::jmp32_reg(JmpOp::Ge, Reg::R1, Reg::R2, -2),
            Insn::ja(-1),
            Insn::call_helper(Helper::MapLookupElem),
            Insn::exit(),
        ];
        program.extend(Insn::ld_imm64(Reg::R1, 0xdead_beef_0123_4567));
        program.extend(Insn::ld_map_fd(Reg::R2));
        let bytes = encode(&program);
        assert_eq!(bytes.len(), program.len() * INSN_SIZE);
        assert_eq!(decode(&bytes), Some(program));
        assert_eq!(decode(&bytes[1..]), None);
    }

    #[test]
    fn opcodes_match_the_kernel_encoding() {
        // Opcode bytes as `llvm-objdump -d` shows them for clang-compiled BPF.
        assert_eq!(Insn::mov64_imm(Reg::R0, 0).code, 0xb7);
        assert_eq!(Insn::mov64_reg(Reg::R1, Reg::R6).code, 0xbf);
        assert_eq!(Insn::mov32_reg(Reg::R1, Reg::R6).code, 0xbc);
        assert_eq!(Insn::alu64_imm(AluOp::Add, Reg::R1, 1).code, 0x07);
        assert_eq!(Insn::alu64_reg(AluOp::Div, Reg::R1, Reg::R2).code, 0x3f);
        assert_eq!(Insn::neg64(Reg::R1).code, 0x87);
        assert_eq!(Insn::endian(Reg::R1, ByteOrder::Big, SwapBits::B32).code, 0xdc);
        assert_eq!(Insn::ldx_mem(Size::DW, Reg::R0, Reg::R1, 0).code, 0x79);
        assert_eq!(Insn::ldx_mem(Size::B, Reg::R0, Reg::R1, 0).code, 0x71);
        assert_eq!(Insn::stx_mem(Size::W, Reg::FP, Reg::R1, -4).code, 0x63);
        assert_eq!(Insn::st_mem(Size::DW, Reg::FP, -8, 0).code, 0x7a);
        assert_eq!(Insn::atomic_add(Size::DW, Reg::R0, Reg::R1, 0).code, 0xdb);
        assert_eq!(Insn::jmp_imm(JmpOp::Eq, Reg::R0, 0, 1).code, 0x15);
        assert_eq!(Insn::jmp_reg(JmpOp::Sgt, Reg::R1, Reg::R2, 1).code, 0x6d);
        assert_eq!(Insn::jmp32_imm(JmpOp::Ne, Reg::R1, 0, 1).code, 0x56);
        assert_eq!(Insn::ja(1).code, 0x05);
        assert_eq!(Insn::call_helper(Helper::KtimeGetNs), Insn::new(0x85, 0, 0, 0, 5));
        assert_eq!(Insn::exit().code, 0x95);
        assert_eq!(Insn::ld_map_fd(Reg::R1)[0], Insn::new(0x18, 1, 1, 0, 0));
    }

    #[test]
    fn ld_imm64_splits_the_constant_into_halves() {
        let [low, high] = Insn::ld_imm64(Reg::R3, 0x1122_3344_8899_aabb);
        assert!(low.is_ld_imm64());
        assert_eq!((low.dst, low.src), (3, 0));
        assert_eq!(low.imm as u32, 0x8899_aabb);
        assert_eq!(high.imm as u32, 0x1122_3344);
        assert_eq!(high.code, 0);
    }

    #[test]
    fn sizes_and_registers_convert_both_ways() {
        for size in [Size::B, Size::H, Size::W, Size::DW] {
            assert_eq!(Size::for_bytes(size.bytes()), Some(size));
            assert_eq!(Size::from_code(size.code()), size);
        }
        assert_eq!(Size::for_bytes(3), None);
        assert_eq!(Size::for_bytes(16), None);
        for reg in Reg::ALL {
            assert_eq!(Reg::from_index(reg.index()), Some(reg));
        }
        assert_eq!(Reg::from_index(11), None);
        assert_eq!(Reg::FP, Reg::R10);
    }

    #[test]
    fn jump_inverses_are_involutions() {
        let ops = [
            JmpOp::Eq,
            JmpOp::Ne,
            JmpOp::Gt,
            JmpOp::Ge,
            JmpOp::Lt,
            JmpOp::Le,
            JmpOp::Sgt,
            JmpOp::Sge,
            JmpOp::Slt,
            JmpOp::Sle,
        ];
        for op in ops {
            let inverse = op.inverse().and_then(JmpOp::inverse);
            assert_eq!(inverse, Some(op));
        }
        assert_eq!(JmpOp::Set.inverse(), None);
    }
}
