//! `-p PID`: probes that fire in some process's context fire only for that process (bpftrace
//! 0.17 applies the pid to uprobes and USDT alone; rbt to every probe, as its users expect), and
//! tracing ends when that process exits, as in bpftrace. A uprobe is opened for that process alone,
//! so another process running the same binary is not counted.

mod common_rbt;

use common_rbt::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn only_the_watched_process_is_traced_until_it_exits() {
    require_bpf();
    // Build rbt first so the workloads' wait covers only rbt's start.
    let rbt = rbt();
    // Both workloads wait long enough for rbt to attach, then call getppid (7 and 5 times); the
    // other one outlives the watched one by a second.
    let mut watched = Command::new(workload())
        .args(["nap", "1000000", "1", "getppid", "7", "nap", "300000", "1"])
        .spawn()
        .expect("workload starts");
    let mut other = Command::new(workload())
        .args(["nap", "1000000", "1", "getppid", "5", "nap", "1300000", "1"])
        .spawn()
        .expect("workload starts");
    let (watched_pid, other_pid) = (watched.id(), other.id());
    let program = format!(
        "tracepoint:syscalls:sys_enter_getppid /pid == {watched_pid} || pid == {other_pid}/ {{ @[pid == {watched_pid}] = count(); }}"
    );
    let start = Instant::now();
    let out = Command::new(rbt).args(["-p", &watched_pid.to_string(), "-e", &program]).output().expect("rbt runs");
    let elapsed = start.elapsed();
    let _ = watched.wait();
    let _ = other.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rbt failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "Attaching 1 probe...\n\n\n@[1]: 7\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // The watched workload runs about 1.3 s, the other 2.3 s: rbt must stop with the first.
    assert!(elapsed < Duration::from_millis(2200), "rbt ran {elapsed:?}, past the watched process's exit");
}

#[test]
fn a_uprobe_counts_only_the_watched_process() {
    require_bpf();
    let rbt = rbt();
    // Two processes of the same binary call rbt_workload_add 70 and 50 times once rbt has had
    // time to attach; the uprobe (opened for the watched pid alone) must see exactly 70.
    let mut watched = Command::new(workload())
        .args(["nap", "1000000", "1", "call", "70", "nap", "300000", "1"])
        .spawn()
        .expect("workload starts");
    let mut other = Command::new(workload())
        .args(["nap", "1000000", "1", "call", "50", "nap", "300000", "1"])
        .spawn()
        .expect("workload starts");
    let binary = workload().canonicalize().expect("the workload exists");
    let program = format!("uprobe:{}:rbt_workload_add {{ @ = count(); }}", binary.display());
    let out = Command::new(rbt).args(["-p", &watched.id().to_string(), "-e", &program]).output().expect("rbt runs");
    let _ = watched.wait();
    let _ = other.wait();
    assert!(out.status.success(), "rbt failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Attaching 1 probe...\n\n\n@: 70\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
