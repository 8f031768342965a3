//! `kstack` and `ustack`: `kstack`, `kstack(N)`, `kstack(MODE)`, `kstack(MODE, N)` with MODE one
//! of `bpftrace`, `perf` (as in bpftrace 0.17) or `raw` (addresses only, rbt's addition).

use super::Call;
use crate::check::Checker;
use crate::hir::{Expr, ExprKind};
use crate::types::{StackMode, StackType, Type, MAX_STACK_FRAMES};
use grammar::ast;
use grammar::{Diagnostic, Span};

impl Checker<'_> {
    /// `None` when the call is not a stack function.
    pub(super) fn check_stack_call(&mut self, call: &Call<'_>) -> Option<Expr> {
        matches!(call.name(), "kstack" | "ustack").then(|| self.check_stack(call.name(), call.args, call.span))
    }

    /// `kstack`, `ustack(...)`; at most two arguments (the table's count, checked by the caller).
    pub(super) fn check_stack(&mut self, name: &str, args: &[ast::Expr], span: Span) -> Expr {
        let mut stack = StackType { user: name == "ustack", mode: StackMode::Bpftrace, limit: MAX_STACK_FRAMES };
        for (i, arg) in args.iter().take(2).enumerate() {
            match &arg.kind {
                ast::ExprKind::Builtin(mode) if i == 0 => match mode.as_str() {
                    "bpftrace" => stack.mode = StackMode::Bpftrace,
                    "perf" => stack.mode = StackMode::Perf,
                    "raw" => stack.mode = StackMode::Raw,
                    other => self.error(
                        Diagnostic::error("bad-argument", format!("unknown stack mode '{other}'"), arg.span)
                            .with_help("the modes are bpftrace, perf and raw"),
                    ),
                },
                ast::ExprKind::Int(n) if i == args.len() - 1 => {
                    if *n == 0 || *n > u64::from(MAX_STACK_FRAMES) {
                        self.error(Diagnostic::error(
                            "bad-argument",
                            format!("{name}() keeps 1 to {MAX_STACK_FRAMES} frames, not {n}"),
                            arg.span,
                        ));
                    } else {
                        stack.limit = *n as u32;
                    }
                }
                _ => self.error(
                    Diagnostic::error(
                        "bad-argument",
                        format!("{name}() takes a stack mode and a frame count, both literal"),
                        arg.span,
                    )
                    .with_help(format!("e.g. {name}(perf, 10), {name}(5) or {name}(raw)")),
                ),
            }
        }
        Expr { kind: ExprKind::Stack(stack), ty: Type::Stack(stack), span }
    }
}
