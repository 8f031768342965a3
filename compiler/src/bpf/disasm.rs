//! Disassembly of BPF instructions into the text the kernel verifier log and `bpftool prog dump`
//! print, so rbt's listings read like the verifier complaints they are compared against.
//!
//! A sample of the kernel's format (verifier log, `(code) text` columns dropped):
//!
//! ```text
//! 0: r1 = r6
//! 1: *(u32 *)(r10 -4) = r1
//! 2: r2 = r10
//! 3: r2 += -4
//! 4: r1 = 0xffff8881033c4000 ll
//! 6: call bpf_map_lookup_elem#1
//! 7: if r0 == 0x0 goto pc+2
//! 8: r0 = *(u64 *)(r0 +0)
//! 9: exit
//! ```
//!
//! Immediates of ALU and store instructions print in signed decimal, those of conditional jumps in
//! 32-bit hex, and 64-bit loads as hex with an `ll` suffix, as the kernel does.

use super::helpers::Helper;
use super::insn::Insn;
use super::opcode::*;

/// One disassembled instruction: the index of its (first) slot and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisasmLine {
    pub index: usize,
    pub text: String,
}

/// Disassembles a program into one line per instruction. A 64-bit load takes two slots but is
/// one line, so line numbers and slot indices differ after it; use [`disassemble_lines`] to keep
/// the indices.
pub fn disassemble(insns: &[Insn]) -> Vec<String> {
    disassemble_lines(insns, &|_| None).into_iter().map(|line| line.text).collect()
}

/// Disassembles a program, naming maps: `map_name(index)` gets the slot index of a map load
/// (`BPF_PSEUDO_MAP_FD`/`BPF_PSEUDO_MAP_VALUE`) and may return the text to print between the
/// brackets of `map[...]`; with `None` the raw immediate is printed as `map_fd[imm]`.
pub fn disassemble_lines(insns: &[Insn], map_name: &dyn Fn(usize) -> Option<String>) -> Vec<DisasmLine> {
    let mut lines = Vec::with_capacity(insns.len());
    let mut index = 0;
    while let Some(insn) = insns.get(index) {
        let text = if insn.is_ld_imm64() {
            match insns.get(index + 1) {
                Some(high) => format_ld_imm64(*insn, *high, map_name(index)),
                None => "invalid ld_imm64: missing second slot".to_owned(),
            }
        } else {
            format_insn(*insn)
        };
        lines.push(DisasmLine { index, text });
        index += if insn.is_ld_imm64() { 2 } else { 1 };
    }
    lines
}

/// Formats one single-slot instruction.
fn format_insn(insn: Insn) -> String {
    match insn.class() {
        BPF_ALU | BPF_ALU64 => format_alu(insn),
        BPF_LDX => format_load(insn),
        BPF_ST | BPF_STX => format_store(insn),
        BPF_JMP | BPF_JMP32 => format_jump(insn),
        _ => unknown(insn),
    }
}

fn unknown(insn: Insn) -> String {
    format!("unknown insn code {:#04x}", insn.code)
}

/// The register as the kernel names it: `r` for 64-bit uses, `w` for 32-bit ones.
fn reg(prefix: char, number: u8) -> String {
    format!("{prefix}{number}")
}

/// The C type the kernel prints for an access size.
fn size_name(code: u8) -> &'static str {
    match Size::from_code(code) {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

/// The compound-assignment operator for an ALU or atomic operation, as the kernel prints it.
fn alu_operator(op: u8, signed: bool) -> Option<&'static str> {
    Some(match (op, signed) {
        (BPF_ADD, false) => "+=",
        (BPF_SUB, false) => "-=",
        (BPF_MUL, false) => "*=",
        (BPF_DIV, false) => "/=",
        (BPF_DIV, true) => "s/=",
        (BPF_OR, false) => "|=",
        (BPF_AND, false) => "&=",
        (BPF_LSH, false) => "<<=",
        (BPF_RSH, false) => ">>=",
        (BPF_MOD, false) => "%=",
        (BPF_MOD, true) => "s%=",
        (BPF_XOR, false) => "^=",
        (BPF_MOV, false) => "=",
        (BPF_ARSH, false) => "s>>=",
        _ => return None,
    })
}

