//! Register allocation: liveness over the CFG, live intervals over a reverse-postorder layout, and
//! linear scan onto the callee-saved registers r6-r9, spilling the rest to 8-byte stack slots.
//!
//! r0-r5 are never allocated: helper calls clobber them, and the emitter uses them as scratch
//! registers to stage operands and helper arguments, so staging can never overwrite a live value.

use std::collections::HashSet;

use crate::bpf::insn::Reg;
use crate::ir::{BlockId, Function, VReg};

/// Where a virtual register lives for its whole lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Location {
    Reg(Reg),
    /// Index of an 8-byte spill slot.
    Spill(u32),
}

pub(super) struct Allocation {
    pub(super) locations: Vec<Option<Location>>,
    pub(super) spill_slots: u32,
}

const POOL: [Reg; 4] = [Reg::R6, Reg::R7, Reg::R8, Reg::R9];

/// Blocks reachable from the entry, in reverse postorder.
pub(super) fn layout(f: &Function) -> Vec<BlockId> {
    let mut visited = vec![false; f.blocks.len()];
    let mut post = Vec::new();
    // Iterative DFS: (block, next successor index).
    let mut stack = vec![(BlockId(0), 0usize)];
    visited[0] = true;
    while let Some((b, i)) = stack.pop() {
        let succs = f.blocks[b.0 as usize].term.successors();
        if let Some(&s) = succs.get(i) {
            stack.push((b, i + 1));
            if !visited[s.0 as usize] {
                visited[s.0 as usize] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(b);
        }
    }
    post.reverse();
    post
}

pub(super) fn allocate(f: &Function, order: &[BlockId]) -> Allocation {
    let n = f.vreg_count as usize;
    let live_out = liveness(f, order);
    // Positions: each instruction gets one, each terminator one; a block spans [start, end].
    let mut start = vec![usize::MAX; n];
    let mut end = vec![0usize; n];
    let mut pos = 0usize;
    let extend = |v: VReg, p: usize, start: &mut Vec<usize>, end: &mut Vec<usize>| {
        let i = v.0 as usize;
        start[i] = start[i].min(p);
        end[i] = end[i].max(p);
    };
    for &b in order {
        let block = &f.blocks[b.0 as usize];
        let block_start = pos;
        let block_end = pos + block.insts.len();
        // A register live into or out of the block is live across all of it.
        for v in live_in_of(f, b, &live_out) {
            extend(v, block_start, &mut start, &mut end);
        }
        for &v in &live_out[b.0 as usize] {
            extend(v, block_end, &mut start, &mut end);
        }
        for inst in &block.insts {
            for v in inst.op.uses().into_iter().chain(inst.op.def()) {
                extend(v, pos, &mut start, &mut end);
            }
            pos += 1;
        }
        for v in block.term.uses() {
            extend(v, pos, &mut start, &mut end);
        }
        pos += 1;
    }

    let mut intervals: Vec<(usize, usize, u32)> =
        (0..n).filter(|&i| start[i] != usize::MAX).map(|i| (start[i], end[i], i as u32)).collect();
    intervals.sort();
    let mut locations = vec![None; n];
    // Last position of the intervals already given each spill slot: a slot is reused by an
    // interval that starts after it, so short spilled temporaries in long probes do not each take
    // 8 more bytes of the 512-byte stack.
    let mut slot_ends: Vec<usize> = Vec::new();
    let mut spill = |start: usize, end: usize| -> Location {
        let slot = match slot_ends.iter().position(|&e| e < start) {
            Some(i) => i,
            None => {
                slot_ends.push(0);
                slot_ends.len() - 1
            }
        };
        slot_ends[slot] = slot_ends[slot].max(end);
        Location::Spill(slot as u32)
    };
    // Active intervals: (end, vreg, reg, start).
    let mut active: Vec<(usize, u32, Reg, usize)> = Vec::new();
    let mut free: Vec<Reg> = POOL.iter().rev().copied().collect();
    for (s, e, v) in intervals {
        active.retain(|&(ae, _, r, _)| {
            if ae < s {
                free.push(r);
                false
            } else {
                true
            }
        });
        if let Some(r) = free.pop() {
            active.push((e, v, r, s));
            locations[v as usize] = Some(Location::Reg(r));
            continue;
        }
        // Spill whichever of the active intervals or this one ends last.
        let (idx, &(last_end, last_v, last_r, last_start)) =
            active.iter().enumerate().max_by_key(|(_, a)| a.0).expect("the pool is full, so some interval is active");
        if last_end > e {
            locations[last_v as usize] = Some(spill(last_start, last_end));
            active[idx] = (e, v, last_r, s);
            locations[v as usize] = Some(Location::Reg(last_r));
        } else {
            locations[v as usize] = Some(spill(s, e));
        }
    }
    Allocation { locations, spill_slots: slot_ends.len() as u32 }
}

/// Live-out sets per block, by the usual backward dataflow iteration.
fn liveness(f: &Function, order: &[BlockId]) -> Vec<HashSet<VReg>> {
    let nb = f.blocks.len();
    let mut uses = vec![HashSet::new(); nb];
    let mut defs = vec![HashSet::new(); nb];
    for &b in order {
        let block = &f.blocks[b.0 as usize];
        let (u, d) = (&mut uses[b.0 as usize], &mut defs[b.0 as usize]);
        for inst in &block.insts {
            for v in inst.op.uses() {
                if !d.contains(&v) {
                    u.insert(v);
                }
            }
            if let Some(v) = inst.op.def() {
                d.insert(v);
            }
        }
        for v in block.term.uses() {
            if !d.contains(&v) {
                u.insert(v);
            }
        }
    }
    let mut live_in: Vec<HashSet<VReg>> = uses.clone();
    let mut live_out: Vec<HashSet<VReg>> = vec![HashSet::new(); nb];
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().rev() {
            let bi = b.0 as usize;
            let mut out = HashSet::new();
            for s in f.blocks[bi].term.successors() {
                out.extend(live_in[s.0 as usize].iter().copied());
            }
            let mut inn: HashSet<VReg> = out.iter().filter(|v| !defs[bi].contains(v)).copied().collect();
            inn.extend(uses[bi].iter().copied());
            if inn != live_in[bi] || out != live_out[bi] {
                live_in[bi] = inn;
                live_out[bi] = out;
                changed = true;
            }
        }
    }
    live_out
}

