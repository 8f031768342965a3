//! The profile exports read by the tools people open them with: a pprof file written from a
//! synthetic off-CPU profile is read by the real `go tool pprof` (Debian's `golang-go`; without
//! `go` on PATH these tests fail with that reason, they never skip), and the folded and SVG
//! files are written beside it and checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use export::{
    write_flame_graph, write_folded, write_pprof, FlameGraphOptions, FoldedOptions, Frame, Label, Module, Palette,
    Profile, Sample, ValueType,
};
use tests::run_with_limit;

/// `@[kstack, ustack, comm] = sum(nsecs - $t)` after a few seconds, symbolized.
fn offcpu_profile() -> Profile {
    let app = "/usr/bin/rbt-export-app";
    let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let kernel = "[kernel.kallsyms]";
    let user = |frames: &[(&str, u64)], module: &str| -> Vec<Frame> {
        frames.iter().map(|&(name, address)| Frame::new(name).in_module(module).at_address(address)).collect()
    };
    let mut app_main = user(&[("main", 0x1100)], app);
    app_main.push(Frame::new("serve_requests").in_module(app).at_address(0x1280).at_line("server.c", 42));
    app_main.push(Frame::new("wait_for_client").in_module(app).at_address(0x1280).at_line("net.h", 7).inlined());
    app_main.extend(user(&[("__libc_accept", 0x7f00_0001_0000)], libc));
    let sample = |comm: &str, pid: u32, user: Vec<Frame>, kernel_frames: &[&str], value: u64| Sample {
        leading: vec![comm.to_string()],
        user,
        kernel: kernel_frames
            .iter()
            .zip(0xffff_ffff_8100_0000u64..)
            .map(|(name, address)| Frame::new(*name).in_module(kernel).at_address(address))
            .collect(),
        value,
        labels: vec![Label::pid(pid), Label::comm(comm)],
    };
    Profile {
        title: "Off-CPU time".to_string(),
        script: Some("tracepoint:sched:sched_switch { @[kstack, ustack, comm] = sum(nsecs - $t); }".to_string()),
        sample_type: ValueType::new("offcpu", "nanoseconds"),
        period: None,
        time_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 5_000_000_000,
        modules: vec![Module { path: app.to_string(), build_id: Some("5f0e1d2c3b4a5968".to_string()) }],
        samples: vec![
            sample("exportapp", 4242, app_main.clone(), &["do_syscall_64", "__sys_accept4", "schedule"], 3_000_000_000),
            sample("exportapp", 4242, app_main, &["do_syscall_64", "__sys_accept4", "schedule"], 500_000_000),
            sample(
                "exportsleep",
                77,
                user(&[("main", 0x2000), ("clock_nanosleep", 0x7f00_0002_0000)], libc),
                &["do_syscall_64", "hrtimer_nanosleep", "schedule"],
                1_000_000_000,
            ),
            sample("kworker/1:0", 12, Vec::new(), &["worker_thread", "schedule"], 250_000_000),
        ],
    }
}

/// A directory of the test's own (tests run in parallel in one process).
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbt-export-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

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

#[test]
fn folded_and_flame_graph_files() {
    let scratch = scratch_dir("folded");
    let profile = offcpu_profile();
    let folded_path = scratch.join("offcpu.folded");
    write_folded(&profile, &FoldedOptions::default(), std::fs::File::create(&folded_path).expect("create"))
        .expect("write the folded stacks");
    assert_eq!(
        std::fs::read_to_string(&folded_path).expect("read back"),
        "exportapp;main;serve_requests;wait_for_client;__libc_accept;do_syscall_64;__sys_accept4;schedule 3500000000\n\
         exportsleep;main;clock_nanosleep;do_syscall_64;hrtimer_nanosleep;schedule 1000000000\n\
         kworker/1:0;worker_thread;schedule 250000000\n"
    );

    let svg_path = scratch.join("offcpu.svg");
    let options = FlameGraphOptions { palette: Palette::Io, ..FlameGraphOptions::default() };
    write_flame_graph(&profile, &options, std::fs::File::create(&svg_path).expect("create"))
        .expect("draw the flame graph");
    let svg = std::fs::read_to_string(&svg_path).expect("read back");
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">Off-CPU time (ns)</text>"), "no title");
    for name in
        ["exportapp", "serve_requests", "wait_for_client", "clock_nanosleep", "hrtimer_nanosleep", "worker_thread"]
    {
        assert!(svg.contains(&format!("<title>{name} (")), "no frame {name}");
    }
    assert!(svg.contains("<title>all (4,750,000,000 ns, 100%)</title>"));
    std::fs::remove_dir_all(&scratch).ok();
}
