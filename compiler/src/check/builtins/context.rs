//! The builtin variables: the current task (`pid`, `tid`, `uid`, `gid`, `comm`, `curtask`,
//! `cgroup`, `username`), time and place (`nsecs`, `elapsed`, `cpu`, `numaid`, `rand`), the
//! session (`cpid`), and what the probe was handed (`probe`, `func`, `args`, `arg0`..`arg5`,
//! `sarg0`..`sarg9`, `retval`), the last ones only in the probe kinds the table allows.

use crate::builtins::{self as table};
use crate::check::expr::{error_expr, string_literal};
use crate::check::{suggest, Checker};
use crate::hir::{AttachPoint, Builtin, Expr, ExprKind};
use crate::program::ProgramKind;
use crate::types::Type;
use grammar::{Diagnostic, Span};

impl Checker<'_> {
    pub(in crate::check) fn check_builtin(&mut self, name: &str, span: Span) -> Expr {
        if matches!(self.scope.attach, Some(AttachPoint::Usdt(_))) && usdt_arg_index(name).is_some() {
            return self.check_usdt_arg(name, span);
        }
        let Some(spec) = table::builtin(name) else { return self.unknown_identifier(name, span) };
        let allowed = spec.allowed_in(self.probe_kind());
        let (builtin, ty) = match name {
            "kstack" | "ustack" => return self.check_stack(name, &[], span),
            "args" => return self.check_args_builtin(allowed, span),
            "retval" => return self.check_retval(allowed, span),
            "func" => return self.check_func(allowed, span),
            "probe" => {
                let name = self.scope.attach.as_ref().map(AttachPoint::probe_name).unwrap_or_default();
                return string_literal(name.into_bytes(), span);
            }
            "cpid" => {
                if self.options.cpid.is_none() {
                    self.error(
                        Diagnostic::error("no-cpid", "cpid is only available with -c COMMAND", span)
                            .with_help("run the program with `-c 'COMMAND'`"),
                    );
                }
                // As bpftrace 0.17 types it (its value is nonetheless 64 bits wide).
                (Builtin::Cpid, Type::U32)
            }
            "curtask" => (Builtin::Curtask, self.curtask_type()),
            "ctx" => match self.ctx_type(span) {
                Some(ty) => (Builtin::Ctx, ty),
                None => return error_expr(span),
            },
            "comm" => (Builtin::Comm, Type::Str { len: 16 }),
            // The uid, named in user space when printed, as bpftrace 0.17 does.
            "username" => (Builtin::Uid, Type::Username),
            _ if sarg_index(name).is_some() => (self.check_sarg(name, allowed, span), Type::U64),
            _ => match (simple_builtin(name), usdt_arg_index(name)) {
                (Some(builtin), _) => (builtin, Type::U64),
                (None, Some(n)) => (self.check_arg(name, n, allowed, span), Type::U64),
                (None, None) => return self.unknown_identifier(name, span),
            },
        };
        Expr { kind: ExprKind::Builtin(builtin), ty, span }
    }

    /// `ctx`'s type: a pointer to the context struct of the probe's program type, as bpftrace
    /// 0.17 types it (a plain integer without BTF); an error where there is no such struct.
    fn ctx_type(&mut self, span: Span) -> Option<Type> {
        let struct_name = match self.scope.attach.as_ref().map(ProgramKind::of) {
            Some(ProgramKind::Kprobe) => "struct pt_regs",
            Some(ProgramKind::PerfEvent) => "struct bpf_perf_event_data",
            Some(ProgramKind::Tracepoint) => {
                self.error(Diagnostic::error("no-ctx", "Use args instead of ctx in tracepoint", span));
                return None;
            }
            _ => {
                let probe = self.scope.attach.as_ref().map(AttachPoint::probe_name).unwrap_or_default();
                self.error(
                    Diagnostic::error("no-ctx", format!("ctx is not available in this probe ({probe})"), span)
                        .with_help("ctx exists in kprobes, uprobes, USDT probes, profile, interval and perf events"),
                );
                return None;
            }
        };
        Some(match self.catalog.kernel_type_named(struct_name) {
            Some(id) => Type::Pointer { pointee: struct_name.into(), target: Some(id) },
            None => Type::U64,
        })
    }

    /// A name that is no builtin: a kernel enum constant from BTF (as in bpftrace 0.17), or an
    /// error that names the header defining it when rbt knows one.
    fn unknown_identifier(&mut self, name: &str, span: Span) -> Expr {
        if let Some(value) = self.catalog.kernel_enum_constant(name) {
            return Expr { kind: ExprKind::Int(value), ty: Type::U64, span };
        }
        let mut diag = Diagnostic::error("unknown-identifier", format!("unknown identifier: '{name}'"), span);
        if let Some(header) = grammar::preprocess::header_defining(name) {
            let included = self.options.included_headers.iter().any(|h| h == header);
            diag = diag.with_help(if included {
                format!("`{name}` is defined in <{header}>, which this system does not have")
            } else {
                format!("`{name}` is defined in <{header}>: add `#include <{header}>`")
            });
        } else if let Some(near) = suggest(name, table::BUILTINS.iter().map(|b| b.name)) {
            diag = diag.with_help(format!("did you mean `{near}`?"));
        }
        self.error(diag);
        error_expr(span)
    }

    /// `arg0`..`arg5` outside USDT probes.
    fn check_arg(&mut self, name: &str, n: usize, allowed: bool, span: Span) -> Builtin {
        if !allowed {
            self.error(
                Diagnostic::error(
                    "no-args",
                    format!("{name} is only available in uprobe, kprobe and rawtracepoint probes"),
                    span,
                )
                .with_help("tracepoints have args->FIELD instead"),
            );
        }
        #[allow(clippy::cast_possible_truncation, reason = "the table has arg0 to arg5")]
        Builtin::Arg(n as u8)
    }

    /// `sarg0`..`sarg9`: only kprobes and uprobes read them, from the stack the function was
    /// called with, so a probe at an offset into the function may find the stack moved.
    fn check_sarg(&mut self, name: &str, allowed: bool, span: Span) -> Builtin {
        if !allowed {
            self.error(Diagnostic::error(
                "no-args",
                format!("The {name} builtin can only be used with 'kprobes' and 'uprobes' probes"),
                span,
            ));
        }
        let at_offset = match &self.scope.attach {
            Some(AttachPoint::Kprobe { offset, .. }) => *offset != 0,
            Some(AttachPoint::Uprobe { address, .. }) => address.is_some(),
            _ => false,
        };
        if at_offset {
            // bpftrace 0.17's words, its missing space included.
            self.error(Diagnostic::warning(
                "sarg-offset",
                "Using an address offset with the sargX built-in canlead to unexpected behavior ",
                span,
            ));
        }
        Builtin::Sarg(sarg_index(name).unwrap_or(0))
    }

    /// `args`, whose fields `args->NAME` reads; raw tracepoints have them only when BTF
    /// describes the tracepoint, uprobes when the binary's DWARF describes the function.
    fn check_args_builtin(&mut self, allowed: bool, span: Span) -> Expr {
        let described = !matches!(self.scope.attach, Some(AttachPoint::RawTracepoint { signature: None, .. }));
        if !allowed || !described {
            // bpftrace 0.17's words, its missing space included.
            let message = format!(
                "The args builtin can only be used with tracepoint/kfunc/uprobeprobes ({} used here)",
                self.probe_kind_name()
            );
            self.error(Diagnostic::error("no-args", message, span));
        }
        Expr { kind: ExprKind::Int(0), ty: Type::Args, span }
    }

    fn check_retval(&mut self, allowed: bool, span: Span) -> Expr {
        if let Some(AttachPoint::Fentry { func, ret: true }) = &self.scope.attach {
            let func = func.clone();
            return self.fexit_retval(&func, span);
        }
        if !allowed {
            self.error(Diagnostic::error(
                "no-retval",
                "retval is only available in uretprobe, kretprobe and fexit probes",
                span,
            ));
        }
        Expr { kind: ExprKind::Builtin(Builtin::Retval), ty: Type::U64, span }
    }

    /// `func`: the probed function's name, known when the program is compiled.
    fn check_func(&mut self, allowed: bool, span: Span) -> Expr {
        let name = match &self.scope.attach {
            Some(AttachPoint::Uprobe { func, .. } | AttachPoint::Kprobe { func, .. }) if allowed => func.clone(),
            Some(AttachPoint::Fentry { func, .. }) if allowed => func.name.clone(),
            _ => {
                self.error(Diagnostic::error("no-func", "func is only available in uprobe and kprobe probes", span));
                String::new()
            }
        };
        string_literal(name.into_bytes(), span)
    }

    /// `argN` of a USDT probe: the probe's note says how many arguments it has.
    fn check_usdt_arg(&mut self, name: &str, span: Span) -> Expr {
        let Some(AttachPoint::Usdt(usdt)) = &self.scope.attach else { return error_expr(span) };
        let count = usdt.args.len();
        let probe = format!("{}:{}", usdt.provider, usdt.name);
        match usdt_arg_index(name) {
            Some(n) if n < count => {
                #[allow(clippy::cast_possible_truncation, reason = "a note has at most a dozen arguments")]
                let n = n as u8;
                Expr { kind: ExprKind::Builtin(Builtin::Arg(n)), ty: Type::U64, span }
            }
            _ => {
                let has = match count {
                    0 => "no arguments".to_owned(),
                    1 => "1 argument (arg0)".to_owned(),
                    n => format!("{n} arguments (arg0..arg{})", n - 1),
                };
                self.error(Diagnostic::error(
                    "usdt-arg",
                    format!("couldn't get {name} of USDT probe {probe}: it has {has}"),
                    span,
                ));
                error_expr(span)
            }
        }
    }
}

/// The builtins read by one helper call or context load, with no check of their own.
fn simple_builtin(name: &str) -> Option<Builtin> {
    Some(match name {
        "pid" => Builtin::Pid,
        "tid" => Builtin::Tid,
        "uid" => Builtin::Uid,
        "gid" => Builtin::Gid,
        "nsecs" => Builtin::Nsecs,
        "elapsed" => Builtin::Elapsed,
        "cpu" => Builtin::Cpu,
        "rand" => Builtin::Rand,
        "cgroup" => Builtin::Cgroup,
        "numaid" => Builtin::NumaId,
        _ => return None,
    })
}

/// `sarg7` as 7 (bpftrace has `sarg0` to `sarg9`).
fn sarg_index(name: &str) -> Option<u8> {
    match name.strip_prefix("sarg")?.as_bytes() {
        [digit @ b'0'..=b'9'] => Some(digit - b'0'),
        _ => None,
    }
}

/// `arg7` as 7.
fn usdt_arg_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("arg")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}
