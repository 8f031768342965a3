//! A binary's DWARF types as the checker sees kernel types: [`DwarfTypes`] answers one type at a
//! time as a [`KType`] whose references are ids, so a struct pointing at itself is never built
//! whole. Each binary's table gets a range of ids of its own from [`DWARF_TYPE_BASE`] up
//! ([`DwarfCache`]), apart from BTF's ids below it and the script's above.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use compiler::ktypes::{KField, KFunction, KParam, KType, KTypeId, DWARF_TYPE_BASE, DWARF_TYPE_END};

/// How deep typedef chains and anonymous members are followed; DWARF from a compiler never nests
/// this far, a corrupt file might loop.
const MAX_DEPTH: u32 = 32;

/// The index of `void` in every table (a pointer without a target points at it).
pub(super) const VOID: u32 = 0;
/// The index of the type standing for references DWARF does not resolve.
pub(super) const UNKNOWN: u32 = 1;

/// What a base type's `DW_AT_encoding` says, as far as reading it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Signed,
    Unsigned,
    SignedChar,
    UnsignedChar,
    Bool,
    /// Floating point, decimal, complex: rbt cannot read them.
    Other,
}

/// One type DIE, references as indices into the same table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    Void,
    Base {
        name: String,
        bytes: u32,
        encoding: Encoding,
    },
    /// `name` with its tag: `enum E`.
    Enum {
        name: String,
        bytes: u32,
    },
    Pointer {
        to: u32,
    },
    /// A typedef (`name`) or a qualifier (`const`, `volatile`, ...), looked through.
    Alias {
        name: Option<String>,
        qualifier: Option<&'static str>,
        to: u32,
    },
    /// `name` with its tag (`struct Foo`, `union <anonymous>`); `size` is `None` for a struct
    /// only declared.
    Record {
        union: bool,
        name: String,
        anonymous: bool,
        size: Option<u32>,
        members: Vec<Member>,
    },
    Array {
        elem: u32,
        len: u32,
    },
    Function,
    Unknown {
        name: String,
    },
}

/// A struct or union member as DWARF places it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Member {
    /// `None` for an anonymous struct or union, whose members C reaches directly.
    pub name: Option<String>,
    pub ty: u32,
    /// From the start of the record: `DW_AT_data_member_location` in bits, or a bitfield's
    /// `DW_AT_data_bit_offset`.
    pub bit_offset: u32,
    /// A bitfield's width; 0 when the member is not one.
    pub bits: u8,
    /// A bitfield placed the DWARF 2/3 way: `DW_AT_bit_offset` counts from the most significant
    /// bit of a storage unit of `DW_AT_byte_size` bytes (the member type's size when absent).
    pub legacy_bit_offset: Option<(u32, Option<u32>)>,
}

/// A function's parameters (name, type) and return type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Function {
    pub params: Vec<(String, u32)>,
    pub ret: Option<u32>,
}

/// The types and functions one binary's DWARF describes.
#[derive(Debug, Default)]
pub struct DwarfTypes {
    pub(super) entries: Vec<Entry>,
    /// `struct Foo`, `union U`, `enum E` as the compilation units' top level defines them.
    pub(super) names: HashMap<String, u32>,
    /// Functions by name (the first description of a name, as libdw's search finds it).
    pub(super) functions: HashMap<String, Function>,
    /// The table index of each type DIE, by `.debug_info` offset.
    pub(super) by_offset: HashMap<usize, u32>,
}

impl DwarfTypes {
    /// The table of the ELF binary `data`; `None` when it has no DWARF.
    pub fn read(data: &[u8]) -> Option<DwarfTypes> {
        super::read::read(data)
    }

    fn len(&self) -> u32 {
        u32::try_from(self.entries.len()).unwrap_or(u32::MAX)
    }

    /// The table index of the type DIE at `.debug_info` offset `offset`.
    pub fn index_at_offset(&self, offset: usize) -> Option<u32> {
        self.by_offset.get(&offset).copied()
    }

    /// The name of the type whose DIE is at `.debug_info` offset `offset` (`<unknown type>`
    /// for one the table does not hold).
    pub fn name_at_offset(&self, offset: Option<usize>) -> String {
        match offset {
            None => self.name(VOID),
            Some(offset) => self.name(self.by_offset.get(&offset).copied().unwrap_or(UNKNOWN)),
        }
    }

