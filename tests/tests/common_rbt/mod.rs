//! Shared by the golden runners: finding (and building) the rbt binary, reading a case's
//! `// run:` header, and comparing or re-recording expected output (`RBT_BLESS=1`).

#![allow(dead_code)] // each runner uses part of this file

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The rbt binary, built once per test process with the same profile as the tests.
pub fn rbt() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("RBT") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "runtime", "--bin", "rbt"])
            .current_dir(workspace())
            .status()
            .expect("cargo build -p runtime runs");
        assert!(status.success(), "building rbt failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
        target.join("debug").join("rbt")
    })
    .clone()
}

pub fn workload() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbt-workload"))
}

/// The arguments of a case: its `// run: ...` first line, split like a shell would (quotes),
/// with `{workload}` replaced.
pub fn case_args(source: &str) -> Vec<String> {
    let Some(header) = source.lines().next().and_then(|l| l.strip_prefix("// run:")) else {
        return Vec::new();
    };
    let header = header.replace("{workload}", &workload().display().to_string());
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in header.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

pub fn run(args: &[String], script: &Path) -> Output {
    Command::new(rbt()).args(args).arg(script).output().expect("rbt runs")
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
    Some(format!(
        "{}: output differs\n--- expected\n{expected}\n--- actual\n{actual}\n",
        expected_path.display()
    ))
}

/// Kernel tests need root and BPF; say so plainly instead of skipping.
pub fn require_bpf() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "kernel tests load BPF programs and must run as root (they do not skip)");
    assert!(
        Path::new("/sys/kernel/btf/vmlinux").exists() || Path::new("/sys/fs/bpf").exists(),
        "this kernel shows no BPF support (/sys/fs/bpf missing)"
    );
}
