//! Kernel end-to-end tests: each `tests/data/run/NAME.rbt` runs under the real rbt binary as root
//! (its `// run:` line gives the arguments, usually `-c "{workload} ..."`), and stdout must equal
//! `NAME.out` byte for byte. `RBT_BLESS=1` re-records.

mod common_rbt;

use common_rbt::*;

#[test]
fn run_cases() {
    require_bpf();
    let mut failures = Vec::new();
    let cases = cases("run");
    assert!(!cases.is_empty(), "no kernel cases found");
    for case in &cases {
        let source = std::fs::read_to_string(case).expect("read case");
        let out = run(&case_args(&source), case);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failures.push(format!("{}: rbt failed ({}):\n{stderr}", case.display(), out.status));
            continue;
        }
        if let Some(f) = check_expected(&case.with_extension("out"), &stdout) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{} of {} kernel cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
