//! Typing expressions: literals, variables, map reads, builtins, tracepoint fields, operators.

use super::uprobe_locals::Visible;
use super::{suggest, Checker};
use crate::hir::{self, AttachPoint, Expr, ExprKind};
use crate::tracepoint::FieldType;
use crate::types::{MapValue, Type};
use grammar::ast::{self, BinaryOp as AstBin, UnaryOp as AstUn};
use grammar::{Diagnostic, Span};

impl Checker<'_> {
    pub(super) fn check_expr(&mut self, e: &ast::Expr) -> Expr {
        let span = e.span;
        match &e.kind {
            ast::ExprKind::Int(v) => Expr { kind: ExprKind::Int(*v), ty: Type::I64, span },
            ast::ExprKind::Str(s) => string_literal(s.as_bytes().to_vec(), span),
            ast::ExprKind::Var(name) => self.check_var(name, span),
            // `positional.rs` replaced every parameter with its value before checking.
            ast::ExprKind::Param(_) | ast::ExprKind::ParamCount => error_expr(span),
            ast::ExprKind::Map(access) => self.check_map_value(access),
            ast::ExprKind::Builtin(name) => self.check_builtin(name, span),
            ast::ExprKind::Call { name, args } => self.check_value_call(name, args, span),
            ast::ExprKind::Unary { op, expr } => self.check_unary(*op, expr, span),
            ast::ExprKind::Binary { op, lhs, rhs } => self.check_binary(*op, lhs, rhs, span),
            ast::ExprKind::Ternary { cond, then_expr, else_expr } => {
                self.check_ternary(cond, then_expr, else_expr, span)
            }
            ast::ExprKind::Field { expr, field, .. } if is_args(expr) => self.check_field(expr, field, span),
            ast::ExprKind::Field { expr, field, arrow: false } if is_locals(expr) => {
                self.uprobe_variable(field, Visible::Any, span)
            }
            ast::ExprKind::Field { expr: inner, field: member, arrow: false } if local_name(inner).is_some() => {
                let var = local_name(inner).expect("matched");
                self.uprobe_variable_member(var, member, span).unwrap_or_else(|| self.check_member_expr(e))
            }
            ast::ExprKind::Field { .. } | ast::ExprKind::Index { .. } => self.check_member_expr(e),
            ast::ExprKind::Cast { ty, expr } if ty.tag.is_some() || ty.pointer_depth > 0 => {
                self.check_kernel_cast(ty, expr, span).unwrap_or_else(|| error_expr(span))
            }
            ast::ExprKind::Cast { ty, expr } => self.check_cast(ty, expr, span),
            ast::ExprKind::Tuple(items) => self.check_tuple(items, span),
            ast::ExprKind::IncDec { target, increment, prefix } => {
                let target = self.check_lvalue(target, true);
                match target {
                    Some((target, ty)) => {
                        let step = self.step_of(&ty);
                        Expr {
                            // `$x++` on a narrow variable is typed 64-bit like the other unary
                            // operators, and computed at the variable's width; a pointer stays
                            // a pointer.
                            ty: match (&target, &ty) {
                                (_, Type::Pointer { .. }) | (hir::LValue::Map { .. }, _) => ty,
                                (hir::LValue::Var(_), _) => int_or_u64(&ty),
                            },
                            kind: ExprKind::IncDec { target, increment: *increment, prefix: *prefix, step },
                            span,
                        }
                    }
                    None => error_expr(span),
                }
            }
            ast::ExprKind::SizeofType(ty) => self.check_sizeof_type(ty, span),
            ast::ExprKind::SizeofExpr(e) => self.check_sizeof_expr(e, span),
            ast::ExprKind::Offsetof { ty, field } => self.check_offsetof(ty, field, span),
            ast::ExprKind::Error => error_expr(span),
        }
    }

    fn check_ternary(&mut self, cond: &ast::Expr, then_expr: &ast::Expr, else_expr: &ast::Expr, span: Span) -> Expr {
        let cond = self.check_expr(cond);
        self.expect_integer(&cond, "condition");
        let then_expr = self.check_expr(then_expr);
        let else_expr = self.check_expr(else_expr);
        if !then_expr.ty.accepts(&else_expr.ty) && !is_error(&then_expr) && !is_error(&else_expr) {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("ternary operator branches must have the same type: '{}' and '{}'", then_expr.ty, else_expr.ty),
                span,
            ));
        }
        // bpftrace 0.17: a 64-bit integer of the left branch's sign.
        let ty = match &then_expr.ty {
            Type::Int { signed, .. } => Type::Int { bytes: 8, signed: *signed },
            other => other.widen(&else_expr.ty),
        };
        let kind =
            ExprKind::Ternary { cond: Box::new(cond), then_expr: Box::new(then_expr), else_expr: Box::new(else_expr) };
        Expr { kind, ty, span }
    }

    fn unsupported(&mut self, what: &str, span: Span) -> Expr {
        self.error(Diagnostic::error("unsupported", format!("{what} is not supported by rbt yet"), span));
        error_expr(span)
    }

    fn check_var(&mut self, name: &str, span: Span) -> Expr {
        if let Some(&id) = self.scope.var_ids.get(name) {
            let ty = self.scope.vars[id.0 as usize].ty.clone();
            if self.scope.ctx_vars.contains(name) {
                return Expr { kind: ExprKind::Builtin(crate::hir::Builtin::Ctx), ty, span };
            }
            return Expr { kind: ExprKind::Var(id), ty, span };
        }
        if self.scope.failed_vars.contains(name) {
            return error_expr(span);
        }
        let names: Vec<String> = self.scope.vars.iter().map(|v| format!("${}", v.name)).collect();
        let mut diag =
            Diagnostic::error("undefined-variable", format!("undefined or undeclared variable: ${name}"), span)
                .with_primary_text("used before any assignment in this probe");
        if let Some(near) = suggest(&format!("${name}"), names.iter().map(String::as_str)) {
            diag = diag.with_help(format!("did you mean `{near}`?"));
        }
        self.error(diag);
        error_expr(span)
    }

    /// A map read as a value. bpftrace 0.17 has no value for an avg, stats or histogram element
    /// (its own reads of them return one of their internal buckets).
    fn check_map_value(&mut self, access: &ast::MapAccess) -> Expr {
        let read = self.check_map_read(access);
        if let ExprKind::MapRead { map, .. } = &read.kind {
            let value = &self.maps[map.0 as usize].value;
            let kind = match value {
                MapValue::Avg { .. } => "an avg()",
                MapValue::Stats { .. } => "a stats()",
                MapValue::Hist => "a hist()",
                MapValue::Lhist { .. } => "an lhist()",
                _ => return read,
            };
            let message = format!("@{} is {kind} map, which cannot be read as a value", access.name);
            self.error(Diagnostic::error("type-mismatch", message, access.span).with_help("print it with print()"));
            return error_expr(access.span);
        }
        read
    }

    pub(super) fn check_map_read(&mut self, access: &ast::MapAccess) -> Expr {
        let keys: Vec<Expr> = access.keys.iter().map(|k| self.check_expr(k)).collect();
        let Some(id) = self.lookup_map(access) else { return error_expr(access.span) };
        let key_types: Vec<Type> = keys.iter().map(|k| key_type(&k.ty)).collect();
        let declared = self.maps[id.0 as usize].key.clone();
        self.check_keys(id, access, &declared, &key_types);
        let ty = self.maps[id.0 as usize].value.read_type();
        Expr { kind: ExprKind::MapRead { map: id, keys }, ty, span: access.span }
    }

    fn check_field(&mut self, base: &ast::Expr, field: &ast::Ident, span: Span) -> Expr {
        if let Some(AttachPoint::Fentry { func, .. } | AttachPoint::RawTracepoint { signature: Some(func), .. }) =
            &self.scope.attach
        {
            let func = func.clone();
            return self.fentry_arg(&func, field, span);
        }
        let base = self.check_expr(base);
        if base.ty != Type::Args {
            if base.ty != Type::None {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!("cannot access field '{}' on a value of type '{}'", field.name, base.ty),
                    field.span,
                ));
            }
            return error_expr(span);
        }
        if let Some(AttachPoint::Uprobe { address: Some(_), ret: false, .. }) = &self.scope.attach {
            // Mid-function, the argument registers hold whatever the code put there since:
            // a parameter is read where DWARF says it is at the line.
            return self.uprobe_variable(field, Visible::Parameters, span);
        }
        if let Some(AttachPoint::Uprobe { path, func, ret: false, .. }) = &self.scope.attach {
            let (path, func) = (path.clone(), func.clone());
            return self.uprobe_arg(&path, &func, field, span);
        }
        let Some(AttachPoint::Tracepoint { format, category, event }) = self.scope.attach.clone() else {
            return error_expr(span);
        };
        let visible = format.fields.iter().filter(|f| !f.common);
        let Some(f) = format.fields.iter().find(|f| !f.common && f.name == field.name) else {
            let names: Vec<&str> = visible.map(|f| f.name.as_str()).collect();
            let mut diag = Diagnostic::error(
                "unknown-field",
                format!("tracepoint {category}:{event} has no field named '{}'", field.name),
                field.span,
            );
            diag = match suggest(&field.name, names.iter().copied()) {
                Some(near) => diag.with_help(format!("did you mean `{near}`? fields: {}", names.join(", "))),
                None => diag.with_help(format!("fields: {}", names.join(", "))),
            };
            self.error(diag);
            return error_expr(span);
        };
        let ty = match &f.ty {
            FieldType::Integer { size, signed } => Type::Int { bytes: *size, signed: *signed },
            FieldType::Pointer { pointee } => self.tracepoint_pointer(pointee),
            FieldType::CharArray { len } => Type::Str { len: *len },
            FieldType::DataLocString => Type::Str { len: self.options.strlen },
            FieldType::IntArray { .. } | FieldType::Unsupported => {
                self.error(Diagnostic::error(
                    "unsupported-field",
                    format!("field '{}' has type '{}', which rbt cannot read yet", f.name, f.c_type),
                    field.span,
                ));
                return error_expr(span);
            }
        };
        let kind = ExprKind::ArgsField { offset: f.offset, size: f.size, ty: f.ty.clone() };
        Expr { kind, ty, span }
    }

    fn check_cast(&mut self, ty: &ast::TypeName, expr: &ast::Expr, span: Span) -> Expr {
        let inner = self.check_expr(expr);
        let target = match (ty.tag.as_deref(), ty.name.as_str(), ty.pointer_depth) {
            (None, name, 0) => int_type_named(name),
            _ => None,
        };
        let Some(target) = target else {
            self.error(
                Diagnostic::error("unsupported", format!("cannot cast to '{}'", ty.name), ty.span)
                    .with_help("rbt can cast to int8, int16, int32, int64, uint8, uint16, uint32 and uint64"),
            );
            return error_expr(span);
        };
        if !inner.ty.is_integer() && inner.ty != Type::None {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("cannot cast a value of type '{}' to '{target}'", inner.ty),
                inner.span,
            ));
        }
        Expr { kind: ExprKind::Cast { expr: Box::new(inner) }, ty: target, span }
    }

    fn check_unary(&mut self, op: AstUn, inner_ast: &ast::Expr, span: Span) -> Expr {
        if op == AstUn::Deref {
            return self.check_member_expr(&ast::Expr {
                kind: ast::ExprKind::Unary { op, expr: Box::new(inner_ast.clone()) },
                span,
            });
        }
        let inner = self.check_expr(inner_ast);
        let op = match op {
            AstUn::Neg => hir::UnaryOp::Neg,
            AstUn::LogicalNot => hir::UnaryOp::LogicalNot,
            AstUn::BitNot => hir::UnaryOp::BitNot,
            AstUn::Deref => unreachable!("handled above"),
            AstUn::AddrOf => return self.unsupported("taking an address (&)", span),
        };
        let symbol = match op {
            hir::UnaryOp::Neg => "-",
            hir::UnaryOp::LogicalNot => "!",
            hir::UnaryOp::BitNot => "~",
        };
        if self.refuse_pointer_unary(symbol, &inner, span) {
            return error_expr(span);
        }
        self.expect_integer(&inner, "operand");
        // bpftrace 0.17's types: `!x` is unsigned of x's width, `-x` and `~x` are 64-bit with x's
        // sign (but computed at x's width, see `ProbeLowering::int_width`).
        let ty = match op {
            hir::UnaryOp::LogicalNot => match inner.ty.int_bytes() {
                1 => Type::Int { bytes: 1, signed: false },
                2 => Type::Int { bytes: 2, signed: false },
                4 => Type::U32,
                _ => Type::U64,
            },
            hir::UnaryOp::Neg | hir::UnaryOp::BitNot => int_or_u64(&inner.ty),
        };
        Expr { kind: ExprKind::Unary { op, expr: Box::new(inner) }, ty, span }
    }

    fn check_binary(&mut self, op: AstBin, lhs: &ast::Expr, rhs: &ast::Expr, span: Span) -> Expr {
        let lhs = self.check_expr(lhs);
        let rhs = self.check_expr(rhs);
        if lhs.ty == Type::None || rhs.ty == Type::None {
            // While collecting, a map read before its first assignment has no type yet, and
            // bpftrace 0.17 then types the operation unsigned: `@m = @m - 3` makes @m a uint64.
            if self.collecting {
                return Expr { kind: ExprKind::Int(0), ty: Type::U64, span };
            }
            return error_expr(span);
        }
        if matches!(lhs.ty, Type::Pointer { .. }) || matches!(rhs.ty, Type::Pointer { .. }) {
            return self.check_pointer_binary(op, lhs, rhs, span);
        }
        if matches!(op, AstBin::LogicalAnd | AstBin::LogicalOr) {
            self.expect_integer(&lhs, "operand of a logical operator");
            self.expect_integer(&rhs, "operand of a logical operator");
            let kind = ExprKind::Logical { is_and: op == AstBin::LogicalAnd, lhs: Box::new(lhs), rhs: Box::new(rhs) };
            return Expr { kind, ty: Type::I64, span };
        }
        if let (Type::Buffer { cap: a }, Type::Buffer { cap: b }) = (&lhs.ty, &rhs.ty) {
            if matches!(op, AstBin::Eq | AstBin::Ne) {
                // bpftrace 0.17 compares buffers as strings over the smaller one's size.
                let limit = (*a).min(*b);
                let kind =
                    ExprKind::StrCompare { negate: op == AstBin::Ne, lhs: Box::new(lhs), rhs: Box::new(rhs), limit };
                return Expr { kind, ty: Type::I64, span };
            }
        }
        if let (Type::Array { elem, .. }, Type::Array { .. }, AstBin::Eq | AstBin::Ne) = (&lhs.ty, &rhs.ty, op) {
            if lhs.ty != rhs.ty || !matches!(**elem, Type::Int { .. }) {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    "Only arrays of same sized integer support comparison operators.",
                    span,
                ));
                return error_expr(span);
            }
            let kind = ExprKind::MemEqual { negate: op == AstBin::Ne, lhs: Box::new(lhs), rhs: Box::new(rhs) };
            return Expr { kind, ty: Type::I64, span };
        }
        if lhs.ty.is_string() || rhs.ty.is_string() {
            if matches!(op, AstBin::Eq | AstBin::Ne) && lhs.ty.is_string() && rhs.ty.is_string() {
                let limit = match (&lhs.ty, &rhs.ty) {
                    (Type::Str { len: a }, Type::Str { len: b }) => (*a).max(*b),
                    _ => 0,
                };
                let kind =
                    ExprKind::StrCompare { negate: op == AstBin::Ne, lhs: Box::new(lhs), rhs: Box::new(rhs), limit };
                return Expr { kind, ty: Type::I64, span };
            }
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("type mismatch for '{}': comparing '{}' with '{}'", op.symbol(), lhs.ty, rhs.ty),
                span,
            ));
            return error_expr(span);
        }
        self.expect_integer(&lhs, "operand");
        self.expect_integer(&rhs, "operand");
        // bpftrace 0.17: signed when both operands are (comparisons included), shifts take the
        // left operand's sign.
        let signed = match op {
            AstBin::Shl | AstBin::Shr => lhs.ty.is_signed(),
            _ => lhs.ty.is_signed() && rhs.ty.is_signed(),
        };
        let Some(hop) = arithmetic_or_comparison(op) else { return error_expr(span) };
        let ty = Type::Int { bytes: 8, signed };
        let kind = ExprKind::Binary { op: hop, lhs: Box::new(lhs), rhs: Box::new(rhs) };
        Expr { kind, ty, span }
    }

    /// The variable or map element `++`/`--` or a compound assignment updates, and its type.
    pub(super) fn check_lvalue(&mut self, target: &ast::Expr, implicit_define: bool) -> Option<(hir::LValue, Type)> {
        match &target.kind {
            ast::ExprKind::Var(name) => {
                if let Some(&id) = self.scope.var_ids.get(name) {
                    let ty = self.scope.vars[id.0 as usize].ty.clone();
                    if !ty.is_integer() {
                        self.error(Diagnostic::error(
                            "type-mismatch",
                            format!("${name} holds a '{ty}', which cannot be incremented"),
                            target.span,
                        ));
                    }
                    return Some((hir::LValue::Var(id), ty));
                }
                self.check_var(name, target.span);
                None
            }
            ast::ExprKind::Map(access) => {
                let keys: Vec<Expr> = access.keys.iter().map(|k| self.check_expr(k)).collect();
                let key_types: Vec<Type> = keys.iter().map(|k| key_type(&k.ty)).collect();
                let id = if implicit_define {
                    // `@x++` defines @x as an integer map, as bpftrace does.
                    self.define_map(access, &key_types, MapValue::Plain(Type::I64))
                } else {
                    self.lookup_map(access)?
                };
                let ty = self.maps[id.0 as usize].value.read_type();
                Some((hir::LValue::Map { map: id, keys }, ty))
            }
            _ => {
                self.error(Diagnostic::error(
                    "not-assignable",
                    "only variables and map elements can be incremented or decremented",
                    target.span,
                ));
                None
            }
        }
    }
}

