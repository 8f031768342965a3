//! Building the script's type table from its parsed definitions, in source order as C reads
//! them: each named struct, union and enum gets an id when first named (so `struct node { struct
//! node *next; }` and pointers to types defined later work), members are resolved and laid out,
//! enum constants evaluated, typedef names bound.
//!
//! Names a script does not define come from C itself (`int`, `unsigned long long`), from the
//! headers bpftrace provides (`uint8_t`, `size_t`, `bool`), or from the kernel's BTF (`u32`,
//! `struct task_struct`). As in bpftrace, a script that redefines one of the kernel's own types
//! gets no BTF types in its definitions: it must define every type they use.

use std::collections::HashMap;

use grammar::cdecl::{CBase, CConst, CConstKind, CDefinition, CDefinitionKind, CEnum, CMember, CRecord, CTag};
use grammar::cdecl::{CType, CTypeKind};
use grammar::{Diagnostic, Span};

use super::layout::{lay_out, MemberShape, RecordOptions};
use super::{Entry, ScriptTypes, SCRIPT_TYPE_BASE};
use crate::ktypes::{KField, KType, KTypeId};
use crate::tracepoint::ProbeCatalog;

/// C's own types under the names the kernel's BTF (and rbt's casts) give them: `(int32 *)p` is
/// an `int *`. Size, signedness, and whether it is plain `char` (arrays of which are strings).
const C_BASE_NAMES: &[(&str, u8, bool, bool)] = &[
    ("char", 1, true, true),
    ("signed char", 1, true, false),
    ("unsigned char", 1, false, false),
    ("_Bool", 1, false, false),
    ("short", 2, true, false),
    ("short int", 2, true, false),
    ("short unsigned int", 2, false, false),
    ("int", 4, true, false),
    ("unsigned int", 4, false, false),
    ("long int", 8, true, false),
    ("long unsigned int", 8, false, false),
    ("long long int", 8, true, false),
    ("long long unsigned int", 8, false, false),
];

/// The typedefs of the headers bpftrace 0.17 gives every script (`stdint.h`, `stddef.h`,
/// `stdbool.h`), as C base types: size and signedness.
const HEADER_TYPEDEFS: &[(&str, u8, bool)] = &[
    ("int8_t", 1, true),
    ("uint8_t", 1, false),
    ("int16_t", 2, true),
    ("uint16_t", 2, false),
    ("int32_t", 4, true),
    ("uint32_t", 4, false),
    ("int64_t", 8, true),
    ("uint64_t", 8, false),
    ("intptr_t", 8, true),
    ("uintptr_t", 8, false),
    ("intmax_t", 8, true),
    ("uintmax_t", 8, false),
    ("size_t", 8, false),
    ("ssize_t", 8, true),
    ("ptrdiff_t", 8, true),
    ("wchar_t", 4, true),
    ("bool", 1, false),
];

/// How deeply kernel records are followed to find their alignment.
const MAX_ALIGN_DEPTH: u32 = 8;

/// Builds the table of the script's types; every mistake is a diagnostic at its span.
pub(super) fn build(definitions: &[CDefinition], kernel: &dyn ProbeCatalog) -> (ScriptTypes, Vec<Diagnostic>) {
    let mut builder = Builder {
        types: ScriptTypes::default(),
        kernel,
        redefined_kernel_type: None,
        diags: Vec::new(),
        derived: HashMap::new(),
    };
    builder.redefined_kernel_type = redefined_kernel_type(definitions, kernel);
    for &(name, bytes, signed, char) in C_BASE_NAMES {
        let id = builder.add(KType::Int { bytes, signed, char }, name, u32::from(bytes), true);
        builder.types.names.insert(name.to_string(), id);
    }
    for definition in definitions {
        if let Err(diag) = builder.definition(definition) {
            builder.diags.push(diag);
        }
    }
    (builder.types, builder.diags)
}

/// The first kernel type the script defines again, if any (bpftrace's "redefinition conflict").
fn redefined_kernel_type(definitions: &[CDefinition], kernel: &dyn ProbeCatalog) -> Option<String> {
    let defines = |name: String| kernel.kernel_type_named(&name).map(|_| name);
    definitions.iter().find_map(|d| match &d.kind {
        CDefinitionKind::Record(r) if r.members.is_some() => {
            let tag = if r.union { "union" } else { "struct" };
            defines(format!("{tag} {}", r.name.as_ref()?.name))
        }
        CDefinitionKind::Enum(e) if e.constants.is_some() => defines(format!("enum {}", e.name.as_ref()?.name)),
        CDefinitionKind::Typedef(names) => names.iter().find_map(|(name, _)| defines(name.name.clone())),
        _ => None,
    })
}

