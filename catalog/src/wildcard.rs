//! bpftrace's wildcard patterns (`sched:sched_*`, `vfs_*`), matched as bpftrace 0.17 matches
//! them: tracepoints, kernel and user functions, USDT probes and `-l` searches all use this one;
//! and the binary paths of uprobe and USDT targets (`./testprogs/usdt*`), which bpftrace expands
//! with glob(3) before it matches anything.

use std::path::Path;

use crate::source::{exists, Source};

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

/// Whether a binary path is a pattern, as bpftrace 0.17 decides it: a `*`, or a `[` with a `]`.
pub fn has_wildcard(text: &str) -> bool {
    text.contains('*') || (text.contains('[') && text.contains(']'))
}

/// The paths matching the glob(3) pattern `pattern`, sorted, written as the pattern writes them
/// (`./testprogs/usdt*` gives `./testprogs/usdt_test`). Each `/`-separated component is matched
/// against its directory's entries: `*` and `?` never match a `/` or a leading `.`, `[...]`
/// matches a set of characters. A pattern matching nothing gives nothing.
pub fn glob_paths(source: &impl Source, pattern: &str) -> Vec<String> {
    let (mut found, rest) = match pattern.strip_prefix('/') {
        Some(rest) => (vec![String::from("/")], rest),
        None => (vec![String::new()], pattern),
    };
    let components: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    for component in components {
        let mut next = Vec::new();
        for dir in &found {
            let join = |name: &str| {
                if dir.is_empty() || dir.ends_with('/') {
                    format!("{dir}{name}")
                } else {
                    format!("{dir}/{name}")
                }
            };
            if !has_glob_magic(component) {
                let path = join(component);
                if component == "." || component == ".." || exists(source, Path::new(&path)) {
                    next.push(path);
                }
                continue;
            }
            let listed = if dir.is_empty() { "." } else { dir.as_str() };
            let Ok(mut names) = source.list(Path::new(listed)) else { continue };
            names.sort();
            for name in names.iter().filter(|name| fnmatch(name, component)) {
                next.push(join(name));
            }
        }
        found = next;
    }
    found.retain(|path| !path.is_empty());
    found.sort();
    found
}

fn has_glob_magic(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// fnmatch(3) over one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`; a leading `.` only
/// matches a literal `.`.
fn fnmatch(name: &str, pattern: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    fn go(name: &[char], pattern: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| go(&name[skip..], rest)),
            Some(('?', rest)) => !name.is_empty() && go(&name[1..], rest),
            Some(('[', rest)) => match (name.split_first(), class(rest)) {
                (Some((c, name_rest)), Some((matches, after))) => matches(*c) && go(name_rest, after),
                // An unclosed `[` is an ordinary character.
                (Some(('[', name_rest)), None) => go(name_rest, rest),
                _ => false,
            },
            Some((literal, rest)) => name.first() == Some(literal) && go(&name[1..], rest),
        }
    }
    let name: Vec<char> = name.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    go(&name, &pattern)
}

/// A `[...]` class after its `[`: the test it stands for and the pattern after its `]`.
#[allow(clippy::type_complexity, reason = "a matcher and the rest of the pattern")]
fn class(pattern: &[char]) -> Option<(Box<dyn Fn(char) -> bool + '_>, &[char])> {
    let (negated, body) = match pattern.first() {
        Some('!' | '^') => (true, &pattern[1..]),
        _ => (false, pattern),
    };
    // A `]` right after the `[` (or `[!`) is a member, not the end.
    let end = body.iter().skip(1).position(|&c| c == ']')? + 1;
    let members = &body[..end];
    let test = move |c: char| {
        let mut i = 0;
        let mut hit = false;
        while i < members.len() {
            if i + 2 < members.len() && members[i + 1] == '-' {
                hit |= members[i] <= c && c <= members[i + 2];
                i += 3;
            } else {
                hit |= members[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(test), &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemSource;

    #[test]
    fn globs_match_components_like_glob3() {
        let source = MemSource::default()
            .with_file("./progs/usdt_test", "")
            .with_file("./progs/usdt_args", "")
            .with_file("./progs/uprobe_test", "")
            .with_file("./progs/.usdt_hidden", "")
            .with_file("/abs/lib/libfoo.so", "");
        assert_eq!(glob_paths(&source, "./progs/usdt*"), ["./progs/usdt_args", "./progs/usdt_test"]);
        assert_eq!(glob_paths(&source, "./progs/*_test"), ["./progs/uprobe_test", "./progs/usdt_test"]);
        assert_eq!(glob_paths(&source, "./p*/u[ps]*_t?st"), ["./progs/uprobe_test", "./progs/usdt_test"]);
        assert_eq!(glob_paths(&source, "./progs/[!u]*"), Vec::<String>::new());
        assert_eq!(glob_paths(&source, "/abs/*/lib*.so"), ["/abs/lib/libfoo.so"]);
        assert_eq!(glob_paths(&source, "./nowhere/*"), Vec::<String>::new());
        assert!(has_wildcard("./a*") && has_wildcard("/x/[ab]") && !has_wildcard("/bin/bash"));
    }

    #[test]
    fn fnmatch_classes() {
        assert!(fnmatch("abc", "a[a-c]c"));
        assert!(!fnmatch("abc", "a[!b]c"));
        assert!(fnmatch("a]c", "a[]]c"));
        assert!(fnmatch("a[c", "a[c"));
        assert!(!fnmatch(".hidden", "*"));
        assert!(fnmatch(".hidden", ".h*"));
    }

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
