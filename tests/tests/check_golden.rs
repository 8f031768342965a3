//! Diagnostic goldens: each `tests/data/check/NAME.rbt` is compiled with `rbt --dry-run`; it must
//! fail with exit status 1 and print exactly `NAME.err` on stderr (rendered without colour), the
//! workload's path written `$WORKLOAD`. `// params:` words follow the script (`$1`...);
//! `{usdt_target}` there is the compiled USDT target (`tests::usdt_target`), written `$USDT_TARGET`.
//! `RBT_BLESS=1` re-records.

mod common_rbt;

use common_rbt::*;

#[test]
fn check_cases() {
    let mut failures = Vec::new();
    let cases = cases("check");
    assert!(!cases.is_empty(), "no check cases found");
    for case in &cases {
        let mut source = std::fs::read_to_string(case).expect("read case");
        // `{usdt_target}` in `// params:` is the compiled USDT target, shown as `$USDT_TARGET`.
        let usdt_target = source.contains("{usdt_target}").then(|| tests::usdt_target("check").display().to_string());
        if let Some(path) = &usdt_target {
            source = source.replace("{usdt_target}", path);
        }
        let mut args = case_args(&source);
        args.push("--dry-run".into());
        // `// params:` words follow the script, as positional parameters (`$1`).
        let params = tests::case_params(&source, &workload());
        let out = std::process::Command::new(rbt()).args(&args).arg(case).args(&params).output().expect("rbt runs");
        let workload_path = workload().canonicalize().unwrap_or_else(|_| workload()).display().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&workload_path, "$WORKLOAD")
            .replace(&workspace().display().to_string(), "$WORKSPACE");
        let stderr = match &usdt_target {
            Some(path) => stderr.replace(path.as_str(), "$USDT_TARGET"),
            None => stderr,
        };
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
