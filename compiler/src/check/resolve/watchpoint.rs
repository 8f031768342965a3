//! `watchpoint:ADDRESS:LENGTH:MODE` and `watchpoint:FUNCTION+argN:LENGTH:MODE` (also
//! `asyncwatchpoint:FUNCTION+argN:...`): a hardware breakpoint on LENGTH bytes, firing when they
//! are read (`r`), written (`w`) or executed (`x`). An absolute address is the `-c` command's or
//! the `-p` process's when there is one, else the kernel's. Checked as bpftrace 0.17 checks it,
//! with its words.
//!
//! The function form watches whatever address FUNCTION's argument N holds, as bpftrace 0.17
//! does it: each matching function gets a hidden setup uprobe ([`setup_probe`]) that reports
//! every new address to the runtime (stopping the process with SIGSTOP first, unless
//! `asyncwatchpoint`), and the runtime opens the breakpoint on it, attaches the probe's program
//! and lets the process continue (`runtime/src/session/watch.rs`).

use super::{parse_offset, Resolver};
use crate::hir::{self, AttachPoint, BinaryOp, Builtin, Expr, ExprKind, FunctionWatch, Stmt, StmtKind};
use crate::types::Type;
use grammar::ast::ProbeSpec;
use grammar::{Diagnostic, Span};

/// The modes x86-64's debug registers cannot watch (Intel SDM volume 3, 17.2.4), sorted.
const INVALID_MODES: &[&str] = &["r", "rx", "wx", "rwx"];

/// The highest argument x86-64 passes in a register (`arg5`, r9), which the setup uprobe reads.
const MAX_ARG: u64 = 5;

