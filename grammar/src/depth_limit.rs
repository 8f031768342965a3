//! Bounds how deeply expressions nest. Every pass after the parser walks the AST recursively (and
//! so does `Drop`), so input such as 100,000 chained `-` or `1+1+...+1` would overflow the stack;
//! such an expression is reported and replaced by an `Error` node, taken apart without recursion.

use crate::ast::{Block, Expr, ExprKind, Program, Stmt, StmtKind};
use crate::{Diagnostic, Span};

/// The deepest expression tree accepted: far beyond what people write (bpftrace 0.17 takes at
/// least 300 levels), and within what the compiler's own stack holds (`compiler::compile`).
pub const MAX_EXPR_DEPTH: usize = 1024;

pub(crate) fn limit_expr_depth(program: &mut Program, diagnostics: &mut Vec<Diagnostic>) {
    for probe in &mut program.probes {
        if let Some(predicate) = &mut probe.predicate {
            limit(predicate, diagnostics);
        }
        limit_block(&mut probe.body, diagnostics);
    }
}

/// Blocks nest at most as deep as the tokenizer's bracket limit, so recursing here is bounded.
fn limit_block(block: &mut Block, diagnostics: &mut Vec<Diagnostic>) {
    for stmt in &mut block.stmts {
        limit_stmt(stmt, diagnostics);
    }
}

fn limit_stmt(stmt: &mut Stmt, diagnostics: &mut Vec<Diagnostic>) {
    match &mut stmt.kind {
        StmtKind::Expr(expr) => limit(expr, diagnostics),
        StmtKind::AssignVar { value, .. } => limit(value, diagnostics),
        StmtKind::AssignMap { map, value, .. } => {
            for key in &mut map.keys {
                limit(key, diagnostics);
            }
            limit(value, diagnostics);
        }
        StmtKind::If { cond, then_block, else_block } => {
            limit(cond, diagnostics);
            limit_block(then_block, diagnostics);
            if let Some(else_block) = else_block {
                limit_block(else_block, diagnostics);
            }
        }
        StmtKind::While { cond: expr, body } | StmtKind::Unroll { count: expr, body } => {
            limit(expr, diagnostics);
            limit_block(body, diagnostics);
        }
        StmtKind::Return | StmtKind::Error => {}
    }
}

fn limit(expr: &mut Expr, diagnostics: &mut Vec<Diagnostic>) {
    if depth(expr) <= MAX_EXPR_DEPTH {
        return;
    }
    diagnostics.push(Diagnostic::error(
        "syntax",
        format!("expression nested more than {MAX_EXPR_DEPTH} levels deep"),
        expr.span,
    ));
    let error = Expr { kind: ExprKind::Error, span: expr.span };
    dismantle(std::mem::replace(expr, error));
}

/// The depth of the tree under `expr`, computed with an explicit stack.
fn depth(expr: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(expr, 1usize)];
    while let Some((expr, level)) = stack.pop() {
        deepest = deepest.max(level);
        if level > MAX_EXPR_DEPTH {
            break;
        }
        stack.extend(children(expr).into_iter().map(|child| (child, level + 1)));
    }
    deepest
}

fn children(expr: &Expr) -> Vec<&Expr> {
    match &expr.kind {
        ExprKind::Map(map) => map.keys.iter().collect(),
        ExprKind::Call { args: items, .. } | ExprKind::Tuple(items) => items.iter().collect(),
        ExprKind::Unary { expr: inner, .. }
        | ExprKind::Field { expr: inner, .. }
        | ExprKind::Cast { expr: inner, .. }
        | ExprKind::IncDec { target: inner, .. }
        | ExprKind::SizeofExpr(inner) => vec![inner],
        ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
        ExprKind::Index { expr, index } => vec![expr, index],
        ExprKind::Ternary { cond, then_expr, else_expr } => vec![cond, then_expr, else_expr],
        ExprKind::Int(_)
        | ExprKind::Str(_)
        | ExprKind::Var(_)
        | ExprKind::Param(_)
        | ExprKind::ParamCount
        | ExprKind::Builtin(_)
        | ExprKind::SizeofType(_)
        | ExprKind::Offsetof { .. }
        | ExprKind::Error => Vec::new(),
    }
}

/// Drops a tree of any depth without recursion by moving each node's children onto a stack first.
fn dismantle(expr: Expr) {
    let mut stack = vec![expr];
    while let Some(mut expr) = stack.pop() {
        let take = |boxed: &mut Box<Expr>| {
            std::mem::replace(&mut **boxed, Expr { kind: ExprKind::Error, span: Span::default() })
        };
        match &mut expr.kind {
            ExprKind::Map(map) => stack.append(&mut map.keys),
            ExprKind::Call { args: items, .. } | ExprKind::Tuple(items) => stack.append(items),
            ExprKind::Unary { expr: inner, .. }
            | ExprKind::Field { expr: inner, .. }
            | ExprKind::Cast { expr: inner, .. }
            | ExprKind::IncDec { target: inner, .. }
            | ExprKind::SizeofExpr(inner) => stack.push(take(inner)),
            ExprKind::Binary { lhs, rhs, .. } => stack.extend([take(lhs), take(rhs)]),
            ExprKind::Index { expr, index } => stack.extend([take(expr), take(index)]),
            ExprKind::Ternary { cond, then_expr, else_expr } => {
                stack.extend([take(cond), take(then_expr), take(else_expr)]);
            }
            _ => {}
        }
    }
}
