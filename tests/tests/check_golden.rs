//! Diagnostic goldens: each `tests/data/check/NAME.rbt` is compiled with `rbt --dry-run`; it must
//! fail with exit status 1 and print exactly `NAME.err` on stderr (rendered without colour), the
//! workload's path written `$WORKLOAD`. `// params:` words follow the script (`$1`...);
//! `{usdt_target}` there is the compiled USDT target (`tests::usdt_target`), written `$USDT_TARGET`,
//! and `{dwarf_target}` the compiled DWARF target (`tests::dwarf_target`), written `$DWARF_TARGET`.
//! rbt checks against a fixture system, not the host's (`RBT_SYSROOT`): the one a `// catalog:
//! NAME` header names, `tests/data/catalog/NAME/`, by default `default`; so every case gives
//! the same result on any kernel, without root. `RBT_BLESS=1` re-records.

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
        let sysroot = workspace().join("tests/data/catalog").join(case_catalog(&source));
        let out = std::process::Command::new(rbt())
            .args(&args)
            .arg(case)
            .args(&params)
            .env("RBT_SYSROOT", &sysroot)
            .env_remove("RBT_BTF")
            .output()
            .expect("rbt runs");
        let workload_path = workload().canonicalize().unwrap_or_else(|_| workload()).display().to_string();
        let mut paths = vec![(workload_path, "$WORKLOAD"), (workspace().display().to_string(), "$WORKSPACE")];
        paths.extend(usdt_target.iter().map(|path| (path.clone(), "$USDT_TARGET")));
        if source.contains("{dwarf_target}") {
            paths.push((tests::dwarf_target().display().to_string(), "$DWARF_TARGET"));
        }
        let stderr = normalize_paths(&String::from_utf8_lossy(&out.stderr), paths);
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

/// The fixture system a case names with `// catalog: NAME` in its leading comments.
fn case_catalog(source: &str) -> &str {
    let header = source.lines().take_while(|line| line.starts_with("//"));
    header.filter_map(|line| line.strip_prefix("// catalog:")).map(str::trim).next().unwrap_or("default")
}

/// `text` with each path written as its placeholder. The longest paths go first, so that a path
/// inside another (the workload inside the workspace; the workspace inside the temporary
/// directory the USDT target is built in, for a checkout under /tmp) never cuts the longer one.
fn normalize_paths(text: &str, mut paths: Vec<(String, &str)>) -> String {
    paths.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    paths.iter().fold(text.to_owned(), |text, (path, placeholder)| text.replace(path.as_str(), placeholder))
}

#[test]
fn longer_paths_are_replaced_first() {
    let paths = vec![
        ("/tmp/rbt".to_owned(), "$WORKSPACE"),
        ("/tmp/rbt-usdt-check-1/usdt_target".to_owned(), "$USDT_TARGET"),
        ("/tmp/rbt/target/debug/rbt-workload".to_owned(), "$WORKLOAD"),
    ];
    let text = "/tmp/rbt-usdt-check-1/usdt_target /tmp/rbt/target/debug/rbt-workload /tmp/rbt/tests/a.rbt";
    assert_eq!(normalize_paths(text, paths), "$USDT_TARGET $WORKLOAD $WORKSPACE/tests/a.rbt");
}
