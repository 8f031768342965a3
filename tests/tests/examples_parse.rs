//! The hermetic half of the `examples/` tests: every example script parses without an error, and
//! so does every entry typed in the REPL session transcript. (`examples.rs`, kernel tier, runs
//! each example in the kernel over the workload and replays the session in a pseudo-terminal.)

use std::path::PathBuf;

use tests::transcript::{self, Step};

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
