//! Checking statements: assignments to variables and maps, aggregations, control flow.

use super::expr::{error_expr, key_type};
use super::Checker;
use crate::hir::{Expr, ExprKind, Stmt, StmtKind};
use crate::types::{MapValue, Type};
use grammar::ast::{self, BinaryOp};
use grammar::{Diagnostic, Span};

/// Most iterations `unroll` accepts, as in bpftrace.
const MAX_UNROLL: u64 = 100;

impl Checker<'_> {
    pub(super) fn check_block(&mut self, block: &ast::Block) -> Vec<Stmt> {
        let mut out = Vec::new();
        for stmt in &block.stmts {
            if let Some(s) = self.check_stmt(stmt) {
                out.push(s);
            }
        }
        out
    }

    fn check_stmt(&mut self, stmt: &ast::Stmt) -> Option<Stmt> {
        let span = stmt.span;
        let kind = match &stmt.kind {
            ast::StmtKind::Expr(e) => return self.check_expr_stmt(e, span),
            ast::StmtKind::AssignVar { var, op, value } => {
                let value = self.check_expr(value);
                let value = match op {
                    Some(op) => {
                        let current = var_expr(self, var)?;
                        self.compound(*op, current, value, span)
                    }
                    None => value,
                };
                if value.ty == Type::None {
                    self.scope.failed_vars.insert(var.name.clone());
                    return None;
                }
                if value.ty == Type::Args {
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        "args cannot be stored in a variable; use args->FIELD",
                        value.span,
                    ));
                    return None;
                }
                // `$x = ctx`: `$x` stands for `ctx` until it is assigned again, so that reads
                // through it are context loads too (as bpftrace keeps ctx access in a variable).
                if matches!(value.kind, ExprKind::Builtin(crate::hir::Builtin::Ctx)) {
                    self.scope.ctx_vars.insert(var.name.clone());
                } else {
                    self.scope.ctx_vars.remove(&var.name);
                }
                let id = self.assign_var(var, &value.ty);
                StmtKind::AssignVar { var: id, value }
            }
            ast::StmtKind::AssignMap { map, op, value } => return self.check_map_assign(map, *op, value, span),
            ast::StmtKind::If { cond, then_block, else_block } => {
                let cond = self.check_expr(cond);
                self.expect_integer(&cond, "condition");
                let then_body = self.check_block(then_block);
                let else_body = else_block.as_ref().map(|b| self.check_block(b)).unwrap_or_default();
                StmtKind::If { cond, then_body, else_body }
            }
            ast::StmtKind::While { cond, body } => {
                let cond = self.check_expr(cond);
                self.expect_integer(&cond, "condition");
                self.scope.loop_depth += 1;
                let body = self.check_block(body);
                self.scope.loop_depth -= 1;
                StmtKind::While { cond, body }
            }
            ast::StmtKind::Unroll { count, body } => {
                let n = match &count.kind {
                    ast::ExprKind::Int(n) if (1..=MAX_UNROLL).contains(n) => *n as u32,
                    // bpftrace 0.17's words for a count out of range.
                    ast::ExprKind::Int(n) => {
                        let message = if *n == 0 {
                            "unroll minimum value is 1".to_string()
                        } else {
                            format!("unroll maximum value is {MAX_UNROLL}")
                        };
                        self.error(Diagnostic::error("bad-unroll", message, count.span));
                        1
                    }
                    _ => {
                        self.error(Diagnostic::error(
                            "bad-unroll",
                            format!("unroll count must be an integer literal from 1 to {MAX_UNROLL}"),
                            count.span,
                        ));
                        1
                    }
                };
                let body = self.check_block(body);
                StmtKind::Unroll { count: n, body }
            }
            ast::StmtKind::Return => StmtKind::Return,
            ast::StmtKind::Error => return None,
        };
        Some(Stmt { kind, span })
    }

    fn check_expr_stmt(&mut self, e: &ast::Expr, span: Span) -> Option<Stmt> {
        // The parser reads `break` and `continue` as bare identifiers.
        if let ast::ExprKind::Builtin(word) = &e.kind {
            if word == "break" || word == "continue" {
                if self.scope.loop_depth == 0 {
                    self.error(Diagnostic::error("misplaced-jump", format!("'{word}' outside of a while loop"), span));
                    return None;
                }
                let kind = if word == "break" { StmtKind::Break } else { StmtKind::Continue };
                return Some(Stmt { kind, span });
            }
        }
        if let ast::ExprKind::Ternary { cond, then_expr, else_expr } = &e.kind {
            if is_statement(then_expr) && is_statement(else_expr) {
                // `c ? printf("a") : printf("b")`: bpftrace 0.17 runs one branch, as an `if`.
                let cond = self.check_expr(cond);
                self.expect_integer(&cond, "condition");
                let then_body = self.check_expr_stmt(then_expr, then_expr.span).into_iter().collect();
                let else_body = self.check_expr_stmt(else_expr, else_expr.span).into_iter().collect();
                return Some(Stmt { kind: StmtKind::If { cond, then_body, else_body }, span });
            }
        }
        if let ast::ExprKind::Call { name, args } = &e.kind {
            if let Some(kind) = self.check_stmt_call(name, args, span) {
                return kind.map(|kind| Stmt { kind, span });
            }
        }
        let e = self.check_expr(e);
        if e.ty == Type::None {
            return None;
        }
        Some(Stmt { kind: StmtKind::Expr(e), span })
    }

    /// `lhs op rhs` for `x op= rhs`, typed as an integer operation.
    fn compound(&mut self, op: BinaryOp, current: Expr, rhs: Expr, span: Span) -> Expr {
        if matches!(current.ty, Type::Pointer { .. }) || matches!(rhs.ty, Type::Pointer { .. }) {
            return self.check_pointer_binary(op, current, rhs, span);
        }
        if !current.ty.is_integer() || !rhs.ty.is_integer() {
            if current.ty != Type::None && rhs.ty != Type::None {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!("'{}=' needs integers, not '{}' and '{}'", op.symbol(), current.ty, rhs.ty),
                    span,
                ));
            }
            return error_expr(span);
        }
        let Some(hop) = super::expr::arithmetic_or_comparison(op) else { return error_expr(span) };
        let signed = current.ty.is_signed() && rhs.ty.is_signed();
        let ty = if signed { current.ty.clone() } else { Type::Int { bytes: 8, signed: current.ty.is_signed() } };
        Expr { kind: ExprKind::Binary { op: hop, lhs: Box::new(current), rhs: Box::new(rhs) }, ty, span }
    }

    fn check_map_assign(
        &mut self,
        access: &ast::MapAccess,
        op: Option<BinaryOp>,
        value: &ast::Expr,
        span: Span,
    ) -> Option<Stmt> {
        if op.is_none() {
            if let ast::ExprKind::Call { name, args } = &value.kind {
                if let Some(stmt) = self.check_aggregation(access, name, args, span, value.span) {
                    return stmt;
                }
            }
        }
        let keys: Vec<Expr> = access.keys.iter().map(|k| self.check_expr(k)).collect();
        for k in &keys {
            if matches!(k.ty, Type::Args) {
                self.error(Diagnostic::error("bad-key", format!("a map key cannot be of type '{}'", k.ty), k.span));
            }
        }
        let key_types: Vec<Type> = keys.iter().map(|k| key_type(&k.ty)).collect();
        let value = self.check_expr(value);
        if value.ty == Type::None {
            return None;
        }
        if matches!(value.kind, ExprKind::Builtin(crate::hir::Builtin::Ctx)) {
            // The verifier would refuse it, and the pointer means nothing once the probe returns.
            self.error(Diagnostic::error("bad-value", "context cannot be assigned to a map", value.span));
            return None;
        }
        if matches!(value.ty, Type::Args) {
            self.error(Diagnostic::error("type-mismatch", "args cannot be stored in a map", value.span));
            return None;
        }
        let value = match op {
            Some(op) => {
                // `@m -= 3` reads @m first; before any assignment it has no type, which makes
                // the operation, and so @m, unsigned in bpftrace 0.17.
                let current = if self.map_index.contains_key(&access.name) { Type::I64 } else { Type::U64 };
                let id = self.define_map(access, &key_types, MapValue::Plain(current));
                let current = Expr {
                    kind: ExprKind::MapRead { map: id, keys: keys.clone() },
                    ty: self.maps[id.0 as usize].value.read_type(),
                    span: access.span,
                };
                self.compound(op, current, value, span)
            }
            None => value,
        };
        let stored = match &value.ty {
            Type::Int { signed, .. } => Type::Int { bytes: 8, signed: *signed },
            // A pointer stays one, so that `@p + 1` and `@p[1]` see its pointee; it prints as
            // bpftrace 0.17 prints a map of pointers (an int64 when BTF-typed, else a uint64).
            other => other.clone(),
        };
        let id = self.define_map(access, &key_types, MapValue::Plain(stored));
        if self.maps[id.0 as usize].value.is_aggregation() {
            return None;
        }
        Some(Stmt { kind: StmtKind::AssignMap { map: id, keys, value }, span })
    }
}

/// Whether `e` is a call without a value (`printf(...)`) or a ternary choosing between such calls.
fn is_statement(e: &ast::Expr) -> bool {
    match &e.kind {
        ast::ExprKind::Call { name, .. } => {
            crate::builtins::function(&name.name).is_some_and(|f| f.role == crate::builtins::Role::Statement)
        }
        ast::ExprKind::Ternary { then_expr, else_expr, .. } => is_statement(then_expr) && is_statement(else_expr),
        _ => false,
    }
}

fn var_expr(checker: &mut Checker<'_>, var: &ast::Ident) -> Option<Expr> {
    let e = checker.check_expr(&ast::Expr { kind: ast::ExprKind::Var(var.name.clone()), span: var.span });
    (e.ty != Type::None).then_some(e)
}

/// The value of an integer literal, possibly negated.
pub(super) fn literal_int(e: &ast::Expr) -> Option<i64> {
    match &e.kind {
        ast::ExprKind::Int(v) => i64::try_from(*v).ok(),
        ast::ExprKind::Unary { op: ast::UnaryOp::Neg, expr } => literal_int(expr).map(|v| -v),
        _ => None,
    }
}
