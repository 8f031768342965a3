//! Checking the language's functions and builtins, one file per family: `output.rs` (printf,
//! system, cat, time, print, join, exit), `strings.rs` (str, strncmp, buf, strftime), `net.rs`
//! (ntop, macaddr), `kernel.rs` (ksym, usym, kaddr, reg, kptr, uptr, bswap, cgroupid, path,
//! signal), `stacks.rs` (kstack, ustack), `maps.rs` (aggregations, clear, zero, delete) and
//! `context.rs` (the builtin variables: pid, comm, args, retval, ...).
//!
//! What the table in [`crate::builtins`] says is checked here once for every call: that the
//! function exists ("did you mean" from the table), that it stands where its role allows, and its
//! argument count. The families then check their own arguments; each claims its functions by
//! name, so a new function is a row in the table and an arm in its family's `match`.

mod context;
mod kernel;
mod maps;
mod net;
mod output;
mod stacks;
mod strings;

use super::expr::error_expr;
use super::{suggest, Checker};
use crate::builtins::{self as table, Function, Role};
use crate::hir::{self, Expr, StmtKind};
use crate::probe_kind::ProbeKind;
use grammar::ast;
use grammar::{Diagnostic, Span};

/// A call being checked: the function's name as written, its arguments (as many as its row of
/// the table allows, once past [`Checker::check_arity`]), and the span of the whole call.
pub(super) struct Call<'a> {
    name: &'a ast::Ident,
    args: &'a [ast::Expr],
    span: Span,
    spec: &'static Function,
}

impl Call<'_> {
    fn name(&self) -> &str {
        &self.name.name
    }
}

impl Checker<'_> {
    /// A function called as a statement. `None` when `name` is no statement function (a value
    /// function is then checked as an expression); `Some(None)` after an error.
    pub(super) fn check_stmt_call(
        &mut self,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
    ) -> Option<Option<StmtKind>> {
        let spec = table::function(&name.name).filter(|f| f.role == Role::Statement)?;
        let call = Call { name, args, span, spec };
        if !self.check_arity(&call) {
            return Some(None);
        }
        let checked = self
            .check_output_call(&call)
            .or_else(|| self.check_map_statement(&call))
            .or_else(|| self.check_kernel_statement(&call));
        Some(checked.unwrap_or_else(|| {
            self.unknown_function(name);
            None
        }))
    }

    /// A function called for its value.
    pub(super) fn check_value_call(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> Expr {
        let spec = table::function(&name.name).filter(|f| f.role != Role::Syntax);
        let Some(spec) = spec else {
            self.unknown_function(name);
            return error_expr(span);
        };
        match spec.role {
            Role::Aggregation => {
                self.error(
                    Diagnostic::error(
                        "misplaced-aggregation",
                        format!("{}() should be directly assigned to a map", name.name),
                        span,
                    )
                    .with_help(format!("e.g. @x = {}(...)", name.name)),
                );
                return error_expr(span);
            }
            Role::Statement => {
                self.error(Diagnostic::error("no-value", format!("{}() does not return a value", name.name), span));
                return error_expr(span);
            }
            Role::Value | Role::Syntax => {}
        }
        let call = Call { name, args, span, spec };
        if !self.check_arity(&call) {
            // A stack keeps its type (the default stack), so that a map keyed by it is not
            // reported as well.
            return self.check_stack_call(&Call { args: &[], ..call }).unwrap_or_else(|| error_expr(span));
        }
        let checked = self
            .check_string_call(&call)
            .or_else(|| self.check_net_call(&call))
            .or_else(|| self.check_kernel_call(&call))
            .or_else(|| self.check_stack_call(&call));
        checked.unwrap_or_else(|| {
            self.unknown_function(name);
            error_expr(span)
        })
    }

    /// Reports a call with more or fewer arguments than the table allows.
    fn check_arity(&mut self, call: &Call<'_>) -> bool {
        let spec = call.spec;
        if spec.accepts_count(call.args.len()) {
            return true;
        }
        let expected = spec.expected_args();
        self.error(Diagnostic::error(
            "wrong-arguments",
            format!(
                "{}() takes {expected} argument{}{}, {} given",
                spec.name,
                if expected == "1" { "" } else { "s" },
                spec.args_note,
                call.args.len()
            ),
            call.span,
        ));
        false
    }

    fn unknown_function(&mut self, name: &ast::Ident) {
        let mut diag = Diagnostic::error("unknown-function", format!("unknown function: '{}'", name.name), name.span);
        if let Some(near) = suggest(&name.name, table::FUNCTIONS.iter().map(|f| f.name)) {
            diag = diag.with_help(format!("did you mean `{near}`?"));
        }
        self.error(diag);
    }

    /// The kind of the probe being checked.
    fn probe_kind(&self) -> Option<ProbeKind> {
        self.scope.attach.as_ref().map(ProbeKind::of)
    }

    /// Whether the table lets the function be called in the probe being checked.
    fn allowed_here(&self, call: &Call<'_>) -> bool {
        call.spec.allowed_in(self.probe_kind())
    }

    /// The probe being checked as messages name its kind: `"BEGIN"`, `"tracepoint"`.
    fn probe_kind_name(&self) -> String {
        let name = self.scope.attach.as_ref().map(hir::AttachPoint::probe_name).unwrap_or_default();
        name.split(':').next().unwrap_or("").to_owned()
    }

    /// The one argument of `name(ARG)` when it is a string literal (`what` it names, for the
    /// error otherwise), with the argument itself.
    fn string_literal_arg<'e>(&mut self, call: &Call<'e>, what: &str) -> Option<(&'e String, &'e ast::Expr)> {
        let arg = &call.args[0];
        match &arg.kind {
            ast::ExprKind::Str(text) => Some((text, arg)),
            _ => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("{}() takes a string literal: {what}", call.name()),
                    arg.span,
                ));
                None
            }
        }
    }

    fn add_format(&mut self, format: hir::Format) -> u32 {
        self.formats.push(format);
        self.formats.len() as u32 - 1
    }
}

