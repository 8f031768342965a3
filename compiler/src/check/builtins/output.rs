//! Output functions: statements the runtime carries out when their event arrives. `printf`,
//! `system` and `cat` take a format checked against their arguments; `time`, `print`, `join`
//! and `exit`.

use std::ops::Range;

use super::Call;
use crate::check::stmt::literal_int;
use crate::check::Checker;
use crate::format::{self, ArgKind};
use crate::hir::{self, Expr, FormatKind, StmtKind};
use crate::types::Type;
use grammar::ast;
use grammar::Diagnostic;

/// Most arguments printf, system and cat accept after their format: bpftrace 0.17 takes 128
/// arguments in all.
const MAX_PRINTF_ARGS: usize = 127;

impl Checker<'_> {
    /// `None` when the call is not an output function; `Some(None)` after an error.
    pub(super) fn check_output_call(&mut self, call: &Call<'_>) -> Option<Option<StmtKind>> {
        let kind = match call.name() {
            "printf" => {
                self.check_format_call(FormatKind::Printf, call).map(|(format, args)| StmtKind::Printf { format, args })
            }
            // system() and cat() both act in user space on the formatted text.
            "cat" => {
                self.check_format_call(FormatKind::Cat, call).map(|(format, args)| StmtKind::System { format, args })
            }
            "system" => self.check_system(call),
            "time" => self.check_time(call),
            "join" => self.check_join(call),
            "print" => self.check_print(call),
            "exit" => Some(StmtKind::Exit),
            _ => return None,
        };
        Some(kind)
    }

    fn check_system(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        if !self.options.unsafe_allowed {
            self.error(
                Diagnostic::error("unsafe", "system() is an unsafe function", call.name.span)
                    .with_help("run rbt with --unsafe to allow it"),
            );
            return None;
        }
        let (format, args) = self.check_format_call(FormatKind::System, call)?;
        Some(StmtKind::System { format, args })
    }

    /// `time()`, `time("FORMAT")`.
    fn check_time(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        let text = match call.args.first() {
            None => "%H:%M:%S\n".to_string(),
            Some(ast::Expr { kind: ast::ExprKind::Str(s), .. }) => s.clone(),
            Some(other) => {
                self.error(Diagnostic::error("bad-argument", "time() takes a string literal", other.span));
                return None;
            }
        };
        let time = hir::Format { kind: FormatKind::Time, text, printf: None, args: Vec::new(), span: call.span };
        let format = self.add_format(time);
        Some(StmtKind::Time { format })
    }

    /// `join(ARGV)`, `join(ARGV, "DELIM")`.
    fn check_join(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        let delim = match call.args.get(1) {
            None => " ".to_owned(),
            Some(ast::Expr { kind: ast::ExprKind::Str(d), .. }) => d.clone(),
            Some(other) => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    "join()'s delimiter must be a string literal",
                    other.span,
                ));
                return None;
            }
        };
        let argv = self.check_expr(&call.args[0]);
        self.expect_integer(&argv, "join() argument (an array of string pointers)");
        let format = self.add_format(hir::Format {
            kind: FormatKind::Join,
            text: delim,
            printf: None,
            args: Vec::new(),
            span: call.span,
        });
        Some(StmtKind::Join { argv, format })
    }

    /// `print(@map)`, `print(@map, TOP, DIV)`, `print(VALUE)`.
    fn check_print(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        let args = call.args;
        if let ast::ExprKind::Map(access) = &args[0].kind {
            if access.keys.is_empty() {
                let map = self.lookup_map(access)?;
                let mut consts = [0u64; 2];
                for (i, a) in args[1..].iter().enumerate() {
                    match literal_int(a).and_then(|v| u64::try_from(v).ok()) {
                        Some(v) => consts[i] = v,
                        None => {
                            self.error(Diagnostic::error(
                                "bad-argument",
                                "print() top and div must be non-negative integer literals",
                                a.span,
                            ));
                            return None;
                        }
                    }
                }
                return Some(StmtKind::PrintMap { map, top: consts[0], div: consts[1] });
            }
        }
        if args.len() > 1 {
            self.error(Diagnostic::error("bad-argument", "print() of a value takes one argument", call.span));
            return None;
        }
        let value = self.check_expr(&args[0]);
        if value.ty == Type::None {
            return None;
        }
        if !(value.ty.is_integer()
            || value.ty.is_string()
            || matches!(
                value.ty,
                Type::Tuple(_)
                    | Type::Record(_)
                    | Type::Array { .. }
                    | Type::Username
                    | Type::CgroupPath(_)
                    | Type::Strerror
            ))
        {
            self.error(Diagnostic::error(
                "bad-argument",
                format!("cannot print a value of type '{}'", value.ty),
                value.span,
            ));
            return None;
        }
        Some(StmtKind::PrintValue { value })
    }

    /// The format of `printf`, `system` or `cat` and the values for its conversions.
    fn check_format_call(&mut self, kind: FormatKind, call: &Call<'_>) -> Option<(u32, Vec<Expr>)> {
        let (first, span) = (&call.args[0], call.span);
        let ast::ExprKind::Str(text) = &first.kind else {
            self.error(Diagnostic::error(
                "bad-argument",
                format!("the first argument of {}() must be a string literal", call.name()),
                first.span,
            ));
            return None;
        };
        let values: Vec<Expr> = call.args[1..].iter().map(|a| self.check_expr(a)).collect();
        if values.iter().any(|v| v.ty == Type::None) {
            return None;
        }
        if values.len() > MAX_PRINTF_ARGS {
            self.error(Diagnostic::error(
                "wrong-arguments",
                format!(
                    "{}() takes at most {MAX_PRINTF_ARGS} arguments after the format, {} given",
                    call.name(),
                    values.len()
                ),
                span,
            ));
            return None;
        }
        let printf = format::parse_printf(text.as_bytes());
        if !self.conversions_fit(call, text, &printf, &values) {
            return None;
        }
        let args = values.iter().map(|v| v.ty.clone()).collect();
        let index = self.add_format(hir::Format { kind, text: text.clone(), printf: Some(printf), args, span });
        Some((index, values))
    }

    /// Whether the format's conversions are as many as the values, each of a type it prints;
    /// reports why not.
    fn conversions_fit(&mut self, call: &Call<'_>, text: &str, printf: &format::PrintfFormat, values: &[Expr]) -> bool {
        let conversions: Vec<_> = printf.conversions().collect();
        if conversions.len() != values.len() {
            let mut diag = Diagnostic::error(
                "wrong-arguments",
                format!(
                    "{}: the format string has {} conversion{} but {} argument{} given",
                    call.name(),
                    conversions.len(),
                    if conversions.len() == 1 { "" } else { "s" },
                    values.len(),
                    if values.len() == 1 { " is" } else { "s are" }
                ),
                call.span,
            );
            let strays: Vec<_> = printf.stray_directives().map(|s| format!("`{}`", whole_chars(text, s))).collect();
            if conversions.len() < values.len() && !strays.is_empty() {
                diag = diag.with_help(format!(
                    "{} {} plain text to bpftrace 0.17, which knows only %d %u %o %x %X %p %c %s %r \
                     with the `-` flag, a width, a precision and the lengths hh h l ll j z t",
                    strays.join(", "),
                    if strays.len() == 1 { "is" } else { "are" }
                ));
            }
            self.error(diag);
            return false;
        }
        for (conversion, value) in conversions.iter().zip(values) {
            if !accepts(conversion.expects, &value.ty) {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!(
                        "{}: %{} specifier expects a value of type {} ({} supplied)",
                        call.name(),
                        conversion.specifier,
                        conversion.expects.type_name(),
                        value.ty
                    ),
                    value.span,
                ));
                return false;
            }
        }
        true
    }
}

/// Whether a printf argument of type `ty` fits a conversion, as bpftrace 0.17 decides: pointers
/// count as integers; rbt has no type for `%r`'s buffers.
fn accepts(kind: ArgKind, ty: &Type) -> bool {
    match kind {
        ArgKind::Integer => ty.is_integer(),
        ArgKind::String => {
            ty.is_string()
                || matches!(
                    ty,
                    Type::Stack(_)
                        | Type::Symbol { .. }
                        | Type::Inet
                        | Type::Timestamp(_)
                        | Type::MacAddr
                        | Type::Username
                        | Type::CgroupPath(_)
                        | Type::Strerror
                )
        }
        ArgKind::Buffer => matches!(ty, Type::Buffer { .. }),
    }
}

/// `text[span]`, widened to whole characters: a directive ends at the byte C reads as its
/// conversion, which may start a multi-byte character.
fn whole_chars(text: &str, span: Range<usize>) -> &str {
    let end = (span.end..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    &text[span.start..end]
}
