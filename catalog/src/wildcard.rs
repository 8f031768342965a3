//! bpftrace's wildcard patterns (`sched:sched_*`, `vfs_*`), matched as bpftrace 0.17 matches
//! them: tracepoints, kernel and user functions, USDT probes and `-l` searches all use this one.

/// bpftrace 0.17's `wildcard_match`, bugs included, so that rbt attaches to the same tracepoints:
/// `pattern` is split at `*` and each piece is searched for left to right, taking the first
/// occurrence. A pattern not ending in `*` must then end exactly there, so `syscalls:*exit` does
/// not match `syscalls:sys_exit_exit` (the first `exit` is taken). `?` is not a wildcard (it is a
/// syntax error in bpftrace's attach points).
pub fn wildcard_match(text: &str, pattern: &str) -> bool {
    let tokens: Vec<&str> = pattern.split('*').filter(|t| !t.is_empty()).collect();
    let mut next = 0;
    if !pattern.starts_with('*') {
        match tokens.first() {
            Some(first) if text.starts_with(first) => {}
            _ => return pattern.is_empty() && text.is_empty(),
        }
    }
    for token in tokens {
        match text[next..].find(token) {
            Some(found) => next += found + token.len(),
            None => return false,
        }
    }
    pattern.ends_with('*') || next == text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_bpftrace() {
        assert!(wildcard_match("sched:sched_switch", "sched:*"));
        assert!(wildcard_match("sched:sched_switch", "*:*"));
        assert!(wildcard_match("sched:sched_switch", "*"));
        assert!(wildcard_match("sched:sched_switch", "sched:sched_sw*tch"));
        assert!(wildcard_match("sched:sched_switch", "*sched*:*switch"));
        assert!(wildcard_match("sched:sched_switch", "sched:sched_switch"));
        assert!(!wildcard_match("sched:sched_switch", "sched:sched_switc"));
        assert!(!wildcard_match("sched:sched_switch", "sched:switch*"));
        assert!(!wildcard_match("sched:sched_switch", "sched:sched_switc?"));
        assert!(wildcard_match("syscalls:sys_enter_exit", "syscalls:*exit"));
        // bpftrace takes the first `exit`, then wants the end of the name: no match.
        assert!(!wildcard_match("syscalls:sys_exit_exit", "syscalls:*exit"));
    }
}
