//! The worked examples in `examples/`, run as a newcomer runs them: each script is loaded into the
//! kernel with `-c` starting the workload (tests/src/bin/workload.rs) as the traced command, and
//! its output is checked exactly where it is deterministic (the command's own syscalls) and by
//! the lines that matter where the whole system shows (sampling, the scheduler). The REPL session
//! `examples/repl_session.txt` is replayed in a pseudo-terminal. Kernel tier: needs root and BPF,
//! and fails with the reason without them.

mod common_rbt;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common_rbt::*;
use expectrl::{Expect, Session};
use tests::transcript::{self, Step};

/// The examples, each checked by a test below; `every_example_has_a_test` keeps the list whole.
const EXAMPLES: &[&str] = &[
    "exec_args",
    "malloc_sizes",
    "offcpu",
    "on_cpu",
    "opens",
    "sched_events",
    "sched_weight",
    "syscalls_by_process",
    "write_sizes",
];

/// One test at a time: the REPL session counts syscalls by process name, which another test's
/// workload would add to.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `rbt -c "WORKLOAD STEPS" examples/NAME.rbt`, as root; returns its stdout after checking that it
/// succeeded.
fn run_example(name: &str, steps: &str) -> String {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require_bpf();
    let script = workspace().join("examples").join(format!("{name}.rbt"));
    let command = format!("{} {steps}", workload().display());
    let mut rbt = Command::new(rbt());
    // cargo points the loader at its toolchain's libraries; a newcomer's command has no such path.
    rbt.arg("-c").arg(&command).arg(&script).env_remove("LD_LIBRARY_PATH");
    let out = tests::run_with_limit(&mut rbt, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let stdout = text(&out.stdout);
    assert!(
        out.status.is_some_and(|status| status.success()),
        "{name}: rbt failed ({:?}):\n{}\n{stdout}",
        out.status,
        text(&out.stderr)
    );
    stdout
}

/// The count printed on the line `KEY: N`, if there is one.
fn count_of(output: &str, key: &str) -> Option<u64> {
    output.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(": ")?.parse().ok())
}

/// The rows of the histogram printed after the line `MAP: `: each bucket (e.g. `[1K, 2K)`) with
/// its count.
fn histogram(output: &str, map: &str) -> Vec<(String, u64)> {
    let mut lines = output.lines().skip_while(|line| *line != format!("{map}: ")).skip(1);
    let rows = lines.by_ref().take_while(|line| line.starts_with('['));
    rows.filter_map(|row| {
        let (bucket, rest) = row.split_at(row.find(')').or_else(|| row.find(']'))? + 1);
        Some((bucket.to_owned(), rest.split_whitespace().next()?.parse().ok()?))
    })
    .collect()
}

/// The sum of the counts of `map`'s histogram from the bucket `from` on.
fn count_from(output: &str, map: &str, from: &str) -> u64 {
    histogram(output, map).iter().skip_while(|(bucket, _)| bucket != from).map(|(_, count)| count).sum()
}

#[test]
fn every_example_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/ exists")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rbt"))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES, "add a test (and a line in EXAMPLES) for each new example");
}

#[test]
fn write_sizes_prints_the_exact_histogram_and_sum() {
    let out = run_example("write_sizes", "write 100 3 write 5000 2");
    let bar = |n: usize| format!("|{}{}|", "@".repeat(n), " ".repeat(52 - n));
    let mut expected = String::from("Attaching 1 probe...\n\n\n@bytes: 10300\n@sizes: \n");
    expected.push_str(&format!("[64, 128)              3 {}\n", bar(52)));
    for bucket in ["[128, 256)", "[256, 512)", "[512, 1K)", "[1K, 2K)", "[2K, 4K)"] {
        expected.push_str(&format!("{bucket:<22} 0 {}\n", bar(0)));
    }
    expected.push_str(&format!("[4K, 8K)               2 {}\n\n", bar(34)));
    assert_eq!(out, expected);
}

#[test]
fn exec_args_prints_each_argument_list() {
    let out = run_example("exec_args", "exec /bin/true hello there");
    let expected = format!(
        "Attaching 1 probe...\n{} exec /bin/true hello there\n/bin/true hello there\n\n\n",
        workload().display()
    );
    assert_eq!(out, expected);
}

#[test]
fn opens_shows_every_open_of_the_command() {
    let path = std::env::temp_dir().join(format!("rbt-example-missing-{}", std::process::id()));
    let out = run_example("opens", &format!("open {} 2", path.display()));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Attaching 1 probe..."));
    // The loader's opens come first (which libraries depends on the machine), then the steps'. (A
    // path in a page not yet read in prints empty, as under bpftrace: BPF cannot fault it in.)
    let opens: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    assert!(opens.iter().all(|line| line.starts_with("rbt-workload ")), "{out}");
    let wanted = format!("rbt-workload {}", path.display());
    assert_eq!(opens.iter().filter(|line| **line == wanted).count(), 2, "{out}");
    assert!(opens.iter().any(|line| line.ends_with("/libc.so.6")), "{out}");
}

#[test]
fn syscalls_by_process_counts_the_command() {
    let out = run_example("syscalls_by_process", "getppid 50");
    let count = count_of(&out, "@[rbt-workload]").unwrap_or_else(|| panic!("no count for the workload:\n{out}"));
    assert!(count >= 50, "{out}");
}

