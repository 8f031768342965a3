//! The standard library tools (`rbt -t NAME`) on workloads whose behaviour is known: a thread
//! that naps 2 ms 100 times shows about 200 ms off-CPU under the nanosleep stack; a thread blocked
//! on a pipe is woken by the writer, whose stack shows as the waker; a CPU-bound loop dominates
//! `profile`; fsync'd writes show up in `biolatency`; and so on for each tool.
//!
//! Each test starts the workload first, with a nap long enough for rbt to attach, passes its pid
//! to the tool, waits for the workload to exit and then stops rbt with SIGINT, as a user would.

mod common_rbt;

use common_rbt::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The tools run one at a time: each measures the whole machine (block I/O, wakeups), which a
/// neighbouring test's workload would disturb.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long the workload naps before its measured steps, so rbt has attached by then.
const ATTACH_NAP_US: &str = "1500000";

struct Traced {
    stdout: String,
    stderr: String,
}

/// Runs `rbt -t TOOL ARGS` while the workload runs `steps` (after the attach nap); `args` may use
/// `{pid}` for the workload's pid.
fn trace(tool: &str, args: &[&str], steps: &str) -> Traced {
    require_bpf();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut workload = Command::new(workload())
        .args(["nap", ATTACH_NAP_US, "1"])
        .args(steps.split_whitespace())
        .spawn()
        .expect("workload starts");
    let pid = workload.id().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("{pid}", &pid)).collect();
    let mut rbt = Command::new(rbt())
        .args(["-t", tool])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rbt starts");
    let mut stdout = BufReader::new(rbt.stdout.take().expect("piped"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("rbt prints");
    assert!(first.starts_with("Attaching"), "{tool}: {first}");
    let status = workload.wait().expect("workload runs");
    assert!(status.success(), "workload failed");
    std::thread::sleep(Duration::from_millis(200));
    stop(&mut rbt);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read output");
    let mut stderr = String::new();
    rbt.stderr.take().expect("piped").read_to_string(&mut stderr).expect("read stderr");
    let status = rbt.wait().expect("rbt exits");
    assert!(status.success(), "{tool}: rbt exited with {status}: {stderr}");
    Traced { stdout: first + &rest, stderr }
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// The entries of a map printed in text form: (key text, value), for maps whose values are
/// numbers, e.g. `@x[\n    a+1\n, comm]: 5`.
fn entries(output: &str, map: &str) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut rest = output;
    let open = format!("{map}[");
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find("]: ") else { break };
        let key = after[..end].to_owned();
        let value: String = after[end + 3..].chars().take_while(char::is_ascii_digit).collect();
        found.push((key, value.parse().unwrap_or(0)));
        rest = &after[end..];
    }
    found
}

