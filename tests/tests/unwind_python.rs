//! Whole user stacks of Debian's python3, which has no frame pointers: a script recursing in
//! Python (every other level re-entering the interpreter from C, through `map`) sleeps in a loop
//! or spins on the CPU, and every stack rbt takes must reach libc's `__libc_start_call_main`
//! through the interpreter's C frames (`_PyEval_EvalFrameDefault` once per re-entry,
//! `PyEval_EvalCode`, `Py_RunMain`, `Py_BytesMain`). Debian's `main` is a tail jump to
//! `Py_BytesMain`, so no unwinder can show a frame of its own for it.
//!
//! A process's tables are loaded on rbt's symbolizer thread when the process is first seen (with
//! `-c`), so its first stacks may end early: the sleep test checks that once one stack is whole,
//! every later one is, and says how many came before. With `-p` the tables are loaded before
//! the probes attach, so the profile test wants every sample to reach `_start`.
//!
//! Needs root, BPF and /usr/bin/python3 (Debian's python3: `apt-get install python3`).

mod common_rbt;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common_rbt::{rbt, require_bpf, text};

/// Debian's interpreter (not whatever `python3` a PATH finds first, which may be built otherwise).
const PYTHON: &str = "/usr/bin/python3";
/// Interpreter re-entries from C in the script (`DEPTH / 2`), plus the outermost evaluation.
const EVAL_FRAMES: usize = 7;
/// The frames every whole stack passes through, outermost last, in this order.
const CHAIN: [&str; 8] = [
    "_PyEval_EvalFrameDefault",
    "PyEval_EvalCode",
    "_PyRun_SimpleFileObject",
    "Py_RunMain",
    "Py_BytesMain",
    "__libc_start_call_main",
    "__libc_start_main",
    "_start",
];

fn script() -> PathBuf {
    tests::workspace().join("tests/data/unwind_python/descend.py")
}

fn require_python() {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is missing (apt-get install python3): this test never skips");
}

/// The stacks printed between `S` and `E` lines, in the order they were taken: each frame's
/// function name (`+offset` stripped; an address stays as it is).
fn stacks(output: &str) -> Vec<Vec<String>> {
    let mut stacks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in output.lines() {
        match line {
            "S" => current = Some(Vec::new()),
            "E" => stacks.extend(current.take()),
            _ => {
                if let Some(frames) = current.as_mut() {
                    let frame = line.trim();
                    if !frame.is_empty() {
                        let name = frame.rsplit_once('+').map_or(frame, |(name, _)| name);
                        frames.push(name.to_owned());
                    }
                }
            }
        }
    }
    stacks
}

/// Whether `frames` pass through `CHAIN` in order, with the interpreter's loop at least
/// `EVAL_FRAMES` times, and end at `_start`.
fn whole(frames: &[String]) -> bool {
    let mut rest = frames.iter();
    let in_order = CHAIN.iter().all(|want| rest.any(|f| f == want));
    let evals = frames.iter().filter(|f| *f == "_PyEval_EvalFrameDefault").count();
    in_order && evals >= EVAL_FRAMES && frames.last().is_some_and(|f| f == "_start")
}

/// Checks that every stack after the first whole one is whole; returns how many came before it.
fn check_stacks(what: &str, stacks: &[Vec<String>], first_frame: Option<&str>, at_least: usize) -> usize {
    let first_whole = stacks
        .iter()
        .position(|s| whole(s))
        .unwrap_or_else(|| panic!("{what}: none of {} stacks reaches _start: {:#?}", stacks.len(), stacks.last()));
    let later = &stacks[first_whole..];
    assert!(later.len() >= at_least, "{what}: only {} whole stacks, expected at least {at_least}", later.len());
    let broken: Vec<_> = later.iter().enumerate().filter(|(_, s)| !whole(s)).collect();
    assert!(
        broken.is_empty(),
        "{what}: {} of {} stacks after the first whole one are not whole; the first:\n{:#?}",
        broken.len(),
        later.len(),
        broken.first()
    );
    if let Some(leaf) = first_frame {
        let other = later.iter().find(|s| s[0] != leaf);
        assert!(other.is_none(), "{what}: a stack does not start at {leaf}: {other:#?}");
    }
    eprintln!(
        "{what}: {} stacks, {} whole, {first_whole} taken before the process's tables were loaded",
        stacks.len(),
        later.len()
    );
    first_whole
}

#[test]
fn python_sleep_stacks_reach_main_through_the_interpreter() {
    require_bpf();
    require_python();
    let program = "tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { printf(\"S\\n%s\\nE\\n\", ustack); }";
    let command = format!("{PYTHON} {} sleep 600", script().display());
    let out = Command::new(rbt()).args(["-e", program, "-c", &command]).output().expect("rbt runs");
    assert!(out.status.success(), "rbt failed ({}):\n{}", out.status, text(&out.stderr));
    let stacks = stacks(&text(&out.stdout));
    assert_eq!(stacks.len(), 600, "one stack per sleep");
    let partial = check_stacks("sleeps", &stacks, Some("clock_nanosleep"), 1);
    // Most of them are whole (the tables take a fraction of the run to load).
    assert!(
        partial * 2 < stacks.len(),
        "{partial} of {} stacks were taken before the tables were loaded",
        stacks.len()
    );
}