fn format_alu(insn: Insn) -> String {
    let prefix = if insn.class() == BPF_ALU64 { 'r' } else { 'w' };
    let dst = reg(prefix, insn.dst);
    let op = insn.code & BPF_OP_MASK;
    let from_reg = insn.code & BPF_SRC_MASK == BPF_X;
    match op {
        BPF_NEG => format!("{dst} = -{dst}"),
        BPF_END => {
            let order = if insn.class() == BPF_ALU64 {
                // The v4 instruction set's unconditional byte swap.
                "bswap"
            } else if from_reg {
                "be"
            } else {
                "le"
            };
            format!("{} = {order}{} {}", reg('r', insn.dst), insn.imm, reg('r', insn.dst))
        }
        // `movsx`: a sign-extending move of the low `off` bits (v4 instruction set).
        BPF_MOV if from_reg && matches!(insn.off, 8 | 16 | 32) => {
            format!("{dst} = (s{}){}", insn.off, reg(prefix, insn.src))
        }
        _ => {
            let Some(operator) = alu_operator(op, insn.off == 1) else {
                return unknown(insn);
            };
            if from_reg {
                format!("{dst} {operator} {}", reg(prefix, insn.src))
            } else {
                format!("{dst} {operator} {}", insn.imm)
            }
        }
    }
}

fn format_load(insn: Insn) -> String {
    if insn.code & BPF_MODE_MASK != BPF_MEM {
        return unknown(insn);
    }
    format!("r{} = *({} *)(r{} {:+})", insn.dst, size_name(insn.code), insn.src, insn.off)
}

fn format_store(insn: Insn) -> String {
    let place = format!("*({} *)(r{} {:+})", size_name(insn.code), insn.dst, insn.off);
    match (insn.class(), insn.code & BPF_MODE_MASK) {
        (BPF_ST, BPF_MEM) => format!("{place} = {}", insn.imm),
        (BPF_STX, BPF_MEM) => format!("{place} = r{}", insn.src),
        (BPF_STX, BPF_ATOMIC) if insn.imm & BPF_FETCH == 0 => {
            let op = u8::try_from(insn.imm).ok().filter(|op| matches!(*op, BPF_ADD | BPF_AND | BPF_OR | BPF_XOR));
            match op.and_then(|op| alu_operator(op, false)) {
                Some(operator) => format!("lock {place} {operator} r{}", insn.src),
                None => unknown(insn),
            }
        }
        _ => unknown(insn),
    }
}

/// The comparison operator of a conditional jump.
fn jump_operator(op: u8) -> Option<&'static str> {
    Some(match op {
        BPF_JEQ => "==",
        BPF_JGT => ">",
        BPF_JGE => ">=",
        BPF_JSET => "&",
        BPF_JNE => "!=",
        BPF_JSGT => "s>",
        BPF_JSGE => "s>=",
        BPF_JLT => "<",
        BPF_JLE => "<=",
        BPF_JSLT => "s<",
        BPF_JSLE => "s<=",
        _ => return None,
    })
}

