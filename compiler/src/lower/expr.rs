//! Lowering expressions: integers land in virtual registers, strings and tuples in stack slots.

use super::builder::at_offset;
use super::ProbeLowering;
use crate::bpf::helpers::Helper;
use crate::hir::{BinaryOp, Builtin, Expr, ExprKind, UnaryOp};
use crate::ir::{AluOp, Arg, Cond, Op, Operand, StackRef, VReg};
use crate::tracepoint::FieldType;
use crate::types::{align8, Type};

/// Where a lowered value lives.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    Int(VReg),
    Mem(StackRef),
}

impl ProbeLowering<'_> {
    pub(super) fn lower_int(&mut self, e: &Expr) -> VReg {
        match self.lower_value(e) {
            Value::Int(r) => r,
            // The checker only lets integers reach integer contexts; a string's address is never
            // a meaningful integer, so use 0 rather than leak a stack pointer.
            Value::Mem(_) => self.b.constant(0),
        }
    }

    /// Lowers a string or tuple into a stack buffer laid out as its own type.
    pub(super) fn lower_mem(&mut self, e: &Expr) -> StackRef {
        match self.lower_value(e) {
            Value::Mem(at) => at,
            Value::Int(r) => {
                let at = self.b.slot(8);
                self.b.store(at, 0, r, 8);
                at
            }
        }
    }

    pub(super) fn lower_value(&mut self, e: &Expr) -> Value {
        let saved = self.b.span();
        self.b.set_span(e.span);
        let v = self.lower_value_inner(e);
        self.b.set_span(saved);
        v
    }

    fn lower_value_inner(&mut self, e: &Expr) -> Value {
        match &e.kind {
            ExprKind::Int(v) => Value::Int(self.b.constant(*v)),
            ExprKind::Str(bytes) => Value::Mem(self.string_constant(bytes, e.ty.size())),
            ExprKind::Var(id) => {
                let at = self.var_slots[id.0 as usize];
                if e.ty.is_integer() {
                    let dst = self.b.reg();
                    self.b.push(Op::LoadStack { dst, at, size: 8 });
                    Value::Int(dst)
                } else {
                    Value::Mem(at)
                }
            }
            ExprKind::MapRead { map, keys } => self.lower_map_read(*map, keys, &e.ty),
            ExprKind::Builtin(b) => self.lower_builtin(*b),
            ExprKind::ArgsField { offset, size, ty } => self.lower_args_field(*offset, *size, ty, &e.ty),
            ExprKind::Unary { op, expr } => {
                let src = self.lower_int(expr);
                let dst = self.b.reg();
                match op {
                    UnaryOp::Neg => self.b.push(Op::Neg { dst, src }),
                    UnaryOp::LogicalNot => self.b.push(Op::SetCond { cond: Cond::Eq, dst, lhs: src, rhs: Operand::Imm(0) }),
                    UnaryOp::BitNot => self.b.push(Op::Alu { op: AluOp::Xor, dst, lhs: src, rhs: Operand::Imm(-1) }),
                }
                Value::Int(dst)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let signed = lhs.ty.is_signed() && rhs.ty.is_signed();
                let l = self.lower_int(lhs);
                let r = self.lower_int(rhs);
                Value::Int(self.binary(*op, signed, lhs.ty.is_signed(), l, r))
            }
            ExprKind::Logical { is_and, lhs, rhs } => Value::Int(self.lower_logical(*is_and, lhs, rhs)),
            ExprKind::StrCompare { negate, lhs, rhs, limit } => {
                let l = self.lower_mem(lhs);
                let r = self.lower_mem(rhs);
                let n = (*limit).min(lhs.ty.size()).min(rhs.ty.size());
                Value::Int(self.string_compare(l, r, n, *negate))
            }
            ExprKind::Ternary { cond, then_expr, else_expr } => self.lower_ternary(cond, then_expr, else_expr, &e.ty),
            ExprKind::Cast { expr } => {
                let src = self.lower_int(expr);
                match e.ty {
                    Type::Int { bytes, signed } if bytes < 8 => {
                        let dst = self.b.reg();
                        self.b.push(Op::Extend { dst, src, bytes, signed });
                        Value::Int(dst)
                    }
                    _ => Value::Int(src),
                }
            }
            ExprKind::Tuple(_) => {
                let at = self.b.slot(e.ty.size());
                self.write_value(e, at, &e.ty);
                Value::Mem(at)
            }
            ExprKind::ReadStr { ptr, limit } => Value::Mem(self.lower_read_str(ptr, limit.as_deref(), e.ty.size())),
            ExprKind::IncDec { target, increment, prefix } => Value::Int(self.lower_incdec(target, *increment, *prefix)),
        }
    }

    /// Writes `e` into `dst`, laid out as `dst_ty` (which may have longer strings than `e`).
    pub(super) fn write_value(&mut self, e: &Expr, dst: StackRef, dst_ty: &Type) {
        if let (ExprKind::Tuple(items), Type::Tuple(fields)) = (&e.kind, dst_ty) {
            let offsets = Type::tuple_offsets(fields);
            for ((item, field), off) in items.iter().zip(fields).zip(offsets) {
                self.write_value(item, at_offset(dst, off), field);
            }
            return;
        }
        let v = self.lower_value(e);
        self.write_lowered(v, &e.ty, dst, dst_ty);
    }

    /// Stores an already lowered value of type `src_ty` into `dst` laid out as `dst_ty`.
    pub(super) fn write_lowered(&mut self, v: Value, src_ty: &Type, dst: StackRef, dst_ty: &Type) {
        match (v, src_ty, dst_ty) {
            (Value::Int(r), _, _) => self.b.store(dst, 0, r, 8),
            (Value::Mem(src), Type::Tuple(sf), Type::Tuple(df)) if sf != df => {
                let so = Type::tuple_offsets(sf);
                let d_o = Type::tuple_offsets(df);
                for i in 0..sf.len().min(df.len()) {
                    let field = if sf[i].is_integer() {
                        let r = self.b.reg();
                        self.b.push(Op::LoadStack { dst: r, at: at_offset(src, so[i]), size: 8 });
                        Value::Int(r)
                    } else {
                        Value::Mem(at_offset(src, so[i]))
                    };
                    self.write_lowered(field, &sf[i], at_offset(dst, d_o[i]), &df[i]);
                }
            }
            (Value::Mem(src), _, _) => {
                // Every buffer is zero-padded to a multiple of 8, so whole words can be copied.
                let (src_len, dst_len) = (align8(src_ty.size()), align8(dst_ty.size()));
                if src_len < dst_len {
                    self.b.zero(at_offset(dst, src_len), dst_len - src_len);
                }
                self.b.copy(dst, src, src_len.min(dst_len));
            }
        }
    }

    fn string_constant(&mut self, bytes: &[u8], len: u32) -> StackRef {
        let at = self.b.slot(len);
        let mut padded = bytes.to_vec();
        padded.resize(align8(len) as usize, 0);
        for (i, chunk) in padded.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let value = u64::from_le_bytes(word);
            let off = i as u32 * 8;
            if let Ok(small) = i32::try_from(value as i64) {
                self.b.store_imm(at, off, small, 8);
            } else {
                let r = self.b.constant(value);
                self.b.store(at, off, r, 8);
            }
        }
        at
    }

    fn call(&mut self, helper: Helper, args: Vec<Arg>) -> VReg {
        let dst = self.b.reg();
        self.b.push(Op::Call { dst: Some(dst), helper, args });
        dst
    }

    fn lower_builtin(&mut self, b: Builtin) -> Value {
        let alu = |this: &mut Self, op: AluOp, src: VReg, imm: i32| {
            this.b.push(Op::Alu { op, dst: src, lhs: src, rhs: Operand::Imm(imm) });
            src
        };
        let r = match b {
            Builtin::Pid => {
                let r = self.call(Helper::GetCurrentPidTgid, vec![]);
                alu(self, AluOp::Shr, r, 32)
            }
            Builtin::Tid => {
                let r = self.call(Helper::GetCurrentPidTgid, vec![]);
                let dst = self.b.reg();
                self.b.push(Op::Extend { dst, src: r, bytes: 4, signed: false });
                dst
            }
            Builtin::Uid => {
                let r = self.call(Helper::GetCurrentUidGid, vec![]);
                let dst = self.b.reg();
                self.b.push(Op::Extend { dst, src: r, bytes: 4, signed: false });
                dst
            }
            Builtin::Gid => {
                let r = self.call(Helper::GetCurrentUidGid, vec![]);
                alu(self, AluOp::Shr, r, 32)
            }
            Builtin::Comm => {
                let at = self.b.slot(16);
                self.b.zero(at, 16);
                self.b.push(Op::Call { dst: None, helper: Helper::GetCurrentComm, args: vec![Arg::Stack(at), Arg::Imm(16)] });
                return Value::Mem(at);
            }
            Builtin::Nsecs => self.call(Helper::KtimeGetNs, vec![]),
            Builtin::Elapsed => {
                let now = self.call(Helper::KtimeGetNs, vec![]);
                let start = self.b.constant(self.options.start_ns);
                let dst = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Sub, dst, lhs: now, rhs: Operand::Reg(start) });
                dst
            }
            Builtin::Cpu => self.call(Helper::GetSmpProcessorId, vec![]),
            Builtin::Rand => self.call(Helper::GetPrandomU32, vec![]),
            Builtin::Cgroup => self.call(Helper::GetCurrentCgroupId, vec![]),
            Builtin::Curtask => self.call(Helper::GetCurrentTask, vec![]),
            Builtin::Cpid => self.b.constant(u64::from(self.options.cpid.unwrap_or(0))),
            // `probe` is resolved to a string literal by the checker.
            Builtin::Probe => self.b.constant(0),
        };
        Value::Int(r)
    }

    fn lower_args_field(&mut self, offset: u32, size: u32, field: &FieldType, ty: &Type) -> Value {
        match field {
            FieldType::Integer { size: bytes, signed } => {
                let dst = self.b.reg();
                self.b.push(Op::LoadCtx { dst, offset, size: *bytes });
                if *signed && *bytes < 8 {
                    let ext = self.b.reg();
                    self.b.push(Op::Extend { dst: ext, src: dst, bytes: *bytes, signed: true });
                    return Value::Int(ext);
                }
                Value::Int(dst)
            }
            FieldType::Pointer { .. } => {
                let dst = self.b.reg();
                self.b.push(Op::LoadCtx { dst, offset, size: 8 });
                Value::Int(dst)
            }
            FieldType::CharArray { len } => {
                let at = self.b.slot(ty.size());
                self.b.zero(at, align8(ty.size()));
                let n = (*len).min(size);
                self.b.push(Op::Call {
                    dst: None,
                    helper: Helper::ProbeReadKernel,
                    args: vec![Arg::Stack(at), Arg::Imm(n as i32), Arg::CtxOffset(offset)],
                });
                Value::Mem(at)
            }
            FieldType::DataLocString => {
                // The u32 holds the string's offset in the record (low 16 bits) and its length.
                let loc = self.b.reg();
                self.b.push(Op::LoadCtx { dst: loc, offset, size: 4 });
                let off = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::And, dst: off, lhs: loc, rhs: Operand::Imm(0xffff) });
                let at = self.b.slot(ty.size());
                self.b.zero(at, align8(ty.size()));
                self.b.push(Op::Call {
                    dst: None,
                    helper: Helper::ProbeReadKernelStr,
                    args: vec![Arg::Stack(at), Arg::Imm(ty.size() as i32), Arg::CtxPlus(off)],
                });
                Value::Mem(at)
            }
            FieldType::IntArray { .. } | FieldType::Unsupported => Value::Int(self.b.constant(0)),
        }
    }

    fn binary(&mut self, op: BinaryOp, signed: bool, lhs_signed: bool, l: VReg, r: VReg) -> VReg {
        let dst = self.b.reg();
        let rhs = Operand::Reg(r);
        let alu = match op {
            BinaryOp::Add => AluOp::Add,
            BinaryOp::Sub => AluOp::Sub,
            BinaryOp::Mul => AluOp::Mul,
            BinaryOp::Div => AluOp::Div,
            BinaryOp::Mod => AluOp::Mod,
            BinaryOp::BitAnd => AluOp::And,
            BinaryOp::BitOr => AluOp::Or,
            BinaryOp::BitXor => AluOp::Xor,
            BinaryOp::Shl => AluOp::Shl,
            BinaryOp::Shr => {
                if lhs_signed {
                    AluOp::Sar
                } else {
                    AluOp::Shr
                }
            }
            cmp => {
                let cond = match (cmp, signed) {
                    (BinaryOp::Eq, _) => Cond::Eq,
                    (BinaryOp::Ne, _) => Cond::Ne,
                    (BinaryOp::Lt, true) => Cond::SLt,
                    (BinaryOp::Lt, false) => Cond::Lt,
                    (BinaryOp::Le, true) => Cond::SLe,
                    (BinaryOp::Le, false) => Cond::Le,
                    (BinaryOp::Gt, true) => Cond::SGt,
                    (BinaryOp::Gt, false) => Cond::Gt,
                    (BinaryOp::Ge, true) => Cond::SGe,
                    _ => Cond::Ge,
                };
                self.b.push(Op::SetCond { cond, dst, lhs: l, rhs });
                return dst;
            }
        };
        self.b.push(Op::Alu { op: alu, dst, lhs: l, rhs });
        dst
    }

    fn lower_logical(&mut self, is_and: bool, lhs: &Expr, rhs: &Expr) -> VReg {
        let dst = self.b.reg();
        let l = self.lower_int(lhs);
        let eval_rhs = self.b.new_block();
        let short = self.b.new_block();
        let done = self.b.new_block();
        // `a && b`: a == 0 gives 0 at once; `a || b`: a != 0 gives 1 at once.
        let (cond, short_value) = if is_and { (Cond::Eq, 0) } else { (Cond::Ne, 1) };
        self.b.branch(cond, l, Operand::Imm(0), short, eval_rhs);
        self.b.switch_to(short);
        self.b.push(Op::Mov { dst, src: Operand::Imm(short_value) });
        self.b.terminate(crate::ir::Term::Jump(done));
        self.b.switch_to(eval_rhs);
        let r = self.lower_int(rhs);
        self.b.push(Op::SetCond { cond: Cond::Ne, dst, lhs: r, rhs: Operand::Imm(0) });
        self.b.terminate(crate::ir::Term::Jump(done));
        self.b.switch_to(done);
        dst
    }

    fn lower_ternary(&mut self, cond: &Expr, then_expr: &Expr, else_expr: &Expr, ty: &Type) -> Value {
        let c = self.lower_int(cond);
        let then_block = self.b.new_block();
        let else_block = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Ne, c, Operand::Imm(0), then_block, else_block);
        let result = if ty.is_integer() {
            let dst = self.b.reg();
            for (block, e) in [(then_block, then_expr), (else_block, else_expr)] {
                self.b.switch_to(block);
                let v = self.lower_int(e);
                self.b.push(Op::Mov { dst, src: Operand::Reg(v) });
                self.b.terminate(crate::ir::Term::Jump(done));
            }
            Value::Int(dst)
        } else {
            let at = self.b.slot(ty.size());
            for (block, e) in [(then_block, then_expr), (else_block, else_expr)] {
                self.b.switch_to(block);
                self.write_value(e, at, ty);
                self.b.terminate(crate::ir::Term::Jump(done));
            }
            Value::Mem(at)
        };
        self.b.switch_to(done);
        result
    }

    /// 1 when the NUL-terminated strings differ within `n` bytes, else 0; inverted unless `negate`.
    ///
    /// Eight bytes at a time and without branches (every string buffer is zero-padded to a
    /// multiple of 8). A branch per byte gave the verifier two pending paths per byte: long
    /// unrolled comparisons passed its limit of 8192 pending branches, and comparisons inside
    /// loops multiplied the paths it walks.
    fn string_compare(&mut self, l: StackRef, r: StackRef, n: u32, negate: bool) -> VReg {
        // In-place steps (`dst op= rhs`) keep each chain in one register.
        let apply = |this: &mut Self, op: AluOp, dst: VReg, rhs: Operand| {
            this.b.push(Op::Alu { op, dst, lhs: dst, rhs });
        };
        let fresh = |this: &mut Self, op: AluOp, lhs: VReg, rhs: Operand| {
            let dst = this.b.reg();
            this.b.push(Op::Alu { op, dst, lhs, rhs });
            dst
        };
        // `t = (v | -v) >> 63`: 1 when `v` is not zero.
        let nonzero = |this: &mut Self, v: VReg| {
            let t = this.b.reg();
            this.b.push(Op::Neg { dst: t, src: v });
            apply(this, AluOp::Or, t, Operand::Reg(v));
            apply(this, AluOp::Shr, t, Operand::Imm(63));
            t
        };
        let differ = self.b.constant(0);
        let alive = self.b.constant(1);
        let low7 = self.b.constant(0x7f7f_7f7f_7f7f_7f7f);
        for word in 0..n.div_ceil(8) {
            let (a, b) = (self.b.reg(), self.b.reg());
            self.b.push(Op::LoadStack { dst: a, at: at_offset(l, word * 8), size: 8 });
            self.b.push(Op::LoadStack { dst: b, at: at_offset(r, word * 8), size: 8 });
            let x = fresh(self, AluOp::Xor, a, Operand::Reg(b));
            // The top bit of each zero byte of `a`, exactly: !(((a & 0x7f..) + 0x7f..) | a | 0x7f..).
            let zeros = fresh(self, AluOp::And, a, Operand::Reg(low7));
            apply(self, AluOp::Add, zeros, Operand::Reg(low7));
            apply(self, AluOp::Or, zeros, Operand::Reg(a));
            apply(self, AluOp::Or, zeros, Operand::Reg(low7));
            apply(self, AluOp::Xor, zeros, Operand::Imm(-1));
            // Bytes at or past `n` do not count.
            let valid = n - word * 8;
            if valid < 8 {
                let limit = self.b.constant((1u64 << (valid * 8)) - 1);
                apply(self, AluOp::And, x, Operand::Reg(limit));
                apply(self, AluOp::And, zeros, Operand::Reg(limit));
            }
            // The bytes that differ up to and including the first NUL, whose mask is
            // (lowest zero bit << 1) - 1, or every byte when there is no NUL.
            let d = self.b.reg();
            self.b.push(Op::Neg { dst: d, src: zeros });
            apply(self, AluOp::And, d, Operand::Reg(zeros));
            apply(self, AluOp::Shl, d, Operand::Imm(1));
            apply(self, AluOp::Sub, d, Operand::Imm(1));
            apply(self, AluOp::And, d, Operand::Reg(x));
            let hit = nonzero(self, d);
            apply(self, AluOp::And, hit, Operand::Reg(alive));
            apply(self, AluOp::Or, differ, Operand::Reg(hit));
            // A NUL in this word ends the comparison.
            let ended = nonzero(self, zeros);
            apply(self, AluOp::Xor, ended, Operand::Imm(1));
            apply(self, AluOp::And, alive, Operand::Reg(ended));
        }
        if !negate {
            apply(self, AluOp::Xor, differ, Operand::Imm(1));
        }
        differ
    }

    fn lower_read_str(&mut self, ptr: &Expr, limit: Option<&Expr>, len: u32) -> StackRef {
        let p = self.lower_int(ptr);
        let at = self.b.slot(len);
        self.b.zero(at, align8(len));
        let size = match limit {
            Some(l) => {
                // Read at most limit + 1 bytes (the NUL included), never more than the buffer.
                let n = self.lower_int(l);
                let one_more = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Add, dst: one_more, lhs: n, rhs: Operand::Imm(1) });
                let clamp = self.b.new_block();
                let ok = self.b.new_block();
                self.b.branch(Cond::Gt, one_more, Operand::Imm(len as i32), clamp, ok);
                self.b.switch_to(clamp);
                self.b.push(Op::Mov { dst: one_more, src: Operand::Imm(len as i32) });
                self.b.terminate(crate::ir::Term::Jump(ok));
                self.b.switch_to(ok);
                Arg::Reg(one_more)
            }
            None => Arg::Imm(len as i32),
        };
        self.b.push(Op::Call { dst: None, helper: Helper::ProbeReadStr, args: vec![Arg::Stack(at), size, Arg::Reg(p)] });
        at
    }
}
