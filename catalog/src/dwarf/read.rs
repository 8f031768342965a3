//! Builds a [`DwarfTypes`] table from a binary's DWARF: one walk over every compilation unit's
//! DIEs collects the type DIEs (with their members and array bounds) and the top-level
//! functions' parameters, referring to other DIEs by `.debug_info` offset; a second step turns
//! those offsets into table indices, once every unit has been read.

use std::collections::HashMap;

use gimli::{AttributeValue, DebuggingInformationEntry, Unit};

use super::types::{DwarfTypes, Encoding, Entry, Function, Member, UNKNOWN, VOID};
use super::{integrated, name_of, with_dwarf, Reader};

/// A type DIE as read, referring to others by `.debug_info` offset (`None`: `void`).
enum Raw {
    Final(Entry),
    Pointer(Option<usize>),
    Alias { name: Option<String>, qualifier: Option<&'static str>, to: Option<usize> },
    Record { union: bool, name: String, anonymous: bool, size: Option<u32>, members: Vec<RawMember> },
    Array { elem: Option<usize>, dims: Vec<u32> },
}

struct RawMember {
    name: Option<String>,
    ty: Option<usize>,
    bit_offset: u32,
    bits: u8,
    legacy_bit_offset: Option<(u32, Option<u32>)>,
}

/// What the walk is inside of: the DIEs whose children it collects.
enum Container {
    Record(usize),
    Array(usize),
    Function(String),
}

#[derive(Default)]
struct Walk {
    raw: Vec<Raw>,
    /// Table index of each type DIE, by `.debug_info` offset.
    index: HashMap<usize, u32>,
    names: HashMap<String, u32>,
    functions: HashMap<String, RawFunction>,
}

/// A function's parameters (name, type offset) and return type offset, as read.
type RawFunction = (Vec<(String, Option<usize>)>, Option<usize>);

pub(super) fn read(data: &[u8]) -> Option<DwarfTypes> {
    with_dwarf(data, |dwarf| {
        let mut walk = Walk::default();
        walk.raw.push(Raw::Final(Entry::Void));
        walk.raw.push(Raw::Final(Entry::Unknown { name: "<unknown type>".into() }));
        let mut units = dwarf.units();
        let mut any = false;
        while let Ok(Some(header)) = units.next() {
            let Ok(unit) = dwarf.unit(header) else { continue };
            any = true;
            walk.unit(dwarf, &unit);
        }
        any.then(|| walk.finish())
    })?
}

/// The `.debug_info` offset a `DW_AT_type` (or other reference) names.
fn reference(unit: &Unit<Reader<'_>>, value: Option<AttributeValue<Reader<'_>>>) -> Option<usize> {
    match value? {
        AttributeValue::UnitRef(offset) => offset.to_debug_info_offset(&unit.header).map(|o| o.0),
        AttributeValue::DebugInfoRef(offset) => Some(offset.0),
        _ => None,
    }
}

fn udata(entry: &DebuggingInformationEntry<Reader<'_>>, at: gimli::DwAt) -> Option<u64> {
    entry.attr(at).and_then(|a| a.udata_value())
}

fn small(value: Option<u64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

/// `DW_AT_data_member_location` in bytes: a constant, or the `DW_OP_plus_uconst N` expression
/// older compilers write.
fn member_location(entry: &DebuggingInformationEntry<Reader<'_>>) -> u32 {
    match entry.attr_value(gimli::DW_AT_data_member_location) {
        Some(AttributeValue::Exprloc(expr)) => {
            let mut bytes = expr.0;
            match gimli::Reader::read_u8(&mut bytes) {
                Ok(op) if op == gimli::DW_OP_plus_uconst.0 => {
                    small(gimli::Reader::read_uleb128(&mut bytes).ok()).unwrap_or(0)
                }
                _ => 0,
            }
        }
        _ => small(udata(entry, gimli::DW_AT_data_member_location)).unwrap_or(0),
    }
}

impl Walk {
    fn unit(&mut self, dwarf: &gimli::Dwarf<Reader<'_>>, unit: &Unit<Reader<'_>>) {
        let mut cursor = unit.entries();
        let mut containers: Vec<(isize, Container)> = Vec::new();
        while let Ok(Some(entry)) = cursor.next_dfs() {
            let depth = entry.depth();
            while containers.last().is_some_and(|(d, _)| *d >= depth) {
                containers.pop();
            }
            let parent = containers.last().filter(|(d, _)| *d == depth - 1).map(|(_, c)| c);
            match (entry.tag(), parent) {
                (gimli::DW_TAG_member, Some(Container::Record(at))) => {
                    let member = self.member(dwarf, unit, entry);
                    if let Raw::Record { members, .. } = &mut self.raw[*at] {
                        members.push(member);
                    }
                }
                (gimli::DW_TAG_subrange_type, Some(Container::Array(at))) => {
                    let len = match (udata(entry, gimli::DW_AT_count), entry.attr_value(gimli::DW_AT_upper_bound)) {
                        (Some(count), _) => count,
                        (None, Some(AttributeValue::Sdata(upper))) => u64::try_from(upper + 1).unwrap_or(0),
                        (None, Some(_)) => udata(entry, gimli::DW_AT_upper_bound).map_or(0, |u| u + 1),
                        // A flexible array member: no elements of its own.
                        (None, None) => 0,
                    };
                    if let Raw::Array { dims, .. } = &mut self.raw[*at] {
                        dims.push(u32::try_from(len).unwrap_or(u32::MAX));
                    }
                }
                (gimli::DW_TAG_formal_parameter, Some(Container::Function(name))) => {
                    let param = name_of(dwarf, unit, entry.offset()).unwrap_or_default();
                    let ty = reference(unit, integrated(unit, entry.offset(), gimli::DW_AT_type));
                    if let Some((params, _)) = self.functions.get_mut(name) {
                        params.push((param, ty));
                    }
                }
                (gimli::DW_TAG_subprogram, _) if depth == 1 => {
                    let Some(name) = name_of(dwarf, unit, entry.offset()) else { continue };
                    if self.functions.contains_key(&name) {
                        continue;
                    }
                    let ret = reference(unit, integrated(unit, entry.offset(), gimli::DW_AT_type));
                    self.functions.insert(name.clone(), (Vec::new(), ret));
                    containers.push((depth, Container::Function(name)));
                }
                (tag, _) => {
                    let Some(raw) = self.type_die(dwarf, unit, entry, tag) else { continue };
                    let at = self.raw.len();
                    let Some(offset) = entry.offset().to_debug_info_offset(&unit.header) else { continue };
                    self.index.insert(offset.0, u32::try_from(at).unwrap_or(UNKNOWN));
                    if depth == 1 {
                        self.name_top_level(&raw, at);
                    }
                    match raw {
                        Raw::Record { .. } => containers.push((depth, Container::Record(at))),
                        Raw::Array { .. } => containers.push((depth, Container::Array(at))),
                        _ => {}
                    }
                    self.raw.push(raw);
                }
            }
        }
    }

    /// Names a record or enum defined at the top of a unit, a definition winning over a
    /// declaration of the same name.
    fn name_top_level(&mut self, raw: &Raw, at: usize) {
        let (name, defined) = match raw {
            Raw::Record { name, anonymous: false, size, .. } => (name, size.is_some()),
            Raw::Final(Entry::Enum { name, .. }) if !name.ends_with("<anonymous>") => (name, true),
            _ => return,
        };
        let at = u32::try_from(at).unwrap_or(UNKNOWN);
        match self.names.get(name) {
            Some(&existing) if !defined || self.is_defined(existing) => {}
            _ => {
                self.names.insert(name.clone(), at);
            }
        }
    }

    fn is_defined(&self, at: u32) -> bool {
        !matches!(self.raw.get(at as usize), Some(Raw::Record { size: None, .. }))
    }

    fn type_die(
        &self,
        dwarf: &gimli::Dwarf<Reader<'_>>,
        unit: &Unit<Reader<'_>>,
        entry: &DebuggingInformationEntry<Reader<'_>>,
        tag: gimli::DwTag,
    ) -> Option<Raw> {
        let name = || name_of(dwarf, unit, entry.offset());
        let to = || reference(unit, entry.attr_value(gimli::DW_AT_type));
        let bytes = || small(udata(entry, gimli::DW_AT_byte_size)).unwrap_or(0);
        let tagged = |tag: &str| match name() {
            Some(name) => (format!("{tag} {name}"), false),
            None => (format!("{tag} <anonymous>"), true),
        };
        Some(match tag {
            gimli::DW_TAG_base_type => {
                let encoding = match entry.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(e)) => match e {
                        gimli::DW_ATE_signed => Encoding::Signed,
                        gimli::DW_ATE_unsigned => Encoding::Unsigned,
                        gimli::DW_ATE_signed_char => Encoding::SignedChar,
                        gimli::DW_ATE_unsigned_char => Encoding::UnsignedChar,
                        gimli::DW_ATE_boolean => Encoding::Bool,
                        _ => Encoding::Other,
                    },
                    _ => Encoding::Other,
                };
                Raw::Final(Entry::Base { name: name().unwrap_or_default(), bytes: bytes(), encoding })
            }
            gimli::DW_TAG_enumeration_type => Raw::Final(Entry::Enum { name: tagged("enum").0, bytes: bytes() }),
            gimli::DW_TAG_pointer_type => Raw::Pointer(to()),
            gimli::DW_TAG_typedef => Raw::Alias { name: name(), qualifier: None, to: to() },
            gimli::DW_TAG_const_type => Raw::Alias { name: None, qualifier: Some("const"), to: to() },
            gimli::DW_TAG_volatile_type => Raw::Alias { name: None, qualifier: Some("volatile"), to: to() },
            gimli::DW_TAG_restrict_type | gimli::DW_TAG_atomic_type => {
                Raw::Alias { name: None, qualifier: None, to: to() }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                let union = tag == gimli::DW_TAG_union_type;
                let (name, anonymous) = tagged(if union { "union" } else { "struct" });
                let declaration =
                    matches!(entry.attr_value(gimli::DW_AT_declaration), Some(AttributeValue::Flag(true)));
                let size = if declaration { None } else { Some(bytes()) };
                Raw::Record { union, name, anonymous, size, members: Vec::new() }
            }
            gimli::DW_TAG_array_type => Raw::Array { elem: to(), dims: Vec::new() },
            gimli::DW_TAG_subroutine_type => Raw::Final(Entry::Function),
            gimli::DW_TAG_unspecified_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type
            | gimli::DW_TAG_ptr_to_member_type => {
                Raw::Final(Entry::Unknown { name: name().unwrap_or_else(|| "<unknown type>".into()) })
            }
            _ => return None,
        })
    }

