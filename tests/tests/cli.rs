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