#[cfg(test)]
mod tests {
    use crate::tracepoint::{ProbeCatalog, TracepointFormat};

    struct NoProbes;

    impl ProbeCatalog for NoProbes {
        fn match_tracepoints(&self, _category: &str, _event: &str) -> Vec<(String, String)> {
            Vec::new()
        }

        fn tracepoint_format(&self, _category: &str, _event: &str) -> Option<TracepointFormat> {
            None
        }

        fn all_tracepoints(&self) -> Vec<String> {
            Vec::new()
        }
    }

    fn diagnostics(source: &str) -> Vec<String> {
        let (program, parse) = grammar::parse(source);
        assert!(parse.is_empty(), "{source}: {parse:?}");
        let (_, diags) = crate::check::check(&program, &NoProbes, &crate::CheckOptions::default());
        diags.into_iter().map(|d| d.code.to_string()).collect()
    }

    /// Every function and builtin of the table is claimed by its family: none is unknown to the
    /// checker, whatever else is wrong with the call.
    #[test]
    fn every_function_of_the_table_is_checked() {
        for f in crate::builtins::FUNCTIONS.iter().filter(|f| f.role != crate::builtins::Role::Syntax) {
            let args = vec!["1"; f.min_args].join(", ");
            for source in [format!("BEGIN {{ {}({args}); }}", f.name), format!("BEGIN {{ @x = {}({args}); }}", f.name)]
            {
                let codes = diagnostics(&source);
                assert!(!codes.iter().any(|c| c == "unknown-function"), "{source}: {codes:?}");
            }
        }
        for b in crate::builtins::BUILTINS {
            let codes = diagnostics(&format!("BEGIN {{ @x = {}; }}", b.name));
            assert!(!codes.iter().any(|c| c == "unknown-identifier"), "{}: {codes:?}", b.name);
        }
    }
}
