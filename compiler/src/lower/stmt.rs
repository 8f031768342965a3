//! Lowering statements: assignments, control flow, and the statements that send events to the
//! runtime through the ring buffer (printf, print, clear, zero, exit, time, system).

use super::{ProbeLowering, SiteSpan};
use crate::bpf::helpers::Helper;
use crate::hir::{Expr, Stmt, StmtKind, VarId};
use crate::ir::{AluOp, Arg, Cond, Op, Operand, StackRef, Term};
use crate::program::{ErrorCounter, EventKind, EVENT_HEADER};
use crate::types::{align8, Type};

impl ProbeLowering<'_> {
    pub(super) fn lower_stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.lower_stmt(s);
        }
    }

    fn lower_stmt(&mut self, s: &Stmt) {
        self.b.set_span(s.span);
        match &s.kind {
            StmtKind::Expr(e) => {
                self.lower_value(e);
            }
            StmtKind::AssignVar { var, value } => self.lower_assign_var(*var, value),
            StmtKind::AssignMap { map, keys, value } => {
                // bpftrace locates `@m = v` at its `=`, and `@m += v` (whose value the checker
                // spans as the whole statement) at the whole statement.
                let at = if value.span.start > s.span.start {
                    SiteSpan::Assignment { stmt: s.span, value: value.span }
                } else {
                    SiteSpan::Node(s.span)
                };
                self.reporting_at(at, |this| this.lower_assign_map(*map, keys, value));
            }
            StmtKind::Aggregate { map, keys, value, call } => {
                self.reporting_at(SiteSpan::Node(*call), |this| this.lower_aggregate(*map, keys, value.as_ref()));
            }
            StmtKind::If { cond, then_body, else_body } => {
                let c = self.lower_int(cond);
                let then_block = self.b.new_block();
                let else_block = self.b.new_block();
                let done = self.b.new_block();
                self.b.branch(Cond::Ne, c, Operand::Imm(0), then_block, else_block);
                self.b.switch_to(then_block);
                self.lower_stmts(then_body);
                self.b.terminate(Term::Jump(done));
                self.b.switch_to(else_block);
                self.lower_stmts(else_body);
                self.b.terminate(Term::Jump(done));
                self.b.switch_to(done);
            }
            StmtKind::While { cond, body } => {
                let head = self.b.new_block();
                let body_block = self.b.new_block();
                let done = self.b.new_block();
                self.b.terminate(Term::Jump(head));
                self.b.switch_to(head);
                self.b.set_span(cond.span);
                let c = self.lower_int(cond);
                self.b.branch(Cond::Ne, c, Operand::Imm(0), body_block, done);
                self.b.switch_to(body_block);
                self.loops.push((head, done));
                self.lower_stmts(body);
                self.loops.pop();
                self.b.terminate(Term::Jump(head));
                self.b.switch_to(done);
            }
            StmtKind::Unroll { count, body } => {
                for _ in 0..*count {
                    self.lower_stmts(body);
                }
            }
            StmtKind::Break | StmtKind::Continue => {
                if let Some(&(head, done)) = self.loops.last() {
                    let target = if matches!(s.kind, StmtKind::Break) { done } else { head };
                    self.b.terminate(Term::Jump(target));
                    let dead = self.b.new_block();
                    self.b.switch_to(dead);
                }
            }
            StmtKind::Return => {
                self.b.terminate(Term::Exit);
                // Later statements of this block go to an unreachable block and are dropped.
                let dead = self.b.new_block();
                self.b.switch_to(dead);
            }
            StmtKind::Printf { format, args } => self.send_formatted(EventKind::Printf, *format, args),
            StmtKind::System { format, args } => self.send_formatted(EventKind::System, *format, args),
            StmtKind::Time { format } => self.send_header_only(EventKind::Time, *format),
            StmtKind::PrintMap { map, top, div } => {
                let record = self.b.slot(EVENT_HEADER + 16);
                self.store_header(record, EventKind::PrintMap, map.0);
                let top = self.b.constant(*top);
                let div = self.b.constant(*div);
                self.b.store(record, EVENT_HEADER, top, 8);
                self.b.store(record, EVENT_HEADER + 8, div, 8);
                self.send(record, EVENT_HEADER + 16);
            }
            StmtKind::PrintValue { value } => {
                let index = self.print_types.len() as u32;
                self.print_types.push(value.ty.clone());
                let size = EVENT_HEADER + align8(value.ty.size());
                let record = self.b.slot(size);
                self.store_header(record, EventKind::PrintValue, index);
                self.write_raw(value, super::builder::at_offset(record, EVENT_HEADER));
                self.send(record, size);
            }
            StmtKind::Clear { map } => self.send_header_only(EventKind::Clear, map.0),
            StmtKind::Zero { map } => self.send_header_only(EventKind::Zero, map.0),
            StmtKind::Delete { map, keys } => self.lower_delete(*map, keys),
            StmtKind::Join { argv, format } => self.lower_join(argv, *format),
            StmtKind::Watch { watch, addr, stop } => self.lower_watch(*watch, addr, *stop),
            StmtKind::SaveEntry { function, cfa, registers } => self.lower_save_entry(*function, cfa, registers),
            StmtKind::Unwatch(addr) => self.lower_unwatch(addr),
            StmtKind::Signal(sig) => {
                let v = self.lower_int(sig);
                let ret = self.checks(Helper::SendSignal).then(|| self.b.reg());
                self.b.push(Op::Call { dst: ret, helper: Helper::SendSignal, args: vec![Arg::Reg(v)] });
                if let Some(ret) = ret {
                    self.report_if_negative(ret, Helper::SendSignal);
                }
            }
            StmtKind::Exit => {
                let record = self.b.slot(EVENT_HEADER);
                self.store_header(record, EventKind::Exit, 0);
                self.send_counting(record, EVENT_HEADER, &[ErrorCounter::LostEvents, ErrorCounter::ExitLost]);
                self.b.terminate(Term::Exit);
                let dead = self.b.new_block();
                self.b.switch_to(dead);
            }
        }
    }

    pub(super) fn store_header(&mut self, record: StackRef, kind: EventKind, index: u32) {
        self.b.store_imm(record, 0, kind as i32, 4);
        self.b.store_imm(record, 4, index as i32, 4);
    }

    fn send_header_only(&mut self, kind: EventKind, index: u32) {
        let record = self.b.slot(EVENT_HEADER);
        self.store_header(record, kind, index);
        self.send(record, EVENT_HEADER);
    }

    /// `$x = value`. Integers follow bpftrace 0.17, whose variable is a stack slot sized by its
    /// first assignment into which each later value is stored at its own width
    /// ([`Self::int_width`]): a narrower value overwrites only the low bytes
    /// (`$x = 0x1234; $x = (uint8)3` leaves 0x1203), a wider one is not stored at all
    /// (`$x = (uint8)250; $x = $x + 10` leaves 250).
    fn lower_assign_var(&mut self, var: VarId, value: &Expr) {
        let at = self.var_slots[var.0 as usize];
        let ty = self.probe.vars[var.0 as usize].ty.clone();
        if let (Type::Str { len }, Type::Str { len: value_len }) = (&ty, &value.ty) {
            // bpftrace copies just the value's bytes: a longer string assigned before leaves
            // its tail after the NUL, which map keys built from the variable keep.
            let src = self.lower_mem(value);
            self.b.copy(at, src, (*value_len).min(*len));
            return;
        }
        if matches!(ty, Type::Tuple(_)) && value.ty != ty {
            // bpftrace copies the value's bytes over the variable's without clearing it first.
            let src = self.lower_mem(value);
            self.copy_tuple_bytes(src, &value.ty, at, &ty, true);
            return;
        }
        if !ty.is_integer() {
            self.write_value(value, at, &ty);
            return;
        }
        let slot_bytes = ty.int_bytes();
        let value_bytes = self.int_width(value);
        if value_bytes > slot_bytes {
            self.lower_value(value);
        } else if value_bytes == slot_bytes {
            // The whole slot: keep it extended by the variable's own sign.
            let v = self.lower_int_extended(value, ty.is_signed());
            self.b.store(at, 0, v, 8);
        } else {
            // The slot holds the variable's value extended from `slot_bytes`; replacing bytes
            // below the sign byte keeps it so.
            let v = self.lower_int(value);
            self.b.store(at, 0, v, value_bytes as u8);
        }
    }

    /// A printf-like record: header, then each argument 8-byte aligned.
    fn send_formatted(&mut self, kind: EventKind, format: u32, args: &[Expr]) {
        let types: Vec<Type> = args.iter().map(|a| a.ty.clone()).collect();
        let size = EVENT_HEADER + types.iter().map(|t| align8(t.size())).sum::<u32>();
        let record = self.b.slot(size);
        self.store_header(record, kind, format);
        let mut offset = EVENT_HEADER;
        for a in args {
            self.write_raw(a, super::builder::at_offset(record, offset));
            offset += align8(a.ty.size());
        }
        self.send(record, size);
    }

    /// Writes `e` laid out as its own type into an event record, integers as bpftrace 0.17 stores
    /// them into its printf and print buffers ([`Self::lower_int_raw`]).
    fn write_raw(&mut self, e: &Expr, dst: StackRef) {
        if e.ty.is_integer() {
            let v = self.lower_int_raw(e);
            self.b.store(dst, 0, v, 8);
        } else {
            self.write_value(e, dst, &e.ty);
        }
    }

    /// `join(argv, delim)`: the event is assembled in a per-CPU map value (16 KiB does not fit
    /// the BPF stack): the header, then each string of the NULL-terminated pointer array in a
    /// slot of its own, the slot after the last emptied, so the runtime stops there.
    fn lower_join(&mut self, argv: &Expr, format: u32) {
        use crate::hir::{JOIN_ARGS, JOIN_ARG_SIZE};
        let map = self.join_scratch_map();
        let key = self.b.slot(4);
        self.b.store_imm(key, 0, 0, 4);
        let buf = self.b.reg();
        self.b.push(Op::MapLookup { dst: buf, map, key });
        let have = self.b.new_block();
        let done = self.b.new_block();
        if self.checks(Helper::MapLookupElem) {
            self.branch_on_lookup(buf, have, done);
        } else {
            self.b.branch(Cond::Eq, buf, Operand::Imm(0), done, have);
        }
        self.b.switch_to(have);
        self.b.push(Op::StorePtr { ptr: buf, offset: 0, size: 4, src: Operand::Imm(EventKind::Join as i32) });
        self.b.push(Op::StorePtr { ptr: buf, offset: 4, size: 4, src: Operand::Imm(format as i32) });
        let base = self.lower_int(argv);
        let pointer = self.b.slot(8);
        let send = self.b.new_block();
        for i in 0..JOIN_ARGS {
            let src = self.b.reg();
            self.b.push(Op::Alu { op: AluOp::Add, dst: src, lhs: base, rhs: Operand::Imm((i * 8) as i32) });
            let ret = self.checks(Helper::ProbeRead).then(|| self.b.reg());
            self.b.push(Op::Call {
                dst: ret,
                helper: Helper::ProbeRead,
                args: vec![Arg::Stack(pointer), Arg::Imm(8), Arg::Reg(src)],
            });
            if let Some(ret) = ret {
                self.report_if_negative(ret, Helper::ProbeRead);
            }
            let p = self.b.reg();
            self.b.push(Op::LoadStack { dst: p, at: pointer, size: 8 });
            let slot = self.b.reg();
            self.b.push(Op::Alu {
                op: AluOp::Add,
                dst: slot,
                lhs: buf,
                rhs: Operand::Imm((EVENT_HEADER + i * JOIN_ARG_SIZE) as i32),
            });
            let read = self.b.new_block();
            let end = self.b.new_block();
            self.b.branch(Cond::Eq, p, Operand::Imm(0), end, read);
            self.b.switch_to(end);
            self.b.push(Op::StorePtr { ptr: slot, offset: 0, size: 1, src: Operand::Imm(0) });
            self.b.terminate(Term::Jump(send));
            self.b.switch_to(read);
            let ret = self.checks(Helper::ProbeReadStr).then(|| self.b.reg());
            self.b.push(Op::Call {
                dst: ret,
                helper: Helper::ProbeReadStr,
                args: vec![Arg::Reg(slot), Arg::Imm(JOIN_ARG_SIZE as i32), Arg::Reg(p)],
            });
            if let Some(ret) = ret {
                self.report_if_negative(ret, Helper::ProbeReadStr);
            }
        }
        self.b.terminate(Term::Jump(send));
        self.b.switch_to(send);
        self.send_from(Arg::Reg(buf), EVENT_HEADER + JOIN_ARGS * JOIN_ARG_SIZE, &[ErrorCounter::LostEvents]);
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// `bpf_ringbuf_output` (or `bpf_perf_event_output` to this CPU's buffer); a full buffer
    /// counts a lost event.
    pub(super) fn send(&mut self, record: StackRef, size: u32) {
        self.send_counting(record, size, &[ErrorCounter::LostEvents]);
    }

    /// Sends a record, adding one to each of `counters` when the buffer is full.
    fn send_counting(&mut self, record: StackRef, size: u32, counters: &[ErrorCounter]) {
        self.send_from(Arg::Stack(record), size, counters);
    }

    /// Sends `size` bytes at `record` (a stack slot, or a map value's pointer).
    fn send_from(&mut self, record: Arg, size: u32, counters: &[ErrorCounter]) {
        let r = self.output(record, size, false);
        let failed = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Ne, r, Operand::Imm(0), failed, done);
        self.b.switch_to(failed);
        for &counter in counters {
            self.count_error(counter);
        }
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// The output call for `size` bytes at `record`; its result (0 when sent) is returned. With
    /// `wake`, a ring buffer wakes its reader at once rather than when it sees fit, for a
    /// record a stopped process waits on.
    pub(super) fn output(&mut self, record: Arg, size: u32, wake: bool) -> crate::ir::VReg {
        let r = self.b.reg();
        let call = match self.options.events {
            super::EventTransport::RingBuf { .. } => Op::Call {
                dst: Some(r),
                helper: Helper::RingbufOutput,
                args: vec![
                    Arg::Map(self.events),
                    record,
                    Arg::Imm(size as i32),
                    Arg::Imm(if wake { crate::bpf::helpers::BPF_RB_FORCE_WAKEUP } else { 0 }),
                ],
            },
            super::EventTransport::PerfArray { .. } => {
                // BPF_F_CURRENT_CPU is 0xffffffff as a u64: an i32 immediate would sign-extend.
                let flags = self.b.reg();
                self.b.push(Op::Const { dst: flags, value: u64::from(u32::MAX) });
                Op::Call {
                    dst: Some(r),
                    helper: Helper::PerfEventOutput,
                    args: vec![Arg::Ctx, Arg::Map(self.events), Arg::Reg(flags), record, Arg::Imm(size as i32)],
                }
            }
        };
        self.b.push(call);
        r
    }
}
