//! Diagnostic goldens: each `tests/data/check/NAME.rbt` is compiled with `rbt --dry-run`; it must
//! fail with exit status 1 and print exactly `NAME.err` on stderr (rendered without colour).
//! `RBT_BLESS=1` re-records.

mod common_rbt;

use common_rbt::*;

#[test]
fn check_cases() {
    let mut failures = Vec::new();
    let cases = cases("check");
    assert!(!cases.is_empty(), "no check cases found");
    for case in &cases {
        let source = std::fs::read_to_string(case).expect("read case");
        let mut args = case_args(&source);
        args.push("--dry-run".into());
        let out = run(&args, case);
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&workspace().display().to_string(), "$WORKSPACE");
        if out.status.code() != Some(1) {
            failures.push(format!("{}: expected exit status 1, got {}", case.display(), out.status));
        }
        if stderr.contains("panicked") {
            failures.push(format!("{}: rbt panicked:\n{stderr}", case.display()));
        }
        if let Some(f) = check_expected(&case.with_extension("err"), &stderr) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{} of {} check cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
