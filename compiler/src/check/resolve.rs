//! Resolving attach points, a pass of its own before typing: every probe spec of the program
//! is resolved once (probe kinds from [`crate::probe_kind`], tracepoint wildcards, uprobe,
//! kprobe and fentry targets and perf counters through the catalog, profile and interval rates)
//! into the concrete attach points it stands for, with the diagnostics resolving it gave. The
//! checker's runs (the collecting ones and the final one) all read the result, so the catalog is
//! asked once per spec however many runs the type fixpoint takes.

mod kernel;
mod skipped;
mod uprobe_line;
mod watchpoint;

pub(super) use watchpoint::setup_probe;

use skipped::{placeholder, skip_missing_functions};

use super::suggest::{nearest, nearest_names, suggest};
use super::CheckOptions;
use crate::hir::{AttachPoint, PerfRate};
use crate::probe_kind::ProbeKind;
use crate::tracepoint::ProbeCatalog;
use grammar::ast::{self, ProbeSpec};
use grammar::Diagnostic;

/// One written probe spec, resolved: the attach points it stands for (none after an error, many
/// for a wildcard), and the diagnostics resolving it gave, in the order they were found.
pub(super) struct ResolvedSpec {
    pub points: Vec<AttachPoint>,
    pub diags: Vec<Diagnostic>,
    /// For a kprobe or uprobe skipped because its function is missing: an attach point of its
    /// kind to type the block's body against, so that the maps it uses exist (empty) for the
    /// rest of the program, as in bpftrace, which checks a skipped probe's body too.
    pub skipped_as: Option<AttachPoint>,
}

/// Every spec of every probe block of `program`, resolved: one list per block, one entry per
/// spec, in the program's order.
pub(super) fn resolve_program(
    program: &ast::Program,
    catalog: &dyn ProbeCatalog,
    options: &CheckOptions,
) -> Vec<Vec<ResolvedSpec>> {
    let mut resolver = Resolver { catalog, options, diags: Vec::new() };
    let mut resolved: Vec<Vec<ResolvedSpec>> = program
        .probes
        .iter()
        .map(|probe| {
            probe
                .specs
                .iter()
                .map(|spec| {
                    let points = resolver.resolve_attach(spec);
                    let diags = std::mem::take(&mut resolver.diags);
                    let skipped_as = placeholder(spec, &points, &diags);
                    ResolvedSpec { points, diags, skipped_as }
                })
                .collect()
        })
        .collect();
    skip_missing_functions(program, &mut resolved);
    resolved
}

/// Kernel functions whose return a kretprobe must not trap: bpftrace 0.17 refuses them, since
/// they can lock up the system.
const BANNED_KRETPROBES: &[&str] =
    &["_raw_spin_lock", "_raw_spin_lock_irqsave", "_raw_spin_unlock_irqrestore", "queued_spin_lock_slowpath"];

struct Resolver<'a> {
    catalog: &'a dyn ProbeCatalog,
    options: &'a CheckOptions,
    diags: Vec<Diagnostic>,
}