    fn member(
        &self,
        dwarf: &gimli::Dwarf<Reader<'_>>,
        unit: &Unit<Reader<'_>>,
        entry: &DebuggingInformationEntry<Reader<'_>>,
    ) -> RawMember {
        let bits = small(udata(entry, gimli::DW_AT_bit_size)).and_then(|b| u8::try_from(b).ok()).unwrap_or(0);
        let location = member_location(entry).saturating_mul(8);
        let (bit_offset, legacy_bit_offset) =
            match (small(udata(entry, gimli::DW_AT_data_bit_offset)), small(udata(entry, gimli::DW_AT_bit_offset))) {
                (Some(data_bit_offset), _) => (data_bit_offset, None),
                (None, Some(from_msb)) if bits > 0 => {
                    (location, Some((from_msb, small(udata(entry, gimli::DW_AT_byte_size)))))
                }
                _ => (location, None),
            };
        RawMember {
            name: name_of(dwarf, unit, entry.offset()),
            ty: reference(unit, entry.attr_value(gimli::DW_AT_type)),
            bit_offset,
            bits,
            legacy_bit_offset,
        }
    }

    /// The table: offsets turned into indices, arrays of several dimensions into arrays of
    /// arrays (the extra levels appended at the end).
    fn finish(self) -> DwarfTypes {
        let Walk { raw, index, names, functions } = self;
        let resolve = |offset: Option<usize>| match offset {
            None => VOID,
            Some(offset) => index.get(&offset).copied().unwrap_or(UNKNOWN),
        };
        let mut entries = Vec::with_capacity(raw.len());
        let mut extra = Vec::new();
        let first_extra = raw.len();
        for r in raw {
            entries.push(match r {
                Raw::Final(entry) => entry,
                Raw::Pointer(to) => Entry::Pointer { to: resolve(to) },
                Raw::Alias { name, qualifier, to } => Entry::Alias { name, qualifier, to: resolve(to) },
                Raw::Record { union, name, anonymous, size, members } => {
                    let members = members
                        .into_iter()
                        .map(|m| Member {
                            name: m.name,
                            ty: resolve(m.ty),
                            bit_offset: m.bit_offset,
                            bits: m.bits,
                            legacy_bit_offset: m.legacy_bit_offset,
                        })
                        .collect();
                    Entry::Record { union, name, anonymous, size, members }
                }
                Raw::Array { elem, dims } => {
                    // `int a[2][3]`: an array of 2 arrays of 3, the inner levels made here.
                    let mut elem = resolve(elem);
                    for &len in dims.iter().skip(1).rev() {
                        extra.push(Entry::Array { elem, len });
                        elem = u32::try_from(first_extra + extra.len() - 1).unwrap_or(UNKNOWN);
                    }
                    Entry::Array { elem, len: dims.first().copied().unwrap_or(0) }
                }
            });
        }
        entries.extend(extra);
        let functions = functions
            .into_iter()
            .map(|(name, (params, ret))| {
                let params = params.into_iter().map(|(n, ty)| (n, resolve(ty))).collect();
                (name, Function { params, ret: ret.map(|r| resolve(Some(r))) })
            })
            .collect();
        DwarfTypes { entries, names, functions, by_offset: index }
    }
}