/// Total of a histogram's bucket counts, e.g. `[16, 32)   5 |@@  |` lines after `@usecs:`.
fn histogram_total(output: &str, map: &str) -> u64 {
    let Some(start) = output.find(&format!("{map}: \n")) else { return 0 };
    output[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('[') || l.starts_with('('))
        .filter_map(|l| {
            l.split(')').nth(1).and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn offcputime_shows_naps_under_the_nanosleep_stack() {
    let out = trace("offcputime", &["{pid}"], "nap 2000 100");
    let naps: Vec<(String, u64)> =
        entries(&out.stdout, "@offcpu_us").into_iter().filter(|(k, _)| k.ends_with(", rbt-workload")).collect();
    let (stack, micros) = naps.iter().max_by_key(|(_, v)| *v).cloned().unwrap_or_default();
    // 100 naps of 2 ms, plus timer slack and the wait to run again on a busy machine.
    assert!((190_000..=1_500_000).contains(&micros), "off-CPU {micros} us under {stack}\n{}", out.stdout);
    assert!(stack.contains("nanosleep"), "the biggest wait is not under nanosleep: {stack}");
}

#[test]
fn offwaketime_names_the_pipe_writer_as_the_waker() {
    let out = trace("offwaketime", &["{pid}"], "pipe 50 2000");
    let woken: Vec<(String, u64)> = entries(&out.stdout, "@offwake_us")
        .into_iter()
        .filter(|(k, _)| k.starts_with("rbt-workload, ") && k.contains("pipe_write") && k.contains("pipe_read"))
        .collect();
    let total: u64 = woken.iter().map(|(_, v)| v).sum();
    assert!(
        (90_000..=1_500_000).contains(&total),
        "blocked {total} us on the pipe, woken by the writer\n{}",
        out.stdout
    );
}

#[test]
fn profile_is_dominated_by_a_spinning_loop() {
    let out = trace("profile", &["{pid}"], "spin 1000");
    let samples: u64 =
        entries(&out.stdout, "@samples").iter().filter(|(k, _)| k.ends_with(", rbt-workload")).map(|(_, v)| v).sum();
    // 99 Hz for one second of spinning, less when the machine is busy.
    assert!((30..=110).contains(&samples), "{samples} samples of the spinning workload\n{}", out.stdout);
}

#[test]
fn biolatency_sees_fsynced_writes() {
    let path = workspace().join("target/rbt-biolatency-test.tmp");
    let out = trace("biolatency", &[], &format!("fsync {} 20", path.display()));
    let total = histogram_total(&out.stdout, "@usecs");
    assert!(total >= 20, "{total} block I/Os for 20 fsync'd writes\n{}", out.stdout);
}

#[test]
fn runqlat_counts_every_wakeup() {
    let out = trace("runqlat", &["{pid}"], "nap 1000 50");
    let total = histogram_total(&out.stdout, "@usecs");
    // A wakeup in an interrupt that arrives while a BPF program runs on that CPU is skipped by
    // the kernel (rbt warns about those on stderr), so a few of the 51 may be missing.
    assert!((35..=60).contains(&total), "{total} wakeups for 50 naps\n{}{}", out.stdout, out.stderr);
}

#[test]
fn syscount_counts_exactly() {
    let out = trace("syscount", &["{pid}"], "getppid 1000");
    // getppid is system call 110 on x86-64.
    assert!(out.stdout.contains("\n@syscalls[110]: 1000\n"), "{}", out.stdout);
}

#[test]
fn opensnoop_shows_failures_and_descriptors() {
    let out = trace("opensnoop", &["{pid}"], "open /nonexistent-rbt-test 3 open /etc/hostname 2");
    let failed = out
        .stdout
        .lines()
        .filter(|l| l.contains("rbt-workload") && l.ends_with("  -1   2 /nonexistent-rbt-test"))
        .count();
    let opened = out.stdout.lines().filter(|l| l.contains("rbt-workload") && l.ends_with("   0 /etc/hostname")).count();
    assert_eq!((failed, opened), (3, 2), "{}", out.stdout);
}

#[test]
fn execsnoop_sees_the_exec() {
    require_bpf();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rbt = Command::new(rbt())
        .args(["-t", "execsnoop"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rbt starts");
    let mut stdout = BufReader::new(rbt.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("attaching");
    line.clear();
    stdout.read_line(&mut line).expect("header");
    assert_eq!(line, "TIME(ms)   PID     COMM             FILE\n");
    let status = Command::new("/bin/true").status().expect("true runs");
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    stop(&mut rbt);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("output");
    let _ = rbt.wait();
    assert!(rest.lines().any(|l| l.contains(" true ") && l.ends_with(" /bin/true")), "{rest}");
}

#[test]
fn lockstat_futex_sees_a_contended_mutex() {
    let out = trace("lockstat_futex", &["{pid}"], "mutex 30 2000");
    let total = histogram_total(&out.stdout, "@wait_hist_ns");
    assert!(total >= 25, "{total} futex waits for 30 contended locks\n{}", out.stdout);
    let waited: u64 =
        entries(&out.stdout, "@wait_ns").iter().filter(|(k, _)| k.ends_with(", rbt-workload")).map(|(_, v)| v).sum();
    assert!(waited >= 25 * 1_000_000, "{waited} ns waited for 30 locks held 2 ms\n{}", out.stdout);
}

#[test]
fn lockstat_uses_the_lock_tracepoints_where_present() {
    // This kernel has lock:contention_begin, so no fallback; a contended pipe makes kernel
    // mutex waits, which may or may not happen on an idle machine, so only the run is checked.
    let out = trace("lockstat", &["{pid}"], "pipe 20 1000");
    assert!(!out.stderr.contains("running lockstat_futex"), "{}", out.stderr);
    assert!(out.stdout.starts_with("Attaching 3 probes...\n"), "{}", out.stdout);
}

#[test]
fn slowsched_prints_the_stack_of_long_d_state_waits() {
    let path = workspace().join("target/rbt-slowsched-test.tmp");
    let out = trace("slowsched", &["1"], &format!("fsync {} 20", path.display()));
    let lines: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("rbt-workload (pid ")).collect();
    assert!(!lines.is_empty(), "no D-state wait over 1 us for 20 fsyncs\n{}", out.stdout);
    assert!(lines[0].contains("in state D, blocked at:"), "{}", lines[0]);
}

#[test]
fn offcputime_exports_a_flame_graph_and_a_profile_pprof_reads() {
    let dir = workspace().join("target");
    let (svg, pprof) = (dir.join("rbt-offcpu-test.svg"), dir.join("rbt-offcpu-test.pb.gz"));
    let (svg_arg, pprof_arg) = (svg.display().to_string(), pprof.display().to_string());
    let out = trace("offcputime", &["--flamegraph", &svg_arg, "--pprof", &pprof_arg, "{pid}"], "nap 2000 50");
    assert!(out.stderr.is_empty() || !out.stderr.contains("ERROR"), "{}", out.stderr);
    let svg_text = std::fs::read_to_string(&svg).expect("the flame graph was written");
    assert!(svg_text.starts_with("<?xml") && svg_text.contains("</svg>"), "not an SVG");
    assert!(
        svg_text.contains("nanosleep") && svg_text.contains("rbt-workload"),
        "the naps are missing from the flame graph"
    );
    let top = Command::new("go").args(["tool", "pprof", "-top", &pprof_arg]).output().unwrap_or_else(|e| {
        panic!("cannot run `go tool pprof` ({e}); apt-get install -y golang-go (.ci/run installs it)")
    });
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "go tool pprof failed: {}", String::from_utf8_lossy(&top.stderr));
    assert!(text.contains("Type: offcpu") && text.contains("nanosleep"), "{text}");
}

#[test]
fn notsched_splits_each_long_gap_into_blocked_and_waiting_for_a_cpu() {
    // 20 naps of 2 ms: each one a gap of at least 2000 us off the CPU, in state S.
    let out = trace("notsched", &["{pid}", "1500"], "nap 2000 20");
    let gaps: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("rbt-workload (tid ")).collect();
    assert!(gaps.len() >= 15, "{} gaps of 20 naps of 2 ms:\n{}", gaps.len(), out.stdout);
    for gap in &gaps {
        let us: u64 = gap
            .split("was not on a CPU for ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(us >= 1500, "a gap under the threshold: {gap}");
        assert!(gap.contains("left in state S, blocked "), "{gap}");
    }
    assert!(out.stdout.contains("do_nanosleep"), "no nanosleep in the kernel stacks:\n{}", out.stdout);
    assert!(out.stdout.contains("@gaps_ms:"), "no histogram of gaps:\n{}", out.stdout);
}
