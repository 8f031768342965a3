//! Nothing is lost quietly: with a one-page event buffer, a burst of printf events overflows it,
//! and every event is either printed or counted in a `Lost N events` line, over the ring buffer
//! and over perf buffers alike.

mod common_rbt;

use common_rbt::*;
use std::process::Command;

const EVENTS: u64 = 20_000;

#[test]
fn every_event_is_printed_or_counted_lost() {
    require_bpf();
    for transport in ["ringbuf", "perf"] {
        let out = Command::new(rbt())
            .env("RBT_EVENTS", transport)
            .env("RBT_RINGBUF_PAGES", "1")
            .env("RBT_PERF_RB_PAGES", "1")
            .args(["-c", &format!("{} getppid {EVENTS}", workload().display()), "-e"])
            .arg("tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { printf(\"%d %s\\n\", pid == cpid, comm); }")
            .output()
            .expect("rbt runs");
        assert!(out.status.success(), "{transport}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let printed = stdout.lines().filter(|l| *l == "1 rbt-workload").count() as u64;
        let lost: u64 = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("Lost ")?.strip_suffix(" events")?.parse::<u64>().ok())
            .sum();
        assert!(lost > 0, "{transport}: a one-page buffer should overflow; printed {printed}");
        assert_eq!(printed + lost, EVENTS, "{transport}: printed {printed}, lost {lost}");
    }
}
