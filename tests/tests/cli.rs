//! Command-line behaviour that goldens cannot pin down: `-v` (kernel program ids vary) and
//! running without the privileges BPF needs.

mod common_rbt;

use common_rbt::*;
use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
fn verbose_prints_program_ids_and_verifier_statistics() {
    require_bpf();
    let out = Command::new(rbt())
        .args(["-v", "-e", "BEGIN { exit(); } tracepoint:syscalls:sys_enter_getppid { @ = count(); }"])
        .output()
        .expect("rbt runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("Attaching 2 probes..."));
    let ids: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("Program ID: ")).collect();
    assert_eq!(ids.len(), 2, "{stdout}");
    assert!(ids.iter().all(|id| id.parse::<u32>().is_ok_and(|n| n > 0)), "{stdout}");
    assert_eq!(stdout.matches("\nThe verifier log: \n").count(), 2, "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("processed ") && l.contains(" insns")).count(), 2, "{stdout}");
    assert!(stdout.ends_with("\n\n\n@: 0\n"), "{stdout}");
}

#[test]
fn unprivileged_users_get_one_plain_sentence() {
    let out = Command::new(rbt()).args(["-e", "BEGIN { exit(); }"]).uid(65534).gid(65534).output().expect("rbt runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR: rbt needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs; run it with sudo\n"
    );
}

/// Output piped into a reader that stops early (`rbt ... | head -1`): rbt ends quietly, as a
/// Unix filter does, rather than reporting the broken pipe as an error.
#[test]
fn a_reader_that_leaves_early_is_no_error() {
    require_bpf();
    let mut child = std::process::Command::new(rbt())
        .args(["-e", "interval:ms:10 { printf(\"tick\\n\"); }"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rbt starts");
    let mut stdout = child.stdout.take().expect("piped");
    let mut first = [0u8; 21];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("rbt prints");
    assert_eq!(&first, b"Attaching 1 probe...\n");
    drop(stdout);
    let out = child.wait_with_output().expect("rbt ends");
    assert!(out.status.success(), "exit status {}; stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// The value of `NAME: value` in an `--info` report.
fn info_value<'a>(report: &'a str, name: &str) -> Option<&'a str> {
    report.lines().find_map(|l| l.trim_start().strip_prefix(name)?.strip_prefix(": "))
}

/// `--info` has bpftrace 0.17's sections in its order, and answers as bpftrace measures the
/// kernel wherever rbt uses what is measured; what rbt does not support is `no` whatever the
/// kernel offers; the suite's gates read it (`Loop support: yes`...).
#[test]
fn info_is_bpftraces_report_of_what_rbt_can_use() {
    require_bpf();
    let rbt_out = Command::new(rbt()).arg("--info").output().expect("rbt runs");
    assert!(rbt_out.status.success(), "{}", String::from_utf8_lossy(&rbt_out.stderr));
    let ours = String::from_utf8_lossy(&rbt_out.stdout).into_owned();
    let bpftrace = tests::bpftrace().unwrap_or_else(|e| panic!("{e}"));
    let theirs = Command::new(bpftrace).arg("--info").output().expect("bpftrace runs");
    let theirs = String::from_utf8_lossy(&theirs.stderr).into_owned();
    let headings = |text: &str| -> Vec<String> {
        text.lines().filter(|l| !l.is_empty() && !l.starts_with(' ')).map(str::to_owned).collect()
    };
    assert_eq!(headings(&ours), headings(&theirs), "{ours}");
    let measured_alike = [
        "probe_read",
        "probe_read_str",
        "probe_read_user",
        "probe_read_user_str",
        "probe_read_kernel",
        "probe_read_kernel_str",
        "get_current_cgroup_id",
        "send_signal",
        "get_boot_ns",
        "dpath",
        "Instruction limit",
        "Loop support",
        "btf",
        "uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount)",
        "hash",
        "percpu hash",
        "array",
        "percpu array",
        "stack_trace",
        "perf_event_array",
        "tracepoint",
        "perf_event",
        "kfunc",
        "raw_tp_special",
    ];
    for name in measured_alike {
        assert_eq!(info_value(&ours, name), info_value(&theirs, name), "{name} in\n{ours}");
    }
    for name in ["override_return", "skboutput", "map batch", "iter:task", "iter:task_file"] {
        assert_eq!(info_value(&ours, name), Some("no"), "{name} in\n{ours}");
    }
    // Uprobes' arguments by name, as bpftrace built with libdw has them (gimli reads the DWARF).
    assert_eq!(info_value(&ours, "libdw (DWARF support)"), Some("yes"), "{ours}");
    // rbt attaches kprobes through the kprobe PMU; bpftrace only loads a program of that type.
    let pmu = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    assert_eq!(info_value(&ours, "kprobe"), Some(if pmu { "yes" } else { "no" }), "{ours}");
    assert_eq!(info_value(&ours, "version"), Some(format!("rbt v{}", env!("CARGO_PKG_VERSION")).as_str()));
}

/// `--help`, `--version`, a bad option and bad values answer in bpftrace's words and layout.
#[test]
fn usage_version_and_bad_arguments_in_bpftraces_words() {
    let run = |args: &[&str]| Command::new(rbt()).args(args).output().expect("rbt runs");
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("USAGE:\n    rbt [options] filename\n"));
    let version = run(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout), format!("rbt v{}\n", env!("CARGO_PKG_VERSION")));
    let bad = run(&["-idonotexist"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\nUSAGE:\n"));
    // -k and -kk are the helper check levels; bpftrace answers a third k with its usage alone.
    let kkk = run(&["-kkk", "-e", "BEGIN { exit(); }"]);
    assert_eq!(kkk.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&kkk.stderr).starts_with("USAGE:\n"));
    for (args, message) in [
        (&["-p", "a1111", "file.bt"][..], "ERROR: pid 'a1111' is not a valid decimal number\n"),
        (&["-p", "111a1", "file.bt"][..], "ERROR: pid '111a1' is not a valid decimal number\n"),
        (&["-p", "5000000", "file.bt"][..], "ERROR: pid '5000000' out of valid pid range [1,4194304]\n"),
        (
            &["non_existent_file.bt"][..],
            "ERROR: failed to open file 'non_existent_file.bt': No such file or directory\n",
        ),
        (
            &["-f", "jsonx", "-e", "BEGIN { exit(); }"][..],
            "ERROR: Invalid output format \"jsonx\"\nValid formats: 'text', 'json', 'folded'\n",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message, "{args:?}");
    }
    let out = Command::new(rbt())
        .args(["-e", "BEGIN { exit(); }"])
        .env("BPFTRACE_MAP_KEYS_MAX", "lots")
        .output()
        .expect("rbt runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR: Env var 'BPFTRACE_MAP_KEYS_MAX' did not contain a valid uint64_t, or was zero-valued.\n"
    );
}