fn format_jump(insn: Insn) -> String {
    let op = insn.code & BPF_OP_MASK;
    let wide = insn.class() == BPF_JMP;
    match op {
        BPF_JA if wide => format!("goto pc{:+}", insn.off),
        // The 32-bit-offset `gotol` of the v4 instruction set keeps its offset in `imm`.
        BPF_JA => format!("gotol pc{:+}", insn.imm),
        BPF_CALL if wide => match insn.src {
            0 => match Helper::from_id(insn.imm) {
                Some(helper) => format!("call {}#{}", helper.name(), insn.imm),
                None => format!("call unknown#{}", insn.imm),
            },
            BPF_PSEUDO_CALL => format!("call pc{:+}", insn.imm),
            _ => format!("call kernel-function#{}", insn.imm),
        },
        BPF_EXIT if wide => "exit".to_owned(),
        _ => {
            let Some(operator) = jump_operator(op) else {
                return unknown(insn);
            };
            let prefix = if wide { 'r' } else { 'w' };
            let rhs = if insn.code & BPF_SRC_MASK == BPF_X {
                reg(prefix, insn.src)
            } else {
                // The kernel prints the immediate as unsigned 32-bit hex; the cast is intended.
                format!("{:#x}", insn.imm as u32)
            };
            format!("if {} {operator} {rhs} goto pc{:+}", reg(prefix, insn.dst), insn.off)
        }
    }
}

