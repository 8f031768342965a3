//! `ustack(perf)` with DWARF lines, end to end: uprobes on the workload's `inline` step (a leaf
//! called through an always-inlined function, in a debug build with DWARF) print each frame's
//! source location and the inlined call as a line of its own, innermost first, in map keys,
//! printf and JSON; the default mode stays bpftrace's; and a copy of the workload without DWARF
//! prints exactly what bpftrace 0.17 prints.

mod common_rbt;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common_rbt::{rbt, require_bpf, workload};

/// The probes: the outer function's entry (its start address), the leaf's entry (caller-less:
/// a uprobe at a function's first instruction sees its caller's frame pointer), and the leaf's
/// return, whose address is in the outer function inside the inlined call.
fn script(binary: &Path) -> String {
    let b = binary.display();
    format!(
        "uprobe:{b}:rbt_workload_outer /pid == cpid/ {{ @outer[ustack(perf, 1)] = count(); }}\n\
         uprobe:{b}:rbt_workload_leaf /pid == cpid/ {{ @leaf[ustack(perf, 1)] = count(); @names[ustack(1)] = count(); }}\n\
         uretprobe:{b}:rbt_workload_leaf /pid == cpid/ {{\n\
         \x20   @ret[ustack(perf, 1)] = count();\n\
         \x20   if (retval == 0x5a) {{ printf(\"first return:%s\\n\", ustack(perf, 1)); }}\n\
         }}\n"
    )
}

/// `-c` for the workload at `binary`: `calls` rounds of the `inline` step, then a nap that keeps
/// the process alive while the events of its first calls are printed.
fn inline_command(binary: &Path, calls: u32) -> String {
    format!("{} inline {calls} nap 200000 1", binary.display())
}

/// Runs rbt on `program` with `-c command` and extra `args`; returns stdout.
fn run_rbt(program: &str, command: &str, args: &[&str]) -> String {
    let out = Command::new(rbt()).args(args).args(["-e", program, "-c", command]).output().expect("rbt runs");
    assert!(out.status.success(), "rbt failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The line of the workload's source marked `// rbt-line: MARK`.
fn marked_line(mark: &str) -> u32 {
    let source =
        std::fs::read_to_string(tests::workspace().join("tests/src/bin/workload.rs")).expect("read the source");
    let index = source.lines().position(|l| l.ends_with(&format!("// rbt-line: {mark}"))).expect("the mark exists");
    u32::try_from(index + 1).expect("small line number")
}

/// Replaces each frame's leading hex address (after a tab, or `\t` inside a JSON string) with
/// `ADDR`, returning the text and the addresses in order.
fn mask_addresses(text: &str) -> (String, Vec<u64>) {
    let mut masked = String::with_capacity(text.len());
    let mut addrs = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('\t').map(|i| (i, 1)).into_iter().chain(rest.find("\\t").map(|i| (i, 2))).min() {
        let (index, len) = at;
        masked.push_str(&rest[..index + len]);
        rest = &rest[index + len..];
        let hex_len = rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len());
        if hex_len > 0 {
            addrs.push(u64::from_str_radix(&rest[..hex_len], 16).expect("hex address"));
            masked.push_str("ADDR");
            rest = &rest[hex_len..];
        }
    }
    masked.push_str(rest);
    (masked, addrs)
}

#[test]
fn perf_stacks_show_dwarf_lines_and_inlined_calls() {
    require_bpf();
    let binary = workload();
    let (src, bin) = (tests::workspace().join("tests/src/bin/workload.rs"), binary.display().to_string());
    let src = src.display();
    let (outer, calls_step, step_calls_leaf, leaf) = (
        marked_line("outer"),
        marked_line("outer calls inlined_step"),
        marked_line("inlined_step calls the leaf"),
        marked_line("leaf"),
    );

    let stdout = run_rbt(&script(&binary), &inline_command(&binary, 3), &[]);
    let (masked, addrs) = mask_addresses(&stdout);
    // Frames in order: printf's two lines, @leaf, @outer, @ret's two lines.
    assert_eq!(addrs.len(), 6, "{stdout}");
    let offset = addrs[4].checked_sub(addrs[3]).expect("the return address is past the outer function's start");
    let returned = format!(
        "\tADDR rbt_workload::inlined_step (inlined) {src}:{step_calls_leaf} ({bin})\n\
         \tADDR rbt_workload_outer+{offset} {src}:{calls_step} ({bin})\n"
    );
    let expected = format!(
        "Attaching 3 probes...\n\
         first return:\n{returned}\n\
         \n\n\
         @leaf[\n\tADDR rbt_workload_leaf+0 {src}:{leaf} ({bin})\n]: 3\n\
         @names[\n    rbt_workload_leaf+0\n]: 3\n\
         @outer[\n\tADDR rbt_workload_outer+0 {src}:{outer} ({bin})\n]: 3\n\
         @ret[\n{returned}]: 3\n"
    );
    assert_eq!(masked, expected, "{stdout}");
    // The inlined call's line and its caller's share the return address, in printf and the key.
    assert!(addrs[1] == addrs[0] && addrs[4] == addrs[0] && addrs[5] == addrs[0], "{stdout}");
    assert!(offset > 0 && offset < 0x100, "offset {offset}: {stdout}");

    // JSON strings hold the same lines.
    let json = run_rbt(&script(&binary), &inline_command(&binary, 3), &["-f", "json"]);
    let (masked, _) = mask_addresses(&json);
    let returned = format!(
        "\\n\\tADDR rbt_workload::inlined_step (inlined) {src}:{step_calls_leaf} ({bin})\
         \\n\\tADDR rbt_workload_outer+{offset} {src}:{calls_step} ({bin})\\n"
    );
    let printf = format!("{{\"type\": \"printf\", \"data\": \"first return:{returned}\\n\"}}\n");
    let ret = format!("{{\"type\": \"map\", \"data\": {{\"@ret\": {{\"{returned}\": 3}}}}}}\n");
    assert!(masked.contains(&printf), "no {printf:?} in:\n{json}");
    assert!(masked.contains(&ret), "no {ret:?} in:\n{json}");
}

/// A copy of the workload without DWARF (`strip --strip-debug` keeps the symbol table).
fn stripped_workload() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-perf-stacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let copy = dir.join("rbt-workload");
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&copy)
        .arg(workload())
        .status()
        .expect("run strip (binutils)");
    assert!(status.success(), "strip failed: {status}");
    copy
}

