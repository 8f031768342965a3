//! bpftrace's own tools (`tests/bpftrace-suite/tools/*.bt`, from bpftrace 0.17's `tools/`) run
//! unchanged under rbt and bpftrace 0.17 while a workload runs, and print the same thing.
//!
//! Each case (`tests/data/tools/NAME.case`) says what to compare (`tests::tools` has the format).
//! `{workload}` is a copy of `rbt-workload` named for this test run, so that the lines kept are
//! this run's workload's and not those of another test running beside it.
//!
//! Kernel tier: needs root, BPF and bpftrace 0.17; without them the test fails and says why.
//! `RBT_TOOLS_ONLY=name[,name...]` runs only those cases; `$RBT` picks the rbt binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::tools::{comm_of, compare, read_cases, Case, ToolRun};
use tests::{bpftrace, is_root, rbt, run_with_limit};

const TIME_LIMIT: Duration = Duration::from_secs(60);

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
    read_cases(&dir, std::env::var("RBT_TOOLS_ONLY").ok().as_deref(), workload)
}

fn run(tool: &Path, case: &Case) -> ToolRun {
    let mut command = Command::new(tool);
    command.args(&case.args).arg(&case.script);
    run_with_limit(&mut command, TIME_LIMIT).unwrap_or_else(|e| panic!("{e}")).into()
}
