//! Differential tests: every `tests/data/diff/NAME.rbt` runs under bpftrace 0.17 and under rbt
//! with the same arguments (its `// run:` and `// args:` header lines), and their stdout and exit
//! status must match byte for byte. Nothing is normalised and nothing is stored: both tools run
//! live, one case at a time, because cases count a shared workload's syscalls.
//!
//! Needs root, BPF and bpftrace (`$BPFTRACE` or on `PATH`); without them the test fails and says
//! why rather than skipping. `RBT_DIFF_ONLY=name[,name...]` runs only those cases; `$RBT` picks
//! the rbt binary (otherwise it is built).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{bpftrace, case_args, is_root, line_diff, rbt, run_with_limit, Captured};

/// Long enough for the slowest case (a 3 s workload) plus bpftrace's start-up.
const TIME_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn rbt_matches_bpftrace() {
    assert!(is_root(), "the differential tests load BPF programs and must run as root (they never skip)");
    let bpftrace = bpftrace().unwrap_or_else(|e| panic!("differential tests need bpftrace 0.17: {e}"));
    check_bpftrace(&bpftrace);
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    let workload = Path::new(env!("CARGO_BIN_EXE_rbt-workload"));

    let cases = selected_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(case).unwrap_or_else(|e| panic!("cannot read {}: {e}", case.display()));
        let args = case_args(&source, workload);
        let params = tests::case_params(&source, workload);
        let expected = run_tool(&bpftrace, &args, case, &params);
        if expected.status.is_none_or(|status| !status.success()) {
            // The corpus only holds cases bpftrace runs cleanly; anything else is an environment
            // problem (or a bad case), not an rbt bug.
            failures.push(format!("{name}: bpftrace itself failed ({})\n{}", describe(&expected), stderr(&expected)));
            continue;
        }
        let actual = run_tool(&rbt, &args, case, &params);
        if let Some(problem) = compare(&expected, &actual) {
            eprintln!("MISMATCH {name}");
            failures.push(format!("{name} (args: {args:?}): {problem}"));
        } else {
            eprintln!("ok       {name}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differential cases differ from bpftrace:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Fails unless `bpftrace` is version 0.17 and can load a trivial program.
fn check_bpftrace(bpftrace: &Path) {
    let version = Command::new(bpftrace)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("differential tests need bpftrace 0.17; cannot run {}: {e}", bpftrace.display()));
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("v0.17."),
        "the corpus is checked against bpftrace 0.17, but {} is {}",
        bpftrace.display(),
        version.trim()
    );
    let mut smoke = Command::new(bpftrace);
    smoke.args(["-e", "BEGIN { exit(); }"]);
    let smoke = run_with_limit(&mut smoke, TIME_LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        smoke.status.is_some_and(|s| s.success()),
        "bpftrace cannot load a BPF program here ({}):\n{}",
        describe(&smoke),
        stderr(&smoke)
    );
}

/// Every case, or those named in `RBT_DIFF_ONLY`.
fn selected_cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/diff");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rbt"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let Ok(only) = std::env::var("RBT_DIFF_ONLY") else { return cases };
    let wanted: Vec<&str> = only.split(',').map(str::trim).filter(|name| !name.is_empty()).collect();
    let selected: Vec<PathBuf> = cases
        .into_iter()
        .filter(|case| case.file_stem().is_some_and(|stem| wanted.iter().any(|name| stem == *name)))
        .collect();
    assert!(!selected.is_empty(), "RBT_DIFF_ONLY={only} names no case in {}", dir.display());
    selected
}

fn run_tool(tool: &Path, args: &[String], case: &Path, params: &[String]) -> Captured {
    let mut command = Command::new(tool);
    command.args(args).arg(case).args(params);
    run_with_limit(&mut command, TIME_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

/// Why `actual` (rbt) differs from `expected` (bpftrace), if it does.
fn compare(expected: &Captured, actual: &Captured) -> Option<String> {
    let mut problems = Vec::new();
    if actual.status.map(|s| s.code()) != expected.status.map(|s| s.code()) {
        problems.push(format!("bpftrace {}, rbt {}", describe(expected), describe(actual)));
    }
    if actual.stdout != expected.stdout {
        let (expected_text, actual_text) =
            (String::from_utf8_lossy(&expected.stdout), String::from_utf8_lossy(&actual.stdout));
        problems.push(format!("stdout differs:\n{}", line_diff(&expected_text, &actual_text)));
    }
    if problems.is_empty() {
        return None;
    }
    let rbt_stderr = stderr(actual);
    if !rbt_stderr.trim().is_empty() {
        problems.push(format!("rbt's stderr:\n{rbt_stderr}"));
    }
    Some(problems.join("\n"))
}

fn describe(run: &Captured) -> String {
    match run.status {
        Some(status) => status.to_string(),
        None => format!("killed after {} s", TIME_LIMIT.as_secs()),
    }
}

fn stderr(run: &Captured) -> String {
    String::from_utf8_lossy(&run.stderr).into_owned()
}
