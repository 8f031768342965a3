//! Lowering statements: assignments, control flow, and the statements that send events to the
//! runtime through the ring buffer (printf, print, clear, zero, exit, time, system).

use super::ProbeLowering;
use crate::bpf::helpers::Helper;
use crate::hir::{Expr, Stmt, StmtKind};
use crate::ir::{Arg, Cond, Op, Operand, StackRef, Term};
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
            StmtKind::AssignVar { var, value } => {
                let at = self.var_slots[var.0 as usize];
                let ty = self.probe.vars[var.0 as usize].ty.clone();
                self.write_value(value, at, &ty);
            }
            StmtKind::AssignMap { map, keys, value } => self.lower_assign_map(*map, keys, value),
            StmtKind::Aggregate { map, keys, value } => self.lower_aggregate(*map, keys, value.as_ref()),
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
                self.write_value(value, super::builder::at_offset(record, EVENT_HEADER), &value.ty);
                self.send(record, size);
            }
            StmtKind::Clear { map } => self.send_header_only(EventKind::Clear, map.0),
            StmtKind::Zero { map } => self.send_header_only(EventKind::Zero, map.0),
            StmtKind::Delete { map, keys } => self.lower_delete(*map, keys),
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

    fn store_header(&mut self, record: StackRef, kind: EventKind, index: u32) {
        self.b.store_imm(record, 0, kind as i32, 4);
        self.b.store_imm(record, 4, index as i32, 4);
    }

    fn send_header_only(&mut self, kind: EventKind, index: u32) {
        let record = self.b.slot(EVENT_HEADER);
        self.store_header(record, kind, index);
        self.send(record, EVENT_HEADER);
    }

    /// A printf-like record: header, then each argument 8-byte aligned.
    fn send_formatted(&mut self, kind: EventKind, format: u32, args: &[Expr]) {
        let types: Vec<Type> = args.iter().map(|a| a.ty.clone()).collect();
        let size = EVENT_HEADER + types.iter().map(|t| align8(t.size())).sum::<u32>();
        let record = self.b.slot(size);
        self.store_header(record, kind, format);
        let mut offset = EVENT_HEADER;
        for a in args {
            self.write_value(a, super::builder::at_offset(record, offset), &a.ty);
            offset += align8(a.ty.size());
        }
        self.send(record, size);
    }

    /// `bpf_ringbuf_output`; a full ring buffer counts a lost event.
    fn send(&mut self, record: StackRef, size: u32) {
        self.send_counting(record, size, &[ErrorCounter::LostEvents]);
    }

    /// `bpf_ringbuf_output`, adding one to each of `counters` when the ring buffer is full.
    fn send_counting(&mut self, record: StackRef, size: u32, counters: &[ErrorCounter]) {
        let r = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(r),
            helper: Helper::RingbufOutput,
            args: vec![Arg::Map(self.events), Arg::Stack(record), Arg::Imm(size as i32), Arg::Imm(0)],
        });
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
}