/// The HIR operator for an arithmetic, bitwise or comparison operator; `None` for `&&`/`||`,
/// which lower to short-circuit control flow instead.
pub(super) fn arithmetic_or_comparison(op: AstBin) -> Option<hir::BinaryOp> {
    Some(match op {
        AstBin::Add => hir::BinaryOp::Add,
        AstBin::Sub => hir::BinaryOp::Sub,
        AstBin::Mul => hir::BinaryOp::Mul,
        AstBin::Div => hir::BinaryOp::Div,
        AstBin::Mod => hir::BinaryOp::Mod,
        AstBin::BitAnd => hir::BinaryOp::BitAnd,
        AstBin::BitOr => hir::BinaryOp::BitOr,
        AstBin::BitXor => hir::BinaryOp::BitXor,
        AstBin::Shl => hir::BinaryOp::Shl,
        AstBin::Shr => hir::BinaryOp::Shr,
        AstBin::Eq => hir::BinaryOp::Eq,
        AstBin::Ne => hir::BinaryOp::Ne,
        AstBin::Lt => hir::BinaryOp::Lt,
        AstBin::Le => hir::BinaryOp::Le,
        AstBin::Gt => hir::BinaryOp::Gt,
        AstBin::Ge => hir::BinaryOp::Ge,
        AstBin::LogicalAnd | AstBin::LogicalOr => return None,
    })
}

