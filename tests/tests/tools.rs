//! bpftrace's own tools (`tests/bpftrace-suite/tools/*.bt`, from bpftrace 0.17's `tools/`) run
//! unchanged under rbt and bpftrace 0.17 while a workload runs, and print the same thing.
//!
//! A tool traces the whole machine, so its output holds other processes' events, times and pids
//! that differ between two runs. Each case (`tests/data/tools/NAME.case`) says what to compare:
//!
//! ```text
//! // run: -c "{workload} open /etc/hostname 3" rbt's and bpftrace's arguments (the first line)
//! // tool: opensnoop                           the script, tests/bpftrace-suite/tools/opensnoop.bt
//! // header: 3                                 the first 3 lines of stdout must be equal
//! // keep: {comm}                              and so must the lines holding this text, as a
//! //                                           multiset (any order), from the rest of stdout
//! // mask: tracer                              the tracer's own name (`bpftrace`, `rbt`) reads
//! //                                           as TRACER (the `-c` command's parent is the tracer)
//! ```
//!
//! `{workload}` is a copy of `rbt-workload` named for this test run, and `{comm}` its name, so
//! that the lines kept are this run's workload's and not those of another test running beside it.
//!
//! Before comparing, every run of digits becomes `N` and every run of blanks one space, so
//! columns of different widths compare equal. Both tools must exit with status 0.
//!
//! Kernel tier: needs root, BPF and bpftrace 0.17; without them the test fails and says why.
//! `RBT_TOOLS_ONLY=name[,name...]` runs only those cases; `$RBT` picks the rbt binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{bpftrace, case_args, is_root, rbt, run_with_limit, workspace, Captured};

const TIME_LIMIT: Duration = Duration::from_secs(60);

struct Case {
    name: String,
    script: PathBuf,
    args: Vec<String>,
    header: usize,
    keep: Vec<String>,
    /// Whether the tracer's name is masked (`// mask: tracer`).
    mask_tracer: bool,
}

