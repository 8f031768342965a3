//! Reporting a program the kernel's verifier rejected: a limit of the verifier (too many
//! instructions explored, a loop it cannot bound) is the script's to change; anything else is a
//! bug in rbt, reported with the tail of the verifier's log.

use crate::diagnostics;

/// Prints the diagnostic for a probe the kernel's verifier rejected; `span` is in the original
/// offset space of `sources` (the script, or a file it included).
pub fn report(
    name: &str,
    sources: &grammar::Sources,
    probe: &str,
    span: grammar::Span,
    log: &str,
    insn: Option<usize>,
) {
    let tail: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(12)..].join("\n");
    if let Some(diag) = verifier_limit(probe, span, log).or_else(|| helper_refused(probe, span, log)) {
        diagnostics::emit_in(&[diag], name, sources);
        return;
    }
    let at = insn.map(|i| format!(" at instruction {i}")).unwrap_or_default();
    let diag = grammar::Diagnostic::error(
        "verifier",
        format!("the kernel's BPF verifier rejected the program for {probe}{at}; this is a bug in rbt"),
        span,
    )
    .with_help(format!("please report it with the script; the verifier said:\n{tail}"));
    diagnostics::emit_in(&[diag], name, sources);
}

/// A rejection for a limit of the verifier rather than an unsafe program: it checks every path
/// through every loop iteration separately and gives up after a million instructions or 8192
/// branches still to explore, or cannot see a loop ending, or a jump no longer fits in 16 bits
/// after the kernel inlined helper calls. rbt cannot predict either, so they are the script's to change, not bugs.
///
/// ```text
/// BPF program is too large. Processed 1000001 insn
/// The sequence of 8193 jumps is too complex.
/// insn 12960 cannot be patched due to 16-bit range
/// infinite loop detected at insn 12
/// ```
pub(crate) fn verifier_limit(probe: &str, span: grammar::Span, log: &str) -> Option<grammar::Diagnostic> {
    let limit = |l: &&str| l.contains("BPF program is too large") || l.contains("jumps is too complex");
    let (code, message, help) = if let Some(line) = log.lines().find(limit) {
        (
            "verifier-limit",
            format!("the kernel's BPF verifier gave up on the program for {probe}: {}", line.trim()),
            "the verifier follows every path separately, every iteration of a while loop once for \
             every way into the loop, so nested or unrolled loops and branchy bodies multiply its \
             work; use smaller loop bounds, fewer nested loops or conditions, or split the work \
             across probes",
        )
    } else if let Some(line) = log.lines().find(|l| l.contains("cannot be patched due to 16-bit range")) {
        (
            "program-too-large",
            format!("the program for {probe} is too large once the kernel has inlined helper calls: {}", line.trim()),
            "after verifying, the kernel replaces some helper calls (map lookups) with their code, and \
             a jump across them no longer fits in 16 bits; use smaller unroll counts or split the \
             work across probes",
        )
    } else if log.contains("infinite loop detected") {
        (
            "unbounded-loop",
            format!("the kernel's BPF verifier cannot see a loop in the program for {probe} ending"),
            "a while loop needs a bound the verifier can follow: a counter that starts at a constant and \
             grows by a constant up to one",
        )
    } else {
        return None;
    };
    Some(grammar::Diagnostic::error(code, message, span).with_primary_text("the verifier stopped here").with_help(help))
}

/// A rejection of a helper the kernel allows in some functions only (`bpf_d_path`, which
/// `path()` calls, in those on the kernel's allow-list): the script's to change, reported at the
/// call in bpftrace 0.17's words. The log names the helper on the call line before the refusal:
///
/// ```text
/// 21: (85) call bpf_d_path#147
/// helper call is not allowed in probe
/// ```
fn helper_refused(probe: &str, span: grammar::Span, log: &str) -> Option<grammar::Diagnostic> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| l.contains("helper call is not allowed in probe"))?;
    let helper = lines[..at].iter().rev().find_map(|l| {
        let call = l.split_once(") call ")?.1;
        Some(call.split('#').next().unwrap_or(call).trim())
    })?;
    let help = if helper == "bpf_d_path" {
        format!(
            "the kernel allows bpf_d_path (path()) in a few functions only, and {probe} is not one of \
             them; e.g. fentry:security_file_open, fentry:vfs_getattr or fentry:filp_close"
        )
    } else {
        format!("the kernel does not allow {helper} in {probe}")
    };
    let message = format!("helper {helper} not supported in probe");
    Some(grammar::Diagnostic::error("helper-not-allowed", message, span).with_help(help))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_told_apart_from_bugs() {
        let span = grammar::Span::default();
        let too_large =
            "1352: (b7) r0 = 2\nBPF program is too large. Processed 1000001 insn\nverification time 4268404 usec\n";
        let diag = verifier_limit("BEGIN", span, too_large).expect("a limit");
        assert_eq!(diag.code, "verifier-limit");
        assert!(diag.message.ends_with("BPF program is too large. Processed 1000001 insn"));
        let looping = "12: (05) goto pc-8\ninfinite loop detected at insn 5\n";
        assert_eq!(verifier_limit("BEGIN", span, looping).expect("a limit").code, "unbounded-loop");
        let branchy = "64873: (15) if r6 == 0x0 goto pc+72\nThe sequence of 8193 jumps is too complex.\n";
        assert_eq!(verifier_limit("BEGIN", span, branchy).expect("a limit").code, "verifier-limit");
        let grown = "insn 12960 cannot be patched due to 16-bit range\nverification time 3 usec\n";
        assert_eq!(verifier_limit("BEGIN", span, grown).expect("a limit").code, "program-too-large");
        assert!(verifier_limit("BEGIN", span, "R1 invalid mem access 'scalar'\n").is_none());
    }

    #[test]
    fn a_helper_the_probe_may_not_call_is_named() {
        let span = grammar::Span::default();
        let log = "20: (b7) r3 = 64\n21: (85) call bpf_d_path#147\nhelper call is not allowed in probe\n";
        let diag = helper_refused("fentry:vfs_read", span, log).expect("a refusal");
        assert_eq!(
            (diag.code, diag.message.as_str()),
            ("helper-not-allowed", "helper bpf_d_path not supported in probe")
        );
        assert!(helper_refused("BEGIN", span, "R1 invalid mem access 'scalar'\n").is_none());
    }
}
