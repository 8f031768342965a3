//! bpftrace 0.17's runtime-suite tests that need kprobes, kretprobes or kfuncs (fentry), run with
//! rbt inside the Linux 6.1 and 6.12 VMs (`tests::vm`), since the development host's kernel has
//! no kprobes and refuses fentry programs.
//!
//! The suite's test files (`tests/bpftrace-suite/upstream/runtime`) are read on the host
//! (`tests::vm::suite`); a test is picked when its `PROG`, its `RUN` or the script its `RUN`
//! names attaches a `kprobe:`/`k:`, `kretprobe:`/`kr:`, `kfunc:` or `kretfunc:` probe, unless
//! `tests/bpftrace-suite/vm-skip.txt` leaves it out. One boot per kernel runs every picked test
//! through `rbt-suite-guest` (`src/bin/suite_guest.rs`), which does in the guest what the suite's
//! engine does (requirements, `BEFORE`, the notification line, `AFTER`, time limits); the host
//! judges each `EXPECT` as the engine would (`suite::judge`) and prints a verdict per test.
//!
//! `tests/bpftrace-suite/vm-passes.txt` lists the tests rbt passes, per kernel (`6.1 SUITE.NAME`).
//! A listed test that fails is run again in a boot of its own and, failing again, fails the run.
//! `RBT_VM_SUITE_UPDATE=1` rewrites a kernel's lines from this run; `RBT_VM_SUITE_FILTER=GLOB`
//! runs only the tests whose `SUITE.NAME` matches (`*` and `?`). `RBT_VM_SUITE_TOOL=/usr/bin/bpftrace`
//! runs the tests with that tool instead of rbt and only reports.

mod common_rbt;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common_rbt::{rbt, workspace};
use tests::vm::suite::{judge, read_suite, GuestReport, SuiteTest, Verdict};
use tests::vm::{GuestCommand, Vm};

/// The suite's directory in the guest (the engine's working directory) and the tool's.
const GUEST_SUITE: &str = "/suite";
const GUEST_BIN: &str = "/suite/bin";
const GUEST_RUNNER: &str = "/bin/rbt-suite-guest";
/// The engine's time limits are for a real machine; under TCG emulation everything is several
/// times slower (rbt's start, the attach, the traced programs), so each limit is stretched.
const STRETCH: f64 = 6.0;
/// The engine's `ATTACH_TIMEOUT`: how long the tool has to print the notification line.
const ATTACH_TIMEOUT: f64 = 5.0;
/// Per test, beyond its stretched limits: the SIGTERM's grace (`rbt-suite-guest`) and exit.
const TEST_MARGIN: u64 = 60;

/// The guest's stand-in for `/bin/bash`, which two tests' `AFTER` commands run (`bash -c ...`):
/// busybox has no bash, and its sh runs those commands alike.
const BASH_SHIM: &str = "#!/bin/sh\nexec /bin/sh \"$@\"\n";

fn suite_dir() -> PathBuf {
    workspace().join("tests/bpftrace-suite")
}

/// The tool the suite runs, and its path in the guest: rbt, or `RBT_VM_SUITE_TOOL` (e.g.
/// `/usr/bin/bpftrace`, to learn bpftrace 0.17's own verdicts in the guest; its libraries, LLVM's
/// among them, make the initramfs some 200 MB).
fn tool_under_test() -> (PathBuf, &'static str) {
    match std::env::var_os("RBT_VM_SUITE_TOOL") {
        Some(tool) => (PathBuf::from(tool), "/bin/tool-under-test"),
        None => (rbt(), "/bin/rbt"),
    }
}

/// The picked tests, in suite order.
fn picked_tests() -> Vec<SuiteTest> {
    let runtime = suite_dir().join("upstream/runtime");
    let tests = read_suite(&runtime).unwrap_or_else(|e| panic!("cannot read the suite: {e}"));
    let kernel_probe = regex::Regex::new(r"\b(kprobe|kretprobe|kfunc|kretfunc|k|kr):").expect("valid");
    let script = regex::Regex::new(r"runtime/scripts/[\w.-]+").expect("valid");
    let skipped = read_list("vm-skip.txt");
    let filter = std::env::var("RBT_VM_SUITE_FILTER").ok();
    tests
        .into_iter()
        .filter(|test| {
            let body = if test.prog.is_empty() { &test.run } else { &test.prog };
            let scripts = script.find_iter(body).map(|m| std::fs::read_to_string(runtime.join("..").join(m.as_str())));
            kernel_probe.is_match(body) || scripts.flatten().any(|text| kernel_probe.is_match(&text))
        })
        .filter(|test| !skipped.contains_key(&test.id))
        .filter(|test| filter.as_deref().is_none_or(|glob| glob_match(glob, &test.id)))
        .collect()
}

