//! Kernel types as the checker sees them: the catalog reads them from the kernel's BTF and hands
//! them over one level at a time (a pointer names its target by id), so that self-referential
//! structs such as `task_struct` never need to be built whole.

/// A type's id in the catalog's type table (the BTF type id for the kernel's BTF).
pub type KTypeId = u32;

/// Types from user binaries' DWARF (uprobes' `args`, casts to a binary's own structs) have ids
/// from here up to [`DWARF_TYPE_END`]; the kernel's BTF has far fewer types than this.
pub const DWARF_TYPE_BASE: KTypeId = 0x4000_0000;
/// The end of the DWARF range, where the script's own C types begin.
pub const DWARF_TYPE_END: KTypeId = 0x8000_0000;

/// One kernel type, with typedefs, `const`, `volatile` and `restrict` already looked through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KType {
    Void,
    /// An integer, `bool`, `char` or enum of `bytes` bytes.
    Int {
        bytes: u8,
        signed: bool,
        char: bool,
    },
    Pointer {
        to: KTypeId,
    },
    Array {
        elem: KTypeId,
        len: u32,
    },
    /// A struct or union (`name` with its tag, `struct task_struct`; empty when anonymous). Members
    /// of anonymous nested structs and unions are already flattened into `fields`, as C accesses
    /// them.
    Record {
        name: String,
        union: bool,
        size: u32,
        fields: Vec<KField>,
    },
    /// A function (pointed at by function pointers).
    Function,
    /// A struct or union only declared (`struct foo;`), floating point, or anything else rbt
    /// cannot read; `name` says what it is.
    Opaque {
        name: String,
        size: u32,
    },
}

/// A struct or union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KField {
    pub name: String,
    pub ty: KTypeId,
    /// From the start of the record, in bits.
    pub bit_offset: u32,
    /// A bitfield's width in bits; 0 when the member is not a bitfield.
    pub bits: u8,
}

/// A kernel function's signature, for `fentry`/`fexit` probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KFunction {
    pub name: String,
    /// The `BTF_KIND_FUNC` id the kernel attaches a tracing program to.
    pub btf_id: KTypeId,
    pub params: Vec<KParam>,
    /// `None` for `void` functions.
    pub ret: Option<KTypeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KParam {
    pub name: String,
    pub ty: KTypeId,
}

impl KType {
    /// Bytes a value of this type occupies, where the catalog can tell without looking further.
    pub fn own_size(&self) -> Option<u32> {
        match self {
            KType::Int { bytes, .. } => Some(u32::from(*bytes)),
            KType::Pointer { .. } => Some(8),
            KType::Record { size, .. } | KType::Opaque { size, .. } => Some(*size),
            KType::Void | KType::Function | KType::Array { .. } => None,
        }
    }
}
