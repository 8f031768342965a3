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
mod common_unwind;

use std::path::Path;
use std::process::Command;

use common_rbt::{rbt, require_bpf};
use common_unwind::*;

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
    parse_folded(&stdout)
}

fn expect_chain(what: &str, stacks: &[(Vec<String>, u64)], expected: &[String]) {
    if let Err(e) = check_chain(what, stacks, expected) {
        panic!("{e}");
    }
}

#[test]
fn c_without_frame_pointers_unwinds_through_libc() {
    require_bpf();
    let binary = build("chain.c");
    let with = c_chain;

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
    // A second `ustack` in the probe is the same stack (the probe unwinds it once).
    let twice = folded_stacks(
        &binary,
        "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); if (@[ustack] > 1000000) { exit(); } }",
        &[],
    );
    expect_chain("two sites", &twice, &with(&["syscall"]));

    // The same stack in pprof, as `go tool pprof` reads it (leaf first).
    let scratch = std::env::temp_dir().join(format!("rbt-unwind-pprof-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("make a scratch directory");
    let profile = scratch.join("chain.pb.gz");
    let out = Command::new(rbt())
        .arg("--pprof")
        .arg(&profile)
        .args(["-e", "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }", "-c"])
        .arg(format!("{} {ROUNDS}", binary.display()))
        .output()
        .expect("rbt runs");
    assert!(out.status.success(), "rbt --pprof failed: {}", String::from_utf8_lossy(&out.stderr));
    let traces = Command::new("go")
        .args(["tool", "pprof", "-traces"])
        .arg(&profile)
        .env("PPROF_TMPDIR", &scratch)
        .env("HOME", &scratch)
        .output()
        .expect("`go tool pprof` runs (apt-get install -y golang-go; .ci/run installs it)");
    let text = String::from_utf8_lossy(&traces.stdout);
    assert!(traces.status.success(), "go tool pprof failed: {}", String::from_utf8_lossy(&traces.stderr));
    let mut leaf_first = with(&["syscall"]);
    leaf_first.reverse();
    let found = text.split("-----------+").any(|block| {
        let functions: Vec<&str> = block
            .lines()
            .filter_map(|line| line.split_whitespace().last())
            .filter(|f| !f.ends_with(':') && !f.starts_with("File") && !f.starts_with("Type"))
            .collect();
        functions.windows(leaf_first.len()).any(|w| w.iter().zip(&leaf_first).all(|(a, b)| a == b))
    });
    assert!(found, "no trace names {leaf_first:?} in order:\n{text}");
    let _ = std::fs::remove_dir_all(&scratch);

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

    let syscall =
        folded_stacks(&binary, "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }", &[]);
    expect_chain("getppid", &syscall, &rust_chain(&["getppid"]));
    let sleep = folded_stacks(
        &binary,
        "tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { @[ustack] = count(); }",
        &[],
    );
    expect_chain("sleep", &sleep, &rust_chain(&["std::thread::functions::sleep", "clock_nanosleep"]));
}

/// Tables built once are kept per build id (and file size) under `$XDG_CACHE_HOME/rbt/unwind`, used by the
/// next run as they are, and rebuilt (and the file rewritten) when a file there is damaged.
#[test]
fn unwind_tables_are_cached_on_disk_by_build_id() {
    require_bpf();
    let binary = build("chain.c");
    let home = std::env::temp_dir().join(format!("rbt-unwind-cache-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("make the cache home");
    let home_env = home.to_string_lossy().into_owned();
    let program = "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }";
    let expected = c_chain(&["syscall"]);
    let libc_id = build_id(Path::new(LIBC)).expect("libc has a build id");
    let chain_id = build_id(&binary).expect("gcc gives the chain a build id");
    let size = |path: &Path| std::fs::metadata(path).expect("stat").len();
    let libc_id = format!("{libc_id}-{:x}", size(Path::new(LIBC)));
    let chain_id = format!("{chain_id}-{:x}", size(&binary));
    let cached = |id: &str| home.join("rbt/unwind").join(format!("{id}.rows"));
    let run = |what: &str| {
        let stacks = folded_stacks(&binary, program, &[("XDG_CACHE_HOME", &home_env)]);
        expect_chain(what, &stacks, &expected);
    };

    run("cold cache");
    for id in [&libc_id, &chain_id] {
        assert!(cached(id).is_file(), "no {} after a run; the cache holds {:?}", cached(id).display(), list(&home));
    }
    let modified = |id: &str| std::fs::metadata(cached(id)).and_then(|m| m.modified()).expect("cache file");
    let before = modified(&libc_id);
    run("warm cache");
    assert_eq!(modified(&libc_id), before, "a sound cache file is read, not rewritten");

    // A damaged file (its last byte, part of the checksum, flipped) is rebuilt and replaced.
    let mut bytes = std::fs::read(cached(&libc_id)).expect("read the cache file");
    let good = bytes.clone();
    *bytes.last_mut().expect("not empty") ^= 0xff;
    std::fs::write(cached(&libc_id), &bytes).expect("damage the cache file");
    run("damaged cache");
    assert_eq!(std::fs::read(cached(&libc_id)).expect("read the cache file"), good, "the file is rewritten whole");
    let _ = std::fs::remove_dir_all(&home);
}

fn list(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.display().to_string());
        }
    }
    out
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
            // Whole, or marked as taken before the tables were in: never cut short silently.
            let first = frames.first().map(String::as_str);
            assert!(
                matches!(first, Some("_start" | "[unwind tables not loaded yet]")),
                "run {run}: a stack neither whole nor marked: {stacks:#?}"
            );
            assert!(!frames.iter().any(|f| f.starts_with("0x")), "run {run}: an address without a symbol: {stacks:#?}");
        }
    }
}

/// A stack the unwinder cannot finish ends with a frame that says why: CFI it cannot follow
/// (a CFA in r12), or code with neither CFI nor a frame pointer.
#[test]
fn stacks_the_unwinder_cannot_finish_end_with_a_marker() {
    require_bpf();
    let binary = build("stops.c");
    let program = "tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @[ustack] = count(); }";
    for (mode, function, marker) in
        [("cfi", "odd", "[unwind rule rbt cannot follow]"), ("bare", "bare", "[no unwind rule and no frame pointer]")]
    {
        let stacks = folded_stacks_of(&binary, &format!(" {mode} {ROUNDS}"), program);
        expect_chain(mode, &stacks, &names(&[marker, function, "leaf", "syscall"]));
    }
}

/// The check rbt makes before using its unwinder (a kernel without it gets frame pointers and
/// a warning) passes on this kernel: the probe program it loads is sound.
#[test]
fn this_kernel_runs_the_unwinder() {
    require_bpf();
    assert_eq!(runtime::kernel::loader::user_unwinding_supported(), Ok(()));
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