fn format_ld_imm64(low: Insn, high: Insn, map_name: Option<String>) -> String {
    let dst = reg('r', low.dst);
    let target = match (low.src, map_name) {
        (BPF_PSEUDO_MAP_FD, Some(name)) => format!("map[{name}]"),
        (BPF_PSEUDO_MAP_FD, None) => format!("map_fd[{}]", low.imm),
        (BPF_PSEUDO_MAP_VALUE, Some(name)) => format!("map_value[{name}]{:+}", high.imm),
        (BPF_PSEUDO_MAP_VALUE, None) => format!("map_value[{}]{:+}", low.imm, high.imm),
        (0, _) => {
            // Reassemble the two 32-bit halves; the casts reinterpret bits, as intended.
            let value = u64::from(low.imm as u32) | (u64::from(high.imm as u32) << 32);
            format!("{value:#x} ll")
        }
        (src, _) => format!("ld_imm64 src={src} {:#x}", low.imm as u32),
    };
    format!("{dst} = {target}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::insn::Reg;

    fn one(insn: Insn) -> String {
        disassemble(&[insn]).join("\n")
    }

    #[test]
    fn moves_and_alu() {
        assert_eq!(one(Insn::mov64_reg(Reg::R1, Reg::R6)), "r1 = r6");
        assert_eq!(one(Insn::mov64_imm(Reg::R2, 5)), "r2 = 5");
        assert_eq!(one(Insn::alu64_imm(AluOp::Add, Reg::R1, -8)), "r1 += -8");
        assert_eq!(one(Insn::alu64_reg(AluOp::Mul, Reg::R3, Reg::R4)), "r3 *= r4");
        assert_eq!(one(Insn::alu64_imm(AluOp::Arsh, Reg::R1, 3)), "r1 s>>= 3");
        assert_eq!(one(Insn::alu64_imm(AluOp::Lsh, Reg::R1, 32)), "r1 <<= 32");
        assert_eq!(one(Insn::alu64_reg(AluOp::Mod, Reg::R1, Reg::R2)), "r1 %= r2");
        assert_eq!(one(Insn::neg64(Reg::R1)), "r1 = -r1");
    }

    #[test]
    fn thirty_two_bit_alu_uses_w_registers() {
        assert_eq!(one(Insn::mov32_reg(Reg::R1, Reg::R2)), "w1 = w2");
        assert_eq!(one(Insn::mov32_imm(Reg::R1, -1)), "w1 = -1");
        assert_eq!(one(Insn::alu32_imm(AluOp::And, Reg::R1, 255)), "w1 &= 255");
        assert_eq!(one(Insn::alu32_reg(AluOp::Div, Reg::R1, Reg::R2)), "w1 /= w2");
        assert_eq!(one(Insn::neg32(Reg::R5)), "w5 = -w5");
    }

    #[test]
    fn byte_swaps() {
        let insn = Insn::endian(Reg::R3, ByteOrder::Big, SwapBits::B16);
        assert_eq!(one(insn), "r3 = be16 r3");
        let insn = Insn::endian(Reg::R3, ByteOrder::Little, SwapBits::B64);
        assert_eq!(one(insn), "r3 = le64 r3");
    }

    #[test]
    fn loads_and_stores() {
        let load = Insn::ldx_mem(Size::DW, Reg::R0, Reg::FP, -16);
        assert_eq!(one(load), "r0 = *(u64 *)(r10 -16)");
        let load = Insn::ldx_mem(Size::B, Reg::R2, Reg::R1, 0);
        assert_eq!(one(load), "r2 = *(u8 *)(r1 +0)");
        let store = Insn::stx_mem(Size::W, Reg::FP, Reg::R1, -4);
        assert_eq!(one(store), "*(u32 *)(r10 -4) = r1");
        let store = Insn::st_mem(Size::DW, Reg::FP, -8, 0);
        assert_eq!(one(store), "*(u64 *)(r10 -8) = 0");
        let store = Insn::st_mem(Size::H, Reg::R6, 2, -7);
        assert_eq!(one(store), "*(u16 *)(r6 +2) = -7");
        let add = Insn::atomic_add(Size::DW, Reg::R0, Reg::R1, 8);
        assert_eq!(one(add), "lock *(u64 *)(r0 +8) += r1");
    }

    #[test]
    fn jumps_calls_and_exit() {
        assert_eq!(one(Insn::jmp_imm(JmpOp::Eq, Reg::R0, 0, 3)), "if r0 == 0x0 goto pc+3");
        assert_eq!(one(Insn::jmp_reg(JmpOp::Sgt, Reg::R1, Reg::R2, -5)), "if r1 s> r2 goto pc-5");
        assert_eq!(one(Insn::jmp_imm(JmpOp::Sle, Reg::R1, -1, 0)), "if r1 s<= 0xffffffff goto pc+0");
        assert_eq!(one(Insn::jmp32_imm(JmpOp::Set, Reg::R4, 16, 1)), "if w4 & 0x10 goto pc+1");
        assert_eq!(one(Insn::jmp32_reg(JmpOp::Lt, Reg::R4, Reg::R5, 2)), "if w4 < w5 goto pc+2");
        assert_eq!(one(Insn::ja(2)), "goto pc+2");
        assert_eq!(one(Insn::call_helper(Helper::MapLookupElem)), "call bpf_map_lookup_elem#1");
        assert_eq!(one(Insn::new(0x85, 0, 0, 0, 9999)), "call unknown#9999");
        assert_eq!(one(Insn::exit()), "exit");
    }

    #[test]
    fn wide_loads_take_two_slots_and_one_line() {
        let mut program = Vec::new();
        program.extend(Insn::ld_imm64(Reg::R1, 0x1234));
        program.extend(Insn::ld_map_fd(Reg::R2));
        program.push(Insn::exit());
        assert_eq!(disassemble(&program), ["r1 = 0x1234 ll", "r2 = map_fd[0]", "exit"]);

        let named = disassemble_lines(&program, &|index| (index == 2).then(|| "@counts".to_owned()));
        let indexed: Vec<_> = named.iter().map(|line| (line.index, line.text.as_str())).collect();
        assert_eq!(indexed, [(0, "r1 = 0x1234 ll"), (2, "r2 = map[@counts]"), (4, "exit")]);

        let all_ones = disassemble(&Insn::ld_imm64(Reg::R0, u64::MAX));
        assert_eq!(all_ones, ["r0 = 0xffffffffffffffff ll"]);
    }

    #[test]
    fn malformed_input_is_reported_not_panicked_on() {
        let [low, _] = Insn::ld_imm64(Reg::R1, 7);
        assert_eq!(disassemble(&[low]), ["invalid ld_imm64: missing second slot"]);
        assert_eq!(one(Insn::new(0xff, 0, 0, 0, 0)), "unknown insn code 0xff");
        let map_value = Insn::new(LD_IMM64_CODE, 1, BPF_PSEUDO_MAP_VALUE, 0, 3);
        let text = disassemble(&[map_value, Insn::new(0, 0, 0, 0, 16)]);
        assert_eq!(text, ["r1 = map_value[3]+16"]);
    }
}