fn live_in_of(f: &Function, b: BlockId, live_out: &[HashSet<VReg>]) -> Vec<VReg> {
    // Recompute live-in from live-out for one block (cheap, avoids keeping both tables).
    let block = &f.blocks[b.0 as usize];
    let mut live: HashSet<VReg> = live_out[b.0 as usize].clone();
    for v in block.term.uses() {
        live.insert(v);
    }
    for inst in block.insts.iter().rev() {
        if let Some(d) = inst.op.def() {
            live.remove(&d);
        }
        for u in inst.op.uses() {
            live.insert(u);
        }
    }
    live.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{AluOp, Block, Inst, Op, Operand, Term};
    use grammar::Span;

    /// Ten groups of six values live at once: each group spills two, and the later groups reuse
    /// the spill slots of the earlier ones instead of taking new stack.
    #[test]
    fn spill_slots_are_reused_across_disjoint_lifetimes() {
        let inst = |op| Inst { op, span: Span::default() };
        let mut insts = Vec::new();
        let mut next = 0;
        for _ in 0..10 {
            let regs: Vec<VReg> = (next..next + 6).map(VReg).collect();
            next += 6;
            insts.extend(regs.iter().map(|&dst| inst(Op::Const { dst, value: 1 })));
            for pair in regs.windows(2) {
                insts.push(inst(Op::Alu { op: AluOp::Add, dst: pair[1], lhs: pair[1], rhs: Operand::Reg(pair[0]) }));
            }
        }
        let f = Function {
            blocks: vec![Block { insts, term: Term::Exit }],
            slots: Vec::new(),
            pinned_slots: 0,
            vreg_count: next,
        };
        let alloc = allocate(&f, &layout(&f));
        assert_eq!(alloc.spill_slots, 2);
        assert!(alloc.locations.iter().all(Option::is_some));
    }
}
