//! Which memory an address points into, and reads through addresses that are integers.
//!
//! bpftrace 0.17 marks every pointer with an address space and reads through it with
//! `bpf_probe_read_kernel` or `bpf_probe_read_user` accordingly: kernel probes' arguments and
//! `curtask` are kernel addresses, uprobes' arguments user ones, and the syscalls tracepoints'
//! `args` are user memory (their pointers come from the process). rbt decides the same from the
//! expression an address is computed by ([`Checker::address_space`]); what it cannot follow (a
//! variable, a literal) is read with `bpf_probe_read`, which on x86-64 tells the two apart by
//! the address.
//!
//! `*kaddr("avenrun")`, `*arg0`, `*uaddr("GLOBAL")`: bpftrace dereferences integers too, reading
//! as many bytes as the integer has (a `uint64` address reads 8) and typing the value `uint64`;
//! a pointer to a named integer type (`uaddr`'s `int32 *`) reads that type.

use super::expr::int_type_named;
use super::Checker;
use crate::hir::{AddrSpace, AttachPoint, BinaryOp, Builtin, Expr, ExprKind};
use crate::types::Type;
use grammar::Span;

impl Checker<'_> {
    /// The memory `addr`, an address, points into.
    pub(super) fn address_space(&self, addr: &Expr) -> AddrSpace {
        match &addr.kind {
            ExprKind::Address { space, .. } | ExprKind::KernelRead { space, .. } => *space,
            ExprKind::Builtin(Builtin::Curtask | Builtin::Ctx) => AddrSpace::Kernel,
            ExprKind::Builtin(Builtin::Arg(_) | Builtin::Retval | Builtin::Sarg(_)) => self.probe_space(),
            ExprKind::ArgsField { .. } => match &self.scope.attach {
                Some(AttachPoint::Tracepoint { category, .. }) if category == "syscalls" => AddrSpace::User,
                Some(
                    AttachPoint::Tracepoint { .. } | AttachPoint::Fentry { .. } | AttachPoint::RawTracepoint { .. },
                ) => AddrSpace::Kernel,
                // `reg("si")`: a register of the probed context.
                _ => self.probe_space(),
            },
            // A cast keeps its operand's space, or takes the probe's (`(struct s *)0`).
            ExprKind::Cast { expr } => match self.address_space(expr) {
                AddrSpace::Unknown => self.probe_space(),
                known => known,
            },
            ExprKind::Binary { op: BinaryOp::Add | BinaryOp::Sub, lhs, rhs } => {
                match (self.address_space(lhs), self.address_space(rhs)) {
                    (AddrSpace::Unknown, other) | (other, AddrSpace::Unknown) => other,
                    (l, r) if l == r => l,
                    _ => AddrSpace::Unknown,
                }
            }
            _ => AddrSpace::Unknown,
        }
    }

    /// The address space of the probe's own context: kernel memory for kernel probes and
    /// tracepoints, user memory for uprobes and USDT probes, unknown elsewhere (BEGIN, profile).
    fn probe_space(&self) -> AddrSpace {
        match &self.scope.attach {
            Some(
                AttachPoint::Kprobe { .. }
                | AttachPoint::Fentry { .. }
                | AttachPoint::Tracepoint { .. }
                | AttachPoint::RawTracepoint { .. },
            ) => AddrSpace::Kernel,
            Some(AttachPoint::Uprobe { .. } | AttachPoint::Usdt(_)) => AddrSpace::User,
            _ => AddrSpace::Unknown,
        }
    }

    /// A tracepoint field's pointer type (`const struct __kernel_timespec *`), pointing at its
    /// kernel type when the kernel's BTF has it, so that `args->rqtp->tv_sec` reads through it.
    pub(super) fn tracepoint_pointer(&self, pointee: &str) -> Type {
        let mut name = pointee.trim();
        while let Some(rest) = ["const ", "volatile "].iter().find_map(|q| name.strip_prefix(q)) {
            name = rest.trim_start();
        }
        let name = name.strip_suffix(" const").unwrap_or(name).trim_end();
        let target = if name.contains('*') || name == "void" { None } else { self.catalog.kernel_type_named(name) };
        Type::Pointer { pointee: pointee.to_owned(), target }
    }

    /// `*addr` where `addr` is an integer, or a pointer to a named integer type rather than to
    /// a kernel type: the value read there. `None` when `addr` is neither.
    pub(super) fn deref_integer(&self, addr: &Expr, span: Span) -> Option<Expr> {
        let (read, result) = match &addr.ty {
            Type::Int { bytes, signed } => (Type::Int { bytes: *bytes, signed: *signed }, Type::U64),
            Type::Pointer { pointee, target: None } => {
                let int = int_type_named(pointee)?;
                (int.clone(), int)
            }
            _ => return None,
        };
        let space = self.address_space(addr);
        let kind = ExprKind::KernelRead { addr: Box::new(addr.clone()), offset: 0, bitfield: None, space };
        let value = Expr { kind, ty: read, span };
        if value.ty == result {
            return Some(value);
        }
        Some(Expr { kind: ExprKind::Cast { expr: Box::new(value) }, ty: result, span })
    }
}

