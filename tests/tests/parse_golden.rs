//! Golden tests for the parser: each `tests/data/parse/NAME.rbt` is parsed, and its AST dump
//! followed by its diagnostics must equal `NAME.out`.
//!
//! To re-record after an intended change: `RBT_BLESS=1 cargo test -p tests --test parse_golden`,
//! then review the `.out` diffs like code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The text recorded in a `.out` file: the AST dump, then one line per diagnostic.
fn render(src: &str) -> String {
    let (program, diagnostics) = grammar::parse(src);
    let mut out = grammar::dump(&program);
    for diagnostic in &diagnostics {
        let severity = match diagnostic.severity {
            grammar::Severity::Error => "error",
            grammar::Severity::Warning => "warning",
        };
        let span = diagnostic.primary_span();
        let _ = writeln!(out, "{severity}[{}] {}..{}: {}", diagnostic.code, span.start, span.end, diagnostic.message);
    }
    out
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/parse");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
    let mut cases: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rbt"))
        .collect();
    cases.sort();
    cases
}

/// A short report of where `actual` departs from `expected`: the first differing line with a
/// little context, expected lines marked `-` and actual lines `+`.
fn describe_difference(expected: &str, actual: &str) -> String {
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    let first = expected.iter().zip(&actual).take_while(|(e, a)| e == a).count();
    let context_start = first.saturating_sub(2);
    let mut report = format!("first difference at line {}:\n", first + 1);
    for line in &expected[context_start..first] {
        let _ = writeln!(report, "  {line}");
    }
    for line in expected.iter().skip(first).take(8) {
        let _ = writeln!(report, "- {line}");
    }
    for line in actual.iter().skip(first).take(8) {
        let _ = writeln!(report, "+ {line}");
    }
    report
}

#[test]
fn parse_goldens() {
    let bless = std::env::var_os("RBT_BLESS").is_some_and(|value| value == "1");
    let cases = cases();
    assert!(!cases.is_empty(), "no .rbt files in tests/data/parse");
    let mut failures = Vec::new();
    for input in &cases {
        let src =
            std::fs::read_to_string(input).unwrap_or_else(|error| panic!("cannot read {}: {error}", input.display()));
        let actual = render(&src);
        let expected_path = input.with_extension("out");
        let expected = std::fs::read_to_string(&expected_path).ok();
        if expected.as_deref() == Some(actual.as_str()) {
            continue;
        }
        if bless {
            std::fs::write(&expected_path, &actual)
                .unwrap_or_else(|error| panic!("cannot write {}: {error}", expected_path.display()));
            eprintln!("blessed {}", expected_path.display());
            continue;
        }
        let name = input.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        failures.push(match expected {
            None => format!("{name}: no {} (run with RBT_BLESS=1 to record it)", expected_path.display()),
            Some(expected) => format!("{name}: {}", describe_difference(&expected, &actual)),
        });
    }
    assert!(
        failures.is_empty(),
        "{} of {} parse goldens differ (RBT_BLESS=1 re-records them):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
