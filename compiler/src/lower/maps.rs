//! Lowering map access: key construction, reads, plain assignments, aggregations, `++`/`--`,
//! and `delete`.
//!
//! Storage (see [`super::storage_for`]): an unkeyed map is a one-element array (per-CPU for
//! aggregations), so updating it costs one lookup; a keyed map is a hash (per-CPU for
//! aggregations). Histograms add the bucket index to the key: the array index for unkeyed ones,
//! a trailing u64 for keyed ones. Bucket indexing: hist: 0 = negative, 1 = zero, then
//! 2 + floor(log2(v)); lhist: 0 = below min, last = above max, else 1 + (v - min) / step.

use super::builder::at_offset;
use super::expr::Value;
use super::{is_array_backed, user_key_size, ProbeLowering};
use crate::bpf::helpers::Helper;
use crate::hir::{Expr, LValue, MapId};
use crate::ir::{AluOp, Arg, Cond, Op, Operand, StackRef, Term, VReg};
use crate::program::ErrorCounter;
use crate::types::{align8, lhist_buckets, MapValue, Type};

/// BPF_ANY: create or update.
const BPF_ANY: i32 = 0;

impl ProbeLowering<'_> {
    /// Builds the BPF key for `map[keys]`, with a histogram bucket if given.
    fn build_key(&mut self, map: MapId, keys: &[Expr], bucket: Option<VReg>) -> StackRef {
        let decl = self.user_map(map).0.clone();
        if is_array_backed(&decl) {
            let at = self.b.slot(8);
            match bucket {
                Some(b) => self.b.store(at, 0, b, 4),
                None => self.b.store_imm(at, 0, 0, 4),
            }
            return at;
        }
        let user_size = user_key_size(&decl);
        let at = self.b.slot(user_size + if bucket.is_some() { 8 } else { 0 });
        if keys.is_empty() {
            self.b.store_imm(at, 0, 0, 8);
        }
        let mut offset = 0;
        for (key, ty) in keys.iter().zip(&decl.key) {
            self.write_value(key, at_offset(at, offset), ty);
            offset += align8(ty.size());
        }
        if let Some(b) = bucket {
            self.b.store(at, user_size, b, 8);
        }
        at
    }

    fn lookup(&mut self, map: MapId, key: StackRef) -> VReg {
        let ptr = self.b.reg();
        let bpf = self.user_map(map).1;
        self.b.push(Op::MapLookup { dst: ptr, map: bpf, key });
        ptr
    }

    /// `map_update_elem(map, key, value, BPF_ANY)`, counting failures.
    fn update(&mut self, map: MapId, key: StackRef, value: StackRef) {
        let bpf = self.user_map(map).1;
        let r = self.b.reg();
        self.b.push(Op::Call {
            dst: Some(r),
            helper: Helper::MapUpdateElem,
            args: vec![Arg::Map(bpf), Arg::Stack(key), Arg::Stack(value), Arg::Imm(BPF_ANY)],
        });
        let failed = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Ne, r, Operand::Imm(0), failed, done);
        self.b.switch_to(failed);
        self.count_error(ErrorCounter::MapFull);
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    pub(super) fn lower_map_read(&mut self, map: MapId, keys: &[Expr], ty: &Type) -> Value {
        let value = self.user_map(map).0.value.clone();
        let key = self.build_key(map, keys, None);
        let ptr = self.lookup(map, key);
        let found = self.b.new_block();
        let done = self.b.new_block();
        if ty.is_integer() {
            let dst = self.b.reg();
            self.b.push(Op::Mov { dst, src: Operand::Imm(0) });
            self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, done);
            self.b.switch_to(found);
            match value {
                MapValue::Avg { .. } | MapValue::Stats { .. } => {
                    let count = self.b.reg();
                    let total = self.b.reg();
                    self.b.push(Op::LoadPtr { dst: count, ptr, offset: 0, size: 8 });
                    self.b.push(Op::LoadPtr { dst: total, ptr, offset: 8, size: 8 });
                    self.b.push(Op::Alu { op: AluOp::Div, dst, lhs: total, rhs: Operand::Reg(count) });
                }
                _ => self.b.push(Op::LoadPtr { dst, ptr, offset: 0, size: 8 }),
            }
            self.b.terminate(Term::Jump(done));
            self.b.switch_to(done);
            Value::Int(dst)
        } else {
            let at = self.b.slot(ty.size());
            self.b.zero(at, align8(ty.size()));
            self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, done);
            self.b.switch_to(found);
            self.b.push(Op::CopyFromPtr { dst: at, ptr, offset: 0, len: align8(ty.size()) });
            self.b.terminate(Term::Jump(done));
            self.b.switch_to(done);
            Value::Mem(at)
        }
    }

    pub(super) fn lower_assign_map(&mut self, map: MapId, keys: &[Expr], value: &Expr) {
        let decl = self.user_map(map).0.clone();
        let MapValue::Plain(ty) = &decl.value else { return };
        let key = self.build_key(map, keys, None);
        let slot = self.b.slot(decl.value.slot_size());
        if !ty.is_integer() {
            self.b.zero(slot, decl.value.slot_size());
        }
        self.write_value(value, slot, ty);
        self.update(map, key, slot);
    }

    /// `@m[k] = count()` and the other aggregations.
    pub(super) fn lower_aggregate(&mut self, map: MapId, keys: &[Expr], arg: Option<&Expr>) {
        let value = self.user_map(map).0.value.clone();
        let v = arg.map(|a| self.lower_int(a));
        let bucket = match (&value, v) {
            (MapValue::Hist, Some(v)) => Some(self.hist_bucket(v)),
            (MapValue::Lhist { min, max, step }, Some(v)) => Some(self.lhist_bucket(v, *min, *max, *step)),
            _ => None,
        };
        let key = self.build_key(map, keys, bucket);
        let ptr = self.lookup(map, key);
        let found = self.b.new_block();
        let missing = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, missing);

        // The element exists: update this CPU's value in place (no other CPU writes it).
        self.b.switch_to(found);
        match (&value, v) {
            (MapValue::Count | MapValue::Hist | MapValue::Lhist { .. }, _) => self.add_at(ptr, 0, Operand::Imm(1)),
            (MapValue::Sum { .. }, Some(v)) => self.add_at(ptr, 0, Operand::Reg(v)),
            (MapValue::Avg { .. } | MapValue::Stats { .. }, Some(v)) => {
                self.add_at(ptr, 0, Operand::Imm(1));
                self.add_at(ptr, 8, Operand::Reg(v));
            }
            (MapValue::Min { signed } | MapValue::Max { signed }, Some(v)) => {
                let is_min = matches!(value, MapValue::Min { .. });
                self.update_extreme(ptr, v, is_min, *signed);
            }
            _ => {}
        }
        self.b.terminate(Term::Jump(done));

        // First value for this key on this CPU: create it. bpftrace 0.17's max() starts from 0,
        // so a key whose values are all negative is never created.
        self.b.switch_to(missing);
        if let (MapValue::Max { signed }, Some(v)) = (&value, v) {
            let create = self.b.new_block();
            let cond = if *signed { Cond::SGe } else { Cond::Ge };
            self.b.branch(cond, v, Operand::Imm(0), create, done);
            self.b.switch_to(create);
        }
        let slot = self.b.slot(value.slot_size());
        match (&value, v) {
            (MapValue::Count | MapValue::Hist | MapValue::Lhist { .. }, _) => self.b.store_imm(slot, 0, 1, 8),
            (MapValue::Sum { .. }, Some(v)) => self.b.store(slot, 0, v, 8),
            (MapValue::Avg { .. } | MapValue::Stats { .. }, Some(v)) => {
                self.b.store_imm(slot, 0, 1, 8);
                self.b.store(slot, 8, v, 8);
            }
            (MapValue::Min { .. } | MapValue::Max { .. }, Some(v)) => {
                self.b.store(slot, 0, v, 8);
                self.b.store_imm(slot, 8, 1, 8);
            }
            _ => self.b.zero(slot, value.slot_size()),
        }
        self.update(map, key, slot);
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    fn add_at(&mut self, ptr: VReg, offset: u32, amount: Operand) {
        let cur = self.b.reg();
        self.b.push(Op::LoadPtr { dst: cur, ptr, offset, size: 8 });
        self.b.push(Op::Alu { op: AluOp::Add, dst: cur, lhs: cur, rhs: amount });
        self.b.push(Op::StorePtr { ptr, offset, size: 8, src: Operand::Reg(cur) });
    }

    /// min/max: store `v` when the slot is unset or `v` is beyond the current value.
    fn update_extreme(&mut self, ptr: VReg, v: VReg, is_min: bool, signed: bool) {
        let set = self.b.reg();
        let cur = self.b.reg();
        self.b.push(Op::LoadPtr { dst: set, ptr, offset: 8, size: 8 });
        self.b.push(Op::LoadPtr { dst: cur, ptr, offset: 0, size: 8 });
        let store = self.b.new_block();
        let check = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::Eq, set, Operand::Imm(0), store, check);
        self.b.switch_to(check);
        let cond = match (is_min, signed) {
            (true, true) => Cond::SLt,
            (true, false) => Cond::Lt,
            (false, true) => Cond::SGt,
            (false, false) => Cond::Gt,
        };
        self.b.branch(cond, v, Operand::Reg(cur), store, done);
        self.b.switch_to(store);
        self.b.push(Op::StorePtr { ptr, offset: 0, size: 8, src: Operand::Reg(v) });
        self.b.push(Op::StorePtr { ptr, offset: 8, size: 8, src: Operand::Imm(1) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// hist() bucket of a signed value: 0 negative, 1 zero, else 2 + floor(log2(v)).
    ///
    /// Computed without branches. With branches every bucket is a different constant on its own
    /// path, and an unkeyed histogram's array index is a constant key the verifier tracks
    /// precisely, so no two paths ever merge: three hist() calls in a loop of eight iterations
    /// made 32^24 paths and hit the verifier's one-million-instruction limit.
    fn hist_bucket(&mut self, v: VReg) -> VReg {
        let alu = |this: &mut Self, op: AluOp, lhs: VReg, rhs: Operand| {
            let dst = this.b.reg();
            this.b.push(Op::Alu { op, dst, lhs, rhs });
            dst
        };
        // negative = v >> 63; positive = (-v & !v) >> 63 (top bit set only when v > 0).
        let negative = alu(self, AluOp::Shr, v, Operand::Imm(63));
        let minus = self.b.reg();
        self.b.push(Op::Neg { dst: minus, src: v });
        let not = alu(self, AluOp::Xor, v, Operand::Imm(-1));
        let both = alu(self, AluOp::And, minus, Operand::Reg(not));
        let positive = alu(self, AluOp::Shr, both, Operand::Imm(63));
        // floor(log2(v)) by halving the search range: 16, 8, 4, 2, 1 bits. Like bpftrace 0.17 there
        // is no 32-bit step, so every value of 2^31 or more lands in the last bucket (index 33).
        // Each step: big = (rest >> shift) != 0, as (t | -t) >> 63 (rest < 2^63 when v > 0);
        // then rest >>= big * shift and log += big * shift.
        let mut rest = v;
        let mut log = self.b.constant(0);
        for bits in [4, 3, 2, 1, 0] {
            let t = alu(self, AluOp::Shr, rest, Operand::Imm(1 << bits));
            let minus_t = self.b.reg();
            self.b.push(Op::Neg { dst: minus_t, src: t });
            let either = alu(self, AluOp::Or, t, Operand::Reg(minus_t));
            let big = alu(self, AluOp::Shr, either, Operand::Imm(63));
            let step = alu(self, AluOp::Shl, big, Operand::Imm(bits));
            rest = alu(self, AluOp::Shr, rest, Operand::Reg(step));
            log = alu(self, AluOp::Add, log, Operand::Reg(step));
        }
        // bucket = positive * (log + 1) + 1 - negative.
        let log_plus_one = alu(self, AluOp::Add, log, Operand::Imm(1));
        let scaled = alu(self, AluOp::Mul, log_plus_one, Operand::Reg(positive));
        let plus_one = alu(self, AluOp::Add, scaled, Operand::Imm(1));
        alu(self, AluOp::Sub, plus_one, Operand::Reg(negative))
    }

    fn lhist_bucket(&mut self, v: VReg, min: i64, max: i64, step: i64) -> VReg {
        let dst = self.b.reg();
        let last = lhist_buckets(min, max, step) - 1;
        let min_r = self.b.constant(min as u64);
        let max_r = self.b.constant(max as u64);
        let below = self.b.new_block();
        let not_below = self.b.new_block();
        let above = self.b.new_block();
        let inside = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::SLt, v, Operand::Reg(min_r), below, not_below);
        self.b.switch_to(below);
        self.b.push(Op::Mov { dst, src: Operand::Imm(0) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(not_below);
        self.b.branch(Cond::SGt, v, Operand::Reg(max_r), above, inside);
        self.b.switch_to(above);
        self.b.push(Op::Mov { dst, src: Operand::Imm(last as i32) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(inside);
        let step_r = self.b.constant(step as u64);
        self.b.push(Op::Alu { op: AluOp::Sub, dst, lhs: v, rhs: Operand::Reg(min_r) });
        self.b.push(Op::Alu { op: AluOp::Div, dst, lhs: dst, rhs: Operand::Reg(step_r) });
        self.b.push(Op::Alu { op: AluOp::Add, dst, lhs: dst, rhs: Operand::Imm(1) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
        dst
    }

    /// `x++`, `--x`, ... Returns the expression's value (old for postfix, new for prefix).
    pub(super) fn lower_incdec(&mut self, target: &LValue, increment: bool, prefix: bool) -> VReg {
        let delta = if increment { 1 } else { -1 };
        match target {
            LValue::Var(id) => {
                let at = self.var_slots[id.0 as usize];
                let old = self.b.reg();
                self.b.push(Op::LoadStack { dst: old, at, size: 8 });
                let new = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Add, dst: new, lhs: old, rhs: Operand::Imm(delta) });
                self.b.push(Op::StoreStack { at, size: 8, src: Operand::Reg(new) });
                if prefix { new } else { old }
            }
            LValue::Map { map, keys } => {
                let key = self.build_key(*map, keys, None);
                let ptr = self.lookup(*map, key);
                let old = self.b.reg();
                self.b.push(Op::Mov { dst: old, src: Operand::Imm(0) });
                let found = self.b.new_block();
                let write = self.b.new_block();
                self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, write);
                self.b.switch_to(found);
                self.b.push(Op::LoadPtr { dst: old, ptr, offset: 0, size: 8 });
                self.b.terminate(Term::Jump(write));
                self.b.switch_to(write);
                let new = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Add, dst: new, lhs: old, rhs: Operand::Imm(delta) });
                let slot = self.b.slot(8);
                self.b.store(slot, 0, new, 8);
                self.update(*map, key, slot);
                if prefix { new } else { old }
            }
        }
    }

    pub(super) fn lower_delete(&mut self, map: MapId, keys: &[Expr]) {
        let decl = self.user_map(map).0.clone();
        if is_array_backed(&decl) {
            // Array elements cannot be deleted; like bpftrace 0.17 (whose delete fails on its
            // per-CPU arrays), deleting an unkeyed aggregation leaves it as it is.
            return;
        }
        let key = self.build_key(map, keys, None);
        let bpf = self.user_map(map).1;
        self.b.push(Op::Call { dst: None, helper: Helper::MapDeleteElem, args: vec![Arg::Map(bpf), Arg::Stack(key)] });
    }
}
