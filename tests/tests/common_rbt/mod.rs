//! Shared by the golden runners: finding (and building) the rbt binary, reading a case's
//! `// run:` header, and comparing or re-recording expected output (`RBT_BLESS=1`).

#![allow(dead_code)] // each runner uses part of this file

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub use tests::workspace;

/// The rbt binary, built once per test process (see `tests::rbt`).
pub fn rbt() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| tests::rbt().unwrap_or_else(|e| panic!("{e}"))).clone()
}

pub fn workload() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbt-workload"))
}

/// The arguments of a case from its `// run:` header, `{workload}` replaced.
pub fn case_args(source: &str) -> Vec<String> {
    tests::case_args(source, &workload())
}

pub fn run(args: &[String], script: &Path) -> Output {
    run_with_env(args, script, &[])
}

pub fn run_with_env(args: &[String], script: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(rbt()).args(args).arg(script).envs(env.iter().copied()).output().expect("rbt runs")
}

/// Every `*.rbt` in `tests/data/<dir>`, sorted.
pub fn cases(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(workspace().join("tests/data").join(dir))
        .expect("data dir exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rbt"))
        .collect();
    v.sort();
    v
}

/// Compares `actual` with the expected file, or rewrites it under `RBT_BLESS=1`. Returns a
/// failure description.
pub fn check_expected(expected_path: &Path, actual: &str) -> Option<String> {
    if std::env::var("RBT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(expected_path, actual).expect("write expected output");
        return None;
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if expected == actual {
        return None;
    }
    Some(format!("{}: output differs\n--- expected\n{expected}\n--- actual\n{actual}\n", expected_path.display()))
}

/// Kernel tests need root and BPF; say so plainly instead of skipping.
pub fn require_bpf() {
    assert!(tests::is_root(), "kernel tests load BPF programs and must run as root (they do not skip)");
    assert!(
        Path::new("/sys/kernel/btf/vmlinux").exists() || Path::new("/sys/fs/bpf").exists(),
        "this kernel shows no BPF support (/sys/fs/bpf missing)"
    );
}

/// rbt with `args`, its output captured.
pub fn rbt_run(args: &[&str]) -> Output {
    Command::new(rbt()).args(args).output().expect("rbt runs")
}

/// bpftrace 0.17 with `args`, its output captured; fails the test when bpftrace is missing.
pub fn bpftrace_run(args: &[&str]) -> Output {
    let bpftrace = tests::bpftrace().unwrap_or_else(|e| panic!("these tests compare with bpftrace 0.17: {e}"));
    Command::new(bpftrace).args(args).output().expect("bpftrace runs")
}

/// Captured output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
