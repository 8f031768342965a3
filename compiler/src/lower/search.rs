//! Lowering `strcontains(haystack, needle)` as bpftrace 0.17 computes it: at every offset `j`
//! where the whole of the needle's buffer fits in the haystack's, compare byte by byte up to the
//! needle's NUL; a NUL in the haystack at `j` ends the search. The loops are unrolled over the
//! two buffers' sizes, known when the program is compiled, so every load has a constant offset.

use super::builder::at_offset;
use super::ProbeLowering;
use crate::hir::Expr;
use crate::ir::{Cond, Op, Operand, StackRef, Term, VReg};

impl ProbeLowering<'_> {
    /// 1 when `needle` occurs in `haystack`, else 0.
    pub(super) fn lower_strcontains(&mut self, haystack: &Expr, needle: &Expr) -> VReg {
        let (hay, hay_len) = (self.lower_mem(haystack), haystack.ty.size());
        let (pin, pin_len) = (self.lower_mem(needle), needle.ty.size());
        let result = self.b.constant(0);
        let found = self.b.new_block();
        let done = self.b.new_block();
        if hay_len >= pin_len {
            for j in 0..=hay_len - pin_len {
                let mismatch = self.b.new_block();
                for i in 0..pin_len {
                    let p = self.load_byte(pin, i);
                    let next = self.b.new_block();
                    self.b.branch(Cond::Eq, p, Operand::Imm(0), found, next);
                    self.b.switch_to(next);
                    let h = self.load_byte(hay, i + j);
                    let same = self.b.new_block();
                    self.b.branch(Cond::Ne, h, Operand::Reg(p), mismatch, same);
                    self.b.switch_to(same);
                }
                self.b.terminate(Term::Jump(mismatch));
                self.b.switch_to(mismatch);
                let h = self.load_byte(hay, j);
                let next_offset = self.b.new_block();
                self.b.branch(Cond::Eq, h, Operand::Imm(0), done, next_offset);
                self.b.switch_to(next_offset);
            }
        }
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(found);
        self.b.push(Op::Mov { dst: result, src: Operand::Imm(1) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
        result
    }

    fn load_byte(&mut self, buffer: StackRef, offset: u32) -> VReg {
        let dst = self.b.reg();
        self.b.push(Op::LoadStack { dst, at: at_offset(buffer, offset), size: 1 });
        dst
    }
}