pub(super) fn string_literal(mut bytes: Vec<u8>, span: Span) -> Expr {
    let len = bytes.len() as u32 + 1;
    bytes.push(0);
    Expr { kind: ExprKind::Str(bytes), ty: Type::Str { len }, span }
}

pub(super) fn is_args(e: &ast::Expr) -> bool {
    matches!(&e.kind, ast::ExprKind::Builtin(name) if name == "args")
}

/// `VAR` in `locals.VAR`.
fn local_name(e: &ast::Expr) -> Option<&ast::Ident> {
    match &e.kind {
        ast::ExprKind::Field { expr, field, arrow: false } if is_locals(expr) => Some(field),
        _ => None,
    }
}

/// `locals`, whose fields are the variables visible at a uprobe's address.
pub(super) fn is_locals(e: &ast::Expr) -> bool {
    matches!(&e.kind, ast::ExprKind::Builtin(name) if name == "locals")
}

pub(super) fn error_expr(span: Span) -> Expr {
    Expr { kind: ExprKind::Int(0), ty: Type::None, span }
}

/// Whether `e` stands for an expression already reported as wrong ([`error_expr`]).
pub(super) fn is_error(e: &Expr) -> bool {
    e.ty == Type::None && matches!(e.kind, ExprKind::Int(0))
}

/// How a value is stored when used as a map key: integers are widened to 64 bits (pointers
/// stay pointers, which print in hex as keys).
pub(super) fn key_type(ty: &Type) -> Type {
    match ty {
        Type::Int { signed, .. } => Type::Int { bytes: 8, signed: *signed },
        Type::Tuple(fields) => Type::Tuple(fields.iter().map(key_type).collect()),
        other => other.clone(),
    }
}

fn int_or_u64(ty: &Type) -> Type {
    match ty {
        Type::Int { signed, .. } => Type::Int { bytes: 8, signed: *signed },
        _ => Type::U64,
    }
}

pub(super) fn int_type_named(name: &str) -> Option<Type> {
    let (signed, bits) = match name.strip_prefix('u') {
        Some(rest) => (false, rest.strip_prefix("int")?),
        None => (true, name.strip_prefix("int")?),
    };
    let bytes = match bits {
        "8" => 1,
        "16" => 2,
        "32" => 4,
        "64" => 8,
        _ => return None,
    };
    Some(Type::Int { bytes, signed })
}
