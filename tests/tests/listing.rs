//! `rbt -l` against `bpftrace -l`, live on this machine: for each search below both tools list
//! the kernel's probes, and their stdout must match byte for byte, as must success or failure.
//! Both read the same tracefs, so nothing is stored. bpftrace's stderr is not compared: it warns
//! about kprobes it cannot list, and it places its errors in the search text.
//!
//! Needs root (bpftrace lists only as root) and bpftrace 0.17 (`$BPFTRACE` or on `PATH`);
//! without them the test fails and says why rather than skipping. `$RBT` picks the rbt binary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::{bpftrace, is_root, line_diff, rbt, run_with_limit, Captured};

/// `-lv '*:*'` reads every tracepoint's format file; bpftrace takes a few seconds for it.
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// The `-l` arguments compared: no search, every probe type, aliases, wildcard providers, lone
/// patterns, lists, `-lv`, and searches both tools reject; then kernel types from BTF, names and
/// (`-lv`) C definitions, single and by pattern, including the quirks of bpftrace's cut of
/// libbpf's dump (`struct page` is swallowed by the `typedef struct {...}` before it, so
/// bpftrace lists nothing for it).
const SEARCHES: &[&[&str]] = &[
    &["-l"],
    &["-l", "*"],
    &["-l", "*:*"],
    &["-l", "iter:*"],
    &["-l", "hardware:*"],
    &["-l", "software:*"],
    &["-l", "tracepoint:sched:*"],
    &["-l", "t:syscalls:sys_enter_open*"],
    &["-l", "*switch"],
    &["-l", "*task*"],
    &["-l", "i*:*"],
    &["-l", "h:cycles"],
    &["-l", "it:*file*"],
    &["-l", "s:cpu*"],
    &["-l", "*:cs:*"],
    &["-l", "hardware:*,software:*,BEGIN,interval:s:1"],
    &["-lv", "iter:*"],
    &["-lv", "tracepoint:sched:sched_switch"],
    &["-lv", "*:*"],
    &["-l", "iter:task"],
    &["-l", "hardware:foo"],
    &["-l", "hardware:"],
    &["-l", "software:cs:"],
    &["-l", "iter"],
    &["-l", "nope:*"],
    &["-l", "usdt:*"],
    &["-l", "U:/nonexistent/binary:*"],
    &["-l", "struct load_w*"],
    &["-l", "struct task_struct"],
    &["-l", "struct *"],
    &["-l", "union *"],
    &["-l", "enum *"],
    &["-l", "struct*"],
    &["-l", "structure"],
    &["-l", "struct nosuch"],
    &["-lv", "struct task_struct"],
    &["-lv", "struct file_operations"],
    &["-lv", "struct sk_buff"],
    &["-lv", "struct qstr"],
    &["-lv", "struct sched_entity"],
    &["-lv", "struct page"],
    &["-lv", "struct inode"],
    &["-lv", "struct mm_struct"],
    &["-lv", "union bpf_attr"],
    &["-lv", "struct task*"],
    &["-lv", "struct *"],
    &["-lv", "union *"],
    &["-lv", "enum *"],
    &["-lv", "struct nosuch"],
];

#[test]
fn rbt_lists_what_bpftrace_lists() {
    assert!(is_root(), "bpftrace lists probes only as root, so this test must run as root (it never skips)");
    let bpftrace = bpftrace().unwrap_or_else(|e| panic!("the listing test needs bpftrace 0.17: {e}"));
    let version = Command::new(&bpftrace)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("the listing test needs bpftrace 0.17; cannot run {}: {e}", bpftrace.display()));
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("v0.17."),
        "rbt -l follows bpftrace 0.17, but {} is {}",
        bpftrace.display(),
        version.trim()
    );
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));

    let mut failures = Vec::new();
    for args in SEARCHES {
        let expected = list(&bpftrace, args);
        let actual = list(&rbt, args);
        let succeeded = |run: &Captured| run.status.is_some_and(|s| s.success());
        if expected.status.is_none() || actual.status.is_none() {
            failures.push(format!("{args:?}: timed out after {} s", TIME_LIMIT.as_secs()));
        } else if succeeded(&expected) != succeeded(&actual) {
            failures.push(format!(
                "{args:?}: bpftrace {}, rbt {}; rbt's stderr:\n{}",
                status_word(&expected),
                status_word(&actual),
                String::from_utf8_lossy(&actual.stderr)
            ));
        } else if expected.stdout != actual.stdout {
            let (expected, actual) =
                (String::from_utf8_lossy(&expected.stdout), String::from_utf8_lossy(&actual.stdout));
            failures.push(format!("{args:?}: stdout differs\n{}", line_diff(&expected, &actual)));
        }
    }
    assert!(failures.is_empty(), "rbt -l differs from bpftrace -l:\n\n{}", failures.join("\n"));
}

