//! bpftrace's tools compared under rbt and bpftrace 0.17: reading a tool case (`NAME.case`,
//! used by `tests/tools.rs` on the host and `tests/vm_tools.rs` in the VMs), masking the output,
//! and comparing the two runs.
//!
//! A tool traces the whole machine, so its output holds other processes' events, times and pids
//! that differ between two runs. Each case says what to compare:
//!
//! ```text
//! // run: -c "{workload} open /etc/hostname 3" rbt's and bpftrace's arguments (the first line)
//! // tool: opensnoop                           the script, tests/bpftrace-suite/tools/opensnoop.bt
//! // header: 3                                 the first 3 lines of stdout must be equal
//! // keep: {comm}                              and so must the lines holding this text, as a
//! //                                           multiset (any order), from the rest of stdout
//! // mask: tracer                              the tracer's own name (`bpftrace`, `rbt`) reads
//! //                                           as TRACER (the `-c` command's parent is the tracer)
//! ```
//!
//! `{workload}` is the workload's path where the tools run, and `{comm}` its name, so that the
//! lines kept are this run's workload's and not those of another process.
//!
//! Before comparing, every run of digits becomes `N` and every run of blanks one space, so
//! columns of different widths compare equal. Both tools must exit with status 0.

use std::path::{Path, PathBuf};

use crate::{case_args, workspace, Captured};

/// One tool case.
pub struct Case {
    pub name: String,
    /// The tool's name (`// tool:`), and its script on the host.
    pub tool: String,
    pub script: PathBuf,
    /// The tracers' arguments, before the script.
    pub args: Vec<String>,
    pub header: usize,
    pub keep: Vec<String>,
    /// Whether the tracer's name is masked (`// mask: tracer`).
    pub mask_tracer: bool,
}

/// What one tracer's run left: both outputs and its exit status (`None`: killed at the time
/// limit; a signal N reads as 128 + N, as a shell says).
pub struct ToolRun {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<i32>,
}

impl From<Captured> for ToolRun {
    fn from(run: Captured) -> ToolRun {
        use std::os::unix::process::ExitStatusExt;
        let status = run.status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
        ToolRun { stdout: run.stdout, stderr: run.stderr, status }
    }
}

/// The directory of bpftrace 0.17's tools.
pub fn tools_dir() -> PathBuf {
    workspace().join("tests/bpftrace-suite/tools")
}

/// The cases of `dir` (`*.case`), sorted by name; with `only` (`name[,name...]`, from an
/// environment variable), just those. `workload` is the workload's path where the tools run.
pub fn read_cases(dir: &Path, only: Option<&str>, workload: &Path) -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "case"))
        .collect();
    paths.sort();
    let wanted: Vec<&str> = only.map(|o| o.split(',').map(str::trim).collect()).unwrap_or_default();
    let cases: Vec<Case> = paths
        .iter()
        .filter(|path| wanted.is_empty() || path.file_stem().is_some_and(|s| wanted.iter().any(|w| s == *w)))
        .map(|path| read_case(path, workload))
        .collect();
    assert!(!cases.is_empty(), "no tool cases selected in {}", dir.display());
    cases
}

/// Reads one case file; panics (the test's failure) when it is malformed.
pub fn read_case(path: &Path, workload: &Path) -> Case {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let header_value = |key: &str| {
        source.lines().take_while(|line| line.starts_with("//")).find_map(|line| {
            line.strip_prefix("//").and_then(|rest| rest.trim_start().strip_prefix(key)).map(|v| v.trim().to_owned())
        })
    };
    let tool = header_value("tool:").unwrap_or_else(|| panic!("{}: no `// tool:` line", path.display()));
    let script = tools_dir().join(format!("{tool}.bt"));
    assert!(script.is_file(), "{}: no tool {}", path.display(), script.display());
    let header = header_value("header:").map_or(0, |h| h.parse().unwrap_or_else(|_| panic!("{name}: bad header")));
    let comm = comm_of(workload);
    let keep = source
        .lines()
        .take_while(|line| line.starts_with("//"))
        .filter_map(|line| line.strip_prefix("// keep:"))
        .map(|text| text.trim().replace("{workload}", &workload.display().to_string()).replace("{comm}", &comm))
        .collect();
    let mask_tracer = header_value("mask:").is_some_and(|m| m == "tracer");
    Case { name, tool, script, args: case_args(&source, workload), header, keep, mask_tracer }
}

/// The name a process running `program` has (its `comm`: the file name, at most 15 bytes).
pub fn comm_of(program: &Path) -> String {
    let name = program.file_name().unwrap_or_default().to_string_lossy().into_owned();
    name.chars().take(15).collect()
}

