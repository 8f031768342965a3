//! What the kernel says of a BPF program through its descriptor's fdinfo.

use std::os::fd::RawFd;

/// A number from a program descriptor's fdinfo, e.g. `prog_id`, `run_cnt` (counted while
/// [`super::sys::enable_run_stats`] is in effect) or `recursion_misses`:
///
/// ```text
/// prog_type: 5
/// prog_id: 18120
/// run_time_ns: 52311
/// run_cnt: 1000
/// ```
pub fn fdinfo_value<T: std::str::FromStr>(fd: RawFd, key: &str) -> Option<T> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
}
