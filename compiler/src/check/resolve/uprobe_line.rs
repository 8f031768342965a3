//! `uprobe:BIN@FILE:LINE[:COL]`: probes at source lines, from the binary's DWARF line tables
//! (the catalog's `user_lines`); `uprobe:BIN:FUNC:LINE`, a line counted from the function's own
//! line as `perf probe FUNC:LINE` counts it.

use super::Resolver;
use crate::hir::AttachPoint;
use crate::probe_kind::ProbeKind;
use grammar::ast::ProbeSpec;
use grammar::Diagnostic;

impl Resolver<'_> {
    /// `uprobe:BIN@FILE:LINE[:COL]` (bpftrace's later syntax): a probe at each statement the
    /// binary's DWARF line tables start at that source line, one per copy of it (inlined,
    /// unrolled). The addresses come from the compiler, so they start instructions.
    pub(super) fn resolve_uprobe_line(
        &mut self,
        spec: &ProbeSpec,
        binary: &str,
        file: &str,
        line: &str,
        column: Option<&str>,
        kind: ProbeKind,
    ) -> Vec<AttachPoint> {
        if kind.is_return() {
            self.error(
                Diagnostic::error("bad-attach-point", format!("a {kind} cannot attach at a source line"), spec.span)
                    .with_help("a uretprobe fires where a function returns: name the function instead"),
            );
            return Vec::new();
        }
        let number = |text: &str| text.parse::<u32>().ok().filter(|&n| n > 0);
        let (Some(line), column) = (number(line), column.map(|c| number(c).ok_or(c))) else {
            self.error(
                Diagnostic::error("bad-attach-point", format!("invalid source line: {line}"), spec.span)
                    .with_help(format!("write {kind}:BINARY@FILE:LINE or {kind}:BINARY@FILE:LINE:COLUMN")),
            );
            return Vec::new();
        };
        let column = match column {
            Some(Ok(c)) => Some(c),
            Some(Err(c)) => {
                self.error(Diagnostic::error("bad-attach-point", format!("invalid source column: {c}"), spec.span));
                return Vec::new();
            }
            None => None,
        };
        let binary = match self.options.pid {
            Some(pid) => self.catalog.process_path(pid, binary),
            None => binary.to_owned(),
        };
        let found = match self.catalog.user_lines(&binary, file, line, column) {
            Ok(found) => found,
            Err(message) => {
                self.error(Diagnostic::error("bad-attach-point", message, spec.span));
                return Vec::new();
            }
        };
        let mut points = Vec::new();
        for (address, at) in found {
            let Some(offset) = at.file_offset else { continue };
            let func = at.function.map_or_else(|| format!("{address:#x}"), |(name, _)| name);
            points.push(AttachPoint::Uprobe { path: at.path, func, offset, ret: false, address: Some(address) });
        }
        points
    }

    /// `uprobe:BIN:FUNC:LINE`: line `LINE` of FUNC, counted from the line FUNC is declared at
    /// (0), as `perf probe` counts it; the same probe as `uprobe:BIN@FILE:ABSOLUTE`.
    pub(super) fn resolve_uprobe_function_line(
        &mut self,
        spec: &ProbeSpec,
        binary: &str,
        func: &str,
        line: &str,
        kind: ProbeKind,
    ) -> Vec<AttachPoint> {
        let target = match self.options.pid {
            Some(pid) => self.catalog.process_path(pid, binary),
            None => binary.to_owned(),
        };
        let (file, base, last) = match self.catalog.user_function_lines(&target, func) {
            Ok(found) => found,
            Err(message) => {
                self.error(Diagnostic::error("bad-attach-point", message, spec.span));
                return Vec::new();
            }
        };
        let relative: u32 = line.parse().unwrap_or(u32::MAX);
        let Some(absolute) = base.checked_add(relative).filter(|&l| l <= last) else {
            self.error(
                Diagnostic::error(
                    "bad-attach-point",
                    format!("{func} has no line {relative}: its lines are 0 to {} ({file}:{base}-{last})", last - base),
                    spec.span,
                )
                .with_help(format!("rbt -l '{kind}:{binary}:{func}:*' lists them")),
            );
            return Vec::new();
        };
        self.resolve_uprobe_line(spec, binary, &file, &absolute.to_string(), None, kind)
    }
}