    /// The index of a record, enum or typedef name at the top of a compilation unit.
    pub fn named(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// `function`'s signature with ids counted from `base`; empty when DWARF does not describe
    /// it (bpftrace then finds no parameter of that name).
    pub fn function(&self, base: KTypeId, function: &str) -> KFunction {
        let f = self.functions.get(function).cloned().unwrap_or_default();
        KFunction {
            name: function.to_owned(),
            btf_id: 0,
            params: f.params.into_iter().map(|(name, ty)| KParam { name, ty: base + ty }).collect(),
            ret: f.ret.map(|ty| base + ty),
        }
    }

    /// The entry `index` stands for: typedefs and qualifiers looked through, a declared struct
    /// replaced by its definition when another compilation unit has one.
    fn peel(&self, mut index: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            match self.entries.get(index as usize) {
                Some(Entry::Alias { to, .. }) => index = *to,
                Some(Entry::Record { size: None, name, anonymous: false, .. }) => {
                    return self.named(name).unwrap_or(index);
                }
                _ => return index,
            }
        }
        UNKNOWN
    }

    /// The type at `index` as the checker sees it, its references counted from `base`.
    pub fn get(&self, base: KTypeId, index: u32) -> Option<KType> {
        let index = self.peel(index);
        Some(match self.entries.get(index as usize)? {
            Entry::Void => KType::Void,
            Entry::Base { name, bytes, encoding } => {
                let bytes = u8::try_from(*bytes).unwrap_or(0);
                match encoding {
                    Encoding::Signed | Encoding::SignedChar => {
                        KType::Int { bytes, signed: true, char: *encoding == Encoding::SignedChar }
                    }
                    Encoding::Unsigned | Encoding::UnsignedChar | Encoding::Bool => {
                        KType::Int { bytes, signed: false, char: *encoding == Encoding::UnsignedChar }
                    }
                    Encoding::Other => KType::Opaque { name: name.clone(), size: u32::from(bytes) },
                }
            }
            // bpftrace 0.17 reads enums as unsigned integers.
            Entry::Enum { bytes, .. } => {
                KType::Int { bytes: u8::try_from(*bytes).unwrap_or(0), signed: false, char: false }
            }
            Entry::Pointer { to } => KType::Pointer { to: base + to },
            Entry::Record { name, size: None, .. } => KType::Opaque { name: name.clone(), size: 0 },
            Entry::Record { union, name, anonymous, size: Some(size), members } => {
                let mut fields = Vec::new();
                self.flatten(base, members, 0, &mut fields, 0);
                let name = if *anonymous { String::new() } else { name.clone() };
                KType::Record { name, union: *union, size: *size, fields }
            }
            Entry::Array { elem, len } => KType::Array { elem: base + elem, len: *len },
            Entry::Function => KType::Function,
            Entry::Alias { .. } | Entry::Unknown { .. } => KType::Opaque { name: self.name(index), size: 0 },
        })
    }

    /// A record's members with those of anonymous members raised into it, as C reaches them.
    fn flatten(&self, base: KTypeId, members: &[Member], base_bits: u32, out: &mut Vec<KField>, depth: u32) {
        for m in members {
            let bit_offset = base_bits + self.member_bit_offset(m);
            let Some(name) = &m.name else {
                if let (Some(Entry::Record { members: inner, .. }), true) =
                    (self.entries.get(self.peel(m.ty) as usize), depth < MAX_DEPTH)
                {
                    self.flatten(base, inner, bit_offset, out, depth + 1);
                }
                continue;
            };
            out.push(KField { name: name.clone(), ty: base + m.ty, bit_offset, bits: m.bits });
        }
    }

    fn member_bit_offset(&self, m: &Member) -> u32 {
        match m.legacy_bit_offset {
            // The storage unit's most significant bit is the highest-addressed one here.
            Some((from_msb, storage)) => {
                let storage_bits = storage.or_else(|| self.size(m.ty)).unwrap_or(4) * 8;
                let within = storage_bits.saturating_sub(from_msb + u32::from(m.bits));
                m.bit_offset + within
            }
            None => m.bit_offset,
        }
    }