struct Builder<'k> {
    types: ScriptTypes,
    kernel: &'k dyn ProbeCatalog,
    /// Set when the script redefines a kernel type: its definitions then use no BTF types.
    redefined_kernel_type: Option<String>,
    diags: Vec<Diagnostic>,
    /// Pointer and array types already made, so each is one id: (element or target, length or
    /// `None` for a pointer).
    derived: HashMap<(KTypeId, Option<u32>), KTypeId>,
}

type Built<T> = Result<T, Diagnostic>;

impl Builder<'_> {
    fn add(&mut self, ty: KType, name: &str, align: u32, complete: bool) -> KTypeId {
        let id = SCRIPT_TYPE_BASE + self.types.entries.len() as KTypeId;
        self.types.entries.push(Entry { ty, name: name.to_string(), align, complete });
        id
    }

    fn definition(&mut self, definition: &CDefinition) -> Built<()> {
        match &definition.kind {
            CDefinitionKind::Record(record) => self.record(record).map(|_| ()),
            CDefinitionKind::Enum(e) => self.enumeration(e).map(|_| ()),
            CDefinitionKind::Typedef(names) => {
                for (name, ty) in names {
                    let id = self.resolve(ty)?;
                    if let Some(&old) = self.types.names.get(&name.name) {
                        if old != id {
                            return Err(Diagnostic::error(
                                "c-definition",
                                format!("typedef redefinition with different types for '{}'", name.name),
                                name.span,
                            ));
                        }
                    }
                    // An anonymous struct takes its typedef's name, as C compilers print it.
                    if let Some(entry) = self.types.entry_mut(id) {
                        if entry.name.ends_with("(anonymous)") {
                            entry.name = name.name.clone();
                        }
                    }
                    self.types.names.insert(name.name.clone(), id);
                }
                Ok(())
            }
        }
    }

    // ---- Types by name ---------------------------------------------------------------------

    /// The id of a type as written (which may define a struct, union or enum on the way).
    fn resolve(&mut self, ty: &CType) -> Built<KTypeId> {
        match &ty.kind {
            CTypeKind::Base(base) => Ok(self.base(*base)),
            CTypeKind::Named(name) => self.typedef_name(name, ty.span),
            CTypeKind::Tagged { tag, name } => Ok(self.tagged(*tag, name)),
            CTypeKind::Record(record) => self.record(record),
            CTypeKind::Enum(e) => self.enumeration(e),
            CTypeKind::Pointer(to) => {
                let to = self.resolve(to)?;
                Ok(self.pointer(to))
            }
            CTypeKind::Array { elem, len } => {
                let elem_id = self.resolve(elem)?;
                let len = match len {
                    Some(len) => self.length(len)?,
                    None => 0,
                };
                self.array(elem_id, len, elem.span)
            }
            CTypeKind::Function { .. } => Ok(self.add(KType::Function, "function", 1, false)),
        }
    }

    fn base(&mut self, base: CBase) -> KTypeId {
        let (name, ty, align) = match base {
            CBase::Void => ("void", KType::Void, 1),
            CBase::Bool => ("_Bool", KType::Int { bytes: 1, signed: false, char: false }, 1),
            CBase::Char { signed } => {
                let name = base.c_name();
                (name, KType::Int { bytes: 1, signed: signed.unwrap_or(true), char: signed.is_none() }, 1)
            }
            CBase::Int { bytes, signed } => {
                let name = base.c_name();
                (name, KType::Int { bytes, signed, char: false }, u32::from(bytes))
            }
            CBase::Float { bytes } => {
                let name = base.c_name();
                (name, KType::Opaque { name: name.to_string(), size: u32::from(bytes) }, u32::from(bytes))
            }
        };
        if let Some(&id) = self.types.names.get(name) {
            return id;
        }
        let complete = !matches!(base, CBase::Void);
        let id = self.add(ty, name, align, complete);
        self.types.names.insert(name.to_string(), id);
        id
    }

    fn typedef_name(&mut self, name: &str, span: Span) -> Built<KTypeId> {
        if let Some(id) = self.types.named(name) {
            return Ok(id);
        }
        if let Some(&(_, bytes, signed)) = HEADER_TYPEDEFS.iter().find(|(n, ..)| *n == name) {
            let base = if bytes == 1 { CBase::Char { signed: Some(signed) } } else { CBase::Int { bytes, signed } };
            return Ok(self.base(if name == "bool" { CBase::Bool } else { base }));
        }
        if let Some(id) = self.kernel_named(name) {
            return Ok(id);
        }
        Err(self.unknown(format!("unknown type name '{name}'"), span))
    }

    /// `struct NAME` (or `union`, `enum`) where no body follows: the script's, the kernel's, or a
    /// declaration of a type defined nowhere (usable through pointers only).
    fn tagged(&mut self, tag: CTag, name: &str) -> KTypeId {
        let full = format!("{} {name}", tag.keyword());
        let declared = self.types.named(&full);
        if let Some(id) = declared.filter(|&id| self.types.is_complete(id)) {
            return id;
        }
        // A type the script only declares is the kernel's, when the kernel has it.
        if let Some(id) = self.kernel_named(&full) {
            return id;
        }
        declared.unwrap_or_else(|| self.declare(&full, tag == CTag::Union))
    }

    /// A struct or union known by name only so far.
    fn declare(&mut self, full: &str, union: bool) -> KTypeId {
        let ty = if full.starts_with("enum ") {
            KType::Int { bytes: 4, signed: false, char: false }
        } else {
            KType::Record { name: full.to_string(), union, size: 0, fields: Vec::new() }
        };
        let id = self.add(ty, full, 1, false);
        self.types.names.insert(full.to_string(), id);
        id
    }

    fn kernel_named(&self, name: &str) -> Option<KTypeId> {
        if self.redefined_kernel_type.is_some() {
            return None;
        }
        self.kernel.kernel_type_named(name)
    }

    fn unknown(&self, message: String, span: Span) -> Diagnostic {
        let diag = Diagnostic::error("c-definition", message, span);
        match &self.redefined_kernel_type {
            Some(redefined) => diag.with_help(format!(
                "the script redefines '{redefined}', which the kernel's BTF also defines, so (as in bpftrace) its definitions cannot use BTF types: define this one too"
            )),
            None => diag,
        }
    }

    fn pointer(&mut self, to: KTypeId) -> KTypeId {
        if let Some(&id) = self.derived.get(&(to, None)) {
            return id;
        }
        let name = format!("{} *", self.name_of(to));
        let id = self.add(KType::Pointer { to }, &name, 8, true);
        self.derived.insert((to, None), id);
        id
    }

    fn array(&mut self, elem: KTypeId, len: u32, span: Span) -> Built<KTypeId> {
        if let Some(&id) = self.derived.get(&(elem, Some(len))) {
            return Ok(id);
        }
        let Some((_, align)) = self.size_align(elem) else {
            let name = self.name_of(elem);
            return Err(self.unknown(format!("array has incomplete element type '{name}'"), span));
        };
        let name = format!("{}[{len}]", self.name_of(elem));
        let id = self.add(KType::Array { elem, len }, &name, align, true);
        self.derived.insert((elem, Some(len)), id);
        Ok(id)
    }

    fn name_of(&self, id: KTypeId) -> String {
        self.types.name_of(id).unwrap_or_else(|| self.kernel.kernel_type_name(id))
    }

    /// The size and alignment of a complete type, the script's or the kernel's.
    pub(super) fn size_align(&self, id: KTypeId) -> Option<(u32, u32)> {
        if ScriptTypes::owns(id) {
            let entry = self.types.entry(id)?;
            if !entry.complete {
                return None;
            }
            let size = match &entry.ty {
                KType::Array { elem, len } => self.size_align(*elem)?.0.checked_mul(*len)?,
                other => other.own_size()?,
            };
            return Some((size, entry.align));
        }
        let size = self.kernel.kernel_type_size(id)?;
        Some((size, self.kernel_align(id, 0)))
    }

    /// A kernel type's alignment: its largest member's (1 for a packed struct, whose size or
    /// members break that rule).
    fn kernel_align(&self, id: KTypeId, depth: u32) -> u32 {
        if depth > MAX_ALIGN_DEPTH {
            return 8;
        }
        match self.kernel.kernel_type(id) {
            Some(KType::Int { bytes, .. }) => u32::from(bytes).clamp(1, 16),
            Some(KType::Pointer { .. }) => 8,
            Some(KType::Array { elem, .. }) => self.kernel_align(elem, depth + 1),
            Some(KType::Opaque { size, .. }) => size.clamp(1, 16),
            Some(KType::Record { size, fields, .. }) => {
                let align = fields.iter().map(|f| self.kernel_align(f.ty, depth + 1)).max().unwrap_or(1);
                let packed = size % align != 0
                    || fields
                        .iter()
                        .any(|f| f.bits == 0 && f.bit_offset % (self.kernel_align(f.ty, depth + 1) * 8) != 0);
                if packed {
                    1
                } else {
                    align
                }
            }
            Some(KType::Void | KType::Function) | None => 1,
        }
    }

    // ---- Constants -------------------------------------------------------------------------

    /// An array length or bitfield width: a constant of at least 0.
    fn length(&mut self, c: &CConst) -> Built<u32> {
        let value = self.constant(c)?;
        u32::try_from(value)
            .map_err(|_| Diagnostic::error("c-definition", format!("'{value}' is not a valid size here"), c.span))
    }

    fn constant(&mut self, c: &CConst) -> Built<i64> {
        let overflow = || Diagnostic::error("c-definition", "the constant overflows", c.span);
        Ok(match &c.kind {
            CConstKind::Int(v) => i64::try_from(*v).map_err(|_| overflow())?,
            CConstKind::Name(name) => self.types.constant(name).ok_or_else(|| {
                Diagnostic::error("c-definition", format!("use of undeclared identifier '{name}'"), c.span)
            })?,
            CConstKind::Unary(op, operand) => {
                let v = self.constant(operand)?;
                match op {
                    '-' => v.checked_neg().ok_or_else(overflow)?,
                    '~' => !v,
                    '!' => i64::from(v == 0),
                    _ => v,
                }
            }
            CConstKind::Binary(op, lhs, rhs) => {
                let (a, b) = (self.constant(lhs)?, self.constant(rhs)?);
                let result = match *op {
                    "+" => a.checked_add(b),
                    "-" => a.checked_sub(b),
                    "*" => a.checked_mul(b),
                    "/" => a.checked_div(b),
                    "%" => a.checked_rem(b),
                    "<<" => u32::try_from(b).ok().and_then(|b| a.checked_shl(b)),
                    ">>" => u32::try_from(b).ok().and_then(|b| a.checked_shr(b)),
                    "&" => Some(a & b),
                    "|" => Some(a | b),
                    _ => Some(a ^ b),
                };
                result
                    .ok_or_else(|| Diagnostic::error("c-definition", format!("cannot compute {a} {op} {b}"), c.span))?
            }
            CConstKind::Sizeof(ty) => {
                let id = self.resolve(ty)?;
                let Some((size, _)) = self.size_align(id) else {
                    let name = self.name_of(id);
                    return Err(self
                        .unknown(format!("invalid application of 'sizeof' to an incomplete type '{name}'"), ty.span));
                };
                i64::from(size)
            }
        })
    }

    // ---- Records and enums -----------------------------------------------------------------

    /// A struct or union: declared only (`struct Foo;`), or defined and laid out.
    fn record(&mut self, record: &CRecord) -> Built<KTypeId> {
        let full = record.display_name();
        let Some(members) = &record.members else {
            let tag = if record.union { CTag::Union } else { CTag::Struct };
            let name = record.name.as_ref().map_or("", |n| n.name.as_str());
            return Ok(match self.types.named(&full) {
                Some(id) => id,
                None => self.declare(&format!("{} {name}", tag.keyword()), record.union),
            });
        };
        let id = match (&record.name, self.types.named(&full)) {
            (Some(name), Some(id)) => {
                if self.types.entry(id).is_some_and(|e| e.complete) {
                    return Err(Diagnostic::error("c-definition", format!("redefinition of '{full}'"), name.span));
                }
                id
            }
            (Some(_), None) => self.declare(&full, record.union),
            (None, _) => self.add(
                KType::Record { name: full.clone(), union: record.union, size: 0, fields: Vec::new() },
                &full,
                1,
                false,
            ),
        };
        let (fields, shapes) = self.members(members)?;
        let aligned = match &record.aligned {
            Some(a) => Some(self.length(a)?),
            None => None,
        };
        let options = RecordOptions { union: record.union, packed: record.packed, aligned };
        let shape = lay_out(&shapes, options).map_err(|(index, why)| {
            let span = members.iter().filter(|m| !is_declaration_only(m)).nth(index).map_or(record.span, |m| m.span);
            Diagnostic::error("c-definition", why, span)
        })?;
        let mut laid_out = Vec::new();
        for (member_fields, offset) in fields.into_iter().zip(shape.bit_offsets) {
            for mut field in member_fields {
                field.bit_offset += offset;
                laid_out.push(field);
            }
        }
        if let Some(entry) = self.types.entry_mut(id) {
            entry.ty = KType::Record { name: full, union: record.union, size: shape.size, fields: laid_out };
            entry.align = shape.align;
            entry.complete = true;
        }
        Ok(id)
    }

    /// Each laid-out member's fields (one, or an anonymous record's several, at offsets from
    /// the member's start) and its shape.
    fn members(&mut self, members: &[CMember]) -> Built<(Vec<Vec<KField>>, Vec<MemberShape>)> {
        let mut fields = Vec::new();
        let mut shapes = Vec::new();
        for member in members {
            let id = self.resolve(&member.ty)?;
            if is_declaration_only(member) {
                continue;
            }
            let Some((size, align)) = self.size_align(id) else {
                let name = self.name_of(id);
                return Err(self.unknown(format!("field has incomplete type '{name}'"), member.ty.span));
            };
            let align = match &member.aligned {
                Some(a) => align.max(self.length(a)?),
                None => align,
            };
            let bits = match &member.bits {
                Some(width) => Some(self.length(width)?),
                None => None,
            };
            let named = member.name.is_some();
            let member_fields = match (&member.name, bits) {
                (Some(name), _) => {
                    let bits = bits.map_or(0, |b| u8::try_from(b).unwrap_or(u8::MAX));
                    vec![KField { name: name.name.clone(), ty: id, bit_offset: 0, bits }]
                }
                // An anonymous struct or union: C reaches its members as the outer record's.
                (None, None) => match self.types.get(id) {
                    Some(KType::Record { fields, .. }) => fields,
                    _ => Vec::new(),
                },
                (None, Some(_)) => Vec::new(),
            };
            fields.push(member_fields);
            shapes.push(MemberShape { size, align, bits, named });
        }
        Ok((fields, shapes))
    }

    /// An enum: its constants join the script's names, and its type is a 4-byte unsigned
    /// integer (as bpftrace reads enums).
    fn enumeration(&mut self, e: &CEnum) -> Built<KTypeId> {
        let full = format!("enum {}", e.name.as_ref().map_or("(anonymous)", |n| n.name.as_str()));
        let existing = e.name.as_ref().and_then(|_| self.types.named(&full));
        let Some(constants) = &e.constants else {
            return Ok(match existing {
                Some(id) => id,
                None => self.kernel_named(&full).unwrap_or_else(|| self.declare(&full, false)),
            });
        };
        let mut next = 0i64;
        for constant in constants {
            let value = match &constant.value {
                Some(v) => self.constant(v)?,
                None => next,
            };
            if self.types.constants.insert(constant.name.name.clone(), value).is_some() {
                return Err(Diagnostic::error(
                    "c-definition",
                    format!("redefinition of enumerator '{}'", constant.name.name),
                    constant.name.span,
                ));
            }
            next = value.wrapping_add(1);
        }
        let ty = KType::Int { bytes: 4, signed: false, char: false };
        Ok(match existing {
            Some(id) => {
                if let Some(entry) = self.types.entry_mut(id) {
                    entry.complete = true;
                    entry.align = 4;
                }
                id
            }
            None => {
                let id = self.add(ty, &full, 4, true);
                if e.name.is_some() {
                    self.types.names.insert(full, id);
                }
                id
            }
        })
    }
}

/// A member that declares a type but no storage: `struct Bar { ... };` or `enum { A };` inside a
/// record, or a stray `int;`. Only an untagged struct or union is an anonymous member.
fn is_declaration_only(member: &CMember) -> bool {
    if member.name.is_some() || member.bits.is_some() {
        return false;
    }
    !matches!(&member.ty.kind, CTypeKind::Record(r) if r.name.is_none())
}

impl ScriptTypes {
    fn entry_mut(&mut self, id: KTypeId) -> Option<&mut Entry> {
        let index = id.checked_sub(SCRIPT_TYPE_BASE)?;
        self.entries.get_mut(index as usize)
    }
}
