//! Lowering map access: key construction, reads, plain assignments, aggregations, `++`/`--`,
//! and `delete`.
//!
//! Storage (see [`super::storage_for`]) follows bpftrace 0.17, whose semantics depend on it: an
//! unkeyed `count()` is a one-element per-CPU array; every other aggregation is a per-CPU hash
//! whose elements exist only once updated (so `sum(0)` prints `0` and `delete()` really
//! deletes); plain maps are hashes. Histograms add the bucket index to the key as a trailing
//! u64 (alone for unkeyed maps), and `avg()`/`stats()` likewise keep their count in bucket 0
//! and their total in bucket 1. Unkeyed maps without buckets use the key `0u64`. Bucket
//! indexing: hist: 0 = negative, 1 = zero, then 2 + floor(log2(v)); lhist: 0 = below min, last
//! = above max, else 1 + (v - min) / step.

use super::builder::at_offset;
use super::expr::Value;
use super::{is_array_backed, user_key_size, ProbeLowering};
use crate::bpf::helpers::{Helper, BPF_ANY};
use crate::hir::{Expr, LValue, MapId};
use crate::ir::{AluOp, Arg, Cond, Op, Operand, StackRef, Term, VReg};
use crate::program::ErrorCounter;
use crate::types::{align8, lhist_buckets, MapValue, Type};

