//! String functions: `str` (a string read from memory), `strncmp`, `strcontains`, `buf` (bytes
//! printed with `%r`) and `strftime` (a time formatted when printed).

use super::Call;
use crate::check::expr::error_expr;
use crate::check::stmt::literal_int;
use crate::check::Checker;
use crate::hir::{self, AddrSpace, Expr, ExprKind};
use crate::types::Type;
use grammar::ast;
use grammar::Diagnostic;

impl Checker<'_> {
    /// `None` when the call is not a string function.
    pub(super) fn check_string_call(&mut self, call: &Call<'_>) -> Option<Expr> {
        Some(match call.name() {
            "str" => self.check_str(call),
            "strncmp" => self.check_strncmp(call),
            "strcontains" => self.check_strcontains(call),
            "buf" => self.check_buf(call),
            "strftime" => self.check_strftime(call),
            _ => return None,
        })
    }

    /// `str(PTR)`, `str(PTR, LEN)`: the string at PTR, as long as `RBT_STRLEN` allows.
    fn check_str(&mut self, call: &Call<'_>) -> Expr {
        let mut ptr = self.check_expr(&call.args[0]);
        if let (ExprKind::KernelRead { addr, offset, bitfield: None, space: AddrSpace::User }, Type::Str { len }) =
            (&ptr.kind, &ptr.ty)
        {
            // A char array in user memory (a local `char path[4096]`) larger than a string may
            // be, or cut by a length: read as a string from where it is, not copied whole.
            if *len > self.options.strlen || call.args.len() > 1 {
                let span = ptr.span;
                let at = Expr { kind: ExprKind::Int(u64::from(*offset)), ty: Type::U64, span };
                let kind = ExprKind::Binary { op: hir::BinaryOp::Add, lhs: addr.clone(), rhs: Box::new(at) };
                ptr = Expr { kind, ty: Type::U64, span };
            }
        }
        if ptr.ty.is_string() {
            // str() of a string is the string itself.
            return ptr;
        }
        self.expect_integer(&ptr, "str() argument");
        let limit = call.args.get(1).map(|a| {
            let l = self.check_expr(a);
            self.expect_integer(&l, "str() length");
            Box::new(l)
        });
        let len = match call.args.get(1).and_then(literal_int) {
            // The NUL needs one more byte; a huge literal reads a whole strlen buffer.
            Some(n) if n > 0 => u32::try_from(n.saturating_add(1)).unwrap_or(u32::MAX).min(self.options.strlen),
            _ => self.options.strlen,
        };
        Expr { kind: ExprKind::ReadStr { ptr: Box::new(ptr), limit }, ty: Type::Str { len }, span: call.span }
    }

    /// `strncmp(A, B, N)` with N a literal.
    fn check_strncmp(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let a = self.check_expr(&call.args[0]);
        let b = self.check_expr(&call.args[1]);
        let n = &call.args[2];
        let Some(n) = literal_int(n).filter(|n| *n >= 0) else {
            self.error(Diagnostic::error(
                "bad-argument",
                "strncmp() length must be a non-negative integer literal",
                n.span,
            ));
            return error_expr(span);
        };
        if !a.ty.is_string() || !b.ty.is_string() {
            self.error(Diagnostic::error("type-mismatch", "strncmp() compares two strings", span));
            return error_expr(span);
        }
        let kind = ExprKind::StrCompare { negate: true, lhs: Box::new(a), rhs: Box::new(b), limit: n as u32 };
        Expr { kind, ty: Type::I64, span }
    }

    /// `strcontains(HAYSTACK, NEEDLE)`: two strings; two literals are searched now.
    fn check_strcontains(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let haystack = self.check_expr(&call.args[0]);
        let needle = self.check_expr(&call.args[1]);
        for (i, arg) in [&haystack, &needle].into_iter().enumerate() {
            if !arg.ty.is_string() && arg.ty != Type::None {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!("strcontains() only supports string arguments ({} provided)", arg.ty),
                    call.args[i].span,
                ));
                return error_expr(span);
            }
        }
        if let (ExprKind::Str(hay), ExprKind::Str(pin)) = (&haystack.kind, &needle.kind) {
            let text = |s: &[u8]| s.iter().position(|&b| b == 0).map_or(s.to_vec(), |end| s[..end].to_vec());
            let (hay, pin) = (text(hay), text(pin));
            let found = pin.is_empty() || hay.windows(pin.len()).any(|w| w == pin.as_slice());
            return Expr { kind: ExprKind::Int(u64::from(found)), ty: Type::U64, span };
        }
        let kind = ExprKind::StrContains { haystack: Box::new(haystack), needle: Box::new(needle) };
        Expr { kind, ty: Type::U64, span }
    }

    /// `buf(PTR, LEN)`, `buf(ARRAY)`: LEN bytes (at most `RBT_STRLEN`) or the whole array.
    fn check_buf(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let src = self.check_expr(&call.args[0]);
        let Some(len) = self.buf_length(call, &src) else { return error_expr(span) };
        if !(src.ty.is_integer() || src.ty.is_string() || matches!(src.ty, Type::Array { .. } | Type::None)) {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("buf() reads from a pointer or an array, not a '{}'", src.ty),
                src.span,
            ));
            return error_expr(span);
        }
        let max = self.options.strlen;
        let cap = match len.kind {
            ExprKind::Int(n) => (n as u32).min(max),
            _ => max,
        };
        Expr { kind: ExprKind::Buf { src: Box::new(src), len: Box::new(len) }, ty: Type::Buffer { cap }, span }
    }

    /// The length `buf()` reads: its second argument, or the size of the array it reads.
    fn buf_length(&mut self, call: &Call<'_>, src: &Expr) -> Option<Expr> {
        let (span, max) = (call.span, self.options.strlen);
        match (call.args.get(1), &src.ty) {
            (Some(len), _) => {
                let len_expr = self.check_expr(len);
                self.expect_integer(&len_expr, "buf() length");
                if let ExprKind::Int(n) = len_expr.kind {
                    if n > u64::from(max) {
                        self.error(Diagnostic::warning(
                            "buf-too-long",
                            format!(
                                "buf() length is too long and will be shortened to {max} bytes (see BPFTRACE_STRLEN)"
                            ),
                            span,
                        ));
                    }
                }
                Some(len_expr)
            }
            (None, Type::Array { .. }) => {
                Some(Expr { kind: ExprKind::Int(u64::from(src.ty.size())), ty: Type::U64, span })
            }
            (None, Type::None) => None,
            (None, other) => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!(
                        "buf() expects a length argument for non-array type {}",
                        if other.is_string() { "string".to_owned() } else { other.to_string() }
                    ),
                    span,
                ));
                None
            }
        }
    }

    /// `strftime("FORMAT", NSECS)`: the time, formatted in user space when printed.
    fn check_strftime(&mut self, call: &Call<'_>) -> Expr {
        let (format, span) = (&call.args[0], call.span);
        let ast::ExprKind::Str(text) = &format.kind else {
            self.error(Diagnostic::error(
                "bad-argument",
                "strftime() takes a string literal format first",
                format.span,
            ));
            return error_expr(span);
        };
        let ns = self.check_expr(&call.args[1]);
        self.expect_integer(&ns, "strftime() time (nanoseconds since boot, e.g. nsecs)");
        Expr { kind: ExprKind::Cast { expr: Box::new(ns) }, ty: Type::Timestamp(text.clone()), span }
    }
}
