//! A small builder for IR functions: blocks, registers, stack slots, and the current span.

use crate::ir::{Block, BlockId, Cond, Function, Inst, Op, Operand, SlotId, StackRef, Term, VReg};
use grammar::Span;

pub(super) struct FnBuilder {
    blocks: Vec<Block>,
    /// Blocks not yet terminated get `None`.
    terminated: Vec<bool>,
    slots: Vec<u32>,
    pinned_slots: u32,
    vregs: u32,
    current: BlockId,
    span: Span,
}

impl FnBuilder {
    pub(super) fn new(span: Span) -> FnBuilder {
        FnBuilder {
            blocks: vec![Block { insts: Vec::new(), term: Term::Exit }],
            terminated: vec![false],
            slots: Vec::new(),
            pinned_slots: 0,
            vregs: 0,
            current: BlockId(0),
            span,
        }
    }

    pub(super) fn set_span(&mut self, span: Span) {
        self.span = span;
    }

    pub(super) fn span(&self) -> Span {
        self.span
    }

    pub(super) fn reg(&mut self) -> VReg {
        self.vregs += 1;
        VReg(self.vregs - 1)
    }

    /// A new zero-offset stack buffer of at least `size` bytes (rounded up to 8).
    pub(super) fn slot(&mut self, size: u32) -> StackRef {
        self.slots.push(crate::types::align8(size.max(1)));
        StackRef { slot: SlotId(self.slots.len() as u32 - 1), offset: 0 }
    }

    /// Marks every slot made so far as live for the whole function (scratch variables).
    pub(super) fn pin_slots(&mut self) {
        self.pinned_slots = self.slots.len() as u32;
    }

    pub(super) fn new_block(&mut self) -> BlockId {
        self.blocks.push(Block { insts: Vec::new(), term: Term::Exit });
        self.terminated.push(false);
        BlockId(self.blocks.len() as u32 - 1)
    }

    pub(super) fn current(&self) -> BlockId {
        self.current
    }

    pub(super) fn switch_to(&mut self, block: BlockId) {
        self.current = block;
    }

    pub(super) fn push(&mut self, op: Op) {
        let i = self.current.0 as usize;
        if self.terminated[i] {
            // Code after `return` or `exit()` is unreachable; drop it.
            return;
        }
        self.blocks[i].insts.push(Inst { op, span: self.span });
    }

    /// Puts `op` first in the function's entry block, where it runs before anything else.
    pub(super) fn push_at_entry(&mut self, op: Op) {
        self.blocks[0].insts.insert(0, Inst { op, span: self.span });
    }

    pub(super) fn terminate(&mut self, term: Term) {
        let i = self.current.0 as usize;
        if !self.terminated[i] {
            self.blocks[i].term = term;
            self.terminated[i] = true;
        }
    }

    pub(super) fn branch(&mut self, cond: Cond, lhs: VReg, rhs: Operand, then_block: BlockId, else_block: BlockId) {
        self.terminate(Term::Branch { cond, lhs, rhs, then_block, else_block });
    }

    pub(super) fn constant(&mut self, value: u64) -> VReg {
        let dst = self.reg();
        self.push(Op::Const { dst, value });
        dst
    }

    pub(super) fn zero(&mut self, at: StackRef, len: u32) {
        if len > 0 {
            self.push(Op::ZeroStack { at, len });
        }
    }

    pub(super) fn store(&mut self, at: StackRef, offset: u32, src: VReg, size: u8) {
        let at = StackRef { slot: at.slot, offset: at.offset + offset };
        self.push(Op::StoreStack { at, size, src: Operand::Reg(src) });
    }

    pub(super) fn store_imm(&mut self, at: StackRef, offset: u32, value: i32, size: u8) {
        let at = StackRef { slot: at.slot, offset: at.offset + offset };
        self.push(Op::StoreStack { at, size, src: Operand::Imm(value) });
    }

    pub(super) fn copy(&mut self, dst: StackRef, src: StackRef, len: u32) {
        if len > 0 {
            self.push(Op::CopyStack { dst, src, len });
        }
    }

    pub(super) fn finish(mut self) -> Function {
        for (i, done) in self.terminated.iter().enumerate() {
            if !done {
                self.blocks[i].term = Term::Exit;
            }
        }
        Function { blocks: self.blocks, slots: self.slots, pinned_slots: self.pinned_slots, vreg_count: self.vregs }
    }
}

/// Offset `at` by `offset` bytes.
pub(super) fn at_offset(at: StackRef, offset: u32) -> StackRef {
    StackRef { slot: at.slot, offset: at.offset + offset }
}
