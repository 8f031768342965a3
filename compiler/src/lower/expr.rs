//! Lowering expressions: integers land in virtual registers, strings and tuples in stack slots.

use super::builder::at_offset;
use super::{ProbeLowering, SiteSpan};
use crate::bpf::helpers::Helper;
use crate::hir::{BinaryOp, Builtin, Expr, ExprKind, LValue, UnaryOp};
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

    /// How many low bytes of an integer expression's value bpftrace 0.17 computes. It is the
    /// type's width except where its code generator keeps a narrower LLVM value under a 64-bit
    /// type (`-x`, `~x`, `!x` and `$x++` work at the operand's width) or a wider one under a
    /// narrow type (`cpid` is a `uint32` holding an `i64`). Consumers then extend those bytes
    /// differently: see [`Self::lower_int_extended`] and [`Self::lower_int_raw`].
    pub(super) fn int_width(&self, e: &Expr) -> u32 {
        match &e.kind {
            ExprKind::Unary { expr, .. } | ExprKind::Address { expr, .. } => self.int_width(expr),
            ExprKind::IncDec { target: LValue::Var(id), .. } => self.probe.vars[id.0 as usize].ty.int_bytes(),
            ExprKind::Builtin(Builtin::Cpid) => 8,
            _ => e.ty.int_bytes(),
        }
    }

    /// An integer's value with its computed bytes ([`Self::int_width`]) extended by `signed`,
    /// as bpftrace 0.17 converts a value to a map's value type or a ternary's result type.
    pub(super) fn lower_int_extended(&mut self, e: &Expr, signed: bool) -> VReg {
        let v = self.lower_int(e);
        let bytes = self.int_width(e);
        if bytes >= 8 {
            return v;
        }
        let dst = self.b.reg();
        self.b.push(Op::Extend { dst, src: v, bytes: bytes as u8, signed });
        dst
    }

    /// An integer as bpftrace 0.17 stores it into a zeroed buffer of its type's size (printf
    /// arguments, `print(value)`, tuple fields): a value computed narrower than its type is
    /// zero-extended, so `print(-(int8)5)` shows 251.
    pub(super) fn lower_int_raw(&mut self, e: &Expr) -> VReg {
        if self.int_width(e) < e.ty.int_bytes() {
            self.lower_int_extended(e, false)
        } else {
            self.lower_int(e)
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
        // An expression's own calls report their failures at the expression.
        let report_at = self.report_at.take();
        let v = self.lower_value_inner(e);
        self.report_at = report_at;
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
            ExprKind::EntryValue { function, register, cfa } => {
                Value::Int(self.lower_entry_value(*function, *register, cfa))
            }
            ExprKind::Inet { af, addr } => self.lower_inet(af, addr),
            ExprKind::Buf { src, len } => self.lower_buf(src, len, &e.ty),
            ExprKind::DPath(path) => self.lower_dpath(path, &e.ty),
            ExprKind::Bswap(inner) => self.lower_bswap(inner, &e.ty),
            ExprKind::KernelRead { addr, offset, bitfield, space } => self.reporting_at(read_site(e, addr), |this| {
                this.lower_kernel_read(addr, *offset, *bitfield, *space, &e.ty)
            }),
            ExprKind::Address { expr, .. } => self.lower_value(expr),
            ExprKind::StrContains { haystack, needle } => Value::Int(self.lower_strcontains(haystack, needle)),
            ExprKind::Member { base, offset, bitfield } => self.lower_member(base, *offset, *bitfield, &e.ty),
            ExprKind::Unary { op, expr } => {
                let src = self.lower_int(expr);
                let dst = self.b.reg();
                match op {
                    UnaryOp::Neg => self.b.push(Op::Neg { dst, src }),
                    UnaryOp::LogicalNot => {
                        self.b.push(Op::SetCond { cond: Cond::Eq, dst, lhs: src, rhs: Operand::Imm(0) })
                    }
                    UnaryOp::BitNot => self.b.push(Op::Alu { op: AluOp::Xor, dst, lhs: src, rhs: Operand::Imm(-1) }),
                }
                // Computed at the operand's width, then extended by the result's sign:
                // `~(uint16)1` is 65534, `-(int8)5` is -5.
                let width = self.int_width(e);
                if width < 8 {
                    let ext = self.b.reg();
                    self.b.push(Op::Extend { dst: ext, src: dst, bytes: width as u8, signed: e.ty.is_signed() });
                    return Value::Int(ext);
                }
                Value::Int(dst)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let signed = lhs.ty.is_signed() && rhs.ty.is_signed();
                let l = self.lower_int(lhs);
                // bpftrace 0.17's LLVM folds a division or remainder by a literal 0 to 0 (at run
                // time BPF gives 0 for `/` but keeps the dividend for `%`).
                if matches!(op, BinaryOp::Div | BinaryOp::Mod) && matches!(rhs.kind, ExprKind::Int(0)) {
                    return Value::Int(self.b.constant(0));
                }
                let r = self.lower_int(rhs);
                Value::Int(self.binary(*op, signed, l, r))
            }
            ExprKind::Logical { is_and, lhs, rhs } => Value::Int(self.lower_logical(*is_and, lhs, rhs)),
            ExprKind::StrCompare { negate, lhs, rhs, limit } => {
                let l = self.lower_compared(lhs);
                let r = self.lower_compared(rhs);
                let n = (*limit).min(lhs.ty.size()).min(rhs.ty.size());
                Value::Int(self.string_compare(l, r, n, *negate))
            }
            ExprKind::MemEqual { negate, lhs, rhs } => Value::Int(self.lower_mem_equal(lhs, rhs, *negate)),
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
            ExprKind::IncDec { target, increment, prefix, step } => {
                let delta = if *increment { *step as i32 } else { -(*step as i32) };
                // bpftrace locates `++@m[k]` at its `++`, and `@m[k]++` at the whole of it.
                let at = if *prefix { SiteSpan::Operator(e.span) } else { SiteSpan::Node(e.span) };
                Value::Int(self.reporting_at(at, |this| this.lower_incdec(target, delta, *prefix)))
            }
            ExprKind::Stack(stack) => Value::Mem(self.lower_stack(stack)),
            ExprKind::Symbol { addr, user } => {
                let at = self.b.slot(16);
                let a = self.lower_int(addr);
                self.b.store(at, 0, a, 8);
                let pid = if *user {
                    let r = self.call(Helper::GetCurrentPidTgid, vec![]);
                    let dst = self.b.reg();
                    self.b.push(Op::Alu { op: AluOp::Shr, dst, lhs: r, rhs: Operand::Imm(32) });
                    self.announce_new_pid(dst);
                    dst
                } else {
                    self.b.constant(0)
                };
                self.b.store(at, 8, pid, 8);
                Value::Mem(at)
            }
        }
    }

    /// `bpf_get_stackid` into the stack map for the stack's depth: a 16-byte value of the id (or
    /// the negative error, counted as a failed capture) and, for user stacks, the pid whose
    /// address space the frames belong to.
    fn lower_stack(&mut self, stack: &crate::types::StackType) -> StackRef {
        let id = if stack.user && self.options.user_unwind != super::unwind::UserUnwind::FramePointers {
            self.lower_unwound_ustack(stack.limit)
        } else {
            let map = self.stack_map(stack.limit);
            let fast = crate::bpf::helpers::BPF_F_FAST_STACK_CMP;
            let flags = if stack.user { crate::bpf::helpers::BPF_F_USER_STACK | fast } else { fast };
            let id = self.b.reg();
            self.b.push(Op::Call {
                dst: Some(id),
                helper: Helper::GetStackid,
                args: vec![Arg::Ctx, Arg::Map(map), Arg::Imm(flags)],
            });
            id
        };
        let at = self.b.slot(crate::types::StackType::SIZE);
        self.b.store(at, 0, id, 8);
        // EFAULT means an empty stack (a kernel stack sampled in user mode, a user stack of a
        // kernel thread): it prints empty, as in bpftrace. Other errors are failed captures.
        let negative = self.b.new_block();
        let failed = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::SLt, id, Operand::Imm(0), negative, done);
        self.b.switch_to(negative);
        // bpftrace 0.17 reports every failure, an empty stack's too.
        self.report_if_checked(id, Helper::GetStackid);
        self.b.branch(Cond::Ne, id, Operand::Imm(-14), failed, done);
        self.b.switch_to(failed);
        self.count_error(crate::program::ErrorCounter::StackFailed);
        self.b.terminate(crate::ir::Term::Jump(done));
        self.b.switch_to(done);
        let pid = if stack.user {
            let r = self.call(Helper::GetCurrentPidTgid, vec![]);
            let dst = self.b.reg();
            self.b.push(Op::Alu { op: AluOp::Shr, dst, lhs: r, rhs: Operand::Imm(32) });
            dst
        } else {
            self.b.constant(0)
        };
        self.b.store(at, 8, pid, 8);
        if stack.user {
            self.announce_new_pid(pid);
        }
        at
    }

    /// Tells the runtime the first time a process shows up in a user stack, while it still runs,
    /// so its address space can be recorded for symbolizing after it exits: inserting the pid
    /// into the seen-pids map succeeds only once.
    fn announce_new_pid(&mut self, pid: VReg) {
        let seen = self.seen_pids_map();
        let key = self.b.slot(8);
        self.b.store(key, 0, pid, 8);
        let one = self.b.slot(8);
        self.b.store_imm(one, 0, 1, 8);
        let inserted = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(inserted),
            helper: Helper::MapUpdateElem,
            args: vec![Arg::Map(seen), Arg::Stack(key), Arg::Stack(one), Arg::Imm(crate::bpf::helpers::BPF_NOEXIST)],
        });
        let new_pid = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Eq, inserted, Operand::Imm(0), new_pid, done);
        self.b.switch_to(new_pid);
        let record = self.b.slot(crate::program::EVENT_HEADER + 8);
        self.b.store_imm(record, 0, crate::program::EventKind::PidSeen as i32, 4);
        self.b.store_imm(record, 4, 0, 4);
        self.b.store(record, crate::program::EVENT_HEADER, pid, 8);
        self.send(record, crate::program::EVENT_HEADER + 8);
        self.b.terminate(crate::ir::Term::Jump(done));
        self.b.switch_to(done);
    }

    /// Writes `e` into `dst`, laid out as `dst_ty` (which may have longer strings than `e`).
    pub(super) fn write_value(&mut self, e: &Expr, dst: StackRef, dst_ty: &Type) {
        if let (ExprKind::Tuple(items), Type::Tuple(fields)) = (&e.kind, dst_ty) {
            if e.ty != *dst_ty {
                // Build it as its own type first, then store it as bpftrace would.
                let at = self.b.slot(e.ty.size());
                self.write_value(e, at, &e.ty);
                self.copy_tuple_bytes(at, &e.ty, dst, dst_ty, false);
                return;
            }
            let offsets = Type::tuple_offsets(fields);
            for ((item, field), off) in items.iter().zip(fields).zip(offsets) {
                if item.ty.is_integer() {
                    let v = self.lower_int_raw(item);
                    self.b.store(at_offset(dst, off), 0, v, 8);
                } else {
                    self.write_value(item, at_offset(dst, off), field);
                }
            }
            return;
        }
        if let ExprKind::KernelRead { addr, offset, bitfield: None, space } = &e.kind {
            if !e.ty.is_integer() && e.ty == *dst_ty {
                // Straight into the destination: kernel structs can be large, and the BPF stack
                // has room for few copies of them.
                self.b.set_span(e.span);
                self.reporting_at(read_site(e, addr), |this| this.kernel_read_into(addr, *offset, *space, &e.ty, dst));
                return;
            }
        }
        let v = self.lower_value(e);
        self.write_lowered(v, &e.ty, dst, dst_ty);
    }

    /// Stores an already lowered value of type `src_ty` into `dst` laid out as `dst_ty`.
    pub(super) fn write_lowered(&mut self, v: Value, src_ty: &Type, dst: StackRef, dst_ty: &Type) {
        match (v, src_ty, dst_ty) {
            (Value::Int(r), _, _) => self.b.store(dst, 0, r, 8),
            (Value::Mem(src), Type::Tuple(_), Type::Tuple(_)) if src_ty != dst_ty => {
                self.copy_tuple_bytes(src, src_ty, dst, dst_ty, false);
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

    pub(super) fn call(&mut self, helper: Helper, args: Vec<Arg>) -> VReg {
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
            // struct pt_regs on x86-64: rdi 112, rsi 104, rdx 96, rcx 88, r8 72, r9 64; rax 80.
            Builtin::Arg(n) if matches!(self.probe.attach, crate::hir::AttachPoint::Usdt(_)) => {
                let crate::hir::AttachPoint::Usdt(usdt) = &self.probe.attach else { unreachable!("matched above") };
                match usdt.args.get(usize::from(n)) {
                    Some(arg) => {
                        let arg = arg.clone();
                        self.lower_usdt_arg(&arg)
                    }
                    // The checker reported it.
                    None => self.b.constant(0),
                }
            }
            Builtin::Arg(n) => {
                const ARG_OFFSETS: [u32; 6] = [112, 104, 96, 88, 72, 64];
                // A raw tracepoint's context is the array of its u64 arguments.
                let offset = match self.probe.attach {
                    crate::hir::AttachPoint::RawTracepoint { .. } | crate::hir::AttachPoint::Fentry { .. } => {
                        u32::from(n) * 8
                    }
                    _ => ARG_OFFSETS[usize::from(n.min(5))],
                };
                let dst = self.b.reg();
                self.b.push(Op::LoadCtx { dst, offset, size: 8 });
                dst
            }
            Builtin::Retval => {
                let dst = self.b.reg();
                self.b.push(Op::LoadCtx { dst, offset: 80, size: 8 });
                dst
            }
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
                let checked = self.checks(Helper::GetCurrentComm);
                let ret = checked.then(|| self.b.reg());
                self.b.push(Op::Call {
                    dst: ret,
                    helper: Helper::GetCurrentComm,
                    args: vec![Arg::Stack(at), Arg::Imm(16)],
                });
                if let Some(ret) = ret {
                    self.report_if_negative(ret, Helper::GetCurrentComm);
                }
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
            Builtin::NumaId => self.call(Helper::GetNumaNodeId, vec![]),
            Builtin::Sarg(n) => self.lower_stack_arg(n),
            Builtin::Curtask => self.call(Helper::GetCurrentTask, vec![]),
            Builtin::Ctx => {
                let dst = self.b.reg();
                self.b.push(Op::CtxPointer { dst });
                dst
            }
            Builtin::Cpid => self.b.constant(u64::from(self.options.cpid.unwrap_or(0))),
            // `probe` is resolved to a string literal by the checker.
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

    fn binary(&mut self, op: BinaryOp, signed: bool, l: VReg, r: VReg) -> VReg {
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
            // bpftrace 0.17 shifts right logically whatever the sign: `-16 >> 2` is 2^62 - 4.
            BinaryOp::Shr => AluOp::Shr,
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
                let v = self.lower_int_extended(e, ty.is_signed());
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
    /// One side of a string comparison in memory. A buffer is compared as bpftrace 0.17 lays
    /// it out, a length byte and then its bytes, so that equal contents of different lengths
    /// differ (rbt keeps the length in 8 bytes ahead of the bytes).
    fn lower_compared(&mut self, e: &Expr) -> StackRef {
        let at = self.lower_mem(e);
        let Type::Buffer { cap } = e.ty else { return at };
        let packed = self.b.slot(cap + 1);
        self.b.zero(packed, align8(cap + 1));
        let len = self.b.reg();
        self.b.push(Op::LoadStack { dst: len, at, size: 8 });
        self.b.store(packed, 0, len, 1);
        self.b.copy(at_offset(packed, 1), at_offset(at, 8), cap);
        packed
    }

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
                self.clamp(one_more, len);
                Arg::Reg(one_more)
            }
            None => Arg::Imm(len as i32),
        };
        let ret = self.checks(Helper::ProbeReadStr).then(|| self.b.reg());
        self.b.push(Op::Call { dst: ret, helper: Helper::ProbeReadStr, args: vec![Arg::Stack(at), size, Arg::Reg(p)] });
        if let Some(ret) = ret {
            self.report_if_negative(ret, Helper::ProbeReadStr);
        }
        at
    }
}

/// Where bpftrace 0.17 locates the read of a kernel read `e` of `addr`: a dereference (`*p`,
/// whose operand starts after it) at its `*`, the end of a member chain (`$p->a.b`) at the chain.
fn read_site(e: &Expr, addr: &Expr) -> SiteSpan {
    if addr.span.start > e.span.start {
        SiteSpan::Operator(e.span)
    } else {
        SiteSpan::Node(e.span)
    }
}
