//! rbt's IR: one [`Function`] per BPF program, basic blocks of instructions over virtual
//! registers (64-bit scalars) and stack slots (byte buffers for strings, keys and records).
//!
//! The IR is close to BPF but hides the verifier-sensitive parts: stack addresses are formed by
//! the backend, the context pointer is an implicit input, and map-value pointers only come from
//! [`Op::MapLookup`] and are only used after a null check.

use crate::bpf::helpers::Helper;
use grammar::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VReg(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u32);

/// An index into the program's BPF map table ([`crate::program::BpfMap`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapRef(pub u32);

#[derive(Clone, Debug)]
pub struct Function {
    pub blocks: Vec<Block>,
    /// Stack buffers; sizes are multiples of 8.
    pub slots: Vec<u32>,
    /// Slots `0..pinned_slots` (scratch variables) live for the whole program; the others are
    /// temporaries used within one statement, which the backend may overlap when their uses do
    /// not interleave.
    pub pinned_slots: u32,
    pub vreg_count: u32,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub insts: Vec<Inst>,
    pub term: Term,
}

#[derive(Clone, Debug)]
pub struct Inst {
    pub op: Op,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Reg(VReg),
    /// A 32-bit immediate, sign-extended to 64 bits as BPF does.
    Imm(i32),
}

/// A byte offset inside a stack slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRef {
    pub slot: SlotId,
    pub offset: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    /// Unsigned, as bpftrace: BPF before v4 has no signed division.
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    /// Logical shift right.
    Shr,
    /// Arithmetic shift right.
    Sar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Ne,
    /// Unsigned comparisons.
    Lt,
    Le,
    Gt,
    Ge,
    /// Signed comparisons.
    SLt,
    SLe,
    SGt,
    SGe,
}

impl Cond {
    pub fn negate(self) -> Cond {
        match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Lt => Cond::Ge,
            Cond::Le => Cond::Gt,
            Cond::Gt => Cond::Le,
            Cond::Ge => Cond::Lt,
            Cond::SLt => Cond::SGe,
            Cond::SLe => Cond::SGt,
            Cond::SGt => Cond::SLe,
            Cond::SGe => Cond::SLt,
        }
    }
}

/// An argument of a helper call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Reg(VReg),
    Imm(i32),
    Stack(StackRef),
    Map(MapRef),
    /// The program's context pointer.
    Ctx,
    /// The context pointer plus a constant, e.g. a tracepoint field's address.
    CtxOffset(u32),
    /// The context pointer plus a register, e.g. a `__data_loc` string's address.
    CtxPlus(VReg),
}

#[derive(Clone, Debug)]
pub enum Op {
    Const {
        dst: VReg,
        value: u64,
    },
    Mov {
        dst: VReg,
        src: Operand,
    },
    Alu {
        op: AluOp,
        dst: VReg,
        lhs: VReg,
        rhs: Operand,
    },
    Neg {
        dst: VReg,
        src: VReg,
    },
    /// `dst` = the low `bits` (16, 32 or 64) of `src` with their bytes reversed, zero-extended.
    Bswap {
        dst: VReg,
        src: VReg,
        bits: u8,
    },
    /// `dst = (lhs cond rhs) ? 1 : 0`
    SetCond {
        cond: Cond,
        dst: VReg,
        lhs: VReg,
        rhs: Operand,
    },
    /// Truncates to `bytes` and sign- or zero-extends back to 64 bits.
    Extend {
        dst: VReg,
        src: VReg,
        bytes: u8,
        signed: bool,
    },
    /// `dst = *(size *)(ctx + offset)`, zero-extended.
    LoadCtx {
        dst: VReg,
        offset: u32,
        size: u8,
    },
    /// `dst` = the context pointer itself (`ctx`).
    CtxPointer {
        dst: VReg,
    },
    LoadStack {
        dst: VReg,
        at: StackRef,
        size: u8,
    },
    StoreStack {
        at: StackRef,
        size: u8,
        src: Operand,
    },
    ZeroStack {
        at: StackRef,
        len: u32,
    },
    CopyStack {
        dst: StackRef,
        src: StackRef,
        len: u32,
    },
    /// Calls a BPF helper; `dst` receives r0.
    Call {
        dst: Option<VReg>,
        helper: Helper,
        args: Vec<Arg>,
    },
    /// `dst = map_lookup_elem(map, key)`: a map value pointer or 0. Must be branched on before use.
    MapLookup {
        dst: VReg,
        map: MapRef,
        key: StackRef,
    },
    /// `dst = *(size *)(ptr + offset)` through a non-null map value pointer.
    LoadPtr {
        dst: VReg,
        ptr: VReg,
        offset: u32,
        size: u8,
    },
    StorePtr {
        ptr: VReg,
        offset: u32,
        size: u8,
        src: Operand,
    },
    /// Atomic `*(u64 *)(ptr + offset) += src`.
    AtomicAdd {
        ptr: VReg,
        offset: u32,
        src: VReg,
    },
    /// Copies `len` bytes from a map value pointer to the stack.
    CopyFromPtr {
        dst: StackRef,
        ptr: VReg,
        offset: u32,
        len: u32,
    },
    /// Copies `len` bytes from the stack into a map value.
    CopyToPtr {
        ptr: VReg,
        offset: u32,
        src: StackRef,
        len: u32,
    },
}

#[derive(Clone, Debug)]
pub enum Term {
    Jump(BlockId),
    Branch {
        cond: Cond,
        lhs: VReg,
        rhs: Operand,
        then_block: BlockId,
        else_block: BlockId,
    },
    /// Ends the program (returns 0).
    Exit,
}

