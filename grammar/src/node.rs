//! Small constructors the grammar's actions use to build spanned AST nodes.

use crate::ast::{Expr, ExprKind, MapAccess, Stmt, StmtKind};
use crate::Span;

pub(crate) fn expr(start: usize, kind: ExprKind, end: usize) -> Expr {
    Expr { kind, span: Span::new(start, end) }
}

pub(crate) fn stmt(start: usize, kind: StmtKind, end: usize) -> Stmt {
    Stmt { kind, span: Span::new(start, end) }
}

/// A map access used as a value; the expression spans the same text as the access.
pub(crate) fn map_expr(map: MapAccess) -> Expr {
    Expr { span: map.span, kind: ExprKind::Map(map) }
}
