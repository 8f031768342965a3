//! The pprof export read by the tool people open it with: a file written from a synthetic off-CPU
//! profile is read by the real `go tool pprof` (Debian's `golang-go`, which `.ci/run` installs;
//! without `go` on PATH these tests fail with that reason, they never skip). Kernel tier, for the
//! tool it needs.

mod common_export;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common_export::{offcpu_profile, scratch_dir};
use export::write_pprof;
use tests::run_with_limit;

/// Runs `go tool pprof ARGS FILE` and returns its standard output; panics with the reason when
/// `go` is missing or pprof fails.
fn go_tool_pprof(args: &[&str], file: &Path, scratch: &Path) -> String {
    let mut command = Command::new("go");
    command
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        // pprof keeps fetched profiles under $PPROF_TMPDIR; nothing is fetched, but keep it here.
        .env("PPROF_TMPDIR", scratch)
        .env("HOME", scratch);
    let captured = match run_with_limit(&mut command, Duration::from_secs(120)) {
        Ok(captured) => captured,
        Err(error) => panic!(
            "`go tool pprof` could not run ({error}); these tests need Go's pprof: \
             `apt-get install -y golang-go` (.ci/run installs it)"
        ),
    };
    let stdout = String::from_utf8_lossy(&captured.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&captured.stderr);
    match captured.status {
        Some(status) if status.success() => {}
        Some(status) => panic!("`go tool pprof {args:?}` failed ({status}):\n{stderr}\n{stdout}"),
        None => panic!("`go tool pprof {args:?}` ran past two minutes:\n{stderr}"),
    }
    assert!(!stderr.to_lowercase().contains("error"), "pprof complained:\n{stderr}");
    stdout
}

fn write_pprof_file(scratch: &Path) -> PathBuf {
    let path = scratch.join("offcpu.pb.gz");
    let file = std::fs::File::create(&path).expect("create the pprof file");
    write_pprof(&offcpu_profile(), std::io::BufWriter::new(file)).expect("write the pprof file");
    path
}

#[test]
fn go_tool_pprof_top_shows_functions_and_values() {
    let scratch = scratch_dir("top");
    let file = write_pprof_file(&scratch);
    let top = go_tool_pprof(&["-top", "-unit=ns", "-nodecount=100"], &file, &scratch);
    assert!(top.contains("Type: offcpu"), "{top}");
    assert!(top.contains("Duration: 5s"), "{top}");
    // Flat time sits on the leaves (all `schedule`); cumulative time on every frame below.
    let row = |name: &str| -> (String, String) {
        // "      flat  flat%   sum%        cum   cum%" then the name, which may have words.
        let words: Vec<Vec<&str>> = top.lines().map(|line| line.split_whitespace().collect()).collect();
        let words = words
            .iter()
            .find(|words| words.len() > 5 && words[5..].join(" ") == name)
            .unwrap_or_else(|| panic!("no row for {name} in:\n{top}"));
        (words[0].to_string(), words[3].to_string())
    };
    // pprof names the first mapping, by its base name, as the profile's main binary.
    assert!(top.contains("File: rbt-export-app\nBuild ID: 5f0e1d2c3b4a5968\n"), "{top}");
    assert!(top.contains("Off-CPU time\ntracepoint:sched:sched_switch {"), "the comments: {top}");
    assert_eq!(row("schedule"), ("4750000000ns".to_string(), "4750000000ns".to_string()), "{top}");
    assert_eq!(row("serve_requests"), ("0".to_string(), "3500000000ns".to_string()), "{top}");
    assert_eq!(row("wait_for_client (inline)"), ("0".to_string(), "3500000000ns".to_string()), "{top}");
    assert_eq!(row("clock_nanosleep"), ("0".to_string(), "1000000000ns".to_string()), "{top}");
    assert_eq!(row("exportapp"), ("0".to_string(), "3500000000ns".to_string()), "{top}");
    assert_eq!(row("worker_thread"), ("0".to_string(), "250000000ns".to_string()), "{top}");
    assert_eq!(row("main"), ("0".to_string(), "4500000000ns".to_string()), "{top}");
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn go_tool_pprof_traces_are_leaf_first_with_labels() {
    let scratch = scratch_dir("traces");
    let file = write_pprof_file(&scratch);
    let traces = go_tool_pprof(&["-traces"], &file, &scratch);
    // The two exportapp samples were merged into one of 3.5s; -traces prints leaf first, and the
    // function inlined into serve_requests comes before it.
    let expected = [
        "comm: exportapp",
        "pid: 4242",
        "3.50s schedule",
        "__sys_accept4",
        "do_syscall_64",
        "__libc_accept",
        "wait_for_client (inline)",
        "serve_requests",
        "main",
        "exportapp",
    ];
    // Each trace is a block between dashed rules; compare its lines with spaces squeezed.
    let blocks: Vec<Vec<String>> = traces
        .split("-----------+")
        .map(|block| {
            block
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|line| !line.is_empty())
                .collect()
        })
        .collect();
    let block = blocks
        .iter()
        .find(|lines| lines.iter().any(|line| line == "comm: exportapp"))
        .unwrap_or_else(|| panic!("no exportapp trace in:\n{traces}"));
    let block: Vec<&str> = block.iter().map(String::as_str).filter(|line| !line.starts_with('-')).collect();
    assert_eq!(block, expected, "in:\n{traces}");
    let kworker = blocks
        .iter()
        .find(|lines| lines.iter().any(|line| line == "comm: kworker/1:0"))
        .unwrap_or_else(|| panic!("no kworker trace in:\n{traces}"));
    assert!(kworker.iter().any(|line| line == "pid: 12"), "{traces}");
    std::fs::remove_dir_all(&scratch).ok();
}
