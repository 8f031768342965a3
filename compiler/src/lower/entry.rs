//! Entry values (`DW_OP_entry_value`): what a register held when a function was entered, for
//! `locals`/`args` at a line where DWARF knows a variable only that way (an -O2 parameter
//! whose register the code has reused). The hidden uprobe at the function's entry
//! (`StmtKind::SaveEntry`) keeps each register for the thread and frame; the line's program
//! (`ExprKind::EntryValue`) looks it up. The frame is told apart by its CFA (the stack pointer
//! plus 8 on entry, the unwind rule's CFA at the line), so recursion and reentry read their own
//! frame's value.

use super::ProbeLowering;
use crate::bpf::helpers::{self as bpf_consts, Helper};
use crate::hir::Expr;
use crate::ir::{Arg, Cond, Op, Operand, StackRef, Term, VReg};
use crate::program::{BpfMap, ErrorCounter, MapRole};

/// Frames whose entry values are kept at once; the least recently used go first (an LRU map:
/// a frame that returned leaves its values behind).
const ENTRY_VALUES_MAX: u32 = 16384;

impl ProbeLowering<'_> {
    /// At a function's entry: each register kept under (thread, CFA, function and register).
    pub(super) fn lower_save_entry(&mut self, function: u32, cfa: &Expr, registers: &[(u16, Expr)]) {
        let map = self.entry_values_map();
        let cfa = self.lower_int(cfa);
        for (register, value) in registers {
            let value = self.lower_int(value);
            let key = self.entry_key(cfa, function, *register);
            let slot = self.b.slot(8);
            self.b.store(slot, 0, value, 8);
            let r = self.b.reg();
            self.b.push(Op::Call {
                dst: Some(r),
                helper: Helper::MapUpdateElem,
                args: vec![Arg::Map(map), Arg::Stack(key), Arg::Stack(slot), Arg::Imm(bpf_consts::BPF_ANY)],
            });
            let failed = self.b.new_block();
            let done = self.b.new_block();
            self.b.branch(Cond::Ne, r, Operand::Imm(0), failed, done);
            self.b.switch_to(failed);
            self.count_error(ErrorCounter::MapFull);
            self.b.terminate(Term::Jump(done));
            self.b.switch_to(done);
        }
    }

    /// At the line: the register's value on entry to this frame, or 0 (counted) when the entry
    /// was not seen.
    pub(super) fn lower_entry_value(&mut self, function: u32, register: u16, cfa: &Expr) -> VReg {
        let map = self.entry_values_map();
        let cfa = self.lower_int(cfa);
        let key = self.entry_key(cfa, function, register);
        let ptr = self.b.reg();
        self.b.push(Op::MapLookup { dst: ptr, map, key });
        let dst = self.b.reg();
        self.b.push(Op::Mov { dst, src: Operand::Imm(0) });
        let found = self.b.new_block();
        let missing = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, missing);
        self.b.switch_to(found);
        self.b.push(Op::LoadPtr { dst, ptr, offset: 0, size: 8 });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(missing);
        self.count_error(ErrorCounter::EntryUnseen);
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
        dst
    }

    /// `{pid_tgid, cfa, function << 16 | register}`.
    fn entry_key(&mut self, cfa: VReg, function: u32, register: u16) -> StackRef {
        let thread = self.b.reg();
        self.b.push(Op::Call { dst: Some(thread), helper: Helper::GetCurrentPidTgid, args: vec![] });
        let key = self.b.slot(24);
        self.b.store(key, 0, thread, 8);
        self.b.store(key, 8, cfa, 8);
        #[allow(clippy::cast_possible_wrap, reason = "entry value ids are small")]
        let which = ((function << 16) | u32::from(register)) as i32;
        self.b.store_imm(key, 16, which, 8);
        key
    }

    fn entry_values_map(&mut self) -> crate::ir::MapRef {
        self.map_for_role(MapRole::EntryValues, || BpfMap {
            name: "rbt_entry_values".into(),
            role: MapRole::EntryValues,
            map_type: bpf_consts::BPF_MAP_TYPE_LRU_HASH,
            key_size: 24,
            value_size: 8,
            max_entries: ENTRY_VALUES_MAX,
            flags: 0,
        })
    }
}
