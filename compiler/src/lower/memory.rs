//! Lowering reads of memory and the values built from it: kernel struct members through BTF
//! (`KernelRead`, one `bpf_probe_read_kernel` at the end of a member chain), members of structs
//! already on the stack, USDT arguments, and `ntop`, `buf`, `path`, `bswap`.

use super::builder::at_offset;
use super::expr::Value;
use super::ProbeLowering;
use crate::bpf::helpers::Helper;
use crate::hir::{AddrSpace, AttachPoint, Expr};
use crate::ir::{AluOp, Arg, Cond, Op, Operand, StackRef, VReg};
use crate::program::ErrorCounter;
use crate::types::{align8, Bitfield, Type};
use crate::usdt::{UsdtArg, UsdtLocation};

/// Bytes to read for a member: a bitfield's covering bytes, or the type's own size.
fn read_len(bitfield: Option<Bitfield>, ty: &Type) -> u32 {
    match bitfield {
        Some(bf) => bf.bytes(),
        None => ty.native_size(),
    }
}

impl ProbeLowering<'_> {
    /// `ntop([af,] addr)`: the family, then an integer's low four bytes or the array's bytes.
    pub(super) fn lower_inet(&mut self, af: &Expr, addr: &Expr) -> Value {
        let at = self.b.slot(24);
        self.b.zero(at, 24);
        let family = self.lower_int(af);
        self.b.store(at, 0, family, 8);
        if addr.ty.is_integer() {
            let v = self.lower_int(addr);
            self.b.store(at, 8, v, 4);
        } else {
            let src = self.lower_mem(addr);
            self.b.copy(at_offset(at, 8), src, addr.ty.size().min(16));
        }
        Value::Mem(at)
    }

    /// `buf(src, len)`: the length (clamped to the buffer), then the bytes read through a pointer
    /// or copied from an array or string value.
    pub(super) fn lower_buf(&mut self, src: &Expr, len: &Expr, ty: &Type) -> Value {
        let Type::Buffer { cap } = *ty else { return Value::Int(self.b.constant(0)) };
        let at = self.b.slot(8 + cap);
        self.b.zero(at, align8(8 + cap));
        let n = self.lower_int(len);
        self.clamp(n, cap);
        self.b.store(at, 0, n, 8);
        if src.ty.is_integer() {
            let p = self.lower_int(src);
            let ret = self.b.reg();
            self.b.push(Op::Call {
                dst: Some(ret),
                helper: Helper::ProbeRead,
                args: vec![Arg::Stack(at_offset(at, 8)), Arg::Reg(n), Arg::Reg(p)],
            });
            self.count_if_negative(ret, ErrorCounter::ReadFailed, Helper::ProbeRead);
        } else {
            let from = self.lower_mem(src);
            self.b.copy(at_offset(at, 8), from, cap.min(src.ty.size()));
        }
        Value::Mem(at)
    }

    /// `path(p)`: `bpf_d_path` into a string of `ty`.
    pub(super) fn lower_dpath(&mut self, path: &Expr, ty: &Type) -> Value {
        let p = self.lower_int(path);
        let len = ty.size();
        let at = self.b.slot(len);
        self.b.zero(at, align8(len));
        let ret = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(ret),
            helper: Helper::DPath,
            args: vec![Arg::Reg(p), Arg::Stack(at), Arg::Imm(len as i32)],
        });
        self.count_if_negative(ret, ErrorCounter::ReadFailed, Helper::DPath);
        Value::Mem(at)
    }

    /// `bswap(x)` at `ty`'s width.
    pub(super) fn lower_bswap(&mut self, inner: &Expr, ty: &Type) -> Value {
        let v = self.lower_int(inner);
        let bytes = ty.int_bytes();
        if bytes == 1 {
            return Value::Int(v);
        }
        let swapped = self.b.reg();
        self.b.push(Op::Bswap { dst: swapped, src: v, bits: (bytes * 8) as u8 });
        if ty.is_signed() && bytes < 8 {
            let ext = self.b.reg();
            self.b.push(Op::Extend { dst: ext, src: swapped, bytes: bytes as u8, signed: true });
            return Value::Int(ext);
        }
        Value::Int(swapped)
    }

    /// Lowers `reg` to at most `max` (unsigned: a negative length is huge and becomes `max`).
    pub(super) fn clamp(&mut self, reg: VReg, max: u32) {
        let clamp = self.b.new_block();
        let ok = self.b.new_block();
        self.b.branch(Cond::Gt, reg, Operand::Imm(max as i32), clamp, ok);
        self.b.switch_to(clamp);
        self.b.push(Op::Mov { dst: reg, src: Operand::Imm(max as i32) });
        self.b.terminate(crate::ir::Term::Jump(ok));
        self.b.switch_to(ok);
    }

    /// `bpf_probe_read_kernel` of a `ty` at `addr + offset`; a failed read (a bad pointer) leaves
    /// zeros, as the helper clears its buffer, and is counted.
    pub(super) fn lower_kernel_read(
        &mut self,
        addr: &Expr,
        offset: u32,
        bitfield: Option<Bitfield>,
        space: AddrSpace,
        ty: &Type,
    ) -> Value {
        // `ctx->field`: a load from the context, which the verifier checks and rewrites (a perf
        // event's `struct bpf_perf_event_data` is not what the context pointer points at, so
        // only a direct load reads it right).
        if matches!(addr.kind, crate::hir::ExprKind::Builtin(crate::hir::Builtin::Ctx))
            && bitfield.is_none()
            && ty.is_integer()
            && ty.size() == 8
        {
            let dst = self.b.reg();
            self.b.push(Op::LoadCtx { dst, offset, size: 8 });
            return Value::Int(dst);
        }
        let src = self.address(addr, offset);
        let len = read_len(bitfield, ty);
        let at = self.b.slot(align8(len).max(8));
        self.read_bytes(src, len, space, at);
        self.load_native(at, bitfield, ty)
    }

    /// A USDT argument where its note says it is, widened to 64 bits as its size and sign say.
    pub(super) fn lower_usdt_arg(&mut self, arg: &UsdtArg) -> VReg {
        let address = |this: &mut Self, regs_offset: u32, displacement: i64| {
            let base = this.b.reg();
            this.b.push(Op::LoadCtx { dst: base, offset: regs_offset, size: 8 });
            let at = this.b.reg();
            let displacement = this.b.constant(displacement as u64);
            this.b.push(Op::Alu { op: AluOp::Add, dst: at, lhs: base, rhs: Operand::Reg(displacement) });
            at
        };
        let raw = match arg.location {
            UsdtLocation::Constant(value) => return self.b.constant(value as u64),
            UsdtLocation::Register { regs_offset, shift } => {
                let value = self.b.reg();
                self.b.push(Op::LoadCtx { dst: value, offset: regs_offset, size: 8 });
                if shift > 0 {
                    self.b.push(Op::Alu {
                        op: AluOp::Shr,
                        dst: value,
                        lhs: value,
                        rhs: Operand::Imm(i32::from(shift)),
                    });
                }
                value
            }
            UsdtLocation::Memory { regs_offset, displacement } => {
                let src = address(self, regs_offset, displacement);
                self.read_user_word(src, arg.size)
            }
            UsdtLocation::IndexedMemory { base_offset, index_offset, scale, displacement } => {
                let src = address(self, base_offset, displacement);
                let index = self.b.reg();
                self.b.push(Op::LoadCtx { dst: index, offset: index_offset, size: 8 });
                let shift = i32::from(scale.trailing_zeros() as u8);
                self.b.push(Op::Alu { op: AluOp::Shl, dst: index, lhs: index, rhs: Operand::Imm(shift) });
                self.b.push(Op::Alu { op: AluOp::Add, dst: src, lhs: src, rhs: Operand::Reg(index) });
                self.read_user_word(src, arg.size)
            }
            UsdtLocation::IpRelative { delta } => {
                let src = address(self, crate::usdt::REGS_IP, delta);
                self.read_user_word(src, arg.size)
            }
        };
        if arg.size >= 8 {
            return raw;
        }
        let dst = self.b.reg();
        self.b.push(Op::Extend { dst, src: raw, bytes: arg.size, signed: arg.signed });
        dst
    }

    /// `sargN`: the Nth word above the return address at the probed function's entry (x86-64's
    /// stack arguments), in the kernel's stack for kprobes and the process's for uprobes.
    pub(super) fn lower_stack_arg(&mut self, n: u8) -> VReg {
        /// `sp` in x86-64's `struct pt_regs`.
        const REGS_SP: u32 = 152;
        let sp = self.b.reg();
        self.b.push(Op::LoadCtx { dst: sp, offset: REGS_SP, size: 8 });
        let src = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Add, dst: src, lhs: sp, rhs: Operand::Imm((i32::from(n) + 1) * 8) });
        let user = matches!(self.probe.attach, crate::hir::AttachPoint::Uprobe { .. });
        self.read_word(src, 8, if user { Helper::ProbeReadUser } else { Helper::ProbeReadKernel })
    }

    /// `size` bytes (at most 8) of user memory at `src` as a register's low bytes; a failed read
    /// gives 0 and is counted.
    fn read_user_word(&mut self, src: VReg, size: u8) -> VReg {
        self.read_word(src, size, Helper::ProbeReadUser)
    }

    /// `size` bytes (at most 8) at `src`, read by `helper`, as a register's low bytes; a failed
    /// read gives 0 and is counted.
    pub(super) fn read_word(&mut self, src: VReg, size: u8, helper: Helper) -> VReg {
        let at = self.b.slot(8);
        self.b.zero(at, 8);
        let ret = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(ret),
            helper,
            args: vec![Arg::Stack(at), Arg::Imm(i32::from(size)), Arg::Reg(src)],
        });
        self.count_if_negative(ret, ErrorCounter::ReadFailed, helper);
        let value = self.b.reg();
        self.b.push(Op::LoadStack { dst: value, at, size: 8 });
        value
    }

    /// Reads a kernel struct, array or string (`ty`) at `addr + offset` straight into `dst`.
    pub(super) fn kernel_read_into(&mut self, addr: &Expr, offset: u32, space: AddrSpace, ty: &Type, dst: StackRef) {
        let src = self.address(addr, offset);
        self.read_bytes(src, ty.native_size(), space, dst);
    }

    /// `addr + offset` in a register.
    fn address(&mut self, addr: &Expr, offset: u32) -> VReg {
        let base = self.lower_int(addr);
        if offset == 0 {
            return base;
        }
        let r = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Add, dst: r, lhs: base, rhs: Operand::Imm(offset as i32) });
        r
    }

    /// `len` bytes from address `src` in `space` into `at`, whose zero padding up to a multiple
    /// of 8 it keeps; a failed read leaves zeros (the helper clears its buffer) and is counted.
    fn read_bytes(&mut self, src: VReg, len: u32, space: AddrSpace, at: StackRef) {
        let padded = align8(len).max(8);
        if self.options.helper_checks > 0 {
            // Written by stores first: the verifier of Linux 6.18 was seen to fail ("verifier bug:
            // stack slot 7, total slots 5") propagating the precision of a slot that only the helper
            // had written into an older state with a smaller stack, once -kk's report paths changed
            // its pruning (verifier_fuzz seed 1046 with -kk). A store ends that backtracking.
            self.b.zero(at, padded);
        } else if len < padded {
            self.b.zero(at_offset(at, padded - 8), 8);
        }
        let helper = match space {
            AddrSpace::Kernel => Helper::ProbeReadKernel,
            AddrSpace::User => Helper::ProbeReadUser,
            AddrSpace::Unknown => self.memory_read_helper(),
        };
        let ret = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(ret),
            helper,
            args: vec![Arg::Stack(at), Arg::Imm(len as i32), Arg::Reg(src)],
        });
        self.count_if_negative(ret, ErrorCounter::ReadFailed, helper);
    }

    /// `a == b` (or `!=`) of two arrays of one type: every byte of them compared, a word at a
    /// time (values on the stack are zero-padded to 8 bytes, so the padding compares equal).
    pub(super) fn lower_mem_equal(&mut self, lhs: &Expr, rhs: &Expr, negate: bool) -> VReg {
        let l = self.lower_mem(lhs);
        let r = self.lower_mem(rhs);
        let differ = self.b.constant(0);
        for word in 0..lhs.ty.size().min(rhs.ty.size()).div_ceil(8) {
            let (a, b) = (self.b.reg(), self.b.reg());
            self.b.push(Op::LoadStack { dst: a, at: at_offset(l, word * 8), size: 8 });
            self.b.push(Op::LoadStack { dst: b, at: at_offset(r, word * 8), size: 8 });
            self.b.push(Op::Alu { op: AluOp::Xor, dst: a, lhs: a, rhs: Operand::Reg(b) });
            self.b.push(Op::Alu { op: AluOp::Or, dst: differ, lhs: differ, rhs: Operand::Reg(a) });
        }
        // `(v | -v) >> 63` is 1 exactly when `v` is not zero.
        let t = self.b.reg();
        self.b.push(Op::Neg { dst: t, src: differ });
        self.b.push(Op::Alu { op: AluOp::Or, dst: t, lhs: t, rhs: Operand::Reg(differ) });
        self.b.push(Op::Alu { op: AluOp::Shr, dst: t, lhs: t, rhs: Operand::Imm(63) });
        if !negate {
            self.b.push(Op::Alu { op: AluOp::Xor, dst: t, lhs: t, rhs: Operand::Imm(1) });
        }
        t
    }

    /// The helper that reads memory through a pointer whose address space is unknown in this
    /// probe. bpftrace 0.17 reads
    /// pointers of kernel probes (kprobes, tracepoints, fentry) from kernel memory; in uprobes and
    /// USDT probes the arguments point into the process, and in BEGIN, interval or profile
    /// probes it cannot tell, so it uses `bpf_probe_read`, which on x86-64 reads user memory
    /// below the kernel's half of the address space and kernel memory above it: `curtask->pid`
    /// still reads the kernel there.
    fn memory_read_helper(&self) -> Helper {
        match self.probe.attach {
            AttachPoint::Tracepoint { .. }
            | AttachPoint::Kprobe { .. }
            | AttachPoint::Fentry { .. }
            | AttachPoint::RawTracepoint { .. } => Helper::ProbeReadKernel,
            AttachPoint::Begin
            | AttachPoint::End
            | AttachPoint::Profile { .. }
            | AttachPoint::Interval { .. }
            | AttachPoint::PerfCounter { .. }
            | AttachPoint::Watchpoint { .. }
            | AttachPoint::FunctionWatchpoint(_)
            | AttachPoint::Uprobe { .. }
            | AttachPoint::Usdt(_) => Helper::ProbeRead,
        }
    }

    /// A member of a struct or array on the stack.
    pub(super) fn lower_member(&mut self, base: &Expr, offset: u32, bitfield: Option<Bitfield>, ty: &Type) -> Value {
        let record = self.lower_mem(base);
        let field = at_offset(record, offset);
        if bitfield.is_none() && ty.is_integer() {
            return self.load_native(field, None, ty);
        }
        // Copied out so that the value starts 8-aligned and is zero-padded like every buffer.
        let len = read_len(bitfield, ty);
        let at = self.b.slot(align8(len).max(8));
        self.b.zero(at, align8(len).max(8));
        self.b.copy(at, field, len);
        self.load_native(at, bitfield, ty)
    }

    /// A value laid out natively at `at`: integers at their own width, sign-extended.
    fn load_native(&mut self, at: StackRef, bitfield: Option<Bitfield>, ty: &Type) -> Value {
        if let Some(bf) = bitfield {
            let word = self.b.reg();
            self.b.push(Op::LoadStack { dst: word, at, size: 8 });
            let (bits, signed) = (u32::from(bf.bits).min(64), ty.is_signed());
            // Move the field's top bit to bit 63, then shift back down (arithmetic if signed).
            let up = self.b.reg();
            self.b.push(Op::Alu {
                op: AluOp::Shl,
                dst: up,
                lhs: word,
                rhs: Operand::Imm((64 - bits - u32::from(bf.shift)) as i32),
            });
            let down = self.b.reg();
            let op = if signed { AluOp::Sar } else { AluOp::Shr };
            self.b.push(Op::Alu { op, dst: down, lhs: up, rhs: Operand::Imm((64 - bits) as i32) });
            return Value::Int(down);
        }
        if !ty.is_integer() {
            return Value::Mem(at);
        }
        let bytes = ty.int_bytes();
        let dst = self.b.reg();
        self.b.push(Op::LoadStack { dst, at, size: bytes as u8 });
        if ty.is_signed() && bytes < 8 {
            let ext = self.b.reg();
            self.b.push(Op::Extend { dst: ext, src: dst, bytes: bytes as u8, signed: true });
            return Value::Int(ext);
        }
        Value::Int(dst)
    }

    /// Adds one to `counter` when `ret` (the return value of `helper`) is negative, and reports
    /// the failure where this `-k` level reports `helper`'s.
    pub(super) fn count_if_negative(&mut self, ret: VReg, counter: ErrorCounter, helper: Helper) {
        let failed = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::SLt, ret, Operand::Imm(0), failed, done);
        self.b.switch_to(failed);
        self.count_error(counter);
        self.report_if_checked(ret, helper);
        self.b.terminate(crate::ir::Term::Jump(done));
        self.b.switch_to(done);
    }
}
