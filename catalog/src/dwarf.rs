//! Functions' parameters read from a binary's DWARF, as bpftrace 0.17 reads them with libdw for
//! `-lv uprobe:BIN:FUNC`: each `DW_TAG_formal_parameter` of the function's `DW_TAG_subprogram`,
//! its type written as bpftrace writes it (`int* n`, `struct Foo* foo1`, `char** argv`,
//! `char const* s` for a const pointer's target, `<unknown type>` for what it does not name).
//! Read with gimli, from the bytes the catalog hands over.
//!
//! `types.rs` holds a binary's types and functions for the checker (uprobes' `args`, casts to
//! the binary's structs), `read.rs` builds them from the DIEs.

mod lines;
mod locals;
mod read;
mod types;

pub use lines::{function_lines, line_addresses, statement_lines};
pub use locals::{
    variables_and_where_readable, variables_at_each, Base as LocationBase, Computed, ComputedOp, Location,
};
pub use types::{DwarfCache, DwarfTypes};

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, DwAt, EndianSlice, LittleEndian, Unit, UnitOffset};
use object::{Object, ObjectSection};

type Reader<'a> = EndianSlice<'a, LittleEndian>;

/// How deep type chains (`const char * const *`...) and origins are followed; DWARF from a
/// compiler never nests this far, a corrupt file might loop.
const MAX_DEPTH: u32 = 32;

/// The parameters of every function a binary's DWARF describes, by name: `TYPE NAME` lines, in
/// order. A name described twice (a function in several compilation units) keeps the first, as
/// libdw's search in bpftrace finds it.
pub struct FunctionParams {
    by_name: HashMap<String, Vec<String>>,
}

impl FunctionParams {
    /// The functions of the ELF binary `data`; `None` when it has no DWARF (no compilation
    /// units), which is what bpftrace warns about.
    pub fn read(data: &[u8]) -> Option<FunctionParams> {
        with_dwarf(data, |dwarf| {
            let mut by_name = HashMap::new();
            let mut units = dwarf.units();
            let mut any = false;
            while let Ok(Some(header)) = units.next() {
                let Ok(unit) = dwarf.unit(header) else { continue };
                any = true;
                collect_functions(dwarf, &unit, &mut by_name);
            }
            any.then_some(FunctionParams { by_name })
        })?
    }

    /// `TYPE NAME` for each parameter of `function`; empty when DWARF does not describe it.
    pub fn of(&self, function: &str) -> &[String] {
        self.by_name.get(function).map_or(&[], Vec::as_slice)
    }
}

/// Runs `f` over the DWARF sections of the ELF binary `data` (sections it lacks read as empty);
/// `None` when `data` is no object file.
fn with_dwarf<T>(data: &[u8], f: impl FnOnce(&gimli::Dwarf<Reader<'_>>) -> T) -> Option<T> {
    let file = object::File::parse(data).ok()?;
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, gimli::Error> {
        Ok(file.section_by_name(id.name()).and_then(|section| section_bytes(&section)).unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load).ok()?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, LittleEndian));
    Some(f(&dwarf))
}

/// A section's bytes, inflated when it is compressed with zlib (`SHF_COMPRESSED`, as Debian's
/// `-dbg` files are); `None` for another compression or a damaged section.
fn section_bytes<'a>(section: &object::Section<'a, '_>) -> Option<Cow<'a, [u8]>> {
    use std::io::Read;
    let compressed = section.compressed_data().ok()?;
    match compressed.format {
        object::CompressionFormat::None => Some(Cow::Borrowed(compressed.data)),
        object::CompressionFormat::Zlib => {
            // The header's size bounds what is kept, whatever the stream holds.
            let size = usize::try_from(compressed.uncompressed_size).ok()?;
            let mut out = Vec::with_capacity(size.min(1 << 30));
            flate2::read::ZlibDecoder::new(compressed.data).take(size as u64).read_to_end(&mut out).ok()?;
            Some(Cow::Owned(out))
        }
        _ => None,
    }
}