#[test]
fn sched_events_counts_each_scheduler_tracepoint() {
    let out = run_example("sched_events", "nap 1000 3");
    assert!(out.starts_with("Attaching ") && out.contains(" probes...\n"), "{out}");
    for tracepoint in ["sched_switch", "sched_process_exec", "sched_process_exit"] {
        let key = format!("@[tracepoint:sched:{tracepoint}]");
        assert!(count_of(&out, &key).is_some_and(|n| n > 0), "no {key}:\n{out}");
    }
}

#[test]
fn on_cpu_samples_a_spinning_command() {
    let out = run_example("on_cpu", "spin 500");
    // 99 samples a second on its CPU for half a second, fewer where the machine is busy.
    let count = count_of(&out, "@[rbt-workload]").unwrap_or_else(|| panic!("no samples of the workload:\n{out}"));
    assert!((5..=60).contains(&count), "{out}");
}

#[test]
fn sched_weight_reads_curtask_through_btf() {
    let out = run_example("sched_weight", "nap 10000 5");
    let nice = our_nice();
    let line = out.lines().find(|line| line.contains(", rbt-workload]: ")).unwrap_or_else(|| panic!("{out}"));
    let (weight, count) =
        line.strip_prefix("@[").and_then(|l| l.split_once(", rbt-workload]: ")).expect("@[W, comm]: N");
    let (weight, count): (u64, u64) = (weight.parse().expect("a weight"), count.parse().expect("a count"));
    // Nice 0 weighs 1024 << 10 (SCHED_FIXEDPOINT_SHIFT) on 64-bit kernels.
    assert!(if nice == 0 { weight == 1_048_576 } else { weight > 0 }, "nice {nice}: {out}");
    // Each nap leaves the CPU once.
    assert!(count >= 5, "{out}");
}

#[test]
fn malloc_sizes_sees_the_commands_mallocs() {
    let out = run_example("malloc_sizes", "malloc 1234 5");
    // Rust's own allocations go through malloc too, some of them of 1K to 2K.
    let in_bucket = histogram(&out, "@bytes").into_iter().find(|(bucket, _)| bucket == "[1K, 2K)");
    assert!(in_bucket.is_some_and(|(_, count)| count >= 5), "{out}");
}

#[test]
fn offcpu_histogram_shows_the_commands_naps() {
    let out = run_example("offcpu", "nap 10000 10");
    // Each 10 ms nap is off the CPU for 10 ms or (on a busy machine) longer. On a loaded machine
    // one switch in a few runs goes unrecorded (seen about once in 100 naps, under five test
    // suites at once), so most naps must show, not every one.
    assert!(count_from(&out, "@offcpu_us[rbt-workload]", "[8K, 16K)") >= 8, "{out}");
    assert!(!out.contains("@start["), "END clears the stamps:\n{out}");
}

#[test]
fn the_repl_session_replays() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    require_bpf();
    let path = workspace().join("examples/repl_session.txt");
    let steps = transcript::parse(&std::fs::read_to_string(&path).expect("read the transcript")).expect("a transcript");
    let dir = std::env::temp_dir().join(format!("rbt-example-repl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let mut command = Command::new(rbt());
    command.current_dir(&dir).env("XDG_STATE_HOME", &dir).env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("rbt starts in a pty");
    session.get_process_mut().set_window_size(200, 50).expect("window size");
    session.set_expect_timeout(Some(Duration::from_secs(20)));
    let expect = |session: &mut expectrl::session::OsSession, text: &str| {
        if let Err(e) = session.expect(text) {
            panic!("{}: waiting for {text:?}: {e}", path.display());
        }
    };
    for step in &steps {
        match step {
            Step::Entry(lines) => {
                expect(&mut session, "rbt> ");
                for (index, line) in lines.iter().enumerate() {
                    if index > 0 {
                        expect(&mut session, "...> ");
                    }
                    session.send(format!("{line}\r")).expect("type a line");
                }
            }
            Step::Elsewhere(words) => run_elsewhere(words),
            // Blank lines cannot be told apart in a terminal's stream; the lines around them can.
            Step::Output(line) if line.is_empty() => {}
            Step::Output(line) => expect(&mut session, line),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.get_process().is_alive().unwrap_or(false) {
        assert!(Instant::now() < deadline, "rbt is still running after the session's last entry");
        std::thread::sleep(Duration::from_millis(50));
    }
    let saved = std::fs::read_to_string(dir.join("session.rbt")).expect(":save wrote session.rbt");
    assert!(saved.contains("i:ms:100 /@ticks < @limit/"), "{saved}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a command the transcript runs "in another terminal": only the workload, by its name.
fn run_elsewhere(words: &[String]) {
    let (program, args) = words.split_first().expect("a command");
    assert_eq!(program, "rbt-workload", "the transcript runs only the workload beside the session");
    let status = Command::new(workload()).args(args).status().expect("the workload runs");
    assert!(status.success(), "{words:?}: {status}");
}

/// This process's nice value (which the workload inherits), from `/proc/self/stat`: the 17th
/// field after the parenthesised command name.
fn our_nice() -> i64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let fields = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    fields.split_whitespace().nth(16).and_then(|nice| nice.parse().ok()).expect("a nice value")
}
