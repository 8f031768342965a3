//! Uprobe and USDT specs as bpftrace 0.17 reads them, compared byte for byte with bpftrace:
//! binaries named by relative paths (kept as written in `probe` and `-l`), globs over binaries
//! (`usdt:./usdt_t*::*`), a wildcard probe type over a path (`*:./usdt_target:*`), and `-p PID`
//! (the process's executable for `uprobe:FUNC`, its modules for `usdt::PROVIDER:NAME` and
//! `usdt:::NAME`, `-l -p PID`), and `-lv` listing uprobes' parameters from DWARF. The targets are `tests/data/usdt/usdt_target.c`, compiled at
//! test time into a directory of their own, where both tools run.
//!
//! Needs root, BPF, bpftrace, gcc and `<sys/sdt.h>` (`systemtap-sdt-dev`); `.ci/run` installs them.

mod common_rbt;

use common_rbt::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run_in(tool: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(tool).args(args).current_dir(dir).output().expect("the tool runs")
}

fn bpftrace() -> std::path::PathBuf {
    tests::bpftrace().unwrap_or_else(|e| panic!("these tests compare with bpftrace 0.17: {e}"))
}

/// Runs both tools in `dir` and compares their stdout; returns rbt's.
fn same_in(dir: &Path, args: &[&str]) -> String {
    let (actual, expected) = (run_in(&rbt(), dir, args), run_in(&bpftrace(), dir, args));
    assert_eq!(actual.status.success(), expected.status.success(), "{args:?}: {}", text(&actual.stderr));
    assert_eq!(text(&actual.stdout), text(&expected.stdout), "{args:?}: rbt's stderr: {}", text(&actual.stderr));
    text(&actual.stdout)
}

/// Two copies of the target in one directory, listed and traced through relative paths and
/// globs.
#[test]
fn relative_paths_and_globs_match_bpftrace() {
    require_bpf();
    let target = tests::usdt_target("specs");
    let dir = target.parent().expect("in a directory");
    std::fs::copy(&target, dir.join("usdt_target2")).expect("the copy is made");
    std::fs::write(dir.join("usdt_target.txt"), "not a binary").expect("written");
    for search in [
        "usdt:./usdt_target:*",
        "usdt:./usdt_target:rbt:t*",
        "usdt:./usdt_t*:*",
        "usdt:./usdt_t*:rbt:*a*",
        "usdt:./usdt_target::*ck",
        "uprobe:./usdt_t*:main",
        "uprobe:./usdt_target:*",
        "*:./usdt_target:*",
    ] {
        same_in(dir, &["-l", search]);
    }
    let listed = same_in(dir, &["-l", "usdt:./usdt_t*:rbt:tick"]);
    assert_eq!(listed, "usdt:./usdt_target2:rbt:tick\nusdt:./usdt_target:rbt:tick\n");
    // (The child prints too, so events are counted in maps rather than printed.)
    let program = "usdt:./usdt_target::t*k { @[probe] = sum(arg0); }";
    let traced = same_in(dir, &["-e", program, "-c", "./usdt_target 2"]);
    assert!(traced.ends_with("@[usdt:./usdt_target:rbt:tick]: 3\n"), "{traced}");
    // Over a glob, bpftrace 0.17 (through bcc, which looks probes up by name in the child)
    // reports the child's events as the copy's too; rbt's probes fire in their own binary.
    let program = "usdt:./usdt_t*::tick { @[probe] = sum(arg0); }";
    let traced = text(&run_in(&rbt(), dir, &["-e", program, "-c", "./usdt_target 2"]).stdout);
    let expected = "Attaching 2 probes...\ndone: rbt:guarded fired 0 times\n\n\n@[usdt:./usdt_target:rbt:tick]: 3\n";
    assert_eq!(traced, expected);
}

/// `-p PID`: the process's executable and modules, named under `/proc/PID/root`.
#[test]
fn pid_specs_match_bpftrace() {
    require_bpf();
    let target = tests::usdt_target("pid-specs");
    let dir = target.parent().expect("in a directory");
    let mut process =
        Command::new(&target).args(["1000", "100"]).stdout(Stdio::null()).spawn().expect("the target starts");
    let pid = process.id().to_string();
    for search in
        [None, Some("usdt:*"), Some("uprobe:*"), Some("usdt:*:rbt:t*"), Some("*:*"), Some("usdt:./usdt_target:*")]
    {
        let mut args = vec!["-l", "-p", pid.as_str()];
        args.extend(search);
        same_in(dir, &args);
    }
    let root = format!("/proc/{pid}/root");
    let listed = text(&run_in(&rbt(), dir, &["-l", "usdt:*:rbt:tick", "-p", &pid]).stdout);
    assert_eq!(listed, format!("usdt:{root}{}:rbt:tick\n", target.display()));
    for program in [
        r#"usdt::rbt:tick { printf("%s\n", probe); exit(); }"#,
        r#"usdt:::*ic* { printf("%s %d\n", probe, arg0 > 0); exit(); }"#,
        r#"uprobe:main { exit(); } usdt::rbt:tick { printf("%s\n", probe); exit(); }"#,
    ] {
        same_in(dir, &["-e", program, "-p", &pid]);
    }
    process.kill().expect("the target is stopped");
    process.wait().expect("the target ends");
}

/// `-lv uprobe:BIN:FUNCS`: each function's parameters from DWARF, typed as bpftrace writes them.
#[test]
fn dwarf_parameters_are_listed_as_bpftrace_lists_them() {
    let dir = std::env::temp_dir().join(format!("rbt-dwarf-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the directory is made");
    let source = workspace().join("tests/data/dwarf/params.c");
    let out = Command::new("gcc").args(["-g", "-O0", "-o"]).arg(dir.join("params")).arg(&source).output();
    let out = out.expect("gcc runs");
    assert!(out.status.success(), "gcc failed: {}", text(&out.stderr));
    for search in ["uprobe:./params:*", "uprobe:./params:f1", "uretprobe:./params:f*", "uprobe:./par*:main"] {
        same_in(&dir, &["-lv", search]);
    }
    let listed = text(&run_in(&rbt(), &dir, &["-lv", "uprobe:./params:main"]).stdout);
    assert_eq!(listed, "uprobe:./params:main\n    int argc\n    char** argv\n");
}