/// Adds the subprograms directly under the unit's root (those `dwarf_getfuncs` visits).
fn collect_functions(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &Unit<Reader<'_>>,
    out: &mut HashMap<String, Vec<String>>,
) {
    let Ok(mut tree) = unit.entries_tree(None) else { return };
    let Ok(root) = tree.root() else { return };
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let entry = child.entry();
        if entry.tag() != gimli::DW_TAG_subprogram {
            continue;
        }
        let Some(name) = name_of(dwarf, unit, entry.offset()) else { continue };
        if out.contains_key(&name) {
            continue;
        }
        let mut params = Vec::new();
        let mut grandchildren = child.children();
        while let Ok(Some(param)) = grandchildren.next() {
            let entry = param.entry();
            if entry.tag() != gimli::DW_TAG_formal_parameter {
                continue;
            }
            let name = name_of(dwarf, unit, entry.offset()).unwrap_or_default();
            let ty = match integrated(unit, entry.offset(), gimli::DW_AT_type) {
                Some(AttributeValue::UnitRef(ty)) => type_name(dwarf, unit, ty, 0),
                _ => "<unknown type>".to_owned(),
            };
            params.push(format!("{ty} {name}"));
        }
        out.insert(name, params);
    }
}

/// An attribute of the entry at `offset`, or of the entry its `DW_AT_abstract_origin` or
/// `DW_AT_specification` names (libdw's `dwarf_attr_integrate`).
fn integrated<'a>(unit: &Unit<Reader<'a>>, mut offset: UnitOffset, at: DwAt) -> Option<AttributeValue<Reader<'a>>> {
    for _ in 0..MAX_DEPTH {
        let entry = unit.entry(offset).ok()?;
        if let Some(value) = entry.attr_value(at) {
            return Some(value);
        }
        let origin =
            [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification].into_iter().find_map(|link| {
                match entry.attr_value(link) {
                    Some(AttributeValue::UnitRef(origin)) => Some(origin),
                    _ => None,
                }
            })?;
        offset = origin;
    }
    None
}

fn name_of(dwarf: &gimli::Dwarf<Reader<'_>>, unit: &Unit<Reader<'_>>, offset: UnitOffset) -> Option<String> {
    let value = integrated(unit, offset, gimli::DW_AT_name)?;
    let name = dwarf.attr_string(unit, value).ok()?;
    Some(name.to_string_lossy().into_owned())
}

/// A type as bpftrace 0.17's `Dwarf::get_type_name` writes it.
fn type_name(dwarf: &gimli::Dwarf<Reader<'_>>, unit: &Unit<Reader<'_>>, offset: UnitOffset, depth: u32) -> String {
    const UNKNOWN: &str = "<unknown type>";
    let Ok(entry) = unit.entry(offset) else { return UNKNOWN.into() };
    if depth > MAX_DEPTH {
        return UNKNOWN.into();
    }
    let inner = || match entry.attr_value(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(inner)) => Some(inner),
        _ => None,
    };
    let name = || name_of(dwarf, unit, offset);
    match entry.tag() {
        gimli::DW_TAG_base_type | gimli::DW_TAG_typedef => name().unwrap_or_default(),
        gimli::DW_TAG_pointer_type => match inner() {
            Some(inner) => format!("{}*", type_name(dwarf, unit, inner, depth + 1)),
            None => "void*".into(),
        },
        tag @ (gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_enumeration_type) => {
            let prefix = match tag {
                gimli::DW_TAG_structure_type => "struct",
                gimli::DW_TAG_union_type => "union",
                _ => "enum",
            };
            format!("{prefix} {}", name().unwrap_or_else(|| "<anonymous>".into()))
        }
        gimli::DW_TAG_const_type => {
            let Some(inner) = inner() else { return UNKNOWN.into() };
            let pointer = unit.entry(inner).is_ok_and(|e| e.tag() == gimli::DW_TAG_pointer_type);
            let text = type_name(dwarf, unit, inner, depth + 1);
            if pointer {
                format!("{text} const")
            } else {
                format!("const {text}")
            }
        }
        _ => UNKNOWN.into(),
    }
}

#[cfg(test)]
mod tests;