impl Resolver<'_> {
    pub(super) fn resolve_watchpoint(
        &mut self,
        spec: &ProbeSpec,
        parts: &[&str],
        asynchronous: bool,
    ) -> Vec<AttachPoint> {
        let kind = if asynchronous { "asyncwatchpoint" } else { "watchpoint" };
        let bad = |message: String| {
            Diagnostic::error("bad-attach-point", message, spec.span).with_help(format!(
                "write {kind}:ADDRESS:LENGTH:MODE or {kind}:FUNCTION+argN:LENGTH:MODE, e.g. watchpoint:0x10000000:8:w"
            ))
        };
        if parts.len() != 4 {
            self.error(bad(format!("{kind} probe type requires 3 arguments")));
            return Vec::new();
        }
        if parts[1].contains('+') {
            return self.resolve_function_watchpoint(spec, parts, asynchronous);
        }
        if asynchronous {
            self.error(
                Diagnostic::error("bad-attach-point", format!("{kind} requires a function name"), spec.span)
                    .with_help("watchpoint:ADDRESS:LENGTH:MODE watches an address"),
            );
            return Vec::new();
        }
        let (Some(address), Some(len)) = (parse_offset(parts[1]), parts[2].parse::<u64>().ok()) else {
            self.error(bad(format!("invalid {kind}: {}", spec.text)));
            return Vec::new();
        };
        let mut errors = Vec::new();
        if address == 0 {
            errors.push("watchpoint must be attached to a non-zero address".to_owned());
        }
        let Some((len, mode)) = self.length_and_mode(spec, len, parts[3], errors) else { return Vec::new() };
        let pid = self.options.cpid.or(self.options.pid);
        vec![AttachPoint::Watchpoint { address, len, mode, pid }]
    }

    /// The length and mode of a watchpoint (the mode sorted), after reporting `errors` found
    /// before and every problem of the two, in bpftrace 0.17's order.
    fn length_and_mode(
        &mut self,
        spec: &ProbeSpec,
        len: u64,
        mode: &str,
        mut errors: Vec<String>,
    ) -> Option<(u8, String)> {
        if ![1, 2, 4, 8].contains(&len) {
            errors.push("watchpoint length must be one of (1,2,4,8)".to_owned());
        }
        let mut mode: Vec<char> = mode.chars().collect();
        mode.sort_unstable();
        let mode: String = mode.into_iter().collect();
        if mode.is_empty() || mode.chars().any(|c| !matches!(c, 'r' | 'w' | 'x')) {
            errors.push("watchpoint mode must be combination of (r,w,x)".to_owned());
        }
        if mode.as_bytes().windows(2).any(|w| w[0] == w[1]) {
            errors.push("watchpoint modes may not be duplicated".to_owned());
        }
        if INVALID_MODES.contains(&mode.as_str()) {
            errors.push(format!("invalid watchpoint mode: {mode}"));
        }
        if !errors.is_empty() {
            for message in errors {
                self.error(Diagnostic::error("bad-attach-point", message, spec.span));
            }
            return None;
        }
        #[allow(clippy::cast_possible_truncation, reason = "checked to be 1, 2, 4 or 8")]
        Some((len as u8, mode))
    }

    /// `watchpoint:FUNCTION+argN:LENGTH:MODE`: one attach point per function FUNCTION (a
    /// wildcard) matches in the `-c` command's or `-p` process's executable.
    fn resolve_function_watchpoint(
        &mut self,
        spec: &ProbeSpec,
        parts: &[&str],
        asynchronous: bool,
    ) -> Vec<AttachPoint> {
        let bad = |message: &str| {
            Diagnostic::error("bad-attach-point", message, spec.span)
                .with_help("write FUNCTION+argN, the argument (arg0 to arg5) holding the address to watch")
        };
        // As bpftrace 0.17 splits it: empty pieces dropped, so `f++arg0` is `f+arg0`.
        let pieces: Vec<&str> = parts[1].split('+').filter(|p| !p.is_empty()).collect();
        let [func, arg] = pieces[..] else {
            self.error(bad("Invalid function/address argument"));
            return Vec::new();
        };
        let Some(arg) = arg.strip_prefix("arg").filter(|n| !n.is_empty()).and_then(|n| n.parse::<u64>().ok()) else {
            self.error(bad("Invalid function argument"));
            return Vec::new();
        };
        let Ok(len) = parts[2].parse::<u64>() else {
            let kind = if asynchronous { "asyncwatchpoint" } else { "watchpoint" };
            self.error(bad(&format!("invalid {kind}: {}", spec.text)));
            return Vec::new();
        };
        let mut errors = Vec::new();
        let target = self.watched_binary();
        if target.is_none() {
            errors.push("-p PID or -c CMD required for watchpoint".to_owned());
        }
        if arg > MAX_ARG {
            errors.push(format!("x86_64 doesn't support arg{arg}"));
        }
        let Some((len, mode)) = self.length_and_mode(spec, len, parts[3], errors) else { return Vec::new() };
        let Some((target, binary)) = target else { return Vec::new() };
        let functions = match self.catalog.user_functions(&binary, func) {
            Ok(functions) if functions.is_empty() => {
                self.error(Diagnostic::error(
                    "unknown-function",
                    format!("no function matching '{func}' in {target}"),
                    spec.span,
                ));
                return Vec::new();
            }
            Ok(functions) => functions,
            Err(message) => {
                self.error(Diagnostic::error("bad-attach-point", message, spec.span));
                return Vec::new();
            }
        };
        let pid = self.options.cpid.or(self.options.pid);
        #[allow(clippy::cast_possible_truncation, reason = "at most MAX_ARG")]
        let arg = arg as u8;
        functions
            .into_iter()
            .map(|f| {
                AttachPoint::FunctionWatchpoint(Box::new(FunctionWatch {
                    target: target.clone(),
                    func: f.name,
                    path: f.path,
                    offset: f.file_offset,
                    arg,
                    len,
                    mode: mode.clone(),
                    asynchronous,
                    pid,
                }))
            })
            .collect()
    }

    /// The binary whose functions a function watchpoint names: its name in `probe`, as bpftrace
    /// 0.17 gives it (`-c`'s command as found, `/proc/PID/exe` for `-p`), and the path to read
    /// its functions from. `None` without `-c` or `-p`.
    fn watched_binary(&mut self) -> Option<(String, String)> {
        if let Some(command) = &self.options.command_path {
            return Some((command.clone(), command.clone()));
        }
        let pid = self.options.pid?;
        let binary = self.catalog.process_executable(pid).unwrap_or_else(|_| format!("/proc/{pid}/exe"));
        Some((format!("/proc/{pid}/exe"), binary))
    }
}

/// The setup uprobe of the function watchpoint `watch` (probe number `index` of the program):
/// on FUNCTION's entry in the watched process, it reports the address argN holds, stopping the
/// process first unless the watchpoint is asynchronous (`hir::StmtKind::Watch`).
pub(in crate::check) fn setup_probe(index: usize, watch: &FunctionWatch, spec_span: Span, span: Span) -> hir::Probe {
    let attach = AttachPoint::Uprobe {
        path: watch.path.clone(),
        func: watch.func.clone(),
        offset: watch.offset,
        ret: false,
        address: None,
    };
    let int = |kind: ExprKind| Expr { kind, ty: Type::U64, span: spec_span };
    // Only the watched process: another running the same binary must not be stopped.
    let predicate = watch.pid.filter(|&pid| pid > 0).map(|pid| {
        let lhs = Box::new(int(ExprKind::Builtin(Builtin::Pid)));
        let rhs = Box::new(int(ExprKind::Int(u64::from(pid))));
        int(ExprKind::Binary { op: BinaryOp::Eq, lhs, rhs })
    });
    #[allow(clippy::cast_possible_truncation, reason = "probe indices are far below u32::MAX")]
    let kind = StmtKind::Watch {
        watch: index as u32,
        addr: int(ExprKind::Builtin(Builtin::Arg(watch.arg))),
        stop: !watch.asynchronous,
    };
    hir::Probe { attach, spec_span, span, predicate, body: vec![Stmt { kind, span: spec_span }], vars: Vec::new() }
}

