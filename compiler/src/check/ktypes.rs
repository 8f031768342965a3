//! Kernel types in expressions: `curtask->real_parent->comm`, `(struct sock *)arg0`, `$s.load`,
//! `p->bits[2]`, `*ptr`, `sizeof`, `offsetof`. Types come from the catalog (the kernel's BTF).
//!
//! A chain of `->`, `.` and `[N]` is checked as a [`Place`] — an address, a constant offset and a
//! kernel type — and only the value at its end is read from kernel memory, so
//! `curtask->se.load.weight` is one 4-byte read at `curtask + offset`, never a copy of `se`.

use std::sync::Arc;

use super::expr::{error_expr, int_type_named, is_args, is_locals};
use super::{nearest, Checker};
use crate::hir::{AddrSpace, Expr, ExprKind};
use crate::ktypes::{KField, KFunction, KType, KTypeId};
use crate::tracepoint::FieldType;
use crate::types::{Bitfield, RecordField, RecordLayout, Type};
use grammar::ast::{self, UnaryOp as AstUn};
use grammar::{Diagnostic, Span};

/// Kernel memory not read yet: `ty` at `addr + offset`.
pub(super) struct Place {
    addr: Expr,
    offset: u32,
    ty: KTypeId,
    bitfield: Option<Bitfield>,
    /// The memory `addr` points into (see `addrspace.rs`).
    space: AddrSpace,
    span: Span,
}

/// What the left side of `->`, `.` or `[N]` checked to.
pub(super) enum Operand {
    Place(Place),
    Value(Expr),
}

/// bpftrace's names for integer types, as the kernel's BTF names them, for `(uint32 *)p`.
const C_INT_NAMES: &[(&str, &str)] = &[
    ("int8", "signed char"),
    ("uint8", "unsigned char"),
    ("int16", "short int"),
    ("uint16", "short unsigned int"),
    ("int32", "int"),
    ("uint32", "unsigned int"),
    ("int64", "long long int"),
    ("uint64", "long long unsigned int"),
    ("char", "char"),
];

