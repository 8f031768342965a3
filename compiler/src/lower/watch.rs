//! Lowering function watchpoints' setup (`StmtKind::Watch`, the body of the hidden uprobe
//! `check/resolve/watchpoint.rs` adds) and `unwatch()`: records telling the runtime to open or
//! close hardware breakpoints (`runtime/src/session/watch.rs`).

use super::ProbeLowering;
use crate::bpf::helpers::{self as bpf_consts, Helper};
use crate::hir::Expr;
use crate::ir::{Arg, Cond, Op, Operand, StackRef, Term, VReg};
use crate::program::{BpfMap, ErrorCounter, EventKind, MapRole, EVENT_HEADER};

/// SIGSTOP and SIGCONT as x86-64 Linux numbers them.
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

/// `-EEXIST`, what `bpf_map_update_elem` returns for a key present under `BPF_NOEXIST`.
const EEXIST: i32 = -17;

/// (probe, address) pairs the setup uprobes remember; past this many, new addresses are
/// reported every time they come (the runtime still opens one breakpoint for each).
const WATCHED_MAX: u32 = 4096;

impl ProbeLowering<'_> {
    /// The setup of function watchpoint `watch` at FUNCTION's entry: a new address is
    /// remembered with the process's pid, the process stopped (`stop`) and the address reported
    /// with the pid; one reported before is left alone, so that the process runs on unstopped when the
    /// function is called again with it. If the record cannot be sent (a full buffer), the
    /// stop is cancelled with SIGCONT and the address forgotten, to be tried on the next call.
    ///
    /// The signal goes before the record: a SIGCONT the runtime sends on reading it then always
    /// comes after the SIGSTOP, which it cancels even before the process has stopped.
    pub(super) fn lower_watch(&mut self, watch: u32, addr: &Expr, stop: bool) {
        let seen = self.watched_map();
        let address = self.lower_int(addr);
        let key = self.b.slot(16);
        self.b.store_imm(key, 0, watch as i32, 8);
        self.b.store(key, 8, address, 8);
        // The value is the process, for the runtime to resume should the record never arrive.
        let pid = self.current_tgid();
        let value = self.b.slot(8);
        self.b.store(value, 0, pid, 8);
        let inserted = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(inserted),
            helper: Helper::MapUpdateElem,
            args: vec![Arg::Map(seen), Arg::Stack(key), Arg::Stack(value), Arg::Imm(bpf_consts::BPF_NOEXIST)],
        });
        // A full map (another error than EEXIST) reports the address all the same.
        let new = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Eq, inserted, Operand::Imm(EEXIST), done, new);
        self.b.switch_to(new);
        if stop {
            self.send_signal(SIGSTOP);
        }
        let record = self.b.slot(EVENT_HEADER + 16);
        self.store_header(record, EventKind::Watch, watch);
        self.b.store(record, EVENT_HEADER, address, 8);
        self.b.store(record, EVENT_HEADER + 8, pid, 8);
        let sent = self.output(Arg::Stack(record), EVENT_HEADER + 16, true);
        let failed = self.b.new_block();
        self.b.branch(Cond::Ne, sent, Operand::Imm(0), failed, done);
        self.b.switch_to(failed);
        self.count_error(ErrorCounter::LostEvents);
        if stop {
            self.send_signal(SIGCONT);
        }
        self.b.push(Op::Call { dst: None, helper: Helper::MapDeleteElem, args: vec![Arg::Map(seen), Arg::Stack(key)] });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// `unwatch(ADDR)`: the address, for the runtime to close the breakpoints on it.
    pub(super) fn lower_unwatch(&mut self, addr: &Expr) {
        let address = self.lower_int(addr);
        let record: StackRef = self.b.slot(EVENT_HEADER + 8);
        self.store_header(record, EventKind::Unwatch, 0);
        self.b.store(record, EVENT_HEADER, address, 8);
        self.send(record, EVENT_HEADER + 8);
    }

    fn send_signal(&mut self, signal: i32) {
        self.b.push(Op::Call { dst: None, helper: Helper::SendSignal, args: vec![Arg::Imm(signal)] });
    }

    /// The current process's id (the thread group's).
    fn current_tgid(&mut self) -> VReg {
        let tgid = self.b.reg();
        self.b.push(Op::Call { dst: Some(tgid), helper: Helper::GetCurrentPidTgid, args: vec![] });
        self.b.push(Op::Alu { op: crate::ir::AluOp::Shr, dst: tgid, lhs: tgid, rhs: Operand::Imm(32) });
        tgid
    }

    /// The (probe, address) pairs already reported, created on first use.
    fn watched_map(&mut self) -> crate::ir::MapRef {
        self.map_for_role(MapRole::Watched, || BpfMap {
            name: "rbt_watched".into(),
            role: MapRole::Watched,
            map_type: bpf_consts::BPF_MAP_TYPE_HASH,
            key_size: 16,
            value_size: 8,
            max_entries: WATCHED_MAX,
            flags: 0,
        })
    }
}