/// Every run of digits as `N`, every run of blanks as one space, no trailing blanks.
pub fn mask(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('N');
        } else if c == ' ' || c == '\t' {
            while chars.peek().is_some_and(|&c| c == ' ' || c == '\t') {
                chars.next();
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_owned()
}

/// What the case compares of one run: the masked header lines, then the masked kept lines sorted.
fn compared_lines(case: &Case, tracer: &str, stdout: &[u8]) -> (Vec<String>, Vec<String>) {
    let text = String::from_utf8_lossy(stdout);
    let lines: Vec<String> = text
        .lines()
        .map(|line| match case.mask_tracer {
            true => mask(&line.replace(tracer, "TRACER")),
            false => mask(line),
        })
        .collect();
    let header = lines.iter().take(case.header).cloned().collect();
    let mut kept: Vec<String> = lines
        .iter()
        .skip(case.header)
        .filter(|line| case.keep.iter().any(|k| line.contains(&mask(k))))
        .cloned()
        .collect();
    kept.sort();
    (header, kept)
}

/// Compares bpftrace's run (`expected`) with rbt's (`actual`) as `case` says; `tracers` are
/// their names (`comm`s), for `// mask: tracer`. Gives the number of lines compared, or what
/// differs, with rbt's stderr.
pub fn compare(case: &Case, tracers: [&str; 2], expected: &ToolRun, actual: &ToolRun) -> Result<usize, String> {
    let describe = |run: &ToolRun| run.status.map_or("killed at the time limit".to_owned(), |s| format!("exit {s}"));
    if expected.status != Some(0) {
        return Err(format!(
            "bpftrace itself failed ({}):\n{}",
            describe(expected),
            String::from_utf8_lossy(&expected.stderr)
        ));
    }
    let (want, got) =
        (compared_lines(case, tracers[0], &expected.stdout), compared_lines(case, tracers[1], &actual.stdout));
    let mut problems = Vec::new();
    if actual.status != Some(0) {
        problems.push(format!("rbt: {}", describe(actual)));
    }
    if want.0 != got.0 {
        problems.push(format!("header differs:\n  bpftrace: {:?}\n  rbt:      {:?}", want.0, got.0));
    }
    if want.1 != got.1 {
        problems.push(format!("kept lines differ:\n  bpftrace: {:?}\n  rbt:      {:?}", want.1, got.1));
    }
    if want.1.is_empty() && !case.keep.is_empty() {
        problems.push("bpftrace printed no line to keep: the workload did not reach the tool".to_owned());
    }
    if problems.is_empty() {
        return Ok(want.0.len() + want.1.len());
    }
    problems.push(format!("rbt's stderr:\n{}", String::from_utf8_lossy(&actual.stderr)));
    Err(problems.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_makes_columns_of_other_widths_equal() {
        assert_eq!(mask("8447   memfd:sealed-91     5   0 x"), mask("16102  memfd:sealed-7 5 0 x"));
        assert_eq!(mask("PID    COMM  "), "PID COMM");
        assert_ne!(mask("a 1"), mask("b 1"));
    }

    fn case(header: usize, keep: &[&str], mask_tracer: bool) -> Case {
        Case {
            name: "t".into(),
            tool: "t".into(),
            script: PathBuf::new(),
            args: vec![],
            header,
            keep: keep.iter().map(|k| (*k).to_owned()).collect(),
            mask_tracer,
        }
    }

    fn run(stdout: &str, status: Option<i32>) -> ToolRun {
        ToolRun { stdout: stdout.as_bytes().to_vec(), stderr: b"why".to_vec(), status }
    }

    #[test]
    fn header_and_kept_lines_are_compared_masked_and_in_any_order() {
        let case = case(1, &["wl7"], true);
        let bpftrace = run("Attaching 2 probes...\n12 wl7 bpftrace\nnoise 1\n3 wl7 x\n", Some(0));
        let rbt = run("Attaching 2 probes...\n4 wl7 x\n1 wl7 rbt\nother\n", Some(0));
        assert_eq!(compare(&case, ["bpftrace", "rbt"], &bpftrace, &rbt), Ok(3));
        let short = run("Attaching 2 probes...\n1 wl7 rbt\n", Some(0));
        let problem = compare(&case, ["bpftrace", "rbt"], &bpftrace, &short).unwrap_err();
        assert!(problem.starts_with("kept lines differ:") && problem.ends_with("rbt's stderr:\nwhy"), "{problem}");
    }

    #[test]
    fn failed_or_killed_runs_are_problems() {
        let case = case(1, &[], false);
        let ok = run("x\n", Some(0));
        let problem = compare(&case, ["bpftrace", "rbt"], &ok, &run("x\n", None)).unwrap_err();
        assert!(problem.starts_with("rbt: killed at the time limit"), "{problem}");
        let problem = compare(&case, ["bpftrace", "rbt"], &run("", Some(1)), &ok).unwrap_err();
        assert!(problem.starts_with("bpftrace itself failed (exit 1)"), "{problem}");
    }
}