impl ProbeLowering<'_> {
    /// Builds the BPF key for `map[keys]`, with a histogram bucket if given.
    fn build_key(&mut self, map: MapId, keys: &[Expr], bucket: Option<VReg>) -> StackRef {
        let decl = self.user_map(map).0.clone();
        if is_array_backed(&decl) {
            let at = self.b.slot(8);
            self.b.store_imm(at, 0, 0, 4);
            return at;
        }
        let user_size = user_key_size(&decl);
        let at = self.b.slot(user_size + if decl.value.is_bucketed() { 8 } else { 0 });
        if keys.is_empty() && user_size > 0 {
            self.b.store_imm(at, 0, 0, 8);
        }
        let mut offset = 0;
        for (key, ty) in keys.iter().zip(&decl.key) {
            self.write_value(key, at_offset(at, offset), ty);
            offset += align8(ty.size());
        }
        if decl.value.is_bucketed() {
            match bucket {
                Some(b) => self.b.store(at, user_size, b, 8),
                None => self.b.store_imm(at, user_size, 0, 8),
            }
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
        self.report_if_checked(r, Helper::MapUpdateElem);
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// Reads this CPU's value of a plain map or of a `count()`, `sum()`, `min()` or `max()` (the
    /// checker rejects reading the others); 0 / empty when the key is absent.
    pub(super) fn lower_map_read(&mut self, map: MapId, keys: &[Expr], ty: &Type) -> Value {
        let value = self.user_map(map).0.value.clone();
        let key = self.build_key(map, keys, None);
        let ptr = self.lookup(map, key);
        let found = self.b.new_block();
        let done = self.b.new_block();
        if ty.is_integer() {
            let dst = self.b.reg();
            self.b.push(Op::Mov { dst, src: Operand::Imm(0) });
            self.branch_on_lookup(ptr, found, done);
            self.b.switch_to(found);
            self.b.push(Op::LoadPtr { dst, ptr, offset: 0, size: 8 });
            if matches!(value, MapValue::Min { .. }) {
                // Undo the bias of `lower_aggregate` (a zeroed element stays 0).
                let bias = self.b.constant(0xffff_ffff);
                let unbiased = self.b.new_block();
                self.b.branch(Cond::Eq, dst, Operand::Imm(0), done, unbiased);
                self.b.switch_to(unbiased);
                self.b.push(Op::Alu { op: AluOp::Sub, dst, lhs: bias, rhs: Operand::Reg(dst) });
            }
            self.b.terminate(Term::Jump(done));
            self.b.switch_to(done);
            Value::Int(dst)
        } else {
            let at = self.b.slot(ty.size());
            self.b.zero(at, align8(ty.size()));
            self.branch_on_lookup(ptr, found, done);
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
        if ty.is_integer() {
            // bpftrace 0.17 widens the value's computed bytes by the map's sign, so
            // `@m = 5; @m = (uint8)200` stores -56.
            let v = self.lower_int_extended(value, ty.is_signed());
            self.b.store(slot, 0, v, 8);
        } else {
            self.b.zero(slot, decl.value.slot_size());
            self.write_value(value, slot, ty);
        }
        self.update(map, key, slot);
    }

    /// `@m[k] = count()` and the other aggregations, updating this CPU's value as bpftrace 0.17
    /// does (its per-CPU hash lookups see only the current CPU's copy).
    pub(super) fn lower_aggregate(&mut self, map: MapId, keys: &[Expr], arg: Option<&Expr>) {
        let decl = self.user_map(map).0.clone();
        let v = arg.map(|a| self.lower_int(a));
        match (&decl.value, v) {
            (MapValue::Count, _) => {
                let key = self.build_key(map, keys, None);
                self.accumulate(map, key, Operand::Imm(1));
            }
            (MapValue::Sum { .. }, Some(v)) => {
                let key = self.build_key(map, keys, None);
                self.accumulate(map, key, Operand::Reg(v));
            }
            (MapValue::Hist, Some(v)) => {
                let bucket = self.hist_bucket(v);
                let key = self.build_key(map, keys, Some(bucket));
                self.accumulate(map, key, Operand::Imm(1));
            }
            (MapValue::Lhist { min, max, step }, Some(v)) => {
                let bucket = self.lhist_bucket(v, *min, *max, *step);
                let key = self.build_key(map, keys, Some(bucket));
                self.accumulate(map, key, Operand::Imm(1));
            }
            // Like a two-bucket histogram: bucket 0 counts the values, bucket 1 adds them up.
            (MapValue::Avg { .. } | MapValue::Stats { .. }, Some(v)) => {
                let zero = self.b.constant(0);
                let key = self.build_key(map, keys, Some(zero));
                self.accumulate(map, key, Operand::Imm(1));
                self.b.store_imm(key, user_key_size(&decl), 1, 8);
                self.accumulate(map, key, Operand::Reg(v));
            }
            // bpftrace 0.17 keeps `0xffffffff - v` and takes the largest of those, so that a
            // missing element (read as 0) loses to the first value; the runtime turns it back.
            // A value of 2^32 or more is thus never stored (see runtime/src/maps.rs).
            (MapValue::Min { .. }, Some(v)) => {
                let bias = self.b.constant(0xffff_ffff);
                let inverted = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Sub, dst: inverted, lhs: bias, rhs: Operand::Reg(v) });
                let key = self.build_key(map, keys, None);
                self.store_if_not_below(map, key, inverted);
            }
            // max() starts from 0 as well, so only values >= 0 are ever stored.
            (MapValue::Max { .. }, Some(v)) => {
                let key = self.build_key(map, keys, None);
                self.store_if_not_below(map, key, v);
            }
            _ => {}
        }
    }

    /// Adds `amount` to this CPU's value of `key`, creating the element with `amount`.
    fn accumulate(&mut self, map: MapId, key: StackRef, amount: Operand) {
        let ptr = self.lookup(map, key);
        let found = self.b.new_block();
        let missing = self.b.new_block();
        let done = self.b.new_block();
        self.branch_on_lookup(ptr, found, missing);
        self.b.switch_to(found);
        let cur = self.b.reg();
        self.b.push(Op::LoadPtr { dst: cur, ptr, offset: 0, size: 8 });
        self.b.push(Op::Alu { op: AluOp::Add, dst: cur, lhs: cur, rhs: amount });
        self.b.push(Op::StorePtr { ptr, offset: 0, size: 8, src: Operand::Reg(cur) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(missing);
        let slot = self.b.slot(8);
        match amount {
            Operand::Reg(r) => self.b.store(slot, 0, r, 8),
            Operand::Imm(i) => self.b.store_imm(slot, 0, i, 8),
        }
        self.update(map, key, slot);
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(done);
    }

    /// Stores `v` as this CPU's value of `key` when `v >= current` (signed), a missing element
    /// counting as 0: bpftrace 0.17's min() and max().
    fn store_if_not_below(&mut self, map: MapId, key: StackRef, v: VReg) {
        let ptr = self.lookup(map, key);
        let cur = self.b.reg();
        self.b.push(Op::Mov { dst: cur, src: Operand::Imm(0) });
        let found = self.b.new_block();
        let compare = self.b.new_block();
        self.branch_on_lookup(ptr, found, compare);
        self.b.switch_to(found);
        self.b.push(Op::LoadPtr { dst: cur, ptr, offset: 0, size: 8 });
        self.b.terminate(Term::Jump(compare));
        self.b.switch_to(compare);
        let store = self.b.new_block();
        let done = self.b.new_block();
        self.b.branch(Cond::SGe, v, Operand::Reg(cur), store, done);
        self.b.switch_to(store);
        let in_place = self.b.new_block();
        let create = self.b.new_block();
        self.b.branch(Cond::Ne, ptr, Operand::Imm(0), in_place, create);
        self.b.switch_to(in_place);
        self.b.push(Op::StorePtr { ptr, offset: 0, size: 8, src: Operand::Reg(v) });
        self.b.terminate(Term::Jump(done));
        self.b.switch_to(create);
        let slot = self.b.slot(8);
        self.b.store(slot, 0, v, 8);
        self.update(map, key, slot);
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
    pub(super) fn lower_incdec(&mut self, target: &LValue, delta: i32, prefix: bool) -> VReg {
        match target {
            LValue::Var(id) => {
                let at = self.var_slots[id.0 as usize];
                let ty = self.probe.vars[id.0 as usize].ty.clone();
                let old = self.b.reg();
                self.b.push(Op::LoadStack { dst: old, at, size: 8 });
                let mut new = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Add, dst: new, lhs: old, rhs: Operand::Imm(delta) });
                // bpftrace 0.17 counts at the variable's width: a uint8 at 255 goes to 0.
                if ty.int_bytes() < 8 {
                    let wrapped = self.b.reg();
                    self.b.push(Op::Extend {
                        dst: wrapped,
                        src: new,
                        bytes: ty.int_bytes() as u8,
                        signed: ty.is_signed(),
                    });
                    new = wrapped;
                }
                self.b.push(Op::StoreStack { at, size: 8, src: Operand::Reg(new) });
                if prefix {
                    new
                } else {
                    old
                }
            }
            LValue::Map { map, keys } => {
                let key = self.build_key(*map, keys, None);
                let ptr = self.lookup(*map, key);
                let old = self.b.reg();
                self.b.push(Op::Mov { dst: old, src: Operand::Imm(0) });
                let found = self.b.new_block();
                let write = self.b.new_block();
                self.branch_on_lookup(ptr, found, write);
                self.b.switch_to(found);
                self.b.push(Op::LoadPtr { dst: old, ptr, offset: 0, size: 8 });
                self.b.terminate(Term::Jump(write));
                self.b.switch_to(write);
                let new = self.b.reg();
                self.b.push(Op::Alu { op: AluOp::Add, dst: new, lhs: old, rhs: Operand::Imm(delta) });
                let slot = self.b.slot(8);
                self.b.store(slot, 0, new, 8);
                self.update(*map, key, slot);
                if prefix {
                    new
                } else {
                    old
                }
            }
        }
    }

    /// `delete(@m[k])` as bpftrace 0.17 does it. Its key holds only the user key, so on an
    /// unkeyed histogram, avg or stats map (whose key is just the bucket) it deletes bucket 0:
    /// the negative values of a hist, those below min of an lhist, the count of an avg or stats
    /// (which then prints 0 over the kept total). An unkeyed count() is an array element, which
    /// bpftrace overwrites with zero on this CPU. (On keyed histograms bpftrace reads past its key;
    /// the checker rejects that, and a keyed avg or stats element loses both buckets here.)
    pub(super) fn lower_delete(&mut self, map: MapId, keys: &[Expr]) {
        let decl = self.user_map(map).0.clone();
        let key = self.build_key(map, keys, None);
        if is_array_backed(&decl) {
            let ptr = self.lookup(map, key);
            let found = self.b.new_block();
            let done = self.b.new_block();
            self.b.branch(Cond::Ne, ptr, Operand::Imm(0), found, done);
            self.b.switch_to(found);
            self.b.push(Op::StorePtr { ptr, offset: 0, size: 8, src: Operand::Imm(0) });
            self.b.terminate(Term::Jump(done));
            self.b.switch_to(done);
            return;
        }
        let bpf = self.user_map(map).1;
        let ret = self.checks(Helper::MapDeleteElem).then(|| self.b.reg());
        self.b.push(Op::Call { dst: ret, helper: Helper::MapDeleteElem, args: vec![Arg::Map(bpf), Arg::Stack(key)] });
        if let Some(ret) = ret {
            self.report_if_negative(ret, Helper::MapDeleteElem);
        }
        // The second bucket's deletion is rbt's own (bpftrace deletes once): not reported.
        if !keys.is_empty() && matches!(decl.value, MapValue::Avg { .. } | MapValue::Stats { .. }) {
            self.b.store_imm(key, user_key_size(&decl), 1, 8);
            self.b.push(Op::Call {
                dst: None,
                helper: Helper::MapDeleteElem,
                args: vec![Arg::Map(bpf), Arg::Stack(key)],
            });
        }
    }
}
