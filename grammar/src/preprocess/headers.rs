//! What rbt knows about C headers without reading them: the embedded table of their integer
//! constants (`data/header_constants.txt`), which headers are the kernel's (satisfied from BTF
//! when the machine lacks them), and the compiler's own headers bpftrace ships.

/// The table, compiled in; its format is described at its top.
const TABLE: &str = include_str!("../../data/header_constants.txt");

/// Directories of the kernel's include tree: a missing `<linux/blkdev.h>` is satisfied from BTF,
/// as bpftrace satisfies it with BTF types when the kernel headers are not installed.
const KERNEL_DIRS: [&str; 24] = [
    "linux/",
    "net/",
    "asm/",
    "asm-generic/",
    "uapi/",
    "trace/",
    "kvm/",
    "crypto/",
    "scsi/",
    "media/",
    "sound/",
    "xen/",
    "acpi/",
    "keys/",
    "drm/",
    "rdma/",
    "video/",
    "misc/",
    "soc/",
    "target/",
    "vdso/",
    "clocksource/",
    "generated/",
    "dt-bindings/",
];

/// Headers of the compiler, not of the system (bpftrace 0.17 ships them as /bpftrace/include).
const COMPILER_HEADERS: [&str; 8] =
    ["stddef.h", "stdarg.h", "stdbool.h", "stdint.h", "limits.h", "float.h", "__stddef_max_align_t.h", "stdatomic.h"];

/// Sections of the table: the headers of each, and its `NAME VALUE` lines.
fn sections() -> impl Iterator<Item = (Vec<&'static str>, &'static str)> {
    TABLE.split("\n[").skip(1).filter_map(|section| {
        let (headers, body) = section.split_once("]\n")?;
        Some((headers.split_whitespace().collect(), body))
    })
}

fn entries(body: &'static str) -> impl Iterator<Item = (&'static str, i64)> {
    body.lines().filter_map(|line| {
        let (name, value) = line.split_once(' ')?;
        Some((name, value.trim().parse().ok()?))
    })
}

/// The constants the table has for `header` (as written in `#include`, e.g. `sys/socket.h`).
pub(super) fn constants_of(header: &str) -> Vec<(&'static str, i64)> {
    sections().filter(|(headers, _)| headers.contains(&header)).flat_map(|(_, body)| entries(body)).collect()
}

/// Whether a missing header is still fine: the kernel's (its types come from BTF), the
/// compiler's, or one the table knows.
pub(super) fn is_known(header: &str) -> bool {
    KERNEL_DIRS.iter().any(|dir| header.starts_with(dir))
        || COMPILER_HEADERS.contains(&header)
        || sections().any(|(headers, _)| headers.contains(&header))
}

/// The header that defines constant `name`, for "add `#include <sys/socket.h>`" hints.
#[must_use]
pub fn header_defining(name: &str) -> Option<&'static str> {
    sections().find(|(_, body)| entries(body).any(|(n, _)| n == name)).and_then(|(headers, _)| headers.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_answers_by_header_and_by_name() {
        assert!(constants_of("sys/socket.h").contains(&("AF_INET6", 10)));
        assert!(constants_of("linux/socket.h").contains(&("AF_INET", 2)));
        assert!(constants_of("linux/sched.h").contains(&("TASK_RUNNING", 0)));
        assert!(constants_of("errno.h").contains(&("EPERM", 1)));
        assert_eq!(header_defining("TCP_FIN_WAIT1"), Some("net/tcp_states.h"));
        assert_eq!(header_defining("AF_INET"), Some("sys/socket.h"));
        assert_eq!(header_defining("NOT_A_CONSTANT"), None);
        assert!(is_known("net/sock.h") && is_known("stddef.h") && !is_known("lol/no.h"));
    }

    #[test]
    fn every_line_of_the_table_is_read() {
        for (headers, body) in sections() {
            assert!(!headers.is_empty());
            for line in body.lines().filter(|l| !l.is_empty()) {
                assert!(entries(line).count() == 1, "a bad line in the table: {line:?}");
            }
        }
    }
}