impl Checker<'_> {
    /// The type of `curtask`: a `struct task_struct *` when the kernel has BTF, else a `uint64`
    /// as before kernel types.
    pub(super) fn curtask_type(&mut self) -> Type {
        match self.catalog.kernel_type_named("struct task_struct") {
            Some(id) => Type::Pointer { pointee: "struct task_struct".into(), target: Some(id) },
            None => Type::U64,
        }
    }

    /// `e->f`, `e.f`, `e[N]` or `*e` as a value.
    pub(super) fn check_member_expr(&mut self, e: &ast::Expr) -> Expr {
        match self.check_operand(e) {
            Some(Operand::Place(place)) => self.read_place(place),
            Some(Operand::Value(v)) => v,
            None => error_expr(e.span),
        }
    }

    /// Checks `e` as the start of a member chain; `None` after an error.
    pub(super) fn check_operand(&mut self, e: &ast::Expr) -> Option<Operand> {
        match &e.kind {
            ast::ExprKind::Field { expr, field, arrow } if !is_args(expr) && (!is_locals(expr) || *arrow) => {
                let base = self.check_operand(expr)?;
                self.member(base, field, *arrow, e.span)
            }
            ast::ExprKind::Index { expr, index } => {
                let base = self.check_operand(expr)?;
                self.index(base, index, e.span)
            }
            ast::ExprKind::Unary { op: AstUn::Deref, expr } => {
                let base = self.check_operand(expr)?;
                let ptr = self.operand_value(base);
                if let Some(value) = self.deref_integer(&ptr, e.span) {
                    return Some(Operand::Value(value));
                }
                self.deref(ptr, 0, e.span).map(Operand::Place)
            }
            ast::ExprKind::Cast { ty, expr } if ty.tag.is_some() || ty.pointer_depth > 0 => {
                self.check_kernel_cast(ty, expr, e.span).map(Operand::Value)
            }
            _ => Some(Operand::Value(self.check_expr(e))),
        }
    }

    fn operand_value(&mut self, operand: Operand) -> Expr {
        match operand {
            Operand::Place(place) => self.read_place(place),
            Operand::Value(v) => v,
        }
    }

    /// The kernel type at the end of a pointer, as a place to read from.
    fn deref(&mut self, ptr: Expr, offset: u32, span: Span) -> Option<Place> {
        match &ptr.ty {
            Type::Pointer { target: Some(to), .. } => {
                let to = *to;
                let space = self.address_space(&ptr);
                Some(Place { addr: ptr, offset, ty: to, bitfield: None, space, span })
            }
            Type::None => None,
            other => {
                let msg = match other {
                    Type::Record(layout) => {
                        format!("Can not dereference struct/union of type '{}'. It is not a pointer.", layout.name)
                    }
                    Type::Pointer { .. } => {
                        format!("'{other}' points to a type rbt does not know; cast it to a kernel type first")
                    }
                    _ => format!("Can not dereference a value of type '{other}': it is not a pointer"),
                };
                let mut diag = Diagnostic::error("type-mismatch", msg, span);
                if other.is_integer() {
                    diag = match self.catalog.kernel_types_missing() {
                        Some(why) => diag.with_help(format!("kernel types (BTF) are not available here: {why}")),
                        None => {
                            diag.with_help("cast it to a kernel type first, e.g. `((struct task_struct *)arg0)->pid`")
                        }
                    };
                }
                self.error(diag);
                None
            }
        }
    }

    fn member(&mut self, base: Operand, field: &ast::Ident, arrow: bool, span: Span) -> Option<Operand> {
        if arrow {
            let ptr = self.operand_value(base);
            if let Type::Pointer { target: Some(to), .. } = ptr.ty {
                let record = self.catalog.kernel_type(to);
                if !matches!(record, Some(KType::Record { .. })) {
                    let name = self.catalog.kernel_type_name(to);
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!(
                            "Can not access field '{}' on type '{name} *': it is not a struct or union",
                            field.name
                        ),
                        span,
                    ));
                    return None;
                }
            }
            let place = self.deref(ptr, 0, span)?;
            return self.field_of_place(place, field, span).map(Operand::Place);
        }
        match base {
            Operand::Place(place) => self.field_of_place(place, field, span).map(Operand::Place),
            Operand::Value(v) => match &v.ty {
                Type::Record(layout) => {
                    let layout = layout.clone();
                    let Some(f) = layout.fields.iter().find(|f| f.name == field.name) else {
                        let names: Vec<&str> = layout.fields.iter().map(|f| f.name.as_str()).collect();
                        self.unknown_field(&layout.name, &names, field, span);
                        return None;
                    };
                    let kind = ExprKind::Member { base: Box::new(v), offset: f.offset, bitfield: f.bitfield };
                    Some(Operand::Value(Expr { kind, ty: f.ty.clone(), span }))
                }
                Type::Tuple(_) => self.tuple_field(v, field, span).map(Operand::Value),
                Type::Pointer { .. } => {
                    self.error(
                        Diagnostic::error(
                            "type-mismatch",
                            format!(
                                "Can not access field '{}' on type '{}'. Try dereferencing it first, or using '->'",
                                field.name, v.ty
                            ),
                            span,
                        )
                        .with_help(format!("write `->{}`", field.name)),
                    );
                    None
                }
                Type::None => None,
                other => {
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!("cannot access field '{}' on a value of type '{other}'", field.name),
                        field.span,
                    ));
                    None
                }
            },
        }
    }

    fn field_of_place(&mut self, place: Place, field: &ast::Ident, span: Span) -> Option<Place> {
        let record = self.catalog.kernel_type(place.ty);
        let Some(KType::Record { name, fields, .. }) = record else {
            let name = self.catalog.kernel_type_name(place.ty);
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("cannot access field '{}' on type '{name}': it is not a struct or union", field.name),
                span,
            ));
            return None;
        };
        let Some(f) = fields.iter().find(|f| f.name == field.name) else {
            let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            self.unknown_field(&name, &names, field, span);
            return None;
        };
        let (offset, bitfield) = member_position(f);
        Some(Place { offset: place.offset + offset, ty: f.ty, bitfield, span, ..place })
    }

    pub(super) fn unknown_field(&mut self, record: &str, names: &[&str], field: &ast::Ident, span: Span) {
        let mut diag = Diagnostic::error(
            "unknown-field",
            format!("Struct/union of type '{record}' does not contain a field named '{}'", field.name),
            span,
        );
        diag = match nearest(&field.name, names.iter().copied(), 3).as_slice() {
            [] => diag,
            [one] => diag.with_help(format!("did you mean `{one}`?")),
            several => diag.with_help(format!("nearest fields: {}", several.join(", "))),
        };
        self.error(diag);
    }

    fn index(&mut self, base: Operand, index: &ast::Expr, span: Span) -> Option<Operand> {
        let constant = match index.kind {
            ast::ExprKind::Int(i) => Some(i),
            // `$a->x[$1]`: a positional parameter is a constant too.
            ast::ExprKind::Param(_) => match self.check_expr(index).kind {
                ExprKind::Int(i) => Some(i),
                _ => None,
            },
            _ => None,
        };
        let Some(i) = constant else {
            self.error(Diagnostic::error(
                "unsupported",
                "The array index operator [] only accepts literal integer indices.",
                index.span,
            ));
            return None;
        };
        let i = u32::try_from(i).ok()?;
        match base {
            Operand::Place(place) => match self.catalog.kernel_type(place.ty) {
                Some(KType::Array { elem, len }) => {
                    self.check_bounds(i, len, index.span)?;
                    let size = self.catalog.kernel_type_size(elem)?;
                    Some(Operand::Place(Place {
                        offset: place.offset + i * size,
                        ty: elem,
                        bitfield: None,
                        span,
                        ..place
                    }))
                }
                Some(KType::Pointer { .. }) => {
                    let ptr = self.read_place(place);
                    self.index_pointer(ptr, i, span)
                }
                _ => {
                    let name = self.catalog.kernel_type_name(place.ty);
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!("cannot index a value of type '{name}'"),
                        span,
                    ));
                    None
                }
            },
            Operand::Value(v) => match &v.ty {
                Type::Array { elem, len } => {
                    self.check_bounds(i, *len, index.span)?;
                    let (elem, offset) = ((**elem).clone(), i * elem.native_size());
                    Some(Operand::Value(Expr {
                        kind: ExprKind::Member { base: Box::new(v), offset, bitfield: None },
                        ty: elem,
                        span,
                    }))
                }
                Type::Pointer { .. } => self.index_pointer(v, i, span),
                Type::None => None,
                other => {
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!("cannot index a value of type '{other}'"),
                        span,
                    ));
                    None
                }
            },
        }
    }

    /// `p[i]`: the i-th object `p` points at.
    fn index_pointer(&mut self, ptr: Expr, i: u32, span: Span) -> Option<Operand> {
        let Type::Pointer { target: Some(to), .. } = ptr.ty else {
            return self.deref(ptr, 0, span).map(Operand::Place);
        };
        let size = self.catalog.kernel_type_size(to).unwrap_or(0);
        self.deref(ptr, i * size, span).map(Operand::Place)
    }

    fn check_bounds(&mut self, i: u32, len: u32, span: Span) -> Option<()> {
        if i < len {
            return Some(());
        }
        self.error(Diagnostic::error(
            "out-of-bounds",
            // bpftrace 0.17's words, which its test suite checks.
            format!("the index {i} is out of bounds for array of size {len}"),
            span,
        ));
        None
    }

    /// Reads a place's value out of kernel memory.
    pub(super) fn read_place(&mut self, place: Place) -> Expr {
        let span = place.span;
        let Some(mut ty) = self.value_type(place.ty, span) else { return error_expr(span) };
        if place.bitfield.is_some() {
            ty = zero_extended(ty);
        }
        let kind = ExprKind::KernelRead {
            addr: Box::new(place.addr),
            offset: place.offset,
            bitfield: place.bitfield,
            space: place.space,
        };
        Expr { kind, ty, span }
    }

    /// The rbt type a kernel type is read as; a diagnostic when rbt cannot hold it.
    pub(super) fn value_type(&mut self, id: KTypeId, span: Span) -> Option<Type> {
        match self.kernel_value_type(id, 0) {
            Ok(ty) => Some(ty),
            Err(why) => {
                self.error(Diagnostic::error("unsupported", why, span));
                None
            }
        }
    }

    fn kernel_value_type(&mut self, id: KTypeId, depth: u32) -> Result<Type, String> {
        match self.catalog.kernel_type(id) {
            Some(KType::Int { bytes: b @ (1 | 2 | 4 | 8), signed, .. }) => Ok(Type::Int { bytes: b, signed }),
            Some(KType::Pointer { to }) => {
                Ok(Type::Pointer { pointee: self.catalog.kernel_type_name(to), target: Some(to) })
            }
            Some(KType::Array { elem, len }) => {
                if matches!(self.catalog.kernel_type(elem), Some(KType::Int { bytes: 1, char: true, .. })) {
                    return Ok(Type::Str { len });
                }
                let elem = self.kernel_value_type(elem, depth + 1)?;
                Ok(Type::Array { elem: Box::new(elem), len })
            }
            Some(KType::Record { name, size, fields, .. }) => {
                if let Some(layout) = self.layouts.get(&id) {
                    return Ok(Type::Record(layout.clone()));
                }
                if depth > 16 {
                    return Err(format!("{name} nests too deeply to be read whole"));
                }
                let mut out = Vec::new();
                for f in &fields {
                    // Members rbt cannot show (floating point, flexible arrays) are left out.
                    let Ok(ty) = self.kernel_value_type(f.ty, depth + 1) else { continue };
                    if ty.size() == 0 {
                        continue;
                    }
                    let (offset, bitfield) = member_position(f);
                    let ty = if bitfield.is_some() { zero_extended(ty) } else { ty };
                    out.push(RecordField { name: f.name.clone(), offset, ty, bitfield });
                }
                let layout = Arc::new(RecordLayout { name, size, fields: out });
                self.layouts.insert(id, layout.clone());
                Ok(Type::Record(layout))
            }
            Some(KType::Int { bytes, .. }) => {
                Err(format!("rbt cannot read '{}', an integer of {bytes} bytes", self.catalog.kernel_type_name(id)))
            }
            Some(KType::Void) => Err("cannot read a value of type 'void'".into()),
            Some(KType::Function) => Err("cannot read a function".into()),
            Some(KType::Opaque { name, .. }) => Err(format!("rbt cannot read a value of type '{name}'")),
            None => Err(format!("unknown kernel type {id}")),
        }
    }

    /// `(struct task_struct *)e`, `(uint32 *)e`: a pointer to a kernel type.
    pub(super) fn check_kernel_cast(&mut self, ty: &ast::TypeName, expr: &ast::Expr, span: Span) -> Option<Expr> {
        let inner = self.check_expr(expr);
        if ty.pointer_depth == 0 {
            self.error(
                Diagnostic::error(
                    "type-mismatch",
                    format!("cannot cast to '{}': a struct is read through a pointer", type_text(ty)),
                    ty.span,
                )
                .with_help(format!("cast to a pointer, `({} *)`", type_text(ty))),
            );
            return None;
        }
        let target = self.kernel_type_for(ty)?;
        if !inner.ty.is_integer() && inner.ty != Type::None {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("cannot cast a value of type '{}' to '{}'", inner.ty, type_text(ty)),
                inner.span,
            ));
        }
        // `(struct s **)p`: a pointer to a pointer, each level read with `*`.
        let mut target = target;
        for _ in 1..ty.pointer_depth {
            let Some(pointer) = self.catalog.kernel_pointer_type(target) else {
                self.error(Diagnostic::error(
                    "unsupported",
                    format!("rbt cannot cast to '{}' here: only one level of pointer", type_text(ty)),
                    ty.span,
                ));
                return None;
            };
            target = pointer;
        }
        let result = Type::Pointer { pointee: self.catalog.kernel_type_name(target), target: Some(target) };
        Some(Expr { kind: ExprKind::Cast { expr: Box::new(inner) }, ty: result, span })
    }

    /// The kernel type a type name denotes, with a diagnostic listing the nearest names.
    fn kernel_type_for(&mut self, ty: &ast::TypeName) -> Option<KTypeId> {
        // In a uprobe, the probed binary's DWARF comes before the kernel's BTF (and the
        // script's own definitions before both: the overlay answers those first).
        if let Some(id) = self.probed_binary_type(ty) {
            return Some(id);
        }
        let written = match &ty.tag {
            Some(tag) => format!("{tag} {}", ty.name),
            None => C_INT_NAMES
                .iter()
                .find(|(ours, _)| *ours == ty.name)
                .map(|(_, c)| c.to_string())
                .unwrap_or(ty.name.clone()),
        };
        // The script's own types (and C's integers) are there without BTF.
        if let Some(id) = self.catalog.kernel_type_named(&written) {
            return Some(id);
        }
        if let Some(why) = self.catalog.kernel_types_missing() {
            self.error(Diagnostic::error("no-btf", format!("kernel types are not available: {why}"), ty.span));
            return None;
        }
        let what = if ty.tag.is_some() { "struct/union" } else { "type" };
        let mut diag = Diagnostic::error("unknown-type", format!("Unknown {what}: '{written}'"), ty.span);
        let names = self.catalog.kernel_record_names();
        let mut help = match nearest(&written, names.iter().map(String::as_str), 3).as_slice() {
            [] => String::new(),
            [one] => format!("did you mean `{one}`?"),
            several => format!("nearest types: {}", several.join(", ")),
        };
        if !self.options.included_headers.is_empty() {
            // rbt takes a header's types from BTF: one BTF lacks is one the header would define.
            let headers: Vec<String> = self.options.included_headers.iter().map(|h| format!("<{h}>")).collect();
            let which = match headers.as_slice() {
                [one] => one.clone(),
                several => format!("one of {}", several.join(", ")),
            };
            let note = format!(
                "rbt takes the types of kernel headers from BTF, which has no '{written}'; if {which} defines it, define it in the script"
            );
            help = if help.is_empty() { note } else { format!("{help} ({note})") };
        }
        if !help.is_empty() {
            diag = diag.with_help(help);
        }
        self.error(diag);
        None
    }

    /// `args->NAME` (or `args.NAME`) in an fentry/fexit probe: the function's argument, typed
    /// from BTF. The context is an array of u64s, one per argument.
    pub(super) fn fentry_arg(&mut self, func: &KFunction, field: &ast::Ident, span: Span) -> Expr {
        let Some(index) = func.params.iter().position(|p| p.name == field.name) else {
            let names: Vec<&str> = func.params.iter().map(|p| p.name.as_str()).collect();
            let mut diag = Diagnostic::error(
                "unknown-field",
                format!("function {} has no argument named '{}'", func.name, field.name),
                field.span,
            );
            diag = match nearest(&field.name, names.iter().copied(), 1).first() {
                Some(near) => diag.with_help(format!("did you mean `{near}`? arguments: {}", names.join(", "))),
                None => diag.with_help(format!("arguments: {}", names.join(", "))),
            };
            self.error(diag);
            return error_expr(span);
        };
        let ty = func.params[index].ty;
        self.context_word(index as u32, ty, span)
    }

    /// `retval` in an fexit probe: the word after the arguments.
    pub(super) fn fexit_retval(&mut self, func: &KFunction, span: Span) -> Expr {
        match func.ret {
            Some(ty) => self.context_word(func.params.len() as u32, ty, span),
            None => {
                self.error(Diagnostic::error(
                    "no-retval",
                    format!("{} returns void: fexit has no retval", func.name),
                    span,
                ));
                error_expr(span)
            }
        }
    }

    /// The `index`th u64 of a tracing program's context, as the kernel type `ty`.
    fn context_word(&mut self, index: u32, ty: KTypeId, span: Span) -> Expr {
        let Some(value_ty) = self.value_type(ty, span) else { return error_expr(span) };
        if !value_ty.is_integer() {
            self.error(Diagnostic::error(
                "unsupported",
                format!("rbt cannot read an argument of type '{value_ty}' passed by value yet"),
                span,
            ));
            return error_expr(span);
        }
        let word = Expr {
            kind: ExprKind::ArgsField { offset: index * 8, size: 8, ty: FieldType::Integer { size: 8, signed: false } },
            ty: Type::U64,
            span,
        };
        Expr { kind: ExprKind::Cast { expr: Box::new(word) }, ty: value_ty, span }
    }

    /// `sizeof(TYPE)`.
    pub(super) fn check_sizeof_type(&mut self, ty: &ast::TypeName, span: Span) -> Expr {
        let size = if ty.pointer_depth > 0 {
            Some(8)
        } else if ty.tag.is_none() && int_type_named(&ty.name).is_some() {
            int_type_named(&ty.name).map(|t| t.int_bytes())
        } else {
            let id = self.kernel_type_for(ty);
            let size = id.and_then(|id| self.catalog.kernel_type_size(id));
            if let (Some(id), None) = (id, size) {
                let name = self.catalog.kernel_type_name(id);
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!("invalid application of 'sizeof' to an incomplete type '{name}'"),
                    ty.span,
                ));
            }
            size
        };
        match size {
            Some(n) => Expr { kind: ExprKind::Int(u64::from(n)), ty: Type::U64, span },
            None => error_expr(span),
        }
    }

    /// `sizeof(expr)`: the expression is typed, never evaluated.
    pub(super) fn check_sizeof_expr(&mut self, e: &ast::Expr, span: Span) -> Expr {
        // `sizeof(foo_t)`: a typedef name parses as an identifier.
        if let ast::ExprKind::Builtin(name) = &e.kind {
            let typedef = crate::builtins::builtin(name).is_none().then(|| self.catalog.kernel_type_named(name));
            if let Some(size) = typedef.flatten().and_then(|id| self.catalog.kernel_type_size(id)) {
                return Expr { kind: ExprKind::Int(u64::from(size)), ty: Type::U64, span };
            }
        }
        let size = match self.check_operand(e) {
            Some(Operand::Place(place)) => self.catalog.kernel_type_size(place.ty),
            Some(Operand::Value(v)) if v.ty.is_integer() => Some(v.ty.int_bytes()),
            Some(Operand::Value(v)) if v.ty != Type::None => Some(v.ty.bpftrace_layout().0),
            _ => None,
        };
        match size {
            Some(n) => Expr { kind: ExprKind::Int(u64::from(n)), ty: Type::U64, span },
            None => error_expr(span),
        }
    }

    /// `offsetof(struct s, field)`.
    pub(super) fn check_offsetof(&mut self, ty: &ast::TypeName, field: &ast::Ident, span: Span) -> Expr {
        let Some(id) = self.kernel_type_for(ty) else { return error_expr(span) };
        let Some(KType::Record { name, fields, .. }) = self.catalog.kernel_type(id) else {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("'{}' is not a struct or union", type_text(ty)),
                ty.span,
            ));
            return error_expr(span);
        };
        match fields.iter().find(|f| f.name == field.name) {
            Some(f) => Expr { kind: ExprKind::Int(u64::from(f.bit_offset / 8)), ty: Type::U64, span },
            None => {
                let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                self.unknown_field(&name, &names, field, field.span);
                error_expr(span)
            }
        }
    }
}

