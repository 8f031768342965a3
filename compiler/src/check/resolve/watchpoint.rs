//! `watchpoint:ADDRESS:LENGTH:MODE` (also `asyncwatchpoint:`): a hardware breakpoint on LENGTH
//! bytes at ADDRESS, firing when they are read (`r`), written (`w`) or executed (`x`). The
//! address is the `-c` command's or the `-p` process's when there is one, else the kernel's.
//! Checked as bpftrace 0.17 checks it, with its words.

use super::{parse_offset, Resolver};
use crate::hir::AttachPoint;
use grammar::ast::ProbeSpec;
use grammar::Diagnostic;

/// The modes x86-64's debug registers cannot watch (Intel SDM volume 3, 17.2.4), sorted.
const INVALID_MODES: &[&str] = &["r", "rx", "wx", "rwx"];

impl Resolver<'_> {
    pub(super) fn resolve_watchpoint(
        &mut self,
        spec: &ProbeSpec,
        parts: &[&str],
        asynchronous: bool,
    ) -> Vec<AttachPoint> {
        let kind = if asynchronous { "asyncwatchpoint" } else { "watchpoint" };
        let bad = |message: String| {
            Diagnostic::error("bad-attach-point", message, spec.span)
                .with_help(format!("write {kind}:ADDRESS:LENGTH:MODE, e.g. watchpoint:0x10000000:8:w"))
        };
        if parts.len() != 4 {
            self.error(bad(format!("{kind} probe type requires 3 arguments")));
            return Vec::new();
        }
        if parts[1].contains('+') {
            self.error(
                Diagnostic::error(
                    "unsupported-probe",
                    format!("rbt cannot watch a function's argument ({kind}:FUNCTION+argN) yet"),
                    spec.span,
                )
                .with_help("watch an absolute address: watchpoint:ADDRESS:LENGTH:MODE"),
            );
            return Vec::new();
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
        if ![1, 2, 4, 8].contains(&len) {
            errors.push("watchpoint length must be one of (1,2,4,8)".to_owned());
        }
        let mut mode: Vec<char> = parts[3].chars().collect();
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
            return Vec::new();
        }
        let pid = self.options.cpid.or(self.options.pid);
        vec![AttachPoint::Watchpoint { address, len: len as u8, mode, pid }]
    }
}
