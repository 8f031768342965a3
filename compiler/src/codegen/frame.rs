//! Stack frame layout for IR slots: scratch variables get their own bytes; temporaries whose
//! uses do not interleave in the block layout share bytes, which keeps programs with many
//! strings, keys and event records inside the 512-byte BPF stack.

use crate::ir::{BlockId, Function};

/// For each slot, (frame offset from r10, bytes used below `base` up to and including it).
/// `base` is how many bytes above the slot area are taken (saved context, spills).
pub(super) fn assign_slots(f: &Function, order: &[BlockId], base: u32) -> Vec<(i32, u32)> {
    let n = f.slots.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    let mut pos = 0usize;
    for &b in order {
        for inst in &f.blocks[b.0 as usize].insts {
            for s in inst.op.slots() {
                let i = s.0 as usize;
                first[i] = first[i].min(pos);
                last[i] = last[i].max(pos);
            }
            pos += 1;
        }
        pos += 1;
    }
    for i in 0..(f.pinned_slots as usize).min(n) {
        first[i] = 0;
        last[i] = usize::MAX;
    }
    // First fit by start position: `placed` holds (area offset, size, last use) of placed slots.
    let mut order_idx: Vec<usize> = (0..n).filter(|&i| first[i] != usize::MAX).collect();
    order_idx.sort_by_key(|&i| (first[i], i));
    let mut placed: Vec<(u32, u32, usize)> = Vec::new();
    let mut result = vec![(-(base as i32) - 8, 0u32); n];
    for i in order_idx {
        let size = f.slots[i];
        let live: Vec<(u32, u32)> = placed.iter().filter(|p| p.2 >= first[i]).map(|p| (p.0, p.1)).collect();
        let mut at = 0u32;
        while let Some((o, s)) = live.iter().find(|(o, s)| at < o + s && *o < at + size) {
            at = o + s;
        }
        placed.push((at, size, last[i]));
        let end = at + size;
        result[i] = (-((base + end) as i32), end);
    }
    result
}
