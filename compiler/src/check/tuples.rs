//! Tuples: `(a, b, c)` built from integers, strings, tuples and the formatted values bpftrace
//! 0.17 lets a tuple hold (kernel structs and arrays, `strftime`, `ntop`, `buf`, `macaddr`), and
//! `t.N`, a field read by its constant index.

use super::Checker;
use crate::hir::{Expr, ExprKind};
use crate::types::Type;
use grammar::ast;
use grammar::{Diagnostic, Span};

/// Whether a tuple may hold a value of `ty`.
fn fits_in_tuple(ty: &Type) -> bool {
    ty.is_integer()
        || ty.is_string()
        || matches!(
            ty,
            Type::Tuple(_)
                | Type::Record(_)
                | Type::Array { .. }
                | Type::Timestamp(_)
                | Type::Inet
                | Type::Buffer { .. }
                | Type::MacAddr
                | Type::Strerror
                | Type::None
        )
}

impl Checker<'_> {
    pub(super) fn check_tuple(&mut self, items: &[ast::Expr], span: Span) -> Expr {
        let items: Vec<Expr> = items.iter().map(|i| self.check_expr(i)).collect();
        for item in &items {
            if !fits_in_tuple(&item.ty) {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!("a tuple cannot hold a value of type '{}'", item.ty),
                    item.span,
                ));
            }
        }
        let ty = Type::Tuple(items.iter().map(|i| i.ty.clone()).collect());
        Expr { kind: ExprKind::Tuple(items), ty, span }
    }

    /// `t.N`: the N-th field of a tuple value (a variable, a map value, a tuple built in place).
    pub(super) fn tuple_field(&mut self, tuple: Expr, field: &ast::Ident, span: Span) -> Option<Expr> {
        let Type::Tuple(fields) = &tuple.ty else { return None };
        let Ok(index) = field.name.parse::<usize>() else {
            self.error(Diagnostic::error(
                "type-mismatch",
                "Tuples must be indexed with a constant and non-negative integer",
                field.span,
            ));
            return None;
        };
        let Some(ty) = fields.get(index).cloned() else {
            self.error(Diagnostic::error(
                "out-of-bounds",
                format!("Invalid tuple index: {index}. Found {} elements in tuple.", fields.len()),
                field.span,
            ));
            return None;
        };
        // rbt keeps integers 8 bytes wide in a tuple; their low bytes hold the field's value
        // (little-endian), which is what a read at the field's own width takes.
        let offset = Type::tuple_offsets(fields)[index];
        let kind = ExprKind::Member { base: Box::new(tuple), offset, bitfield: None };
        Some(Expr { kind, ty, span })
    }
}
