//! Nothing is lost quietly: with a one-page event buffer and a reader that is not reading (its
//! output pipe is full), a burst of printf events overflows the buffer, and every event is either
//! printed or counted in a `Lost N events` line, over the ring buffer and perf buffers alike.

mod common_rbt;

use common_rbt::*;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const EVENTS: u64 = 20_000;

#[test]
fn every_event_is_printed_or_counted_lost() {
    require_bpf();
    for transport in ["ringbuf", "perf"] {
        let mut rbt = Command::new(rbt())
            .env("RBT_EVENTS", transport)
            .env("RBT_RINGBUF_PAGES", "1")
            .env("RBT_PERF_RB_PAGES", "1")
            .args(["-c", &format!("{} nap 300000 1 getppid {EVENTS}", workload().display()), "-e"])
            .arg("tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { printf(\"%d %s\\n\", pid == cpid, comm); }")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rbt runs");
        // Not reading for a while fills the pipe, which stalls rbt's writes and so its reading of
        // the event buffer, which then overflows.
        std::thread::sleep(Duration::from_millis(1500));
        let mut stdout = String::new();
        rbt.stdout.take().expect("piped").read_to_string(&mut stdout).expect("read stdout");
        let mut stderr = String::new();
        rbt.stderr.take().expect("piped").read_to_string(&mut stderr).expect("read stderr");
        let status = rbt.wait().expect("rbt exits");
        assert!(status.success(), "{transport}: {stderr}");
        let printed = stdout.lines().filter(|l| *l == "1 rbt-workload").count() as u64;
        let lost: u64 =
            stdout.lines().filter_map(|l| l.strip_prefix("Lost ")?.strip_suffix(" events")?.parse::<u64>().ok()).sum();
        assert!(lost > 0, "{transport}: a one-page buffer should overflow; printed {printed}");
        assert_eq!(printed + lost, EVENTS, "{transport}: printed {printed}, lost {lost}");
    }
}
