//! The hermetic half of the `examples/` tests: every example script parses without an error, and
//! so does every entry typed in the REPL session transcript; every example whose probes the
//! fixture system `tests/data/catalog/default` has compiles against it (`rbt --dry-run`, the
//! check goldens' `RBT_SYSROOT`). (`examples.rs`, kernel tier, runs each example in the kernel
//! over the workload and replays the session in a pseudo-terminal.)

use std::path::{Path, PathBuf};
use std::process::Command;

use tests::transcript::{self, Step};

/// The examples the fixture system cannot check, with what it lacks. Each must still fail to
/// compile against it for that reason: once the fixture has what one needs, the test says to
/// move it off this list.
const NOT_IN_THE_FIXTURE: &[(&str, &str)] = &[("malloc_sizes", "cannot read /etc/ld.so.cache to find libc")];

/// Every `examples/*.rbt`, sorted.
fn example_scripts() -> Vec<PathBuf> {
    let dir = tests::workspace().join("examples");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rbt"))
        .collect();
    scripts.sort();
    scripts
}

/// The error diagnostics of `source`, one line each.
fn parse_errors(source: &str) -> Vec<String> {
    let (_, diagnostics) = grammar::parse(source);
    diagnostics
        .iter()
        .filter(|diagnostic| matches!(diagnostic.severity, grammar::Severity::Error))
        .map(|diagnostic| format!("{}: {}", diagnostic.code, diagnostic.message))
        .collect()
}

#[test]
fn every_example_parses() {
    let scripts = example_scripts();
    assert!(scripts.len() >= 5, "examples/ holds the worked examples: {scripts:?}");
    for script in &scripts {
        let source =
            std::fs::read_to_string(script).unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
        let errors = parse_errors(&source);
        assert!(errors.is_empty(), "{}: {errors:#?}", script.display());
        assert!(source.starts_with("// "), "{} opens with a comment saying what it shows", script.display());
        assert!(source.contains("  sudo rbt "), "{} shows how to run it", script.display());
    }
}

#[test]
fn every_entry_of_the_repl_session_parses() {
    let path = tests::workspace().join("examples/repl_session.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let steps = transcript::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let programs: Vec<String> = steps.iter().filter_map(Step::program).collect();
    assert!(programs.len() >= 3, "the session types a few programs: {steps:#?}");
    for program in &programs {
        // A statement entry (`@limit = 3`) runs once, as the body of a BEGIN block.
        let errors = parse_errors(program);
        let as_statement = format!("BEGIN {{ {program} }}");
        assert!(errors.is_empty() || parse_errors(&as_statement).is_empty(), "{program}: {errors:#?}");
    }
}

/// `rbt --dry-run -c true SCRIPT` against the fixture system: its exit status and stderr.
fn dry_run(rbt: &Path, script: &Path) -> (Option<i32>, String) {
    let sysroot = tests::workspace().join("tests/data/catalog/default");
    let out = Command::new(rbt)
        .args(["--dry-run", "-c", "true"])
        .arg(script)
        .env("RBT_SYSROOT", &sysroot)
        .env_remove("RBT_BTF")
        .output()
        .expect("rbt runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_example_compiles_against_the_fixture_system() {
    let rbt = tests::rbt().unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for script in example_scripts() {
        let name = script.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let (status, stderr) = dry_run(&rbt, &script);
        match NOT_IN_THE_FIXTURE.iter().find(|(example, _)| *example == name) {
            None if status != Some(0) => failures.push(format!("{name}: rbt --dry-run failed ({status:?}):\n{stderr}")),
            Some((_, lack)) if status == Some(0) || !stderr.contains(lack) => failures.push(format!(
                "{name}: expected to fail with `{lack}` (see NOT_IN_THE_FIXTURE; remove it there once the fixture \
                 has what it needs), got status {status:?}:\n{stderr}"
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
