//! Kernel types from BTF against the kernel's own account of a process: a workload calls
//! getppid while rbt, with `-p`, prints fields of `curtask` (nested structs, pointer chains, char
//! arrays, casts) and the test compares them with `/proc/PID/status`, `/proc/PID/stat` and
//! `/proc/sys/kernel/hostname`, read while the workload runs.

mod common_rbt;

use common_rbt::*;
use std::collections::HashMap;
use std::process::Command;

const SCRIPT: &str = r#"
tracepoint:syscalls:sys_enter_getppid
{
  $t = (struct task_struct *)curtask;
  printf("tgid %d\npid %d\nppid %d\ncomm %s\nuid %d\neuid %d\nthreads %d\n",
    curtask->tgid, $t->pid, curtask->real_parent->tgid, curtask->comm,
    curtask->cred->uid.val, $t->cred->euid.val, curtask->signal->nr_threads);
  printf("starttime %lu\nstartstack %lu\nhostname %s\n",
    curtask->start_time / 10000000, curtask->mm->start_stack, curtask->nsproxy->uts_ns->name.nodename);
  exit();
}
"#;

#[test]
fn curtask_fields_agree_with_proc() {
    require_bpf();
    let rbt = rbt();
    // Time for rbt to attach, one getppid, then time for the test to read /proc.
    let mut child = Command::new(workload())
        .args(["nap", "1500000", "1", "getppid", "1", "nap", "1500000", "1"])
        .spawn()
        .expect("workload starts");
    let pid = child.id();
    let out = Command::new(rbt).args(["-p", &pid.to_string(), "-e", SCRIPT]).output().expect("rbt runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the workload is still running");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let _ = child.wait();
    assert!(out.status.success(), "rbt failed: {}", String::from_utf8_lossy(&out.stderr));

    let status: HashMap<&str, &str> =
        status.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k, v.trim())).collect();
    let first = |key: &str| status[key].split_whitespace().next().unwrap_or("").to_owned();
    // Fields after the `(comm)` of /proc/PID/stat, numbered as proc(5) numbers them.
    let after_comm: Vec<&str> = stat[stat.rfind(')').expect("stat has a comm") + 2..].split(' ').collect();
    let stat_field = |n: usize| after_comm[n - 3].to_owned();
    let expected = format!(
        "Attaching 1 probe...\ntgid {pid}\npid {pid}\nppid {}\ncomm {}\nuid {}\neuid {}\nthreads {}\nstarttime {}\nstartstack {}\nhostname {}\n\n\n",
        first("PPid"),
        comm.trim(),
        first("Uid"),
        status["Uid"].split_whitespace().nth(1).unwrap_or(""),
        first("Threads"),
        stat_field(22),
        stat_field(28),
        hostname.trim(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "stderr: {}", String::from_utf8_lossy(&out.stderr));
}