#[cfg(test)]
mod tests {
    use crate::check::{check, CheckOptions};
    use crate::hir::{AddrSpace, ExprKind, StmtKind};
    use crate::tracepoint::{ProbeCatalog, TracepointFormat, UserFunction};
    use crate::types::Type;

    /// A system with one binary, `/bin/sh`, whose every function is at file offset 0x1000.
    struct Nothing;

    impl ProbeCatalog for Nothing {
        fn user_functions(&self, target: &str, pattern: &str) -> Result<Vec<UserFunction>, String> {
            Ok(vec![UserFunction { path: target.into(), name: pattern.into(), file_offset: 0x1000, size: 16 }])
        }
        fn match_tracepoints(&self, _: &str, _: &str) -> Vec<(String, String)> {
            Vec::new()
        }
        fn tracepoint_format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
            None
        }
        fn all_tracepoints(&self) -> Vec<String> {
            Vec::new()
        }
    }

    /// The value assigned to `@x` by `PROBE { @x = EXPR; }`.
    fn value_of(probe: &str, expr: &str) -> crate::hir::Expr {
        let (ast, diags) = grammar::parse(&format!("{probe} {{ @x = {expr}; }}"));
        assert!(diags.is_empty(), "{diags:?}");
        let (program, diags) = check(&ast, &Nothing, &CheckOptions::default());
        let program = program.unwrap_or_else(|| panic!("{expr}: {diags:?}"));
        match &program.probes[0].body[0].kind {
            StmtKind::AssignMap { value, .. } => value.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// The read under `*ADDR`, typed `uint64`, and the read's own type and space.
    fn read_of(probe: &str, expr: &str) -> (Type, AddrSpace) {
        let e = value_of(probe, expr);
        assert_eq!(e.ty, Type::U64, "{expr}");
        let read = match e.kind {
            ExprKind::Cast { expr } => *expr,
            _ => e,
        };
        let ExprKind::KernelRead { space, .. } = read.kind else { panic!("{expr}: {read:?}") };
        (read.ty, space)
    }

    #[test]
    fn integers_are_read_at_their_width_and_typed_uint64() {
        assert_eq!(read_of("BEGIN", "*(int32)1000"), (Type::Int { bytes: 4, signed: true }, AddrSpace::Unknown));
        assert_eq!(read_of("BEGIN", "*kptr(1000)"), (Type::I64, AddrSpace::Kernel));
        assert_eq!(read_of("BEGIN", "*uptr(1000 + 8)"), (Type::I64, AddrSpace::User));
        assert_eq!(read_of("uprobe:/bin/sh:main", "*arg0"), (Type::U64, AddrSpace::User));
        assert_eq!(read_of("uprobe:/bin/sh:main", "*(arg0 + 8)"), (Type::U64, AddrSpace::User));
    }
}
