//! Checking function calls: printf and the other statement-like functions, str() and strncmp().

use std::ops::Range;

use super::expr::error_expr;
use super::stmt::literal_int;
use super::{suggest, Checker};
use crate::format::{self, ArgKind};
use crate::hir::{self, Expr, ExprKind, FormatKind, StmtKind};
use crate::types::Type;
use grammar::ast;
use grammar::{Diagnostic, Span};

const FUNCTIONS: &[&str] = &[
    "printf", "print", "time", "exit", "clear", "zero", "delete", "system", "str", "strncmp", "count", "sum", "min",
    "max", "avg", "stats", "hist", "lhist", "kstack", "ustack", "ksym", "usym", "kaddr", "reg", "sizeof", "offsetof",
    "bswap", "kptr", "uptr", "signal", "cgroupid", "ntop", "join", "strftime", "cat", "buf", "macaddr", "path",
];

/// x86-64's `struct pt_regs` as bpftrace's `reg()` names its members, in order (8 bytes each).
const REGISTERS: [&str; 21] = [
    "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di", "orig_ax", "ip",
    "cs", "flags", "sp", "ss",
];

/// Signal names by number (1-31), as `signal()` takes them.
const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
    "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO",
    "PWR", "SYS",
];

/// Most arguments printf accepts, as bpftrace.
const MAX_PRINTF_ARGS: usize = 7;

