//! Function watchpoints (`watchpoint:FUNCTION+argN:LENGTH:MODE`) stop the traced process until
//! their breakpoint is open; these check that no process is ever left stopped: not one rbt did
//! not mean to trace (another process of the same binary), and not the traced one when rbt is
//! killed while it is stopped.

mod common_rbt;

use common_rbt::*;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The state letter of `/proc/PID/stat` (`T` when stopped), or `None` once the process is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

/// Waits up to `limit` for `child` to exit; kills it (and fails) if it does not.
fn wait_for(child: &mut Child, limit: Duration, what: &str) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().expect("wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stuck = state(child.id());
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what} did not exit within {limit:?} (state {stuck:?})");
}

/// `-c`'s command is watched; another process running the same binary meanwhile calls the same
/// function, and must neither be stopped nor counted.
#[test]
fn another_process_of_the_binary_runs_on() {
    require_bpf();
    let rbt = rbt();
    let mut other = Command::new(workload())
        .args(["nap", "300000", "1", "bump-fresh", "3", "bump", "3", "nap", "300000", "1"])
        .spawn()
        .expect("workload starts");
    let command = format!("{} nap 300000 1 bump 4", workload().display());
    let out = Command::new(rbt)
        .args(["-e", "watchpoint:rbt_watch_bump+arg0:4:w { @writes = count(); }", "-c", &command])
        .output()
        .expect("rbt runs");
    wait_for(&mut other, Duration::from_secs(5), "the other workload");
    assert!(out.status.success(), "rbt failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Attaching 1 probe...\n\n\n@writes: 4\n");
}

/// rbt is frozen (SIGSTOP) so that it cannot handle the next address, which stops the watched
/// process; then it is killed (SIGKILL, no cleanup): the process must run on all the same.
#[test]
fn a_killed_rbt_leaves_no_process_stopped() {
    require_bpf();
    let rbt = rbt();
    // A new address every 50 ms for about 3 s.
    let steps: Vec<String> = (0..60).flat_map(|_| ["bump-fresh", "1", "nap", "50000", "1"]).map(String::from).collect();
    let mut traced = Command::new(workload()).args(&steps).spawn().expect("workload starts");
    let pid = traced.id();
    let mut tracer = Command::new(rbt)
        .args(["-e", "watchpoint:rbt_watch_bump+arg0:4:w { @writes = count(); }", "-p", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rbt runs");
    let mut banner = String::new();
    BufReader::new(tracer.stdout.take().expect("piped")).read_line(&mut banner).expect("rbt prints");
    assert_eq!(banner, "Attaching 1 probe...\n");
    std::thread::sleep(Duration::from_millis(200));
    let tracer_pid = libc::pid_t::try_from(tracer.id()).expect("a pid");
    // SAFETY: signals to a child this test started.
    unsafe { libc::kill(tracer_pid, libc::SIGSTOP) };
    let start = Instant::now();
    while state(pid) != Some('T') && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopped = state(pid);
    // SAFETY: as above.
    unsafe { libc::kill(tracer_pid, libc::SIGKILL) };
    let _ = tracer.wait();
    assert_eq!(stopped, Some('T'), "the next call should have stopped the workload");
    wait_for(&mut traced, Duration::from_secs(10), "the traced workload");
}
