//! Kernel and process functions: symbols (`ksym`, `usym`, `kaddr`, `uaddr`), registers (`reg`),
//! pointer and integer marks (`kptr`, `uptr`, `bswap`), `cgroupid`, `cgroup_path`, `path`,
//! `signal` and `unwatch`. Several ask the catalog (kernel and user symbols, cgroup ids) or depend on the
//! probe's kind.

use super::Call;
use crate::check::expr::error_expr;
use crate::check::Checker;
use crate::hir::{self, AddrSpace, BinaryOp, Expr, ExprKind, StmtKind};
use crate::types::Type;
use grammar::ast;
use grammar::Diagnostic;

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

impl Checker<'_> {
    /// `None` when the call is not a kernel function used for its value.
    pub(super) fn check_kernel_call(&mut self, call: &Call<'_>) -> Option<Expr> {
        Some(match call.name() {
            "ksym" | "usym" => self.check_symbol(call),
            "bswap" | "kptr" | "uptr" => self.check_integer_mark(call),
            "reg" => self.check_reg(call),
            "path" => self.check_path(call),
            "cgroupid" => self.check_cgroupid(call),
            "kaddr" => self.check_kaddr(call),
            "uaddr" => self.check_uaddr(call),
            "cgroup_path" => self.check_cgroup_path(call),
            "strerror" => self.check_strerror(call),
            _ => return None,
        })
    }

    /// `None` when the call is not a kernel function used as a statement; `Some(None)` after an
    /// error.
    pub(super) fn check_kernel_statement(&mut self, call: &Call<'_>) -> Option<Option<StmtKind>> {
        match call.name() {
            "signal" => Some(self.check_signal(call)),
            "unwatch" => Some(self.check_unwatch(call)),
            _ => None,
        }
    }

    /// `ksym(ADDR)`, `usym(ADDR)`: symbolized in user space when printed.
    fn check_symbol(&mut self, call: &Call<'_>) -> Expr {
        let addr = self.check_expr(&call.args[0]);
        self.expect_integer(&addr, &format!("{}() argument", call.name()));
        let user = call.name() == "usym";
        Expr { kind: ExprKind::Symbol { addr: Box::new(addr), user }, ty: Type::Symbol { user }, span: call.span }
    }

    /// `bswap(N)`, `kptr(P)`, `uptr(P)`: functions of an integer.
    fn check_integer_mark(&mut self, call: &Call<'_>) -> Expr {
        let (arg, span) = (&call.args[0], call.span);
        let value = self.check_expr(arg);
        if value.ty == Type::None {
            return error_expr(span);
        }
        if !value.ty.is_integer() {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("{}() expects an integer, not a '{}'", call.name(), value.ty),
                arg.span,
            ));
            return error_expr(span);
        }
        // kptr()/uptr() only say which address space a pointer is in: the value is unchanged,
        // and reads through it use that space's helper.
        if call.name() != "bswap" {
            let space = if call.name() == "kptr" { AddrSpace::Kernel } else { AddrSpace::User };
            let ty = value.ty.clone();
            return Expr { kind: ExprKind::Address { expr: Box::new(value), space }, ty, span };
        }
        // bpftrace 0.17: an unsigned integer of the argument's width.
        let ty = Type::Int { bytes: value.ty.int_bytes() as u8, signed: false };
        Expr { kind: ExprKind::Bswap(Box::new(value)), ty, span }
    }

    /// `reg("NAME")`: a member of the probe context's `struct pt_regs`.
    fn check_reg(&mut self, call: &Call<'_>) -> Expr {
        let (register, span) = (&call.args[0], call.span);
        if !self.allowed_here(call) {
            let kind = self.probe_kind_name();
            self.error(
                Diagnostic::error("bad-probe", format!("reg can not be used with \"{kind}\" probes"), span).with_help(
                    "the registers are there in kprobe, uprobe, profile, interval, software and hardware probes",
                ),
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
            diag = match crate::check::suggest(text, REGISTERS.iter().copied()) {
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

    /// `path(ARG)`: the file name of a `struct path *` an fentry/fexit probe is handed, or of a
    /// `struct path` member of a struct such an argument points at (`args->filp->f_path`),
    /// whose address bpftrace 0.17 takes.
    fn check_path(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let value = self.check_expr(&call.args[0]);
        if value.ty == Type::None {
            return error_expr(span);
        }
        let path = if self.allowed_here(call) { path_address(value) } else { None };
        let Some(path) = path else {
            self.error(
                Diagnostic::error(
                    "bad-argument",
                    "path() takes a `struct path *` argument of an fentry/fexit probe, or a `struct path` member of a struct it points at",
                    span,
                )
                .with_help("e.g. fentry:vfs_getattr { printf(\"%s\\n\", path(args->path)); } or fentry:filp_close { printf(\"%s\\n\", path(args->filp->f_path)); } (the kernel allows bpf_d_path in a few functions only)"),
            );
            return error_expr(span);
        };
        let len = self.options.strlen;
        Expr { kind: ExprKind::DPath(Box::new(path)), ty: Type::Str { len }, span }
    }

    /// `cgroupid("PATH")`: the id, read now, of a cgroup v2 directory.
    fn check_cgroupid(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let Some((text, path)) = self.string_literal_arg(call, "a cgroup's path") else { return error_expr(span) };
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

    /// `kaddr("NAME")`: a kernel symbol's address, looked up now.
    fn check_kaddr(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let Some((text, symbol)) = self.string_literal_arg(call, "the kernel symbol's name") else {
            return error_expr(span);
        };
        match self.catalog.kernel_symbol(text) {
            Some(addr) => Expr { kind: ExprKind::Int(addr), ty: Type::U64, span },
            None => {
                self.error(
                    Diagnostic::error(
                        "unknown-symbol",
                        format!("Failed to resolve kernel symbol: {text}"),
                        symbol.span,
                    )
                    .with_help("kaddr() looks the name up in /proc/kallsyms"),
                );
                error_expr(span)
            }
        }
    }

    /// `uaddr("NAME")`: the address of a symbol of the probed binary, a pointer to an integer
    /// of the symbol's size (1, 2 or 4 bytes; 8 for any other size), in user memory.
    fn check_uaddr(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        if !self.allowed_here(call) {
            let kind = self.probe_kind_name();
            self.error(Diagnostic::error("bad-probe", format!("uaddr can not be used with \"{kind}\" probes"), span));
            return error_expr(span);
        }
        let Some((name, _)) = self.string_literal_arg(call, "a symbol's name") else { return error_expr(span) };
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-'));
        if !valid {
            self.error(Diagnostic::error(
                "bad-argument",
                format!(
                    "uaddr() expects a string that is a valid symbol (^[a-zA-Z0-9./_-]+$) as input (\"{name}\" provided)"
                ),
                span,
            ));
            return error_expr(span);
        }
        let target = match &self.scope.attach {
            Some(hir::AttachPoint::Uprobe { path, .. }) => path.clone(),
            Some(hir::AttachPoint::Usdt(usdt)) => usdt.path.clone(),
            _ => String::new(),
        };
        let Some((address, size)) = self.catalog.user_symbol(&target, name).filter(|(a, _)| *a != 0) else {
            self.error(Diagnostic::error("unknown-symbol", format!("Could not resolve symbol: {target}:{name}"), span));
            return error_expr(span);
        };
        let pointee = match size {
            1 => "int8",
            2 => "int16",
            4 => "int32",
            _ => "int64",
        };
        let value = Expr { kind: ExprKind::Int(address), ty: Type::U64, span };
        let ty = Type::Pointer { pointee: pointee.into(), target: None };
        Expr { kind: ExprKind::Address { expr: Box::new(value), space: AddrSpace::User }, ty, span }
    }

    /// `strerror(ERRNO)`: the number, whose text the runtime looks up when it prints it.
    fn check_strerror(&mut self, call: &Call<'_>) -> Expr {
        let errno = self.check_expr(&call.args[0]);
        self.expect_integer(&errno, "strerror() error number");
        Expr { kind: ExprKind::Cast { expr: Box::new(errno) }, ty: Type::Strerror, span: call.span }
    }

    /// `cgroup_path(ID[, "FILTER"])`: the id, whose paths the runtime looks up when it prints
    /// them, in the hierarchies whose names match FILTER (all of them by default).
    fn check_cgroup_path(&mut self, call: &Call<'_>) -> Expr {
        let span = call.span;
        let id = self.check_expr(&call.args[0]);
        self.expect_integer(&id, "cgroup_path() cgroup id");
        let filter = match call.args.get(1).map(|a| (a, &a.kind)) {
            None => "*".to_owned(),
            Some((_, ast::ExprKind::Str(text))) => text.clone(),
            Some((arg, _)) => {
                let e = self.check_expr(arg);
                self.error(Diagnostic::error(
                    "bad-argument",
                    format!("cgroup_path() expects a string literal ({} provided)", e.ty),
                    arg.span,
                ));
                return error_expr(span);
            }
        };
        Expr { kind: ExprKind::Cast { expr: Box::new(id) }, ty: Type::CgroupPath(filter), span }
    }

    /// `signal(SIG)`: a signal name (`"KILL"`, `"SIGKILL"`), a number 1-64, or an integer
    /// expression; only with `--unsafe`, and only in probes that fire in a process.
    fn check_signal(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        let (arg, span) = (&call.args[0], call.span);
        if !self.options.unsafe_allowed {
            self.error(
                Diagnostic::error("unsafe", "signal() is an unsafe function being used in safe mode", span)
                    .with_help("run rbt with --unsafe to allow it"),
            );
        }
        if !self.allowed_here(call) {
            let kind = self.scope.attach.as_ref().map(hir::AttachPoint::probe_name).unwrap_or_default();
            self.error(Diagnostic::error("bad-probe", format!("signal can not be used with \"{kind}\" probes"), span));
        }
        let value = match &arg.kind {
            ast::ExprKind::Str(text) => {
                let bare = text.strip_prefix("SIG").unwrap_or(text);
                let Some(i) = SIGNALS.iter().position(|s| *s == bare) else {
                    self.error(
                        Diagnostic::error("bad-argument", format!("Invalid signal: {text}"), arg.span)
                            .with_help("a signal's name (\"KILL\", \"SIGUSR1\") or number (1-64)"),
                    );
                    return None;
                };
                Expr { kind: ExprKind::Int(i as u64 + 1), ty: Type::I64, span: arg.span }
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

    /// `unwatch(ADDR)`: the runtime closes every watchpoint on ADDR (an address no watchpoint
    /// watches is no error, as in bpftrace 0.17).
    fn check_unwatch(&mut self, call: &Call<'_>) -> Option<StmtKind> {
        let addr = self.check_expr(&call.args[0]);
        if addr.ty == Type::None {
            return None;
        }
        if !addr.ty.is_integer() {
            self.error(Diagnostic::error(
                "type-mismatch",
                format!("unwatch() only supports integer arguments ({} provided)", addr.ty),
                call.span,
            ));
            return None;
        }
        Some(StmtKind::Unwatch(addr))
    }
}

/// The `struct path *` `path()` hands bpf_d_path, which takes the pointer as the kernel gave it
/// to the program (the verifier checks its BTF type): an fentry/fexit argument read straight from
/// the context, or such an argument plus the offset of a `struct path` member it points at.
fn path_address(value: Expr) -> Option<Expr> {
    let is_arg =
        |e: &Expr| matches!(&e.kind, ExprKind::Cast { expr } if matches!(expr.kind, ExprKind::ArgsField { .. }));
    let is_path = |name: &str| name == "struct path" || name == "const struct path";
    match value.kind {
        _ if matches!(&value.ty, Type::Pointer { pointee, .. } if is_path(pointee)) => is_arg(&value).then_some(value),
        ExprKind::KernelRead { addr, offset, bitfield: None, .. }
            if is_arg(&addr) && matches!(&value.ty, Type::Record(r) if is_path(&r.name)) =>
        {
            let ty = Type::Pointer { pointee: "struct path".into(), target: None };
            let at = Expr { kind: ExprKind::Int(offset.into()), ty: Type::U64, span: value.span };
            let kind = ExprKind::Binary { op: BinaryOp::Add, lhs: addr, rhs: Box::new(at) };
            Some(Expr { kind, ty, span: value.span })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracepoint::FieldType;
    use crate::types::RecordLayout;
    use std::sync::Arc;

    fn expr(kind: ExprKind, ty: Type) -> Expr {
        Expr { kind, ty, span: grammar::Span::default() }
    }

    /// `args->NAME` of an fentry probe: the context's first word as a pointer to `pointee`.
    fn arg(pointee: &str) -> Expr {
        let word = ExprKind::ArgsField { offset: 0, size: 8, ty: FieldType::Integer { size: 8, signed: false } };
        let ty = Type::Pointer { pointee: pointee.into(), target: None };
        expr(ExprKind::Cast { expr: Box::new(expr(word, Type::U64)) }, ty)
    }

    fn member(base: Expr, offset: u32, record: &str) -> Expr {
        let layout = RecordLayout { name: record.into(), size: 16, fields: Vec::new() };
        let kind = ExprKind::KernelRead { addr: Box::new(base), offset, bitfield: None, space: AddrSpace::Kernel };
        expr(kind, Type::Record(Arc::new(layout)))
    }

    #[test]
    fn a_path_argument_or_a_path_member_of_an_argument() {
        assert!(matches!(path_address(arg("struct path")), Some(Expr { kind: ExprKind::Cast { .. }, .. })));
        // `args->filp->f_path`: the argument plus the member's offset, not a read of the member.
        let at = path_address(member(arg("struct file"), 64, "struct path")).expect("an address");
        let ExprKind::Binary { op: BinaryOp::Add, lhs, rhs } = at.kind else { panic!("{at:?}") };
        assert!(matches!(lhs.kind, ExprKind::Cast { .. }) && matches!(rhs.kind, ExprKind::Int(64)));
        assert!(path_address(arg("struct file")).is_none());
        assert!(path_address(member(arg("struct file"), 16, "struct inode")).is_none());
        // A member of a struct read through memory has lost the kernel's type of its pointer.
        let deeper = member(member(arg("struct file"), 8, "struct path"), 0, "struct path");
        assert!(path_address(deeper).is_none());
    }
}