#[test]
fn perf_stacks_without_dwarf_print_as_bpftrace_does() {
    require_bpf();
    let bpftrace = tests::bpftrace().unwrap_or_else(|e| panic!("this test compares with bpftrace 0.17: {e}"));
    let binary = stripped_workload();
    // printf symbolizes while the process lives (bpftrace 0.17 prints addresses once it exited).
    let b = binary.display();
    let program = format!(
        "uprobe:{b}:rbt_workload_leaf /pid == cpid/ {{ printf(\"leaf:%s|%s\\n\", ustack(perf, 1), ustack(1)); }}\n\
         uretprobe:{b}:rbt_workload_leaf /pid == cpid/ {{ printf(\"return:%s\\n\", ustack(perf, 1)); }}\n\
         tracepoint:syscalls:sys_enter_nanosleep /pid == cpid/ {{ printf(\"kernel:%s\\n\", kstack(perf, 3)); }}\n"
    );
    let command = inline_command(&binary, 2);
    let mut bpftrace_run = Command::new(bpftrace);
    bpftrace_run.args(["-e", &program, "-c", &command]);
    let expected = tests::run_with_limit(&mut bpftrace_run, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let actual = run_rbt(&program, &command, &[]);
    let _ = std::fs::remove_dir_all(binary.parent().expect("the copy's directory"));
    let expected = String::from_utf8_lossy(&expected.stdout);
    assert!(expected.contains("rbt_workload_outer+"), "bpftrace named no frame:\n{expected}");
    let ((expected, _), (actual, _)) = (mask_addresses(&expected), mask_addresses(&actual));
    assert_eq!(actual, expected, "{}", tests::line_diff(&expected, &actual));
    assert!(!actual.contains(".rs:"), "a source line without DWARF:\n{actual}");
}
