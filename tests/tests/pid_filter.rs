//! `-p PID`: probes fire only for that process, while another process makes the same syscalls.

mod common_rbt;

use common_rbt::*;
use std::process::Command;

#[test]
fn only_the_given_process_is_traced() {
    require_bpf();
    // Build rbt first so the workloads' wait covers only rbt's start.
    let rbt = rbt();
    // Both workloads wait long enough for rbt to attach, then call getppid (7 and 5 times).
    let mut traced = Command::new(workload()).args(["nap", "1000000", "1", "getppid", "7", "nap", "300000", "1"]).spawn().expect("workload starts");
    let mut other = Command::new(workload()).args(["nap", "1000000", "1", "getppid", "5", "nap", "300000", "1"]).spawn().expect("workload starts");
    let out = Command::new(rbt)
        .args(["-p", &traced.id().to_string(), "-e"])
        .arg("tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); } interval:ms:2000 { exit(); }")
        .output()
        .expect("rbt runs");
    let _ = traced.wait();
    let _ = other.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rbt failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "Attaching 2 probes...\n\n\n@[rbt-workload]: 7\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
}
