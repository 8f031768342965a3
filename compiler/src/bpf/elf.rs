//! Writes BPF programs and map definitions as a relocatable ELF object that aya loads.
//!
//! The object has the shape clang gives a libbpf-style C program with legacy map definitions.
//! `readelf -S -s -r` of one with a tracepoint program using one map (abridged):
//!
//! ```text
//! [ 1] maps                                        PROGBITS  WA  28-byte bpf_map_def per map
//! [ 2] tracepoint/syscalls/sys_enter_getppid       PROGBITS  AX  the instructions
//! [ 3] .reltracepoint/syscalls/sys_enter_getppid   REL
//! [ 4] license                                     PROGBITS  WA  "GPL\0"
//! Relocation section '.reltracepoint/syscalls/sys_enter_getppid':
//!   Offset  Info          Type           Sym. Value  Sym. Name
//!   0x20    000100000001  R_BPF_INSN_64  0           AT_counts
//!   Num:  Value  Size  Type    Bind    Ndx  Name
//!     1:  0      28    OBJECT  GLOBAL  1    AT_counts
//!     2:  0      176   FUNC    GLOBAL  2    count_getppid
//! ```
//!
//! (`R_BPF_INSN_64` is readelf's name for `R_BPF_64_64`, type 1.)
//!
//! aya-obj (0.3) picks the program type from the section name's first `/`-separated piece, takes
//! each `FUNC` symbol of a program section as one program named after the symbol, makes one map per
//! symbol of the `maps` section named after the symbol, and patches the file descriptor of the map
//! a relocation's symbol names into the `ld_imm64` at the relocation's offset. There is no `.BTF`
//! section: aya needs an object's own BTF only for BTF-defined (`.maps`) maps and CO-RE
//! relocations, neither of which rbt emits; without one it loads the object silently.

use std::collections::HashSet;
use std::fmt;

use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

use super::insn::{encode, Insn, INSN_SIZE};

/// Size of the legacy `struct bpf_map_def { u32 type, key_size, value_size, max_entries,
/// map_flags, id, pinning }` that aya-obj reads from the `maps` section.
pub const MAP_DEF_SIZE: usize = 28;

/// Section prefixes aya-obj interprets by name, which a program section must therefore not use.
const RESERVED_SECTION_PREFIXES: [&str; 10] =
    ["maps", ".maps", "license", "version", ".text", ".data", ".rodata", ".bss", ".BTF", ".rel"];

/// A legacy map definition, one entry of the `maps` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMap {
    /// The symbol name: aya's key for the map (`Ebpf::map(name)`) and, cut to 15 bytes, the
    /// kernel's map name. Must be 1 or more of `[A-Za-z0-9_.]`, as the kernel rejects others.
    pub name: String,
    /// One of the `BPF_MAP_TYPE_*` constants.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// A reference from an instruction to a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapReloc {
    /// Index of the first slot of an `Insn::ld_map_fd` in the program.
    pub insn_index: usize,
    /// The [`ObjectMap::name`] of the map to load.
    pub map_name: String,
}

/// One program: its instructions go into an executable section called `section`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectProgram {
    /// The function symbol: aya's key for the program (`Ebpf::program_mut(name)`) and, cut to 15
    /// bytes, the kernel's program name. Same character rules as map names.
    pub name: String,
    /// The ELF section, which selects the program type, e.g. `tracepoint/syscalls/sys_enter_openat`,
    /// `kprobe/do_sys_open`, `perf_event`, `raw_tracepoint/sched_switch`, `uprobe`.
    pub section: String,
    pub insns: Vec<Insn>,
    pub map_relocs: Vec<MapReloc>,
}

/// Why an object could not be written. Each names the offending program or map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// A program or map name is empty or has a byte outside `[A-Za-z0-9_.]`.
    InvalidName { name: String },
    /// Two programs or maps (or a program and a map) share a name.
    DuplicateName { name: String },
    /// A program has no instructions.
    EmptyProgram { program: String },
    /// A program's section name is empty or one aya reads as something other than a program.
    InvalidSection { program: String, section: String },
    /// A relocation names a map that is not in the object.
    UnknownMap { program: String, map: String },
    /// A relocation does not point at the first slot of a complete `ld_imm64`.
    BadRelocation { program: String, insn_index: usize },
    /// The license contains a NUL byte.
    InvalidLicense,
    /// The `object` crate's writer failed.
    Write { message: String },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::InvalidName { name } => {
                write!(f, "invalid BPF object name {name:?}: names need one or more of A-Z, a-z, 0-9, '_' and '.'")
            }
            ElfError::DuplicateName { name } => {
                write!(f, "two programs or maps are both named {name:?}")
            }
            ElfError::EmptyProgram { program } => {
                write!(f, "program {program:?} has no instructions")
            }
            ElfError::InvalidSection { program, section } => {
                write!(f, "program {program:?} has an unusable section name {section:?}")
            }
            ElfError::UnknownMap { program, map } => {
                write!(f, "program {program:?} refers to unknown map {map:?}")
            }
            ElfError::BadRelocation { program, insn_index } => {
                write!(f, "map relocation in program {program:?} at instruction {insn_index} is not on an ld_imm64")
            }
            ElfError::InvalidLicense => write!(f, "the license string contains a NUL byte"),
            ElfError::Write { message } => write!(f, "cannot write the ELF object: {message}"),
        }
    }
}

impl std::error::Error for ElfError {}

impl From<object::write::Error> for ElfError {
    fn from(error: object::write::Error) -> ElfError {
        ElfError::Write { message: error.to_string() }
    }
}

