//! The fields of a BPF opcode byte: raw constants as `include/uapi/linux/bpf.h` and
//! `bpf_common.h` name them, and typed enums for the parts the code generator chooses (access
//! size, ALU operation, jump comparison, byte order).
//!
//! An opcode byte is `class | size | mode` for loads and stores and `class | source | operation`
//! for ALU and jump instructions.

// Instruction classes: the low three bits of `code`.
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;
pub const BPF_CLASS_MASK: u8 = 0x07;

// Access sizes for loads and stores: bits 3 and 4 of `code`.
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;
pub const BPF_SIZE_MASK: u8 = 0x18;

// Addressing modes for loads and stores: the top three bits of `code`.
pub const BPF_IMM: u8 = 0x00;
pub const BPF_ABS: u8 = 0x20;
pub const BPF_IND: u8 = 0x40;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_ATOMIC: u8 = 0xc0;
pub const BPF_MODE_MASK: u8 = 0xe0;

// Operand source for ALU and jump instructions: bit 3 of `code`.
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;
pub const BPF_SRC_MASK: u8 = 0x08;

// ALU operations: the top four bits of `code`.
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;
pub const BPF_OP_MASK: u8 = 0xf0;

// Byte-order conversions (`BPF_END`) use the source bit to pick the target order.
pub const BPF_TO_LE: u8 = 0x00;
pub const BPF_TO_BE: u8 = 0x08;

// Jump operations: the top four bits of `code`.
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

/// Atomic instructions that also return the old value set this bit in `imm`.
pub const BPF_FETCH: i32 = 0x01;

/// `src` of an `ld_imm64` whose `imm` is a map file descriptor (patched in by the loader).
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `src` of an `ld_imm64` that loads the address of a map value: map fd in the first slot's
/// `imm`, byte offset into the value in the second slot's `imm`.
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
/// `src` of a `call` to another BPF function (pc-relative) rather than to a kernel helper.
pub const BPF_PSEUDO_CALL: u8 = 1;

/// Opcode of the first slot of a 64-bit immediate load.
pub const LD_IMM64_CODE: u8 = BPF_LD | BPF_IMM | BPF_DW;

/// The width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// One byte.
    B,
    /// Two bytes (half word).
    H,
    /// Four bytes (word).
    W,
    /// Eight bytes (double word).
    DW,
}

impl Size {
    /// How many bytes this access reads or writes.
    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The access size for `n` bytes, if `n` is 1, 2, 4 or 8.
    pub const fn for_bytes(n: u32) -> Option<Size> {
        match n {
            1 => Some(Size::B),
            2 => Some(Size::H),
            4 => Some(Size::W),
            8 => Some(Size::DW),
            _ => None,
        }
    }

    /// The size bits of the opcode.
    pub const fn code(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }

    /// The size named by the size bits of `code` (every bit pattern names a size).
    pub const fn from_code(code: u8) -> Size {
        match code & BPF_SIZE_MASK {
            BPF_B => Size::B,
            BPF_H => Size::H,
            BPF_W => Size::W,
            _ => Size::DW,
        }
    }
}

/// A two-operand ALU operation.
///
/// Division and modulo are unsigned. The signed forms (`sdiv`/`smod`, encoded as `BPF_DIV`/`BPF_MOD`
/// with `off = 1`) only exist since the v4 instruction set of Linux 6.6, so rbt does not offer
/// them: older kernels reject the encoding, and the code generator lowers signed division itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
    /// Arithmetic (sign-propagating) right shift.
    Arsh,
}

impl AluOp {
    /// The operation bits of the opcode.
    pub const fn code(self) -> u8 {
        match self {
            AluOp::Add => BPF_ADD,
            AluOp::Sub => BPF_SUB,
            AluOp::Mul => BPF_MUL,
            AluOp::Div => BPF_DIV,
            AluOp::Or => BPF_OR,
            AluOp::And => BPF_AND,
            AluOp::Lsh => BPF_LSH,
            AluOp::Rsh => BPF_RSH,
            AluOp::Mod => BPF_MOD,
            AluOp::Xor => BPF_XOR,
            AluOp::Arsh => BPF_ARSH,
        }
    }
}

/// A conditional jump comparison. `S*` variants compare as signed integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpOp {
    Eq,
    Ne,
    /// Jump if `dst & operand` is non-zero.
    Set,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
}

impl JmpOp {
    /// The operation bits of the opcode.
    pub const fn code(self) -> u8 {
        match self {
            JmpOp::Eq => BPF_JEQ,
            JmpOp::Ne => BPF_JNE,
            JmpOp::Set => BPF_JSET,
            JmpOp::Gt => BPF_JGT,
            JmpOp::Ge => BPF_JGE,
            JmpOp::Lt => BPF_JLT,
            JmpOp::Le => BPF_JLE,
            JmpOp::Sgt => BPF_JSGT,
            JmpOp::Sge => BPF_JSGE,
            JmpOp::Slt => BPF_JSLT,
            JmpOp::Sle => BPF_JSLE,
        }
    }

    /// The comparison that holds exactly when this one does not, used to branch around a block.
    /// `Set` has no single-instruction inverse.
    pub const fn inverse(self) -> Option<JmpOp> {
        Some(match self {
            JmpOp::Eq => JmpOp::Ne,
            JmpOp::Ne => JmpOp::Eq,
            JmpOp::Set => return None,
            JmpOp::Gt => JmpOp::Le,
            JmpOp::Ge => JmpOp::Lt,
            JmpOp::Lt => JmpOp::Ge,
            JmpOp::Le => JmpOp::Gt,
            JmpOp::Sgt => JmpOp::Sle,
            JmpOp::Sge => JmpOp::Slt,
            JmpOp::Slt => JmpOp::Sge,
            JmpOp::Sle => JmpOp::Sgt,
        })
    }
}

/// The byte order a `BPF_END` instruction converts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Little,
    Big,
}

/// How many low bits of the register a `BPF_END` instruction converts (the rest are zeroed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwapBits {
    B16 = 16,
    B32 = 32,
    B64 = 64,
}
