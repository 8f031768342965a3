//! User stacks of code without frame pointers, end to end: a C program built with
//! `-O2 -fomit-frame-pointer` and a Rust one built with `-C force-frame-pointers=no`
//! (`tests/data/unwind/`), each a call chain five deep that ends in a nanosleep, a malloc and a
//! raw syscall, traced with `-c`. Every stack names the whole chain, through Debian's libc (built
//! without frame pointers), down to `main`, `__libc_start_call_main` and `_start`, unwound in
//! the probe program from the binaries' `.eh_frame`; the same stacks print folded; and
//! `RBT_USTACK_UNWIND=fp` gives the kernel's frame-pointer walk, which stops in libc. A process
//! that lives under a millisecond, gone before rbt can read its `/proc/PID/maps`, still prints
//! symbols, from the kernel's records of its mappings.

mod common_rbt;

use std::path::{Path, PathBuf};
use std::process::Command;

use common_rbt::{rbt, require_bpf};

/// Rounds of the chain each program runs (2 ms naps).
const ROUNDS: u32 = 40;

/// Builds `tests/data/unwind/NAME` into a directory of its own; returns the binary.
fn build(name: &str) -> PathBuf {
    let source = tests::workspace().join("tests/data/unwind").join(name);
    let dir = std::env::temp_dir().join(format!("rbt-unwind-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make the build directory");
    let binary = dir.join(name.replace('.', "_"));
    let mut command = if name.ends_with(".c") {
        let mut c = Command::new("gcc");
        c.args(["-O2", "-fomit-frame-pointer", "-o"]).arg(&binary).arg(&source);
        c
    } else {
        let mut c = Command::new("rustc");
        c.args(["-O", "-C", "force-frame-pointers=no", "-o"]).arg(&binary).arg(&source);
        c
    };
    let out = command.output().unwrap_or_else(|e| panic!("cannot run the compiler for {name}: {e}"));
    assert!(out.status.success(), "building {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    binary
}

/// Runs rbt with `program` (one map keyed by `ustack`) over `-c 'binary ROUNDS'` in folded
/// output; returns each stack as its frames' names, outermost first, with its count.
fn folded_stacks(binary: &Path, program: &str, env: &[(&str, &str)]) -> Vec<(Vec<String>, u64)> {
    folded_stacks_with(binary, &format!(" {ROUNDS}"), program, env)
}

/// As [`folded_stacks`], with `args` after the binary in `-c`.
fn folded_stacks_of(binary: &Path, args: &str, program: &str) -> Vec<(Vec<String>, u64)> {
    folded_stacks_with(binary, args, program, &[])
}

fn folded_stacks_with(binary: &Path, args: &str, program: &str, env: &[(&str, &str)]) -> Vec<(Vec<String>, u64)> {
    let out = Command::new(rbt())
        .args(["-f", "folded", "-e", program, "-c"])
        .arg(format!("{}{args}", binary.display()))
        .envs(env.iter().copied())
        .output()
        .expect("rbt runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "rbt failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    // `-f folded` prints a map's stacks as `frame;frame;... count` lines (one map here).
    stdout
        .lines()
        .filter_map(|line| {
            let (frames, count) = line.rsplit_once(' ')?;
            let count = count.parse().ok()?;
            Some((frames.split(';').map(|f| f.split('+').next().unwrap_or(f).to_owned()).collect(), count))
        })
        .collect()
}

/// The stack with the most samples, and the share of samples it holds.
fn dominant(stacks: &[(Vec<String>, u64)]) -> (Vec<String>, f64) {
    let total: u64 = stacks.iter().map(|(_, n)| n).sum();
    let (frames, n) = stacks.iter().max_by_key(|(_, n)| *n).cloned().unwrap_or_default();
    (frames, if total == 0 { 0.0 } else { n as f64 / total as f64 })
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The frames below `main` of a program started by Debian's libc.
const LIBC_START: [&str; 3] = ["_start", "__libc_start_main", "__libc_start_call_main"];

fn expect_chain(what: &str, stacks: &[(Vec<String>, u64)], expected: &[String]) {
    let (frames, share) = dominant(stacks);
    assert_eq!(frames, expected, "{what}: the most sampled stack; all: {stacks:#?}");
    // Only a process's first stacks, before rbt has read its mappings, may be partial.
    assert!(share >= 0.8, "{what}: only {:.0}% of samples are the whole stack: {stacks:#?}", share * 100.0);
}

#[test]
fn c_without_frame_pointers_unwinds_through_libc() {
    require_bpf();
    let binary = build("chain.c");
    let chain: Vec<String> = LIBC_START
        .iter()
        .chain(&["main", "level1", "level2", "level3", "level4", "level5"])
        .map(|s| (*s).to_owned())
        .collect();
    let with = |leaf: &[&str]| chain.iter().cloned().chain(names(leaf)).collect::<Vec<_>>();

    let sleep = folded_stacks(
        &binary,
        "tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { @[ustack] = count(); }",
        &[],
    );
    expect_chain("nanosleep", &sleep, &with(&["nanosleep", "clock_nanosleep"]));
    let malloc = folded_stacks(&binary, "uprobe:libc:malloc /pid == cpid/ { @[ustack] = count(); }", &[]);
    expect_chain("malloc", &malloc, &with(&["malloc"]));
    let syscall =
        folded_stacks(&binary, "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }", &[]);
    expect_chain("syscall", &syscall, &with(&["syscall"]));

    // The kernel's frame-pointer walk, as bpftrace's, loses the chain in libc.
    let fp = folded_stacks(
        &binary,
        "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }",
        &[("RBT_USTACK_UNWIND", "fp")],
    );
    let (frames, _) = dominant(&fp);
    assert!(!frames.iter().any(|f| f == "level3"), "frame pointers cannot walk this chain: {fp:#?}");
}

#[test]
fn rust_without_frame_pointers_unwinds_to_lang_start() {
    require_bpf();
    let binary = build("chain.rs");
    let chain: Vec<String> = LIBC_START
        .iter()
        .chain(&[
            "main",
            "std::rt::lang_start_internal",
            "std::rt::lang_start::{{closure}}",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "chain::main",
            "chain::level1",
            "chain::level2",
            "chain::level3",
            "chain::level4",
            "chain::level5",
        ])
        .map(|s| (*s).to_owned())
        .collect();
    let syscall =
        folded_stacks(&binary, "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }", &[]);
    expect_chain("getppid", &syscall, &chain.iter().cloned().chain(names(&["getppid"])).collect::<Vec<_>>());
    let sleep = folded_stacks(
        &binary,
        "tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { @[ustack] = count(); }",
        &[],
    );
    let expected: Vec<String> =
        chain.iter().cloned().chain(names(&["std::thread::functions::sleep", "clock_nanosleep"])).collect();
    expect_chain("sleep", &sleep, &expected);
}

#[test]
fn a_process_gone_before_it_is_read_still_prints_symbols() {
    require_bpf();
    let binary = build("short.c");
    for run in 0..20 {
        let stacks = folded_stacks_of(&binary, "", "uprobe:libc:malloc /pid == cpid/ { @[ustack] = count(); }");
        let total: u64 = stacks.iter().map(|(_, n)| n).sum();
        assert!(total >= 50, "run {run}: {total} mallocs seen: {stacks:#?}");
        for (frames, _) in &stacks {
            assert_eq!(frames.last().map(String::as_str), Some("malloc"), "run {run}: {stacks:#?}");
            assert!(!frames.iter().any(|f| f.starts_with("0x")), "run {run}: an address without a symbol: {stacks:#?}");
        }
    }
}

#[test]
fn a_bad_unwind_setting_is_an_error() {
    let out = Command::new(rbt())
        .args(["-e", "BEGIN { exit(); }"])
        .env("RBT_USTACK_UNWIND", "sideways")
        .output()
        .expect("rbt runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RBT_USTACK_UNWIND") && stderr.contains("auto, fp or dwarf"), "{stderr}");
}
