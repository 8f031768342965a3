//! Operators on pointers, as C and bpftrace 0.17 have them: `p + n` and `p - n` move by `n`
//! objects of the pointee's size (`(int32 *)32 - 1` is 28), `++`/`--` by one, two pointers only
//! compare, and every other operator on a pointer is an error.

use super::expr::{arithmetic_or_comparison, error_expr};
use super::Checker;
use crate::hir::{self, Expr, ExprKind};
use crate::types::Type;
use grammar::ast::BinaryOp as AstBin;
use grammar::{Diagnostic, Span};

/// Sizes of the C integer types a tracepoint's pointer field may point at, by name.
const C_SIZES: &[(&str, u32)] = &[
    ("char", 1),
    ("signed char", 1),
    ("unsigned char", 1),
    ("u8", 1),
    ("s8", 1),
    ("short", 2),
    ("unsigned short", 2),
    ("u16", 2),
    ("s16", 2),
    ("int", 4),
    ("unsigned int", 4),
    ("u32", 4),
    ("s32", 4),
    ("long", 8),
    ("unsigned long", 8),
    ("long long", 8),
    ("unsigned long long", 8),
    ("u64", 8),
    ("s64", 8),
    ("size_t", 8),
];

impl Checker<'_> {
    /// Bytes of the object a pointer points at: what `p + 1` adds. A pointee rbt cannot size
    /// (`void`, a struct it does not know) counts as 1 byte, as GNU C counts `void *`.
    pub(super) fn pointee_size(&self, ty: &Type) -> u32 {
        let Type::Pointer { pointee, target } = ty else { return 1 };
        if let Some(size) = target.and_then(|id| self.catalog.kernel_type_size(id)) {
            return size.max(1);
        }
        let mut name = pointee.trim();
        for qualifier in ["const ", "volatile "] {
            name = name.strip_prefix(qualifier).unwrap_or(name).trim();
        }
        if let Some((_, size)) = C_SIZES.iter().find(|(n, _)| *n == name) {
            return *size;
        }
        self.catalog.kernel_type_named(name).and_then(|id| self.catalog.kernel_type_size(id)).unwrap_or(1).max(1)
    }

    /// `lhs op rhs` where either side is a pointer.
    pub(super) fn check_pointer_binary(&mut self, op: AstBin, lhs: Expr, rhs: Expr, span: Span) -> Expr {
        let (lptr, rptr) = (matches!(lhs.ty, Type::Pointer { .. }), matches!(rhs.ty, Type::Pointer { .. }));
        let invalid = |this: &mut Self, lhs: &Expr, rhs: &Expr| {
            this.error(Diagnostic::error(
                "type-mismatch",
                format!("The {} operator can not be used on expressions of types {}, {}", op.symbol(), lhs.ty, rhs.ty),
                span,
            ));
            error_expr(span)
        };
        let Some(hop) = arithmetic_or_comparison(op).filter(|_| lhs.ty.is_integer() && rhs.ty.is_integer()) else {
            return invalid(self, &lhs, &rhs);
        };
        if op.is_comparison() {
            let ty = if lptr && rptr { Type::U64 } else { Type::I64 };
            return Expr { kind: ExprKind::Binary { op: hop, lhs: Box::new(lhs), rhs: Box::new(rhs) }, ty, span };
        }
        // `n - p` means nothing, and neither does `p + q` or `p - q` here (bpftrace refuses them).
        let moves = op == AstBin::Add || (op == AstBin::Sub && lptr);
        if !moves || (lptr && rptr) {
            return invalid(self, &lhs, &rhs);
        }
        let (ptr, offset) = if lptr { (lhs, rhs) } else { (rhs, lhs) };
        let ty = ptr.ty.clone();
        let offset = self.scaled_offset(offset, self.pointee_size(&ty));
        Expr { kind: ExprKind::Binary { op: hop, lhs: Box::new(ptr), rhs: Box::new(offset) }, ty, span }
    }

    /// `n * size` as the byte offset of `n` objects; bpftrace 0.17 zero-extends a narrow `n`
    /// first, so `(int8)-1` objects are 255 of them.
    fn scaled_offset(&mut self, n: Expr, size: u32) -> Expr {
        let span = n.span;
        let n = match n.ty {
            Type::Int { bytes, signed: true } if bytes < 8 => {
                Expr { kind: ExprKind::Cast { expr: Box::new(n) }, ty: Type::Int { bytes, signed: false }, span }
            }
            _ => n,
        };
        if size == 1 {
            return n;
        }
        let size = Expr { kind: ExprKind::Int(u64::from(size)), ty: Type::U64, span };
        Expr {
            kind: ExprKind::Binary { op: hir::BinaryOp::Mul, lhs: Box::new(n), rhs: Box::new(size) },
            ty: Type::U64,
            span,
        }
    }

    /// `-p`, `!p`, `~p`: bpftrace allows only `*`, `++` and `--` on a pointer.
    pub(super) fn refuse_pointer_unary(&mut self, symbol: &str, operand: &Expr, span: Span) -> bool {
        if !matches!(operand.ty, Type::Pointer { .. }) {
            return false;
        }
        self.error(Diagnostic::error(
            "type-mismatch",
            format!("The {symbol} operator can not be used on expressions of type '{}'", operand.ty),
            span,
        ));
        true
    }

    /// How far `++`/`--` moves a value of `ty`: one object for a pointer, 1 for an integer.
    pub(super) fn step_of(&self, ty: &Type) -> u32 {
        match ty {
            Type::Pointer { .. } => self.pointee_size(ty),
            _ => 1,
        }
    }
}
