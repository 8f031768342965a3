//! The BPF code generator: lays out reachable blocks, allocates registers, assigns stack frame
//! offsets, emits instructions, and patches jump offsets.

mod emit;
mod frame;
mod regalloc;

use crate::bpf::elf::MapReloc;
use crate::bpf::insn::Insn;
use crate::ir::{Arg, Function, MapRef, Op, Term};
use emit::{Emitter, CTX_SAVE};
use grammar::Span;

/// The BPF stack limit.
pub const MAX_STACK: u32 = 512;

/// Most distinct maps one BPF program may use (the kernel's `MAX_USED_MAPS`).
pub const MAX_MAPS: usize = 64;

/// A function compiled to BPF instructions.
pub struct MachineCode {
    pub insns: Vec<Insn>,
    /// The source span of each instruction slot.
    pub spans: Vec<Span>,
    pub relocs: Vec<MapReloc>,
    pub stack_bytes: u32,
}

/// Why code could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodegenError {
    /// The frame (variables, strings, keys, records, spills) exceeds 512 bytes.
    StackTooLarge { needed: u32 },
    /// A jump is further than a 16-bit offset reaches.
    ProgramTooLarge { insns: usize },
    /// The function uses more than [`MAX_MAPS`] maps; `span` is the first use over the limit.
    TooManyMaps { maps: usize, span: Span },
}

/// How many instructions the kernel adds in place of `insn` after verifying it, for the changes
/// it always makes: division and modulo by a register get a guard against zero (`if src != 0`,
/// three more instructions for a division). Jumps must still reach across the grown program with
/// 16-bit offsets, or loading fails with "insn N cannot be patched due to 16-bit range". The
/// kernel may also inline helper calls such as map lookups, depending on its version, map type
/// and JIT; that is left to the runtime, which reports the kernel's refusal as a size limit.
fn kernel_growth(insn: &Insn) -> i64 {
    use crate::bpf::opcode::{BPF_ALU, BPF_ALU64, BPF_CLASS_MASK, BPF_DIV, BPF_MOD, BPF_OP_MASK, BPF_X};
    let op = insn.code & BPF_OP_MASK;
    let alu = matches!(insn.code & BPF_CLASS_MASK, BPF_ALU | BPF_ALU64);
    if alu && (op == BPF_DIV || op == BPF_MOD) && insn.code & BPF_X != 0 {
        3
    } else {
        0
    }
}

/// Fails when `f` uses more distinct maps than the kernel lets one program use.
fn check_map_count(f: &Function) -> Result<(), CodegenError> {
    let mut seen = std::collections::HashSet::new();
    let mut first_over = None;
    for inst in f.blocks.iter().flat_map(|b| &b.insts) {
        let maps: Vec<MapRef> = match &inst.op {
            Op::MapLookup { map, .. } => vec![*map],
            Op::Call { args, .. } => {
                args.iter().filter_map(|a| if let Arg::Map(m) = a { Some(*m) } else { None }).collect()
            }
            _ => Vec::new(),
        };
        for m in maps {
            if seen.insert(m) && seen.len() > MAX_MAPS && first_over.is_none() {
                first_over = Some(inst.span);
            }
        }
    }
    match first_over {
        Some(span) => Err(CodegenError::TooManyMaps { maps: seen.len(), span }),
        None => Ok(()),
    }
}

/// Generates BPF for one IR function. `map_names` gives the ELF name of each `MapRef`.
pub fn generate(f: &Function, map_names: &[String]) -> Result<MachineCode, CodegenError> {
    check_map_count(f)?;
    let order = regalloc::layout(f);
    let alloc = regalloc::allocate(f, &order);

    // Frame, growing down from r10: the saved context, spill slots, then IR slots.
    let mut next = (-CTX_SAVE) as u32;
    let mut spill_offsets = Vec::new();
    for _ in 0..alloc.spill_slots {
        next += 8;
        spill_offsets.push(-(next as i32));
    }
    let slot_offsets = frame::assign_slots(f, &order, next);
    let next = next + slot_offsets.iter().map(|&(_, end)| end).max().unwrap_or(0);
    let slot_offsets: Vec<i32> = slot_offsets.iter().map(|&(start, _)| start).collect();
    if next > MAX_STACK {
        return Err(CodegenError::StackTooLarge { needed: next });
    }
    let to_i16 = |v: Vec<i32>| v.into_iter().map(|o| o as i16).collect::<Vec<i16>>();
    let spill_offsets = to_i16(spill_offsets);
    let slot_offsets = to_i16(slot_offsets);

    let mut e = Emitter {
        insns: Vec::new(),
        spans: Vec::new(),
        relocs: Vec::new(),
        fixups: Vec::new(),
        locations: &alloc.locations,
        slot_offsets: &slot_offsets,
        spill_offsets: &spill_offsets,
        map_names,
        span: f.blocks.first().and_then(|b| b.insts.first()).map(|i| i.span).unwrap_or_default(),
    };
    e.save_ctx();
    let mut block_start = vec![usize::MAX; f.blocks.len()];
    for (pos, &b) in order.iter().enumerate() {
        block_start[b.0 as usize] = e.insns.len();
        let block = &f.blocks[b.0 as usize];
        for inst in &block.insts {
            e.span = inst.span;
            e.op(&inst.op);
        }
        let next_block = order.get(pos + 1).copied();
        match &block.term {
            Term::Exit => e.exit(),
            Term::Jump(t) => {
                if Some(*t) != next_block {
                    e.jump(*t);
                }
            }
            Term::Branch { cond, lhs, rhs, then_block, else_block } => {
                if Some(*then_block) == next_block {
                    e.branch(cond.negate(), *lhs, *rhs, *else_block);
                } else {
                    e.branch(*cond, *lhs, *rhs, *then_block);
                    if Some(*else_block) != next_block {
                        e.jump(*else_block);
                    }
                }
            }
        }
    }
    let fixups = std::mem::take(&mut e.fixups);
    // grown[i]: where instruction i may end up once the kernel has expanded those before it.
    let mut grown = Vec::with_capacity(e.insns.len() + 1);
    let mut total = 0i64;
    for insn in &e.insns {
        grown.push(total);
        total += 1 + kernel_growth(insn);
    }
    grown.push(total);
    for (at, target) in fixups {
        let dest = block_start[target.0 as usize];
        let too_far = || CodegenError::ProgramTooLarge { insns: e.insns.len() };
        i16::try_from(grown[dest] - grown[at + 1]).map_err(|_| too_far())?;
        e.insns[at].off = i16::try_from(dest as i64 - at as i64 - 1).map_err(|_| too_far())?;
    }
    Ok(MachineCode { insns: e.insns, spans: e.spans, relocs: e.relocs, stack_bytes: next })
}