#[test]
fn bpftraces_tools_print_the_same_under_rbt() {
    assert!(is_root(), "the tools load BPF programs: run as root (this test never skips)");
    let bpftrace = bpftrace().unwrap_or_else(|e| panic!("the tools are compared with bpftrace 0.17: {e}"));
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    let workload = private_workload();
    let workload = workload.as_path();
    let mut failures = Vec::new();
    let cases = selected_cases(workload);
    for case in &cases {
        let expected = run(&bpftrace, case);
        let actual = run(&rbt, case);
        match compare(case, [&comm_of(&bpftrace), &comm_of(&rbt)], &expected, &actual) {
            Ok(lines) => eprintln!("ok       {} ({lines} lines compared)", case.name),
            Err(problem) => {
                eprintln!("MISMATCH {}", case.name);
                failures.push(format!("{} (args: {:?}): {problem}", case.name, case.args));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} tools differ:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// The name a process running `program` has (its `comm`: the file name, at most 15 bytes).
fn comm_of(program: &Path) -> String {
    let name = program.file_name().unwrap_or_default().to_string_lossy().into_owned();
    name.chars().take(15).collect()
}

/// A copy of the workload whose name (its `comm`) no other process has: `wlPID`.
fn private_workload() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let copy = dir.join(format!("wl{}", std::process::id()));
    std::fs::copy(env!("CARGO_BIN_EXE_rbt-workload"), &copy)
        .unwrap_or_else(|e| panic!("cannot copy the workload to {}: {e}", copy.display()));
    copy
}

fn selected_cases(workload: &Path) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tools");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "case"))
        .collect();
    paths.sort();
    let only = std::env::var("RBT_TOOLS_ONLY").ok();
    let wanted: Vec<&str> = only.as_deref().map(|o| o.split(',').map(str::trim).collect()).unwrap_or_default();
    let cases: Vec<Case> = paths
        .iter()
        .filter(|path| wanted.is_empty() || path.file_stem().is_some_and(|s| wanted.iter().any(|w| s == *w)))
        .map(|path| read_case(path, workload))
        .collect();
    assert!(!cases.is_empty(), "no tool cases selected in {}", dir.display());
    cases
}

fn read_case(path: &Path, workload: &Path) -> Case {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let header_value = |key: &str| {
        source.lines().take_while(|line| line.starts_with("//")).find_map(|line| {
            line.strip_prefix("//").and_then(|rest| rest.trim_start().strip_prefix(key)).map(|v| v.trim().to_owned())
        })
    };
    let tool = header_value("tool:").unwrap_or_else(|| panic!("{}: no `// tool:` line", path.display()));
    let script = workspace().join("tests/bpftrace-suite/tools").join(format!("{tool}.bt"));
    assert!(script.is_file(), "{}: no tool {}", path.display(), script.display());
    let header = header_value("header:").map_or(0, |h| h.parse().unwrap_or_else(|_| panic!("{name}: bad header")));
    let keep = source
        .lines()
        .take_while(|line| line.starts_with("//"))
        .filter_map(|line| line.strip_prefix("// keep:"))
        .map(|text| {
            let comm = workload.file_name().unwrap_or_default().to_string_lossy();
            text.trim().replace("{workload}", &workload.display().to_string()).replace("{comm}", &comm)
        })
        .collect();
    let mask_tracer = header_value("mask:").is_some_and(|m| m == "tracer");
    Case { name, script, args: case_args(&source, workload), header, keep, mask_tracer }
}

fn run(tool: &Path, case: &Case) -> Captured {
    let mut command = Command::new(tool);
    command.args(&case.args).arg(&case.script);
    run_with_limit(&mut command, TIME_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

/// Every run of digits as `N`, every run of blanks as one space, no trailing blanks.
fn mask(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('N');
        } else if c == ' ' || c == '\t' {
            while chars.peek().is_some_and(|&c| c == ' ' || c == '\t') {
                chars.next();
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_owned()
}

/// What the case compares of one run: the masked header lines, then the masked kept lines sorted.
fn compared_lines(case: &Case, tracer: &str, stdout: &[u8]) -> (Vec<String>, Vec<String>) {
    let text = String::from_utf8_lossy(stdout);
    let lines: Vec<String> = text
        .lines()
        .map(|line| match case.mask_tracer {
            true => mask(&line.replace(tracer, "TRACER")),
            false => mask(line),
        })
        .collect();
    let header = lines.iter().take(case.header).cloned().collect();
    let mut kept: Vec<String> = lines
        .iter()
        .skip(case.header)
        .filter(|line| case.keep.iter().any(|k| line.contains(&mask(k))))
        .cloned()
        .collect();
    kept.sort();
    (header, kept)
}

fn compare(case: &Case, tracers: [&str; 2], expected: &Captured, actual: &Captured) -> Result<usize, String> {
    let describe = |run: &Captured| run.status.map_or("killed at the time limit".to_owned(), |s| s.to_string());
    if !expected.status.is_some_and(|s| s.success()) {
        return Err(format!(
            "bpftrace itself failed ({}):\n{}",
            describe(expected),
            String::from_utf8_lossy(&expected.stderr)
        ));
    }
    let (want, got) =
        (compared_lines(case, tracers[0], &expected.stdout), compared_lines(case, tracers[1], &actual.stdout));
    let mut problems = Vec::new();
    if !actual.status.is_some_and(|s| s.success()) {
        problems.push(format!("rbt: {}", describe(actual)));
    }
    if want.0 != got.0 {
        problems.push(format!("header differs:\n  bpftrace: {:?}\n  rbt:      {:?}", want.0, got.0));
    }
    if want.1 != got.1 {
        problems.push(format!("kept lines differ:\n  bpftrace: {:?}\n  rbt:      {:?}", want.1, got.1));
    }
    if want.1.is_empty() && !case.keep.is_empty() {
        problems.push("bpftrace printed no line to keep: the workload did not reach the tool".to_owned());
    }
    if problems.is_empty() {
        return Ok(want.0.len() + want.1.len());
    }
    problems.push(format!("rbt's stderr:\n{}", String::from_utf8_lossy(&actual.stderr)));
    Err(problems.join("\n"))
}

#[test]
fn masking_makes_columns_of_other_widths_equal() {
    assert_eq!(mask("8447   memfd:sealed-91     5   0 x"), mask("16102  memfd:sealed-7 5 0 x"));
    assert_eq!(mask("PID    COMM  "), "PID COMM");
    assert_ne!(mask("a 1"), mask("b 1"));
}
