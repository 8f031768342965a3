//! What the unwinding tests share, on the host (`unwind.rs`) and in the 6.1 VM (`vm.rs`): the
//! test programs of `tests/data/unwind/` built without frame pointers, folded output read back
//! as stacks, and the call chains every stack must name.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Rounds of the chain each program runs (2 ms naps).
pub const ROUNDS: u32 = 40;

/// Builds `tests/data/unwind/NAME` (C with `-O2 -fomit-frame-pointer`, Rust with
/// `-C force-frame-pointers=no`) into a directory of its own; returns the binary.
pub fn build(name: &str) -> PathBuf {
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

/// `-f folded` output (one map keyed by `ustack`) as each stack's frame names (offsets cut),
/// outermost first, with its count.
pub fn parse_folded(stdout: &str) -> Vec<(Vec<String>, u64)> {
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
pub fn dominant(stacks: &[(Vec<String>, u64)]) -> (Vec<String>, f64) {
    let total: u64 = stacks.iter().map(|(_, n)| n).sum();
    let (frames, n) = stacks.iter().max_by_key(|(_, n)| *n).cloned().unwrap_or_default();
    (frames, if total == 0 { 0.0 } else { n as f64 / total as f64 })
}

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The frames below `main` of a program started by Debian's libc.
pub const LIBC_START: [&str; 3] = ["_start", "__libc_start_main", "__libc_start_call_main"];

/// `chain.c`'s chain, outermost first, then `leaf`.
pub fn c_chain(leaf: &[&str]) -> Vec<String> {
    let chain = ["main", "level1", "level2", "level3", "level4", "level5"];
    LIBC_START.iter().chain(&chain).chain(leaf).map(|s| (*s).to_owned()).collect()
}

/// `chain.rs`'s chain, outermost first, then `leaf`.
pub fn rust_chain(leaf: &[&str]) -> Vec<String> {
    let chain = [
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
    ];
    LIBC_START.iter().chain(&chain).chain(leaf).map(|s| (*s).to_owned()).collect()
}

/// The dominant stack is `expected`, and holds at least 80% of the samples: only a process's
/// first stacks, before rbt has read its mappings, may be partial. An error says what differs.
pub fn check_chain(what: &str, stacks: &[(Vec<String>, u64)], expected: &[String]) -> Result<(), String> {
    let (frames, share) = dominant(stacks);
    if frames != expected {
        return Err(format!("{what}: the most sampled stack is {frames:?}, not {expected:?}; all: {stacks:#?}"));
    }
    if share < 0.8 {
        return Err(format!("{what}: only {:.0}% of samples are the whole stack: {stacks:#?}", share * 100.0));
    }
    Ok(())
}

/// Debian's libc and its separate debug file (libc6-dbg), which names libc's static functions
/// such as `__libc_start_call_main`: `(libc, debug file)` when both are here.
pub fn libc_and_debug_file() -> Option<(PathBuf, PathBuf)> {
    let libc = PathBuf::from(LIBC);
    let hex = build_id(&libc)?;
    let debug = PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
    debug.is_file().then_some((libc, debug))
}

/// Debian's libc.
pub const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

/// The GNU build id of the ELF file at `path`, in hex.
pub fn build_id(path: &std::path::Path) -> Option<String> {
    use object::Object;
    let data = std::fs::read(path).ok()?;
    let id = object::File::parse(&*data).ok()?.build_id().ok()??;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}