impl Op {
    /// Virtual registers this instruction reads.
    pub fn uses(&self) -> Vec<VReg> {
        let op = |o: &Operand| match o {
            Operand::Reg(r) => Some(*r),
            Operand::Imm(_) => None,
        };
        match self {
            Op::Const { .. }
            | Op::LoadCtx { .. }
            | Op::CtxPointer { .. }
            | Op::LoadStack { .. }
            | Op::ZeroStack { .. }
            | Op::CopyStack { .. }
            | Op::MapLookup { .. } => Vec::new(),
            Op::Mov { src, .. } | Op::StoreStack { src, .. } => op(src).into_iter().collect(),
            Op::Alu { lhs, rhs, .. } | Op::SetCond { lhs, rhs, .. } => std::iter::once(*lhs).chain(op(rhs)).collect(),
            Op::Neg { src, .. } | Op::Bswap { src, .. } | Op::Extend { src, .. } => vec![*src],
            Op::Call { args, .. } => args
                .iter()
                .filter_map(|a| match a {
                    Arg::Reg(r) | Arg::CtxPlus(r) => Some(*r),
                    _ => None,
                })
                .collect(),
            Op::LoadPtr { ptr, .. } | Op::CopyFromPtr { ptr, .. } | Op::CopyToPtr { ptr, .. } => vec![*ptr],
            Op::StorePtr { ptr, src, .. } => std::iter::once(*ptr).chain(op(src)).collect(),
            Op::AtomicAdd { ptr, src, .. } => vec![*ptr, *src],
        }
    }

    /// The virtual register this instruction writes.
    pub fn def(&self) -> Option<VReg> {
        match self {
            Op::Const { dst, .. }
            | Op::Mov { dst, .. }
            | Op::Alu { dst, .. }
            | Op::Neg { dst, .. }
            | Op::Bswap { dst, .. }
            | Op::SetCond { dst, .. }
            | Op::Extend { dst, .. }
            | Op::LoadCtx { dst, .. }
            | Op::CtxPointer { dst }
            | Op::LoadStack { dst, .. }
            | Op::MapLookup { dst, .. }
            | Op::LoadPtr { dst, .. } => Some(*dst),
            Op::Call { dst, .. } => *dst,
            _ => None,
        }
    }

    /// Stack slots this instruction reads or writes.
    pub fn slots(&self) -> Vec<SlotId> {
        match self {
            Op::LoadStack { at, .. } | Op::StoreStack { at, .. } | Op::ZeroStack { at, .. } => vec![at.slot],
            Op::CopyStack { dst, src, .. } => vec![dst.slot, src.slot],
            Op::CopyFromPtr { dst, .. } => vec![dst.slot],
            Op::CopyToPtr { src, .. } => vec![src.slot],
            Op::MapLookup { key, .. } => vec![key.slot],
            Op::Call { args, .. } => args
                .iter()
                .filter_map(|a| match a {
                    Arg::Stack(at) => Some(at.slot),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the instruction calls a helper (clobbering r0-r5).
    pub fn is_call(&self) -> bool {
        matches!(self, Op::Call { .. } | Op::MapLookup { .. })
    }
}

impl Term {
    pub fn uses(&self) -> Vec<VReg> {
        match self {
            Term::Branch { lhs, rhs: Operand::Reg(r), .. } => vec![*lhs, *r],
            Term::Branch { lhs, .. } => vec![*lhs],
            _ => Vec::new(),
        }
    }

    pub fn successors(&self) -> Vec<BlockId> {
        match self {
            Term::Jump(b) => vec![*b],
            Term::Branch { then_block, else_block, .. } => vec![*then_block, *else_block],
            Term::Exit => Vec::new(),
        }
    }
}

/// Checks IR invariants the backend relies on: block targets exist, registers are in range,
/// stack accesses stay inside their slots. Run in debug builds and tests.
pub fn verify(f: &Function) -> Result<(), String> {
    let nblocks = f.blocks.len() as u32;
    let in_slot = |at: &StackRef, len: u32| -> Result<(), String> {
        let size = f.slots.get(at.slot.0 as usize).ok_or_else(|| format!("unknown slot {:?}", at.slot))?;
        if at.offset + len > *size {
            return Err(format!("access of {len} bytes at {:?}+{} outside a {size}-byte slot", at.slot, at.offset));
        }
        Ok(())
    };
    for (bi, block) in f.blocks.iter().enumerate() {
        for inst in &block.insts {
            for r in inst.op.uses().into_iter().chain(inst.op.def()) {
                if r.0 >= f.vreg_count {
                    return Err(format!("block {bi}: register {r:?} out of range"));
                }
            }
            match &inst.op {
                Op::LoadStack { at, size, .. } | Op::StoreStack { at, size, .. } => in_slot(at, u32::from(*size))?,
                Op::ZeroStack { at, len } => in_slot(at, *len)?,
                Op::CopyStack { dst, src, len } => {
                    in_slot(dst, *len)?;
                    in_slot(src, *len)?;
                }
                Op::CopyFromPtr { dst, len, .. } => in_slot(dst, *len)?,
                Op::CopyToPtr { src, len, .. } => in_slot(src, *len)?,
                Op::MapLookup { key, .. } => in_slot(key, 1)?,
                _ => {}
            }
        }
        for s in block.term.successors() {
            if s.0 >= nblocks {
                return Err(format!("block {bi} jumps to missing block {}", s.0));
            }
        }
    }
    Ok(())
}