/// A bitfield's value type: bpftrace 0.17 reads bitfields zero-extended, signed or not
/// (`short b:8` holding 217 reads 217).
fn zero_extended(ty: Type) -> Type {
    match ty {
        Type::Int { bytes, .. } => Type::Int { bytes, signed: false },
        other => other,
    }
}

/// Where a member starts (bytes) and, for a bitfield, which bits of the bytes there it is.
fn member_position(f: &KField) -> (u32, Option<Bitfield>) {
    if f.bits == 0 {
        return (f.bit_offset / 8, None);
    }
    (f.bit_offset / 8, Some(Bitfield { shift: (f.bit_offset % 8) as u8, bits: f.bits }))
}

fn type_text(ty: &ast::TypeName) -> String {
    let mut s = match &ty.tag {
        Some(tag) => format!("{tag} {}", ty.name),
        None => ty.name.clone(),
    };
    if ty.pointer_depth > 0 {
        s.push(' ');
        for _ in 0..ty.pointer_depth {
            s.push('*');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::check::{check, CheckOptions};
    use crate::hir::{ExprKind, StmtKind};
    use crate::ktypes::{KField, KType, KTypeId};
    use crate::tracepoint::{ProbeCatalog, TracepointFormat};
    use crate::types::{Bitfield, Type};

    /// A kernel of four types: `struct task_struct { int pid @4; struct task_struct *parent @8;
    /// struct load_weight load @16; unsigned int flag:1 @ bit 256+3; char comm[16] @40; }` and
    /// `struct load_weight { unsigned long weight @0; u32 inv_weight @8; }`.
    struct Kernel;
    const TASK: KTypeId = 1;
    const INT: KTypeId = 2;
    const TASK_PTR: KTypeId = 3;
    const LOAD: KTypeId = 4;
    const ULONG: KTypeId = 5;
    const UINT: KTypeId = 6;
    const CHAR: KTypeId = 7;
    const COMM: KTypeId = 8;

    fn field(name: &str, ty: KTypeId, bit_offset: u32, bits: u8) -> KField {
        KField { name: name.into(), ty, bit_offset, bits }
    }

    impl ProbeCatalog for Kernel {
        fn match_tracepoints(&self, _: &str, _: &str) -> Vec<(String, String)> {
            Vec::new()
        }
        fn tracepoint_format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
            None
        }
        fn all_tracepoints(&self) -> Vec<String> {
            Vec::new()
        }
        fn kernel_types_missing(&self) -> Option<String> {
            None
        }
        fn kernel_type_named(&self, name: &str) -> Option<KTypeId> {
            match name {
                "struct task_struct" => Some(TASK),
                "struct load_weight" => Some(LOAD),
                _ => None,
            }
        }
        fn kernel_type(&self, id: KTypeId) -> Option<KType> {
            Some(match id {
                TASK => KType::Record {
                    name: "struct task_struct".into(),
                    union: false,
                    size: 64,
                    fields: vec![
                        field("pid", INT, 32, 0),
                        field("parent", TASK_PTR, 64, 0),
                        field("load", LOAD, 128, 0),
                        field("flag", UINT, 259, 1),
                        field("comm", COMM, 320, 0),
                    ],
                },
                LOAD => KType::Record {
                    name: "struct load_weight".into(),
                    union: false,
                    size: 16,
                    fields: vec![field("weight", ULONG, 0, 0), field("inv_weight", UINT, 64, 0)],
                },
                INT => KType::Int { bytes: 4, signed: true, char: false },
                ULONG => KType::Int { bytes: 8, signed: false, char: false },
                UINT => KType::Int { bytes: 4, signed: false, char: false },
                CHAR => KType::Int { bytes: 1, signed: true, char: true },
                COMM => KType::Array { elem: CHAR, len: 16 },
                TASK_PTR => KType::Pointer { to: TASK },
                _ => return None,
            })
        }
        fn kernel_type_name(&self, id: KTypeId) -> String {
            match id {
                TASK => "struct task_struct".into(),
                LOAD => "struct load_weight".into(),
                _ => format!("type {id}"),
            }
        }
        fn kernel_type_size(&self, id: KTypeId) -> Option<u32> {
            match self.kernel_type(id)? {
                KType::Array { len, .. } => Some(len),
                other => other.own_size(),
            }
        }
    }

    /// The value assigned to `@x` by `BEGIN { @x = EXPR; }`.
    fn value_of(expr: &str) -> crate::hir::Expr {
        let (ast, diags) = grammar::parse(&format!("BEGIN {{ @x = {expr}; }}"));
        assert!(diags.is_empty(), "{diags:?}");
        let (program, diags) = check(&ast, &Kernel, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{expr}: {diags:?}"));
        match &program.probes[0].body[0].kind {
            StmtKind::AssignMap { value, .. } => value.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_member_chain_is_one_read_at_the_summed_offset() {
        let e = value_of("curtask->parent->load.inv_weight");
        let ExprKind::KernelRead { addr, offset: 24, bitfield: None, .. } = e.kind else { panic!("{e:?}") };
        assert_eq!(e.ty, Type::U32);
        // The parent pointer itself is read from curtask + 8.
        assert!(matches!(addr.kind, ExprKind::KernelRead { offset: 8, .. }), "{addr:?}");
        assert!(matches!(addr.ty, Type::Pointer { target: Some(TASK), .. }));
    }

    #[test]
    fn bitfields_char_arrays_and_whole_structs() {
        let e = value_of("curtask->flag");
        assert!(
            matches!(e.kind, ExprKind::KernelRead { offset: 32, bitfield: Some(Bitfield { shift: 3, bits: 1 }), .. }),
            "{e:?}"
        );
        assert_eq!(value_of("curtask->comm").ty, Type::Str { len: 16 });
        let Type::Record(layout) = value_of("((struct task_struct *)curtask)->load").ty else { panic!() };
        assert_eq!((layout.name.as_str(), layout.size, layout.fields.len()), ("struct load_weight", 16, 2));
        assert!(matches!(value_of("sizeof(struct task_struct)").kind, ExprKind::Int(64)));
        assert!(matches!(value_of("offsetof(struct task_struct, load)").kind, ExprKind::Int(16)));
        assert!(matches!(value_of("sizeof(curtask->comm)").kind, ExprKind::Int(16)));
    }

    /// A catalog without kernel types (no BTF): `curtask` is an integer, and following it says why.
    struct NoBtf;

    impl ProbeCatalog for NoBtf {
        fn match_tracepoints(&self, _: &str, _: &str) -> Vec<(String, String)> {
            Vec::new()
        }
        fn tracepoint_format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
            None
        }
        fn all_tracepoints(&self) -> Vec<String> {
            Vec::new()
        }
    }

    #[test]
    fn without_btf_the_error_says_so() {
        let (ast, _) = grammar::parse("BEGIN { @x = curtask->pid; @y = (struct task_struct *)curtask; }");
        let (_, diags) = check(&ast, &NoBtf, &CheckOptions::default());
        let help = diags[0].help.clone().unwrap_or_default();
        assert!(help.contains("kernel types (BTF) are not available"), "{diags:?}");
        assert!(diags[1].message.contains("kernel types are not available"), "{diags:?}");
    }

    #[test]
    fn mistakes_name_the_nearest_fields() {
        let (ast, _) = grammar::parse("BEGIN { @x = curtask->pdi; @y = curtask.pid; }");
        let (_, diags) = check(&ast, &Kernel, &CheckOptions::default());
        let text: Vec<String> = diags.iter().map(|d| format!("{} / {:?}", d.message, d.help)).collect();
        assert!(text[0].contains("does not contain a field named 'pdi'") && text[0].contains("pid"), "{text:?}");
        assert!(text[1].contains("Try dereferencing it first, or using '->'"), "{text:?}");
    }
}