/// Writes `programs` and `maps` as a relocatable little-endian `EM_BPF` ELF object.
///
/// Programs keep their order; two programs may share a section name (each gets its own section).
///
/// # Errors
///
/// An [`ElfError`] naming the first program or map that aya or the kernel would reject: a bad or
/// duplicate name, an empty program, a reserved section name, or a relocation that does not point
/// at an `ld_imm64` of a known map.
pub fn write_object(programs: &[ObjectProgram], maps: &[ObjectMap], license: &str) -> Result<Vec<u8>, ElfError> {
    validate(programs, maps, license)?;
    let mut object = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    let map_symbols = if maps.is_empty() { Vec::new() } else { add_maps(&mut object, maps) };
    for program in programs {
        add_program(&mut object, program, maps, &map_symbols)?;
    }

    let license_section = object.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    let mut license_bytes = license.as_bytes().to_vec();
    license_bytes.push(0);
    object.set_section_data(license_section, license_bytes, 1);

    Ok(object.write()?)
}

/// Checks everything aya or the kernel would otherwise reject later, or silently mishandle (aya
/// keys programs and maps by name, so a duplicate would replace the first one).
fn validate(programs: &[ObjectProgram], maps: &[ObjectMap], license: &str) -> Result<(), ElfError> {
    if license.contains('\0') {
        return Err(ElfError::InvalidLicense);
    }
    let mut names = HashSet::new();
    let all_names = programs.iter().map(|program| &program.name).chain(maps.iter().map(|map| &map.name));
    for name in all_names {
        if !is_valid_name(name) {
            return Err(ElfError::InvalidName { name: name.clone() });
        }
        if !names.insert(name.as_str()) {
            return Err(ElfError::DuplicateName { name: name.clone() });
        }
    }
    for program in programs {
        validate_program(program, maps)?;
    }
    Ok(())
}

fn validate_program(program: &ObjectProgram, maps: &[ObjectMap]) -> Result<(), ElfError> {
    if program.insns.is_empty() {
        return Err(ElfError::EmptyProgram { program: program.name.clone() });
    }
    let section = program.section.as_str();
    let reserved = RESERVED_SECTION_PREFIXES.iter().any(|prefix| section.starts_with(prefix));
    if section.is_empty() || section.contains('\0') || reserved {
        return Err(ElfError::InvalidSection { program: program.name.clone(), section: program.section.clone() });
    }
    for reloc in &program.map_relocs {
        if !maps.iter().any(|map| map.name == reloc.map_name) {
            return Err(ElfError::UnknownMap { program: program.name.clone(), map: reloc.map_name.clone() });
        }
        let first = program.insns.get(reloc.insn_index);
        let complete = reloc.insn_index + 1 < program.insns.len();
        if !complete || !first.is_some_and(|insn| insn.is_ld_imm64()) {
            return Err(ElfError::BadRelocation { program: program.name.clone(), insn_index: reloc.insn_index });
        }
    }
    Ok(())
}

/// Whether the kernel accepts `name` as a map or program name (`bpf_obj_name_cpy` allows only
/// alphanumerics, `_` and `.`); aya cuts names to the kernel's 15 bytes itself.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.')
}

/// Adds the `maps` section with one definition and one global object symbol per map, returning
/// the symbols in the order of `maps`.
fn add_maps(object: &mut Object<'_>, maps: &[ObjectMap]) -> Vec<SymbolId> {
    let section = object.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
    let mut data = Vec::with_capacity(maps.len() * MAP_DEF_SIZE);
    let mut symbols = Vec::with_capacity(maps.len());
    for map in maps {
        let offset = data.len() as u64;
        // `id` and `pinning` stay 0: no inner-map id, and no pinning (aya's `PinningType::None`).
        let fields = [map.map_type, map.key_size, map.value_size, map.max_entries, map.flags, 0, 0];
        data.extend(fields.iter().flat_map(|field| field.to_le_bytes()));
        symbols.push(object.add_symbol(Symbol {
            name: map.name.as_bytes().to_vec(),
            value: offset,
            size: MAP_DEF_SIZE as u64,
            kind: SymbolKind::Data,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        }));
    }
    object.set_section_data(section, data, 4);
    symbols
}

/// Adds a program's section, its function symbol and its map relocations.
fn add_program(
    object: &mut Object<'_>,
    program: &ObjectProgram,
    maps: &[ObjectMap],
    map_symbols: &[SymbolId],
) -> Result<(), ElfError> {
    let section: SectionId = object.add_section(Vec::new(), program.section.as_bytes().to_vec(), SectionKind::Text);
    let code = encode(&program.insns);
    let size = code.len() as u64;
    object.set_section_data(section, code, INSN_SIZE as u64);
    object.add_symbol(Symbol {
        name: program.name.as_bytes().to_vec(),
        value: 0,
        size,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
    for reloc in &program.map_relocs {
        let symbol = maps
            .iter()
            .position(|map| map.name == reloc.map_name)
            .and_then(|index| map_symbols.get(index))
            .ok_or_else(|| ElfError::UnknownMap { program: program.name.clone(), map: reloc.map_name.clone() })?;
        object.add_relocation(
            section,
            Relocation {
                offset: (reloc.insn_index * INSN_SIZE) as u64,
                symbol: *symbol,
                addend: 0,
                flags: RelocationFlags::Elf { r_type: elf::R_BPF_64_64 },
            },
        )?;
    }
    Ok(())
}