impl Checker<'_> {
    /// A function used as a statement. `None` when `name` is not a statement-like function.
    pub(super) fn check_stmt_call(
        &mut self,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
    ) -> Option<Option<StmtKind>> {
        let kind = match name.name.as_str() {
            "printf" | "system" | "cat" => {
                let kind = match name.name.as_str() {
                    "printf" => FormatKind::Printf,
                    "cat" => FormatKind::Cat,
                    _ => FormatKind::System,
                };
                if kind == FormatKind::System && !self.options.unsafe_allowed {
                    self.error(
                        Diagnostic::error("unsafe", "system() is an unsafe function", name.span)
                            .with_help("run rbt with --unsafe to allow it"),
                    );
                    return Some(None);
                }
                let Some((format, args)) = self.check_format_call(kind, name, args, span) else {
                    return Some(None);
                };
                if kind == FormatKind::Printf {
                    StmtKind::Printf { format, args }
                } else {
                    // system() and cat() both act in user space on the formatted text.
                    StmtKind::System { format, args }
                }
            }
            "time" => {
                if args.len() > 1 {
                    self.wrong_count(name, "0 or 1", args.len(), span);
                    return Some(None);
                }
                let text = match args.first() {
                    None => "%H:%M:%S\n".to_string(),
                    Some(a) => match &a.kind {
                        ast::ExprKind::Str(s) => s.clone(),
                        _ => {
                            self.error(Diagnostic::error("bad-argument", "time() takes a string literal", a.span));
                            return Some(None);
                        }
                    },
                };
                let time = hir::Format { kind: FormatKind::Time, text, printf: None, args: Vec::new(), span };
                let format = self.add_format(time);
                StmtKind::Time { format }
            }
            "exit" => {
                if !args.is_empty() {
                    self.wrong_count(name, "0", args.len(), span);
                    return Some(None);
                }
                StmtKind::Exit
            }
            "signal" => return Some(self.check_signal(name, args, span)),
            "join" => {
                let (argv, delim) = match args {
                    [argv] => (argv, " ".to_owned()),
                    [argv, ast::Expr { kind: ast::ExprKind::Str(d), .. }] => (argv, d.clone()),
                    [_, other] => {
                        self.error(Diagnostic::error(
                            "bad-argument",
                            "join()'s delimiter must be a string literal",
                            other.span,
                        ));
                        return Some(None);
                    }
                    _ => {
                        self.wrong_count(name, "1 or 2", args.len(), span);
                        return Some(None);
                    }
                };
                let argv = self.check_expr(argv);
                self.expect_integer(&argv, "join() argument (an array of string pointers)");
                let format = self.add_format(hir::Format {
                    kind: FormatKind::Join,
                    text: delim,
                    printf: None,
                    args: Vec::new(),
                    span,
                });
                StmtKind::Join { argv, format }
            }
            "print" => return Some(self.check_print(name, args, span)),
            "clear" | "zero" => {
                let Some(map) = self.map_argument(name, args, span) else { return Some(None) };
                if name.name == "clear" {
                    StmtKind::Clear { map }
                } else {
                    StmtKind::Zero { map }
                }
            }
            "delete" => {
                let [arg] = args else {
                    self.wrong_count(name, "1", args.len(), span);
                    return Some(None);
                };
                let ast::ExprKind::Map(access) = &arg.kind else {
                    self.error(Diagnostic::error("bad-argument", "delete() expects a map element", arg.span));
                    return Some(None);
                };
                let read = self.check_map_read(access);
                let ExprKind::MapRead { map, keys } = read.kind else { return Some(None) };
                // bpftrace 0.17 deletes with the user key alone, which on a keyed histogram
                // reads past it into whatever the stack holds.
                if !keys.is_empty()
                    && matches!(
                        self.maps[map.0 as usize].value,
                        crate::types::MapValue::Hist | crate::types::MapValue::Lhist { .. }
                    )
                {
                    self.error(Diagnostic::error(
                        "unsupported",
                        "delete() of a hist or lhist element is not supported; use clear()",
                        arg.span,
                    ));
                    return Some(None);
                }
                StmtKind::Delete { map, keys }
            }
            _ => return None,
        };
        Some(Some(kind))
    }

    /// `signal(SIG)`: a signal name (`"KILL"`, `"SIGKILL"`), a number 1-64, or an integer
    /// expression; only with `--unsafe`, and only in probes that fire in a process.
    fn check_signal(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> Option<StmtKind> {
        let [arg] = args else {
            self.wrong_count(name, "1", args.len(), span);
            return None;
        };
        if !self.options.unsafe_allowed {
            self.error(
                Diagnostic::error("unsafe", "signal() is an unsafe function being used in safe mode", span)
                    .with_help("run rbt with --unsafe to allow it"),
            );
        }
        if matches!(self.scope.attach, Some(hir::AttachPoint::Begin | hir::AttachPoint::End)) {
            let kind = self.scope.attach.as_ref().map(|a| a.probe_name()).unwrap_or_default();
            self.error(Diagnostic::error("bad-probe", format!("signal can not be used with \"{kind}\" probes"), span));
        }
        let value = match &arg.kind {
            ast::ExprKind::Str(text) => {
                let bare = text.strip_prefix("SIG").unwrap_or(text);
                match SIGNALS.iter().position(|s| *s == bare) {
                    Some(i) => Expr { kind: ExprKind::Int(i as u64 + 1), ty: Type::I64, span: arg.span },
                    None => {
                        self.error(
                            Diagnostic::error("bad-argument", format!("Invalid signal: {text}"), arg.span)
                                .with_help("a signal's name (\"KILL\", \"SIGUSR1\") or number (1-64)"),
                        );
                        return None;
                    }
                }
            }
            ast::ExprKind::Int(n) if !(1..=64).contains(n) => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("{n} is not a valid signal, allowed range: [1,64]"),
                    arg.span,
                ));
                return None;
            }
            _ => {
                let e = self.check_expr(arg);
                self.expect_integer(&e, "signal number");
                e
            }
        };
        Some(StmtKind::Signal(value))
    }

    fn check_print(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> Option<StmtKind> {
        if args.is_empty() || args.len() > 3 {
            self.wrong_count(name, "1 to 3", args.len(), span);
            return None;
        }
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
            self.error(Diagnostic::error("bad-argument", "print() of a value takes one argument", span));
            return None;
        }
        let value = self.check_expr(&args[0]);
        if value.ty == Type::None {
            return None;
        }
        if !(value.ty.is_integer()
            || value.ty.is_string()
            || matches!(value.ty, Type::Tuple(_) | Type::Record(_) | Type::Array { .. }))
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

    fn map_argument(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> Option<hir::MapId> {
        let [arg] = args else {
            self.wrong_count(name, "1", args.len(), span);
            return None;
        };
        match &arg.kind {
            ast::ExprKind::Map(access) if access.keys.is_empty() => self.lookup_map(access),
            _ => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("{}() expects a map, e.g. {}(@m)", name.name, name.name),
                    arg.span,
                ));
                None
            }
        }
    }

    fn check_format_call(
        &mut self,
        kind: FormatKind,
        name: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
    ) -> Option<(u32, Vec<Expr>)> {
        let Some(first) = args.first() else {
            self.wrong_count(name, "at least 1", 0, span);
            return None;
        };
        let ast::ExprKind::Str(text) = &first.kind else {
            self.error(Diagnostic::error(
                "bad-argument",
                format!("the first argument of {}() must be a string literal", name.name),
                first.span,
            ));
            return None;
        };
        let values: Vec<Expr> = args[1..].iter().map(|a| self.check_expr(a)).collect();
        if values.iter().any(|v| v.ty == Type::None) {
            return None;
        }
        if values.len() > MAX_PRINTF_ARGS {
            self.error(Diagnostic::error(
                "wrong-arguments",
                format!(
                    "{}() takes at most {MAX_PRINTF_ARGS} arguments after the format, {} given",
                    name.name,
                    values.len()
                ),
                span,
            ));
            return None;
        }
        let printf = format::parse_printf(text.as_bytes());
        let conversions: Vec<_> = printf.conversions().collect();
        if conversions.len() != values.len() {
            let mut diag = Diagnostic::error(
                "wrong-arguments",
                format!(
                    "{}: the format string has {} conversion{} but {} argument{} given",
                    name.name,
                    conversions.len(),
                    if conversions.len() == 1 { "" } else { "s" },
                    values.len(),
                    if values.len() == 1 { " is" } else { "s are" }
                ),
                span,
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
            return None;
        }
        for (conversion, value) in conversions.iter().zip(&values) {
            if !accepts(conversion.expects, &value.ty) {
                self.error(Diagnostic::error(
                    "type-mismatch",
                    format!(
                        "{}: %{} specifier expects a value of type {} ({} supplied)",
                        name.name,
                        conversion.specifier,
                        conversion.expects.type_name(),
                        value.ty
                    ),
                    value.span,
                ));
                return None;
            }
        }
        let args = values.iter().map(|v| v.ty.clone()).collect();
        let index = self.add_format(hir::Format { kind, text: text.clone(), printf: Some(printf), args, span });
        Some((index, values))
    }

    fn add_format(&mut self, format: hir::Format) -> u32 {
        self.formats.push(format);
        self.formats.len() as u32 - 1
    }

    /// The one argument of `name(ARG)` when it is a string literal (`what` it names, for the
    /// error otherwise), with the argument itself.
    fn string_literal_arg<'e>(
        &mut self,
        name: &ast::Ident,
        args: &'e [ast::Expr],
        span: Span,
        what: &str,
    ) -> Option<(&'e String, &'e ast::Expr)> {
        let [arg] = args else {
            self.wrong_count(name, "1", args.len(), span);
            return None;
        };
        match &arg.kind {
            ast::ExprKind::Str(text) => Some((text, arg)),
            _ => {
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("{}() takes a string literal: {what}", name.name),
                    arg.span,
                ));
                None
            }
        }
    }

    fn wrong_count(&mut self, name: &ast::Ident, expected: &str, got: usize, span: Span) {
        self.error(Diagnostic::error(
            "wrong-arguments",
            format!("{}() takes {expected} argument{}, {got} given", name.name, if expected == "1" { "" } else { "s" }),
            span,
        ));
    }

    /// A function used for its value: `str()`, `strncmp()`.
    pub(super) fn check_value_call(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> Expr {
        match name.name.as_str() {
            "kstack" | "ustack" => self.check_stack(&name.name, args, span),
            "ksym" | "usym" => {
                let [addr] = args else {
                    self.wrong_count(name, "1", args.len(), span);
                    return error_expr(span);
                };
                let addr = self.check_expr(addr);
                self.expect_integer(&addr, &format!("{}() argument", name.name));
                let user = name.name == "usym";
                Expr { kind: ExprKind::Symbol { addr: Box::new(addr), user }, ty: Type::Symbol { user }, span }
            }
            "bswap" | "kptr" | "uptr" => {
                let [arg] = args else {
                    self.wrong_count(name, "1", args.len(), span);
                    return error_expr(span);
                };
                let value = self.check_expr(arg);
                if value.ty == Type::None {
                    return error_expr(span);
                }
                if !value.ty.is_integer() {
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!("{}() expects an integer, not a '{}'", name.name, value.ty),
                        arg.span,
                    ));
                    return error_expr(span);
                }
                // kptr()/uptr() only say which address space a pointer is in, which rbt's reads
                // do not need told: the value is unchanged.
                if name.name != "bswap" {
                    return Expr { span, ..value };
                }
                // bpftrace 0.17: an unsigned integer of the argument's width.
                let ty = Type::Int { bytes: value.ty.int_bytes() as u8, signed: false };
                Expr { kind: ExprKind::Bswap(Box::new(value)), ty, span }
            }
            "reg" => {
                let [register] = args else {
                    self.wrong_count(name, "1", args.len(), span);
                    return error_expr(span);
                };
                let kind = self.scope.attach.as_ref().map(|a| a.probe_name()).unwrap_or_default();
                let kind = kind.split(':').next().unwrap_or("").to_owned();
                let regs_in_context = matches!(
                    self.scope.attach,
                    Some(
                        hir::AttachPoint::Kprobe { .. }
                            | hir::AttachPoint::Uprobe { .. }
                            | hir::AttachPoint::Usdt(_)
                            | hir::AttachPoint::Profile { .. }
                            | hir::AttachPoint::Interval { .. }
                            | hir::AttachPoint::PerfCounter { .. }
                    )
                );
                if !regs_in_context {
                    self.error(
                        Diagnostic::error("bad-probe", format!("reg can not be used with \"{kind}\" probes"), span)
                            .with_help("the registers are there in kprobe, uprobe, profile, interval, software and hardware probes"),
                    );
                }
                let ast::ExprKind::Str(text) = &register.kind else {
                    self.error(Diagnostic::error(
                        "bad-argument",
                        "reg() takes a string literal: a register's name, e.g. reg(\"ip\")",
                        register.span,
                    ));
                    return error_expr(span);
                };
                let Some(index) = REGISTERS.iter().position(|r| r == text) else {
                    let mut diag = Diagnostic::error(
                        "bad-argument",
                        format!("'{text}' is not a valid register on this architecture (x86_64)"),
                        register.span,
                    );
                    diag = match super::suggest(text, REGISTERS.iter().copied()) {
                        Some(near) => diag.with_help(format!("did you mean \"{near}\"?")),
                        None => diag.with_help(format!("registers: {}", REGISTERS.join(", "))),
                    };
                    self.error(diag);
                    return error_expr(span);
                };
                // pt_regs is the context of kprobe/uprobe programs, and the first member of a
                // perf event program's context.
                let word = ExprKind::ArgsField {
                    offset: index as u32 * 8,
                    size: 8,
                    ty: crate::tracepoint::FieldType::Integer { size: 8, signed: false },
                };
                Expr { kind: word, ty: Type::U64, span }
            }
            "ntop" => {
                let (af, addr) = match args {
                    [addr] => (None, addr),
                    [af, addr] => (Some(af), addr),
                    _ => {
                        self.wrong_count(name, "1 or 2", args.len(), span);
                        return error_expr(span);
                    }
                };
                let af = af.map(|a| {
                    let e = self.check_expr(a);
                    self.expect_integer(&e, "address family");
                    e
                });
                let addr = self.check_expr(addr);
                // bpftrace 0.17: an integer is an IPv4 address; 4 or 16 bytes of an array are
                // IPv4 or IPv6 (the family, when not given, from the size).
                let bytes = match &addr.ty {
                    t if t.is_integer() => 4,
                    Type::Str { len } if *len == 4 || *len == 16 => *len,
                    Type::Array { elem, len } if elem.native_size() == 1 && (*len == 4 || *len == 16) => *len,
                    Type::None => return error_expr(span),
                    other => {
                        self.error(Diagnostic::error(
                            "type-mismatch",
                            format!("ntop() expects an integer or an array of 4 or 16 bytes, not a '{other}'"),
                            addr.span,
                        ));
                        return error_expr(span);
                    }
                };
                let af =
                    af.unwrap_or(Expr { kind: ExprKind::Int(if bytes == 4 { 2 } else { 10 }), ty: Type::U64, span });
                Expr { kind: ExprKind::Inet { af: Box::new(af), addr: Box::new(addr) }, ty: Type::Inet, span }
            }
            "buf" => {
                let (src, len) = match args {
                    [src] => (src, None),
                    [src, len] => (src, Some(len)),
                    _ => {
                        self.wrong_count(name, "1 or 2", args.len(), span);
                        return error_expr(span);
                    }
                };
                let src = self.check_expr(src);
                let max = self.options.strlen;
                let len = match (len, &src.ty) {
                    (Some(len), _) => {
                        let len_expr = self.check_expr(len);
                        self.expect_integer(&len_expr, "buf() length");
                        if let ExprKind::Int(n) = len_expr.kind {
                            if n > u64::from(max) {
                                self.error(Diagnostic::warning(
                                    "buf-too-long",
                                    format!("buf() length is too long and will be shortened to {max} bytes (see BPFTRACE_STRLEN)"),
                                    span,
                                ));
                            }
                        }
                        len_expr
                    }
                    (None, Type::Array { .. }) => {
                        Expr { kind: ExprKind::Int(u64::from(src.ty.size())), ty: Type::U64, span }
                    }
                    (None, Type::None) => return error_expr(span),
                    (None, other) => {
                        self.error(Diagnostic::error(
                            "bad-argument",
                            format!(
                                "buf() expects a length argument for non-array type {}",
                                if other.is_string() { "string".to_owned() } else { other.to_string() }
                            ),
                            span,
                        ));
                        return error_expr(span);
                    }
                };
                if !(src.ty.is_integer() || src.ty.is_string() || matches!(src.ty, Type::Array { .. } | Type::None)) {
                    self.error(Diagnostic::error(
                        "type-mismatch",
                        format!("buf() reads from a pointer or an array, not a '{}'", src.ty),
                        src.span,
                    ));
                    return error_expr(span);
                }
                let cap = match len.kind {
                    ExprKind::Int(n) => (n as u32).min(max),
                    _ => max,
                };
                Expr { kind: ExprKind::Buf { src: Box::new(src), len: Box::new(len) }, ty: Type::Buffer { cap }, span }
            }
            "path" => {
                let [arg] = args else {
                    self.wrong_count(name, "1", args.len(), span);
                    return error_expr(span);
                };
                let value = self.check_expr(arg);
                if value.ty == Type::None {
                    return error_expr(span);
                }
                // bpf_d_path takes a `struct path *` as the kernel handed it to the program: an
                // fentry/fexit argument, read straight from the context.
                let is_arg =
                    matches!(&value.kind, ExprKind::Cast { expr } if matches!(expr.kind, ExprKind::ArgsField { .. }));
                let is_path = matches!(&value.ty, Type::Pointer { pointee, .. } if pointee == "struct path" || pointee == "const struct path");
                if !matches!(self.scope.attach, Some(hir::AttachPoint::Fentry { .. })) || !is_arg || !is_path {
                    self.error(
                        Diagnostic::error("bad-argument", "path() takes a `struct path *` argument of an fentry/fexit probe", span)
                            .with_help("e.g. fentry:vfs_getattr { printf(\"%s\\n\", path(args->path)); } (the kernel allows bpf_d_path in a few functions only)"),
                    );
                    return error_expr(span);
                }
                let len = self.options.strlen;
                Expr { kind: ExprKind::DPath(Box::new(value)), ty: Type::Str { len }, span }
            }
            "macaddr" => {
                let [arg] = args else {
                    self.wrong_count(name, "1", args.len(), span);
                    return error_expr(span);
                };
                let value = self.check_expr(arg);
                let six = match &value.ty {
                    Type::Str { len } => *len == 6,
                    Type::Array { elem, len } => elem.native_size() == 1 && *len == 6,
                    Type::None => return error_expr(span),
                    _ => false,
                };
                if !six {
                    self.error(Diagnostic::error("bad-argument", "macaddr() argument must be 6 bytes in size", span));
                    return error_expr(span);
                }
                Expr {
                    kind: ExprKind::Member { base: Box::new(value), offset: 0, bitfield: None },
                    ty: Type::MacAddr,
                    span,
                }
            }
            "strftime" => {
                let [format, ns] = args else {
                    self.wrong_count(name, "2", args.len(), span);
                    return error_expr(span);
                };
                let ast::ExprKind::Str(text) = &format.kind else {
                    self.error(Diagnostic::error(
                        "bad-argument",
                        "strftime() takes a string literal format first",
                        format.span,
                    ));
                    return error_expr(span);
                };
                let ns = self.check_expr(ns);
                self.expect_integer(&ns, "strftime() time (nanoseconds since boot, e.g. nsecs)");
                Expr { kind: ExprKind::Cast { expr: Box::new(ns) }, ty: Type::Timestamp(text.clone()), span }
            }
            "cgroupid" => {
                let Some((text, path)) = self.string_literal_arg(name, args, span, "a cgroup's path") else {
                    return error_expr(span);
                };
                match self.catalog.cgroup_id(text) {
                    Ok(id) => Expr { kind: ExprKind::Int(id), ty: Type::U64, span },
                    Err(why) => {
                        self.error(
                            Diagnostic::error(
                                "bad-argument",
                                format!("Failed to get `cgroupid` for path: \"{text}\": {why}"),
                                path.span,
                            )
                            .with_help("name a directory of the cgroup v2 hierarchy, e.g. /sys/fs/cgroup/system.slice"),
                        );
                        error_expr(span)
                    }
                }
            }
            "kaddr" => {
                let Some((text, symbol)) = self.string_literal_arg(name, args, span, "the kernel symbol's name") else {
                    return error_expr(span);
                };
                match self.catalog.kernel_symbol(text) {
                    Some(addr) => Expr { kind: ExprKind::Int(addr), ty: Type::U64, span },
                    None => {
                        self.error(Diagnostic::error(
                            "unknown-symbol",
                            format!("no kernel symbol named '{text}' in /proc/kallsyms"),
                            symbol.span,
                        ));
                        error_expr(span)
                    }
                }
            }
            "str" => {
                if args.is_empty() || args.len() > 2 {
                    self.wrong_count(name, "1 or 2", args.len(), span);
                    return error_expr(span);
                }
                let ptr = self.check_expr(&args[0]);
                if ptr.ty.is_string() {
                    // str() of a string is the string itself.
                    return ptr;
                }
                self.expect_integer(&ptr, "str() argument");
                let limit = args.get(1).map(|a| {
                    let l = self.check_expr(a);
                    self.expect_integer(&l, "str() length");
                    Box::new(l)
                });
                let len = match args.get(1).and_then(literal_int) {
                    // The NUL needs one more byte; a huge literal reads a whole strlen buffer.
                    Some(n) if n > 0 => u32::try_from(n.saturating_add(1)).unwrap_or(u32::MAX).min(self.options.strlen),
                    _ => self.options.strlen,
                };
                Expr { kind: ExprKind::ReadStr { ptr: Box::new(ptr), limit }, ty: Type::Str { len }, span }
            }
            "strncmp" => {
                let [a, b, n] = args else {
                    self.wrong_count(name, "3", args.len(), span);
                    return error_expr(span);
                };
                let a = self.check_expr(a);
                let b = self.check_expr(b);
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
            "count" | "sum" | "min" | "max" | "avg" | "stats" | "hist" | "lhist" => {
                self.error(
                    Diagnostic::error(
                        "misplaced-aggregation",
                        format!("{}() should be directly assigned to a map", name.name),
                        span,
                    )
                    .with_help(format!("e.g. @x = {}(...)", name.name)),
                );
                error_expr(span)
            }
            "printf" | "print" | "time" | "exit" | "clear" | "zero" | "delete" | "system" => {
                self.error(Diagnostic::error("no-value", format!("{}() does not return a value", name.name), span));
                error_expr(span)
            }
            _ => {
                let mut diag =
                    Diagnostic::error("unknown-function", format!("unknown function: '{}'", name.name), name.span);
                if let Some(near) = suggest(&name.name, FUNCTIONS.iter().copied()) {
                    diag = diag.with_help(format!("did you mean `{near}`?"));
                }
                self.error(diag);
                error_expr(span)
            }
        }
    }
}

/// Whether a printf argument of type `ty` fits a conversion, as bpftrace 0.17 decides: pointers
/// count as integers; rbt has no type for `%r`'s buffers.
fn accepts(kind: ArgKind, ty: &Type) -> bool {
    match kind {
        ArgKind::Integer => ty.is_integer(),
        ArgKind::String => {
            ty.is_string()
                || matches!(ty, Type::Stack(_) | Type::Symbol { .. } | Type::Inet | Type::Timestamp(_) | Type::MacAddr)
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