/// `glob` (`*` any text, `?` one character) against all of `text`.
fn glob_match(glob: &str, text: &str) -> bool {
    let pattern = format!("^{}$", regex::escape(glob).replace(r"\*", ".*").replace(r"\?", "."));
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(text))
}

/// A list file of the suite directory: `ENTRY` or `ENTRY<TAB># reason` lines, `#` comments.
fn read_list(name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(suite_dir().join(name)).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (entry, reason) = line.split_once('\t').unwrap_or((line, ""));
            (entry.trim().to_owned(), reason.trim_start_matches(['#', ' ']).trim().to_owned())
        })
        .collect()
}

/// The suite's test programs (`testprogs/NAME.c`) that `tests` run, built as the suite's CMake
/// builds them (`-g -O0 -no-pie`, as `run.py` does), by name.
fn build_testprogs(tests: &[SuiteTest]) -> Result<BTreeMap<String, PathBuf>, String> {
    let used = regex::Regex::new(r"testprogs/(\w+)").expect("valid");
    let names: BTreeSet<String> = tests
        .iter()
        .flat_map(|t| [t.before.as_str(), t.after.as_str(), t.run.as_str()])
        .flat_map(|text| used.captures_iter(text).map(|c| c[1].to_owned()).collect::<Vec<_>>())
        .collect();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vm-suite-testprogs");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut built = BTreeMap::new();
    for name in names {
        let source = suite_dir().join("upstream/testprogs").join(format!("{name}.c"));
        let target = out.join(&name);
        let output = std::process::Command::new("gcc")
            .args(["-Wno-undef", "-g", "-O0", "-no-pie", "-o"])
            .arg(&target)
            .arg(&source)
            .output()
            .map_err(|e| format!("cannot run gcc (apt-get install gcc): {e}"))?;
        if !output.status.success() {
            return Err(format!("gcc {} failed:\n{}", source.display(), String::from_utf8_lossy(&output.stderr)));
        }
        built.insert(name, target);
    }
    Ok(built)
}

/// `rbt-suite-guest`'s arguments for `test`.
fn guest_command(name: String, test: &SuiteTest) -> GuestCommand {
    let seconds = |s: f64| format!("{s:.0}");
    let mut argv = vec![GUEST_RUNNER.to_owned(), "--dir".into(), GUEST_SUITE.into(), "--bin".into(), GUEST_BIN.into()];
    argv.extend(["--timeout".into(), seconds(f64::from(test.timeout) * STRETCH)]);
    argv.extend(["--attach-timeout".into(), seconds(ATTACH_TIMEOUT * STRETCH)]);
    let mut option = |flag: &str, value: &str| {
        if !value.is_empty() {
            argv.extend([flag.to_owned(), value.to_owned()]);
        }
    };
    option("--before", &test.before);
    option("--after", &test.after);
    option("--min-kernel", &test.kernel_min);
    option("--max-kernel", &test.kernel_max);
    test.requires.iter().for_each(|r| option("--requires", r));
    test.features.iter().for_each(|f| option("--feature", f));
    test.env.iter().for_each(|(k, v)| option("--env", &format!("{k}={v}")));
    argv.push("--".into());
    argv.push(test.command(&format!("{GUEST_BIN}/bpftrace")));
    GuestCommand { name, env: vec![], argv }
}

/// One test's outcome in the guest.
struct Outcome {
    verdict: Verdict,
    output: String,
    /// The guest's seconds for the test, and until its notification line.
    seconds: Option<f64>,
    attached: Option<f64>,
}

