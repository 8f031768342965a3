//! `cgroupid(PATH)` against the `cgroup` builtin, end to end: a workload moved into a cgroup v2
//! directory made for the test is counted, one outside it is not (the way a container's
//! processes are singled out).
//!
//! Needs root, BPF and a mounted cgroup v2 hierarchy (`cgroup2` in /proc/mounts); without them
//! the test fails and says why.

mod common_rbt;

use common_rbt::*;
use std::path::PathBuf;
use std::process::Command;

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid systems).
fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("no cgroup2 filesystem is mounted (mount -t cgroup2 none /sys/fs/cgroup)")
}

#[test]
fn cgroupid_picks_out_the_processes_of_one_cgroup() {
    require_bpf();
    let rbt = rbt();
    let dir = cgroup2_mount().join(format!("rbt-test-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // Both wait for rbt to attach, then call getppid (7 and 5 times); only the first is moved
    // into the new cgroup.
    let mut inside = Command::new(workload())
        .args(["nap", "1000000", "1", "getppid", "7", "nap", "200000", "1"])
        .spawn()
        .expect("workload");
    let mut outside = Command::new(workload())
        .args(["nap", "1000000", "1", "getppid", "5", "nap", "200000", "1"])
        .spawn()
        .expect("workload");
    std::fs::write(dir.join("cgroup.procs"), inside.id().to_string()).expect("move the workload into the cgroup");
    let program = format!(
        "tracepoint:syscalls:sys_enter_getppid /cgroup == cgroupid(\"{}\")/ {{ @calls = count(); @pid[pid] = 1; }} interval:ms:2000 {{ exit(); }}",
        dir.display()
    );
    let out = Command::new(rbt).args(["-e", &program]).output().expect("rbt runs");
    let (inside_pid, _) = (inside.id(), outside.id());
    let _ = (inside.wait(), outside.wait());
    let _ = std::fs::remove_dir(&dir);
    assert!(out.status.success(), "rbt failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Attaching 2 probes...\n\n\n@calls: 7\n@pid[{inside_pid}]: 1\n"),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