    /// A type's C name, written as the kernel's BTF types are: `struct Foo`, `int *`,
    /// `const char`, a typedef's own name.
    pub fn name(&self, index: u32) -> String {
        self.name_at(index, 0)
    }

    fn name_at(&self, index: u32, depth: u32) -> String {
        if depth > MAX_DEPTH {
            return "...".into();
        }
        match self.entries.get(index as usize) {
            None => format!("type {index}"),
            Some(Entry::Void) => "void".into(),
            Some(Entry::Base { name, .. } | Entry::Enum { name, .. } | Entry::Record { name, .. }) => name.clone(),
            Some(Entry::Unknown { name }) => name.clone(),
            Some(Entry::Pointer { to }) => {
                let to = self.name_at(*to, depth + 1);
                if to.ends_with('*') {
                    format!("{to}*")
                } else {
                    format!("{to} *")
                }
            }
            Some(Entry::Alias { name: Some(name), .. }) => name.clone(),
            Some(Entry::Alias { name: None, qualifier, to }) => match qualifier {
                // `const` on an array of `const char` says it once, as C does.
                Some(q) => {
                    let to = self.name_at(*to, depth + 1);
                    if to.starts_with(&format!("{q} ")) {
                        to
                    } else {
                        format!("{q} {to}")
                    }
                }
                None => self.name_at(*to, depth + 1),
            },
            Some(Entry::Array { elem, len }) => format!("{}[{len}]", self.name_at(*elem, depth + 1)),
            Some(Entry::Function) => "function".into(),
        }
    }

    /// A type's size in bytes (arrays included); `None` for `void`, functions and declarations.
    pub fn size(&self, index: u32) -> Option<u32> {
        let mut index = self.peel(index);
        let mut count = 1u32;
        for _ in 0..MAX_DEPTH {
            match self.entries.get(index as usize)? {
                Entry::Base { bytes, .. } | Entry::Enum { bytes, .. } => return count.checked_mul(*bytes),
                Entry::Pointer { .. } => return count.checked_mul(8),
                Entry::Record { size, .. } => return count.checked_mul((*size)?),
                Entry::Array { elem, len } => {
                    count = count.checked_mul(*len)?;
                    index = self.peel(*elem);
                }
                _ => return None,
            }
        }
        None
    }
}

/// The DWARF tables of the binaries a program's uprobes name, read once each, with their id
/// ranges: the table with base `b` answers ids `b..b + len`.
#[derive(Default)]
pub struct DwarfCache {
    loaded: Mutex<Vec<Loaded>>,
}

struct Loaded {
    path: String,
    base: KTypeId,
    types: Option<Arc<DwarfTypes>>,
}

impl fmt::Debug for DwarfCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list().entries(loaded.iter().map(|l| (&l.path, l.base, l.types.is_some()))).finish()
    }
}

impl DwarfCache {
    /// The table of the binary at `path` and its base id; `read` gives the binary's bytes the
    /// first time. `None` when the binary has no DWARF (or cannot be read).
    pub fn of(&self, path: &str, read: impl FnOnce() -> Option<Vec<u8>>) -> Option<(KTypeId, Arc<DwarfTypes>)> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = loaded.iter().find(|l| l.path == path) {
            return l.types.clone().map(|t| (l.base, t));
        }
        let base = loaded.last().map_or(DWARF_TYPE_BASE, |l| l.base + l.types.as_ref().map_or(0, |t| t.len()));
        let types = read()
            .and_then(|data| DwarfTypes::read(&data))
            .filter(|t| base.checked_add(t.len()).is_some_and(|end| end <= DWARF_TYPE_END))
            .map(Arc::new);
        loaded.push(Loaded { path: path.to_owned(), base, types: types.clone() });
        types.map(|t| (base, t))
    }

    /// The table an id belongs to, with its base; `None` for ids outside every table.
    pub fn by_id(&self, id: KTypeId) -> Option<(KTypeId, Arc<DwarfTypes>)> {
        if !(DWARF_TYPE_BASE..DWARF_TYPE_END).contains(&id) {
            return None;
        }
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.iter().find_map(|l| {
            let types = l.types.as_ref()?;
            (l.base..l.base + types.len()).contains(&id).then(|| (l.base, types.clone()))
        })
    }
}