/// One boot of `series` running `tests`; the outcome of each by id.
fn run_in_vm(series: &str, tests: &[SuiteTest]) -> Result<BTreeMap<String, Outcome>, String> {
    let vm = Vm::locate_series(series)?;
    let mut guest = vm.guest()?;
    let (tool, guest_tool) = tool_under_test();
    guest.add_executable(guest_tool, &tool)?;
    guest.add_symlink(&format!("{GUEST_BIN}/bpftrace"), guest_tool);
    guest.add_executable(GUEST_RUNNER, Path::new(env!("CARGO_BIN_EXE_rbt-suite-guest")))?;
    guest.add_executable_file("/bin/bash", BASH_SHIM.as_bytes().to_vec());
    for (name, path) in build_testprogs(tests)? {
        guest.add_executable(&format!("{GUEST_SUITE}/testprogs/{name}"), &path)?;
    }
    let scripts = suite_dir().join("upstream/runtime/scripts");
    for entry in std::fs::read_dir(&scripts).map_err(|e| format!("cannot read {}: {e}", scripts.display()))?.flatten() {
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
        guest.add_file(&format!("{GUEST_SUITE}/runtime/scripts/{}", entry.file_name().to_string_lossy()), bytes);
    }
    // What rbt says the guest kernel offers, which REQUIRES_FEATURE lines are decided by.
    guest.add_command(GuestCommand {
        name: "info".into(),
        env: vec![],
        argv: vec!["sh".into(), "-c".into(), format!("{GUEST_BIN}/bpftrace --info 2>&1")],
    });
    let mut worst = 0;
    for (index, test) in tests.iter().enumerate() {
        guest.add_command(guest_command(format!("t{index:03}"), test));
        worst = worst.max(((f64::from(test.timeout) + ATTACH_TIMEOUT) * STRETCH) as u64 + TEST_MARGIN);
    }
    guest.command_timeout = Duration::from_secs(worst);
    // Passing tests take seconds each; the limit is for a guest that hangs.
    guest.vm_timeout = Duration::from_secs(300 + 20 * tests.len() as u64).max(Duration::from_secs(worst + 300));
    let started = Instant::now();
    let run = vm.run(guest)?;
    eprintln!(
        "VM suite on {}: booted in {:.1?}, {} tests in {:.1?} in all{}",
        run.kernel.display(),
        run.boot.unwrap_or_default(),
        tests.len(),
        started.elapsed(),
        if run.done { String::new() } else { format!("; the guest stopped short: {}", run.interruption) }
    );
    if let Ok(info) = run.result("info") {
        let answers: Vec<String> = info
            .stdout_text()
            .lines()
            .filter_map(|line| {
                let (name, answer) = line.trim().rsplit_once(": ")?;
                ["yes", "no"].contains(&answer).then(|| format!("{name}={answer}"))
            })
            .collect();
        eprintln!("VM suite on {series}: --info: {}", answers.join(", "));
    }
    let warnings: Vec<&str> =
        run.console.lines().filter(|l| ["BUG:", "WARNING:", "Oops"].iter().any(|s| l.contains(s))).collect();
    if !warnings.is_empty() {
        eprintln!("VM suite on {series}: the guest kernel complained:\n{}", warnings.join("\n"));
    }
    let mut outcomes = BTreeMap::new();
    for (index, test) in tests.iter().enumerate() {
        let outcome = match run.result(&format!("t{index:03}")) {
            Ok(result) => {
                let stderr = result.stderr_text();
                let verdict = GuestReport::parse(&stderr).and_then(|report| {
                    let attached = match report {
                        GuestReport::Ran { attached, .. } => attached,
                        GuestReport::Skip(_) => None,
                    };
                    Ok((judge(test, &report, &result.stdout)?, attached))
                });
                let (verdict, attached) = verdict.unwrap_or_else(|e| (Verdict::Fail(e), None));
                Outcome { verdict, output: result.stdout_text(), seconds: result.duration(), attached }
            }
            Err(e) => Outcome { verdict: Verdict::Fail(e), output: String::new(), seconds: None, attached: None },
        };
        outcomes.insert(test.id.clone(), outcome);
    }
    Ok(outcomes)
}

/// The per-test report: verdict, guest seconds (and until attached), and for failures the reason
/// and the start of the output.
fn report(series: &str, tests: &[SuiteTest], outcomes: &BTreeMap<String, Outcome>) -> String {
    let mut text = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for test in tests {
        let Some(outcome) = outcomes.get(&test.id) else { continue };
        let (word, why) = match &outcome.verdict {
            Verdict::Pass => ("PASS", String::new()),
            Verdict::Fail(why) => ("FAIL", why.clone()),
            Verdict::Skip(why) => ("SKIP", why.clone()),
        };
        *counts.entry(word).or_default() += 1;
        let time = match (outcome.seconds, outcome.attached) {
            (Some(total), Some(attached)) => format!(" [{total:.1} s, attached at {attached:.1} s]"),
            (Some(total), None) => format!(" [{total:.1} s]"),
            _ => String::new(),
        };
        text.push_str(&format!("{series} {word} {}{time}\n", test.id));
        if !why.is_empty() {
            text.push_str(&format!("    {why}\n"));
        }
        if matches!(outcome.verdict, Verdict::Fail(_)) {
            for line in outcome.output.lines().take(12) {
                text.push_str(&format!("    | {line}\n"));
            }
        }
    }
    let summary: Vec<String> = counts.iter().map(|(word, n)| format!("{n} {word}")).collect();
    text.push_str(&format!("{series}: {} kernel-probe tests: {}\n", tests.len(), summary.join(", ")));
    text
}

