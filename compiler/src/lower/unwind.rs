//! User stacks unwound in the probe program itself, from the binaries' `.eh_frame` rules, so
//! that code built without frame pointers (Debian's libc, python3, release builds) still gives
//! whole stacks. The runtime loads compact unwind tables (the `unwind` crate builds them) into
//! three maps: for each traced process its executable mappings (`rbt_unwind_procs` gives the
//! range of `rbt_unwind_mappings` entries, sorted by start address), and for each file its rows
//! (`rbt_unwind_rows`, sorted by file offset, one rule each, shared by every process mapping the
//! file, after the file's page index). The program walks frames in a bounded loop: find the
//! mapping of the pc (a binary search over an array map, whose lookups the verifier inlines), the
//! page of the pc's file offset, the row among that page's few candidates (a second search),
//! apply the row's rule for the CFA, the return address and rbp. Addresses with no rule (no CFI,
//! JIT code, a process whose tables are not loaded yet) are unwound by frame pointers.
//!
//! The frames go to a hash map keyed by a 63-bit hash of the frames, the stack's id: a stack
//! value is `(id, pid)` as for stack trace maps, so keys, values and printing are unchanged.

use super::ProbeLowering;
use crate::bpf::helpers::Helper;
use crate::ir::{AluOp, Arg, BlockId, Cond, MapRef, Op, Operand, Term, VReg};
use crate::program::{BpfMap, MapRole};

/// Rule kinds of an unwind row (the low three bits; the `unwind` crate writes them).
const KIND_CFA_RSP: i32 = 0;
const KIND_CFA_RBP: i32 = 1;
const KIND_PLT: i32 = 2;
const KIND_SIGNAL: i32 = 3;
const KIND_END: i32 = 4;
const KIND_NONE: i32 = 5;
/// A rule with rbp saved two slots below the CFA: what frame pointers give (`push rbp; mov rbp, rsp`).
const FRAME_POINTER_RULE: u32 = KIND_NONE as u32 | 8 | (2 << 4);

/// Most frames of a user stack (bpftrace's limit), and the per-CPU scratch value's layout: the
/// frames, then a copy of the task's user registers.
pub const MAX_FRAMES: u32 = 127;
const REGS_AT: u32 = 8 * (MAX_FRAMES + 1);
const PT_REGS_SIZE: u32 = 168;
const PT_REGS_BP: u32 = 32;
const PT_REGS_IP: u32 = 128;
const PT_REGS_SP: u32 = 152;
/// Where `rt_sigreturn`'s frame keeps the interrupted registers, from the stack pointer the
/// signal handler returns with (`struct ucontext`'s `uc_mcontext` at 40: rbp, rsp, rip).
const SIGFRAME_BP: i32 = 40 + 80;
const SIGFRAME_SP: i32 = 40 + 120;
const SIGFRAME_IP: i32 = 40 + 128;

/// Sizes of the tables' maps.
pub const MAPPING_SIZE: u32 = 32;
pub const MAPPINGS_MAX: u32 = 65_536;
/// A process's mappings are searched in this many steps: at most 2^8 of them.
const MAPPING_STEPS: u32 = 8;
pub const PROCS_MAX: u32 = 16_384;
/// A mapping's u32 at 28: its file's page count (0 for a file without rows) in the low bits,
/// and the file's page shift from bit 27 (the `unwind` crate's page index; the u32 at 24 is
/// where the pages start in the rows map, each 8 bytes: first candidate row, candidate count).
pub const PAGES_MASK: u32 = (1 << PAGE_SHIFT_AT) - 1;
pub const PAGE_SHIFT_AT: u32 = 27;
/// A page's candidate rows are searched in this many steps: the runtime builds page indexes
/// with at most 2^7 candidates in a page.
pub const PAGE_STEPS: u32 = 7;
/// A process's entry: its first mapping and their count (u32 each), then the monotonic time
/// before which a pc outside them is not reported (u64; see `report_stale_mappings`).
pub const PROC_SIZE: u32 = 16;

/// A stack that ends before its outermost frame, for a reason other than its depth limit, ends
/// with a marker frame: this value plus the reason (`STOP_*`). No user address is this high.
pub const STOP_MARKER: u64 = 0xffff_ffff_ffff_ff00;
/// CFI the unwinder cannot follow (a STOP row: an expression rule, a register other than rsp
/// or rbp for the CFA).
pub const STOP_UNSUPPORTED_CFI: u64 = 1;
/// No unwind rule for the pc, and rbp is no frame pointer.
pub const STOP_NO_RULE: u64 = 2;
/// The stack memory the rule points at could not be read.
pub const STOP_UNREADABLE: u64 = 3;
/// The process's tables were not loaded yet (its first stacks) and rbp is no frame pointer.
pub const STOP_NOT_LOADED: u64 = STOP_NO_RULE + 2;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// How user stacks are walked (`RBT_USTACK_UNWIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UserUnwind {
    /// Unwind rules where a binary has them, frame pointers elsewhere.
    #[default]
    Auto,
    /// The kernel's frame-pointer walk (`bpf_get_stackid`), as bpftrace.
    FramePointers,
    /// Unwind rules only: a frame without them ends the stack.
    Dwarf,
}

