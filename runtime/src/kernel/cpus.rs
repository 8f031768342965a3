//! The CPUs the kernel lists: per-CPU map values hold a slot for each possible CPU, and the
//! CPU clock and perf buffers are opened on each online one.

use std::io;

/// Number of possible CPUs.
pub fn possible_cpus() -> io::Result<usize> {
    Ok(cpu_list("possible")?.len())
}

/// The CPUs of `/sys/devices/system/cpu/{possible,online}`.
pub fn cpu_list(which: &str) -> io::Result<Vec<u32>> {
    parse_cpu_list(&std::fs::read_to_string(format!("/sys/devices/system/cpu/{which}"))?)
}

/// The CPUs of a kernel CPU list such as `0-1` or `0,2-3`.
pub fn parse_cpu_list(text: &str) -> io::Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let mut ends = part.split('-').map(|n| n.trim().parse::<u32>());
        match (ends.next(), ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b)), None) if a <= b => cpus.extend(a..=b),
            (Some(Ok(a)), None, None) => cpus.push(a),
            _ => return Err(io::Error::other(format!("cannot parse the CPU list {text:?}"))),
        }
    }
    Ok(cpus)
}