fn list(tool: &Path, args: &[&str]) -> Captured {
    let mut command = Command::new(tool);
    command.args(args);
    run_with_limit(&mut command, TIME_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

fn status_word(run: &Captured) -> &'static str {
    if run.status.is_some_and(|s| s.success()) {
        "succeeded"
    } else {
        "failed"
    }
}

/// `-l 'uprobe:BINARY:PATTERN'` lists a binary's functions as bpftrace does (the workload has a
/// full symbol table, so both read the same symbols).
#[test]
fn uprobe_listing_matches_bpftrace() {
    assert!(is_root(), "bpftrace lists probes only as root; run the tests as root (they do not skip)");
    let bpftrace = bpftrace().unwrap_or_else(|e| panic!("{e}"));
    let rbt = rbt().unwrap_or_else(|e| panic!("{e}"));
    let workload = env!("CARGO_BIN_EXE_rbt-workload");
    for search in [format!("uprobe:{workload}:rbt_workload_*"), format!("uretprobe:{workload}:rbt_workload_add")] {
        let run = |tool: &Path| {
            run_with_limit(Command::new(tool).args(["-l", &search]), TIME_LIMIT).unwrap_or_else(|e| panic!("{e}"))
        };
        let (expected, actual) = (run(&bpftrace), run(&rbt));
        let (expected, actual) = (String::from_utf8_lossy(&expected.stdout), String::from_utf8_lossy(&actual.stdout));
        assert!(expected.contains("rbt_workload_add"), "bpftrace listed nothing for {search}");
        assert_eq!(expected, actual, "{search}:\n{}", line_diff(&expected, &actual));
    }
}

/// `-lv fentry:` lists kernel functions with their BTF arguments and return value, as bpftrace's
/// `-lv kfunc:` prints them (bpftrace 0.17 cannot list kfuncs here: it wants
/// `available_filter_functions`, which this kernel does not let it read). vfs_read's signature
/// is stable kernel ABI.
#[test]
fn fentry_listing_shows_btf_arguments() {
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    let run = list(&rbt, &["-lv", "fentry:vfs_read"]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "fentry:vfs_read\n    struct file * file\n    char * buf\n    size_t count\n    loff_t * pos\n    ssize_t retval\n"
    );
    let run = list(&rbt, &["-l", "fexit:vfs_read*"]);
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.lines().any(|l| l == "fexit:vfs_readv"), "{text}");
    assert!(text.lines().all(|l| l.starts_with("fexit:vfs_read")), "{text}");
}

/// Spelt `kfunc:`/`kretfunc:`, kernel functions are listed as bpftrace 0.17 lists them, with
/// the module (`kfunc:vmlinux:vfs_read`), also for a module part matching `vmlinux`; other
/// modules' functions rbt cannot attach to, and lists none of.
#[test]
fn kfunc_listing_names_the_module_as_bpftrace_0_17() {
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    for (search, expected) in [
        ("kfunc:vfs_read", "kfunc:vmlinux:vfs_read\n"),
        ("kretfunc:vfs_read", "kretfunc:vmlinux:vfs_read\n"),
        ("kretfunc:vmlinu*:vfs_read", "kretfunc:vmlinux:vfs_read\n"),
        ("kfunc:ext4:vfs_read", ""),
    ] {
        let run = list(&rbt, &["-l", search]);
        assert_eq!(String::from_utf8_lossy(&run.stdout), expected, "{search}");
        assert_eq!(status_word(&run), "succeeded", "{search}");
    }
}

/// `-lv 'fentry:*'` prints every BTF function's arguments (about 60,000 functions) in well
/// under a second: each signature is looked up in the name index, not by a scan of the BTF.
#[test]
fn listing_every_kfunc_with_arguments_is_quick() {
    let rbt = rbt().unwrap_or_else(|e| panic!("cannot get the rbt binary: {e}"));
    let started = std::time::Instant::now();
    let run = list(&rbt, &["-lv", "kfunc:*"]);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("kfunc:vmlinux:vfs_read\n    struct file * file\n"), "{}", &text[..text.len().min(500)]);
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}