#[test]
fn python_profile_stacks_reach_main_through_the_interpreter() {
    require_bpf();
    require_python();
    // rbt is built first: python3 spins for a fixed time.
    let rbt = rbt();
    // Started first and named with -p: its tables are loaded while the probe attaches. It spins
    // once rbt says it has attached, for a fixed CPU time.
    let mut python = Command::new(PYTHON)
        .arg(script())
        .args(["spin", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut ready = String::new();
    BufReader::new(python.stdout.take().expect("piped")).read_line(&mut ready).expect("read python's output");
    assert_eq!(ready.trim(), "ready", "python3 did not start its script");
    let pid = python.id();
    let program = format!("profile:hz:99 /pid == {pid}/ {{ printf(\"S\\n%s\\nE\\n\", ustack); }}");
    let mut tracer = Command::new(rbt)
        .args(["-e", &program, "-p", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rbt runs");
    let mut output = BufReader::new(tracer.stdout.take().expect("piped"));
    let mut attached = String::new();
    output.read_line(&mut attached).expect("read rbt's output");
    assert!(attached.starts_with("Attaching"), "rbt did not attach: {attached:?}");
    writeln!(python.stdin.take().expect("piped"), "go").expect("start python3's spinning");
    let mut samples = String::new();
    output.read_to_string(&mut samples).expect("read rbt's output");
    let out = tracer.wait_with_output().expect("rbt exits");
    let status = python.wait().expect("python3 exits");
    assert!(out.status.success(), "rbt failed ({}):\n{}", out.status, text(&out.stderr));
    assert!(status.success(), "python3 failed ({status})");
    // About 99 samples a second of CPU time, three seconds. Every one reaches `_start` through
    // `Py_BytesMain`, and nearly all through the interpreter loop: a few land in the
    // interpreter's start or its `Py_FinalizeEx` after the spin, with no Python frame to show.
    let stacks = stacks(&samples);
    assert!(stacks.len() >= 250, "only {} samples", stacks.len());
    let bottom = ["Py_BytesMain", "__libc_start_call_main", "__libc_start_main", "_start"];
    // A sample taken as the process exits (in `_Exit`, its memory being unmapped) ends at the
    // `[stack memory unreadable]` marker: rightly, so it is left out.
    let cut = stacks
        .iter()
        .filter(|s| s.first().map(String::as_str) != Some("_Exit"))
        .find(|s| !s.ends_with(&bottom.map(str::to_owned)));
    assert!(cut.is_none(), "a sample does not reach _start through Py_BytesMain: {cut:#?}");
    let through_eval = stacks.iter().filter(|s| whole(s)).count();
    assert!(
        through_eval * 10 >= stacks.len() * 9,
        "only {through_eval} of {} samples pass through the interpreter loop: {:#?}",
        stacks.len(),
        stacks.iter().find(|s| !whole(s))
    );
}

/// The done-when, as a test: `rbt -t offcputime` over python3 with a thread that sleeps
/// and one that fsyncs shows both threads' waits whole, from the thread's start through the
/// interpreter into libc's `clock_nanosleep` and `fsync`, in folded output.
#[test]
fn offcputime_shows_both_python_threads_whole() {
    require_bpf();
    require_python();
    let dir = std::env::temp_dir().join(format!("rbt-unwind-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make a scratch directory");
    let script = tests::workspace().join("tests/data/unwind_python/threads.py");
    let command = format!("{PYTHON} {} {}", script.display(), dir.display());
    let out =
        Command::new(rbt()).args(["-t", "offcputime", "-f", "folded", "-c", &command]).output().expect("rbt runs");
    assert!(out.status.success(), "rbt failed ({}):\n{}", out.status, text(&out.stderr));
    let stdout = text(&out.stdout);
    // `comm;user frames, outermost first;kernel frames VALUE`, for python3's lines.
    let lines: Vec<(Vec<&str>, u64)> = stdout
        .lines()
        .filter_map(|line| {
            let (frames, value) = line.rsplit_once(' ')?;
            let frames: Vec<&str> = frames.split(';').map(|f| f.split('+').next().unwrap_or(f)).collect();
            (frames.first() == Some(&"python3")).then_some((frames, value.parse().ok()?))
        })
        .collect();
    let time_in = |leaf: &str, chain: &[&str]| -> (u64, u64) {
        let mut whole = 0;
        let mut all = 0;
        for (frames, value) in &lines {
            if !frames.contains(&leaf) {
                continue;
            }
            all += value;
            let mut rest = frames.iter();
            if chain.iter().all(|want| rest.any(|f| f == want)) {
                whole += value;
            }
        }
        (whole, all)
    };
    // Debian's python3 keeps no names for its static functions (`thread_run`, `os_fsync`):
    // the exported ones.
    let sleeps = ["start_thread", "_PyEval_EvalFrameDefault", "clock_nanosleep"];
    let fsyncs = ["start_thread", "_PyEval_EvalFrameDefault", "fsync"];
    for (what, leaf, chain) in [("sleeps", "clock_nanosleep", &sleeps[..]), ("fsyncs", "fsync", &fsyncs[..])] {
        let (whole, all) = time_in(leaf, chain);
        assert!(all > 0, "{what}: no off-CPU time in {leaf}:\n{stdout}");
        assert!(whole * 2 > all, "{what}: {whole} of {all} us in whole stacks ({chain:?}):\n{stdout}");
        eprintln!("{what}: {whole} of {all} us of off-CPU time in whole stacks");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