impl Resolver<'_> {
    fn error(&mut self, diag: Diagnostic) {
        self.diags.push(diag);
    }

    /// The concrete attach points one written spec stands for (a wildcard gives many).
    fn resolve_attach(&mut self, spec: &ProbeSpec) -> Vec<AttachPoint> {
        // Positional parameters are already spliced in (`positional.rs`): `uprobe:$1:main`.
        let parts: Vec<&str> = spec.parts.iter().map(String::as_str).collect();
        let word = parts.first().copied().unwrap_or("");
        match ProbeKind::from_alias(word) {
            Some(kind @ (ProbeKind::Begin | ProbeKind::End)) if parts.len() == 1 => {
                vec![if kind == ProbeKind::Begin { AttachPoint::Begin } else { AttachPoint::End }]
            }
            Some(ProbeKind::Tracepoint) => self.resolve_tracepoint(spec, &parts),
            Some(kind @ (ProbeKind::Profile | ProbeKind::Interval)) => {
                let profile = kind == ProbeKind::Profile;
                let Some(rate) = self.resolve_rate(spec, &parts, profile) else { return Vec::new() };
                vec![if profile { AttachPoint::Profile { rate } } else { AttachPoint::Interval { rate } }]
            }
            Some(kind @ (ProbeKind::Uprobe | ProbeKind::Uretprobe)) => self.resolve_uprobe(spec, &parts, kind),
            Some(kind @ (ProbeKind::Kprobe | ProbeKind::Kretprobe)) => self.resolve_kprobe(spec, &parts, kind),
            Some(kind @ (ProbeKind::Software | ProbeKind::Hardware)) => {
                self.resolve_perf_counter(spec, &parts, kind == ProbeKind::Hardware)
            }
            Some(ProbeKind::RawTracepoint) => self.resolve_raw_tracepoint(spec, &parts),
            Some(kind @ (ProbeKind::Fentry | ProbeKind::Fexit)) => self.resolve_fentry(spec, &parts, kind),
            Some(ProbeKind::Usdt) => self.resolve_usdt(spec, &parts),
            Some(kind @ (ProbeKind::Watchpoint | ProbeKind::AsyncWatchpoint)) => {
                self.resolve_watchpoint(spec, &parts, kind == ProbeKind::AsyncWatchpoint)
            }
            Some(kind) if !kind.is_supported() => {
                let supported: Vec<&str> =
                    ProbeKind::supported().filter(|k| !k.is_return()).map(ProbeKind::canonical).collect();
                self.error(
                    Diagnostic::error(
                        "unsupported-probe",
                        format!("{word} probes are not supported by rbt yet"),
                        spec.span,
                    )
                    .with_help(format!("rbt supports {} probes", and_list(&supported))),
                );
                Vec::new()
            }
            _ => {
                let mut diag =
                    Diagnostic::error("unknown-probe-type", format!("invalid probe type: {word}"), spec.span);
                let names: Vec<&str> = ProbeKind::supported().map(ProbeKind::canonical).collect();
                if let Some(near) = suggest(word, names.iter().copied()) {
                    diag = diag.with_help(format!("did you mean `{near}`?"));
                } else {
                    diag = diag.with_help(format!("probe types: {}", names.join(", ")));
                }
                self.error(diag);
                Vec::new()
            }
        }
    }

    /// `rawtracepoint:NAME` (`rawtracepoint:MODULE:NAME`): a tracepoint by its event's name.
    fn resolve_raw_tracepoint(&mut self, spec: &ProbeSpec, parts: &[&str]) -> Vec<AttachPoint> {
        match parts {
            [_, name] | [_, _, name] if !name.is_empty() && self.catalog.tracepoint_exists(name) => {
                let signature = self.catalog.raw_tracepoint_signature(name);
                vec![AttachPoint::RawTracepoint { name: (*name).to_owned(), signature }]
            }
            _ => {
                self.error(
                    Diagnostic::error("unknown-tracepoint", format!("no raw tracepoint {}", spec.text), spec.span)
                        .with_help(
                            "write rawtracepoint:NAME with a tracepoint's name, e.g. rawtracepoint:sched_switch",
                        ),
                );
                Vec::new()
            }
        }
    }

    fn resolve_tracepoint(&mut self, spec: &ProbeSpec, parts: &[&str]) -> Vec<AttachPoint> {
        if parts.len() != 3 || parts[1].is_empty() || parts[2].is_empty() {
            self.error(
                Diagnostic::error("bad-attach-point", format!("invalid tracepoint: {}", spec.text), spec.span)
                    .with_help("write tracepoint:CATEGORY:EVENT, e.g. tracepoint:syscalls:sys_enter_openat"),
            );
            return Vec::new();
        }
        let matches = self.catalog.match_tracepoints(parts[1], parts[2]);
        if matches.is_empty() {
            let wanted = format!("{}:{}", parts[1], parts[2]);
            let mut diag =
                Diagnostic::error("unknown-tracepoint", format!("tracepoint not found: {wanted}"), spec.span);
            let all = self.catalog.all_tracepoints();
            let near = nearest_names(&wanted, &all, 3);
            if !near.is_empty() {
                diag = diag.with_help(format!("did you mean {}?", near.join(", ")));
            }
            self.error(diag);
            return Vec::new();
        }
        let mut points = Vec::new();
        for (category, event) in matches {
            match self.catalog.tracepoint_format(&category, &event) {
                Some(format) => points.push(AttachPoint::Tracepoint { category, event, format }),
                None => self.error(Diagnostic::error(
                    "unknown-tracepoint",
                    format!("cannot read the format of tracepoint {category}:{event}"),
                    spec.span,
                )),
            }
        }
        points
    }

    /// `uprobe:PATH:FUNC`, `uprobe:LIBRARY:FUNC`, `uprobe:PATH:FUNC+OFFSET`, wildcards in FUNC
    /// (matched against C++ symbols' demangled names too), `uprobe:PATH:ADDRESS`.
    fn resolve_uprobe(&mut self, spec: &ProbeSpec, parts: &[&str], kind: ProbeKind) -> Vec<AttachPoint> {
        if let [_, at, line, rest @ ..] = parts {
            if let (Some((binary, file)), true) = (at.split_once('@'), rest.len() <= 1) {
                return self.resolve_uprobe_line(spec, binary, file, line, rest.first().copied(), kind);
            }
        }
        if let [_, binary, func, line] = parts {
            if line.parse::<u32>().is_ok() {
                return self.resolve_uprobe_function_line(spec, binary, func, line, kind);
            }
        }
        let ret = kind.is_return();
        // With `-p PID` the binary may be left out (`uprobe:FUNC`): the process's executable.
        // A path is taken as that process sees it.
        let target = match (self.options.pid, parts) {
            (Some(pid), [_, _]) => match self.catalog.process_executable(pid) {
                Ok(exe) => Some(exe),
                Err(message) => {
                    self.error(Diagnostic::error("bad-attach-point", message, spec.span));
                    return Vec::new();
                }
            },
            (Some(pid), [_, target, _]) => Some(self.catalog.process_path(pid, target)),
            _ => None,
        };
        let parts: Vec<&str> = match (&target, parts) {
            (Some(target), [word, func]) | (Some(target), [word, _, func]) => vec![word, target.as_str(), func],
            _ => parts.to_vec(),
        };
        let parts = parts.as_slice();
        if parts.len() != 3 || parts[1].is_empty() || parts[2].is_empty() {
            self.error(
                Diagnostic::error("bad-attach-point", format!("invalid {kind}: {}", spec.text), spec.span).with_help(
                    format!("write {kind}:PATH:FUNCTION, e.g. {kind}:/bin/bash:readline or {kind}:libc:malloc"),
                ),
            );
            return Vec::new();
        }
        let (pattern, extra) = match parts[2].split_once('+') {
            Some((f, off)) => match parse_offset(off) {
                Some(off) if !ret => (f, off),
                Some(_) => {
                    self.error(Diagnostic::error("bad-attach-point", "uretprobe cannot take an offset", spec.span));
                    return Vec::new();
                }
                None => {
                    self.error(Diagnostic::error("bad-attach-point", format!("invalid offset: {off}"), spec.span));
                    return Vec::new();
                }
            },
            None => match parse_offset(parts[2]) {
                Some(address) => return self.resolve_uprobe_address(spec, parts[1], address, kind),
                None => (parts[2], 0),
            },
        };
        let functions = match self.catalog.user_functions(parts[1], pattern) {
            Ok(functions) if functions.is_empty() => {
                self.error(Diagnostic::error(
                    "unknown-function",
                    format!("no function matching '{pattern}' in {}", parts[1]),
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
        let mut points = Vec::new();
        for f in functions {
            if extra > 0 && f.size > 0 && extra >= f.size {
                self.error(Diagnostic::error(
                    "bad-attach-point",
                    format!("Offset outside the function bounds ('{}' size is {})", f.name, f.size),
                    spec.span,
                ));
                continue;
            }
            if extra > 0 && !self.unchecked_offset_allowed(spec, kind, &f.path, &f.name, extra) {
                continue;
            }
            points.push(AttachPoint::Uprobe {
                path: f.path,
                func: f.name,
                offset: f.file_offset + extra,
                ret,
                address: None,
            });
        }
        points
    }

    /// `uprobe:PATH:ADDRESS`: a virtual address of the binary, as bpftrace 0.17 takes it. At a
    /// symbol's start it is that function's probe; inside a symbol, or where no symbol says
    /// where instructions start, only with `--unsafe`: rbt cannot check that the address
    /// starts an instruction, and a breakpoint in the middle of one corrupts the traced process.
    fn resolve_uprobe_address(
        &mut self,
        spec: &ProbeSpec,
        target: &str,
        address: u64,
        kind: ProbeKind,
    ) -> Vec<AttachPoint> {
        let ret = kind.is_return();
        if target.contains('*') {
            self.error(Diagnostic::error(
                "bad-attach-point",
                "cannot use wildcards with an absolute address",
                spec.span,
            ));
            return Vec::new();
        }
        let found = match self.catalog.user_address(target, address) {
            Ok(found) => found,
            Err(message) => {
                self.error(Diagnostic::error("bad-attach-point", message, spec.span));
                return Vec::new();
            }
        };
        let Some(file_offset) = found.file_offset else {
            self.error(Diagnostic::error(
                "bad-attach-point",
                format!("address {address:#x} is in no loadable segment of {}", found.path),
                spec.span,
            ));
            return Vec::new();
        };
        let func = match found.function {
            Some((name, 0)) => name,
            Some((name, into)) if ret => {
                self.error(Diagnostic::error(
                    "bad-attach-point",
                    format!("uretprobes cannot be attached at function offset (address {address:#x} resolved to: {name}+{into})"),
                    spec.span,
                ));
                return Vec::new();
            }
            Some((name, into)) => {
                if !self.unchecked_offset_allowed(spec, kind, &found.path, &name, into) {
                    return Vec::new();
                }
                name
            }
            None if !self.options.unsafe_allowed => {
                self.error(
                    Diagnostic::error(
                        "unsafe-address",
                        format!("Could not resolve address: {}:{address:#x}", found.path),
                        spec.span,
                    )
                    .with_help(
                        "no symbol holds it, and without one rbt cannot tell where instructions start; pass \
                         --unsafe to attach at the address anyway (a uprobe in the middle of an instruction \
                         corrupts the traced process)",
                    ),
                );
                return Vec::new();
            }
            None => {
                self.error(Diagnostic::warning(
                    "unsafe-address",
                    format!(
                        "could not determine the instruction boundary at {}:{address:#x} (no symbol holds it): \
                         a misaligned {kind} corrupts the traced process",
                        found.path
                    ),
                    spec.span,
                ));
                format!("{address:#x}")
            }
        };
        vec![AttachPoint::Uprobe { path: found.path, func, offset: file_offset, ret, address: Some(address) }]
    }

    /// Whether a uprobe may go `offset` bytes into function `name`: rbt has no disassembler to
    /// check that an instruction starts there (bpftrace 0.17 as Debian builds it has none
    /// either, and refuses), so only under `--unsafe`, with a warning. Reports why not.
    fn unchecked_offset_allowed(
        &mut self,
        spec: &ProbeSpec,
        kind: ProbeKind,
        path: &str,
        name: &str,
        offset: u64,
    ) -> bool {
        if self.options.unsafe_allowed {
            self.error(Diagnostic::warning(
                "unsafe-address",
                format!("unchecked {kind}: {path}:{name}+{offset}"),
                spec.span,
            ));
            return true;
        }
        self.error(
            Diagnostic::error(
                "unsafe-address",
                format!(
                    "cannot check that {kind} {name}+{offset} of {} is at an instruction boundary",
                    file_name(path)
                ),
                spec.span,
            )
            .with_help(
                "rbt has no disassembler to check it; pass --unsafe to attach anyway \
                 (a uprobe in the middle of an instruction corrupts the traced process)",
            ),
        );
        false
    }

    /// `usdt:PATH:PROVIDER:NAME`, `usdt:PATH:NAME` (any provider), wildcards in all three
    /// (a glob in PATH); PATH may be a library name. With `-p PID` the probes are searched in
    /// every module the process maps, PATH and PROVIDER may be empty (`usdt::tracetest:probe`,
    /// `usdt:::*probe2`) and `usdt:NAME` is enough, as in bpftrace 0.17.
    fn resolve_usdt(&mut self, spec: &ProbeSpec, parts: &[&str]) -> Vec<AttachPoint> {
        let pid = self.options.pid;
        let (target, provider, name) = match parts {
            [_, name] if pid.is_some() => ("", "", *name),
            [_, target, name] => (*target, "", *name),
            [_, target, provider, name] => (*target, *provider, *name),
            _ => {
                self.error(
                    Diagnostic::error("bad-attach-point", "usdt probe type requires 2 or 3 arguments", spec.span)
                        .with_help("write usdt:PATH:PROVIDER:NAME or usdt:PATH:NAME, e.g. usdt:/usr/bin/python3:python:function__entry"),
                );
                return Vec::new();
            }
        };
        let problem = if name.is_empty() {
            Some("usdt probe must have a target function or wildcard")
        } else if target.is_empty() && pid.is_none() {
            Some("usdt probe must specify at least path or pid to probe")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(Diagnostic::error("bad-attach-point", problem, spec.span));
            return Vec::new();
        }
        let found = match pid {
            Some(pid) => self.catalog.process_usdt_probes(pid, target, provider, name),
            None => self.catalog.usdt_probes(target, if provider.is_empty() { "*" } else { provider }, name),
        };
        match found {
            Ok(probes) if probes.is_empty() => {
                self.no_usdt_probe(spec, pid, target, provider, name);
                Vec::new()
            }
            Ok(probes) => probes.into_iter().map(AttachPoint::Usdt).collect(),
            Err(message) => {
                self.error(Diagnostic::error("bad-attach-point", message, spec.span));
                Vec::new()
            }
        }
    }

    /// No USDT probe matches: the error names the probes there are, as a reader of it needs them.
    fn no_usdt_probe(&mut self, spec: &ProbeSpec, pid: Option<u32>, target: &str, provider: &str, name: &str) {
        let all = match pid {
            Some(pid) => self.catalog.process_usdt_probes(pid, target, "", "*"),
            None => self.catalog.usdt_probes(target, "*", "*"),
        };
        let mut names: Vec<String> =
            all.unwrap_or_default().iter().map(|p| format!("{}:{}", p.provider, p.name)).collect();
        names.sort();
        names.dedup();
        let wanted =
            if provider.is_empty() || provider == "*" { name.to_owned() } else { format!("{provider}:{name}") };
        let place = match pid {
            Some(pid) if target.is_empty() => format!("process {pid}"),
            Some(pid) => format!("{target} of process {pid}"),
            None => target.to_owned(),
        };
        let diag =
            Diagnostic::error("unknown-probe", format!("no USDT probe matching '{wanted}' in {place}"), spec.span);
        self.error(match names.as_slice() {
            [] => diag.with_help(format!("{place} has no USDT probes (no .note.stapsdt section)")),
            _ => diag.with_help(format!("its probes: {}", names.join(", "))),
        });
    }

    /// `kprobe:FUNC`, `kprobe:FUNC+OFFSET`, `kprobe:MODULE:FUNC`, wildcards in FUNC.
    fn resolve_kprobe(&mut self, spec: &ProbeSpec, parts: &[&str], kind: ProbeKind) -> Vec<AttachPoint> {
        let ret = kind.is_return();
        let func = match parts {
            [_, f] if !f.is_empty() => *f,
            _ => {
                // bpftrace 0.17's words: `kprobe:syscalls:sys_exit_nanosleep` names no function.
                let message = if parts.len() == 2 {
                    format!("invalid {kind}: {}", spec.text)
                } else {
                    format!("{kind} probe type requires 1 argument")
                };
                self.error(
                    Diagnostic::error("bad-attach-point", message, spec.span)
                        .with_help(format!("write {kind}:FUNCTION, e.g. {kind}:vfs_read")),
                );
                return Vec::new();
            }
        };
        let (pattern, offset) = match func.split_once('+') {
            Some((f, off)) => match parse_offset(off) {
                Some(_) if ret => {
                    self.error(Diagnostic::error("bad-attach-point", "kretprobe cannot take an offset", spec.span));
                    return Vec::new();
                }
                Some(off) => (f, off),
                None => {
                    self.error(Diagnostic::error("bad-attach-point", format!("invalid offset: {off}"), spec.span));
                    return Vec::new();
                }
            },
            None => (func, 0),
        };
        if ret && BANNED_KRETPROBES.contains(&pattern) {
            // Refused before asking whether the kernel has kprobes at all, as bpftrace does.
            self.error(Diagnostic::error(
                "banned-probe",
                format!("error: kretprobe:{pattern} can't be used as it might lock up your system."),
                spec.span,
            ));
            return Vec::new();
        }
        let exact = !pattern.contains('*');
        match self.catalog.kernel_functions(pattern) {
            // A function the kernel does not have is skipped with a warning, as bpftrace 0.17
            // skips it: the rest of the script still runs.
            Ok(functions) if functions.is_empty() && exact => self.untraceable(pattern, spec),
            Err(_) if exact && self.catalog.kernel_symbol(pattern).is_none() => self.untraceable(pattern, spec),
            Ok(functions) if functions.is_empty() => {
                self.error(Diagnostic::error(
                    "unknown-function",
                    format!("no kernel function matching '{pattern}'"),
                    spec.span,
                ));
                Vec::new()
            }
            Ok(functions) if offset != 0 && !self.offsets_in_bounds(&functions, offset, spec) => Vec::new(),
            Ok(functions) => functions.into_iter().map(|func| AttachPoint::Kprobe { func, offset, ret }).collect(),
            Err(message) => {
                self.error(
                    Diagnostic::error("no-kprobes", message, spec.span)
                        .with_help("tracepoints cover most kernel events without kprobes: rbt -l 'tracepoint:*'; fentry/fexit need BTF trampolines"),
                );
                Vec::new()
            }
        }
    }

    fn untraceable(&mut self, func: &str, spec: &ProbeSpec) -> Vec<AttachPoint> {
        self.error(Diagnostic::warning(
            "untraceable-function",
            format!(
                "{func} is not traceable (either non-existing, inlined, or marked as \"notrace\"); skipping {}",
                spec.text
            ),
            spec.span,
        ));
        Vec::new()
    }

    /// `fentry:FUNC` / `fexit:FUNC` (`fentry:vmlinux:FUNC`, `fentry:vmlinu*:FUNC`), wildcards
    /// over the kernel functions BTF describes.
    fn resolve_fentry(&mut self, spec: &ProbeSpec, parts: &[&str], kind: ProbeKind) -> Vec<AttachPoint> {
        let ret = kind.is_return();
        let pattern = match parts {
            [_, f] if !f.is_empty() => *f,
            [_, module, f] if !f.is_empty() && kernel::names_the_kernel(module) => *f,
            [_, module, _] => {
                self.error(
                    Diagnostic::error(
                        "unsupported-probe",
                        format!("{kind} probes on module '{module}' are not supported yet"),
                        spec.span,
                    )
                    .with_help(format!("rbt attaches {kind} probes to functions of the kernel image: {kind}:FUNCTION")),
                );
                return Vec::new();
            }
            _ => {
                self.error(
                    Diagnostic::error("bad-attach-point", format!("invalid {kind}: {}", spec.text), spec.span)
                        .with_help(format!("write {kind}:FUNCTION, e.g. {kind}:vfs_read")),
                );
                return Vec::new();
            }
        };
        if let Some(why) = self.catalog.kernel_types_missing() {
            self.error(
                Diagnostic::error("no-btf", format!("{kind} probes need the kernel's BTF: {why}"), spec.span)
                    .with_help("tracepoints work without BTF: rbt -l 'tracepoint:*'"),
            );
            return Vec::new();
        }
        let names =
            if pattern.contains('*') { self.catalog.kernel_btf_functions(pattern) } else { vec![pattern.to_owned()] };
        let mut points = Vec::new();
        for name in &names {
            match self.catalog.kernel_function_signature(name) {
                Some(func) => {
                    if points.is_empty() {
                        if let Some(why) = self.catalog.trampolines_missing(&func) {
                            self.error(
                                Diagnostic::error("no-trampolines", format!("cannot attach {kind}:{}: {why}", func.name), spec.span)
                                    .with_help("tracepoints (rbt -l 'tracepoint:*') and raw tracepoints work here; kprobes where the kernel has them"),
                            );
                            return Vec::new();
                        }
                    }
                    points.push(AttachPoint::Fentry { func, ret })
                }
                None => {
                    let mut diag = Diagnostic::error(
                        "unknown-function",
                        format!("no kernel function '{name}' in the kernel's BTF"),
                        spec.span,
                    );
                    let all = self.catalog.kernel_btf_functions(&format!("*{}*", &name[..name.len().min(4)]));
                    let near = nearest(name, all.iter().map(String::as_str), 3);
                    if !near.is_empty() {
                        diag = diag.with_help(format!("did you mean {}?", near.join(", ")));
                    }
                    self.error(diag);
                }
            }
        }
        if names.is_empty() {
            self.error(Diagnostic::error(
                "unknown-function",
                format!("no kernel function matching '{pattern}'"),
                spec.span,
            ));
        }
        points
    }

    /// `software:EVENT[:COUNT]` and `hardware:EVENT[:COUNT]`, with bpftrace's event names.
    fn resolve_perf_counter(&mut self, spec: &ProbeSpec, parts: &[&str], hardware: bool) -> Vec<AttachPoint> {
        const SOFTWARE: &[(&str, u64)] = &[
            ("cpu-clock", 0),
            ("cpu", 0),
            ("task-clock", 1),
            ("page-faults", 2),
            ("faults", 2),
            ("context-switches", 3),
            ("cs", 3),
            ("cpu-migrations", 4),
            ("minor-faults", 5),
            ("major-faults", 6),
            ("alignment-faults", 7),
            ("emulation-faults", 8),
            ("dummy", 9),
            ("bpf-output", 10),
        ];
        const HARDWARE: &[(&str, u64)] = &[
            ("cpu-cycles", 0),
            ("cycles", 0),
            ("instructions", 1),
            ("cache-references", 2),
            ("cache-misses", 3),
            ("branch-instructions", 4),
            ("branches", 4),
            ("branch-misses", 5),
            ("bus-cycles", 6),
            ("frontend-stalls", 7),
            ("backend-stalls", 8),
            ("ref-cycles", 9),
        ];
        let (kind, table, default_period) =
            if hardware { ("hardware", HARDWARE, 1_000_000) } else { ("software", SOFTWARE, 1000) };
        let event = parts.get(1).copied().unwrap_or("");
        let Some(&(_, config)) = table.iter().find(|(name, _)| *name == event) else {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            let mut diag = Diagnostic::error("bad-attach-point", format!("unknown {kind} event '{event}'"), spec.span);
            diag = match suggest(event, names.iter().copied()) {
                Some(near) => diag.with_help(format!("did you mean `{near}`?")),
                None => diag.with_help(format!("{kind} events: {}", names.join(", "))),
            };
            self.error(diag);
            return Vec::new();
        };
        let period = match parts.get(2) {
            None => default_period,
            Some(count) => match count.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.error(Diagnostic::error(
                        "bad-attach-point",
                        format!("invalid {kind} count: {count}"),
                        spec.span,
                    ));
                    return Vec::new();
                }
            },
        };
        vec![AttachPoint::PerfCounter { hardware, event: event.to_owned(), config, period }]
    }

    fn resolve_rate(&mut self, spec: &ProbeSpec, parts: &[&str], profile: bool) -> Option<PerfRate> {
        let kind = if profile { "profile" } else { "interval" };
        let bad = |msg: String| {
            Diagnostic::error("bad-attach-point", msg, spec.span)
                .with_help(format!("write {kind}:hz:N, {kind}:s:N, {kind}:ms:N or {kind}:us:N"))
        };
        if parts.len() != 3 {
            self.error(bad(format!("{kind} probe must have a unit and a rate: {}", spec.text)));
            return None;
        }
        let Ok(n) = parts[2].parse::<u64>() else {
            self.error(bad(format!("invalid rate of {kind} probe: {}", parts[2])));
            return None;
        };
        if n == 0 {
            self.error(bad(format!("{kind} rate must be greater than zero")));
            return None;
        }
        let rate = match parts[1] {
            "hz" => PerfRate::Hz(n),
            "s" => PerfRate::PeriodNs(n.saturating_mul(1_000_000_000)),
            "ms" => PerfRate::PeriodNs(n.saturating_mul(1_000_000)),
            "us" => PerfRate::PeriodNs(n.saturating_mul(1_000)),
            unit => {
                self.error(bad(format!("invalid time unit of {kind} probe: {unit}")));
                return None;
            }
        };
        Some(rate)
    }
}

/// A binary's file name, to keep messages short (the span shows the whole attach point).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `16`, `0x10`.
fn parse_offset(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// `a, b and c`, as messages list names.
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::tracepoint::{FieldType, ProbeCatalog, TracepointField, TracepointFormat};

    /// One tracepoint, counting how often it is looked up.
    #[derive(Default)]
    struct Counting {
        lookups: AtomicU32,
    }

    impl ProbeCatalog for Counting {
        fn match_tracepoints(&self, _category: &str, _event: &str) -> Vec<(String, String)> {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            vec![("sched".into(), "sched_switch".into())]
        }

        fn tracepoint_format(&self, category: &str, event: &str) -> Option<TracepointFormat> {
            let ty = FieldType::Integer { size: 4, signed: true };
            let field = TracepointField {
                name: "prev_pid".into(),
                c_type: "pid_t".into(),
                offset: 8,
                size: 4,
                signed: true,
                common: false,
                ty,
            };
            Some(TracepointFormat { category: category.into(), event: event.into(), fields: vec![field] })
        }

        fn all_tracepoints(&self) -> Vec<String> {
            vec!["sched:sched_switch".into()]
        }
    }

    /// The checker runs several times (`@a`'s key is only known once `@b` is), but asks the
    /// catalog about each spec once.
    #[test]
    fn each_spec_is_resolved_once() {
        let source = "t:sched:sched_switch { @a[@b] = args->prev_pid; } t:sched:sched_sw* { @b = 2; }";
        let (program, parse) = grammar::parse(source);
        assert!(parse.is_empty());
        let catalog = Counting::default();
        let (checked, diags) = crate::check::check(&program, &catalog, &crate::CheckOptions::default());
        assert!(checked.is_some(), "{diags:?}");
        assert_eq!(catalog.lookups.load(Ordering::Relaxed), 2);
    }
}
