//! The BPF backend's machine layer: instruction encoding, disassembly, and ELF object writing.
//!
//! `opcode` names the fields of an opcode byte, `insn` defines instructions, registers and their
//! constructors, `helpers` the kernel's helper ids and map constants, `disasm` prints instructions
//! as the verifier log does, and `elf` packs programs and map definitions into an object aya can
//! load. Everything here is pure: bytes in, bytes out.

pub mod disasm;
pub mod elf;
pub mod helpers;
pub mod insn;
pub mod opcode;

#[cfg(test)]
mod elf_tests;

pub use disasm::{disassemble, disassemble_lines, DisasmLine};
pub use elf::{write_object, ElfError, MapReloc, ObjectMap, ObjectProgram};
pub use helpers::Helper;
pub use insn::{Insn, Reg};
pub use opcode::{AluOp, ByteOrder, JmpOp, Size, SwapBits};