#[cfg(test)]
mod tests {
    use crate::hir::{AttachPoint, StmtKind};
    use crate::program::{EventKind, MapRole};
    use crate::tracepoint::{ProbeCatalog, TracepointFormat, UserFunction};
    use crate::{CheckOptions, CompileOptions};

    /// A binary with the functions `inc_a` and `inc_b`.
    struct Binary;

    impl ProbeCatalog for Binary {
        fn user_functions(&self, target: &str, pattern: &str) -> Result<Vec<UserFunction>, String> {
            let all = [("inc_a", 0x1000), ("inc_b", 0x1100)];
            let matches = |name: &str| pattern.strip_suffix('*').map_or(name == pattern, |p| name.starts_with(p));
            Ok(all
                .iter()
                .filter(|(name, _)| matches(name))
                .map(|&(name, file_offset)| UserFunction {
                    path: target.into(),
                    name: name.into(),
                    file_offset,
                    size: 16,
                })
                .collect())
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

    fn options() -> CheckOptions {
        CheckOptions { cpid: Some(42), command_path: Some("./prog".into()), ..CheckOptions::default() }
    }

    fn checked(source: &str) -> crate::hir::Program {
        let (ast, diags) = grammar::parse(source);
        assert!(diags.is_empty(), "{diags:?}");
        let (program, diags) = crate::check::check(&ast, &Binary, &options());
        program.unwrap_or_else(|| panic!("{diags:?}"))
    }

    /// Each function gets its watchpoint probe, named as bpftrace 0.17 names it, then its setup
    /// uprobe, which reports the address for the probe before it (stopping the process unless
    /// asynchronous) and only in the watched process.
    #[test]
    fn each_function_gets_a_setup_uprobe() {
        let program = checked("watchpoint:inc_*+arg1:4:w { @n = count(); } asyncwatchpoint:inc_a+arg0:8:rw { 1 }");
        let names: Vec<String> = program.probes.iter().map(|p| p.attach.probe_name()).collect();
        assert_eq!(
            names,
            [
                "watchpoint:./prog:inc_a:1:4:w",
                "uprobe:./prog:inc_a",
                "watchpoint:./prog:inc_b:1:4:w",
                "uprobe:./prog:inc_b",
                "asyncwatchpoint:./prog:inc_a:8:rw",
                "uprobe:./prog:inc_a",
            ]
        );
        for (setup, watch, stop) in [(1, 0, true), (3, 2, true), (5, 4, false)] {
            let probe = &program.probes[setup];
            assert!(matches!(probe.attach, AttachPoint::Uprobe { offset: 0x1000 | 0x1100, ret: false, .. }));
            assert!(probe.predicate.is_some(), "only the watched process");
            match &probe.body[..] {
                [s] => match &s.kind {
                    StmtKind::Watch { watch: w, stop: st, .. } => assert_eq!((*w, *st), (watch, stop)),
                    other => panic!("{other:?}"),
                },
                body => panic!("{body:?}"),
            }
        }
    }

    /// The setup uprobes remember their addresses in one map and report them as `Watch`
    /// records; the watchpoint probes are perf event programs.
    #[test]
    fn compiles_with_the_watched_map() {
        let options = CompileOptions { check: options(), ..CompileOptions::default() };
        let source = "watchpoint:inc_a+arg0:4:w { unwatch(0x10); }";
        let (compiled, diags) = crate::compile(source, &Binary, &options);
        let compiled = compiled.unwrap_or_else(|| panic!("{diags:?}"));
        assert_eq!(compiled.probes.len(), 2);
        assert_eq!(compiled.probes[0].kind, crate::program::ProgramKind::PerfEvent);
        assert_eq!(compiled.probes[1].kind, crate::program::ProgramKind::Kprobe);
        assert_eq!(compiled.bpf_maps.iter().filter(|m| m.role == MapRole::Watched).count(), 1);
        assert_eq!(EventKind::from_u32(EventKind::Watch as u32), Some(EventKind::Watch));
        assert_eq!(EventKind::from_u32(EventKind::Unwatch as u32), Some(EventKind::Unwatch));
    }

    /// Without -c or -p there is no process whose calls to watch.
    #[test]
    fn needs_a_process() {
        let (ast, _) = grammar::parse("watchpoint:inc_a+arg0:4:w { 1 }");
        let (program, diags) = crate::check::check(&ast, &Binary, &CheckOptions::default());
        assert!(program.is_none());
        assert_eq!(diags[0].message, "-p PID or -c CMD required for watchpoint");
    }
}
