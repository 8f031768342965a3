//! Differential tests: every `tests/data/diff/NAME.rbt` runs under rbt with the arguments of its
//! `// run:` and `// args:` header lines, and its stdout and exit status must match the answer
//! byte for byte. The answer is bpftrace 0.17's, run live with the same arguments, one case at a
//! time because cases count a shared workload's syscalls; nothing is normalised.
//!
//! Except where bpftrace 0.17 is wrong or machine-dependent: such a case names the bug in a
//! `// bpftrace-bug: ...` header line and holds the correct output beside it in `NAME.expected`
//! (and must then exit with status 0). rbt is compared with that stored answer; bpftrace still
//! runs, and whether it still differs is printed for information only, so a case never depends
//! on a bpftrace bug. At the end the harness prints which cases were compared with bpftrace and
//! which with a stored answer.
//!
//! Kernel tier: needs root, BPF and bpftrace (`$BPFTRACE` or on `PATH`); without them the test
//! fails and says why rather than skipping. `RBT_DIFF_ONLY=name[,name...]` runs only those cases;
//! `$RBT` picks the rbt binary (otherwise it is built).

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tests::{bpftrace, case_args, is_root, line_diff, rbt, run_with_limit, Captured};

/// Long enough for the slowest case (a 3 s workload) plus bpftrace's start-up.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// The header line naming the bpftrace 0.17 bug that makes a case use its stored answer.
const BUG_HEADER: &str = "// bpftrace-bug:";

/// One case of the corpus, read from disk.
struct Case {
    name: String,
    path: PathBuf,
    args: Vec<String>,
    params: Vec<String>,
    /// The bug named in the case's header and the stored answer, where bpftrace 0.17 is wrong.
    stored: Option<(String, Vec<u8>)>,
}

#[test]
fn every_case_matches_bpftrace_or_its_stored_answer() {
    assert!(is_root(), "the differential tests load BPF programs and must run as root (they never skip)");
    let bpftrace = bpftrace().unwrap_or_else(|e| panic!("differential tests need bpftrace 0.17: {e}"));
    check_bpftrace(&bpftrace);
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    let workload = Path::new(env!("CARGO_BIN_EXE_rbt-workload"));

    let cases: Vec<Case> = selected_cases().iter().map(|path| read_case(path, workload)).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let bpftrace_run = run_tool(&bpftrace, case);
        let outcome = match &case.stored {
            None => against_bpftrace(&rbt, case, &bpftrace_run),
            Some((bug, answer)) => against_stored_answer(&rbt, case, bug, answer, &bpftrace_run),
        };
        if let Err(failure) = outcome {
            eprintln!("MISMATCH {}", case.name);
            failures.push(failure);
        }
    }
    report(&cases);
    assert!(
        failures.is_empty(),
        "{} of {} differential cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Compares rbt with bpftrace's live run of the same case.
fn against_bpftrace(rbt: &Path, case: &Case, expected: &Captured) -> Result<(), String> {
    if expected.status.is_none_or(|status| !status.success()) {
        // The corpus only holds cases bpftrace runs cleanly; anything else is an environment
        // problem (or a bad case), not an rbt bug.
        return Err(format!("{}: bpftrace itself failed ({})\n{}", case.name, describe(expected), stderr(expected)));
    }
    let actual = run_tool(rbt, case);
    match compare(expected, &actual, "bpftrace") {
        None => {
            eprintln!("ok       {} (compared with bpftrace)", case.name);
            Ok(())
        }
        Some(problem) => Err(format!("{} (args: {:?}): {problem}", case.name, case.args)),
    }
}

/// Compares rbt with the case's stored answer, and says whether bpftrace still shows its bug.
fn against_stored_answer(
    rbt: &Path,
    case: &Case,
    bug: &str,
    answer: &[u8],
    bpftrace_run: &Captured,
) -> Result<(), String> {
    let actual = run_tool(rbt, case);
    let stored = Captured { stdout: answer.to_vec(), stderr: Vec::new(), status: Some(ExitStatus::from_raw(0)) };
    let problem = compare(&stored, &actual, "stored answer");
    let bpftrace_now = if bpftrace_run.status.is_some_and(|s| s.success()) && bpftrace_run.stdout == answer {
        "bpftrace 0.17 gives the right answer on this machine"
    } else {
        "bpftrace 0.17 still differs"
    };
    match problem {
        None => {
            eprintln!("ok       {} (compared with its stored answer; {bpftrace_now}; the bug: {bug})", case.name);
            Ok(())
        }
        Some(problem) => {
            Err(format!("{} (args: {:?}, compared with {}.expected): {problem}", case.name, case.args, case.name))
        }
    }
}

/// Prints which cases were compared with bpftrace and which with a stored answer. Written to the
/// process's stderr directly, which libtest does not capture (it captures only the print macros),
/// so the line shows in `cargo test`'s output and `.ci/run`'s summary even when the test passes.
fn report(cases: &[Case]) {
    let stored: Vec<&str> = cases.iter().filter(|case| case.stored.is_some()).map(|case| case.name.as_str()).collect();
    let live = cases.len() - stored.len();
    let list = if stored.is_empty() { String::new() } else { format!(" ({})", stored.join(", ")) };
    let line = format!(
        "differential: {live} cases compared with bpftrace 0.17, {} with a stored answer where bpftrace 0.17 is wrong{list}\n",
        stored.len()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
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

/// Reads a case, its arguments and, where its header names a bpftrace bug, its stored answer. A
/// `.expected` file without the header line, or the header without the file, is a broken case.
fn read_case(path: &Path, workload: &Path) -> Case {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let bug = source
        .lines()
        .take_while(|line| line.starts_with("//"))
        .find_map(|line| line.strip_prefix(BUG_HEADER))
        .map(|bug| bug.trim().to_owned());
    let answer_path = path.with_extension("expected");
    let stored = match (bug, std::fs::read(&answer_path)) {
        (Some(bug), Ok(answer)) => {
            assert!(!bug.is_empty(), "{}: the `{BUG_HEADER}` line must name the bug", path.display());
            Some((bug, answer))
        }
        (Some(_), Err(e)) => panic!("{} names a bpftrace bug but {} cannot be read: {e}", name, answer_path.display()),
        (None, Ok(_)) => panic!("{} exists but {} has no `{BUG_HEADER}` line", answer_path.display(), path.display()),
        (None, Err(_)) => None,
    };
    Case {
        args: case_args(&source, workload),
        params: tests::case_params(&source, workload),
        name,
        path: path.to_path_buf(),
        stored,
    }
}

fn run_tool(tool: &Path, case: &Case) -> Captured {
    let mut command = Command::new(tool);
    command.args(&case.args).arg(&case.path).args(&case.params);
    run_with_limit(&mut command, TIME_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

/// Why `actual` (rbt) differs from `expected` (bpftrace's run or the stored answer), if it does.
fn compare(expected: &Captured, actual: &Captured, answer: &str) -> Option<String> {
    let mut problems = Vec::new();
    if actual.status.map(|s| s.code()) != expected.status.map(|s| s.code()) {
        problems.push(format!("{answer}: {}, rbt {}", describe(expected), describe(actual)));
    }
    if actual.stdout != expected.stdout {
        let (expected_text, actual_text) =
            (String::from_utf8_lossy(&expected.stdout), String::from_utf8_lossy(&actual.stdout));
        let diff = line_diff(&expected_text, &actual_text).replacen("--- bpftrace", &format!("--- {answer}"), 1);
        problems.push(format!("stdout differs:\n{diff}"));
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
