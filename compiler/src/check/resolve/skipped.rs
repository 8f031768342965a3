//! Probes skipped rather than refused: a kprobe or uprobe whose function this machine lacks or
//! cannot trace is skipped with a warning when the rest of the program attaches (as bpftrace 0.17
//! does), and its block keeps an attach point of its kind to be typed against.

use super::ResolvedSpec;
use crate::hir::AttachPoint;
use crate::probe_kind::ProbeKind;
use grammar::ast::{self, ProbeSpec};
use grammar::Diagnostic;

/// A uprobe or kprobe whose function this machine lacks (a libcrypto function this OpenSSL does
/// not have, `pthread_create` that moved from libpthread into libc) is skipped with a warning
/// when other probes of the program attach, as bpftrace 0.17 skips it, so that a script written
/// for several versions of a library runs; it stays an error when nothing else would attach.
pub(super) fn skip_missing_functions(program: &ast::Program, resolved: &mut [Vec<ResolvedSpec>]) {
    let missing_function = |r: &ResolvedSpec| {
        r.points.is_empty() && !r.diags.is_empty() && r.diags.iter().all(|d| d.code == "unknown-function")
    };
    let others_attach = resolved.iter().flatten().any(|r| !r.points.is_empty());
    if !others_attach {
        return;
    }
    for (probe, specs) in program.probes.iter().zip(resolved.iter_mut()) {
        for (spec, r) in probe.specs.iter().zip(specs.iter_mut()) {
            let dynamic = matches!(
                spec.parts.first().and_then(|word| ProbeKind::from_alias(word)),
                Some(ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Kprobe | ProbeKind::Kretprobe)
            );
            if dynamic && missing_function(r) {
                let parts: Vec<&str> = spec.parts.iter().map(String::as_str).collect();
                let kind = parts.first().and_then(|word| ProbeKind::from_alias(word));
                let func = parts.last().map(|f| f.split('+').next().unwrap_or(f).to_owned()).unwrap_or_default();
                r.skipped_as = match (kind, parts.as_slice()) {
                    (Some(k @ (ProbeKind::Kprobe | ProbeKind::Kretprobe)), _) => {
                        Some(AttachPoint::Kprobe { func, offset: 0, ret: k.is_return() })
                    }
                    (Some(k), [_, path, ..]) => Some(AttachPoint::Uprobe {
                        path: (*path).to_owned(),
                        func,
                        offset: 0,
                        ret: k.is_return(),
                        address: None,
                    }),
                    _ => None,
                };
                r.diags = vec![Diagnostic::warning(
                    "skipped-probe",
                    format!("could not attach probe {}, skipping.", spec.text),
                    spec.span,
                )
                .with_help(r.diags[0].message.clone())];
            }
        }
    }
}

/// The attach point a kprobe or uprobe spec skipped with a warning would have had, for typing
/// its block's body ([`ResolvedSpec::skipped_as`]).
pub(super) fn placeholder(spec: &ProbeSpec, points: &[AttachPoint], diags: &[Diagnostic]) -> Option<AttachPoint> {
    let skipped = points.is_empty() && diags.iter().any(|d| d.code == "untraceable-function");
    let parts: Vec<&str> = spec.parts.iter().map(String::as_str).collect();
    let kind = ProbeKind::from_alias(parts.first().copied().unwrap_or(""))?;
    let func = parts.last().map(|f| f.split('+').next().unwrap_or(f).to_owned()).unwrap_or_default();
    match kind {
        ProbeKind::Kprobe | ProbeKind::Kretprobe if skipped => {
            Some(AttachPoint::Kprobe { func, offset: 0, ret: kind.is_return() })
        }
        _ => None,
    }
}