/// The registers of the frame being unwound, and the walk's state.
struct Walk {
    ip: VReg,
    sp: VReg,
    bp: VReg,
    frames: VReg,
    n: VReg,
    hash: VReg,
    /// 1 while `ip` is an exact pc (the innermost frame's, or the one a signal interrupted),
    /// 0 while it is a return address.
    exact: VReg,
    /// The last frame's mapping: start, end, file offset, table and packed page count (all 0
    /// before the first search).
    mapping: CachedMapping,
    /// The process's mapping count (0: its tables are not loaded), and the depth limit.
    count: VReg,
    limit: u32,
}

#[derive(Clone, Copy)]
struct CachedMapping {
    start: VReg,
    end: VReg,
    offset: VReg,
    table: VReg,
    packed: VReg,
}

impl ProbeLowering<'_> {
    /// Captures the current user stack by unwinding it here; the stack's id (or a negative
    /// error, `-EFAULT` for no user stack) as `bpf_get_stackid` would return it.
    ///
    /// A run of the probe unwinds each depth once: the second `ustack` of a probe (a key and a
    /// printf, say) reuses the first's id. Each site keeps its own copy of the unwinder, but the
    /// verifier follows only one of them on any path (the memo's flag is a known constant
    /// there), so a probe costs the verifier one unwinder however many sites it has.
    pub(super) fn lower_unwound_ustack(&mut self, limit: u32) -> VReg {
        let limit = limit.clamp(1, MAX_FRAMES);
        let (unwound, id) = match self.ustack_memo.iter().find(|(l, _, _)| *l == limit) {
            Some(&(_, unwound, id)) => (unwound, id),
            None => {
                let (unwound, id) = (self.b.reg(), self.b.reg());
                for dst in [unwound, id] {
                    self.b.push_at_entry(Op::Const { dst, value: 0 });
                }
                self.ustack_memo.push((limit, unwound, id));
                (unwound, id)
            }
        };
        let done = self.b.new_block();
        let unwind = self.b.new_block();
        self.b.branch(Cond::Ne, unwound, Operand::Imm(0), done, unwind);
        self.b.switch_to(unwind);
        self.b.push(Op::Mov { dst: unwound, src: Operand::Imm(1) });
        self.unwind_into(limit, id, done);
        self.b.switch_to(done);
        id
    }

    fn unwind_into(&mut self, limit: u32, id: VReg, done: BlockId) {
        let scratch_map = self.unwind_map(MapRole::UnwindScratch);
        let key = self.b.slot(4);
        self.b.store_imm(key, 0, 0, 4);
        let frames = self.b.reg();
        self.b.push(Op::MapLookup { dst: frames, map: scratch_map, key });
        let have = self.b.new_block();
        let missing = self.b.new_block();
        self.b.branch(Cond::Ne, frames, Operand::Imm(0), have, missing);
        self.b.switch_to(missing);
        self.b.push(Op::Mov { dst: id, src: Operand::Imm(-(libc_errno::ENOMEM)) });
        self.b.terminate(Term::Jump(done));

        self.b.switch_to(have);
        let (first, count, pid) = self.process_mappings();
        let walk = self.user_registers(frames, count, limit);
        let head = self.b.new_block();
        let finish = self.b.new_block();
        self.b.terminate(Term::Jump(head));
        self.b.switch_to(head);
        let more = self.b.new_block();
        let body = self.b.new_block();
        self.b.branch(Cond::Ge, walk.n, Operand::Imm(limit as i32), finish, more);
        self.b.switch_to(more);
        self.b.branch(Cond::Eq, walk.ip, Operand::Imm(0), finish, body);
        self.b.switch_to(body);
        let rule = self.record_frame_and_find_rule(&walk, first, count, pid);
        self.apply_rule(&walk, rule, head, finish);

        self.b.switch_to(finish);
        self.store_stack(&walk, limit, id, done);
    }

    /// Copies the task's user registers (`bpf_task_pt_regs`: the same in every probe kind)
    /// into the scratch value and reads ip, sp and bp out of it.
    fn user_registers(&mut self, frames: VReg, count: VReg, limit: u32) -> Walk {
        let task = self.call(Helper::GetCurrentTaskBtf, vec![]);
        let regs = self.call(Helper::TaskPtRegs, vec![Arg::Reg(task)]);
        let dst = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Add, dst, lhs: frames, rhs: Operand::Imm(REGS_AT as i32) });
        let read =
            self.call(Helper::ProbeReadKernel, vec![Arg::Reg(dst), Arg::Imm(PT_REGS_SIZE as i32), Arg::Reg(regs)]);
        let load = |this: &mut Self, offset: u32| {
            let r = this.b.reg();
            this.b.push(Op::LoadPtr { dst: r, ptr: frames, offset: REGS_AT + offset, size: 8 });
            r
        };
        let (ip, sp, bp) = (load(self, PT_REGS_IP), load(self, PT_REGS_SP), load(self, PT_REGS_BP));
        // A failed read leaves no registers to start from: an empty stack.
        let failed = self.b.new_block();
        let ok = self.b.new_block();
        self.b.branch(Cond::Ne, read, Operand::Imm(0), failed, ok);
        self.b.switch_to(failed);
        self.b.push(Op::Mov { dst: ip, src: Operand::Imm(0) });
        self.b.terminate(Term::Jump(ok));
        self.b.switch_to(ok);
        let n = self.b.constant(0);
        let hash = self.b.constant(FNV_OFFSET);
        let exact = self.b.constant(1);
        let mut zero = || self.b.constant(0);
        let mapping = CachedMapping { start: zero(), end: zero(), offset: zero(), table: zero(), packed: zero() };
        Walk { ip, sp, bp, frames, n, hash, exact, mapping, count, limit }
    }

    /// The current process's range of entries in the mappings map: `(first, count)`, a count
    /// of 0 while the runtime has not loaded its tables.
    fn process_mappings(&mut self) -> (VReg, VReg, VReg) {
        let procs = self.unwind_map(MapRole::UnwindProcs);
        let pid_tgid = self.call(Helper::GetCurrentPidTgid, vec![]);
        let pid = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shr, dst: pid, lhs: pid_tgid, rhs: Operand::Imm(32) });
        let key = self.b.slot(4);
        self.b.store(key, 0, pid, 4);
        let entry = self.b.reg();
        self.b.push(Op::MapLookup { dst: entry, map: procs, key });
        let first = self.b.constant(0);
        let count = self.b.constant(0);
        let found = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Ne, entry, Operand::Imm(0), found, done);
        self.b.switch_to(found);
        self.b.push(Op::LoadPtr { dst: first, ptr: entry, offset: 0, size: 4 });
        self.b.push(Op::LoadPtr { dst: count, ptr: entry, offset: 4, size: 4 });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
        (first, count, pid)
    }

    /// Records the frame's ip (into the scratch frames and the hash) and looks up the rule that
    /// unwinds it: the mapping holding the pc, then that file's row for the pc's offset. A pc
    /// with no row gets the frame-pointer rule.
    fn record_frame_and_find_rule(&mut self, walk: &Walk, first: VReg, count: VReg, pid: VReg) -> VReg {
        let at = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shl, dst: at, lhs: walk.n, rhs: Operand::Imm(3) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: at, lhs: at, rhs: Operand::Reg(walk.frames) });
        self.b.push(Op::StorePtr { ptr: at, offset: 0, size: 8, src: Operand::Reg(walk.ip) });
        let prime = self.b.constant(FNV_PRIME);
        self.b.push(Op::Alu { op: AluOp::Xor, dst: walk.hash, lhs: walk.hash, rhs: Operand::Reg(walk.ip) });
        self.b.push(Op::Alu { op: AluOp::Mul, dst: walk.hash, lhs: walk.hash, rhs: Operand::Reg(prime) });
        // A return address's call is the byte before it, and the call's rule is the one that
        // holds (a call can end a function). The innermost frame's pc and the pc a signal
        // interrupted are exact: the byte before may have another rule (the instruction before
        // a fault may be a push) or be in another function.
        let pc = self.b.reg();
        self.b.push(Op::Mov { dst: pc, src: Operand::Reg(walk.ip) });
        let caller = self.b.new_block();
        let counted = self.b.new_block();
        self.b.branch(Cond::Eq, walk.exact, Operand::Imm(0), caller, counted);
        self.b.switch_to(caller);
        self.b.push(Op::Alu { op: AluOp::Sub, dst: pc, lhs: pc, rhs: Operand::Imm(1) });
        self.b.terminate(Term::Jump(counted));
        self.b.switch_to(counted);
        self.b.push(Op::Alu { op: AluOp::Add, dst: walk.n, lhs: walk.n, rhs: Operand::Imm(1) });
        self.b.push(Op::Mov { dst: walk.exact, src: Operand::Imm(0) });

        let rule = self.b.constant(u64::from(FRAME_POINTER_RULE));
        let found = self.b.new_block();
        let check = self.b.new_block();
        self.b.branch(Cond::Eq, count, Operand::Imm(0), found, check);
        // Callers are often in the caller's mapping: the last frame's mapping is searched only
        // when the pc is outside it.
        self.b.switch_to(check);
        let cached = walk.mapping;
        let search = self.b.new_block();
        let have = self.b.new_block();
        self.branch_to(Cond::Lt, pc, cached.start, search);
        self.b.branch(Cond::Ge, pc, Operand::Reg(cached.end), search, have);
        self.b.switch_to(search);
        let mappings = self.unwind_map(MapRole::UnwindMappings);
        let entry = self.lower_bound(mappings, first, count, pc, MAPPING_STEPS, 8, found);
        let start = self.load(entry, 0, 8);
        let end = self.load(entry, 8, 8);
        let outside = self.b.new_block();
        self.branch_to(Cond::Lt, pc, start, outside);
        self.branch_to(Cond::Ge, pc, end, outside);
        for (dst, src) in [(cached.start, start), (cached.end, end)] {
            self.b.push(Op::Mov { dst, src: Operand::Reg(src) });
        }
        for (dst, offset, size) in [(cached.offset, 16, 8), (cached.table, 24, 4), (cached.packed, 28, 4)] {
            self.b.push(Op::LoadPtr { dst, ptr: entry, offset, size });
        }
        self.b.terminate(Term::Jump(have));
        self.b.switch_to(have);
        let (start, offset, table, packed) = (cached.start, cached.offset, cached.table, cached.packed);
        let pages = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::And, dst: pages, lhs: packed, rhs: Operand::Imm(PAGES_MASK as i32) });
        let ok = self.b.new_block();
        self.b.branch(Cond::Eq, pages, Operand::Imm(0), found, ok);
        self.b.switch_to(ok);
        let file_offset = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Sub, dst: file_offset, lhs: pc, rhs: Operand::Reg(start) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: file_offset, lhs: file_offset, rhs: Operand::Reg(offset) });
        // The offset's page, or the last page for an offset past it: `min(page, last)` without
        // a branch, as `last + (d & (d >> 63 arithmetic))` for `d = page - last`.
        let shift = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shr, dst: shift, lhs: packed, rhs: Operand::Imm(PAGE_SHIFT_AT as i32) });
        let page = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shr, dst: page, lhs: file_offset, rhs: Operand::Reg(shift) });
        let last = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Sub, dst: last, lhs: pages, rhs: Operand::Imm(1) });
        let past = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Sub, dst: past, lhs: page, rhs: Operand::Reg(last) });
        let sign = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Sar, dst: sign, lhs: past, rhs: Operand::Imm(63) });
        self.b.push(Op::Alu { op: AluOp::And, dst: past, lhs: past, rhs: Operand::Reg(sign) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: page, lhs: last, rhs: Operand::Reg(past) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: page, lhs: page, rhs: Operand::Reg(table) });
        let rows = self.unwind_map(MapRole::UnwindRows);
        let page_entry = self.array_entry(rows, page, found);
        let candidates_first = self.load(page_entry, 0, 4);
        let candidates = self.load(page_entry, 4, 4);
        let row = self.lower_bound(rows, candidates_first, candidates, file_offset, PAGE_STEPS, 4, found);
        let row_pc = self.load(row, 0, 4);
        self.branch_to(Cond::Gt, row_pc, file_offset, found);
        self.b.push(Op::LoadPtr { dst: rule, ptr: row, offset: 4, size: 4 });
        self.b.terminate(Term::Jump(found));
        self.b.switch_to(outside);
        self.report_stale_mappings(pid, found);
        self.b.switch_to(found);
        rule
    }

    /// A pc in none of the process's known mappings: it has mapped code since its tables were
    /// loaded (a library loaded by ld.so or dlopen, an exec). Unless the runtime asked for
    /// quiet until a later time (the procs entry's u64 at 8, which it sets when it loads, and
    /// which this sets a second ahead), the pid leaves the seen-pids map, so that its next
    /// stack announces it again and the runtime reads its mappings again.
    fn report_stale_mappings(&mut self, pid: VReg, done: BlockId) {
        let procs = self.unwind_map(MapRole::UnwindProcs);
        let key = self.b.slot(4);
        self.b.store(key, 0, pid, 4);
        let entry = self.b.reg();
        self.b.push(Op::MapLookup { dst: entry, map: procs, key });
        let found = self.b.new_block();
        self.b.branch(Cond::Eq, entry, Operand::Imm(0), done, found);
        self.b.switch_to(found);
        let now = self.call(Helper::KtimeGetNs, vec![]);
        let quiet_until = self.load(entry, 8, 8);
        let due = self.b.new_block();
        self.b.branch(Cond::Lt, now, Operand::Reg(quiet_until), done, due);
        self.b.switch_to(due);
        let next = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Add, dst: next, lhs: now, rhs: Operand::Imm(1_000_000_000) });
        self.b.push(Op::StorePtr { ptr: entry, offset: 8, size: 8, src: Operand::Reg(next) });
        let seen = self.seen_pids_map();
        let seen_key = self.b.slot(8);
        self.b.store(seen_key, 0, pid, 8);
        self.b.push(Op::Call {
            dst: None,
            helper: Helper::MapDeleteElem,
            args: vec![Arg::Map(seen), Arg::Stack(seen_key)],
        });
        self.b.terminate(Term::Jump(done));
    }

    /// The entry of `map` in `[first, first + count)` (count >= 1) with the greatest key at
    /// offset 0 (of `key_size` bytes, sorted ascending) that is at most `target`, or the first
    /// entry if none is; found in `steps` halvings (`len -= len / 2` each), enough for
    /// `2^steps` entries. Jumps to `missing` if a lookup fails.
    #[allow(clippy::too_many_arguments)]
    fn lower_bound(
        &mut self,
        map: MapRef,
        first: VReg,
        count: VReg,
        target: VReg,
        steps: u32,
        key_size: u8,
        missing: BlockId,
    ) -> VReg {
        let lo = self.b.reg();
        self.b.push(Op::Mov { dst: lo, src: Operand::Reg(first) });
        let len = self.b.reg();
        self.b.push(Op::Mov { dst: len, src: Operand::Reg(count) });
        for _ in 0..steps {
            let half = self.b.reg();
            self.b.push(Op::Alu { op: AluOp::Shr, dst: half, lhs: len, rhs: Operand::Imm(1) });
            let mid = self.b.reg();
            self.b.push(Op::Alu { op: AluOp::Add, dst: mid, lhs: lo, rhs: Operand::Reg(half) });
            let entry = self.array_entry(map, mid, missing);
            let key = self.load(entry, 0, key_size);
            // Without a branch (each would be one more path for the verifier): `key <= target`
            // as the sign of `target - key`, both below 2^63.
            let step = self.b.reg();
            self.b.push(Op::Alu { op: AluOp::Sub, dst: step, lhs: target, rhs: Operand::Reg(key) });
            self.b.push(Op::Alu { op: AluOp::Shr, dst: step, lhs: step, rhs: Operand::Imm(63) });
            self.b.push(Op::Alu { op: AluOp::Xor, dst: step, lhs: step, rhs: Operand::Imm(1) });
            self.b.push(Op::Alu { op: AluOp::Mul, dst: step, lhs: step, rhs: Operand::Reg(half) });
            self.b.push(Op::Alu { op: AluOp::Add, dst: lo, lhs: lo, rhs: Operand::Reg(step) });
            self.b.push(Op::Alu { op: AluOp::Sub, dst: len, lhs: len, rhs: Operand::Reg(half) });
        }
        self.array_entry(map, lo, missing)
    }

    /// The value of array `map` at `index`, jumping to `missing` when the lookup fails.
    fn array_entry(&mut self, map: MapRef, index: VReg, missing: BlockId) -> VReg {
        let key = self.b.slot(4);
        self.b.store(key, 0, index, 4);
        let entry = self.b.reg();
        self.b.push(Op::MapLookup { dst: entry, map, key });
        let ok = self.b.new_block();
        self.b.branch(Cond::Eq, entry, Operand::Imm(0), missing, ok);
        self.b.switch_to(ok);
        entry
    }

    fn load(&mut self, ptr: VReg, offset: u32, size: u8) -> VReg {
        let dst = self.b.reg();
        self.b.push(Op::LoadPtr { dst, ptr, offset, size });
        dst
    }

    /// Jumps to `target` if `lhs cond rhs`, else goes on in a new block.
    fn branch_to(&mut self, cond: Cond, lhs: VReg, rhs: VReg, target: BlockId) {
        let next = self.b.new_block();
        self.b.branch(cond, lhs, Operand::Reg(rhs), target, next);
        self.b.switch_to(next);
    }

    /// Steps `walk` to the caller's frame by `rule` and jumps to `head`, or to `finish` where
    /// the stack ends (the outermost frame, a rule that cannot be followed, a failed read).
    fn apply_rule(&mut self, walk: &Walk, rule: VReg, head: BlockId, finish: BlockId) {
        let kind = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::And, dst: kind, lhs: rule, rhs: Operand::Imm(7) });
        let cfa_offset = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shr, dst: cfa_offset, lhs: rule, rhs: Operand::Imm(12) });
        let cfa = self.b.reg();
        let read = self.b.new_block();
        let arms = [KIND_CFA_RSP, KIND_CFA_RBP, KIND_PLT, KIND_SIGNAL, KIND_NONE];
        let blocks: Vec<BlockId> = arms.iter().map(|_| self.b.new_block()).collect();
        for (&arm, &block) in arms.iter().zip(&blocks) {
            let next = self.b.new_block();
            self.b.branch(Cond::Eq, kind, Operand::Imm(arm), block, next);
            self.b.switch_to(next);
        }
        // The outermost frame (kind 4): the stack ends here; a rule that cannot be followed
        // (6) ends it with a marker.
        let outermost = self.b.new_block();
        self.b.branch(Cond::Eq, kind, Operand::Imm(KIND_END), finish, outermost);
        self.b.switch_to(outermost);
        self.stop_at(walk, STOP_UNSUPPORTED_CFI, finish);
        let unreadable = self.stopping(walk, STOP_UNREADABLE, finish);
        let no_rule = self.stopping(walk, STOP_NO_RULE, finish);
        for (&arm, &block) in arms.iter().zip(&blocks) {
            self.b.switch_to(block);
            match arm {
                KIND_CFA_RSP | KIND_CFA_RBP => {
                    let base = if arm == KIND_CFA_RSP { walk.sp } else { walk.bp };
                    self.b.push(Op::Alu { op: AluOp::Add, dst: cfa, lhs: base, rhs: Operand::Reg(cfa_offset) });
                }
                KIND_PLT => {
                    // A PLT stub's CFA: rsp + 8, and 8 more once the stub has pushed (from the
                    // threshold in the rule's rbp-slot bits on, 11 in binutils' 16-byte stubs).
                    self.b.push(Op::Alu { op: AluOp::Add, dst: cfa, lhs: walk.sp, rhs: Operand::Imm(8) });
                    let low = self.b.reg();
                    self.b.push(Op::Alu { op: AluOp::And, dst: low, lhs: walk.ip, rhs: Operand::Imm(15) });
                    let threshold = self.b.reg();
                    self.b.push(Op::Alu { op: AluOp::Shr, dst: threshold, lhs: rule, rhs: Operand::Imm(4) });
                    self.b.push(Op::Alu { op: AluOp::And, dst: threshold, lhs: threshold, rhs: Operand::Imm(0xff) });
                    // rbp is not saved in a stub: the slot bits held the threshold.
                    self.b.push(Op::Mov { dst: rule, src: Operand::Imm(KIND_PLT) });
                    let pushed = self.b.new_block();
                    self.b.branch(Cond::Ge, low, Operand::Reg(threshold), pushed, read);
                    self.b.switch_to(pushed);
                    self.b.push(Op::Alu { op: AluOp::Add, dst: cfa, lhs: cfa, rhs: Operand::Imm(8) });
                }
                KIND_SIGNAL => {
                    self.signal_frame(walk, head, unreadable);
                    continue;
                }
                _ => {
                    // No unwind rule: frame pointers, if rbp looks like one.
                    if self.options.user_unwind == UserUnwind::Dwarf {
                        self.b.terminate(Term::Jump(no_rule));
                        continue;
                    }
                    // A frame pointer points into the stack above the stack pointer; anything
                    // else (a heap pointer in a register code without frame pointers uses as it
                    // likes, zero in the outermost frame) would only give junk frames.
                    let above = self.b.new_block();
                    let usable = self.b.new_block();
                    self.b.branch(Cond::Eq, walk.bp, Operand::Imm(0), finish, above);
                    self.b.switch_to(above);
                    self.b.branch(Cond::Le, walk.bp, Operand::Reg(walk.sp), no_rule, usable);
                    self.b.switch_to(usable);
                    self.b.push(Op::Alu { op: AluOp::Add, dst: cfa, lhs: walk.bp, rhs: Operand::Imm(16) });
                    self.b.push(Op::Mov { dst: rule, src: Operand::Imm(FRAME_POINTER_RULE as i32) });
                }
            }
            self.b.terminate(Term::Jump(read));
        }
        self.b.switch_to(read);
        let ra_at = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Sub, dst: ra_at, lhs: cfa, rhs: Operand::Imm(8) });
        let ra = self.read_user(ra_at, unreadable);
        let saved = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::And, dst: saved, lhs: rule, rhs: Operand::Imm(8) });
        let restore = self.b.new_block();
        let step = self.b.new_block();
        self.b.branch(Cond::Ne, saved, Operand::Imm(0), restore, step);
        self.b.switch_to(restore);
        let slot = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shr, dst: slot, lhs: rule, rhs: Operand::Imm(4) });
        self.b.push(Op::Alu { op: AluOp::And, dst: slot, lhs: slot, rhs: Operand::Imm(0xff) });
        self.b.push(Op::Alu { op: AluOp::Shl, dst: slot, lhs: slot, rhs: Operand::Imm(3) });
        let bp_at = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Sub, dst: bp_at, lhs: cfa, rhs: Operand::Reg(slot) });
        let bp = self.read_user(bp_at, unreadable);
        self.b.push(Op::Mov { dst: walk.bp, src: Operand::Reg(bp) });
        self.b.terminate(Term::Jump(step));
        self.b.switch_to(step);
        self.b.push(Op::Mov { dst: walk.sp, src: Operand::Reg(cfa) });
        self.b.push(Op::Mov { dst: walk.ip, src: Operand::Reg(ra) });
        self.b.terminate(Term::Jump(head));
    }

    /// A signal trampoline's frame: the interrupted registers are in the signal frame.
    fn signal_frame(&mut self, walk: &Walk, head: BlockId, finish: BlockId) {
        let at = |this: &mut Self, offset: i32| {
            let r = this.b.reg();
            this.b.push(Op::Alu { op: AluOp::Add, dst: r, lhs: walk.sp, rhs: Operand::Imm(offset) });
            r
        };
        let (bp_at, sp_at, ip_at) = (at(self, SIGFRAME_BP), at(self, SIGFRAME_SP), at(self, SIGFRAME_IP));
        let bp = self.read_user(bp_at, finish);
        let sp = self.read_user(sp_at, finish);
        let ip = self.read_user(ip_at, finish);
        self.b.push(Op::Mov { dst: walk.bp, src: Operand::Reg(bp) });
        self.b.push(Op::Mov { dst: walk.sp, src: Operand::Reg(sp) });
        self.b.push(Op::Mov { dst: walk.ip, src: Operand::Reg(ip) });
        self.b.push(Op::Mov { dst: walk.exact, src: Operand::Imm(1) });
        self.b.terminate(Term::Jump(head));
    }

    /// Ends the walk early: the marker frame for `reason` (NO_RULE is NOT_LOADED in a process
    /// without tables) goes after the frames if there is room, then on to `finish`. Each exit
    /// of the loop is explored on its own by the verifier, so the marker's code is here, on
    /// the early exits only, not in the code every exit runs.
    fn stop_at(&mut self, walk: &Walk, reason: u64, finish: BlockId) {
        let marker = self.b.constant(STOP_MARKER + reason);
        if reason == STOP_NO_RULE {
            // + 2 (NOT_LOADED) when count is 0, without a branch: (count - 1) >> 63 is 1 then.
            let none = self.b.reg();
            self.b.push(Op::Alu { op: AluOp::Sub, dst: none, lhs: walk.count, rhs: Operand::Imm(1) });
            self.b.push(Op::Alu { op: AluOp::Shr, dst: none, lhs: none, rhs: Operand::Imm(63) });
            self.b.push(Op::Alu { op: AluOp::Shl, dst: none, lhs: none, rhs: Operand::Imm(1) });
            self.b.push(Op::Alu { op: AluOp::Add, dst: marker, lhs: marker, rhs: Operand::Reg(none) });
        }
        let room = self.b.new_block();
        self.b.branch(Cond::Ge, walk.n, Operand::Imm(walk.limit as i32), finish, room);
        self.b.switch_to(room);
        let at = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shl, dst: at, lhs: walk.n, rhs: Operand::Imm(3) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: at, lhs: at, rhs: Operand::Reg(walk.frames) });
        self.b.push(Op::StorePtr { ptr: at, offset: 0, size: 8, src: Operand::Reg(marker) });
        let prime = self.b.constant(FNV_PRIME);
        self.b.push(Op::Alu { op: AluOp::Xor, dst: walk.hash, lhs: walk.hash, rhs: Operand::Reg(marker) });
        self.b.push(Op::Alu { op: AluOp::Mul, dst: walk.hash, lhs: walk.hash, rhs: Operand::Reg(prime) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: walk.n, lhs: walk.n, rhs: Operand::Imm(1) });
        self.b.terminate(Term::Jump(finish));
    }

    /// A block that stops the walk for `reason`, for branches to jump to.
    fn stopping(&mut self, walk: &Walk, reason: u64, finish: BlockId) -> BlockId {
        let here = self.b.current();
        let block = self.b.new_block();
        self.b.switch_to(block);
        self.stop_at(walk, reason, finish);
        self.b.switch_to(here);
        block
    }

    /// Eight bytes of user memory at `addr`; jumps to `failed` if they cannot be read.
    fn read_user(&mut self, addr: VReg, failed: BlockId) -> VReg {
        let slot = self.b.slot(8);
        let ret = self.call(Helper::ProbeReadUser, vec![Arg::Stack(slot), Arg::Imm(8), Arg::Reg(addr)]);
        let ok = self.b.new_block();
        self.b.branch(Cond::Ne, ret, Operand::Imm(0), failed, ok);
        self.b.switch_to(ok);
        let value = self.b.reg();
        self.b.push(Op::LoadStack { dst: value, at: slot, size: 8 });
        value
    }

    /// Ends the walk: stores the frames under their hash (`id`), or sets `id` to the error.
    /// Ends the walk's frames with a zero and stores them.
    fn store_stack(&mut self, walk: &Walk, limit: u32, id: VReg, done: BlockId) {
        let some = self.b.new_block();
        let empty = self.b.new_block();
        self.b.branch(Cond::Eq, walk.n, Operand::Imm(0), empty, some);
        self.b.switch_to(empty);
        self.b.push(Op::Mov { dst: id, src: Operand::Imm(-(libc_errno::EFAULT)) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(some);
        // A zero ends a stack shorter than the map's values (the scratch value has room for it).
        let at = self.b.reg();
        self.b.push(Op::Alu { op: AluOp::Shl, dst: at, lhs: walk.n, rhs: Operand::Imm(3) });
        self.b.push(Op::Alu { op: AluOp::Add, dst: at, lhs: at, rhs: Operand::Reg(walk.frames) });
        self.b.push(Op::StorePtr { ptr: at, offset: 0, size: 8, src: Operand::Imm(0) });
        self.b.push(Op::Alu { op: AluOp::Shr, dst: id, lhs: walk.hash, rhs: Operand::Imm(1) });
        let key = self.b.slot(8);
        self.b.store(key, 0, id, 8);
        let stacks = self.user_stack_map(limit);
        let ret = self.call(
            Helper::MapUpdateElem,
            vec![Arg::Map(stacks), Arg::Stack(key), Arg::Reg(walk.frames), Arg::Imm(crate::bpf::helpers::BPF_NOEXIST)],
        );
        // Before Linux 6.4 the verifier calls the map's own update, which returned an `int`, so
        // the upper half of the result is zero there ("bpf: return long from bpf_map_ops
        // funcs"): sign-extend it, or -EEXIST reads as 4294967279.
        self.b.push(Op::Alu { op: AluOp::Shl, dst: ret, lhs: ret, rhs: Operand::Imm(32) });
        self.b.push(Op::Alu { op: AluOp::Sar, dst: ret, lhs: ret, rhs: Operand::Imm(32) });
        // EEXIST: this stack is stored already.
        let failed = self.b.new_block();
        let not_stored = self.b.new_block();
        self.b.branch(Cond::Eq, ret, Operand::Imm(0), done, not_stored);
        self.b.switch_to(not_stored);
        self.b.branch(Cond::Eq, ret, Operand::Imm(-(libc_errno::EEXIST)), done, failed);
        self.b.switch_to(failed);
        self.b.push(Op::Mov { dst: id, src: Operand::Reg(ret) });
        self.b.terminate(Term::Jump(done));
    }

    /// The unwinder's maps (one each per program).
    fn unwind_map(&mut self, role: MapRole) -> MapRef {
        use crate::bpf::helpers as bpf_consts;
        let rows = self.options.unwind_rows.max(1);
        let (name, map_type, key_size, value_size, max_entries) = match role {
            MapRole::UnwindProcs => ("rbt_unwind_procs", bpf_consts::BPF_MAP_TYPE_HASH, 4, PROC_SIZE, PROCS_MAX),
            MapRole::UnwindMappings => {
                ("rbt_unwind_mappings", bpf_consts::BPF_MAP_TYPE_ARRAY, 4, MAPPING_SIZE, MAPPINGS_MAX)
            }
            MapRole::UnwindRows => ("rbt_unwind_rows", bpf_consts::BPF_MAP_TYPE_ARRAY, 4, 8, rows),
            _ => ("rbt_unwind_scratch", bpf_consts::BPF_MAP_TYPE_PERCPU_ARRAY, 4, REGS_AT + PT_REGS_SIZE, 1),
        };
        // The runtime writes rows straight into the rows map's memory.
        let flags = if role == MapRole::UnwindRows { bpf_consts::BPF_F_MMAPABLE } else { 0 };
        self.map_for_role(role, || BpfMap {
            name: name.into(),
            role,
            map_type,
            key_size,
            value_size,
            max_entries,
            flags,
        })
    }

    /// The hash map of unwound user stacks of at most `limit` frames, by id.
    fn user_stack_map(&mut self, limit: u32) -> MapRef {
        let storage = self.options.stack_storage.max(1);
        self.map_for_role(MapRole::UserStacks { limit }, || BpfMap {
            name: format!("rbt_ustack_{limit}"),
            role: MapRole::UserStacks { limit },
            map_type: crate::bpf::helpers::BPF_MAP_TYPE_HASH,
            key_size: 8,
            value_size: 8 * limit,
            max_entries: storage,
            flags: 0,
        })
    }
}

/// The errno values the unwinder returns as `bpf_get_stackid` would (the compiler has no libc).
mod libc_errno {
    pub const EFAULT: i32 = 14;
    pub const EEXIST: i32 = 17;
    pub const ENOMEM: i32 = 12;
}