/// Serializes rewrites of `vm-passes.txt` by the two kernels' tests, which run in parallel.
static PASSES_FILE: Mutex<()> = Mutex::new(());

/// Rewrites `series`'s lines of `vm-passes.txt` with the tests that passed.
fn update_passes(series: &str, outcomes: &BTreeMap<String, Outcome>) {
    let _guard = PASSES_FILE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = suite_dir().join("vm-passes.txt");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = old
        .lines()
        .filter(|line| line.starts_with('#') || line.split_once(' ').is_some_and(|(kernel, _)| kernel != series))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        lines.push(
            "# bpftrace 0.17's kernel-probe runtime tests that rbt passes in the VMs, as `KERNEL SUITE.NAME`.".into(),
        );
        lines.push(
            "# A test listed here that fails is a regression. Written by RBT_VM_SUITE_UPDATE=1 (tests/vm_suite.rs)."
                .into(),
        );
    }
    lines.extend(outcomes.iter().filter(|(_, o)| o.verdict == Verdict::Pass).map(|(id, _)| format!("{series} {id}")));
    let (comments, mut entries): (Vec<String>, Vec<String>) = lines.into_iter().partition(|l| l.starts_with('#'));
    entries.sort_by(|a, b| {
        let key = |l: &str| l.split_once(' ').map(|(k, id)| (tests_kernel_key(k), id.to_owned()));
        key(a).cmp(&key(b))
    });
    let text = comments.into_iter().chain(entries).collect::<Vec<_>>().join("\n") + "\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn tests_kernel_key(series: &str) -> Vec<u64> {
    series.split('.').filter_map(|n| n.parse().ok()).collect()
}

/// The whole check for one kernel: run, report, re-run regressions alone, fail on the ones that
/// fail twice.
fn check_series(series: &str) {
    let tests = picked_tests();
    assert!(!tests.is_empty(), "no kernel-probe tests picked (RBT_VM_SUITE_FILTER too narrow?)");
    let outcomes = run_in_vm(series, &tests).unwrap_or_else(|e| panic!("the Linux {series} VM could not run: {e}"));
    let text = report(series, &tests, &outcomes);
    eprint!("{text}");
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vm-suite-{series}.txt"));
    let _ = std::fs::write(&report_path, &text);
    if std::env::var_os("RBT_VM_SUITE_TOOL").is_some() {
        // Another tool's verdicts are for reading, not for rbt's list.
        return;
    }
    if std::env::var("RBT_VM_SUITE_UPDATE").is_ok_and(|v| v == "1") {
        update_passes(series, &outcomes);
        return;
    }
    let listed: BTreeSet<String> = read_list("vm-passes.txt")
        .into_keys()
        .filter_map(|line| line.strip_prefix(&format!("{series} ")).map(str::to_owned))
        .collect();
    let newly: Vec<&String> = outcomes
        .iter()
        .filter(|(id, o)| o.verdict == Verdict::Pass && !listed.contains(*id))
        .map(|(id, _)| id)
        .collect();
    if !newly.is_empty() {
        eprintln!("{series}: passing now but not in vm-passes.txt (RBT_VM_SUITE_UPDATE=1 adds them): {newly:?}");
    }
    let failed: Vec<SuiteTest> = tests
        .iter()
        .filter(|t| listed.contains(&t.id) && outcomes.get(&t.id).is_some_and(|o| o.verdict != Verdict::Pass))
        .cloned()
        .collect();
    if failed.is_empty() {
        return;
    }
    eprintln!("{series}: {} listed tests failed; running them again in a boot of their own", failed.len());
    let again = run_in_vm(series, &failed).unwrap_or_else(|e| panic!("the Linux {series} VM could not run: {e}"));
    let text = report(series, &failed, &again);
    let regressed: Vec<&String> = again.iter().filter(|(_, o)| o.verdict != Verdict::Pass).map(|(id, _)| id).collect();
    assert!(
        regressed.is_empty(),
        "rbt regressed on Linux {series} in bpftrace's kernel-probe tests (listed in vm-passes.txt): {regressed:?}\n{text}"
    );
}

#[test]
fn bpftrace_kernel_probe_tests_on_6_1() {
    check_series("6.1");
}

#[test]
fn bpftrace_kernel_probe_tests_on_6_12() {
    check_series("6.12");
}
