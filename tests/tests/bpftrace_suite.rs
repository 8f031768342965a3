//! bpftrace 0.17's own runtime test suite (vendored in `tests/bpftrace-suite/upstream`), run by
//! `tests/bpftrace-suite/run.py` for bpftrace and for rbt on this machine. It prints, per test,
//! both verdicts and rbt's output where they differ, and fails when a test that rbt passed
//! (`tests/bpftrace-suite/rbt-passes.txt`) fails now, twice in a row.
//!
//! Kernel tier: needs root, BPF, python3, gcc and bpftrace 0.17; without them it fails and says
//! why. `RBT_SUITE_FILTER=GLOB` runs only the tests whose `SUITE.NAME` matches.

use std::process::Command;

use tests::{bpftrace, is_root, rbt, workspace};

#[test]
fn rbt_passes_what_it_passed_before_in_bpftraces_runtime_suite() {
    assert!(is_root(), "bpftrace's runtime suite loads BPF programs and must run as root (it never skips)");
    let bpftrace = bpftrace().unwrap_or_else(|e| panic!("the runtime suite compares with bpftrace 0.17: {e}"));
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    let build_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bpftrace-suite");
    let mut command = Command::new("python3");
    command
        .arg(workspace().join("tests/bpftrace-suite/run.py"))
        .arg("--rbt")
        .arg(&rbt)
        .arg("--bpftrace")
        .arg(&bpftrace)
        .arg("--build-dir")
        .arg(&build_dir);
    if let Some(filter) = std::env::var_os("RBT_SUITE_FILTER") {
        command.arg("--filter").arg(filter);
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run python3 (the suite's engine needs it): {e}"));
    assert!(
        status.success(),
        "bpftrace's runtime suite: rbt regressed (the REGRESSIONS list above names the tests; \
         per-test report in {})",
        build_dir.join("report.txt").display()
    );
}
