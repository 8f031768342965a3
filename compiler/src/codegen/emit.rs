//! Emitting BPF instructions for IR instructions and terminators, given register locations and
//! the stack frame layout. Jumps are emitted with placeholder offsets and patched in `mod.rs`.

use super::regalloc::Location;
use crate::bpf::elf::MapReloc;
use crate::bpf::insn::{Insn, Reg};
use crate::bpf::opcode::{AluOp as BAlu, ByteOrder, JmpOp, Size, SwapBits};
use crate::ir::{AluOp, Arg, BlockId, Cond, Op, Operand, StackRef, VReg};
use grammar::Span;

/// Frame offset of the saved context pointer.
pub(super) const CTX_SAVE: i16 = -8;

pub(super) struct Emitter<'a> {
    pub(super) insns: Vec<Insn>,
    pub(super) spans: Vec<Span>,
    pub(super) relocs: Vec<MapReloc>,
    /// (instruction index, target block) for jumps to patch.
    pub(super) fixups: Vec<(usize, BlockId)>,
    pub(super) locations: &'a [Option<Location>],
    /// Frame offset (negative) of each IR stack slot and each spill slot.
    pub(super) slot_offsets: &'a [i16],
    pub(super) spill_offsets: &'a [i16],
    pub(super) map_names: &'a [String],
    pub(super) span: Span,
}

fn size_of(bytes: u8) -> Size {
    match bytes {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    }
}

fn cond_op(cond: Cond) -> JmpOp {
    match cond {
        Cond::Eq => JmpOp::Eq,
        Cond::Ne => JmpOp::Ne,
        Cond::Lt => JmpOp::Lt,
        Cond::Le => JmpOp::Le,
        Cond::Gt => JmpOp::Gt,
        Cond::Ge => JmpOp::Ge,
        Cond::SLt => JmpOp::Slt,
        Cond::SLe => JmpOp::Sle,
        Cond::SGt => JmpOp::Sgt,
        Cond::SGe => JmpOp::Sge,
    }
}

fn alu_op(op: AluOp) -> BAlu {
    match op {
        AluOp::Add => BAlu::Add,
        AluOp::Sub => BAlu::Sub,
        AluOp::Mul => BAlu::Mul,
        AluOp::Div => BAlu::Div,
        AluOp::Mod => BAlu::Mod,
        AluOp::And => BAlu::And,
        AluOp::Or => BAlu::Or,
        AluOp::Xor => BAlu::Xor,
        AluOp::Shl => BAlu::Lsh,
        AluOp::Shr => BAlu::Rsh,
        AluOp::Sar => BAlu::Arsh,
    }
}

impl Emitter<'_> {
    fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
        self.spans.push(self.span);
    }

    fn emit_wide(&mut self, pair: [Insn; 2]) {
        self.emit(pair[0]);
        self.emit(pair[1]);
    }

    fn location(&self, v: VReg) -> Location {
        // Every register the IR mentions was given a location by the allocator.
        self.locations[v.0 as usize].unwrap_or(Location::Spill(0))
    }

    /// The physical register holding `v`, loading a spilled value into `scratch`.
    fn read(&mut self, v: VReg, scratch: Reg) -> Reg {
        match self.location(v) {
            Location::Reg(r) => r,
            Location::Spill(i) => {
                let off = self.spill_offsets[i as usize];
                self.emit(Insn::ldx_mem(Size::DW, scratch, Reg::R10, off));
                scratch
            }
        }
    }

    /// Copies `v` into exactly `target`.
    fn read_into(&mut self, v: VReg, target: Reg) {
        let r = self.read(v, target);
        if r != target {
            self.emit(Insn::mov64_reg(target, r));
        }
    }

    /// Stores `from` as the new value of `v`.
    fn write(&mut self, v: VReg, from: Reg) {
        match self.location(v) {
            Location::Reg(r) => {
                if r != from {
                    self.emit(Insn::mov64_reg(r, from));
                }
            }
            Location::Spill(i) => {
                let off = self.spill_offsets[i as usize];
                self.emit(Insn::stx_mem(Size::DW, Reg::R10, from, off));
            }
        }
    }

    fn stack_offset(&self, at: StackRef) -> i16 {
        self.slot_offsets[at.slot.0 as usize] + at.offset as i16
    }

    fn load_constant(&mut self, dst: Reg, value: u64) {
        match i32::try_from(value as i64) {
            Ok(small) => self.emit(Insn::mov64_imm(dst, small)),
            Err(_) => self.emit_wide(Insn::ld_imm64(dst, value)),
        }
    }

    fn load_ctx(&mut self, dst: Reg) {
        self.emit(Insn::ldx_mem(Size::DW, dst, Reg::R10, CTX_SAVE));
    }

    pub(super) fn save_ctx(&mut self) {
        self.emit(Insn::stx_mem(Size::DW, Reg::R10, Reg::R1, CTX_SAVE));
    }

    fn load_map(&mut self, dst: Reg, map: crate::ir::MapRef) {
        let insn_index = self.insns.len();
        self.emit_wide(Insn::ld_map_fd(dst));
        self.relocs.push(MapReloc { insn_index, map_name: self.map_names[map.0 as usize].clone() });
    }

    /// Copies `len` bytes between `base_src + src_off` and `base_dst + dst_off` through r0.
    fn copy_bytes(&mut self, dst: Reg, dst_off: i16, src: Reg, src_off: i16, len: u32) {
        let mut done = 0u32;
        while done < len {
            // The widest access that fits and is aligned at both ends: the verifier rejects
            // misaligned stack accesses (tuple fields are copied at bpftrace's byte offsets).
            let aligned = |size: i32| {
                (i32::from(dst_off) + done as i32).rem_euclid(size) == 0
                    && (i32::from(src_off) + done as i32).rem_euclid(size) == 0
            };
            let chunk = [8u32, 4, 2, 1].into_iter().find(|&c| c <= len - done && aligned(c as i32)).unwrap_or(1);
            let size = size_of(chunk as u8);
            self.emit(Insn::ldx_mem(size, Reg::R0, src, src_off + done as i16));
            self.emit(Insn::stx_mem(size, dst, Reg::R0, dst_off + done as i16));
            done += chunk;
        }
    }

    /// The register `v` lives in, when it is not spilled.
    fn home(&self, v: VReg) -> Option<Reg> {
        match self.location(v) {
            Location::Reg(r) => Some(r),
            Location::Spill(_) => None,
        }
    }

    pub(super) fn op(&mut self, op: &Op) {
        // Values in r6-r9 are computed in place; spilled ones go through r0 and back to the stack.
        let in_place = op.def().and_then(|d| self.home(d)).is_some_and(|rd| self.op_in_place(op, rd));
        if !in_place {
            self.op_through_r0(op);
        }
    }

    /// Emits `op` straight into `rd`, its destination's register; false when it cannot (the
    /// operation is not one of these, or `rd` holds the right operand, which writing the left one
    /// first would destroy).
    fn op_in_place(&mut self, op: &Op, rd: Reg) -> bool {
        match *op {
            Op::Const { value, .. } => self.load_constant(rd, value),
            Op::Mov { src: Operand::Imm(i), .. } => self.emit(Insn::mov64_imm(rd, i)),
            Op::Mov { src: Operand::Reg(s), .. } => self.read_into(s, rd),
            Op::Neg { src, .. } => {
                self.read_into(src, rd);
                self.emit(Insn::neg64(rd));
            }
            Op::Bswap { src, bits, .. } => {
                self.read_into(src, rd);
                self.emit(Insn::endian(rd, ByteOrder::Big, swap_bits(bits)));
            }
            Op::LoadStack { at, size, .. } => {
                let off = self.stack_offset(at);
                self.emit(Insn::ldx_mem(size_of(size), rd, Reg::R10, off));
            }
            Op::Alu { op, lhs, rhs, .. } => {
                let rhs_in_rd = matches!(rhs, Operand::Reg(r) if self.home(r) == Some(rd));
                if rhs_in_rd && self.home(lhs) != Some(rd) {
                    return false;
                }
                self.read_into(lhs, rd);
                match rhs {
                    Operand::Imm(i) => self.emit(Insn::alu64_imm(alu_op(op), rd, i)),
                    Operand::Reg(r) => {
                        let r = self.read(r, Reg::R1);
                        self.emit(Insn::alu64_reg(alu_op(op), rd, r));
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn op_through_r0(&mut self, op: &Op) {
        match op {
            Op::Const { dst, value } => {
                self.load_constant(Reg::R0, *value);
                self.write(*dst, Reg::R0);
            }
            Op::Mov { dst, src } => match src {
                Operand::Imm(i) => {
                    self.emit(Insn::mov64_imm(Reg::R0, *i));
                    self.write(*dst, Reg::R0);
                }
                Operand::Reg(s) => {
                    let r = self.read(*s, Reg::R0);
                    self.write(*dst, r);
                }
            },
            Op::Alu { op, dst, lhs, rhs } => {
                self.read_into(*lhs, Reg::R0);
                match rhs {
                    Operand::Imm(i) => self.emit(Insn::alu64_imm(alu_op(*op), Reg::R0, *i)),
                    Operand::Reg(r) => {
                        let r = self.read(*r, Reg::R1);
                        self.emit(Insn::alu64_reg(alu_op(*op), Reg::R0, r));
                    }
                }
                self.write(*dst, Reg::R0);
            }
            Op::Neg { dst, src } => {
                self.read_into(*src, Reg::R0);
                self.emit(Insn::neg64(Reg::R0));
                self.write(*dst, Reg::R0);
            }
            Op::Bswap { dst, src, bits } => {
                self.read_into(*src, Reg::R0);
                self.emit(Insn::endian(Reg::R0, ByteOrder::Big, swap_bits(*bits)));
                self.write(*dst, Reg::R0);
            }
            Op::SetCond { cond, dst, lhs, rhs } => {
                let l = self.read(*lhs, Reg::R1);
                self.emit(Insn::mov64_imm(Reg::R0, 1));
                match rhs {
                    Operand::Imm(i) => self.emit(Insn::jmp_imm(cond_op(*cond), l, *i, 1)),
                    Operand::Reg(r) => {
                        let r = self.read(*r, Reg::R2);
                        self.emit(Insn::jmp_reg(cond_op(*cond), l, r, 1));
                    }
                }
                self.emit(Insn::mov64_imm(Reg::R0, 0));
                self.write(*dst, Reg::R0);
            }
            Op::Extend { dst, src, bytes, signed } => {
                self.read_into(*src, Reg::R0);
                let bits = 64 - i32::from(*bytes) * 8;
                if *signed {
                    self.emit(Insn::alu64_imm(BAlu::Lsh, Reg::R0, bits));
                    self.emit(Insn::alu64_imm(BAlu::Arsh, Reg::R0, bits));
                } else if *bytes == 4 {
                    // A 32-bit move zero-extends into the upper half.
                    self.emit(Insn::mov32_reg(Reg::R0, Reg::R0));
                } else {
                    self.emit(Insn::alu64_imm(BAlu::And, Reg::R0, (1i32 << (i32::from(*bytes) * 8)) - 1));
                }
                self.write(*dst, Reg::R0);
            }
            Op::LoadCtx { dst, offset, size } => {
                self.load_ctx(Reg::R1);
                self.emit(Insn::ldx_mem(size_of(*size), Reg::R0, Reg::R1, *offset as i16));
                self.write(*dst, Reg::R0);
            }
            Op::CtxPointer { dst } => {
                self.load_ctx(Reg::R0);
                self.write(*dst, Reg::R0);
            }
            Op::LoadStack { dst, at, size } => {
                let off = self.stack_offset(*at);
                self.emit(Insn::ldx_mem(size_of(*size), Reg::R0, Reg::R10, off));
                self.write(*dst, Reg::R0);
            }
            Op::StoreStack { at, size, src } => {
                let off = self.stack_offset(*at);
                match src {
                    Operand::Imm(i) => self.emit(Insn::st_mem(size_of(*size), Reg::R10, off, *i)),
                    Operand::Reg(r) => {
                        let r = self.read(*r, Reg::R0);
                        self.emit(Insn::stx_mem(size_of(*size), Reg::R10, r, off));
                    }
                }
            }
            Op::ZeroStack { at, len } => {
                let off = self.stack_offset(*at);
                let mut done = 0u32;
                while done < *len {
                    let chunk = match len - done {
                        n if n >= 8 => 8,
                        n if n >= 4 => 4,
                        n if n >= 2 => 2,
                        _ => 1,
                    };
                    self.emit(Insn::st_mem(size_of(chunk as u8), Reg::R10, off + done as i16, 0));
                    done += chunk;
                }
            }
            Op::CopyStack { dst, src, len } => {
                let (d, s) = (self.stack_offset(*dst), self.stack_offset(*src));
                self.copy_bytes(Reg::R10, d, Reg::R10, s, *len);
            }
            Op::Call { dst, helper, args } => {
                self.stage_args(args);
                self.emit(Insn::call_helper(*helper));
                if let Some(d) = dst {
                    self.write(*d, Reg::R0);
                }
            }
            Op::MapLookup { dst, map, key } => {
                self.stage_args(&[Arg::Map(*map), Arg::Stack(*key)]);
                self.emit(Insn::call_helper(crate::bpf::helpers::Helper::MapLookupElem));
                self.write(*dst, Reg::R0);
            }
            Op::LoadPtr { dst, ptr, offset, size } => {
                let p = self.read(*ptr, Reg::R1);
                self.emit(Insn::ldx_mem(size_of(*size), Reg::R0, p, *offset as i16));
                self.write(*dst, Reg::R0);
            }
            Op::StorePtr { ptr, offset, size, src } => {
                let p = self.read(*ptr, Reg::R1);
                match src {
                    Operand::Imm(i) => self.emit(Insn::st_mem(size_of(*size), p, *offset as i16, *i)),
                    Operand::Reg(r) => {
                        let r = self.read(*r, Reg::R2);
                        self.emit(Insn::stx_mem(size_of(*size), p, r, *offset as i16));
                    }
                }
            }
            Op::AtomicAdd { ptr, offset, src } => {
                let p = self.read(*ptr, Reg::R1);
                let s = self.read(*src, Reg::R2);
                self.emit(Insn::atomic_add(Size::DW, p, s, *offset as i16));
            }
            Op::CopyFromPtr { dst, ptr, offset, len } => {
                let p = self.read(*ptr, Reg::R1);
                let d = self.stack_offset(*dst);
                self.copy_bytes(Reg::R10, d, p, *offset as i16, *len);
            }
            Op::CopyToPtr { ptr, offset, src, len } => {
                let p = self.read(*ptr, Reg::R1);
                let s = self.stack_offset(*src);
                self.copy_bytes(p, *offset as i16, Reg::R10, s, *len);
            }
        }
    }

    /// Puts helper arguments into r1..r5. Allocated values live in r6-r9 or on the stack, so
    /// filling r1..r5 in order never overwrites a value still to be read.
    fn stage_args(&mut self, args: &[Arg]) {
        const ARG_REGS: [Reg; 5] = [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5];
        for (arg, &r) in args.iter().zip(ARG_REGS.iter()) {
            match *arg {
                Arg::Reg(v) => self.read_into(v, r),
                Arg::Imm(i) => self.emit(Insn::mov64_imm(r, i)),
                Arg::Stack(at) => {
                    let off = self.stack_offset(at);
                    self.emit(Insn::mov64_reg(r, Reg::R10));
                    self.emit(Insn::alu64_imm(BAlu::Add, r, i32::from(off)));
                }
                Arg::Map(m) => self.load_map(r, m),
                Arg::Ctx => self.load_ctx(r),
                Arg::CtxOffset(o) => {
                    self.load_ctx(r);
                    self.emit(Insn::alu64_imm(BAlu::Add, r, o as i32));
                }
                Arg::CtxPlus(v) => {
                    let off = self.read(v, Reg::R0);
                    self.load_ctx(r);
                    self.emit(Insn::alu64_reg(BAlu::Add, r, off));
                }
            }
        }
    }

    /// A conditional jump to `target` (patched later).
    pub(super) fn branch(&mut self, cond: Cond, lhs: VReg, rhs: Operand, target: BlockId) {
        let l = self.read(lhs, Reg::R1);
        let insn = match rhs {
            Operand::Imm(i) => Insn::jmp_imm(cond_op(cond), l, i, 0),
            Operand::Reg(r) => {
                let r = self.read(r, Reg::R2);
                Insn::jmp_reg(cond_op(cond), l, r, 0)
            }
        };
        self.fixups.push((self.insns.len(), target));
        self.emit(insn);
    }

    pub(super) fn jump(&mut self, target: BlockId) {
        self.fixups.push((self.insns.len(), target));
        self.emit(Insn::ja(0));
    }

    pub(super) fn exit(&mut self) {
        self.emit(Insn::mov64_imm(Reg::R0, 0));
        self.emit(Insn::exit());
    }
}

/// The byte-swap width of `Op::Bswap` (the lowering only asks for 16, 32 or 64).
fn swap_bits(bits: u8) -> SwapBits {
    match bits {
        16 => SwapBits::B16,
        32 => SwapBits::B32,
        _ => SwapBits::B64,
    }
}
